"""scoring: the per-row rules (parse, verdicts, pass/fail causes) and the rates, on hand-made records; torch-free."""
from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

import pytest
from helpers import make_tiny_schema_record

from ast_distill.records import LANGUAGES
from ast_distill.scoring import (
    FAILURE_CAUSES,
    JUDGE_ERROR,
    RATE_KEYS,
    apply_judge_error,
    apply_verdict,
    classify_failure,
    metrics,
    parse_output,
    row_passes,
    score_output,
    summarize,
    teacher_accepted,
)
from ast_distill.teachers.base import TeacherError, Verdict
from ast_distill.canonical import semantic_match

SCHEMA = make_tiny_schema_record()["schema"]
GOLD = {"type": "query", "filter": {"field": "price", "op": "above", "value": 10}}
ASKED = {"type": "clarification", "question": "Which one?", "options": []}
REFUSAL = {"type": "refusal", "reason": "not about products", "suggestion": "ask about prices"}
HEAVY = ("torch", "transformers", "xgrammar", "ollama", "openai", "ast_distill.generation", "ast_distill.evaluation",
         "ast_distill.teachers.ollama_teacher", "ast_distill.teachers.openai_teacher")


def test_scoring_reporting_and_the_parse_path_import_without_torch_or_llm_clients() -> None:
    code = ("import sys\n"
            "import ast_distill.scoring, ast_distill.reporting\n"
            "from ast_distill.scoring import parse_output\n"
            "from ast_distill.reporting import build_reports\n"
            f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_predict_parses_with_the_scoring_rule() -> None:
    from ast_distill import predict, scoring

    assert predict.parse_output is scoring.parse_output


@pytest.mark.parametrize(("raw", "expected"), [
    ('{"type":"query"}', (True, {"type": "query"})),
    ('  {"type": "refusal", "reason": "r"}\n', (True, {"type": "refusal", "reason": "r"})),
    ('{"type":"query"', (False, None)),  # cut off
    ('[{"type":"query"}]', (False, None)),  # JSON, but not one object
    ('"text"', (False, None)),
    ('{"a":1} {"b":2}', (False, None)),  # two objects
    ("", (False, None)),
])
def test_parse_output_accepts_exactly_one_json_object(raw: str, expected: tuple[bool, Any]) -> None:
    assert parse_output(raw) == expected


@pytest.mark.parametrize(("verdict", "expected"), [
    (True, True), (False, False), (None, None), (JUDGE_ERROR, None),
    ({"accept": True}, True), ({"accept": False}, False), ({"reason": "no accept key"}, None),
    ("accept", True), ("Accepted", True), ("reject", False), ("REJECTED", False), ("maybe", None),
    (1, None), (0, None),  # a number is no verdict
])
def test_teacher_accepted_reads_every_verdict_shape(verdict: Any, expected: bool | None) -> None:
    assert teacher_accepted({"teacher_verdict": verdict}) is expected


def test_a_row_with_no_verdict_key_has_no_verdict() -> None:
    assert teacher_accepted({}) is None


def record(*, kind: str = "query", parsed: bool = True, valid: bool = True, semantic: bool = False,
           student_ast: Any = None, verdict: Any = None, **extra: Any) -> dict[str, Any]:
    if student_ast is None and parsed:
        student_ast = {"type": "query", "limit": 7}
    return {"id": "r", "kind": kind, "parsed": parsed, "schema_valid": parsed and valid, "exact_match": semantic,
            "semantic_match": semantic, "student_ast": student_ast if parsed else None, "teacher_verdict": verdict,
            "truncated": False, **extra}


def test_classify_failure_gives_one_cause_in_order() -> None:
    assert classify_failure(record(semantic=True, verdict=True)) is None
    assert classify_failure(record(verdict="accept")) is None  # the teacher held it right
    assert classify_failure(record(parsed=False)) == "not parsed"
    # A refusal row answered with an invalid query is a missed refusal before it is a schema problem.
    assert classify_failure(record(kind="refusal", valid=False)) == "missed refusal"
    assert classify_failure(record(student_ast=REFUSAL)) == "wrongly refused"
    assert classify_failure(record(valid=False)) == "schema invalid"
    assert classify_failure(record(verdict=False)) == "wrong meaning"
    assert classify_failure(record(verdict=JUDGE_ERROR)) == "wrong meaning"  # no accept: not a pass
    # Valid but the teacher accepted: passes even without a semantic match; invalid never passes.
    assert row_passes(record(verdict={"accept": True})) and not row_passes(record(valid=False, verdict=True))
    # The same two ways to get a clarification wrong: answering anyway, or asking back on an answerable request.
    assert classify_failure(record(kind="clarification", valid=False)) == "missed clarification"
    assert classify_failure(record(student_ast=ASKED)) == "wrongly asked"
    assert classify_failure(record(kind="clarification", student_ast=ASKED, verdict=False)) == "wrong meaning"
    causes = {classify_failure(r) for r in (record(parsed=False), record(kind="refusal"), record(student_ast=REFUSAL),
                                            record(valid=False), record(verdict=False), record(kind="clarification"),
                                            record(student_ast=ASKED))}
    assert causes == set(FAILURE_CAUSES)


def test_metrics_on_hand_made_records() -> None:
    records = [
        record(semantic=True, verdict=True),  # right
        record(verdict=False),  # wrong meaning, valid
        record(parsed=False, truncated=True) | {"retried": True},  # cut off, even with the bigger budget
        record(kind="refusal", student_ast=REFUSAL, semantic=True, verdict=True),  # refused rightly
        record(student_ast=REFUSAL, verdict=JUDGE_ERROR),  # refused wrongly; the judge failed
    ]
    m = metrics(records)
    assert tuple(m) == ("n", *RATE_KEYS)
    assert m == {"n": 5, "parsed_rate": 0.8, "schema_valid_rate": 0.8, "exact_match_rate": 0.4,
                 "semantic_match_rate": 0.4, "teacher_accept_rate": 0.4, "semantic_pass_rate": 0.4,
                 "query_semantic_match_rate": 0.25, "refusal_share": 0.2,  # 1 of 4 queries right; 1 refusal row
                 "refusal_precision": 0.5, "refusal_recall": 1.0, "clarification_share": 0.0,
                 "clarification_precision": None, "clarification_recall": None, "clarification_option_rate": None,
                 "truncated_rate": 0.2, "retried_rate": 0.2, "judge_error_rate": 0.2}
    empty = metrics([])
    assert empty["n"] == 0 and all(empty[key] is None for key in RATE_KEYS)


def test_every_rate_has_a_report_label() -> None:
    from ast_distill.reporting.summaries import METRIC_LABELS

    assert tuple(METRIC_LABELS) == RATE_KEYS


def test_summarize_splits_by_schema_and_language() -> None:
    records = [record(semantic=True, verdict=True, schema_seen=True, language="en"),
               record(verdict=False, schema_seen=False, language="de")]
    summary = summarize(records)
    assert summary["overall"]["n"] == 2
    assert (summary["by_schema"]["seen"]["semantic_pass_rate"], summary["by_schema"]["unseen"]["n"]) == (1.0, 1)
    assert sorted(summary["by_language"]) == sorted({*LANGUAGES, "de"})
    assert summary["by_language"]["fr"]["n"] == 0 and summary["by_language"]["de"]["semantic_pass_rate"] == 0.0


@dataclass
class Output:
    """Any object with a generation's fields scores: scoring does not need generation.py."""
    text: str
    token_ids: list[int] = field(default_factory=lambda: [1, 2, 3])
    truncated: bool = False
    latency_ms: float = 12.3456
    answer_logprob: float | None = -2.123456789  # None from a decoder without token probabilities


def test_score_output_then_a_verdict_or_a_judge_error() -> None:
    row = {"id": "x1", "schema_id": "s", "ast": GOLD, "query": "products above 10", "language": "en"}
    same = score_output(row, SCHEMA, Output(json.dumps(GOLD)), prompt_text="P", constrained=True)
    assert same["kind"] == "query" and same["semantic_match"] and same["teacher_verdict"] is True
    assert (same["new_tokens"], same["latency_ms"], same["answer_logprob"]) == (3, 12.346, -2.12346)

    refused = score_output({**row, "ast": REFUSAL}, SCHEMA, Output('{"type":"query"', answer_logprob=None),
                           prompt_text="P", constrained=False)
    assert refused["kind"] == "refusal" and not refused["parsed"] and refused["teacher_verdict"] is None
    assert refused["answer_logprob"] is None

    other = {**GOLD, "filter": {**GOLD["filter"], "value": 11}}
    judged = score_output(row, SCHEMA, Output(json.dumps(other)), prompt_text="P", constrained=True)
    assert judged["schema_valid"] and not judged["semantic_match"] and judged["teacher_verdict"] is None
    apply_verdict(judged, Verdict(accept=False, canonical_ast=GOLD, reason="value differs"))
    assert (judged["teacher_verdict"], judged["teacher_canonical"], judged["teacher_reason"]) == \
        (False, GOLD, "value differs")
    assert classify_failure(judged) == "wrong meaning"
    apply_judge_error(judged, TeacherError("timed out"))
    assert (judged["teacher_verdict"], judged["teacher_canonical"], judged["teacher_reason"]) == \
        (JUDGE_ERROR, None, "timed out")
    assert teacher_accepted(judged) is None


KITCHEN = {"type": "query", "filter": {"field": "room", "op": "is", "value": "kitchen"}}
HALL = {"type": "query", "filter": {"field": "room", "op": "is", "value": "hall"}}


def asking(*options: dict[str, Any]) -> dict[str, Any]:
    return {"type": "clarification", "question": "Which room?",
            "options": [{"label": str(i), "ast": ast} for i, ast in enumerate(options)]}


def test_clarification_precision_recall_and_gold_option_on_hand_made_records() -> None:
    gold = asking(KITCHEN, HALL)
    records = [
        record(kind="clarification", gold_ast=gold, student_ast=asking(HALL, KITCHEN), semantic=True, verdict=True),
        record(kind="clarification", gold_ast=gold, student_ast=asking(HALL)),  # asked, one gold option offered
        record(kind="clarification", gold_ast=gold, student_ast=KITCHEN),  # guessed instead of asking
        record(kind="clarification", gold_ast=asking(), student_ast=asking()),  # nothing to offer: not in the option rate
        record(student_ast=asking(KITCHEN)),  # asked back on a request it could answer
        record(semantic=True, verdict=True, context={"today": "2026-12-01"}),
    ]
    m = metrics(records)
    assert (m["clarification_share"], m["clarification_precision"], m["clarification_recall"]) == (
        round(4 / 6, 6), 0.75, 0.75)
    assert m["clarification_option_rate"] == round(2 / 3, 6) and m["query_semantic_match_rate"] == 0.5
    figures = summarize(records)["answer_kinds"]
    assert figures["clarification_precision"] == {"rate": 0.75, "hits": 3, "n": 4, "two_se": round(2 * (0.75 * 0.25 / 4) ** 0.5, 6)}
    assert figures["clarification_option"]["hits"] == 2 and figures["clarification_option"]["n"] == 3
    assert figures["context_semantic_match"] == {"rate": 1.0, "hits": 1, "n": 1, "two_se": 0.0}
    assert figures["refusal_precision"] == {"rate": None, "hits": 0, "n": 0, "two_se": None}
    assert summarize(records)["by_kind"]["clarification"]["n"] == 4


def test_a_clarification_means_the_set_of_its_options() -> None:
    assert semantic_match(asking(KITCHEN, HALL), {**asking(HALL, KITCHEN, HALL), "question": "Où ?"})
    assert not semantic_match(asking(KITCHEN, HALL), asking(KITCHEN))
    assert not semantic_match(asking(KITCHEN), KITCHEN)
    assert semantic_match(asking(), asking())  # two questions without options mean the same: ask back
