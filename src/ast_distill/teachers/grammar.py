"""The built-in grammar teacher: no LLM, deterministic for a seed, fast.

It samples valid ASTs from a schema (fields, operators and value shapes come from ``dsl.schema_fields``;
labels, value ranges and string examples from the domain spec) and realizes each one as an English or a
French request from templates: field synonyms, several phrasings per canonical operator, imperative /
question / terse keyword styles, optional parts, dates written as ISO or in words, enum values by their
spoken label. Every value of an AST can be read back from its request text, because the student must copy
it. A share of the requests are things the schema cannot express (a field it lacks, a write operation, an
operator it lacks); their AST is a refusal. Judging is canonical comparison with the gold AST.

Conventions that keep one request text = one AST (the student cannot guess between equivalent spellings):
conditions of one request use distinct fields; ``in``/``not_in`` always list two or more values; a date
field is compared with ``before``/``after`` when the schema has them and with ``lt``/``gt`` only otherwise;
``not`` is phrased as an exclusion ("excluding those whose ...") and ``ne`` as "is not"; booleans use
``eq`` only.
"""
from __future__ import annotations

import datetime as dt
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from .. import canonical, dsl
from ..config import REPO_ROOT
from ..dataset import normalize_query
from ..errors import UserError
from .base import DEFAULT_REFUSAL_FRACTION, GeneratedPair, Teacher, Verdict, check_refusal_fraction

LANGUAGES = ("en", "fr")
STYLES = ("imperative", "question", "terse")
FIELDS_PER_SPEC = (5, 8)
MAX_TRIES_PER_PAIR = 40
REFUSAL_TEXT_MAX = 160
CATALOG_PATH = REPO_ROOT / "data" / "operator_catalog.json"

ORDERING_OPS = frozenset({"gt", "gte", "lt", "lte", "between", "before", "after"})
TEXT_MATCH_OPS = ("contains", "starts_with", "ends_with")
DEFAULT_RANGES: dict[str, tuple[Any, Any]] = {
    "integer": (0, 100), "number": (0, 1000), "date": ("2020-01-01", "2025-12-31")}
FALLBACK_STRINGS = ("alpha", "north", "central", "premium", "delta", "river")
FALLBACK_ENTITY = {"en": ["records", "items"], "fr": ["enregistrements", "éléments"], "fr_gender": "m"}
# Fields a domain might have but a schema lacks, for "unknown field" refusals when a spec has no pool.
GENERIC_MISSING_FIELDS = (
    {"name": "color", "type": "string", "examples": ["red", "blue"], "labels": {"en": ["color"], "fr": ["la couleur"]}},
    {"name": "owner", "type": "string", "examples": ["Martin", "Lee"], "labels": {"en": ["owner"], "fr": ["le propriétaire"]}},
    {"name": "weight_kg", "type": "number", "min": 1, "max": 500, "labels": {"en": ["weight"], "fr": ["le poids"]}},
    {"name": "country", "type": "string", "examples": ["Canada", "Japan"], "labels": {"en": ["country"], "fr": ["le pays"]}},
)

MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
}
FR_VOWELS = "aeiouyhâàäéèêëîïôöûüœ"


# --------------------------------------------------------------------------------------------------------
# Phrase banks. {f} = field label, {v} = value, {a}/{b} = range ends, {list}/{or_list}/{nor_list} = values.
# --------------------------------------------------------------------------------------------------------

EN_PRED: dict[str, list[str]] = {
    "eq": ["is {v}", "equals {v}", "is exactly {v}", "is equal to {v}"],
    "ne": ["is not {v}", "isn't {v}", "is anything but {v}", "is different from {v}", "is other than {v}"],
    "gt": ["is above {v}", "is greater than {v}", "exceeds {v}", "is more than {v}", "is over {v}",
           "is higher than {v}"],
    "gte": ["is at least {v}", "is {v} or more", "is no less than {v}", "is greater than or equal to {v}",
            "is {v} or higher"],
    "lt": ["is below {v}", "is less than {v}", "is under {v}", "is lower than {v}", "is smaller than {v}"],
    "lte": ["is at most {v}", "is {v} or less", "does not exceed {v}", "is no more than {v}",
            "is less than or equal to {v}"],
    "between": ["is between {a} and {b}", "ranges from {a} to {b}", "lies between {a} and {b}",
                "is from {a} to {b}", "is between {a} and {b} inclusive"],
    "in": ["is {or_list}", "is one of {list}", "is any of {list}", "is either {or_list}", "is in {list}"],
    "not_in": ["is not {or_list}", "is none of {list}", "is not one of {list}", "is not in {list}",
               "is neither {nor_list}"],
    "contains": ["contains {v}", "includes {v}", "mentions {v}", "has {v} in it"],
    "starts_with": ["starts with {v}", "begins with {v}"],
    "ends_with": ["ends with {v}", "finishes with {v}"],
    "before": ["is before {v}", "is earlier than {v}", "falls before {v}", "is prior to {v}"],
    "after": ["is after {v}", "is later than {v}", "falls after {v}", "comes after {v}"],
}
EN_DATE_PRED: dict[str, list[str]] = {
    "eq": ["is {v}", "is on {v}", "falls on {v}"],
    "ne": ["is not {v}", "is not on {v}", "is any day but {v}"],
    "gt": EN_PRED["after"], "lt": EN_PRED["before"],
    "gte": ["is on or after {v}", "is {v} or later", "is no earlier than {v}"],
    "lte": ["is on or before {v}", "is {v} or earlier", "is no later than {v}"],
    "between": ["is between {a} and {b}", "falls between {a} and {b}", "is from {a} to {b}"],
}
EN_WITH: dict[str, list[str]] = {
    "eq": ["with {f} {v}", "with {f} equal to {v}", "with {f} set to {v}", "having {f} {v}"],
    "ne": ["with {f} other than {v}", "with {f} not equal to {v}", "with {f} different from {v}"],
    "gt": ["with {f} above {v}", "with {f} over {v}", "with {f} greater than {v}", "with {f} higher than {v}"],
    "gte": ["with {f} of at least {v}", "with {f} of {v} or more", "with {f} no lower than {v}"],
    "lt": ["with {f} below {v}", "with {f} under {v}", "with {f} less than {v}"],
    "lte": ["with {f} of at most {v}", "with {f} of {v} or less", "with {f} up to {v}"],
    "between": ["with {f} between {a} and {b}", "with {f} from {a} to {b}"],
    "in": ["with {f} {or_list}", "with {f} in {list}"],
    "not_in": ["with {f} not in {list}", "with {f} other than {or_list}"],
    "contains": ["with {v} in the {f}", "with {f} containing {v}", "with {f} mentioning {v}"],
    "starts_with": ["with {f} starting with {v}", "with {f} beginning with {v}"],
    "ends_with": ["with {f} ending with {v}", "with {f} ending in {v}"],
    "before": ["with {f} before {v}", "with {f} earlier than {v}"],
    "after": ["with {f} after {v}", "with {f} later than {v}"],
}
EN_DATE_WITH: dict[str, list[str]] = {
    "eq": ["with {f} on {v}"], "ne": ["with {f} not on {v}"],
    "gt": EN_WITH["after"], "lt": EN_WITH["before"],
    "gte": ["with {f} on or after {v}", "with {f} from {v} onwards"],
    "lte": ["with {f} on or before {v}", "with {f} up to {v}"],
    "between": ["with {f} between {a} and {b}", "with {f} from {a} to {b}"],
}
EN_TERSE: dict[str, list[str]] = {
    "eq": ["{f} = {v}", "{f}: {v}", "{f} is {v}"],
    "ne": ["{f} != {v}", "{f} <> {v}", "{f} not {v}"],
    "gt": ["{f} > {v}", "{f} over {v}", "{f} above {v}"],
    "gte": ["{f} >= {v}", "{f} at least {v}", "{f} {v}+"],
    "lt": ["{f} < {v}", "{f} under {v}", "{f} below {v}"],
    "lte": ["{f} <= {v}", "{f} at most {v}", "{f} up to {v}"],
    "between": ["{f} between {a} and {b}", "{f} {a} to {b}", "{f} in [{a}, {b}]"],
    "in": ["{f} in ({list})", "{f}: {or_list}", "{f} = {or_list}"],
    "not_in": ["{f} not in ({list})", "{f} none of {list}"],
    "contains": ["{f} contains {v}", "{f} ~ {v}", "{f} has {v}"],
    "starts_with": ["{f} starts with {v}", "{f} prefix {v}"],
    "ends_with": ["{f} ends with {v}", "{f} suffix {v}"],
    "before": ["{f} before {v}", "{f} < {v}"],
    "after": ["{f} after {v}", "{f} > {v}"],
}
EN_DATE_TERSE: dict[str, list[str]] = {
    "gt": EN_TERSE["after"], "lt": EN_TERSE["before"],
    "gte": ["{f} >= {v}", "{f} from {v}"], "lte": ["{f} <= {v}", "{f} until {v}"],
    "between": ["{f} between {a} and {b}", "{f} from {a} to {b}"],
}

FR_PRED: dict[str, list[str]] = {
    "eq": ["est {v}", "correspond à {v}"],
    "ne": ["n'est pas {v}", "est autre que {v}"],
    "gt": ["dépasse {v}", "est au-dessus de {v}", "est de plus de {v}", "excède {v}"],
    "gte": ["est d'au moins {v}", "vaut au moins {v}", "atteint au moins {v}", "est de {v} ou plus"],
    "lt": ["est en dessous de {v}", "est de moins de {v}", "n'atteint pas {v}", "reste sous {v}"],
    "lte": ["est d'au plus {v}", "ne dépasse pas {v}", "vaut au plus {v}", "est de {v} ou moins"],
    "between": ["est entre {a} et {b}", "va de {a} à {b}", "se situe entre {a} et {b}"],
    "in": ["est {or_list}", "fait partie de {list}", "est parmi {list}", "est soit {or_list}"],
    "not_in": ["n'est ni {nor_list}", "ne fait pas partie de {list}", "n'est pas parmi {list}"],
    "contains": ["contient {v}", "inclut {v}", "mentionne {v}", "comporte {v}"],
    "starts_with": ["commence par {v}", "débute par {v}"],
    "ends_with": ["se termine par {v}", "finit par {v}"],
    "before": ["est avant le {v}", "tombe avant le {v}", "précède le {v}"],
    "after": ["est après le {v}", "tombe après le {v}", "vient après le {v}"],
}
FR_NUM_PRED: dict[str, list[str]] = {  # no adjective here: it would have to agree with the label's gender
    "eq": ["est de {v}", "vaut {v}"],
    "ne": ["ne vaut pas {v}", "n'est pas de {v}"],
}
FR_DATE_PRED: dict[str, list[str]] = {
    "eq": ["est le {v}", "tombe le {v}"],
    "ne": ["n'est pas le {v}", "tombe un autre jour que le {v}"],
    "gt": FR_PRED["after"], "lt": FR_PRED["before"],
    "gte": ["est le {v} ou après", "est au plus tôt le {v}", "est à partir du {v}"],
    "lte": ["est le {v} ou avant", "est au plus tard le {v}", "va jusqu'au {v}"],
    "between": ["est entre le {a} et le {b}", "va du {a} au {b}", "se situe entre le {a} et le {b}"],
}
FR_WITH: dict[str, list[str]] = {
    "eq": ["ayant pour {bare} {v}", "avec {f} à {v}"],
    "gt": ["avec {f} au-dessus de {v}"],
    "gte": ["avec {f} d'au moins {v}"],
    "lt": ["avec {f} en dessous de {v}"],
    "lte": ["avec {f} d'au plus {v}"],
    "between": ["avec {f} entre {a} et {b}"],
    "in": ["ayant pour {bare} {or_list}"],
    "contains": ["avec {v} dans {f}"],
    "before": ["avec {f} avant le {v}"],
    "after": ["avec {f} après le {v}"],
}
FR_DATE_WITH: dict[str, list[str]] = {
    "gt": FR_WITH["after"], "lt": FR_WITH["before"],
    "gte": ["avec {f} à partir du {v}"], "lte": ["avec {f} jusqu'au {v}"],
    "between": ["avec {f} du {a} au {b}"], "eq": ["avec {f} le {v}"],
}
FR_TERSE: dict[str, list[str]] = {
    "eq": ["{f} = {v}", "{f} : {v}"],
    "ne": ["{f} != {v}", "{f} <> {v}", "{f} sauf {v}"],
    "gt": ["{f} > {v}", "{f} plus de {v}"],
    "gte": ["{f} >= {v}", "{f} au moins {v}"],
    "lt": ["{f} < {v}", "{f} moins de {v}"],
    "lte": ["{f} <= {v}", "{f} jusqu'à {v}"],
    "between": ["{f} entre {a} et {b}", "{f} de {a} à {b}"],
    "in": ["{f} dans ({list})", "{f} = {or_list}"],
    "not_in": ["{f} hors ({list})", "{f} pas dans ({list})"],
    "contains": ["{f} contient {v}", "{f} ~ {v}"],
    "starts_with": ["{f} commence par {v}"],
    "ends_with": ["{f} finit par {v}"],
    "before": ["{f} avant {v}", "{f} < {v}"],
    "after": ["{f} après {v}", "{f} > {v}"],
}
FR_DATE_TERSE: dict[str, list[str]] = {
    "gt": FR_TERSE["after"], "lt": FR_TERSE["before"],
    "gte": ["{f} >= {v}", "{f} à partir du {v}"], "lte": ["{f} <= {v}", "{f} jusqu'au {v}"],
    "between": ["{f} entre {a} et {b}", "{f} du {a} au {b}"],
}

EN_VERBS = ["Show", "Show me", "List", "Find", "Get", "Give me", "Display", "Fetch", "Pull up", "Look up",
            "Return", "Retrieve", "I want", "I need", "I'd like", "Please show", "Please list", "Bring up"]
EN_ASK = ["Can you show me", "Could you list", "Can you find", "Could you pull up", "Would you fetch",
          "Can I see", "Could I get", "Can you give me"]
FR_VERBS = {"tu": ["Montre", "Montre-moi", "Affiche", "Liste", "Trouve", "Donne-moi", "Cherche", "Sors-moi",
                   "Récupère", "Je veux", "J'aimerais voir", "Il me faut"],
            "vous": ["Affichez", "Listez", "Montrez-moi", "Donnez-moi", "Veuillez afficher", "Merci d'afficher",
                     "Merci de lister", "Je souhaiterais voir"]}
FR_ASK = {"tu": ["Peux-tu me montrer", "Tu peux lister", "Est-ce que tu peux trouver", "Tu peux me sortir",
                 "Pourrais-tu chercher"],
          "vous": ["Pouvez-vous afficher", "Pourriez-vous me donner", "Pourriez-vous lister",
                   "Est-ce que vous pouvez trouver"]}

EN_AGG = {"sum": ["total {f}", "sum of the {f}", "combined {f}"], "avg": ["average {f}", "mean {f}"],
          "min": ["lowest {f}", "minimum {f}", "smallest {f}"], "max": ["highest {f}", "maximum {f}", "largest {f}"]}
EN_DATE_AGG = {"min": ["earliest {f}", "minimum {f}"], "max": ["latest {f}", "most recent {f}", "maximum {f}"]}
EN_AGG_TERSE = {"sum": ["sum", "total"], "avg": ["avg", "average", "mean"], "min": ["min", "minimum"],
                "max": ["max", "maximum"]}
FR_AGG = {"sum": [("la somme", "f"), ("le total", "m")], "avg": [("la moyenne", "f"), ("la valeur moyenne", "f")],
          "min": [("le minimum", "m"), ("la valeur minimale", "f"), ("la plus petite valeur", "f")],
          "max": [("le maximum", "m"), ("la valeur maximale", "f"), ("la plus grande valeur", "f")]}
FR_AGG_TERSE = {"sum": ["somme", "total"], "avg": ["moyenne", "moy"], "min": ["min", "minimum"],
                "max": ["max", "maximum"]}


# --------------------------------------------------------------------------------------------------------
# Fields as the teacher sees them: the schema's types and operators + the spec's words.
# --------------------------------------------------------------------------------------------------------

@dataclass
class Lex:
    """One field: its schema facts (type, enum values, canonical op -> this schema's alias) and its words."""
    name: str
    type: str
    labels: dict[str, list[str]]
    values: list[Any] | None = None
    value_labels: dict[str, dict[str, str]] = field(default_factory=dict)
    examples: list[str] = field(default_factory=list)
    low: Any = None
    high: Any = None
    ops: dict[str, str] = field(default_factory=dict)


@dataclass
class Leaf:
    lex: Lex
    op: str  # canonical operator name
    value: Any


Cond = Any  # Leaf | ("and"|"or", [Cond, ...]) | ("not", Cond)


@dataclass
class Plan:
    """What one request asks: everything the AST holds, with canonical operators."""
    cond: Cond | None = None
    select: list[Lex] = field(default_factory=list)
    sort: list[tuple[Lex, str]] = field(default_factory=list)
    limit: int | None = None
    aggregate: tuple[str, Lex | None] | None = None
    group_by: list[Lex] = field(default_factory=list)


def _default_labels(name: str) -> dict[str, list[str]]:
    spoken = name.replace("_", " ")
    return {"en": [spoken], "fr": [f"le champ {spoken}"]}


def lex_from_spec_field(spec_field: dict[str, Any], ops: dict[str, str] | None = None,
                        schema_type: str | None = None, values: list[Any] | None = None) -> Lex:
    """A Lex from a spec field (labels, ranges, examples), typed by the schema when one is given."""
    kind = schema_type or spec_field.get("type", "string")
    labels = spec_field.get("labels") or {}
    merged = _default_labels(spec_field["name"])
    for lang in LANGUAGES:
        if isinstance(labels.get(lang), list) and labels[lang]:
            merged[lang] = [str(x) for x in labels[lang]]
    low, high = DEFAULT_RANGES.get(kind, (None, None))
    if isinstance(spec_field.get("min"), (int, float, str)) and not isinstance(spec_field.get("min"), bool):
        low = spec_field["min"]
    if isinstance(spec_field.get("max"), (int, float, str)) and not isinstance(spec_field.get("max"), bool):
        high = spec_field["max"]
    if kind in ("integer", "number") and not (isinstance(low, (int, float)) and isinstance(high, (int, float))
                                             and low < high):
        low, high = DEFAULT_RANGES[kind]
    if kind == "date" and not (_parse_date(low) and _parse_date(high) and str(low) < str(high)):
        low, high = DEFAULT_RANGES["date"]
    examples = [str(x) for x in spec_field.get("examples") or [] if isinstance(x, str) and 0 < len(x) <= dsl.FREE_STRING_MAX]
    value_labels = spec_field.get("value_labels") if isinstance(spec_field.get("value_labels"), dict) else {}
    return Lex(name=spec_field["name"], type=kind, labels=merged,
               values=list(values) if values is not None else spec_field.get("values"),
               value_labels=value_labels, examples=examples, low=low, high=high, ops=dict(ops or {}))


@lru_cache(maxsize=1)
def _catalog_alias_to_name() -> dict[str, str]:
    return {syn: op.name for op in dsl.load_catalog(CATALOG_PATH) for syn in op.synonyms}


@lru_cache(maxsize=1)
def _catalog_ops_by_type() -> dict[str, dict[str, str]]:
    """{field type: {canonical: canonical}}: every catalog operator, for texts written before a schema exists."""
    table: dict[str, dict[str, str]] = {t: {} for t in dsl.FIELD_TYPES}
    for op in dsl.load_catalog(CATALOG_PATH):
        for kind in op.types:
            table[kind][op.name] = op.name
    return table


def schema_lexicon(schema_row: dict[str, Any], spec: dict[str, Any] | None) -> list[Lex]:
    """The schema's fields with canonical operator names, enriched with the spec's labels and ranges."""
    infos = dsl.schema_fields(schema_row.get("schema", {}))
    if infos is None:
        raise UserError(f"schema {schema_row.get('id')}: not a schema built by build_schemas.py; the built-in "
                        f"teacher reads its fields from $defs.Field and $defs.Compare")
    alias_to_name = {alias: name for name, alias in (schema_row.get("operators") or {}).items()}
    fallback = _catalog_alias_to_name()
    spec_fields = {f.get("name"): f for f in (spec or {}).get("fields", []) if isinstance(f, dict)}
    spec_fields.update({f.get("name"): f for f in schema_row.get("fields", []) or [] if isinstance(f, dict)
                        and f.get("name") not in spec_fields})
    lexicon = []
    for info in infos:
        ops = {alias_to_name.get(alias) or fallback.get(alias, alias): alias for alias in info.ops}
        base = spec_fields.get(info.name, {"name": info.name})
        lexicon.append(lex_from_spec_field({**base, "name": info.name}, ops, info.type, info.values))
    return lexicon


# --------------------------------------------------------------------------------------------------------
# Values: sampling and writing them so that the exact AST value can be read back.
# --------------------------------------------------------------------------------------------------------

def _parse_date(text: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        return None


def _nice_int(rng: random.Random, low: int, high: int) -> int:
    value = rng.randint(low, high)
    span = high - low
    if span > 200 and rng.random() < 0.8:
        step = 10 ** max(0, len(str(span)) - 2)
        value = min(high, max(low, round(value / step) * step))
    return int(value)


def _sample_number(rng: random.Random, lex: Lex) -> int | float:
    low, high = lex.low, lex.high
    if lex.type == "integer":
        return _nice_int(rng, int(low), int(high))
    if rng.random() < 0.4 and high - low >= 2:
        return _nice_int(rng, int(low) + 1 if int(low) < low else int(low), int(high))
    decimals = 2 if high - low < 20 else 1
    value = round(rng.uniform(low, high), decimals)
    return int(value) if float(value).is_integer() else value


def _sample_date(rng: random.Random, lex: Lex) -> str:
    low, high = _parse_date(lex.low), _parse_date(lex.high)
    day = low + dt.timedelta(days=rng.randint(0, (high - low).days))
    return day.isoformat()


def _sample_scalar(rng: random.Random, lex: Lex) -> Any:
    if lex.type == "enum":
        return rng.choice(lex.values)
    if lex.type == "boolean":
        return rng.random() < 0.6
    if lex.type in ("integer", "number"):
        return _sample_number(rng, lex)
    if lex.type == "date":
        return _sample_date(rng, lex)
    return rng.choice(lex.examples or FALLBACK_STRINGS)


def _sample_distinct(rng: random.Random, lex: Lex, count: int) -> list[Any] | None:
    if lex.type == "enum":
        pool = list(lex.values)
    elif lex.type == "string":
        pool = list(lex.examples or FALLBACK_STRINGS)
    else:
        seen: dict[str, Any] = {}
        for _ in range(count * 6):
            v = _sample_scalar(rng, lex)
            seen.setdefault(str(v), v)
            if len(seen) == count:
                break
        pool = list(seen.values())
    if len(pool) < count:
        return None
    return rng.sample(pool, count)


def _text_fragment(rng: random.Random, text: str, op: str) -> str:
    """A piece of an example value for contains/starts_with/ends_with (kept verbatim in the request)."""
    words = [w for w in re.split(r"[\s\-]+", text) if len(w) >= 3]
    if op == "starts_with":
        return words[0] if words and rng.random() < 0.6 and text.startswith(words[0]) else text[:max(3, len(text) // 2)]
    if op == "ends_with":
        return words[-1] if words and rng.random() < 0.6 and text.endswith(words[-1]) else text[-max(3, len(text) // 2):]
    return rng.choice(words) if words else text


def _sample_value(rng: random.Random, lex: Lex, op: str) -> Any:
    if op == "between":
        pair = _sample_distinct(rng, lex, 2)
        return None if pair is None else sorted(pair, key=lambda v: (v if lex.type != "date" else str(v)))
    if op in ("in", "not_in"):
        return _sample_distinct(rng, lex, rng.choice((2, 2, 3)))
    if op in TEXT_MATCH_OPS:
        return _text_fragment(rng, rng.choice(lex.examples or FALLBACK_STRINGS), op).strip() or None
    return _sample_scalar(rng, lex)


def number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def date_text(iso: str, lang: str, rng: random.Random, terse: bool = False) -> str:
    day = _parse_date(iso)
    if day is None or terse and rng.random() < 0.8 or rng.random() < 0.45:
        return iso
    month = MONTHS[lang][day.month - 1]
    if lang == "fr":
        return f"{'1er' if day.day == 1 else day.day} {month} {day.year}"
    return f"{month} {day.day}, {day.year}" if rng.random() < 0.6 else f"{day.day} {month} {day.year}"


def enum_text(lex: Lex, value: Any, lang: str) -> str:
    spoken = lex.value_labels.get(str(value), {}).get(lang) if lex.value_labels else None
    return spoken or str(value).replace("_", " ")


# --------------------------------------------------------------------------------------------------------
# French helpers: articles, "de" contractions, elision, agreement with the entity noun.
# --------------------------------------------------------------------------------------------------------

def fr_bare(label: str) -> str:
    for article in ("le ", "la ", "les ", "l'"):
        if label.startswith(article):
            return label[len(article):]
    return label


def fr_gender(label: str) -> str | None:
    """Grammatical gender told by a label's article (None for l' and bare labels)."""
    return "m" if label.startswith("le ") else "f" if label.startswith("la ") else None


def fr_de(label: str) -> str:
    """'de' + a noun phrase with its article: du prix, de la ville, de l'âge, des charges."""
    if label.startswith("le "):
        return "du " + label[3:]
    if label.startswith("les "):
        return "des " + label[4:]
    if label.startswith(("la ", "l'")):
        return "de " + label
    return fr_elide("de", label)


def fr_elide(word: str, following: str) -> str:
    if following[:1].lower() in FR_VOWELS:
        return f"{word[:-1]}'{following}"
    return f"{word} {following}"


def _join(items: Sequence[str], last: str) -> str:
    items = list(items)
    if len(items) == 1:
        return items[0]
    return ", ".join(items[:-1]) + f" {last} " + items[-1]


def _tidy(text: str, lang: str, capitalize: bool = True) -> str:
    text = re.sub(r"\s+", " ", text).strip()
    text = re.sub(r"\s+([,.;])", r"\1", text)
    text = re.sub(r",,", ",", text)
    if lang == "fr":
        text = re.sub(r"\s*([?!])$", r" \1", text)
    else:
        text = re.sub(r"\s+([?!])$", r"\1", text)
    return text[:1].upper() + text[1:] if capitalize else text


# --------------------------------------------------------------------------------------------------------
# Realization: a Plan (or a refusal) -> request text in one language and style.
# --------------------------------------------------------------------------------------------------------

class Realizer:
    """Writes one request. A new one per request: it fixes the language, style, register and entity noun."""

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
            return {"list": ", ".join(texts), "or_list": _join(texts, or_word), "nor_list": nor_list or ""}
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
            return _join(parts, "and" if self.lang == "en" else "et")
        parts = [self.cond(child, nested=True) for child in body]
        if self.style == "terse":
            return self.pick((" or ", " | ") if self.lang == "en" else (" ou ", " | ")).join(parts)
        # An "or" inside an "and" must say where it starts ("A and either B or C"), or it reads as (A and B) or C.
        if len(parts) == 2 and (nested or self.rng.random() < 0.4):
            return (f"either {parts[0]} or {parts[1]}" if self.lang == "en"
                    else f"soit {parts[0]}, soit {parts[1]}")
        return _join(parts, "or" if self.lang == "en" else "ou")

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
            return "the " + _join(labels, "and")
        return _join(labels, "et")

    # -- whole requests ------------------------------------------------------------------------------------
    def request(self, plan: Plan) -> str:
        if plan.aggregate is not None:
            text = self.aggregate_request(plan)
        elif self.style == "terse":
            text = self.terse_request(plan)
        else:
            text = self.list_request(plan)
        return _tidy(text, self.lang, capitalize=self.style != "terse" or self.rng.random() < 0.3)

    def _verb(self) -> str:
        return self.pick(EN_VERBS) if self.lang == "en" else self.pick(FR_VERBS[self.register])

    def _ask(self) -> str:
        return self.pick(EN_ASK) if self.lang == "en" else self.pick(FR_ASK[self.register])

    def list_request(self, plan: Plan) -> str:
        en = self.lang == "en"
        conds = self.cond_suffix(plan.cond)
        of_form = bool(plan.select) and self.rng.random() < 0.6  # "the price and city of listings ..."
        limit_prefix = plan.limit is not None and self.rng.random() < 0.5
        if limit_prefix:
            first = "premiers" if self.gender == "m" else "premières"
            if en:
                options = ["the first {n} {e}", "the top {n} {e}", "{n} {e}"] + ([] if of_form else ["up to {n} {e}"])
            else:
                options = ["{n} {e}", f"les {{n}} {first} {{e}}"] + ([] if of_form else ["jusqu'à {n} {e}"])
            obj = self.pick(options).format(n=plan.limit, e=self.entity)
        elif en:
            obj = self.pick((self.entity, f"all {self.entity}", f"the {self.entity}", f"all the {self.entity}"))
        else:
            every = "tous" if self.gender == "m" else "toutes"
            obj = self.pick((f"les {self.entity}", f"{every} les {self.entity}"))
        tail = self.sort_suffix(plan.sort) + ("" if plan.limit is None or limit_prefix
                                              else self.limit_suffix(plan.limit))
        if not plan.select:
            head, end = self._head(obj, question_ok=True)
            return head + conds + tail + end
        fields = self.field_list(plan.select)
        if of_form:
            if en:
                of_obj = f"{fields} of {obj}"
            else:
                of_obj = f"{fields} " + (f"des {obj[4:]}" if obj.startswith("les ") else f"de {obj}")
            head, end = self._head(of_obj, question_ok=True)
            return head + conds + tail + end
        extra = (self.pick((", only {s}", ", returning {s}", " (just {s})", ", showing {s}")) if en else
                 self.pick((", seulement {s}", ", avec juste {s}", " (uniquement {s})", ", en affichant {s}")))
        head, end = self._head(obj, question_ok=True)
        return head + conds + extra.format(s=fields) + tail + end

    def _head(self, obj: str, question_ok: bool) -> tuple[str, str]:
        """(start of the sentence up to the object, sentence end)."""
        if self.style == "question" and question_ok:
            if self.lang == "en":
                if self.rng.random() < 0.2 and not obj.startswith(("the ", "all", "up to")) and obj[:1].isalpha():
                    return f"Any {obj}", "?"
                return f"{self._ask()} {obj}", "?"
            if self.rng.random() < 0.25 and obj.startswith("les "):
                which = "Quels" if self.gender == "m" else "Quelles"
                return f"{which} sont {obj}", " ?"
            return f"{self._ask()} {obj}", " ?"
        end = "" if self.rng.random() < 0.6 else "."
        return f"{self._verb()} {obj}", end

    def terse_request(self, plan: Plan) -> str:
        parts = [self.entity]
        if plan.select:
            parts.append(self.pick(("[{s}]", "fields {s}", "select {s}") if self.lang == "en"
                                   else ("[{s}]", "champs {s}", "colonnes {s}")).format(s=self.field_list(plan.select)))
        conds = ""
        if plan.cond is not None:
            # After a field list the condition needs a visible separator ("[price, city] where ...").
            lead = self.pick((": ", " where ", "; ") if self.lang == "en" else (" : ", " où ", " ; ")) \
                if plan.select else self.pick((" ", ": ", " where ") if self.lang == "en" else (" ", " : ", " où "))
            conds = lead + self.cond(plan.cond)
        text = " ".join(parts) + conds + self.sort_suffix(plan.sort)
        if plan.limit is not None:
            text += self.limit_suffix(plan.limit)
        return text

    def group_suffix(self, group_by: list[Lex]) -> str:
        if not group_by:
            return ""
        labels = [self.label(lex) for lex in group_by]
        if self.lang == "fr":
            labels = [fr_bare(x) for x in labels]
        joined = _join(labels, "and" if self.lang == "en" else "et")
        if self.style == "terse":
            return self.pick((" by {g}", " group by {g}", " per {g}") if self.lang == "en"
                             else (" par {g}", " groupé par {g}")).format(g=joined)
        if self.lang == "en":
            return self.pick((" per {g}", " by {g}", ", grouped by {g}", ", broken down by {g}",
                              " for each {g}")).format(g=joined)
        return self.pick((" par {g}", ", regroupé par {g}", " pour chaque {g}", ", ventilé par {g}")).format(g=joined)

    def aggregate_request(self, plan: Plan) -> str:
        function, lex = plan.aggregate
        conds, group = self.cond_suffix(plan.cond), self.group_suffix(plan.group_by)
        en = self.lang == "en"
        if self.style == "terse":
            if function == "count":
                head = self.pick(("count {e}", "count of {e}", "number of {e}") if en
                                 else (f"nombre {fr_de(self.entity)}", "compte {e}", "nb {e}")).format(e=self.entity)
            else:
                name = self.pick((EN_AGG_TERSE if en else FR_AGG_TERSE)[function])
                label = self.label(lex)
                head = self.pick((f"{name} {label} {self.entity}", f"{name}({label}) {self.entity}"))
            return head + conds + group
        if function == "count":
            if en:
                if self.style == "question":
                    form = self.pick(("How many {e}{c}{g}?", "How many {e} are there{c}{g}?",
                                      "What is the number of {e}{c}{g}?", "Can you count the {e}{c}{g}?"))
                else:
                    form = self.pick(("Count the {e}{c}{g}", "Count {e}{c}{g}", "Give me the number of {e}{c}{g}",
                                      "Get the count of {e}{c}{g}", "Tell me the number of {e}{c}{g}"))
                return form.format(e=self.entity, c=conds, g=group)
            de_e = fr_elide("de", self.entity)
            if self.style == "question":
                form = self.pick((f"Combien {de_e}{{c}}{{g}} ?", f"Combien y a-t-il {de_e}{{c}}{{g}} ?",
                                  f"Quel est le nombre {de_e}{{c}}{{g}} ?",
                                  ("Peux-tu compter" if self.register == "tu" else "Pouvez-vous compter")
                                  + " les {e}{c}{g} ?"))
            else:
                form = self.pick((("Compte" if self.register == "tu" else "Comptez") + " les {e}{c}{g}",
                                  ("Donne-moi" if self.register == "tu" else "Donnez-moi") + f" le nombre {de_e}{{c}}{{g}}",
                                  ("Calcule" if self.register == "tu" else "Calculez") + f" le nombre {de_e}{{c}}{{g}}"))
            return form.format(e=self.entity, c=conds, g=group)
        label = self.label(lex)
        if en:
            bank = (EN_DATE_AGG.get(function) if lex.type == "date" else None) or EN_AGG[function]
            agg = self.pick(bank).format(f=label)
            link = self.pick(("of", "for", "across", "among"))
            if self.style == "question":
                form = self.pick(("What is the {a} {l} {e}{c}{g}?", "What's the {a} {l} {e}{c}{g}?",
                                  "Can you compute the {a} {l} {e}{c}{g}?"))
            else:
                form = self.pick(("Compute the {a} {l} {e}{c}{g}", "Give me the {a} {l} {e}{c}{g}",
                                  "Calculate the {a} {l} {e}{c}{g}", "Show the {a} {l} {e}{c}{g}",
                                  "Get the {a} {l} {e}{c}{g}"))
            return form.format(a=agg, l=link, e=self.entity, c=conds, g=group)
        noun, gender = self.rng.choice(FR_AGG[function])
        agg = f"{noun} {fr_de(label)}"
        if self.style == "question":
            which = "Quel" if gender == "m" else "Quelle"
            form = self.pick((f"{which} est {{a}} des {{e}}{{c}}{{g}} ?",
                              ("Peux-tu calculer" if self.register == "tu" else "Pouvez-vous calculer")
                              + " {a} des {e}{c}{g} ?"))
        else:
            verb = self.pick(("Calcule", "Donne-moi", "Affiche") if self.register == "tu"
                             else ("Calculez", "Donnez-moi", "Affichez"))
            form = verb + self.pick((" {a} des {e}{c}{g}", " {a} pour les {e}{c}{g}"))
        return form.format(a=agg, e=self.entity, c=conds, g=group)


# --------------------------------------------------------------------------------------------------------
# Sampling plans (valid ASTs) from a lexicon.
# --------------------------------------------------------------------------------------------------------

def usable_ops(lex: Lex) -> list[str]:
    """Canonical operators this field can use in generated requests (see the module docstring)."""
    ops = [op for op in lex.ops if op in dsl_ops_for_type(lex.type)]
    if lex.type == "boolean":
        return [op for op in ops if op == "eq"]
    if lex.type == "date":
        ops = [op for op in ops if not (op == "gt" and "after" in lex.ops) and not (op == "lt" and "before" in lex.ops)]
    if lex.type == "string" and len(lex.examples) < 2:
        ops = [op for op in ops if op not in ("in", "not_in")]
    if lex.type == "enum" and len(lex.values or []) < 2:
        ops = [op for op in ops if op not in ("in", "not_in")]
    return ops


def dsl_ops_for_type(kind: str) -> set[str]:
    return set(_catalog_ops_by_type().get(kind, {}))


OP_WEIGHTS = {"eq": 3.0, "ne": 1.0, "gt": 2.0, "gte": 1.5, "lt": 2.0, "lte": 1.5, "between": 1.5, "in": 1.5,
              "not_in": 1.0, "contains": 2.0, "starts_with": 1.2, "ends_with": 1.0, "before": 2.0, "after": 2.0}


class PlanSampler:
    def __init__(self, rng: random.Random, lexicon: list[Lex]):
        self.rng = rng
        self.lexicon = lexicon
        self.filterable = [lex for lex in lexicon if usable_ops(lex)]

    def leaf(self, exclude: set[str]) -> Leaf | None:
        candidates = [lex for lex in self.filterable if lex.name not in exclude]
        if not candidates:
            return None
        for _ in range(6):
            lex = self.rng.choice(candidates)
            ops = usable_ops(lex)
            op = self.rng.choices(ops, weights=[OP_WEIGHTS.get(o, 1.0) for o in ops])[0]
            value = _sample_value(self.rng, lex, op)
            if value is not None:
                exclude.add(lex.name)
                return Leaf(lex, op, value)
        return None

    def cond(self, count: int) -> Cond | None:
        used: set[str] = set()
        leaves = [leaf for leaf in (self.leaf(used) for _ in range(count)) if leaf is not None]
        if not leaves:
            return None
        if len(leaves) == 1:
            return ("not", leaves[0]) if self.rng.random() < 0.1 else leaves[0]
        roll = self.rng.random()
        if len(leaves) == 3 and roll < 0.3:
            return ("and", [leaves[0], ("or", leaves[1:])])
        if roll < 0.7:
            children: list[Cond] = list(leaves)
            if self.rng.random() < 0.12:
                children[-1] = ("not", children[-1])
            return ("and", children)
        return ("or", leaves)

    def plan(self) -> Plan:
        rng = self.rng
        numeric = [lex for lex in self.lexicon if lex.type in ("integer", "number")]
        if rng.random() < 0.18:
            plan = Plan(cond=self.cond(rng.choices((0, 1, 2), weights=(0.35, 0.45, 0.2))[0]))
            function = rng.choice(("count", "count", "sum", "avg", "min", "max")) if numeric else "count"
            target = None
            if function != "count":
                dated = [lex for lex in self.lexicon if lex.type == "date"]
                pool = numeric + (dated if function in ("min", "max") else [])
                target = rng.choice(pool)
            plan.aggregate = (function, target)
            groupable = [lex for lex in self.lexicon if lex.type in ("enum", "boolean", "string")]
            if groupable and rng.random() < 0.4:
                plan.group_by = rng.sample(groupable, 1 if len(groupable) < 2 or rng.random() < 0.85 else 2)
            return plan
        plan = Plan(cond=self.cond(rng.choices((0, 1, 2, 3), weights=(0.12, 0.38, 0.32, 0.18))[0]))
        if rng.random() < 0.3:
            plan.select = rng.sample(self.lexicon, min(len(self.lexicon), rng.choice((1, 2, 2, 3))))
        sortable = [lex for lex in self.lexicon if lex.type != "boolean"]
        if sortable and rng.random() < 0.3:
            keys = rng.sample(sortable, 2 if len(sortable) > 1 and rng.random() < 0.15 else 1)
            plan.sort = [(lex, rng.choice(("asc", "desc"))) for lex in keys]
        if rng.random() < (0.45 if plan.sort else 0.15):
            plan.limit = rng.choice((1, 3, 5, 5, 10, 10, 20, 25, 50, 100))
        if plan.cond is None and not (plan.select or plan.sort or plan.limit):
            plan.limit = rng.choice((5, 10, 20))
        return plan


def cond_ast(node: Cond) -> dict[str, Any]:
    if isinstance(node, Leaf):
        return {"field": node.lex.name, "op": node.lex.ops[node.op], "value": node.value}
    kind, body = node
    if kind == "not":
        return {"not": cond_ast(body)}
    return {kind: [cond_ast(child) for child in body]}


def plan_ast(plan: Plan) -> dict[str, Any]:
    ast: dict[str, Any] = {"type": "query"}
    if plan.cond is not None:
        ast["filter"] = cond_ast(plan.cond)
    if plan.select:
        ast["select"] = [lex.name for lex in plan.select]
    if plan.aggregate is not None:
        function, lex = plan.aggregate
        ast["aggregate"] = {"function": function} if lex is None else {"function": function, "field": lex.name}
    if plan.group_by:
        ast["group_by"] = [lex.name for lex in plan.group_by]
    if plan.sort:
        ast["sort"] = [{"field": lex.name, "order": order} for lex, order in plan.sort]
    if plan.limit is not None:
        ast["limit"] = plan.limit
    return ast


# --------------------------------------------------------------------------------------------------------
# Refusals: requests the schema cannot express.
# --------------------------------------------------------------------------------------------------------

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

    def unknown_field(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        lex = self.rng.choice(self.missing_fields)
        op = {"integer": "gt", "number": "lt", "date": "after"}.get(lex.type, "eq")
        value = _sample_value(self.rng, lex, op)
        text = real.leaf(Leaf(lex, op, value)) + self._extra_cond(real)
        head, end = real._head(self.rng.choice((f"the {real.entity}", real.entity)) if real.lang == "en"
                               else f"les {real.entity}", question_ok=True)
        label = lex.labels[real.lang][0]
        if real.lang == "en":
            reason = f"The schema has no field for {label}."
            suggestion = f"Filter on a field it has, such as {_names(self.lexicon)}."
        else:
            reason = f"Le schéma n'a pas de champ pour {fr_bare(label)}."
            suggestion = f"Filtrez sur un champ existant, par exemple {_names(self.lexicon)}."
        return _tidy(f"{head} {text}{end}", real.lang), _refusal(reason, suggestion)

    def missing_operator(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        lex, op = self.rng.choice(self.missing_ops)
        value = _sample_value(self.rng, lex, op)
        text = real.leaf(Leaf(lex, op, value)) + self._extra_cond(real)
        head, end = real._head(real.entity if real.lang == "en" else f"les {real.entity}", question_ok=True)
        if op in TEXT_MATCH_OPS:
            what_en = {"contains": "text search", "starts_with": "prefix match", "ends_with": "suffix match"}[op]
            what_fr = {"contains": "recherche de texte", "starts_with": "recherche par début",
                       "ends_with": "recherche par fin"}[op]
        else:
            what_en, what_fr = "greater/less-than comparison", "comparaison supérieur/inférieur"
        if real.lang == "en":
            reason = f"This schema has no {what_en} operator for {lex.name}."
            suggestion = f"Filter {lex.name} on an exact value instead."
        else:
            reason = f"Ce schéma n'a pas d'opérateur de {what_fr} pour {lex.name}."
            suggestion = f"Filtrez {lex.name} sur une valeur exacte."
        return _tidy(f"{head} {text}{end}", real.lang), _refusal(reason, suggestion)

    def write_operation(self, real: Realizer) -> tuple[str, dict[str, Any]]:
        action = self.rng.choice(WRITE_ACTIONS)
        sampler = PlanSampler(self.rng, self.lexicon)
        leaf = sampler.leaf(set())
        real.style = "imperative"
        conds = (" " + real.leaf(leaf)) if leaf is not None and action in ("delete", "update") else ""
        lex = self.rng.choice(self.lexicon)
        value = real.value(lex, _sample_scalar(self.rng, lex))
        label = real.label(lex)
        e = real.entity
        tu = real.register == "tu"
        if real.lang == "en":
            text = self.rng.choice({
                "delete": [f"Delete all {e}{conds}", f"Remove the {e}{conds}", f"Erase every one of the {e}{conds}",
                           f"Purge {e}{conds}"],
                "update": [f"Update the {label} of {e}{conds} to {value}", f"Set {label} to {value} for {e}{conds}",
                           f"Change the {label} to {value} for all {e}{conds}"],
                "insert": [f"Add a new record to {e} with {label} {value}",
                           f"Insert a row into {e} where {label} is {value}", f"Create a new entry in {e}"],
                "join": [f"Join {e} with the customers table on {label}",
                         f"Combine {e} with the suppliers table", f"Merge {e} with last year's archive by {label}"],
            }[action])
            reason = {"delete": "This DSL only reads records; it cannot delete them.",
                      "update": "This DSL only reads records; it cannot modify them.",
                      "insert": "This DSL only reads records; it cannot create new ones.",
                      "join": "This DSL queries a single collection; it cannot join it with another."}[action]
            suggestion = f"Ask to list the matching {e} instead."
        else:
            text = self.rng.choice({
                "delete": [("Supprime" if tu else "Supprimez") + f" les {e}{conds}",
                           ("Efface" if tu else "Effacez") + f" les {e}{conds}",
                           ("Retire" if tu else "Retirez") + f" les {e}{conds}"],
                "update": [("Mets à jour" if tu else "Mettez à jour") + f" {label} des {e}{conds} avec la valeur {value}",
                           ("Passe" if tu else "Passez") + f" {label} à {value} pour les {e}{conds}",
                           ("Modifie" if tu else "Modifiez") + f" {label} des {e}{conds} : {value}"],
                "insert": [("Ajoute" if tu else "Ajoutez") + f" un nouvel enregistrement aux {e} avec {label} à {value}",
                           ("Insère" if tu else "Insérez") + f" une ligne dans les {e} avec {fr_bare(label)} = {value}",
                           ("Crée" if tu else "Créez") + f" une nouvelle entrée dans les {e}"],
                "join": [("Fais" if tu else "Faites") + f" une jointure entre les {e} et les clients sur {fr_bare(label)}",
                         ("Croise" if tu else "Croisez") + f" les {e} avec la table des fournisseurs",
                         ("Fusionne" if tu else "Fusionnez") + f" les {e} avec l'archive de l'an dernier"],
            }[action])
            reason = {"delete": "Ce DSL ne fait que lire les données : il ne peut pas supprimer.",
                      "update": "Ce DSL ne fait que lire les données : il ne peut rien modifier.",
                      "insert": "Ce DSL ne fait que lire les données : il ne peut rien ajouter.",
                      "join": "Ce DSL interroge une seule collection : il ne fait pas de jointure."}[action]
            suggestion = f"Demandez plutôt d'afficher ces {e}."
        return _tidy(text, real.lang), _refusal(reason, suggestion)


def _refusal(reason: str, suggestion: str) -> dict[str, Any]:
    return {"type": "refusal", "reason": _clip(reason), "suggestion": _clip(suggestion or reason)}


# --------------------------------------------------------------------------------------------------------
# The teacher.
# --------------------------------------------------------------------------------------------------------

def _rng(*parts: Any) -> random.Random:
    # random.Random seeded with a str is stable across processes (it hashes with SHA-512, not hash()).
    return random.Random(":".join(str(p) for p in parts))


def _entity(spec: dict[str, Any] | None) -> dict[str, Any]:
    entity = (spec or {}).get("entity")
    return entity if isinstance(entity, dict) else FALLBACK_ENTITY


class GrammarTeacher(Teacher):
    """No LLM: samples ASTs from the schema, writes EN/FR requests from templates, judges canonically."""

    name = "grammar"
    deterministic = True  # the same seed gives the same pairs: resumed runs regenerate instead of topping up

    def __init__(self, seed: int, refusal_fraction: float = DEFAULT_REFUSAL_FRACTION):
        self.seed = seed
        self.refusal_fraction = check_refusal_fraction(refusal_fraction)
        self.model = None
        self.concurrency = 1

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": None, "seed": self.seed, "refusal_fraction": self.refusal_fraction}

    # -- stage 1 ---------------------------------------------------------------------------------------------
    async def domain_spec(self, prompt_row: dict[str, Any], examples_per_schema: int, seed: int) -> dict[str, Any]:
        return self.domain_spec_sync(prompt_row, examples_per_schema, seed)

    def domain_spec_sync(self, prompt_row: dict[str, Any], examples_per_schema: int, seed: int) -> dict[str, Any]:
        pool = prompt_row.get("fields")
        where = f"domain prompt '{prompt_row.get('id')}'"
        if not isinstance(pool, list) or len(pool) < FIELDS_PER_SPEC[0]:
            raise UserError(f"{where}: the built-in teacher needs a 'fields' pool of at least "
                            f"{FIELDS_PER_SPEC[0]} candidate fields (see data/domain_prompts.jsonl)")
        dsl.check_fields(pool, where)
        rng = _rng(self.seed, "spec", prompt_row.get("id"), seed)
        count = rng.randint(FIELDS_PER_SPEC[0], min(FIELDS_PER_SPEC[1], len(pool)))
        chosen = set(rng.sample(range(len(pool)), count))
        by_type = {}
        for i, f in enumerate(pool):
            by_type.setdefault(f["type"], []).append(i)
        for wanted in ("enum", "integer", "number"):
            # Keep at least one categorical and one numeric field when the pool has them: richer requests.
            if wanted in by_type and not chosen & set(by_type[wanted]) and (wanted != "number" or "integer" not in by_type):
                chosen.add(rng.choice(by_type[wanted]))
        while len(chosen) > FIELDS_PER_SPEC[1]:
            chosen.remove(rng.choice(sorted(chosen)))
        fields = [self._spec_field(f) for i, f in enumerate(pool) if i in chosen]
        others = [self._spec_field(f) for i, f in enumerate(pool) if i not in chosen]
        body: dict[str, Any] = {"domain": prompt_row["domain"], "description": prompt_row.get("description", "")}
        if prompt_row.get("language_hint"):
            body["language_hint"] = prompt_row["language_hint"]
        if isinstance(prompt_row.get("entity"), dict):
            body["entity"] = prompt_row["entity"]
        body["fields"] = fields
        body["other_fields"] = others
        body["example_queries"] = self._example_queries(body, examples_per_schema, rng)
        return body

    @staticmethod
    def _spec_field(f: dict[str, Any]) -> dict[str, Any]:
        keys = ("name", "type", "description", "values", "min", "max", "labels", "value_labels", "examples")
        return {k: f[k] for k in keys if k in f}

    def _example_queries(self, body: dict[str, Any], count: int, rng: random.Random) -> list[str]:
        table = _catalog_ops_by_type()
        lexicon = [lex_from_spec_field(f, table.get(f["type"], {"eq": "eq"})) for f in body["fields"]]
        sampler = PlanSampler(rng, lexicon)
        queries: list[str] = []
        for i in range(count * 4):
            if len(queries) >= count:
                break
            text = Realizer(rng, LANGUAGES[i % 2], _entity(body)).request(sampler.plan())
            if normalize_query(text) not in {normalize_query(q) for q in queries}:
                queries.append(text)
        return queries

    # -- stage 3 ---------------------------------------------------------------------------------------------
    async def generate_pairs(self, schema_row: dict[str, Any], spec: dict[str, Any], n: int,
                             seed: int) -> list[GeneratedPair]:
        return self.generate_pairs_sync(schema_row, spec, n, seed)

    def generate_pairs_sync(self, schema_row: dict[str, Any], spec: dict[str, Any] | None, n: int,
                            seed: int) -> list[GeneratedPair]:
        rng = _rng(self.seed, "pairs", schema_row.get("id"), seed)
        lexicon = schema_lexicon(schema_row, spec)
        entity = _entity(spec)
        names = {lex.name for lex in lexicon}
        missing = [lex_from_spec_field(f) for f in (spec or {}).get("other_fields", []) or []
                   if isinstance(f, dict) and f.get("name") not in names and f.get("type") in dsl.FIELD_TYPES]
        if not missing:
            missing = [lex_from_spec_field(f) for f in GENERIC_MISSING_FIELDS if f["name"] not in names]
        sampler = PlanSampler(rng, lexicon)
        refusals = RefusalWriter(rng, lexicon, missing)
        n_refusals = round(n * self.refusal_fraction)
        kinds = ["refusal"] * n_refusals + ["query"] * (n - n_refusals)
        languages = [LANGUAGES[i % 2] for i in range(n)]
        rng.shuffle(kinds)
        rng.shuffle(languages)
        pairs: list[GeneratedPair] = []
        seen: set[str] = set()
        for kind, lang in zip(kinds, languages):
            for _ in range(MAX_TRIES_PER_PAIR):
                if kind == "refusal":
                    query, ast = refusals.write(lang, entity)
                else:
                    plan = sampler.plan()
                    query, ast = Realizer(rng, lang, entity).request(plan), plan_ast(plan)
                key = normalize_query(query)  # the stage drops requests equal up to case and punctuation
                if key not in seen:
                    seen.add(key)
                    pairs.append(GeneratedPair(query=query, language=lang, ast=ast, kind=kind))
                    break
        return pairs

    # -- evaluation ------------------------------------------------------------------------------------------
    async def judge(self, schema: dict[str, Any], query: str, gold_ast: dict[str, Any] | None,
                    student_ast: dict[str, Any] | None, student_raw: str) -> Verdict:
        if gold_ast is None:
            return Verdict(accept=False, canonical_ast=None, reason="no gold AST to compare with")
        accept = canonical.semantic_match(gold_ast, student_ast, dsl.range_aliases(schema))
        reason = "same meaning as the gold AST" if accept else "differs from the gold AST"
        return Verdict(accept=accept, canonical_ast=gold_ast, reason=reason)


__all__ = ["GrammarTeacher", "Realizer", "PlanSampler", "Lex", "Leaf", "Plan", "schema_lexicon", "plan_ast",
           "lex_from_spec_field", "date_text", "enum_text", "number_text"]
