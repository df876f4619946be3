"""The DSL: operator catalog, schema template, building one JSON Schema per domain, validating ASTs.

A schema's Compare is an ``anyOf`` of one variant per (field, value shape): ``{"field": {"const": F},
"op": {"enum": [aliases]}, "value": <typed>}``, so a schema-valid AST is also well typed. Operator meanings
travel in each variant's ``op.description`` as ``alias: meaning | alias: meaning``; ``schema_fields``
reads the fields back from a built schema, which is all the compact prompt rendering and the built-in
teacher need.
"""
from __future__ import annotations

import copy
import json
import random
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import jsonschema
from jsonschema import Draft202012Validator
from jsonschema.protocols import Validator

from .errors import UserError
from .jsonl import read_json, read_jsonl
from .schema_checks import SchemaContext, bad_ref, why_empty

FIELD_TYPES = ("string", "enum", "integer", "number", "date", "boolean")
VALUE_SHAPES = ("scalar", "list", "range")
DATE_PATTERN = r"^\d{4}-\d{2}-\d{2}$"
FREE_STRING_MAX = 48  # bounds free strings so constrained decoding cannot loop inside one
LIST_MAX_ITEMS = 8
ALWAYS_KEPT_OPERATOR = "eq"  # every field type supports it, so every field stays filterable


@dataclass(frozen=True)
class Operator:
    name: str
    value: str
    types: tuple[str, ...]
    description: str
    synonyms: tuple[str, ...]
    symbol: str = ""  # the short form compact prompts show (">=", "in list", ...)


@dataclass
class FieldInfo:
    """A field as a schema states it: what the prompt renderer and the built-in teacher read."""
    name: str
    type: str
    description: str = ""
    values: list[Any] | None = None
    minimum: float | None = None
    maximum: float | None = None
    ops: dict[str, str] = field(default_factory=dict)  # alias -> value shape
    op_meanings: dict[str, str] = field(default_factory=dict)  # alias -> meaning
    op_symbols: dict[str, str] = field(default_factory=dict)  # alias -> short form, "" when unknown


def load_catalog(path: str | Path) -> list[Operator]:
    data = read_json(path)
    ops = data.get("operators") if isinstance(data, dict) else None
    if not isinstance(ops, list) or not ops:
        raise UserError(f"{path}: expected {{\"operators\": [...]}} with at least one operator")
    catalog: list[Operator] = []
    for i, raw in enumerate(ops):
        where = f"{path}: operators[{i}]"
        try:
            op = Operator(name=raw["name"], value=raw["value"], types=tuple(raw["types"]),
                          description=raw["description"], synonyms=tuple(raw["synonyms"]),
                          symbol=str(raw.get("symbol", "")))
        except (KeyError, TypeError):
            raise UserError(f"{where}: needs name, value, types, description, synonyms") from None
        if op.value not in VALUE_SHAPES or not set(op.types) <= set(FIELD_TYPES) or not op.synonyms:
            raise UserError(f"{where}: value must be one of {VALUE_SHAPES}, types within {FIELD_TYPES}, "
                            f"synonyms non-empty")
        catalog.append(op)
    if ALWAYS_KEPT_OPERATOR not in {op.name for op in catalog}:
        raise UserError(f"{path}: the catalog must define '{ALWAYS_KEPT_OPERATOR}'")
    return catalog


def validator_class(schema: dict[str, Any]) -> type[Validator]:
    """The jsonschema validator of the draft the schema's own `$schema` names (draft 2020-12 when it names none):
    a draft-07 schema's tuple-form `items: [...]` is valid there and not in 2020-12."""
    return jsonschema.validators.validator_for(schema, default=Draft202012Validator)


def check_json_schema(schema: Any, where: str) -> None:
    """A one-line UserError unless `schema` is a valid JSON Schema of its draft (`$schema`; default 2020-12) whose
    `$ref`s are internal and resolve, and whose root admits a value (schema_checks.py)."""
    if not isinstance(schema, dict):
        raise UserError(f"{where}: a JSON Schema must be a JSON object")
    try:
        validator_class(schema).check_schema(schema)
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.path) or "(root)"
        raise UserError(f"{where}: not a valid JSON Schema at {path}: {exc.message}") from None
    context = SchemaContext(validator_class(schema)(schema))
    problem = bad_ref(schema, context)
    if problem is None:
        empty = why_empty(schema, context)
        problem = None if empty is None else f"the schema admits no value at all ({empty}); fix that part"
    if problem is not None:
        raise UserError(f"{where}: {problem}")


def load_template(path: str | Path) -> dict[str, Any]:
    template = read_json(path)
    placeholders = {"__FIELD__", "__COMPARE__"}
    defs = template.get("$defs", {}) if isinstance(template, dict) else {}
    if not placeholders <= set(map(str, defs.values())):
        raise UserError(f"{path}: the template's $defs must hold the placeholders Field=\"__FIELD__\" and "
                        f"Compare=\"__COMPARE__\"")
    filled = copy.deepcopy(template)
    filled["$defs"]["Field"] = {"enum": ["x"]}
    filled["$defs"]["Compare"] = {"type": "object"}
    check_json_schema(filled, str(path))
    return template


def check_fields(fields: Any, where: str) -> list[dict[str, Any]]:
    """Fields of a domain spec: [{name, type, description, values?, min?, max?}], names unique."""
    if not isinstance(fields, list) or not fields:
        raise UserError(f"{where}: 'fields' must be a non-empty list")
    seen: set[str] = set()
    for i, f in enumerate(fields):
        if not isinstance(f, dict) or not isinstance(f.get("name"), str) or not f["name"]:
            raise UserError(f"{where}: fields[{i}] needs a non-empty string 'name'")
        if f.get("type") not in FIELD_TYPES:
            raise UserError(f"{where}: field '{f['name']}' has type {f.get('type')!r}; use one of {FIELD_TYPES}")
        if f["type"] == "enum" and (not isinstance(f.get("values"), list) or len(f["values"]) < 2):
            raise UserError(f"{where}: enum field '{f['name']}' needs a 'values' list of at least 2")
        if f["name"] in seen:
            raise UserError(f"{where}: field name '{f['name']}' appears twice")
        seen.add(f["name"])
    return fields


def choose_operators(catalog: list[Operator], rng: random.Random, min_ops: int,
                     max_ops: int) -> dict[str, str]:
    """{canonical name: alias}: eq always, then others up to a count in [min_ops, max_ops]."""
    if not 1 <= min_ops <= max_ops:
        raise UserError(f"min_operators ({min_ops}) must be >= 1 and <= max_operators ({max_ops})")
    by_name = {op.name: op for op in catalog}
    count = min(rng.randint(min_ops, max_ops), len(catalog))
    others = [op.name for op in catalog if op.name != ALWAYS_KEPT_OPERATOR]
    chosen = [ALWAYS_KEPT_OPERATOR] + rng.sample(others, count - 1)
    order = [op.name for op in catalog]
    return {name: rng.choice(by_name[name].synonyms) for name in sorted(chosen, key=order.index)}


def _scalar_schema(f: dict[str, Any]) -> dict[str, Any]:
    kind = f["type"]
    if kind == "enum":
        return {"enum": list(f["values"])}
    if kind == "date":
        return {"type": "string", "pattern": DATE_PATTERN}
    if kind == "string":
        return {"type": "string", "minLength": 1, "maxLength": FREE_STRING_MAX}
    return {"type": kind}  # integer, number, boolean


def _value_schema(f: dict[str, Any], shape: str) -> dict[str, Any]:
    scalar = _scalar_schema(f)
    if shape == "scalar":
        return scalar
    if shape == "range":
        return {"type": "array", "items": scalar, "minItems": 2, "maxItems": 2}
    return {"type": "array", "items": scalar, "minItems": 1, "maxItems": LIST_MAX_ITEMS}


def _meaning(op: Operator) -> str:
    """How a schema states an operator: "[symbol] description" (the symbol is optional)."""
    return f"[{op.symbol}] {op.description}" if op.symbol else op.description


def _split_meaning(text: str) -> tuple[str, str]:
    """(symbol, description) of a stated operator meaning."""
    if text.startswith("[") and "] " in text:
        symbol, _, rest = text[1:].partition("] ")
        return symbol, rest
    return "", text


def _field_line(f: dict[str, Any]) -> str:
    return f"{f['name']} ({f['type']}): {f.get('description', '')}".strip()


def build_schema(template: dict[str, Any], domain: str, description: str, fields: list[dict[str, Any]],
                 operators: dict[str, str], catalog: list[Operator]) -> dict[str, Any]:
    """Fill the template for one domain: Field enum and typed Compare variants."""
    by_name = {op.name: op for op in catalog}
    variants: list[dict[str, Any]] = []
    for f in fields:
        for shape in VALUE_SHAPES:
            ops = [(alias, by_name[name]) for name, alias in operators.items()
                   if by_name[name].value == shape and f["type"] in by_name[name].types]
            if not ops:
                continue
            variants.append({
                "type": "object",
                "title": f["name"],
                "description": f.get("description", ""),
                "properties": {
                    "field": {"const": f["name"]},
                    "op": {"enum": [a for a, _ in ops],
                           "description": " | ".join(f"{a}: {_meaning(op)}" for a, op in ops)},
                    "value": _value_schema(f, shape),
                },
                "required": ["field", "op", "value"],
                "additionalProperties": False,
            })
    schema = copy.deepcopy(template)
    op_lines = "; ".join(f"{alias} = {_meaning(by_name[name])}" for name, alias in operators.items())
    schema["title"] = f"{domain} query DSL"
    schema["description"] = (f"{description} Fields: " + "; ".join(_field_line(f) for f in fields)
                             + f". Operators: {op_lines}.")
    schema["$defs"]["Field"] = {"enum": [f["name"] for f in fields],
                                "description": "; ".join(_field_line(f) for f in fields)}
    schema["$defs"]["Compare"] = {"description": "field op value, typed by the field", "anyOf": variants}
    # Numeric min/max in a spec stay hints for the teacher, not schema limits: users may ask any number.
    return schema


def _shape_and_type(value_schema: dict[str, Any]) -> tuple[str, str, dict[str, Any]]:
    if value_schema.get("type") == "array":
        items = value_schema.get("items", {})
        shape = "range" if value_schema.get("minItems") == 2 and value_schema.get("maxItems") == 2 else "list"
    else:
        items, shape = value_schema, "scalar"
    if "enum" in items:
        return shape, "enum", items
    if items.get("type") == "string":
        return shape, ("date" if "pattern" in items else "string"), items
    return shape, str(items.get("type", "string")), items


def schema_fields(schema: dict[str, Any]) -> list[FieldInfo] | None:
    """The fields of a schema built by build_schema, or None if the schema has another shape."""
    try:
        variants = schema["$defs"]["Compare"]["anyOf"]
        names = schema["$defs"]["Field"]["enum"]
    except (KeyError, TypeError):
        return None
    infos: dict[str, FieldInfo] = {n: FieldInfo(name=n, type="string") for n in names}
    for v in variants:
        try:
            props = v["properties"]
            name, aliases = props["field"]["const"], props["op"]["enum"]
            shape, kind, items = _shape_and_type(props["value"])
        except (KeyError, TypeError):
            return None
        info = infos.setdefault(name, FieldInfo(name=name, type=kind))
        info.type, info.description = kind, v.get("description", info.description)
        if kind == "enum":
            info.values = list(items["enum"])
        meanings = dict(part.split(": ", 1) for part in props["op"].get("description", "").split(" | ")
                        if ": " in part)
        for alias in aliases:
            info.ops[alias] = shape
            info.op_symbols[alias], info.op_meanings[alias] = _split_meaning(meanings.get(alias, ""))
    return list(infos.values())


@lru_cache(maxsize=256)
def _validator(schema_json: str) -> Validator:
    schema = json.loads(schema_json)
    return validator_class(schema)(schema)


def validator_for(schema: dict[str, Any]) -> Validator:
    return _validator(json.dumps(schema, sort_keys=True))


def validation_error(schema: dict[str, Any], ast: Any) -> str | None:
    """None when `ast` validates against `schema`, else a short reason."""
    best = jsonschema.exceptions.best_match(validator_for(schema).iter_errors(ast))
    if best is None:
        return None
    where = "/".join(str(p) for p in best.absolute_path) or "(root)"
    return f"{where}: {best.message[:200]}"


def range_aliases(schema: dict[str, Any]) -> frozenset[str] | None:
    """Operator aliases of this schema whose value is [low, high]; None if the schema is not ours."""
    fields = schema_fields(schema)
    if fields is None:
        return None
    return frozenset(alias for f in fields for alias, shape in f.ops.items() if shape == "range")


def load_schemas(path: str | Path) -> dict[str, dict[str, Any]]:
    """schema_id -> JSON Schema, from a d_02 file."""
    schemas: dict[str, dict[str, Any]] = {}
    for record in read_jsonl(path):
        if "id" not in record or not isinstance(record.get("schema"), dict):
            raise UserError(f"{path}: every record needs an 'id' and a 'schema' object (a d_02 file)")
        schemas[str(record["id"])] = record["schema"]
    return schemas


# --- a user's schema as an answer format ------------------------------------------------------------------

# The refusal answer, as the project's template defines it: a schema of any shape is wrapped so that it stays valid.
REFUSAL_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {"type": {"const": "refusal"}, "reason": {"type": "string", "minLength": 1, "maxLength": 160},
                   "suggestion": {"type": "string", "minLength": 1, "maxLength": 160}},
    "required": ["type", "reason", "suggestion"], "additionalProperties": False,
}
SAMPLE_REFUSAL = {"type": "refusal", "reason": "not expressible", "suggestion": "ask otherwise"}
# A clarification without options: valid for a schema exactly when it has the template's Clarification answer.
SAMPLE_CLARIFICATION = {"type": "clarification", "question": "which one?", "options": []}
EMBEDDED_ROOT = "DslRoot"  # where a wrapped schema's own root goes when it refers to itself ("$ref": "#")


def rewrite_root_refs(node: Any, root_name: str) -> Any:
    """Point "#"-refs (the schema's root) at the root's new home under the wrapper's $defs."""
    if isinstance(node, dict):
        return {k: (f"#/$defs/{root_name}" if k == "$ref" and v == "#" else rewrite_root_refs(v, root_name))
                for k, v in node.items()}
    if isinstance(node, list):
        return [rewrite_root_refs(v, root_name) for v in node]
    return node


def embed_schema(schema: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the schema's root to use inside another schema, the definitions to hoist to that schema's root).

    References stay valid because the wrapper's root gets the same ``$defs``/``definitions`` the schema had; a
    ``{"$ref": "#"}`` (recursion on the root) is pointed at a copy of the root.
    """
    root = rewrite_root_refs(copy.deepcopy(schema), EMBEDDED_ROOT)
    hoisted = {key: root.pop(key) for key in ("$defs", "definitions") if key in root}
    for key in ("$schema", "$id"):
        root.pop(key, None)
    if "#/$defs/" + EMBEDDED_ROOT in json.dumps(root) + json.dumps(hoisted):
        hoisted.setdefault("$defs", {})[EMBEDDED_ROOT] = root
    return root, hoisted


def with_refusal(schema: dict[str, Any]) -> dict[str, Any]:
    """The schema as an answer format: itself when a refusal is already valid for it (the project's DSLs), else
    ``anyOf: [the schema, a refusal]`` with its definitions hoisted, so the student may always refuse."""
    if validator_for(schema).is_valid(SAMPLE_REFUSAL):
        return schema
    root, hoisted = embed_schema(schema)
    wrapper: dict[str, Any] = {"$schema": schema["$schema"]} if "$schema" in schema else {}
    return {**wrapper, "anyOf": [root, REFUSAL_SCHEMA], **hoisted}
