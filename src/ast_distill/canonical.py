"""The one canonicalizer and the one completion renderer.

``render_ast``: the AST as minified JSON with a fixed key order: what the student is trained to write and
what ``exact_match`` compares. ``canonical``: the meaning of an AST (README, "Meaning, not spelling"):
keys unordered; and/or children flattened, deduplicated and sorted; ``in``-style value lists, select and
group_by as sets; sort order kept; 1 == 1.0; every refusal equal to every other; a clarification is the set of
the options' meanings (its question and labels are wording). Given a ``schema`` that is not
one of the project's DSLs (``range_ops`` None), the rules any schema supports instead (``generic_canonical``):
objects unordered, 1 == 1.0 at any depth, arrays in order unless the schema marks them ``uniqueItems`` (sets),
every refusal equal to every other.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .dsl import validator_for
from .records import CLARIFICATION, REFUSAL, clarification_options, is_clarification, is_refusal
from .schema_checks import MAX_DEPTH, SchemaContext, resolved

# The property order of data/base_schema_template.json: constrained decoding (xgrammar) emits properties
# in schema order, so the completions the student learns must use the same order.
KEY_ORDER = ("type", "filter", "select", "aggregate", "group_by", "sort", "limit", "and", "or", "not",
             "function", "field", "op", "value", "order", "reason", "suggestion", "question", "options", "label",
             "ast")
_RANK = {key: i for i, key in enumerate(KEY_ORDER)}
RANGE_OPERATORS = frozenset({"between"})  # used when no schema says which aliases take [low, high]


def ordered_keys(keys: Iterable[str]) -> list[str]:
    """Keys in the order render_ast writes them (KEY_ORDER first, any others alphabetically after)."""
    return sorted(keys, key=lambda k: (_RANK.get(k, len(_RANK)), k))


def _ordered(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {k: _ordered(obj[k]) for k in ordered_keys(obj)}
    if isinstance(obj, list):
        return [_ordered(x) for x in obj]
    return obj


def render_ast(ast: Any) -> str:
    """Minified JSON, fixed key order, UTF-8 kept: the student's completion text."""
    return json.dumps(_ordered(ast), ensure_ascii=False, separators=(",", ":"))


def _number(value: Any) -> Any:
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


def _key(obj: Any) -> str:
    return json.dumps(obj, sort_keys=True, ensure_ascii=False)


def _canon_value(value: Any, as_set: bool) -> Any:
    if isinstance(value, list):
        items = [_number(v) for v in value]
        if as_set:
            unique = {_key(v): v for v in items}
            return [unique[k] for k in sorted(unique)]
        return items
    return _number(value)


def _canon_cond(cond: Any, range_ops: frozenset[str]) -> Any:
    if not isinstance(cond, dict):
        return cond
    for op in ("and", "or"):
        if set(cond) == {op} and isinstance(cond[op], list):
            children: list[Any] = []
            for child in (_canon_cond(c, range_ops) for c in cond[op]):
                if isinstance(child, dict) and set(child) == {op}:
                    children.extend(child[op])  # (a and (b and c)) == (a and b and c)
                else:
                    children.append(child)
            unique = {_key(c): c for c in children}
            if len(unique) == 1:
                return next(iter(unique.values()))
            return {op: [unique[k] for k in sorted(unique)]}
    if set(cond) == {"not"}:
        inner = _canon_cond(cond["not"], range_ops)
        if isinstance(inner, dict) and set(inner) == {"not"}:
            return inner["not"]  # not not x == x
        return {"not": inner}
    if "field" in cond and "op" in cond:
        out = dict(cond)
        out["value"] = _canon_value(cond.get("value"), as_set=cond["op"] not in range_ops)
        return out
    return cond


def branch(node: Any, value: Any, context: SchemaContext) -> dict[str, Any]:
    """The schema node that describes ``value`` here: $refs resolved, allOf members merged, the first anyOf/oneOf
    branch the value is valid for merged in (an empty node when the schema says nothing)."""
    for _ in range(MAX_DEPTH):
        node = resolved(node, context)
        if not isinstance(node, dict):
            return {}
        merged = {k: v for k, v in node.items() if k not in ("allOf", "anyOf", "oneOf")}
        for member in node.get("allOf", []):
            part = branch(member, value, context)
            merged["properties"] = {**part.get("properties", {}), **merged.get("properties", {})}
            merged.update({k: v for k, v in part.items() if k not in merged})
        options = node.get("anyOf") or node.get("oneOf")
        if not options:
            return merged
        chosen = next((o for o in options if context.admits(o, value)), None)
        if chosen is None:
            return merged
        node = {"allOf": [merged, chosen]} if merged else chosen
    return {}


def child_node(node: dict[str, Any], key: str | int) -> Any:
    """The subschema of an object's property or an array's item ``key``."""
    if isinstance(key, int):
        prefix = node.get("prefixItems")
        if isinstance(prefix, list) and key < len(prefix):
            return prefix[key]
        items = node.get("items")
        if isinstance(items, list):  # draft-07 tuple form
            return items[key] if key < len(items) else node.get("additionalItems", {})
        return items if items is not None else {}
    properties = node.get("properties") or {}
    if key in properties:
        return properties[key]
    extra = node.get("additionalProperties")
    return extra if isinstance(extra, dict) else {}


def generic_canonical(value: Any, node: Any, context: SchemaContext, depth: int = 0) -> Any:
    """The meaning of a value of any schema: objects unordered (compared through sorted JSON), numbers 1 == 1.0 at
    any depth, arrays in order unless their schema says ``uniqueItems: true`` (then sorted, as sets)."""
    if depth > MAX_DEPTH * 4:
        return value
    here = branch(node, value, context) if isinstance(value, (dict, list)) else {}
    if isinstance(value, dict):
        return {k: generic_canonical(v, child_node(here, k), context, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        items = [generic_canonical(v, child_node(here, i), context, depth + 1) for i, v in enumerate(value)]
        if here.get("uniqueItems") is True:
            unique = {_key(v): v for v in items}
            return [unique[k] for k in sorted(unique)]
        return items
    return _number(value)


def canonical(ast: Any, range_ops: frozenset[str] | None = None, schema: dict[str, Any] | None = None) -> Any:
    """The canonical form of an AST; anything that is not a DSL object comes back unchanged.

    ``range_ops``: operator aliases whose value is an ordered [low, high] pair (from the schema); every
    other list value is compared as a set. ``schema``: with range_ops None (``dsl.range_aliases`` says the schema
    is not one of the project's DSLs), the generic rules for that schema.
    """
    if not isinstance(ast, dict):
        return ast
    if is_refusal(ast):
        return {"type": REFUSAL}
    if is_clarification(ast):
        options = {_key(o): o for o in (canonical(a, range_ops, schema) for a in clarification_options(ast))}
        return {"type": CLARIFICATION, "options": [options[k] for k in sorted(options)]}
    if schema is not None and range_ops is None:
        return generic_canonical(ast, schema, SchemaContext(validator_for(schema)))
    range_ops = RANGE_OPERATORS if range_ops is None else range_ops
    out: dict[str, Any] = {}
    for key, value in ast.items():
        if key == "filter":
            out[key] = _canon_cond(value, range_ops)
        elif key in ("select", "group_by") and isinstance(value, list):
            out[key] = _canon_value(value, as_set=True)
        elif key == "aggregate" and isinstance(value, dict):
            out[key] = {k: _number(v) for k, v in value.items()}
        else:
            out[key] = _number(value) if not isinstance(value, (dict, list)) else value
    return out


def canonical_text(ast: Any, range_ops: frozenset[str] | None = None, schema: dict[str, Any] | None = None) -> str:
    """canonical() as a string, for equality tests and hashing."""
    return _key(canonical(ast, range_ops, schema))


def semantic_match(a: Any, b: Any, range_ops: frozenset[str] | None = None,
                   schema: dict[str, Any] | None = None) -> bool:
    """True when both are JSON objects that mean the same (see canonical for range_ops and schema)."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return canonical_text(a, range_ops, schema) == canonical_text(b, range_ops, schema)


def exact_match(a: Any, b: Any) -> bool:
    """Same rendered completion text (key order normalized, nothing else)."""
    return isinstance(a, dict) and isinstance(b, dict) and render_ast(a) == render_ast(b)
