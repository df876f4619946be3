"""What a valid JSON Schema can still get wrong for this pipeline, found before any model runs: a `$ref` outside
the schema (nothing here fetches it: validation and the grammar would fail mid-run), an internal `$ref` that
names nothing, and a root that admits no value at all (then no answer, not even a refusal, could be valid).

``why_empty`` finds the contradictions a user's schema really has (false, `not: {}`, an empty enum, an enum or
const that its own keywords reject, minimum above maximum, minLength above maxLength, minItems above maxItems, a
required property that admits nothing or that `additionalProperties: false` forbids, an `allOf` member that admits
nothing, `anyOf`/`oneOf` whose every branch admits nothing), following internal `$ref`s; it is not a full
satisfiability check (no such check is cheap), so a schema it passes may still be empty in subtler ways.
Torch-free.
"""
from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from jsonschema.protocols import Validator
from referencing import Registry, Resource
from referencing.exceptions import Unresolvable
from referencing.jsonschema import DRAFT202012, specification_with

ROOT_URI = "urn:ast-distill:schema"  # where the schema is registered: its internal refs resolve against it

MAX_DEPTH = 24  # $ref chains and nesting followed before giving up (a recursive schema is not empty for that)


def dict_nodes(value: Any) -> Iterator[dict[str, Any]]:
    """Every JSON object inside a JSON value (itself included), depth first: each subschema of a schema."""
    if isinstance(value, dict):
        yield value
        for child in value.values():
            yield from dict_nodes(child)
    elif isinstance(value, list):
        for child in value:
            yield from dict_nodes(child)


def refs(node: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """(where, ref) of every `$ref` string in the schema, depth first."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                yield path or "(root)", value
            else:
                yield from refs(value, f"{path}/{key}")
    elif isinstance(node, list):
        for i, value in enumerate(node):
            yield from refs(value, f"{path}/{i}")


@dataclass
class SchemaContext:
    """A schema's validator (of its own draft) and a resolver of its internal `$ref`s."""
    validator: Validator

    def __post_init__(self) -> None:
        schema = self.validator.schema
        spec = specification_with(schema.get("$schema", ""), default=DRAFT202012) if isinstance(schema, dict) \
            else DRAFT202012
        registry = Registry().with_resource(ROOT_URI, Resource(contents=schema, specification=spec))
        self.resolver = registry.resolver(base_uri=ROOT_URI)

    def lookup(self, ref: str) -> Any:
        return self.resolver.lookup(ref).contents

    def admits(self, node: Any, value: Any) -> bool:
        """Whether the value is valid for a subschema (its $refs resolved against the whole schema)."""
        return self.validator.evolve(schema=node).is_valid(value)


def bad_ref(schema: dict[str, Any], context: SchemaContext) -> str | None:
    """A sentence about the first `$ref` that points outside the schema or names nothing in it, else None."""
    for where, ref in refs(schema):
        if not ref.startswith("#"):
            return (f"$ref '{ref}' at {where} points outside the schema, which is not supported: copy what it "
                    f"names into the schema's $defs and refer to it as '#/$defs/<name>'")
        try:
            context.lookup(ref)
        except Unresolvable:
            return f"$ref '{ref}' at {where} names nothing in the schema"
    return None


def resolved(node: Any, context: SchemaContext) -> Any:
    """The schema an internal `$ref` node points to (siblings of the $ref merged in), else the node."""
    if isinstance(node, dict) and isinstance(node.get("$ref"), str) and node["$ref"].startswith("#"):
        target = context.lookup(node["$ref"])
        siblings = {k: v for k, v in node.items() if k != "$ref"}
        return {"allOf": [target, siblings]} if siblings else target
    return node


def types_of(node: dict[str, Any]) -> set[str] | None:
    kind = node.get("type")
    return {kind} if isinstance(kind, str) else set(kind) if isinstance(kind, list) else None


def bound_clash(node: dict[str, Any]) -> str | None:
    """minimum above maximum (and the like) when the node admits only values those bounds apply to."""
    kinds = types_of(node)
    pairs = []
    if kinds and kinds <= {"number", "integer"}:
        low = max((node[k] for k in ("minimum", "exclusiveMinimum") if isinstance(node.get(k), (int, float))),
                  default=None)
        high = min((node[k] for k in ("maximum", "exclusiveMaximum") if isinstance(node.get(k), (int, float))),
                   default=None)
        strict = "exclusiveMinimum" in node or "exclusiveMaximum" in node
        if low is not None and high is not None and (low > high or (strict and low == high)):
            return f"its minimum {low} is above its maximum {high}"
    if kinds == {"string"}:
        pairs.append(("minLength", "maxLength"))
    if kinds == {"array"}:
        pairs.append(("minItems", "maxItems"))
    if kinds == {"object"}:
        pairs.append(("minProperties", "maxProperties"))
    for low_key, high_key in pairs:
        low, high = node.get(low_key), node.get(high_key)
        if isinstance(low, int) and isinstance(high, int) and low > high:
            return f"its {low_key} {low} is above its {high_key} {high}"
    return None


def why_empty(node: Any, context: SchemaContext, path: str = "(root)", depth: int = 0) -> str | None:
    """Where and why the (sub)schema admits no value, or None when none of the known contradictions is found."""
    if depth > MAX_DEPTH:
        return None
    node = resolved(node, context)
    if node is False:
        return f"{path} is `false`"
    if not isinstance(node, dict):
        return None
    if node.get("not") in ({}, True):
        return f"{path} says `not: {{}}`"
    for key in ("enum", "const"):
        if key in node:
            values = node[key] if key == "enum" else [node[key]]
            rest = {k: v for k, v in node.items() if k not in ("enum", "const")}
            if not any(context.admits(rest, value) for value in values):
                return f"{path}: no value of its {key} passes its other keywords" if values else f"{path}: its enum is empty"
    clash = bound_clash(node)
    if clash:
        return f"{path}: {clash}"
    for i, member in enumerate(node.get("allOf", [])):
        found = why_empty(member, context, f"{path}/allOf/{i}", depth + 1)
        if found:
            return found
    for key in ("anyOf", "oneOf"):
        branches = node.get(key)
        if isinstance(branches, list) and branches and all(
                why_empty(b, context, path, depth + 1) for b in branches):
            return f"{path}: no branch of its {key} admits a value"
    if types_of(node) in (None, {"object"}):
        properties = node.get("properties") or {}
        for name in node.get("required") or []:
            if name not in properties:
                if node.get("additionalProperties") is False:
                    return f"{path} requires '{name}', which additionalProperties: false forbids"
                continue
            found = why_empty(properties[name], context, f"{path}/properties/{name}", depth + 1)
            if found and types_of(node) == {"object"}:
                return found
    return None
