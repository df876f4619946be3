"""Numbers out of evaluation summaries and training logs, printed the way every report prints them.

The slices of a summary (SCOPES), the metric labels, a finite number or None (``as_number``), the "n/a" /
three-decimal formatting, and one logged value as a (steps, values) series.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

METRIC_LABELS: dict[str, str] = {
    "parsed_rate": "parsed", "schema_valid_rate": "schema-valid", "exact_match_rate": "exact match",
    "semantic_match_rate": "semantic match", "teacher_accept_rate": "teacher accept",
    "semantic_pass_rate": "semantic pass", "query_semantic_match_rate": "semantic match, queries only",
    "refusal_share": "refusal share (always refusing scores this)", "refusal_precision": "refusal precision",
    "refusal_recall": "refusal recall", "clarification_share": "clarification share",
    "clarification_precision": "clarification precision", "clarification_recall": "clarification recall",
    "clarification_option_rate": "clarification offers a gold option", "truncated_rate": "truncated (after the retry)",
    "retried_rate": "retried with a bigger budget", "judge_error_rate": "judge errors",
}
# Where each slice of rows lives in evaluation_summary.json.
SCOPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("overall", ("overall",)), ("seen schemas", ("by_schema", "seen")), ("unseen schemas", ("by_schema", "unseen")),
    ("EN", ("by_language", "en")), ("FR", ("by_language", "fr")),
)
Summary = dict[str, Any]
Metrics = dict[str, Any]


def scope_metrics(summary: Summary | None, path: Sequence[str]) -> Metrics | None:
    """The metrics block at path (e.g. ("by_schema", "seen")) of a summary, or None when absent."""
    node: Any = summary
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, dict) else None


def as_number(value: Any) -> float | None:
    """A finite int or float as a float; None for anything else (missing, bool, NaN, inf)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def fmt_rate(value: Any) -> str:
    """A rate as the report prints it: three decimals, "n/a" when missing."""
    number = as_number(value)
    return "n/a" if number is None else f"{number:.3f}"


def fmt_number(value: Any, digits: int) -> str:
    number = as_number(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def fmt_delta(before: Any, after: Any) -> str:
    a, b = as_number(before), as_number(after)
    return "n/a" if a is None or b is None else f"{b - a:+.3f}"


def fmt_n(metrics: Metrics | None) -> str:
    n = None if metrics is None else metrics.get("n")
    return "n/a" if n is None else str(n)


def series(logs: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one logged key, skipping logs without a finite value."""
    steps, values = [], []
    for log in logs:
        step, value = as_number(log.get("step")), as_number(log.get(key))
        if step is not None and value is not None:
            steps.append(step)
            values.append(value)
    return steps, values
