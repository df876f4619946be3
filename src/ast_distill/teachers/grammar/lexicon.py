"""Fields as the built-in teacher sees them: a schema's types and operators plus a spec's words (labels,
value labels, ranges, string examples), and the operator catalog by field type."""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from ... import dsl
from ...config import REPO_ROOT
from ...errors import UserError
from ...records import LANGUAGES
from .values import parse_date

CATALOG_PATH = REPO_ROOT / "data" / "operator_catalog.json"
DEFAULT_RANGES: dict[str, tuple[Any, Any]] = {
    "integer": (0, 100), "number": (0, 1000), "date": ("2020-01-01", "2025-12-31")}


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
    if kind == "date" and not (parse_date(low) and parse_date(high) and str(low) < str(high)):
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
def catalog_ops_by_type() -> dict[str, dict[str, str]]:
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
