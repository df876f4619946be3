"""Valid JSON Schemas the pipeline cannot use are one line each before any model runs: a $ref outside the
schema or naming nothing in it, and a root that admits no value; recursive and draft-07 schemas pass."""
from __future__ import annotations

from typing import Any

import pytest

from ast_distill import dsl
from ast_distill.errors import UserError

BAD: dict[str, tuple[Any, str]] = {
    "external ref": ({"type": "object", "properties": {"a": {"$ref": "other.json#/$defs/a"}}},
                     "$ref 'other.json#/$defs/a' at /properties/a points outside the schema"),
    "dangling ref": ({"properties": {"a": {"$ref": "#/$defs/nope"}}}, "$ref '#/$defs/nope' at /properties/a names nothing"),
    "not anything": ({"not": {}}, "(root) says `not: {}`"),
    "empty enum": ({"enum": []}, "its enum is empty"),
    "enum against type": ({"type": "string", "enum": [1, 2]}, "no value of its enum passes its other keywords"),
    "const against bounds": ({"type": "integer", "const": 9, "maximum": 5}, "no value of its const"),
    "minimum above maximum": ({"type": "number", "minimum": 5, "exclusiveMaximum": 5}, "minimum 5 is above"),
    "string lengths": ({"type": "string", "minLength": 4, "maxLength": 2}, "minLength 4 is above its maxLength 2"),
    "array sizes": ({"type": "array", "minItems": 3, "maxItems": 1}, "minItems 3 is above its maxItems 1"),
    "required false": ({"type": "object", "properties": {"a": False}, "required": ["a"]}, "/properties/a is `false`"),
    "required forbidden": ({"type": "object", "required": ["a"], "additionalProperties": False},
                           "requires 'a', which additionalProperties: false forbids"),
    "every branch empty": ({"oneOf": [{"enum": []}, {"not": {}}]}, "no branch of its oneOf admits a value"),
    "empty through a ref": ({"$defs": {"n": {"type": "integer", "minimum": 2, "maximum": 1}}, "type": "object",
                             "properties": {"x": {"$ref": "#/$defs/n"}}, "required": ["x"]},
                            "/properties/x: its minimum 2 is above its maximum 1"),
    "an allOf member empty": ({"allOf": [{"type": "object"}, {"enum": []}]}, "/allOf/1: its enum is empty"),
}

GOOD: dict[str, Any] = {
    "recursive tree": {"$defs": {"node": {"type": "object", "properties": {
        "kids": {"type": "array", "items": {"$ref": "#/$defs/node"}}}}}, "$ref": "#/$defs/node"},
    "self reference": {"type": "object", "properties": {"child": {"$ref": "#"}}},
    "draft-07 definitions": {"$schema": "http://json-schema.org/draft-07/schema#",
                             "definitions": {"a": {"type": "integer", "minimum": 0}}, "type": "object",
                             "properties": {"a": {"$ref": "#/definitions/a"}}, "required": ["a"]},
    "an empty branch beside a good one": {"anyOf": [{"enum": []}, {"type": "string"}]},
    "an optional property that admits nothing": {"type": "object", "properties": {"never": False}},
    "enum with a value its type allows": {"type": "string", "enum": [1, "one"]},
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_a_schema_the_pipeline_cannot_use_is_one_line_naming_where_and_why(name: str) -> None:
    schema, said = BAD[name]
    with pytest.raises(UserError) as caught:
        dsl.check_json_schema(schema, "user.json")
    message = str(caught.value)
    assert message.startswith("user.json: ") and said in message and "\n" not in message


@pytest.mark.parametrize("name", sorted(GOOD))
def test_recursive_draft_07_and_partly_empty_schemas_pass(name: str) -> None:
    dsl.check_json_schema(GOOD[name], "user.json")


def test_a_users_schema_is_wrapped_so_a_refusal_stays_a_valid_answer_and_its_refs_still_resolve() -> None:
    tree = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "required": ["name"],
            "definitions": {"tag": {"type": "string", "enum": ["a", "b"]}}, "additionalProperties": False,
            "properties": {"name": {"type": "string"}, "tag": {"$ref": "#/definitions/tag"}, "child": {"$ref": "#"}}}
    answers = dsl.with_refusal(tree)
    dsl.check_json_schema(answers, "wrapped")
    assert answers["$schema"] == tree["$schema"]
    refusal = {"type": "refusal", "reason": "no such field", "suggestion": "ask about names"}
    assert dsl.validation_error(tree, refusal) is not None and dsl.validation_error(answers, refusal) is None
    assert dsl.validation_error(answers, {"name": "x", "tag": "a", "child": {"name": "y"}}) is None
    assert dsl.validation_error(answers, {"name": "x", "tag": "c"}) is not None
    assert dsl.validation_error(answers, {"name": "x", "child": refusal}) is not None  # only the answer may refuse


def test_the_projects_dsl_already_admits_a_refusal_and_is_not_wrapped() -> None:
    from helpers import make_tiny_schema_record

    schema = make_tiny_schema_record()["schema"]
    assert dsl.with_refusal(schema) is schema
