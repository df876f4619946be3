"""The one prompt builder: system text + schema + query as chat messages, and the completion messages.

Training, evaluation, DPO and predict all build prompts here, so the student always sees the same text.
The schema is rendered either as minified JSON (``json``) or as a compact text (``compact``) that keeps
every field, type, allowed value and operator meaning in a fraction of the tokens.
"""
from __future__ import annotations

import json
from typing import Any

from .canonical import render_ast
from .dsl import schema_fields
from .errors import UserError

SCHEMA_FORMATS = ("compact", "json")

SYSTEM_TEXT = (
    "Translate the request into one JSON object valid for the schema. Write only the JSON. "
    "If the schema cannot express the request, write "
    '{"type":"refusal","reason":"...","suggestion":"..."}.'
)

Messages = list[dict[str, str]]


def _compact_field(f: Any) -> str:
    kind = f.type
    if f.values is not None:
        kind = "enum[" + "|".join(str(v) for v in f.values) + "]"
    ops = ",".join(f.ops)
    text = f"{f.name}:{kind} ops={ops}"
    return f"{text} # {f.description}" if f.description else text


def render_schema_compact(schema: dict[str, Any]) -> str | None:
    """Compact text for a schema built by this project; None when the schema has another shape."""
    fields = schema_fields(schema)
    if fields is None:
        return None
    meanings: dict[str, str] = {}
    for f in fields:
        meanings.update(f.op_meanings)
    lines = [schema.get("title", "DSL"), "fields:"]
    lines += [_compact_field(f) for f in fields]
    lines.append("operators:")
    lines += [f"{alias}: {meaning}" for alias, meaning in meanings.items()]
    lines.append('query keys: type="query", filter{field,op,value}|{and:[..]}|{or:[..]}|{not:..}, '
                 "select[field], aggregate{function:count|sum|avg|min|max,field}, group_by[field], "
                 "sort[{field,order:asc|desc}], limit")
    return "\n".join(lines)


def render_schema(schema: dict[str, Any], schema_format: str) -> str:
    if schema_format not in SCHEMA_FORMATS:
        raise UserError(f"schema_format must be one of {SCHEMA_FORMATS}, got {schema_format!r}")
    if schema_format == "compact":
        text = render_schema_compact(schema)
        if text is not None:
            return text
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def build_prompt(schema: dict[str, Any], query: str, schema_format: str = "compact") -> Messages:
    """Chat messages for one request: instructions, the schema, the query."""
    user = f"Schema:\n{render_schema(schema, schema_format)}\n\nRequest: {query.strip()}"
    return [{"role": "system", "content": SYSTEM_TEXT}, {"role": "user", "content": user}]


def build_completion(ast: Any) -> Messages:
    """The assistant turn the student learns to write: the AST as minified JSON, fixed key order."""
    return [{"role": "assistant", "content": render_ast(ast)}]
