"""The one prompt builder: system text + schema + query as chat messages, and the completion messages.

Training, evaluation, DPO and predict all build prompts here, so the student always sees the same text.
The schema is rendered either as minified JSON (``json``) or as a compact text (``compact``) that keeps
every field, type, allowed value and operator meaning in a fraction of the tokens: the project's own DSL as
fields and operators (``render_schema_compact``), any other schema as one line per property path
(``schema_outline.render_outline``).
"""
from __future__ import annotations

import json
import typing
from typing import Any

from .canonical import render_ast
from .dsl import schema_fields
from .errors import UserError
from .records import context_text
from .schema_outline import render_outline
from .settings import SchemaFormat

SCHEMA_FORMATS: tuple[str, ...] = typing.get_args(SchemaFormat)

SYSTEM_TEXT = (
    "Translate the request into one JSON object valid for the schema. Write only the JSON. "
    "If the schema cannot express the request, write "
    '{"type":"refusal","reason":"...","suggestion":"..."}. '
    "If it is ambiguous or misses a value it needs, write "
    '{"type":"clarification","question":"...","options":[...]} when the schema has it. '
    "Take today, usual and such from the Context line."
)

REQUEST_PREFIX = "Request: "
CONTEXT_PREFIX = "Context: "

Messages = list[dict[str, str]]


def _says_more_than_name(f: Any) -> bool:
    return bool(f.description) and f.description.lower() != f.name.replace("_", " ").lower()


def _compact_field(f: Any) -> str:
    kind = "enum[" + "|".join(str(v) for v in f.values) + "]" if f.values is not None else f.type
    return f"{f.name}:{kind} ({f.description})" if _says_more_than_name(f) else f"{f.name}:{kind}"


def _compact_operator(alias: str, symbol: str, meaning: str) -> str:
    return f"{alias}({symbol})" if symbol else f"{alias}({meaning})"


def render_schema_compact(schema: dict[str, Any]) -> str | None:
    """Compact text for a schema built by this project; None when the schema has another shape.

    One line per field (name, type or enum values, description when it says more than the name) and one
    line of operators with their short meaning. Which operator suits which field type is the catalog's
    fixed rule (comparisons on numbers and dates, substring tests on text), learnt from the data and
    enforced by constrained decoding, so it is not repeated per field.
    """
    fields = schema_fields(schema)
    if fields is None:
        return None
    operators: dict[str, str] = {}
    for f in fields:
        for alias in f.ops:
            operators.setdefault(alias, _compact_operator(alias, f.op_symbols.get(alias, ""),
                                                          f.op_meanings.get(alias, "")))
    lines = [schema.get("title", "DSL")]
    lines += [_compact_field(f) for f in fields]
    lines.append("ops: " + " ".join(operators.values()))
    return "\n".join(lines)


def render_schema(schema: dict[str, Any], schema_format: str) -> str:
    if schema_format not in SCHEMA_FORMATS:
        raise UserError(f"schema_format must be one of {SCHEMA_FORMATS}, got {schema_format!r}")
    if schema_format == "compact":
        text = render_schema_compact(schema)
        return text if text is not None else render_outline(schema)
    return json.dumps(schema, ensure_ascii=False, separators=(",", ":"))


def render_request(query: str, context: dict[str, Any] | None = None) -> str:
    """The request as the student reads it: its context (records.context_text) on a line of its own when there is
    one, then the words."""
    text = context_text(context)
    return (f"{CONTEXT_PREFIX}{text}\n" if text else "") + f"{REQUEST_PREFIX}{query.strip()}"


def build_prompt(schema: dict[str, Any], query: str, schema_format: str = "compact",
                 context: dict[str, Any] | None = None) -> Messages:
    """Chat messages for one request: instructions, the schema, the request's context (if any), the query."""
    user = f"Schema:\n{render_schema(schema, schema_format)}\n\n{render_request(query, context)}"
    return [{"role": "system", "content": SYSTEM_TEXT}, {"role": "user", "content": user}]


def build_follow_up(query: str, context: dict[str, Any] | None = None) -> dict[str, str]:
    """A later user turn of a conversation about the same schema: the request alone (training.requests_per_sequence)."""
    return {"role": "user", "content": render_request(query, context)}


def build_completion(ast: Any) -> Messages:
    """The assistant turn the student learns to write: the AST as minified JSON, fixed key order."""
    return [{"role": "assistant", "content": render_ast(ast)}]


def is_messages(value: Any) -> bool:
    """A non-empty list of chat messages {role, content: str} (the shape of every prompt and completion)."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)
