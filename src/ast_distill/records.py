"""What every record of the pipeline shares: its languages, splits and kinds, and the one rule for comparing
requests. Torch-free and import-free (below every stage and teacher), so any module may use it."""
from __future__ import annotations

import re
from typing import Any

LANGUAGES = ("en", "fr")

# Splits of the d_04 training corpus, then d_05's test split.
CORPUS_SPLITS = ("train", "val", "pref")
SPLITS = CORPUS_SPLITS + ("test",)
TRAINED_SPLITS = ("train",)  # SFT learns from these
EVAL_SPLITS = ("val",)  # SFT's eval_loss is measured on these

# A row asks for a query AST, or for a refusal (the schema cannot express the request).
QUERY = "query"
REFUSAL = "refusal"
KINDS = (QUERY, REFUSAL)


def is_refusal(ast: Any) -> bool:
    """An AST that refuses ({"type": "refusal", ...}); the one test for it."""
    return isinstance(ast, dict) and ast.get("type") == REFUSAL


def kind_of(ast: Any) -> str:
    """The kind of row whose gold AST this is."""
    return REFUSAL if is_refusal(ast) else QUERY


def normalize_query(text: str) -> str:
    """Case, punctuation and spacing folded: two requests equal here say the same words."""
    return " ".join(re.sub(r"[^\w]+", " ", text.lower()).split())
