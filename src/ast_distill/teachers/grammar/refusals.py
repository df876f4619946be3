"""Refusals of the built-in teacher: requests the schema cannot express (a field it lacks, an operator it
lacks, a write operation) and their refusal ASTs."""
from __future__ import annotations

import random
from typing import Any

from ...records import REFUSAL
from .lexicon import Lex
from .phrases import EN_WRITE, FR_WRITE, WRITE_REFUSALS
from .plans import Leaf, PlanSampler
from .realizer import Realizer
from .values import TEXT_MATCH_OPS, sample_scalar, sample_value
from .wording import fr_bare, tidy

REFUSAL_TEXT_MAX = 160
ORDERING_OPS = frozenset({"gt", "gte", "lt", "lte", "between", "before", "after"})


def _clip(text: str) -> str:
    return text if len(text) <= REFUSAL_TEXT_MAX else text[:REFUSAL_TEXT_MAX - 3].rstrip(" ,;") + "..."


def _names(lexicon: list[Lex], limit: int = 5) -> str:
    return ", ".join(lex.name for lex in lexicon[:limit])


WRITE_ACTIONS = ("delete", "update", "insert", "join")


def _missing_op_targets(lexicon: list[Lex]) -> list[tuple[Lex, str]]:
    """(field, canonical op) pairs a request can ask for but this schema cannot express in any way."""
    targets = []
    for lex in lexicon:
        if lex.type == "string":
            targets += [(lex, op) for op in TEXT_MATCH_OPS if op not in lex.ops and lex.examples]
        if lex.type in ("integer", "number", "date") and not (ORDERING_OPS & set(lex.ops)):
            targets += [(lex, op) for op in (("after", "before") if lex.type == "date" else ("gt", "lt"))]
    return targets


class RefusalWriter:
    """Writes refusal requests with their ASTs, of the kinds this schema allows (what it lacks)."""

    def __init__(self, rng: random.Random, lexicon: list[Lex], missing_fields: list[Lex]):
        self.rng, self.lexicon, self.missing_fields = rng, lexicon, missing_fields
        self.missing_ops = _missing_op_targets(lexicon)

    def kinds(self) -> list[str]:
        kinds = ["write_operation"]
        if self.missing_fields:
            kinds.append("unknown_field")
        if self.missing_ops:
            kinds.append("missing_operator")
        return kinds

    def write(self, lang: str, entity: dict[str, Any]) -> tuple[str, dict[str, Any]]:
        kind = self.rng.choice(self.kinds())
        real = Realizer(self.rng, lang, entity, style=self.rng.choice(("imperative", "imperative", "question")))
        if kind == "unknown_field":
            return self.unknown_field(real)
        if kind == "missing_operator":
            return self.missing_operator(real)
        return self.write_operation(real)

    def _extra_cond(self, real: Realizer) -> str:
        if self.rng.random() < 0.4:
            leaf = PlanSampler(self.rng, self.lexicon).leaf(set())
            if leaf is not None:
                return (" and " if real.lang == "en" else " et ") + real.leaf(leaf)
        return ""

    def _sentence(self, real: Realizer, lex: Lex, op: str, obj: str | None = None) -> str:
        """A request for ``lex op <value>`` (sometimes and one condition the schema can express)."""
        value = sample_value(self.rng, lex, op)
        text = real.leaf(Leaf(lex, op, value)) + self._extra_cond(real)
        if obj is None:  # chosen after the condition: the draws stay in the order the corpus was made with
            obj = self.rng.choice((f"the {real.entity}", real.entity)) if real.lang == "en" else f"les {real.entity}"
        head, end = real.head(obj, question_ok=True)
        return tidy(f"{head} {text}{end}", real.lang)

    def unknown_field(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        lex = self.rng.choice(self.missing_fields)
        op = {"integer": "gt", "number": "lt", "date": "after"}.get(lex.type, "eq")
        text = self._sentence(real, lex, op)
        label, names = lex.labels[real.lang][0], _names(self.lexicon)
        reason, suggestion = {
            "en": (f"The schema has no field for {label}.", f"Filter on a field it has, such as {names}."),
            "fr": (f"Le schéma n'a pas de champ pour {fr_bare(label)}.",
                   f"Filtrez sur un champ existant, par exemple {names}."),
        }[real.lang]
        return text, _refusal(reason, suggestion)

    def missing_operator(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        lex, op = self.rng.choice(self.missing_ops)
        text = self._sentence(real, lex, op, real.entity if real.lang == "en" else f"les {real.entity}")
        if op in TEXT_MATCH_OPS:
            what_en = {"contains": "text search", "starts_with": "prefix match", "ends_with": "suffix match"}[op]
            what_fr = {"contains": "recherche de texte", "starts_with": "recherche par début",
                       "ends_with": "recherche par fin"}[op]
        else:
            what_en, what_fr = "greater/less-than comparison", "comparaison supérieur/inférieur"
        reason, suggestion = {
            "en": (f"This schema has no {what_en} operator for {lex.name}.",
                   f"Filter {lex.name} on an exact value instead."),
            "fr": (f"Ce schéma n'a pas d'opérateur de {what_fr} pour {lex.name}.",
                   f"Filtrez {lex.name} sur une valeur exacte."),
        }[real.lang]
        return text, _refusal(reason, suggestion)

    def write_operation(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        action = self.rng.choice(WRITE_ACTIONS)
        sampler = PlanSampler(self.rng, self.lexicon)
        leaf = sampler.leaf(set())
        real.style = "imperative"
        conds = (" " + real.leaf(leaf)) if leaf is not None and action in ("delete", "update") else ""
        lex = self.rng.choice(self.lexicon)
        value = real.value(lex, sample_scalar(self.rng, lex))
        label = real.label(lex)
        slots = {"e": real.entity, "c": conds, "f": label, "v": value, "bare": fr_bare(label)}
        if real.lang == "en":
            text = self.rng.choice(EN_WRITE[action]).format(**slots)
        else:
            tu_verb, vous_verb, rest = self.rng.choice(FR_WRITE[action])
            text = (tu_verb if real.register == "tu" else vous_verb) + rest.format(**slots)
        reasons, suggestion = WRITE_REFUSALS[real.lang]
        return tidy(text, real.lang), _refusal(reasons[action], suggestion.format(e=real.entity))


def _refusal(reason: str, suggestion: str) -> dict[str, Any]:
    return {"type": REFUSAL, "reason": _clip(reason), "suggestion": _clip(suggestion or reason)}
