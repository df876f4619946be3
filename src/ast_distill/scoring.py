"""Scoring one student output and summing rows up: the one home of every per-row rule.

Parsing an output (``parse_output``), scoring it against its gold row (``score_output``), recording the
teacher's verdict (``apply_verdict`` / ``apply_judge_error``), reading it back (``teacher_accepted``), whether a
row passes and why not (``row_passes``, ``classify_failure``), and the rates of a group of rows (``metrics``,
``summarize``; their names in ``RATE_KEYS``). Torch-free: evaluation, reports, DPO pairs and prediction share it.
"""
from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from . import dsl
from .canonical import canonical, canonical_text, exact_match, semantic_match
from .records import (CLARIFICATION, KINDS, LANGUAGES, QUERY, REFUSAL, clarification_options, is_clarification,
                      is_refusal, kind_of)

if TYPE_CHECKING:
    from .teachers.base import TeacherError, Verdict

# The six "did it work?" rates, in the order a reader climbs them: parsed -> valid -> right.
CORRECTNESS_RATES: tuple[str, ...] = ("parsed_rate", "schema_valid_rate", "exact_match_rate", "semantic_match_rate",
                                      "teacher_accept_rate", "semantic_pass_rate")
# Every rate metrics() computes, in its order (after "n").
# query_semantic_match_rate and refusal_share keep the headline honest: every refusal means the same as every
# other, so a student that always refuses scores refusal_share in semantic match while knowing nothing.
# Clarifications: precision and recall of asking back, and how often a clarification the student asks on a row that
# should be asked offers one of the gold's options (clarification_option_rate, over gold clarifications with options).
RATE_KEYS: tuple[str, ...] = CORRECTNESS_RATES + ("query_semantic_match_rate", "refusal_share", "refusal_precision",
                                                  "refusal_recall", "clarification_share", "clarification_precision",
                                                  "clarification_recall", "clarification_option_rate",
                                                  "truncated_rate", "retried_rate", "judge_error_rate")
# The headline figures of a summary, name -> (group path, metric): what the gate checks and the trend tracks.
HEADLINE_FIGURES: dict[str, tuple[tuple[str, ...], str]] = {
    "semantic_pass_seen": (("by_schema", "seen"), "semantic_pass_rate"),
    "semantic_pass_unseen": (("by_schema", "unseen"), "semantic_pass_rate"),
    "semantic_pass_en": (("by_language", "en"), "semantic_pass_rate"),
    "semantic_pass_fr": (("by_language", "fr"), "semantic_pass_rate"),
    "query_semantic_match": (("overall",), "query_semantic_match_rate"),
    "schema_valid": (("overall",), "schema_valid_rate"),
    "refusal_recall": (("overall",), "refusal_recall"),
}
# The answer kinds other than a query, each with the test of whether an AST is one.
ANSWERED_AS: dict[str, Callable[[Any], bool]] = {REFUSAL: is_refusal, CLARIFICATION: is_clarification}
# The answer kinds a student can miss or give wrongly: (kind, the cause when the gold is of that kind and the answer
# is not, the cause when the answer is and the gold is not), checked in this order.
KIND_MISTAKES: tuple[tuple[str, str, str], ...] = (
    (REFUSAL, "missed refusal", "wrongly refused"),
    (CLARIFICATION, "missed clarification", "wrongly asked"),
)
# teacher_verdict of a row whose judge call failed after the teacher's retries: neither accepted nor rejected.
JUDGE_ERROR = "error"
# Why a row failed, one cause per row (classify_failure checks them in its own order).
FAILURE_CAUSES: tuple[str, ...] = ("not parsed", "schema invalid", "wrong meaning", "wrongly refused",
                                   "missed refusal", "wrongly asked", "missed clarification")


class GeneratedText(Protocol):
    """What scoring reads of a generation (generation.Generation has these fields)."""
    text: str
    token_ids: Sequence[int]
    truncated: bool
    latency_ms: float

    @property
    def answer_logprob(self) -> float | None: ...  # the raw confidence, a log-probability (calibration.py)


# --- one row --------------------------------------------------------------------------------------------


def parse_output(raw: str) -> tuple[bool, dict[str, Any] | None]:
    """(parsed, ast): parsed when the whole output is one JSON object."""
    try:
        value = json.loads(raw.strip())
    except (json.JSONDecodeError, ValueError):
        return False, None
    return (True, value) if isinstance(value, dict) else (False, None)


def score_output(row: Mapping[str, Any], schema: dict[str, Any], generation: GeneratedText, *, prompt_text: str,
                 constrained: bool) -> dict[str, Any]:
    """One evaluation record without the teacher's judgement (unless the meaning matches: then no call)."""
    parsed, ast = parse_output(generation.text)
    error = dsl.validation_error(schema, ast) if parsed else "output is not one JSON object"
    range_ops = dsl.range_aliases(schema)
    gold = row["ast"]
    same_meaning = parsed and semantic_match(ast, gold, range_ops, schema)
    return {
        "id": row["id"], "schema_id": row["schema_id"], "split": row.get("split"),
        "schema_seen": row.get("schema_seen"), "language": row.get("language"),
        "kind": row.get("kind") or kind_of(gold), "query": row.get("query"), "context": row.get("context"),
        "prompt_text": prompt_text, "student_raw": generation.text, "student_ast": ast,
        "parsed": parsed, "schema_valid": parsed and error is None, "validation_error": error,
        "exact_match": parsed and exact_match(ast, gold), "semantic_match": same_meaning,
        # A matching meaning needs no judge: the gold AST is the one the teacher holds right.
        "teacher_verdict": True if same_meaning else None,
        "teacher_canonical": gold if same_meaning else None,
        "teacher_reason": "same meaning as the gold AST" if same_meaning else None,
        "student_canonical": canonical(ast, range_ops, schema) if parsed else None,
        "gold_ast": gold, "constrained": constrained, "truncated": generation.truncated,
        "new_tokens": len(generation.token_ids), "latency_ms": round(generation.latency_ms, 3),
        "answer_logprob": None if generation.answer_logprob is None else round(generation.answer_logprob, 5),
    }


def apply_verdict(record: dict[str, Any], verdict: Verdict) -> None:
    record["teacher_verdict"] = bool(verdict.accept)
    record["teacher_canonical"] = verdict.canonical_ast
    record["teacher_reason"] = verdict.reason


def apply_judge_error(record: dict[str, Any], error: TeacherError) -> None:
    record["teacher_verdict"] = JUDGE_ERROR
    record["teacher_canonical"] = None  # no AST to prefer: such a row never makes a DPO pair
    record["teacher_reason"] = str(error)


def teacher_accepted(record: Mapping[str, Any]) -> bool | None:
    """The teacher's verdict on one evaluation row (a bool, {"accept": ...} or "accept"/"reject"), or None
    (no verdict, or "error": the judge call failed; such a row is never taken for a rejection)."""
    verdict = record.get("teacher_verdict")
    if isinstance(verdict, dict):
        verdict = verdict.get("accept")
    if isinstance(verdict, str):
        return {"accept": True, "accepted": True, "reject": False, "rejected": False}.get(verdict.lower())
    return verdict if isinstance(verdict, bool) else None


def row_passes(record: Mapping[str, Any]) -> bool:
    """Schema-valid and right in meaning (canonical match, or the teacher accepted it)."""
    return bool(record.get("schema_valid")) and (bool(record.get("semantic_match"))
                                                 or teacher_accepted(record) is True)


def classify_failure(record: Mapping[str, Any]) -> str | None:
    """Why an evaluation row failed (one of FAILURE_CAUSES), or None when it passed."""
    if row_passes(record):
        return None
    if not record.get("parsed"):
        return "not parsed"
    for kind, missed, wrongly in KIND_MISTAKES:
        gold_is, student_is = record.get("kind") == kind, ANSWERED_AS[kind](record.get("student_ast"))
        if gold_is != student_is:
            return missed if gold_is else wrongly
    if not record.get("schema_valid"):
        return "schema invalid"
    return "wrong meaning"


# --- groups of rows -------------------------------------------------------------------------------------


def rate(hits: int, total: int) -> float | None:
    """hits / total rounded as every summary writes it; None when there is no denominator."""
    return round(hits / total, 6) if total else None


def metrics(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """The rates of one group of records (None where a rate has no denominator): "n", then RATE_KEYS."""
    n = len(records)

    def count(pred: Callable[[Mapping[str, Any]], Any]) -> int:
        return sum(1 for r in records if pred(r))

    queries_right, gold_queries = queries_counts(records)
    refused_rightly, refused, gold_refusals = kind_counts(records, REFUSAL)
    asked_rightly, asked, gold_asks = kind_counts(records, CLARIFICATION)
    options_offered, with_options = option_counts(records)
    return {
        "n": n,
        "parsed_rate": rate(count(lambda r: r["parsed"]), n),
        "schema_valid_rate": rate(count(lambda r: r["schema_valid"]), n),
        "exact_match_rate": rate(count(lambda r: r["exact_match"]), n),
        "semantic_match_rate": rate(count(lambda r: r["semantic_match"]), n),
        "teacher_accept_rate": rate(count(lambda r: r.get("teacher_verdict") is True), n),
        "semantic_pass_rate": rate(count(lambda r: r["schema_valid"] and r.get("teacher_verdict") is True), n),
        "query_semantic_match_rate": rate(queries_right, gold_queries),
        "refusal_share": rate(gold_refusals, n),
        "refusal_precision": rate(refused_rightly, refused),
        "refusal_recall": rate(refused_rightly, gold_refusals),
        "clarification_share": rate(gold_asks, n),
        "clarification_precision": rate(asked_rightly, asked),
        "clarification_recall": rate(asked_rightly, gold_asks),
        "clarification_option_rate": rate(options_offered, with_options),
        "truncated_rate": rate(count(lambda r: r.get("truncated")), n),
        "retried_rate": rate(count(lambda r: r.get("retried")), n),
        "judge_error_rate": rate(count(lambda r: r.get("teacher_verdict") == JUDGE_ERROR), n),
    }


def headline_figures(summary: Mapping[str, Any]) -> dict[str, float | None]:
    """The HEADLINE_FIGURES of an evaluation summary (None where a group has no rows)."""
    out: dict[str, float | None] = {}
    for name, (path, metric) in HEADLINE_FIGURES.items():
        group: Any = summary
        for key in path:
            group = group.get(key, {}) if isinstance(group, Mapping) else {}
        value = group.get(metric) if isinstance(group, Mapping) else None
        out[name] = None if value is None else float(value)
    return out


# --- counts by answer kind (metrics and answer_kind_figures share them) ----------------------------------------


def gold_kind(record: Mapping[str, Any]) -> str:
    """The kind of answer a row asks for (a record without one is a query)."""
    return str(record.get("kind", QUERY))


def queries_counts(records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(gold queries answered with the same meaning, gold queries)."""
    queries = [r for r in records if gold_kind(r) == QUERY]
    return sum(1 for r in queries if r["semantic_match"]), len(queries)


def kind_counts(records: Sequence[Mapping[str, Any]], kind: str) -> tuple[int, int, int]:
    """(rows the student answered with `kind` where the gold is of it, rows it answered with `kind`, gold rows of
    `kind`): precision and recall of one answer kind (refusal or clarification)."""
    answered = [r for r in records if ANSWERED_AS[kind](r.get("student_ast"))]
    return (sum(1 for r in answered if gold_kind(r) == kind), len(answered),
            sum(1 for r in records if gold_kind(r) == kind))


def option_counts(records: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    """(gold clarifications with options where the student offered one of them, gold clarifications with options)."""
    with_options = [r for r in records if gold_kind(r) == CLARIFICATION and clarification_options(r.get("gold_ast"))]
    return sum(1 for r in with_options if offers_gold_option(r)), len(with_options)


def offers_gold_option(record: Mapping[str, Any]) -> bool:
    """The student asked back and offered at least one of the gold clarification's options (by meaning)."""
    student = record.get("student_ast")
    if not is_clarification(student):
        return False
    gold = {canonical_text(o) for o in clarification_options(record.get("gold_ast"))}
    return any(canonical_text(o) in gold for o in clarification_options(student))


def with_error(hits: int, total: int) -> dict[str, Any]:
    """A rate with its sample size and two standard errors (binomial, sqrt(p(1-p)/n)); rate None when total is 0."""
    p = hits / total if total else None
    return {"rate": rate(hits, total), "hits": hits, "n": total,
            "two_se": None if p is None else round(2 * math.sqrt(p * (1 - p) / total), 6)}


def answer_kind_figures(records: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, Any]]:
    """How the student tells the answer kinds apart, each rate with its n and two standard errors: queries right
    (semantic match, gold queries), refusal and clarification precision and recall, the gold option offered, and
    the rows whose request came with a context answered right."""
    figures = {"query_semantic_match": with_error(*queries_counts(records))}
    for kind in (REFUSAL, CLARIFICATION):
        rightly, answered, gold = kind_counts(records, kind)
        figures[f"{kind}_precision"] = with_error(rightly, answered)
        figures[f"{kind}_recall"] = with_error(rightly, gold)
    figures["clarification_option"] = with_error(*option_counts(records))
    in_context = [r for r in records if r.get("context")]
    figures["context_semantic_match"] = with_error(sum(bool(r["semantic_match"]) for r in in_context), len(in_context))
    return figures


def summarize(records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """overall, by_schema {seen, unseen}, by_language {en, fr} (other languages get their own key), by_kind (the
    gold answer's kind: query, refusal, clarification) and with_context (rows whose request came with a context)."""
    languages = sorted({str(r.get("language")) for r in records if r.get("language")} | set(LANGUAGES))
    return {
        "overall": metrics(records),
        "by_schema": {"seen": metrics([r for r in records if r.get("schema_seen") is not False]),
                      "unseen": metrics([r for r in records if r.get("schema_seen") is False])},
        "by_language": {lang: metrics([r for r in records if r.get("language") == lang]) for lang in languages},
        "by_kind": {kind: metrics([r for r in records if gold_kind(r) == kind]) for kind in KINDS},
        "with_context": metrics([r for r in records if r.get("context")]),
        "answer_kinds": answer_kind_figures(records),
    }
