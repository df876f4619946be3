"""A compact text for any JSON Schema: the prompt's `compact` rendering of a schema the project did not build.

One line per property path, with what a student needs to write a valid, meaningful value and none of JSON
Schema's punctuation: `path:type`, `*` for required, `enum[a|b]`, `const=x`, bounds (`0..100`, `len 1..40`,
`items 1..5`), `unique`, `fmt=date`, `pattern=...`, `default=...`, the description in brackets. Nested objects
give dotted paths, array items `path[]`, tuple items `path[0]`; `$defs` referred to more than once (or
recursively) are written once as `Name:` blocks and named `->Name` where used; `anyOf`/`oneOf` branches are
`path|1`, `path|2` after a `path: one of N` line; `allOf` members are merged. The project's own DSL keeps its
richer rendering (prompting.render_schema_compact). Torch-free.
"""
from __future__ import annotations

import json
from typing import Any

MAX_DEPTH = 12  # nesting written out before a path is cut with "..."
DESCRIPTION_CHARS = 80


def scalar(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)


def ref_name(ref: str) -> str:
    return ref.rsplit("/", 1)[-1] if ref.startswith("#/") else ("root" if ref == "#" else ref)


def facts(node: dict[str, Any]) -> list[str]:
    """The node's constraints as short words (type first)."""
    kind = node.get("type")
    words = ["|".join(kind) if isinstance(kind, list) else kind] if kind else []
    if "enum" in node:
        words = [f"enum[{'|'.join(scalar(v) for v in node['enum'])}]"]
    if "const" in node:
        words.append(f"const={scalar(node['const'])}")
    for low_key, high_key, label in (("minimum", "maximum", ""), ("exclusiveMinimum", "exclusiveMaximum", "excl "),
                                     ("minLength", "maxLength", "len "), ("minItems", "maxItems", "items "),
                                     ("minProperties", "maxProperties", "keys ")):
        low, high = node.get(low_key), node.get(high_key)
        if low is not None or high is not None:
            words.append(f"{label}{'' if low is None else scalar(low)}..{'' if high is None else scalar(high)}")
    if node.get("multipleOf") is not None:
        words.append(f"step {scalar(node['multipleOf'])}")
    if node.get("uniqueItems") is True:
        words.append("unique")
    for key, label in (("format", "fmt"), ("pattern", "pattern"), ("default", "default")):
        if key in node:
            words.append(f"{label}={scalar(node[key])}")
    return words


class Outline:
    """Writes the lines of one schema (see the module docstring)."""

    def __init__(self, schema: dict[str, Any]):
        self.schema = schema
        self.defs = {**(schema.get("definitions") or {}), **(schema.get("$defs") or {})}
        self.shared = self.shared_defs()
        self.lines: list[str] = []

    def shared_defs(self) -> set[str]:
        """Defs used more than once or from inside themselves: written once, by name."""
        counts: dict[str, int] = {}

        def walk(node: Any) -> None:
            if isinstance(node, dict):
                if isinstance(node.get("$ref"), str):
                    counts[ref_name(node["$ref"])] = counts.get(ref_name(node["$ref"]), 0) + 1
                for value in node.values():
                    walk(value)
            elif isinstance(node, list):
                for value in node:
                    walk(value)

        walk({k: v for k, v in self.schema.items() if k not in ("$defs", "definitions")})
        for name, node in self.defs.items():
            walk(node)
        return {name for name, n in counts.items() if n > 1 or name == "root"}

    def line(self, path: str, node: dict[str, Any], required: bool, extra: list[str] | None = None) -> None:
        words = facts(node) + (extra or [])
        text = f"{path}{'*' if required else ''}:{' '.join(words)}" if words else f"{path}{'*' if required else ''}:"
        description = node.get("description") or node.get("title")
        if isinstance(description, str) and description.strip():
            short = description.strip().replace("\n", " ")
            text += f" ({short[:DESCRIPTION_CHARS]}{'...' if len(short) > DESCRIPTION_CHARS else ''})"
        self.lines.append(text)

    def node(self, path: str, node: Any, required: bool = False, depth: int = 0) -> None:
        if not isinstance(node, dict):
            self.lines.append(f"{path}:{'any' if node is True else 'nothing'}")
            return
        if depth > MAX_DEPTH:
            self.lines.append(f"{path}:...")
            return
        ref = node.get("$ref")
        if isinstance(ref, str):
            name = ref_name(ref)
            if name in self.shared or name not in self.defs:
                self.line(path, {k: v for k, v in node.items() if k != "$ref"}, required, [f"->{name}"])
                return
            node = {**self.defs[name], **{k: v for k, v in node.items() if k != "$ref"}}
        for member in node.get("allOf", []):
            if isinstance(member, dict):
                node = {**member, **{k: v for k, v in node.items() if k != "allOf"},
                        "properties": {**member.get("properties", {}), **node.get("properties", {})},
                        "required": [*member.get("required", []), *node.get("required", [])]}
        branches = node.get("anyOf") or node.get("oneOf")
        if branches:
            said = ("anyOf", "oneOf") if path else ("anyOf", "oneOf", "description", "title")  # root: on line 1
            self.line(path or "(root)", {k: v for k, v in node.items() if k not in said}, required,
                      [f"one of {len(branches)}"])
            for i, branch in enumerate(branches, start=1):
                self.node(f"{path}|{i}", branch, False, depth + 1)
            return
        properties = node.get("properties")
        is_object = isinstance(properties, dict) and properties
        if not (is_object and path and not node.get("description")):
            extra = ["no other keys"] if is_object and node.get("additionalProperties") is False else []
            if path:
                self.line(path, node, required, extra)
            elif extra or facts(node) not in ([], ["object"]):  # the root's description is on the title line
                self.line("(root)", {k: v for k, v in node.items() if k not in ("description", "title")}, False,
                          extra)
        if is_object:
            needed = set(node.get("required") or [])
            for name, child in properties.items():
                self.node(f"{path}.{name}" if path else name, child, name in needed, depth + 1)
        prefix = node.get("prefixItems") or (node.get("items") if isinstance(node.get("items"), list) else None)
        if prefix:
            for i, child in enumerate(prefix):
                self.node(f"{path}[{i}]", child, False, depth + 1)
        elif isinstance(node.get("items"), dict):
            self.node(f"{path}[]", node["items"], False, depth + 1)

    def render(self) -> str:
        title = self.schema.get("title") or "schema"
        description = self.schema.get("description")
        self.lines.append(f"{title}: {description}" if isinstance(description, str) and description else title)
        self.node("", self.schema)
        for name in sorted(self.shared):
            if name in self.defs:
                self.lines.append(f"{name}:")
                self.node(name, self.defs[name])
        return "\n".join(self.lines)


REFUSAL_LINE = "or refuse: type*:const=refusal reason*:string suggestion*:string"


def render_outline(schema: dict[str, Any]) -> str:
    """The compact text of any JSON Schema (see the module docstring); a schema wrapped by dsl.with_refusal is
    written as the user's schema (its title, description and paths) and one line for the refusal."""
    from .dsl import REFUSAL_SCHEMA

    branches = schema.get("anyOf")
    if isinstance(branches, list) and len(branches) == 2 and branches[1] == REFUSAL_SCHEMA:
        inner = {**{k: v for k, v in schema.items() if k != "anyOf"}, **branches[0]}
        return Outline(inner).render() + "\n" + REFUSAL_LINE
    return Outline(schema).render()
