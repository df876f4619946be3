"""The failure profile: which part of the AST a wrong answer gets wrong, summed by cause, part and schema."""
from __future__ import annotations

from typing import Any

from ast_distill.failures import differing_parts, failure_detail, failure_profile

PRICE = {"field": "price", "op": "above", "value": 20}
BOOK = {"field": "category", "op": "equals", "value": "book"}
REFUSAL = {"type": "refusal", "reason": "not about products"}


def query(filter_: Any = None, **clauses: Any) -> dict[str, Any]:
    return {"type": "query", **({"filter": filter_} if filter_ is not None else {}), **clauses}


def test_differing_parts_names_what_changed_and_ignores_order_and_spelling() -> None:
    gold = query({"and": [PRICE, BOOK]}, sort=[{"field": "price", "order": "asc"}], limit=5)
    assert differing_parts(gold, query({"and": [BOOK, PRICE]}, sort=[{"field": "price", "order": "asc"}],
                                       limit=5.0)) == []
    assert differing_parts(gold, query({"and": [PRICE, {**BOOK, "field": "name"}]},
                                       sort=[{"field": "price", "order": "asc"}], limit=5)) == ["field"]
    assert differing_parts(gold, query({"and": [{**PRICE, "op": "below"}, {**BOOK, "value": "toy"}]},
                                       sort=[{"field": "price", "order": "asc"}], limit=5)) == ["operator", "value"]
    assert differing_parts(gold, query({"or": [PRICE, BOOK]}, sort=[{"field": "price", "order": "asc"}],
                                       limit=5)) == ["logic"]
    assert differing_parts(gold, query({"and": [PRICE, BOOK]}, sort=[{"field": "price", "order": "desc"}])) == [
        "sort", "limit"]
    assert differing_parts(query(PRICE), query(PRICE, aggregate={"function": "count"})) == ["aggregate"]


def record(gold: dict[str, Any], student: dict[str, Any] | None, *, schema: str = "s1", valid: bool = True,
           truncated: bool = False, semantic: bool = False) -> dict[str, Any]:
    return {"schema_id": schema, "kind": "refusal" if gold.get("type") == "refusal" else "query",
            "gold_ast": gold, "student_ast": student, "parsed": student is not None, "schema_valid": valid,
            "semantic_match": semantic, "teacher_verdict": True if semantic else False, "truncated": truncated}


def test_the_profile_sums_failures_by_cause_part_and_schema_with_their_fields_and_operators() -> None:
    rows = [
        record(query(PRICE), query(PRICE), semantic=True),  # passed
        record(query(PRICE), query({**PRICE, "value": 30})),  # value
        record(query({"and": [PRICE, BOOK]}), query(PRICE)),  # field
        record(query(BOOK), None, truncated=True, valid=False),  # ran out of tokens
        record(REFUSAL, query(BOOK), schema="s2"),  # missed refusal
        record(query(BOOK), REFUSAL, schema="s2"),  # wrongly refused
    ]
    assert failure_detail(rows[0]) is None
    assert failure_detail(rows[3])["cause"] == "truncated"
    profile = failure_profile(rows)
    assert profile["rows"] == 6 and profile["failed"] == 5
    assert profile["by_cause"] == {"wrong meaning": 2, "truncated": 1, "missed refusal": 1, "wrongly refused": 1}
    assert profile["by_part"] == {"value": 1, "field": 1}
    assert profile["fields"] == {"price": 2, "category": 3}
    assert list(profile["by_schema"]) == ["s1", "s2"]  # most failures first
    s1 = profile["by_schema"]["s1"]
    assert s1["rows"] == 4 and s1["failed"] == 3 and s1["operators"] == {"above": 2, "equals": 2}
    assert profile["by_schema"]["s2"]["by_cause"] == {"missed refusal": 1, "wrongly refused": 1}
