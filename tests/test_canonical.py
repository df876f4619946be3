"""The canonicalizer on hand-written pairs: what must mean the same, and what must not."""
from __future__ import annotations

import pytest

from ast_distill.canonical import canonical, canonical_text, exact_match, render_ast, semantic_match

RANGE = frozenset({"within"})


def cmp(field: str, op: str, value: object) -> dict:
    return {"field": field, "op": op, "value": value}


def q(**parts: object) -> dict:
    return {"type": "query", **parts}


A, B, C = cmp("price", "above", 10), cmp("category", "equals", "toy"), cmp("stock", "below", 3)

SAME = [
    pytest.param(q(filter={"and": [A, B]}), q(filter={"and": [B, A]}), id="and-children-order"),
    pytest.param(q(filter={"or": [A, B, C]}), q(filter={"or": [C, A, B]}), id="or-children-order"),
    pytest.param(q(filter={"and": [A, {"and": [B, C]}]}), q(filter={"and": [A, B, C]}), id="nested-and-flattened"),
    pytest.param(q(filter={"or": [{"or": [A, B]}, C]}), q(filter={"or": [C, B, A]}), id="nested-or-flattened"),
    pytest.param(q(filter={"and": [A, A]}), q(filter=A), id="duplicate-child-collapses"),
    pytest.param(q(filter={"not": {"not": A}}), q(filter=A), id="double-negation"),
    pytest.param(q(filter=cmp("category", "one_of", ["toy", "book"])),
                 q(filter=cmp("category", "one_of", ["book", "toy"])), id="in-list-is-a-set"),
    pytest.param(q(filter=cmp("category", "one_of", ["toy", "toy", "book"])),
                 q(filter=cmp("category", "one_of", ["book", "toy"])), id="in-list-duplicates"),
    pytest.param(q(select=["name", "price"]), q(select=["price", "name"]), id="select-is-a-set"),
    pytest.param(q(group_by=["category", "active"], aggregate={"function": "count"}),
                 q(aggregate={"function": "count"}, group_by=["active", "category"]), id="group-by-is-a-set"),
    pytest.param(q(filter=cmp("price", "above", 1)), q(filter=cmp("price", "above", 1.0)), id="1-equals-1.0"),
    pytest.param(q(filter=cmp("price", "within", [1, 2.0])), q(filter=cmp("price", "within", [1.0, 2])),
                 id="range-numbers-by-value"),
    pytest.param({"filter": A, "type": "query", "limit": 5}, q(limit=5, filter=A), id="key-order"),
    pytest.param({"type": "refusal", "reason": "no flights here", "suggestion": "ask about products"},
                 {"type": "refusal", "reason": "pas de vols", "suggestion": "autre chose"}, id="refusals-any-text"),
]

DIFFERENT = [
    pytest.param(q(filter={"and": [A, B]}), q(filter={"or": [A, B]}), id="and-vs-or"),
    pytest.param(q(filter={"and": [A, {"or": [B, C]}]}), q(filter={"and": [A, B, C]}), id="or-inside-and-kept"),
    pytest.param(q(filter={"not": A}), q(filter=A), id="negation-kept"),
    pytest.param(q(filter=cmp("price", "within", [1, 5])), q(filter=cmp("price", "within", [5, 1])),
                 id="between-order-kept"),
    pytest.param(q(sort=[{"field": "price", "order": "asc"}, {"field": "stock", "order": "desc"}]),
                 q(sort=[{"field": "stock", "order": "desc"}, {"field": "price", "order": "asc"}]),
                 id="sort-keys-order-kept"),
    pytest.param(q(sort=[{"field": "price", "order": "asc"}]), q(sort=[{"field": "price", "order": "desc"}]),
                 id="sort-direction"),
    pytest.param(q(filter=cmp("price", "above", 10)), q(filter=cmp("price", "above", 10.5)), id="other-number"),
    pytest.param(q(filter=cmp("price", "above", 10)), q(filter=cmp("price", "below", 10)), id="other-operator"),
    pytest.param(q(filter=cmp("name", "equals", "Toy")), q(filter=cmp("name", "equals", "toy")),
                 id="strings-case-sensitive"),
    pytest.param(q(select=["name"]), q(select=["name", "price"]), id="select-subset"),
    pytest.param(q(limit=5), q(limit=6), id="limit"),
    pytest.param(q(filter=A), q(), id="missing-filter"),
    pytest.param({"type": "refusal", "reason": "r", "suggestion": "s"}, q(), id="refusal-vs-empty-query"),
    pytest.param({"type": "refusal", "reason": "r", "suggestion": "s"}, q(filter=A), id="refusal-vs-query"),
]


@pytest.mark.parametrize("a,b", SAME)
def test_asts_with_the_same_meaning_match(a: dict, b: dict) -> None:
    assert semantic_match(a, b, RANGE)
    assert semantic_match(b, a, RANGE)
    assert canonical_text(a, RANGE) == canonical_text(b, RANGE)


@pytest.mark.parametrize("a,b", DIFFERENT)
def test_asts_with_different_meanings_do_not_match(a: dict, b: dict) -> None:
    assert not semantic_match(a, b, RANGE)
    assert not semantic_match(b, a, RANGE)


def test_a_list_value_of_a_non_range_operator_is_a_set_but_a_range_keeps_its_order() -> None:
    one_of = q(filter=cmp("stock", "one_of", [5, 1]))
    assert semantic_match(one_of, q(filter=cmp("stock", "one_of", [1, 5])), RANGE)
    # The same list under the schema's range alias is an ordered [low, high] pair.
    assert not semantic_match(q(filter=cmp("stock", "within", [5, 1])), q(filter=cmp("stock", "within", [1, 5])),
                              RANGE)


def test_non_objects_never_match() -> None:
    assert not semantic_match(None, None)
    assert not semantic_match("{}", "{}")
    assert not semantic_match([q()], [q()])
    assert not exact_match(None, None)


def test_exact_match_ignores_key_order_only() -> None:
    assert exact_match({"filter": A, "type": "query"}, q(filter=A))
    assert not exact_match(q(filter={"and": [A, B]}), q(filter={"and": [B, A]}))
    assert not exact_match(q(filter=cmp("price", "above", 1)), q(filter=cmp("price", "above", 1.0)))


def test_render_ast_is_minified_with_the_fixed_key_order() -> None:
    text = render_ast({"limit": 3, "filter": {"value": 1, "op": "above", "field": "price"}, "type": "query"})
    assert text == '{"type":"query","filter":{"field":"price","op":"above","value":1},"limit":3}'


def test_canonical_of_a_refusal_drops_the_text() -> None:
    assert canonical({"type": "refusal", "reason": "x", "suggestion": "y"}) == {"type": "refusal"}


# A user's schema of another shape (a smart-home command): the generic rules apply.
HOME = {
    "$defs": {"Room": {"type": "string", "enum": ["kitchen", "hall", "office"]}},
    "type": "object",
    "properties": {
        "rooms": {"type": "array", "items": {"$ref": "#/$defs/Room"}, "uniqueItems": True},
        "steps": {"type": "array", "items": {"type": "object", "properties": {
            "level": {"type": "number"}, "tags": {"type": "array", "items": {"type": "string"}, "uniqueItems": True}}}},
        "when": {"anyOf": [{"type": "string", "format": "date"},
                           {"type": "object", "properties": {"days": {"type": "array", "items": {"type": "string"},
                                                                      "uniqueItems": True}}}]},
    },
}


def test_any_schema_compares_objects_unordered_numbers_by_value_and_arrays_in_order_unless_unique_items() -> None:
    a = {"rooms": ["hall", "kitchen"], "steps": [{"level": 20.0, "tags": ["b", "a"]}, {"level": 3}],
         "when": {"days": ["mon", "sun"]}}
    same = {"when": {"days": ["sun", "mon"]}, "steps": [{"tags": ["a", "b"], "level": 20}, {"level": 3.0}],
            "rooms": ["kitchen", "hall"]}
    steps_swapped = dict(a, steps=list(reversed(a["steps"])))  # steps have no uniqueItems: their order is meaning
    assert semantic_match(a, same, None, HOME)
    assert not semantic_match(a, steps_swapped, None, HOME)
    assert not semantic_match(a, dict(a, rooms=["hall"]), None, HOME)
    assert canonical(a, None, HOME)["rooms"] == ["hall", "kitchen"]
    refusal = {"type": "refusal", "reason": "no lights here", "suggestion": "ask about heating"}
    assert semantic_match(refusal, dict(refusal, reason="other words"), None, HOME)


def test_the_projects_dsl_keeps_its_richer_rules_when_its_schema_is_given() -> None:
    from helpers import make_tiny_schema_record

    from ast_distill import dsl

    schema = make_tiny_schema_record()["schema"]
    one = {"type": "query", "filter": {"or": [{"field": "category", "op": "one_of", "value": ["toy", "book"]},
                                              {"field": "price", "op": "above", "value": 5}]}}
    other = {"type": "query", "filter": {"or": [{"field": "price", "op": "above", "value": 5.0},
                                                {"field": "category", "op": "one_of", "value": ["book", "toy"]}]}}
    assert semantic_match(one, other, dsl.range_aliases(schema), schema)  # and/or children and `in` lists as sets
