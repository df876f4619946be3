"""A user's own schema: the generic sampler, its phrasing, the outline's facts, stages 1-2 and bad schemas."""
from __future__ import annotations

import json
import random
import re
from pathlib import Path
from typing import Any

import pytest

from ast_distill import dsl
from ast_distill.errors import UserError
from ast_distill.jsonl import read_jsonl
from ast_distill.records import QUERY, REFUSAL
from ast_distill.schema_checks import dict_nodes
from ast_distill.schema_outline import render_outline
from ast_distill.teachers.grammar import GrammarTeacher
from ast_distill.teachers.grammar.generic import generic_pairs, words
from ast_distill.teachers.grammar.instances import InstanceSampler, regex_sample
from ast_distill.user_dsl import read_user_schema, schema_row, spec_from_schema, write_user_specs

SMART_HOME = Path(__file__).resolve().parents[1] / "data" / "examples" / "smart_home.schema.json"

# One schema per family of keywords the sampler must respect; together they hold every keyword it handles.
KEYWORD_SCHEMAS: dict[str, dict[str, Any]] = {
    "required_optional_bounds": {
        "type": "object", "additionalProperties": False, "required": ["count", "ratio"],
        "properties": {"count": {"type": "integer", "minimum": 3, "maximum": 9},
                       "ratio": {"type": "number", "exclusiveMinimum": 0, "exclusiveMaximum": 1},
                       "step": {"type": "integer", "multipleOf": 5, "minimum": 7, "maximum": 40},
                       "note": {"type": "string", "minLength": 2, "maxLength": 12},
                       "flag": {"type": "boolean"}, "maybe": {"type": ["integer", "null"]}}},
    "enums_const_formats_pattern": {
        "type": "object", "required": ["kind", "day", "at", "when", "mail", "code", "level"],
        "properties": {"kind": {"const": "event"}, "day": {"type": "string", "format": "date"},
                       "at": {"type": "string", "format": "time"}, "when": {"type": "string", "format": "date-time"},
                       "mail": {"type": "string", "format": "email"},
                       "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2,4}$"},
                       "level": {"enum": ["low", "mid", "high"]}}},
    "arrays_unique_tuples_2020": {
        "$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "required": ["tags", "point"],
        "properties": {"tags": {"type": "array", "items": {"enum": ["a", "b", "c", "d"]}, "minItems": 2,
                                "maxItems": 3, "uniqueItems": True},
                       "point": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}],
                                 "items": False}}},
    "tuple_draft07_definitions": {
        "$schema": "http://json-schema.org/draft-07/schema#", "type": "object", "required": ["pair", "who"],
        "definitions": {"person": {"type": "object", "required": ["name"], "additionalProperties": False,
                                   "properties": {"name": {"type": "string"}, "age": {"type": "integer",
                                                                                      "minimum": 0, "maximum": 120}}}},
        "properties": {"pair": {"type": "array", "items": [{"type": "string"}, {"type": "integer"}],
                                "additionalItems": False},
                       "who": {"$ref": "#/definitions/person"}}},
    "one_of_any_of_all_of": {
        "oneOf": [{"type": "object", "required": ["op", "x"], "additionalProperties": False,
                   "properties": {"op": {"const": "move"}, "x": {"type": "integer"}}},
                  {"type": "object", "required": ["op", "speed"], "additionalProperties": False,
                   "properties": {"op": {"const": "spin"}, "speed": {"anyOf": [{"type": "integer", "minimum": 1},
                                                                               {"enum": ["slow", "fast"]}]}}},
                  {"allOf": [{"type": "object", "required": ["op"], "properties": {"op": {"const": "wait"}}},
                             {"required": ["seconds"], "properties": {"seconds": {"type": "integer",
                                                                                  "minimum": 1}}}]}]},
    "recursion_defs": {
        "$defs": {"node": {"type": "object", "required": ["label"], "additionalProperties": False,
                           "properties": {"label": {"type": "string", "maxLength": 8},
                                          "children": {"type": "array", "items": {"$ref": "#/$defs/node"},
                                                       "maxItems": 2}}}},
        "$ref": "#/$defs/node"},
    "root_self_reference": {
        "type": "object", "required": ["value"], "additionalProperties": False,
        "properties": {"value": {"type": "integer"}, "next": {"$ref": "#"}}},
}


@pytest.mark.parametrize("name", sorted(KEYWORD_SCHEMAS))
def test_every_sample_validates_against_its_schema(name: str) -> None:
    schema = KEYWORD_SCHEMAS[name]
    validator = dsl.validator_for(schema)
    sampler = InstanceSampler(schema, random.Random(7))
    samples = [sampler.sample() for _ in range(60)]
    bad = [(s, next(iter(validator.iter_errors(s))).message) for s in samples if not validator.is_valid(s)]
    assert not bad, bad[:3]
    assert len({json.dumps(s, sort_keys=True) for s in samples}) > 5  # samples vary


def test_samples_leave_optional_properties_out_and_take_every_branch() -> None:
    sampler = InstanceSampler(KEYWORD_SCHEMAS["required_optional_bounds"], random.Random(1))
    keys = [set(sampler.sample()) for _ in range(80)]
    assert any(k == {"count", "ratio"} for k in keys) and any("flag" in k for k in keys)
    ops = {InstanceSampler(KEYWORD_SCHEMAS["one_of_any_of_all_of"], random.Random(i)).sample()["op"]
           for i in range(40)}
    assert ops == {"move", "spin", "wait"}


def test_recursive_schemas_end() -> None:
    sampler = InstanceSampler(KEYWORD_SCHEMAS["recursion_defs"], random.Random(3), max_depth=3)
    depths = [json.dumps(sampler.sample()).count("children") for _ in range(40)]
    assert max(depths) >= 1  # it does nest, and every sample came back (no endless recursion)


def test_regex_sampler_matches_its_pattern() -> None:
    rng = random.Random(5)
    for pattern in (r"^[A-Z]{3}-[0-9]{2,4}$", r"^(ab|cd)+x?$", r"^\d{2}:\d{2}$", r"^[a-f0-9]{8}$"):
        for _ in range(20):
            assert re.fullmatch(pattern.strip("^$"), regex_sample(pattern, rng))


def test_generic_pairs_are_valid_bilingual_and_name_their_values() -> None:
    schema = dsl.with_refusal(json.loads(SMART_HOME.read_text()))
    pairs = generic_pairs(schema, 200, 0.15, random.Random(11))
    assert len(pairs) == 200
    validator = dsl.validator_for(schema)
    assert all(validator.is_valid(p.ast) for p in pairs)
    assert {p.language for p in pairs} == {"en", "fr"}
    refusals = [p for p in pairs if p.kind == REFUSAL]
    assert 20 <= len(refusals) <= 40 and all(p.ast["type"] == "refusal" for p in refusals)
    assert len({p.query.lower() for p in pairs}) == 200
    for pair in (p for p in pairs if p.kind == QUERY):
        text = pair.query.lower()
        for key in ("action", "room", "color", "mode", "name"):  # every enum/const value is said in the request
            if key in pair.ast:
                assert words(pair.ast[key]) in text or pair.ast[key] in text, (key, pair.query, pair.ast)
        for key in ("brightness", "position"):
            value = pair.ast.get(key)
            if value is not None and value > 10:
                assert str(value) in text, (key, pair.query)


def test_grammar_teacher_uses_the_generic_mode_for_a_user_schema() -> None:
    row = {"id": "u1", "schema": dsl.with_refusal(json.loads(SMART_HOME.read_text()))}
    pairs = GrammarTeacher(seed=3).generate_pairs_sync(row, None, 30, seed=1)
    assert len(pairs) == 30 and all(dsl.validator_for(row["schema"]).is_valid(p.ast) for p in pairs)
    assert any(p.ast.get("action") == "lights" for p in pairs)


@pytest.mark.parametrize("name", sorted(KEYWORD_SCHEMAS))
def test_outline_keeps_every_enum_value_and_bound(name: str) -> None:
    schema = KEYWORD_SCHEMAS[name]
    text = render_outline(dsl.with_refusal(schema))
    bounds = ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum", "minItems", "maxItems", "minLength",
              "maxLength", "format", "pattern", "const")
    facts = [str(v) for node in dict_nodes(schema) for v in node.get("enum", [])]
    facts += [str(node[k]) for node in dict_nodes(schema) for k in bounds
              if k in node and not isinstance(node[k], bool)]
    missing = [fact for fact in facts if fact not in text]
    assert not missing, (missing, text)
    assert text.endswith("or refuse: type*:const=refusal reason*:string suggestion*:string")


def test_stage_one_derives_a_spec_and_stage_two_wraps_the_schema(tmp_path: Path) -> None:
    path = tmp_path / "smart_home.schema.json"
    path.write_text(SMART_HOME.read_text())
    write_user_specs([str(path)], tmp_path / "d_01.jsonl", {"user_schemas": [str(path)]})
    [spec] = read_jsonl(tmp_path / "d_01.jsonl")
    assert spec["domain"] == "smart_home" and "room:enum[kitchen|" in spec["outline"]
    row = schema_row(spec, "d_01 #1")
    assert dsl.validator_for(row["schema"]).is_valid(dsl.SAMPLE_REFUSAL)
    assert dsl.validator_for(row["schema"]).is_valid({"action": "lights", "room": "office", "on": True})
    assert row["id"] == schema_row(spec_from_schema(path), "again")["id"]  # stable: stage 3 rows keep their ids
    path.write_text(SMART_HOME.read_text().replace('"garden"', '"garage"'))
    with pytest.raises(UserError, match="changed since stage 1"):
        schema_row(spec, "d_01 #1")


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", "is not JSON"),
    ('{"type": "objekt"}', "not a valid JSON Schema"),
    ('{"$ref": "https://example.com/other.json"}', "$ref"),
    ('{"type": "integer", "minimum": 5, "maximum": 1}', "admits no value"),
])
def test_a_bad_schema_is_one_line(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.json"
    path.write_text(text)
    with pytest.raises(UserError) as caught:
        read_user_schema(path)
    assert message in str(caught.value) and "\n" not in str(caught.value) and str(path) in str(caught.value)
