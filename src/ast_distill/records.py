"""What every record of the pipeline shares: its languages, splits and kinds, and the one rule for comparing
requests. Torch-free and import-free (below every stage and teacher), so any module may use it."""
from __future__ import annotations

import json
import re
from typing import Any

LANGUAGES = ("en", "fr")

# Splits of the d_04 training corpus, then d_05's test split.
CORPUS_SPLITS = ("train", "val", "pref")
SPLITS = CORPUS_SPLITS + ("test",)
TRAINED_SPLITS = ("train",)  # SFT learns from these
EVAL_SPLITS = ("val",)  # SFT's eval_loss is measured on these

# A row asks for a query AST, for a refusal (the schema cannot express the request), or for a clarification (the
# request is ambiguous or misses a value it needs: a question and the queries it could mean).
QUERY = "query"
REFUSAL = "refusal"
CLARIFICATION = "clarification"
KINDS = (QUERY, REFUSAL, CLARIFICATION)


def is_refusal(ast: Any) -> bool:
    """An AST that refuses ({"type": "refusal", ...}); the one test for it."""
    return isinstance(ast, dict) and ast.get("type") == REFUSAL


def is_clarification(ast: Any) -> bool:
    """An AST that asks back ({"type": "clarification", "question": ..., "options": [...]}); the one test for it."""
    return isinstance(ast, dict) and ast.get("type") == CLARIFICATION


def kind_of(ast: Any) -> str:
    """The kind of row whose gold AST this is (records.KINDS)."""
    return REFUSAL if is_refusal(ast) else CLARIFICATION if is_clarification(ast) else QUERY


def clarification_options(ast: Any) -> list[Any]:
    """The option ASTs a clarification offers ([] for anything else, or options without an ast)."""
    if not is_clarification(ast) or not isinstance(ast.get("options"), list):
        return []
    return [o["ast"] for o in ast["options"] if isinstance(o, dict) and "ast" in o]


def normalize_query(text: str) -> str:
    """Case, punctuation and spacing folded: two requests equal here say the same words."""
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())


def context_text(context: Any) -> str:
    """A request's context (today's date, the user's defaults, ...) as the prompt shows it: minified JSON, keys
    sorted; "" when there is none."""
    if not context:
        return ""
    return json.dumps(context, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


def request_key(query: str, context: Any = None) -> str:
    """What makes two rows the same request: the words (normalize_query) and the context they come with. "Show
    today's orders" with a context and without one are two requests (one is answered, the other asked back)."""
    text = context_text(context)
    return normalize_query(query) + (f" | {text}" if text else "")


def check_context(context: Any, where: str) -> str | None:
    """None when `context` is absent or a JSON object, else a one-line reason naming `where`."""
    if context is None or isinstance(context, dict):
        return None
    return f"{where}: the context must be a JSON object (e.g. {{\"today\": \"2026-12-01\"}}), got {type(context).__name__}"
