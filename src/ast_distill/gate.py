"""The quality gate: does this run's student reach the minimum rates, and is it no worse than the last one?

It reads an evaluation summary (stage 6), takes its headline figures (``scoring.headline_figures``: semantic
pass on seen and unseen schemas, in English and French, query-only semantic match, schema validity, refusal
recall), checks them against the ``gate`` section's minimums and against the previous run's figures (``max_drop``), and
writes ``run_health.json`` beside the report. A run is "previous" when it evaluated the same checkpoint path
on the same rows (same rows digest) with other weights (another fingerprint): comparing other rows, or the
same weights again, would say nothing. Each gated run appends its figures to the run history (a JSONL file),
once per fingerprint, so rerunning the gate on one run never makes it its own baseline.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .jsonl import read_json, read_jsonl, write_json_atomic, JsonlAppender
from .runs import SWEEP_FILE
from .scoring import headline_figures

# gate setting -> the figure its minimum applies to
MINIMUMS: dict[str, str] = {
    "min_semantic_pass_seen": "semantic_pass_seen", "min_semantic_pass_unseen": "semantic_pass_unseen",
    "min_query_semantic_match": "query_semantic_match", "min_schema_valid": "schema_valid",
    "min_refusal_recall": "refusal_recall",
}
HISTORY_NAME = "run_history.jsonl"
HEALTH_NAME = "run_health.json"


def history_path(config: Mapping[str, Any]) -> str:
    """The run history the gate appends to and the report's trend reads: gate.history, else beside the report."""
    return config["gate"]["history"] or str(Path(config["reporting"]["out_dir"]) / HISTORY_NAME)


# the figures a drop against the previous run is checked on
REGRESSION_FIGURES = ("semantic_pass_seen", "semantic_pass_unseen", "query_semantic_match", "schema_valid")


@dataclass
class Check:
    """One gate check: a figure against a limit."""
    name: str  # e.g. "min_semantic_pass_unseen" or "drop of schema_valid"
    figure: str
    value: float | None
    limit: float
    passed: bool

    def line(self) -> str:
        shown = "none" if self.value is None else f"{self.value:.3f}"
        if self.name.startswith("drop"):
            return f"gate: {self.figure} fell by {shown} against the previous run, more than max_drop {self.limit}"
        return f"gate: {self.figure} is {shown}, below {self.name} {self.limit}"


def previous_run(history: list[dict[str, Any]], current: Mapping[str, Any]) -> dict[str, Any] | None:
    """The newest history entry of the same checkpoint path on the same rows, made by other weights."""
    for entry in reversed(history):
        if (entry.get("adapter") == current["adapter"] and entry.get("rows_digest") == current["rows_digest"]
                and entry.get("fingerprint") != current["fingerprint"]):
            return entry
    return None


def gate_checks(now: Mapping[str, float | None], before: Mapping[str, float | None] | None,
                limits: Mapping[str, Any]) -> list[Check]:
    """Every check the settings ask for: a minimum per set min_* key, a drop per regression figure when there
    is a previous run and max_drop is set. A figure with no rows (None) fails a minimum: nothing was shown."""
    checks = []
    for key, figure in MINIMUMS.items():
        if limits.get(key) is not None:
            value = now[figure]
            checks.append(Check(key, figure, value, float(limits[key]), value is not None and value >= limits[key]))
    if before is not None and limits.get("max_drop") is not None:
        for figure in REGRESSION_FIGURES:
            if now[figure] is None or before.get(figure) is None:
                continue
            drop = round(before[figure] - now[figure], 6)
            checks.append(Check(f"drop of {figure}", figure, drop, float(limits["max_drop"]),
                                drop <= limits["max_drop"]))
    return checks


def run_gate(summary_path: str, history_path: str, health_path: str, limits: Mapping[str, Any],
             artifacts: Mapping[str, str]) -> dict[str, Any]:
    """Check one evaluation summary; write run_health.json, append the history; returns the health record."""
    summary = read_json(summary_path)
    if not isinstance(summary, dict) or "overall" not in summary:
        raise UserError(f"{summary_path} is not an evaluation summary (no 'overall'); pass the "
                        f"evaluation_summary.json that evaluate_student.py wrote")
    current = {"adapter": summary.get("adapter"), "fingerprint": summary.get("fingerprint"),
               "rows_digest": summary.get("rows_digest"), "n": summary.get("n"),
               "figures": headline_figures(summary)}
    history = read_jsonl(history_path, missing_ok=True)
    before = previous_run(history, current)
    checks = gate_checks(current["figures"], before["figures"] if before else None, limits)
    trend = None if before is None else {
        name: None if value is None or before["figures"].get(name) is None
        else round(value - before["figures"][name], 6) for name, value in current["figures"].items()}
    health = {
        "passed": all(c.passed for c in checks), "checked_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "checkpoint": summary.get("adapter"), "backend": summary.get("backend", "transformers"),
        "n": summary.get("n"), "figures": current["figures"], "checks": [asdict(c) for c in checks],
        "previous_run": None if before is None else {k: before.get(k) for k in ("fingerprint", "recorded_at")},
        "trend": trend, "limits": dict(limits), "artifacts": {"eval_summary": summary_path, **artifacts, **sweep_of(summary.get("adapter"))},
    }
    write_json_atomic(health_path, health)
    if not any(e.get("fingerprint") == current["fingerprint"] and e.get("rows_digest") == current["rows_digest"]
               and e.get("adapter") == current["adapter"] for e in history):
        Path(history_path).parent.mkdir(parents=True, exist_ok=True)
        with JsonlAppender(history_path) as out:
            out.write({**current, "recorded_at": health["checked_at"], "passed": health["passed"]})
    return health


def sweep_of(checkpoint: str | None) -> dict[str, str]:
    """{"checkpoint_sweep": path} when the gated checkpoint's run dir holds a sweep record, else {}."""
    path = Path(str(checkpoint)).parent / SWEEP_FILE
    return {"checkpoint_sweep": str(path)} if checkpoint and path.is_file() else {}


def failed_lines(health: Mapping[str, Any]) -> list[str]:
    """One line per failed check."""
    return [Check(**c).line() for c in health["checks"] if not c["passed"]]
