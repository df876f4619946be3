"""records.py: the one home of languages, splits, kinds, the refusal test and request normalization."""
from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

from ast_distill import records
from ast_distill.records import KINDS, QUERY, REFUSAL, is_refusal, kind_of, normalize_query


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
    assert (QUERY, REFUSAL) == ("query", "refusal") and KINDS == (QUERY, REFUSAL)


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
