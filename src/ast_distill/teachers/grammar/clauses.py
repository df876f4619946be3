"""The parts of one request: values, one comparison, conditions (and/or/not), sort, limit, field lists and
grouping, in one language, style and register. realizer.py assembles them into whole requests."""
from __future__ import annotations

import random
import re
from collections.abc import Sequence
from typing import Any

from .lexicon import Lex
from .phrases import (EN_DATE_PRED, EN_DATE_TERSE, EN_DATE_WITH, EN_PRED, EN_TERSE, EN_WITH, FALLBACK_ENTITY,
                      FR_DATE_PRED, FR_DATE_TERSE, FR_DATE_WITH, FR_NUM_PRED, FR_PRED, FR_TERSE, FR_WITH)
from .plans import Cond, Leaf
from .values import date_text, enum_text, number_text
from .wording import fr_bare, fr_de, fr_gender, join_words

STYLES = ("imperative", "question", "terse")


class ClauseWriter:
    """Writes the parts of one request. A new one per request: it fixes the language, style, register and
    entity noun."""

    def __init__(self, rng: random.Random, lang: str, entity: dict[str, Any], style: str | None = None):
        self.rng, self.lang = rng, lang
        self.style = style or rng.choices(STYLES, weights=(0.45, 0.3, 0.25))[0]
        self.register = rng.choice(("tu", "vous"))
        nouns = entity.get(lang) if isinstance(entity.get(lang), list) and entity.get(lang) else FALLBACK_ENTITY[lang]
        self.entity = rng.choice(nouns)
        self.gender = entity.get("fr_gender") if entity.get("fr_gender") in ("m", "f") else "m"
        self.use_names = rng.random() < 0.35  # terse requests sometimes name fields as the schema does

    # -- small pieces -------------------------------------------------------------------------------------
    def pick(self, options: Sequence[str]) -> str:
        return self.rng.choice(list(options))

    def label(self, lex: Lex) -> str:
        """The field's label as this language uses it in running text (FR: with its article)."""
        if self.style == "terse" and self.use_names:
            return lex.name
        text = self.pick(lex.labels[self.lang])
        return fr_bare(text) if self.style == "terse" and self.lang == "fr" else text

    def value(self, lex: Lex, value: Any, quote_ok: bool = True) -> str:
        if lex.type == "enum":
            return enum_text(lex, value, self.lang)
        if lex.type in ("integer", "number"):
            return number_text(value)
        if lex.type == "date":
            return date_text(value, self.lang, self.rng, terse=self.style == "terse")
        if lex.type == "boolean":
            return ("yes" if value else "no") if self.lang == "en" else ("oui" if value else "non")
        text = str(value)
        if quote_ok and (self.rng.random() < 0.5 or " " in text and self.rng.random() < 0.5):
            return f'"{text}"' if self.lang == "en" or self.rng.random() < 0.5 else f"« {text} »"
        return text

    def value_slots(self, lex: Lex, op: str, value: Any) -> dict[str, str]:
        if op == "between":
            return {"a": self.value(lex, value[0]), "b": self.value(lex, value[1])}
        if op in ("in", "not_in"):
            texts = [self.value(lex, v) for v in value]
            or_word, nor_word = ("or", "nor") if self.lang == "en" else ("ou", "ni")
            nor_list = (f"{texts[0]} nor {texts[1]}" if len(texts) == 2 else None) if self.lang == "en" \
                else " ni ".join(texts)
            return {"list": ", ".join(texts), "or_list": join_words(texts, or_word), "nor_list": nor_list or ""}
        return {"v": self.value(lex, value)}

    def fill(self, bank: Sequence[str], **slots: str) -> str:
        """A random template of the bank, skipping those that need a slot this value cannot fill."""
        usable = [t for t in bank if all(slots.get(k) for k in re.findall(r"{(\w+)}", t))]
        return self.pick(usable or bank).format(**slots)

    # -- one comparison ----------------------------------------------------------------------------------
    def boolean_leaf(self, leaf: Leaf) -> str:
        key = "true" if leaf.value else "false"
        phrase = (leaf.lex.value_labels.get(key) or {}).get(self.lang) if leaf.lex.value_labels else None
        if phrase and self.style != "terse":
            return phrase  # "with a garden", "remboursables"
        yes_no = self.value(leaf.lex, leaf.value)
        label = self.label(leaf.lex)
        if self.style == "terse":
            return f"{label} : {yes_no}" if self.lang == "fr" else f"{label}: {yes_no}"
        return f"with {label}: {yes_no}" if self.lang == "en" else f"avec {label} : {yes_no}"

    def leaf(self, leaf: Leaf) -> str:
        lex, op = leaf.lex, leaf.op
        if lex.type == "boolean":
            return self.boolean_leaf(leaf)
        slots = self.value_slots(lex, op, leaf.value)
        is_date = lex.type == "date"
        if self.style == "terse":
            bank = (EN_DATE_TERSE if is_date else {}) if self.lang == "en" else (FR_DATE_TERSE if is_date else {})
            templates = bank.get(op) or (EN_TERSE if self.lang == "en" else FR_TERSE)[op]
            if lex.type != "integer":
                templates = [t for t in templates if "{v}+" not in t]
            return self.fill(templates, f=self.label(lex), **slots)
        if self.lang == "en":
            return self._leaf_en(lex, op, slots, is_date)
        return self._leaf_fr(lex, op, slots, is_date)

    def _leaf_en(self, lex: Lex, op: str, slots: dict[str, str], is_date: bool) -> str:
        label = self.label(lex)
        with_bank = (EN_DATE_WITH.get(op) if is_date else None) or EN_WITH.get(op)
        if with_bank and self.rng.random() < 0.3:
            return self.fill(with_bank, f=label, **slots)
        pred = self.fill((EN_DATE_PRED.get(op) if is_date else None) or EN_PRED[op], **slots)
        intro = self.pick(("where the {f}", "whose {f}", "where {f}", "for which the {f}"))
        return f"{intro.format(f=label)} {pred}"

    def _leaf_fr(self, lex: Lex, op: str, slots: dict[str, str], is_date: bool) -> str:
        label = self.label(lex)
        with_bank = (FR_DATE_WITH.get(op) if is_date else None) or FR_WITH.get(op)
        if with_bank and self.rng.random() < 0.25:
            return self.fill(with_bank, f=label, bare=fr_bare(label), **slots)
        if is_date:
            bank = FR_DATE_PRED.get(op) or FR_PRED[op]
        elif lex.type in ("integer", "number"):
            bank = FR_PRED[op] + FR_NUM_PRED.get(op, [])
        else:
            bank = FR_PRED[op]
        pred = self.fill(bank, **slots)
        return f"{self.pick(('dont', 'où'))} {label} {pred}"

    # -- conditions ----------------------------------------------------------------------------------------
    def cond(self, node: Cond, nested: bool = False) -> str:
        if isinstance(node, Leaf):
            return self.leaf(node)
        kind, body = node
        if kind == "not":
            return self.negation(self.cond(body))
        if kind == "and":
            parts = [self.cond(child, nested=True) for child in body]
            if self.style == "terse":
                parts = [f"({p})" if isinstance(c, tuple) and c[0] == "or" else p for p, c in zip(parts, body)]
                sep = self.pick((", ", " and ", " & ") if self.lang == "en" else (", ", " et "))
                return sep.join(parts)
            return join_words(parts, "and" if self.lang == "en" else "et")
        parts = [self.cond(child, nested=True) for child in body]
        if self.style == "terse":
            return self.pick((" or ", " | ") if self.lang == "en" else (" ou ", " | ")).join(parts)
        # An "or" inside an "and" must say where it starts ("A and either B or C"), or it reads as (A and B) or C.
        if len(parts) == 2 and (nested or self.rng.random() < 0.4):
            return (f"either {parts[0]} or {parts[1]}" if self.lang == "en"
                    else f"soit {parts[0]}, soit {parts[1]}")
        return join_words(parts, "or" if self.lang == "en" else "ou")

    def negation(self, inner: str) -> str:
        if self.style == "terse":
            return self.pick(("not ({c})", "exclude {c}", "NOT {c}") if self.lang == "en"
                             else ("non ({c})", "sauf {c}", "hors {c}")).format(c=inner)
        if self.lang == "en":
            return self.pick(("excluding those {c}", "but not those {c}", "except the ones {c}",
                              "leaving out any {c}")).format(c=inner)
        those = "ceux" if self.gender == "m" else "celles"
        return self.pick((f"à l'exception des {self.entity} {{c}}", f"en excluant les {self.entity} {{c}}",
                          f"sauf {those} {{c}}", f"hormis {those} {{c}}")).format(c=inner)

    def cond_suffix(self, node: Cond | None) -> str:
        if node is None:
            return ""
        text = self.cond(node)
        if self.style == "terse":
            return self.pick((" ", ": ", " where ") if self.lang == "en" else (" ", " : ", " où ")) + text
        # A lone exclusion reads better after a comma ("listings, excluding those ...").
        lead = ", " if isinstance(node, tuple) and node[0] == "not" else " "
        return lead + text

    # -- sort / limit / select ---------------------------------------------------------------------------
    def sort_key(self, lex: Lex, order: str) -> str:
        label = self.label(lex)
        if self.style == "terse":
            if self.lang == "en":
                return self.pick(("sort {f} {o}", "order by {f} {o}", "sort by {f} {o}")).format(f=label, o=order)
            word = "croissant" if order == "asc" else "décroissant"
            return self.pick(("tri {f} {o}", "trier par {f} {o}", "tri par {f} {o}")).format(f=label, o=word)
        if self.lang == "en":
            words = (["ascending", "in ascending order", "from lowest to highest"] if order == "asc"
                     else ["descending", "in descending order", "from highest to lowest"])
            options = [f"sorted by {label} {self.pick(words)}", f"ordered by {label} {self.pick(words)}",
                       f"by {'increasing' if order == 'asc' else 'decreasing'} {label}"]
            if lex.type in ("integer", "number"):
                options.append(f"{'lowest' if order == 'asc' else 'highest'} {label} first")
            elif lex.type == "date":
                options.append(f"{'oldest' if order == 'asc' else 'most recent'} {label} first")
                options.append(f"sorted by {label}, {'oldest' if order == 'asc' else 'newest'} first")
            elif lex.type in ("string", "enum"):
                options.append(f"sorted by {label} from {'A to Z' if order == 'asc' else 'Z to A'}")
            return self.pick(options)
        bare = fr_bare(label)
        word = "croissant" if order == "asc" else "décroissant"
        sorted_word = "triés" if self.gender == "m" else "triées"
        ranked_word = "classés" if self.gender == "m" else "classées"
        options = [f"par ordre {word} {fr_de(bare)}"]
        gender = fr_gender(label)
        if gender is not None:  # "par prix croissant", "par date croissante"; unknown gender (l'...): skip
            agreed = word + ("e" if gender == "f" else "")
            options += [f"{sorted_word} par {bare} {agreed}", f"{ranked_word} par {bare} {agreed}",
                        f"par {bare} {agreed}"]
        if lex.type == "date":
            options.append(f"{sorted_word} par {bare}, " + ("du plus ancien au plus récent" if order == "asc"
                                                               else "du plus récent au plus ancien"))
        elif lex.type in ("string", "enum"):
            options.append(f"{sorted_word} par {bare} " + ("de A à Z" if order == "asc" else "de Z à A"))
        return self.pick(options)

    def sort_suffix(self, sort: list[tuple[Lex, str]]) -> str:
        if not sort:
            return ""
        keys = [self.sort_key(lex, order) for lex, order in sort]
        if self.style == "terse":
            return self.pick(("; ", ", ", " ")) + ", ".join(keys) if self.lang == "en" else \
                self.pick((" ; ", ", ", " ")) + ", ".join(keys)
        then = ", then " if self.lang == "en" else ", puis "
        return ", " + then.join(keys)

    def limit_suffix(self, n: int) -> str:
        if self.style == "terse":
            return " " + self.pick(("limit {n}", "top {n}", "first {n}") if self.lang == "en"
                                   else ("limite {n}", "top {n}")).format(n=n)
        if self.lang == "en":
            return self.pick((", limit {n}", ", {n} results max", " (max {n})", ", only {n} of them",
                              ", at most {n} rows", ", first {n} only", ", just {n}")).format(n=n)
        return self.pick((", limite {n}", ", {n} résultats maximum", " (max {n})", ", pas plus de {n}",
                          ", au plus {n} lignes", ", seulement {n}")).format(n=n)

    def field_list(self, lexes: list[Lex]) -> str:
        labels = [self.label(lex) for lex in lexes]
        if self.style == "terse":
            return ", ".join(labels)
        if self.lang == "en":
            return "the " + join_words(labels, "and")
        return join_words(labels, "et")

    # -- grouping --------------------------------------------------------------------------------------------
    def group_suffix(self, group_by: list[Lex]) -> str:
        if not group_by:
            return ""
        labels = [self.label(lex) for lex in group_by]
        if self.lang == "fr":
            labels = [fr_bare(x) for x in labels]
        joined = join_words(labels, "and" if self.lang == "en" else "et")
        if self.style == "terse":
            return self.pick((" by {g}", " group by {g}", " per {g}") if self.lang == "en"
                             else (" par {g}", " groupé par {g}")).format(g=joined)
        if self.lang == "en":
            return self.pick((" per {g}", " by {g}", ", grouped by {g}", ", broken down by {g}",
                              " for each {g}")).format(g=joined)
        return self.pick((" par {g}", ", regroupé par {g}", " pour chaque {g}", ", ventilé par {g}")).format(g=joined)
