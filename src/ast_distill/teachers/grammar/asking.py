"""Requests the built-in teacher answers with a question (clarifications) and requests that need their context
(today's date, the user's usual values), written by construction so that the gold answer is known.

Clarifications (``ClarificationWriter``): a value the request needs is left out (options: some values), several
fields fit the words (options: one query per field), or the wish is too vague to filter on (no options). Context
(``ContextWriter``): "today", "this month", "my usual <field>", twice: with a context the AST takes the context's
value; the same words without one get a clarification (options: some values when a field's values are known).
Typos that blur the intent are left to LLM teachers: templates cannot make them honestly.
"""
from __future__ import annotations

import calendar
import datetime as dt
import random
from typing import Any

from ...records import CLARIFICATION, QUERY
from ..base import GeneratedPair
from .drafts import pair
from .lexicon import Lex
from .plans import Leaf, PlanSampler, cond_ast
from .realizer import Realizer
from .values import enum_text
from .wording import fr_bare, fr_elide, tidy

MAX_OPTIONS = 3  # the template allows 4; three keeps answers short
CONTEXT_DAYS = (dt.date(2024, 1, 1), dt.date(2026, 12, 31))  # the "today" a context may carry


def clarification(question: str, options: list[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """A clarification AST: the question, and (label, query AST) options."""
    return {"type": CLARIFICATION, "question": question[:160],
            "options": [{"label": label[:80], "ast": ast} for label, ast in options[:MAX_OPTIONS]]}


def _query(cond: Any) -> dict[str, Any]:
    return {"type": QUERY, "filter": cond_ast(cond)}


def _with_extra(leaf: Leaf, extra: Leaf | None) -> Any:
    return leaf if extra is None else ("and", [leaf, extra])


def askable_enums(lexicon: list[Lex]) -> list[Lex]:
    """Enum fields with an eq operator and at least two values: the ones a question can offer values of."""
    return [lex for lex in lexicon if lex.type == "enum" and "eq" in lex.ops and len(lex.values or []) >= 2]


def sentence(real: Realizer, tail: str) -> str:
    """A whole request about the entity: the realizer's head (imperative or question), then `tail`."""
    obj = real.entity if real.lang == "en" else f"les {real.entity}"
    head, end = real.head(obj, question_ok=True)
    return tidy(f"{head} {tail}{end}", real.lang)


class ClarificationWriter:
    """Writes ambiguous or incomplete requests with the clarification that answers them."""

    def __init__(self, rng: random.Random, lexicon: list[Lex]):
        self.rng, self.lexicon = rng, lexicon
        self.enums = askable_enums(lexicon)
        self.numbers = [lex for lex in lexicon if lex.type in ("integer", "number") and "gt" in lex.ops]

    def kinds(self) -> list[str]:
        return (["missing_value"] if self.enums else []) + (["several_fields"] if len(self.numbers) >= 2 else []) \
            + ["vague"]

    def write(self, lang: str, entity: dict[str, Any]) -> list[GeneratedPair]:
        real = Realizer(self.rng, lang, entity, style=self.rng.choice(("imperative", "question")))
        kind = self.rng.choice(self.kinds())
        return [pair(getattr(self, kind)(real), lang)]

    def missing_value(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        lex = self.rng.choice(self.enums)
        label = self.rng.choice(lex.labels[real.lang])
        if real.lang == "en":
            tail = self.rng.choice(("with a particular {f}", "for one specific {f}", "filtered on {f}",
                                    "matching a certain {f}")).format(f=label)
            question = self.rng.choice(("Which {f} do you mean?", "Which {f} should they have?")).format(f=label)
        else:
            de = fr_elide("de", fr_bare(label))
            tail = self.rng.choice(("avec une valeur précise {de}", "pour une valeur donnée {de}",
                                    "selon une certaine valeur {de}")).format(de=de)
            question = f"Quelle valeur {de} voulez-vous ?"
        values = self.rng.sample(list(lex.values or []), min(MAX_OPTIONS, len(lex.values or [])))
        options = [(enum_text(lex, v, real.lang), _query(Leaf(lex, "eq", v))) for v in values]
        return sentence(real, tail), clarification(question, options)

    def several_fields(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        fields = self.rng.sample(self.numbers, min(MAX_OPTIONS, len(self.numbers)))
        first = fields[0]
        low, high = (first.low, first.high) if isinstance(first.low, (int, float)) else (0, 100)
        n = self.rng.randint(int(low), max(int(low), int(high)))
        labels = [self.rng.choice(lex.labels[real.lang]) for lex in fields]
        if real.lang == "en":
            tail = self.rng.choice(("above {n}", "over {n}", "with more than {n}")).format(n=n)
            question = f"More than {n} in which field: " + ", ".join(labels[:-1]) + f" or {labels[-1]}?"
        else:
            tail = self.rng.choice(("au-dessus de {n}", "à plus de {n}")).format(n=n)
            bare = [fr_bare(label) for label in labels]
            question = f"Plus de {n} pour quel champ : " + ", ".join(bare[:-1]) + f" ou {bare[-1]} ?"
        options = [(label if real.lang == "en" else fr_bare(label), _query(Leaf(lex, "gt", n)))
                   for lex, label in zip(fields, labels)]
        return sentence(real, tail), clarification(question, options)

    def vague(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        e = real.entity
        if real.lang == "en":
            text = self.rng.choice((f"Show me the best {e}", f"Anything interesting about the {e}?",
                                    f"Find the right {e} for me", f"I need some good {e}"))
            question = f"What should the {e} have in common: which field and which value?"
        else:
            text = self.rng.choice((f"Quoi de neuf côté {e} ?", f"Trouve-moi ce qui convient parmi les {e}",
                                    f"Je cherche quelque chose parmi les {e}"))
            question = f"Que doivent avoir en commun les {e} : quel champ et quelle valeur ?"
        return tidy(text, real.lang), clarification(question, [])


class ContextWriter:
    """Writes requests that need their context: with it (the AST takes the context's value) and without it (a
    clarification)."""

    def __init__(self, rng: random.Random, lexicon: list[Lex]):
        self.rng, self.lexicon = rng, lexicon
        self.days = [lex for lex in lexicon if lex.type == "date" and "eq" in lex.ops]
        self.months = [lex for lex in lexicon if lex.type == "date" and "between" in lex.ops]
        self.enums = askable_enums(lexicon)

    def kinds(self) -> list[str]:
        return (["today"] if self.days else []) + (["this_month"] if self.months else []) \
            + (["usual"] if self.enums else [])

    def _context(self, usual: Lex | None) -> dict[str, Any]:
        """today's date, and the usual value of one or two enum fields (the one the request needs among them)."""
        start, end = CONTEXT_DAYS
        today = start + dt.timedelta(days=self.rng.randint(0, (end - start).days))
        pool = [lex for lex in self.enums if lex is not usual]
        others = self.rng.sample(pool, min(len(pool), self.rng.choice((0, 1, 1))))
        defaults = {lex.name: self.rng.choice(list(lex.values or [])) for lex in ([usual] if usual else []) + others}
        return {"today": today.isoformat(), **({"defaults": defaults} if defaults else {})}

    def write(self, lang: str, entity: dict[str, Any]) -> list[GeneratedPair]:
        kind = self.rng.choice(self.kinds())
        real = Realizer(self.rng, lang, entity, style=self.rng.choice(("imperative", "question")))
        lex = self.rng.choice({"today": self.days, "this_month": self.months, "usual": self.enums}[kind])
        context = self._context(lex if kind == "usual" else None)
        today = dt.date.fromisoformat(context["today"])
        label = self.rng.choice(lex.labels[lang])
        en = lang == "en"
        if kind == "today":
            leaf = Leaf(lex, "eq", today.isoformat())
            words = self.rng.choice(("where the {f} is today", "with {f} today", "whose {f} is today") if en
                                    else ("dont {f} est aujourd'hui", "avec {f} aujourd'hui"))
            question, options = (("Which date is today?" if en else "Quelle est la date d'aujourd'hui ?"), [])
        elif kind == "this_month":
            last = calendar.monthrange(today.year, today.month)[1]
            leaf = Leaf(lex, "between", [today.replace(day=1).isoformat(), today.replace(day=last).isoformat()])
            words = self.rng.choice(("with {f} this month", "where the {f} falls in this month") if en
                                    else ("dont {f} tombe ce mois-ci", "avec {f} ce mois-ci"))
            question, options = (("Which month do you mean?" if en else "Quel mois voulez-vous dire ?"), [])
        else:
            leaf = Leaf(lex, "eq", context["defaults"][lex.name])
            words = self.rng.choice(("with my usual {f}", "for the usual {f}", "in my usual {f}") if en
                                    else ("avec ma valeur habituelle {de}", "pour ma valeur habituelle {de}"))
            question = f"Which {label} is your usual one?" if en else \
                f"Quelle est votre valeur habituelle {fr_elide('de', fr_bare(label))} ?"
            values = self.rng.sample(list(lex.values or []), min(MAX_OPTIONS, len(lex.values or [])))
            options = [(enum_text(lex, v, lang), v) for v in values]
        extra = PlanSampler(self.rng, self.lexicon).leaf({lex.name}) if self.rng.random() < 0.4 else None
        tail = words.format(f=label, de=fr_elide("de", fr_bare(label)))
        if extra is not None:
            tail += (" and " if en else " et ") + real.leaf(extra)
        text = sentence(real, tail)
        answered = _query(_with_extra(leaf, extra))
        asked = clarification(question, [(text_value, _query(_with_extra(Leaf(lex, "eq", v), extra)))
                                          for text_value, v in options])
        return [pair((text, answered), lang, context), pair((text, asked), lang)]
