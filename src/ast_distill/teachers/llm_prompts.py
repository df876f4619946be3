"""What the LLM teachers (Ollama, OpenAI-compatible) send and how they read the replies: one place.

Each task has three parts:
- ``*_messages``: the chat messages (system instructions + the task's data);
- ``*_format``: the JSON Schema sent for structured output (Ollama ``format=``, OpenAI ``response_format``),
  so the server constrains the reply. For pairs and verdicts the DSL schema itself is embedded as the
  schema of the ``ast`` value, its ``$defs`` hoisted to the wrapper root so every ``#/$defs/...`` still
  resolves;
- ``parse_*``: reply text -> result. A reply whose envelope does not fit (not JSON, keys missing, wrong
  types) raises ``BadReply`` (the backend retries). A reply whose envelope fits but whose content is wrong
  (every AST breaks the DSL schema, fields that ``dsl.check_fields`` rejects) raises ``BadReply`` carrying
  the parsed result as ``fallback``: retried too, and returned on the last try so that the caller, which
  validates every AST itself, records or skips it. Nothing here marks anything valid.
"""
from __future__ import annotations

import json
import math
import random
import re
from typing import Any

from jsonschema import Draft202012Validator

from .. import dsl
from ..errors import UserError
from ..jsonl import dumps
from ..prompting import CONTEXT_PREFIX, REQUEST_PREFIX, render_request, render_schema
from ..records import LANGUAGES, kind_of
from .base import GeneratedPair, KindShares, Verdict

PAIRS_PER_REQUEST = 20  # bigger batches are split: long replies are slow and fail more often
MIN_FIELDS, MAX_FIELDS = 5, 8
# Example queries of the domain spec shown per pairs request: a window that moves through all of them (see
# example_windows), so every example asked for in stage 1 gets used while the prompt stays short.
SPEC_EXAMPLES_SHOWN = 12
MIN_NUM_CTX = 4096
CHARS_PER_TOKEN = 3  # a pessimistic estimate: over-sizing num_ctx costs memory, under-sizing truncates
TEMPLATE_TOKENS = 256  # the chat template's own tokens
THINKING_TOKENS = 2048  # reasoning models (gpt-oss) think before they answer, inside the same context


class BadReply(ValueError):
    """A reply that cannot be used as is. ``fallback``: the parsed result to return on the last try."""

    def __init__(self, message: str, fallback: Any = None):
        super().__init__(message)
        self.fallback = fallback


# ---------------------------------------------------------------------------------------------------------
# JSON helpers


def extract_json(text: str | None) -> Any:
    """The JSON object in a reply: the whole text, else a fenced block, else the outermost {...}."""
    if not text or not text.strip():
        raise BadReply("the reply is empty")
    candidates = [text.strip()]
    fenced = re.search(r"```(?:json)?\s*(.*?)```", text, re.DOTALL)
    if fenced:
        candidates.append(fenced.group(1).strip())
    start, end = text.find("{"), text.rfind("}")
    if 0 <= start < end:
        candidates.append(text[start:end + 1])
    for candidate in candidates:
        try:
            return json.loads(candidate)
        except json.JSONDecodeError:
            continue
    raise BadReply(f"the reply is not JSON: {_snippet(text)}")


def _snippet(text: str, limit: int = 80) -> str:
    flat = " ".join(str(text).split())
    return flat if len(flat) <= limit else flat[:limit] + "..."


def _check_envelope(obj: Any, envelope: dict[str, Any], task: str) -> None:
    error = next(iter(Draft202012Validator(envelope).iter_errors(obj)), None)
    if error is not None:
        where = "/".join(str(p) for p in error.absolute_path) or "(root)"
        raise BadReply(f"the {task} reply does not fit the requested JSON shape at {where}: "
                       f"{_snippet(error.message)}")


def _wrapper(properties: dict[str, Any], required: list[str], hoisted: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": required, "additionalProperties": False,
            **hoisted}


# ---------------------------------------------------------------------------------------------------------
# Context size


def estimate_num_ctx(messages: list[dict[str, str]], reply_tokens: int) -> int:
    """Tokens for the prompt (chars / 3) + the reply + room to think, as a power of two >= 4096."""
    prompt_tokens = sum(len(m.get("content") or "") for m in messages) // CHARS_PER_TOKEN
    needed = prompt_tokens + TEMPLATE_TOKENS + THINKING_TOKENS + reply_tokens
    return max(MIN_NUM_CTX, 2 ** math.ceil(math.log2(needed)))


# ---------------------------------------------------------------------------------------------------------
# Task 1: a domain spec (d_01 body)

SPEC_SYSTEM = (
    "You design the data model behind a query language for one business domain. Choose the fields a user "
    "would filter, sort and aggregate on, and write realistic requests users would make.\n"
    f"Rules: {MIN_FIELDS} to {MAX_FIELDS} fields; names in snake_case, unique; type is one of "
    f"{', '.join(dsl.FIELD_TYPES)} (date = YYYY-MM-DD, enum = a closed list of 3 to 8 short values given in "
    "'values'; only enum fields have 'values'); for integer and number fields give a realistic 'min' and "
    "'max'; a one-sentence description per field. Example queries: varied wording (questions, commands, "
    "terse keywords), about half in English and half in French, each answerable with the fields.\n"
    'Reply with one JSON object: {"description": "...", "fields": [{"name": "...", "type": "...", '
    '"description": "...", "values": [...], "min": 0, "max": 100}], "example_queries": ["..."]}.'
)

_FIELD_FORMAT: dict[str, Any] = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "pattern": "^[a-z][a-z0-9_]*$", "minLength": 1, "maxLength": 40},
        "type": {"enum": list(dsl.FIELD_TYPES)},
        "description": {"type": "string", "minLength": 1, "maxLength": 200},
        "values": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 40},
                   "minItems": 2, "maxItems": 12},
        "min": {"type": "number"},
        "max": {"type": "number"},
    },
    "required": ["name", "type", "description"],
    "additionalProperties": False,
}


def spec_format() -> dict[str, Any]:
    return _wrapper({
        "description": {"type": "string", "minLength": 1, "maxLength": 400},
        "fields": {"type": "array", "items": _FIELD_FORMAT, "minItems": MIN_FIELDS, "maxItems": MAX_FIELDS},
        "example_queries": {"type": "array", "items": {"type": "string", "minLength": 1, "maxLength": 300},
                            "minItems": 1},
    }, ["description", "fields", "example_queries"], {})


def spec_messages(prompt_row: dict[str, Any], examples_per_schema: int) -> list[dict[str, str]]:
    domain = prompt_row.get("domain") or prompt_row.get("name") or prompt_row.get("id") or "unnamed domain"
    lines = [f"Domain: {domain}"]
    if prompt_row.get("description"):
        lines.append(f"Description: {prompt_row['description']}")
    if prompt_row.get("prompt"):
        lines.append(f"Notes: {prompt_row['prompt']}")
    if prompt_row.get("language_hint"):
        lines.append(f"Language hint: {prompt_row['language_hint']}")
    lines.append(f"Write {examples_per_schema} example queries.")
    return [{"role": "system", "content": SPEC_SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def spec_reply_tokens(examples_per_schema: int) -> int:
    return 1024 + 48 * examples_per_schema


def parse_spec(text: str, prompt_row: dict[str, Any]) -> dict[str, Any]:
    """A d_01 body {domain, description, language_hint?, fields, example_queries} from a reply."""
    obj = extract_json(text)
    _check_envelope(obj, spec_format(), "domain spec")
    body: dict[str, Any] = {
        "domain": prompt_row.get("domain") or prompt_row.get("name") or obj["description"][:40],
        "description": obj["description"],
        "fields": obj["fields"],
        "example_queries": obj["example_queries"],
    }
    if prompt_row.get("language_hint"):
        body["language_hint"] = prompt_row["language_hint"]
    try:
        dsl.check_fields(body["fields"], "teacher reply")
    except UserError as exc:  # e.g. an enum with no values, a name twice: ask again
        raise BadReply(str(exc), fallback=body) from None
    return body


# ---------------------------------------------------------------------------------------------------------
# Task 2: (query, AST) pairs for one schema

PAIRS_SYSTEM = (
    "You write training data for a small model that translates a user's request into one JSON AST valid "
    "for a given JSON Schema (a query DSL).\n"
    "Rules: every AST validates against the schema; use only the schema's field names and operator names "
    "(operator names are aliases: read what each means in the schema's descriptions); values typed as the "
    "field says, dates as YYYY-MM-DD; every value in an AST is stated in its request, so it can be copied "
    "from it; requests sound like real users (questions, commands, terse keywords; formal and casual) and "
    "differ from each other; use the DSL's variety: and/or/not, select, sort, limit, aggregate with "
    "group_by. A refusal is a request this schema cannot express (a field it lacks, an operator it lacks, "
    'an update/delete/join): its AST is {"type": "refusal", "reason": "<short why>", "suggestion": '
    '"<short request that would work>"}. '
    "A clarification answers a request that is ambiguous or incomplete (a value it needs is missing, several "
    "fields or values fit its words, it is too vague, a typo blurs what it means), when the schema has a "
    'clarification answer: {"type": "clarification", "question": "<short question>", "options": [{"label": '
    '"<short>", "ast": <a query the request could mean>}]} (options may be empty). '
    "A request with a context leaves a value to it (\"today\", \"this month\", \"my usual <field>\"): give the "
    'pair a "context" object (e.g. {"today": "2026-03-14", "defaults": {"<field>": <value>}}) and take the value '
    "from it; write the same words without a context as a clarification too.\n"
    'Reply with one JSON object: {"pairs": [{"language": "en" or "fr", "query": "...", "context": {...} '
    '(only when the request needs one), "ast": {...}}]}.'
)


def pairs_format(dsl_schema: dict[str, Any]) -> dict[str, Any]:
    """{"pairs": [{language, query, ast: <the DSL schema>}]}, $defs hoisted to the root."""
    ast_schema, hoisted = dsl.embed_schema(dsl_schema)
    return _pairs_wrapper(ast_schema, hoisted)


def _pairs_wrapper(ast_schema: dict[str, Any], hoisted: dict[str, Any]) -> dict[str, Any]:
    item = {"type": "object",
            "properties": {"language": {"enum": list(LANGUAGES)},
                           "query": {"type": "string", "minLength": 1, "maxLength": 400},
                           "context": {"type": "object"},
                           "ast": ast_schema},
            "required": ["language", "query", "ast"],
            "additionalProperties": False}
    return _wrapper({"pairs": {"type": "array", "items": item, "minItems": 1}}, ["pairs"], hoisted)


def pairs_plan(n: int, shares: KindShares) -> list[tuple[int, dict[str, int]]]:
    """Split n into requests of at most PAIRS_PER_REQUEST: [(pairs, {kind: how many of them}), ...], each request
    asked for its part of the shares' counts (KindShares.counts: refusal, clarification, context_twins)."""
    sizes = [PAIRS_PER_REQUEST] * (n // PAIRS_PER_REQUEST)
    if n % PAIRS_PER_REQUEST:
        sizes.append(n % PAIRS_PER_REQUEST)
    counts = shares.counts(n)
    plan = []
    for size in sizes:
        part = {kind: min(size, round(counts[kind] * size / n)) if n else 0
                for kind in ("refusal", "clarification", "context_twins")}
        plan.append((size, part))
    return plan


def example_windows(spec: dict[str, Any], seed: int, requests: int) -> list[list[str]]:
    """The spec's example queries to show in each of `requests` pairs requests: the examples shuffled by
    `seed` (the same for a seed), then SPEC_EXAMPLES_SHOWN at a time in turn, wrapping around, so that all
    of them are used before any is shown again."""
    examples = [q for q in spec.get("example_queries", []) if isinstance(q, str) and q.strip()]
    random.Random(seed).shuffle(examples)
    if len(examples) <= SPEC_EXAMPLES_SHOWN:
        return [examples] * requests
    return [[examples[(i * SPEC_EXAMPLES_SHOWN + k) % len(examples)] for k in range(SPEC_EXAMPLES_SHOWN)]
            for i in range(requests)]


def pairs_messages(schema_row: dict[str, Any], spec: dict[str, Any], n: int, kinds: dict[str, int],
                   avoid: list[str], examples: list[str], focus: str = "") -> list[dict[str, str]]:
    """One pairs request; `examples`: the spec's example queries to show (see example_windows); `focus`: what
    the pairs should be about, in words (the boost's failures), shown before the count."""
    n_en = (n + 1) // 2
    lines = [f"Domain: {schema_row.get('domain') or spec.get('domain', '')}",
             "Schema (JSON Schema):", render_schema(schema_row["schema"], "json")]
    ranges = [f"{f['name']} {_number(f['min'])} to {_number(f['max'])}" for f in spec.get("fields", [])
              if isinstance(f, dict) and isinstance(f.get("min"), (int, float))
              and isinstance(f.get("max"), (int, float))]
    if ranges:
        lines += ["", "Realistic values: " + "; ".join(ranges) + "."]
    if examples:
        lines += ["", "Example requests for inspiration:"] + [f"- {q}" for q in examples]
    if avoid:
        lines += ["", "Already written, do not repeat:"] + [f"- {q}" for q in avoid]
    if focus:
        lines += ["", "Focus: " + focus]
    asks = dsl.validator_for(schema_row["schema"]).is_valid(dsl.SAMPLE_CLARIFICATION)
    wanted = [f"{kinds.get('refusal', 0)} of them refusals"]
    if asks:
        twins = kinds.get("context_twins", 0)
        wanted += [f"{kinds.get('clarification', 0)} clarifications"]
        wanted += [f"{twins} requests that need a context, each written twice (with its context, answered; the same "
                   f"words without one, a clarification)"] if twins else []
    lines += ["", f"Write exactly {n} pairs: {n_en} in English and {n - n_en} in French; " + ", ".join(wanted) + "."]
    return [{"role": "system", "content": PAIRS_SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


def _number(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


def pairs_reply_tokens(n: int) -> int:
    return 512 + 160 * n


def parse_pairs(text: str, dsl_schema: dict[str, Any]) -> list[GeneratedPair]:
    """Pairs from a reply; ASTs returned as written (callers validate them)."""
    obj = extract_json(text)
    _check_envelope(obj, _pairs_wrapper({}, {}), "pairs")
    pairs = [GeneratedPair(query=p["query"].strip(), language=p["language"], ast=p["ast"], kind=kind_of(p["ast"]),
                           context=p.get("context") or None) for p in obj["pairs"]]
    if all(dsl.validation_error(dsl_schema, p.ast) is not None for p in pairs):
        first = dsl.validation_error(dsl_schema, pairs[0].ast)
        raise BadReply(f"no AST in the reply validates against the DSL schema (first: {first})",
                       fallback=pairs)
    return pairs


# ---------------------------------------------------------------------------------------------------------
# Task 3: judge a student's AST

JUDGE_SYSTEM = (
    "You check a small model's work. It was given a query DSL (a JSON Schema) and a user's request, and "
    "wrote a JSON AST. Decide whether its AST means exactly what the request asks under that schema: same "
    "conditions, values, fields, sorting, limit and aggregation; key order, and the order of and/or "
    "children and of value sets, do not matter. A request the schema cannot express should get a refusal "
    '{"type": "refusal", "reason": "...", "suggestion": "..."}; an ambiguous or incomplete one a clarification '
    "whose options are the queries it could mean (its question's wording does not matter). A reference AST from "
    "the dataset is given; "
    "it is usually right but not always.\n"
    'Reply with one JSON object: {"accept": true or false, "reason": "<one short sentence>", '
    '"canonical_ast": <the AST that correctly expresses the request: the model\'s own if it is right>}.'
)


def judge_format(dsl_schema: dict[str, Any]) -> dict[str, Any]:
    ast_schema, hoisted = dsl.embed_schema(dsl_schema)
    return _judge_wrapper(ast_schema, hoisted)


def _judge_wrapper(ast_schema: dict[str, Any], hoisted: dict[str, Any]) -> dict[str, Any]:
    return _wrapper({"accept": {"type": "boolean"},
                     "reason": {"type": "string", "maxLength": 300},
                     "canonical_ast": ast_schema}, ["accept", "reason", "canonical_ast"], hoisted)


def judge_messages(dsl_schema: dict[str, Any], query: str, gold_ast: dict[str, Any] | None,
                   student_ast: dict[str, Any] | None, student_raw: str) -> list[dict[str, str]]:
    student = dumps(student_ast) if student_ast is not None else f"(not a JSON object) {student_raw}"
    lines = ["Schema (JSON Schema):", render_schema(dsl_schema, "json"), "",
             query.strip() if query.startswith((CONTEXT_PREFIX, REQUEST_PREFIX)) else render_request(query),
             f"Reference AST: {dumps(gold_ast) if gold_ast is not None else '(none)'}",
             f"Model's AST: {student}"]
    return [{"role": "system", "content": JUDGE_SYSTEM}, {"role": "user", "content": "\n".join(lines)}]


JUDGE_REPLY_TOKENS = 1024


def parse_verdict(text: str, dsl_schema: dict[str, Any], student_ast: dict[str, Any] | None) -> Verdict:
    """A Verdict; a student output that is not a JSON object is never accepted, whatever the reply says."""
    obj = extract_json(text)
    _check_envelope(obj, _judge_wrapper({}, {}), "verdict")
    canonical_ast = obj["canonical_ast"] if isinstance(obj["canonical_ast"], dict) else None
    verdict = Verdict(accept=bool(obj["accept"]) and student_ast is not None, canonical_ast=canonical_ast,
                      reason=obj["reason"], raw=obj)
    error = dsl.validation_error(dsl_schema, obj["canonical_ast"])
    if error is not None:
        raise BadReply(f"the verdict's canonical_ast breaks the DSL schema ({error})", fallback=verdict)
    return verdict
