"""The one canonicalizer and the one completion renderer.

``render_ast``: the AST as minified JSON with a fixed key order: what the student is trained to write and
what ``exact_match`` compares. ``canonical``: the meaning of an AST (README, "Meaning, not spelling"):
keys unordered; and/or children flattened, deduplicated and sorted; ``in``-style value lists, select and
group_by as sets; sort order kept; 1 == 1.0; every refusal equal to every other.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from .records import REFUSAL, is_refusal

# The property order of data/base_schema_template.json: constrained decoding (xgrammar) emits properties
# in schema order, so the completions the student learns must use the same order.
KEY_ORDER = ("type", "filter", "select", "aggregate", "group_by", "sort", "limit", "and", "or", "not",
             "function", "field", "op", "value", "order", "reason", "suggestion")
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


def canonical(ast: Any, range_ops: frozenset[str] | None = None) -> Any:
    """The canonical form of an AST; anything that is not a DSL object comes back unchanged.

    ``range_ops``: operator aliases whose value is an ordered [low, high] pair (from the schema); every
    other list value is compared as a set.
    """
    range_ops = RANGE_OPERATORS if range_ops is None else range_ops
    if not isinstance(ast, dict):
        return ast
    if is_refusal(ast):
        return {"type": REFUSAL}
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


def canonical_text(ast: Any, range_ops: frozenset[str] | None = None) -> str:
    """canonical() as a string, for equality tests and hashing."""
    return _key(canonical(ast, range_ops))


def semantic_match(a: Any, b: Any, range_ops: frozenset[str] | None = None) -> bool:
    """True when both are DSL objects that mean the same."""
    if not isinstance(a, dict) or not isinstance(b, dict):
        return False
    return canonical_text(a, range_ops) == canonical_text(b, range_ops)


def exact_match(a: Any, b: Any) -> bool:
    """Same rendered completion text (key order normalized, nothing else)."""
    return isinstance(a, dict) and isinstance(b, dict) and render_ast(a) == render_ast(b)
