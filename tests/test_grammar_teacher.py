"""The built-in grammar teacher: valid ASTs, determinism, EN and FR, refusals, values readable in the text."""
from __future__ import annotations

import ast as pyast
import asyncio
import calendar
import random
import re
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from ast_distill import dsl, jsonl, teachers
from ast_distill.config import REPO_ROOT, load_config
from ast_distill.errors import UserError
from ast_distill.records import KINDS, clarification_options
from ast_distill.teachers import make_teacher
from ast_distill.teachers.grammar import MONTHS, GrammarTeacher

PROMPTS = jsonl.read_jsonl(REPO_ROOT / "data" / "domain_prompts.jsonl")
CATALOG = dsl.load_catalog(REPO_ROOT / "data" / "operator_catalog.json")
TEMPLATE = dsl.load_template(REPO_ROOT / "data" / "base_schema_template.json")
ALL_OPS = {op.name: op.synonyms[-1] for op in CATALOG}


def schema_row(prompt: dict[str, Any], variant: int, operators: dict[str, str] | None = None,
               teacher: GrammarTeacher | None = None) -> tuple[dict[str, Any], dict[str, Any]]:
    teacher = teacher or GrammarTeacher(seed=1)
    spec = teacher.domain_spec_sync(prompt, 4, variant)
    if operators is None:
        operators = dsl.choose_operators(CATALOG, random.Random(f"{prompt['id']}:{variant}"), 4, 7)
    schema = dsl.build_schema(TEMPLATE, spec["domain"], spec["description"], spec["fields"], operators, CATALOG)
    row = {"id": f"{prompt['id']}-{variant}", "domain": spec["domain"], "schema": schema, "operators": operators,
           "fields": spec["fields"]}
    return row, spec


def leaves(node: Any) -> list[dict[str, Any]]:
    if not isinstance(node, dict):
        return []
    if "field" in node:
        return [node]
    found = []
    for key in ("and", "or"):
        for child in node.get(key, []):
            found += leaves(child)
    return found + (leaves(node["not"]) if "not" in node else [])


def surface_forms(value: Any, spec_field: dict[str, Any]) -> list[str]:
    """Ways a request may write a value so that a reader recovers exactly it."""
    if isinstance(value, bool):
        key = "true" if value else "false"
        phrases = list((spec_field.get("value_labels") or {}).get(key, {}).values())
        return phrases + (["yes", "oui"] if value else ["no", "non"])
    if spec_field["type"] == "enum":
        spoken = list((spec_field.get("value_labels") or {}).get(str(value), {}).values())
        return spoken + [str(value), str(value).replace("_", " ")]
    if spec_field["type"] == "date":
        year, month, day = (int(x) for x in value.split("-"))
        worded = [f"{MONTHS['en'][month - 1]} {day}, {year}", f"{day} {MONTHS['en'][month - 1]} {year}",
                  f"{'1er' if day == 1 else day} {MONTHS['fr'][month - 1]} {year}"]
        return [value] + worded
    if isinstance(value, float) and value.is_integer():
        return [str(int(value))]
    return [str(value)]


VARIED = [PROMPTS[i] for i in (0, 1, 3, 9, 15, 21)]


@pytest.mark.parametrize("prompt", VARIED, ids=lambda p: p["id"])
def test_every_generated_ast_validates(prompt: dict[str, Any]) -> None:
    teacher = GrammarTeacher(seed=3, refusal_fraction=0.2)
    for variant, operators in enumerate([None, None, {"eq": "is"}, ALL_OPS]):
        row, spec = schema_row(prompt, variant, operators, teacher)
        pairs = teacher.generate_pairs_sync(row, spec, 150, seed=variant)
        assert len(pairs) == 150
        for pair in pairs:
            assert dsl.validation_error(row["schema"], pair.ast) is None, (pair.query, pair.ast)
            assert pair.kind == pair.ast["type"] and pair.kind in KINDS
            for option in clarification_options(pair.ast):  # each option is a query of the schema on its own
                assert option["type"] == "query" and dsl.validation_error(row["schema"], option) is None


def test_same_seed_same_pairs_other_seed_other_pairs() -> None:
    row, spec = schema_row(PROMPTS[0], 0)
    first = GrammarTeacher(seed=5).generate_pairs_sync(row, spec, 60, seed=9)
    again = GrammarTeacher(seed=5).generate_pairs_sync(row, spec, 60, seed=9)
    other = GrammarTeacher(seed=5).generate_pairs_sync(row, spec, 60, seed=10)
    assert [(p.query, p.ast) for p in first] == [(p.query, p.ast) for p in again]
    assert [p.query for p in first] != [p.query for p in other]


def test_english_and_french_about_half_each() -> None:
    row, spec = schema_row(PROMPTS[4], 1)
    pairs = GrammarTeacher(seed=2).generate_pairs_sync(row, spec, 200, seed=1)
    languages = [p.language for p in pairs]
    assert languages.count("en") == languages.count("fr") == 100
    french = [p.query for p in pairs if p.language == "fr"]
    assert sum(bool(re.search(r"\b(les|dont|où|des|par)\b", q)) for q in french) > len(french) * 0.6


@pytest.mark.parametrize("fraction", [0.0, 0.15, 0.4])
def test_refusal_share_follows_the_fraction(fraction: float) -> None:
    row, spec = schema_row(PROMPTS[6], 0)
    pairs = GrammarTeacher(seed=4, refusal_fraction=fraction).generate_pairs_sync(row, spec, 100, seed=2)
    refusals = [p for p in pairs if p.kind == "refusal"]
    assert len(refusals) == round(100 * fraction)
    for pair in refusals:
        assert pair.ast["reason"] and pair.ast["suggestion"]
        assert len(pair.ast["reason"]) <= 160 and len(pair.ast["suggestion"]) <= 160


def test_refusals_cover_unknown_fields_write_operations_and_missing_operators() -> None:
    # A schema with eq only lacks text search and ordering, so every refusal kind is possible.
    row, spec = schema_row(PROMPTS[0], 2, {"eq": "equals"})
    pairs = GrammarTeacher(seed=1, refusal_fraction=0.5).generate_pairs_sync(row, spec, 200, seed=3)
    reasons = " ".join(p.ast["reason"] for p in pairs if p.kind == "refusal")
    assert "no field for" in reasons or "pas de champ" in reasons
    assert "only reads" in reasons or "ne fait que lire" in reasons or "single collection" in reasons
    assert "operator" in reasons or "opérateur" in reasons


def test_values_of_every_comparison_appear_in_the_request() -> None:
    teacher = GrammarTeacher(seed=8)
    checked = 0
    for prompt in PROMPTS[:12]:
        row, spec = schema_row(prompt, 0, ALL_OPS, teacher)
        by_name = {f["name"]: f for f in spec["fields"]}
        for pair in teacher.generate_pairs_sync(row, spec, 80, seed=1):
            if pair.context is not None:
                continue  # its values come from the context: test_context_requests_are_answered_from_the_context
            text = pair.query.lower()
            for leaf in leaves(pair.ast.get("filter")):
                values = leaf["value"] if isinstance(leaf["value"], list) else [leaf["value"]]
                for value in values:
                    forms = [f.lower() for f in surface_forms(value, by_name[leaf["field"]])]
                    assert any(form in text for form in forms), (pair.query, leaf)
                    checked += 1
    assert checked > 500


def test_requests_follow_the_one_text_one_ast_conventions() -> None:
    row, spec = schema_row(PROMPTS[2], 0, ALL_OPS)
    aliases = row["operators"]
    pairs = GrammarTeacher(seed=6).generate_pairs_sync(row, spec, 300, seed=0)
    types = {f["name"]: f["type"] for f in spec["fields"]}
    for pair in pairs:
        found = leaves(pair.ast.get("filter"))
        assert len({leaf["field"] for leaf in found}) == len(found)  # distinct fields
        for leaf in found:
            if leaf["op"] in (aliases["in"], aliases["not_in"]):
                assert len(leaf["value"]) >= 2
            if types[leaf["field"]] == "boolean":
                assert leaf["op"] == aliases["eq"]
            if types[leaf["field"]] == "date":  # before/after exist, so lt/gt are never used on dates
                assert leaf["op"] not in (aliases["lt"], aliases["gt"])


def test_queries_within_a_schema_are_distinct() -> None:
    row, spec = schema_row(PROMPTS[10], 0)
    pairs = GrammarTeacher(seed=7).generate_pairs_sync(row, spec, 300, seed=0)
    normalized = {" ".join(re.sub(r"[^\w]+", " ", p.query.lower()).split()) for p in pairs}
    assert len(normalized) / len(pairs) > 0.95


def test_domain_spec_picks_five_to_eight_fields_and_variants_differ() -> None:
    teacher = GrammarTeacher(seed=11)
    specs = [teacher.domain_spec_sync(PROMPTS[0], 6, variant) for variant in range(4)]
    pool = {f["name"] for f in PROMPTS[0]["fields"]}
    for spec in specs:
        names = [f["name"] for f in spec["fields"]]
        assert 5 <= len(names) <= 8 and set(names) <= pool
        assert {f["name"] for f in spec["other_fields"]} == pool - set(names)
        assert len(spec["example_queries"]) == 6
        dsl.check_fields(spec["fields"], "spec")
    assert len({tuple(f["name"] for f in s["fields"]) for s in specs}) > 1
    assert teacher.domain_spec_sync(PROMPTS[0], 6, 1) == specs[1]


def test_domain_spec_needs_a_field_pool() -> None:
    with pytest.raises(UserError, match="fields' pool"):
        GrammarTeacher(seed=1).domain_spec_sync({"id": "x", "domain": "x", "description": "y"}, 3, 0)


def test_works_from_a_spec_without_labels_like_an_llm_spec() -> None:
    row, spec = schema_row(PROMPTS[1], 0, ALL_OPS)
    bare = {"domain": spec["domain"], "description": spec["description"],
            "fields": [{k: f[k] for k in ("name", "type", "description", "values") if k in f} for f in spec["fields"]]}
    pairs = GrammarTeacher(seed=1).generate_pairs_sync(row, bare, 80, seed=0)
    assert len(pairs) == 80
    assert all(dsl.validation_error(row["schema"], p.ast) is None for p in pairs)


def test_judge_compares_meaning() -> None:
    row, _ = schema_row(PROMPTS[0], 0, ALL_OPS)
    teacher = GrammarTeacher(seed=0)
    a = {"field": "price", "op": ALL_OPS["gt"], "value": 100000}
    b = {"field": "bedrooms", "op": ALL_OPS["eq"], "value": 2}
    gold = {"type": "query", "filter": {"and": [a, b]}}
    same = {"filter": {"and": [b, {**a, "value": 100000.0}]}, "type": "query"}
    other = {"type": "query", "filter": {"and": [a, {**b, "value": 3}]}}

    def judge(student: Any) -> Any:
        return asyncio.run(teacher.judge(row["schema"], "q", gold, student, ""))

    assert judge(same).accept and judge(same).canonical_ast == gold
    assert not judge(other).accept and judge(other).canonical_ast == gold
    assert not judge(None).accept
    refusal = {"type": "refusal", "reason": "x", "suggestion": "y"}
    assert asyncio.run(teacher.judge(row["schema"], "q", refusal, {**refusal, "reason": "other"}, "")).accept


def test_factory_builds_the_grammar_teacher_and_asks_llm_backends_for_a_model() -> None:
    config = load_config(REPO_ROOT / "config" / "offline.json")
    teacher = make_teacher(config, None, retries=0, retry_wait_s=0.0, seed=4)
    assert isinstance(teacher, GrammarTeacher) and teacher.seed == 4
    assert teacher.refusal_fraction == config["dataset_generation"]["refusal_fraction"]
    llm = load_config(None)
    with pytest.raises(UserError, match="--teacher-model"):
        make_teacher(llm, None, retries=0, retry_wait_s=0.0, seed=0)
    bad = {**llm, "teacher": {**llm["teacher"], "backend": "magic"}}
    with pytest.raises(UserError, match="teacher.backend"):
        make_teacher(bad, "m", retries=0, retry_wait_s=0.0, seed=0)


def test_an_or_inside_an_and_is_introduced_by_either() -> None:
    row, spec = schema_row(PROMPTS[5], 0, ALL_OPS)
    nested = [p for p in GrammarTeacher(seed=2).generate_pairs_sync(row, spec, 400, seed=1)
              if p.kind == "query" and "and" in p.ast.get("filter", {})
              and any("or" in child for child in p.ast["filter"]["and"])]
    assert nested
    for pair in nested:
        assert re.search(r"\b(either|soit)\b|\(", pair.query), pair.query


def test_teacher_modules_import_no_private_name_from_another_module() -> None:
    # Every name one module of teachers/ (the grammar package included) uses from another is public.
    for path in sorted(Path(teachers.__file__).parent.rglob("*.py")):
        tree = pyast.parse(path.read_text(encoding="utf-8"))
        for node in pyast.walk(tree):
            if isinstance(node, pyast.ImportFrom):
                assert not [a.name for a in node.names if a.name.startswith("_")], (path.name, node.module)
            if isinstance(node, pyast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__"):
                assert isinstance(node.value, pyast.Name) and node.value.id in ("self", "cls"), \
                    (path.name, node.lineno, node.attr)


def test_clarifications_and_context_rows_follow_their_shares_and_validate() -> None:
    teacher = GrammarTeacher(seed=2, refusal_fraction=0.1, clarification_fraction=0.1, context_fraction=0.2)
    checked = 0
    for prompt in VARIED:
        row, spec = schema_row(prompt, 0, ALL_OPS, teacher)
        pairs = teacher.generate_pairs_sync(row, spec, 200, seed=4)
        kinds = Counter(p.kind for p in pairs)
        in_context = [p for p in pairs if p.context is not None]
        # Every schema here has an enum field, so every kind can be written: 10% asked, plus half of the 20% twins.
        assert len(in_context) == 20 and kinds["clarification"] == 20 + 20 and kinds["refusal"] == 20
        for pair in pairs:
            if pair.kind != "clarification":
                continue
            assert 0 < len(pair.ast["question"]) <= 160 and len(pair.ast["options"]) <= 3
            assert dsl.validation_error(row["schema"], pair.ast) is None
            for option in pair.ast["options"]:
                assert option["label"] and dsl.validation_error(row["schema"], option["ast"]) is None
                checked += 1
    assert checked > 100


def test_context_requests_are_answered_from_the_context_and_asked_back_without_it() -> None:
    teacher = GrammarTeacher(seed=5, context_fraction=0.3)
    seen_kinds = set()
    for prompt in PROMPTS[:12]:
        row, spec = schema_row(prompt, 0, ALL_OPS, teacher)
        pairs = teacher.generate_pairs_sync(row, spec, 60, seed=2)
        by_words = {}
        for pair in pairs:
            by_words.setdefault((pair.language, pair.query), []).append(pair)
        for pair in (p for p in pairs if p.context is not None):
            twin = [p for p in by_words[(pair.language, pair.query)] if p is not pair]
            assert len(twin) == 1 and twin[0].context is None and twin[0].kind == "clarification"
            assert pair.kind == "query"
            today = pair.context["today"]
            usual = pair.context.get("defaults", {})
            month = [today[:8] + "01", today[:8] + f"{calendar.monthrange(int(today[:4]), int(today[5:7]))[1]:02d}"]
            from_context = [leaf for leaf in leaves(pair.ast["filter"])
                            if leaf["value"] == today or leaf["value"] == month
                            or usual.get(leaf["field"], object()) == leaf["value"]]
            assert from_context, (pair.query, pair.context, pair.ast)  # the answer takes a value of its context
            seen_kinds |= {"today" if leaf["value"] == today else "month" if leaf["value"] == month else "usual"
                           for leaf in from_context}
    assert seen_kinds == {"today", "month", "usual"}
