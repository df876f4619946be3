"""records.py: the one home of languages, splits, kinds, the refusal test and request normalization."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from ast_distill import records
from ast_distill.records import (CLARIFICATION, KINDS, QUERY, REFUSAL, check_context, clarification_options,
                                 is_clarification, is_refusal, kind_of, normalize_query, request_key)


@pytest.mark.parametrize("value, refusal", [
    ({"type": "refusal", "reason": "no such field", "suggestion": "filter on price"}, True),
    ({"type": "refusal"}, True),
    ({"type": "query", "filter": {"field": "price", "op": "gt", "value": 3}}, False),
    ({"reason": "no type key"}, False),
    ({"type": "Refusal"}, False),
    ([{"type": "refusal"}], False),
    ("refusal", False),
    (None, False),
])
def test_is_refusal_and_kind_of_agree_on_every_shape(value: object, refusal: bool) -> None:
    assert is_refusal(value) is refusal
    assert kind_of(value) == (REFUSAL if refusal else QUERY)
    assert kind_of(value) in KINDS


def test_kinds_and_refusal_type_are_the_strings_rows_and_asts_use() -> None:
    assert (QUERY, REFUSAL, CLARIFICATION) == ("query", "refusal", "clarification")
    assert KINDS == (QUERY, REFUSAL, CLARIFICATION)


def test_a_clarification_is_its_own_kind_and_offers_its_option_asts() -> None:
    asked = {"type": "clarification", "question": "Which room?",
             "options": [{"label": "kitchen", "ast": {"type": "query", "limit": 1}}, {"label": "no ast"}]}
    assert kind_of(asked) == CLARIFICATION and is_clarification(asked) and not is_refusal(asked)
    assert clarification_options(asked) == [{"type": "query", "limit": 1}]  # an option without an ast is none
    assert clarification_options({"type": "query"}) == [] and not is_clarification("clarification")


def test_the_same_words_with_and_without_a_context_are_two_requests() -> None:
    words = "Devices installed today!"
    assert request_key(words) == request_key("devices installed TODAY") == normalize_query(words)
    with_context = request_key(words, {"today": "2026-12-01"})
    assert with_context != request_key(words) and with_context == request_key(words, {"today": "2026-12-01"})
    assert request_key(words, {"b": 1, "a": 2}) == request_key(words, {"a": 2, "b": 1})  # key order is no change
    assert request_key(words, {}) == request_key(words)  # an empty context is none
    assert check_context(None, "x") is None and check_context({"today": "2026-12-01"}, "x") is None
    assert check_context(["today"], "line 3") == ('line 3: the context must be a JSON object (e.g. '
                                                  '{"today": "2026-12-01"}), got list')


@pytest.mark.parametrize("a, b", [
    ("Show me the listings!", "show me the listings"),
    ("  List   cars,\tprice > 10 ", "list cars price 10"),
    ("Affichez les prix : « élevés » ?", "affichez les prix élevés"),
    ("price_min=3", "price_min 3"),
])
def test_normalize_query_folds_case_punctuation_and_spacing(a: str, b: str) -> None:
    assert normalize_query(a) == b
    assert normalize_query(normalize_query(a)) == normalize_query(a)


def test_normalize_query_keeps_words_apart() -> None:
    assert normalize_query("price 10") != normalize_query("price 100")
    assert normalize_query("Élevé") == "élevé"  # accents are words, not punctuation


def test_splits_languages_and_their_groupings() -> None:
    assert records.LANGUAGES == ("en", "fr")
    assert records.SPLITS == records.CORPUS_SPLITS + ("test",)
    assert set(records.TRAINED_SPLITS + records.EVAL_SPLITS) <= set(records.CORPUS_SPLITS)
    assert not set(records.TRAINED_SPLITS) & set(records.EVAL_SPLITS)


def test_records_imports_nothing_of_the_package() -> None:
    tree = ast.parse(Path(records.__file__).read_text(encoding="utf-8"))
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert all(name in sys.stdlib_module_names or name == "__future__" for name in imported), imported
