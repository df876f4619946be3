"""The one prompt builder and completion renderer agree with the schema the decoder enforces."""
from __future__ import annotations

import json
import random

import xgrammar as xgr

from ast_distill import canonical, dsl, prompting
from ast_distill.config import REPO_ROOT

CATALOG = dsl.load_catalog(REPO_ROOT / "data" / "operator_catalog.json")
TEMPLATE = dsl.load_template(REPO_ROOT / "data" / "base_schema_template.json")
FIELDS = [
    {"name": "price", "type": "number", "description": "asking price in euros"},
    {"name": "city", "type": "enum", "values": ["Paris", "Lyon", "Nice"], "description": "city"},
    {"name": "listed_on", "type": "date", "description": "day the listing went online"},
    {"name": "title", "type": "string", "description": "headline of the ad"},
]


def _schema(seed: int = 0) -> dict:
    ops = dsl.choose_operators(CATALOG, random.Random(seed), 7, 7)
    return dsl.build_schema(TEMPLATE, "real estate", "Homes for sale.", FIELDS, ops, CATALOG)


def _property_orders(node: object) -> list[list[str]]:
    """Every `properties` key order in a JSON Schema, depth first."""
    found: list[list[str]] = []
    if isinstance(node, dict):
        if isinstance(node.get("properties"), dict):
            found.append(list(node["properties"]))
        for value in node.values():
            found += _property_orders(value)
    elif isinstance(node, list):
        for value in node:
            found += _property_orders(value)
    return found


def test_completion_key_order_follows_the_schema_property_order() -> None:
    # xgrammar emits object properties in schema order; a completion in another order could not be decoded.
    for order in _property_orders(_schema()):
        ranked = sorted(order, key=lambda k: canonical.KEY_ORDER.index(k))
        assert ranked == order, f"KEY_ORDER disagrees with schema properties {order}"


def test_rendered_completion_is_accepted_token_by_token_by_the_schema_grammar() -> None:
    schema = _schema()
    eq = schema["$defs"]["Compare"]["anyOf"][0]["properties"]["op"]["enum"][0]
    ast = {"limit": 5, "aggregate": {"field": "price", "function": "avg"}, "type": "query",
           "filter": {"and": [{"value": "Paris", "op": eq, "field": "city"},
                              {"field": "title", "op": eq, "value": "Loft"}]}, "group_by": ["city"]}
    assert dsl.validation_error(schema, ast) is None
    grammar = xgr.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False, separators=(",", ":"))
    text = canonical.render_ast(ast)
    vocab = [chr(c) for c in range(32, 127)]  # one token per printable character
    info = xgr.TokenizerInfo(vocab, stop_token_ids=[], vocab_size=len(vocab))
    matcher = xgr.GrammarMatcher(xgr.GrammarCompiler(info).compile_grammar(grammar), terminate_without_stop_token=True)
    assert all(matcher.accept_string(ch) for ch in text)
    assert matcher.is_terminated()
    out_of_order = xgr.GrammarMatcher(xgr.GrammarCompiler(info).compile_grammar(grammar),
                                      terminate_without_stop_token=True)
    assert not all(out_of_order.accept_string(ch) for ch in '{"limit":5,"type":"query"}')


def test_compact_schema_keeps_every_field_value_and_operator_in_fewer_characters() -> None:
    schema = _schema(3)
    compact = prompting.render_schema(schema, "compact")
    for f in FIELDS:
        assert f["name"] in compact
        for value in f.get("values", []):
            assert value in compact
    for alias in {a for f in dsl.schema_fields(schema) for a in f.ops}:
        assert alias in compact
    assert len(compact) * 4 < len(prompting.render_schema(schema, "json"))


def test_prompt_is_system_then_user_with_schema_and_request() -> None:
    messages = prompting.build_prompt(_schema(), "  flats in Paris ", "json")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[1]["content"].endswith("Request: flats in Paris")
    assert json.loads(messages[1]["content"].split("\n")[1])["title"] == "real estate query DSL"


# A user's schema of another shape: every keyword the outline must carry into the prompt.
SMART_HOME = {
    "title": "SmartHome", "description": "Commands for a smart home",
    "$defs": {"Room": {"type": "string", "enum": ["kitchen", "hall", "office"]},
              "Scene": {"type": "object", "properties": {"name": {"type": "string", "maxLength": 30},
                                                         "then": {"$ref": "#/$defs/Scene"}}}},
    "type": "object", "required": ["action"], "additionalProperties": False,
    "properties": {
        "action": {"enum": ["on", "off", "dim"], "description": "what to do"},
        "rooms": {"type": "array", "items": {"$ref": "#/$defs/Room"}, "uniqueItems": True, "minItems": 1,
                  "maxItems": 3},
        "level": {"type": "integer", "minimum": 0, "maximum": 100, "description": "brightness in percent"},
        "at": {"type": "string", "format": "date-time"},
        "scene": {"$ref": "#/$defs/Scene"},
        "when": {"oneOf": [{"type": "string", "format": "date"},
                           {"type": "object", "required": ["days"],
                            "properties": {"days": {"type": "array", "items": {"type": "string",
                                                                               "pattern": "^[a-z]{3}$"}}}}]},
    },
}


def test_a_schema_of_another_shape_keeps_every_path_type_value_bound_format_and_flag_in_fewer_characters() -> None:
    text = prompting.render_schema(SMART_HOME, "compact")
    lines = text.splitlines()
    assert lines[0] == "SmartHome: Commands for a smart home"
    for expected in ("action*:enum[on|off|dim] (what to do)", "rooms:array items 1..3 unique",
                     "rooms[]:enum[kitchen|hall|office]", "level:integer 0..100 (brightness in percent)",
                     "at:string fmt=date-time", "scene:->Scene", "when:one of 2", "when|1:string fmt=date",
                     "when|2.days*:array", "when|2.days[]:string pattern=^[a-z]{3}$", "Scene:",
                     "Scene.name:string len ..30", "Scene.then:->Scene", "(root):object no other keys"):
        assert expected in lines, expected
    assert len(text) * 2 < len(prompting.render_schema(SMART_HOME, "json"))
    assert prompting.render_schema(SMART_HOME, "json") == json.dumps(SMART_HOME, ensure_ascii=False,
                                                                     separators=(",", ":"))
