"""report.md's two looks across runs: the checkpoint sweep (which step was selected, and why) and the trend of
the headline figures against earlier runs (the gate's run history, on the same rows)."""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..scoring import headline_figures
from .markdown import image, table
from .summaries import Summary, fmt_number, fmt_rate

# The figures the trend shows, in its table's and plot's order.
TREND_FIGURES: tuple[tuple[str, str], ...] = (
    ("semantic_pass_seen", "semantic pass, seen"), ("semantic_pass_unseen", "semantic pass, unseen"),
    ("query_semantic_match", "semantic match, queries only"), ("schema_valid", "schema-valid"),
)
MAX_TREND_RUNS = 12  # the newest runs shown


def trend_rows(history: Sequence[Mapping[str, Any]], summary: Summary | None) -> tuple[list[dict[str, Any]], int]:
    """(rows, left out): the history entries made on this report's rows (same rows digest; all when there is
    no summary), oldest first, then this report's student when the history does not hold it yet; and how many
    entries were on other rows. Each row: label, checkpoint, fingerprint, figures, passed."""
    digest = (summary or {}).get("rows_digest")
    same = [e for e in history if digest is None or e.get("rows_digest") == digest]
    rows = [{"label": str(e.get("recorded_at") or "?"), "checkpoint": e.get("adapter"),
             "fingerprint": e.get("fingerprint"), "figures": e.get("figures") or {}, "passed": e.get("passed")}
            for e in same]
    if summary is not None and not any(r["fingerprint"] == summary.get("fingerprint")
                                       and r["checkpoint"] == summary.get("adapter") for r in rows):
        rows.append({"label": "this report", "checkpoint": summary.get("adapter"),
                     "fingerprint": summary.get("fingerprint"), "figures": headline_figures(summary),
                     "passed": None})
    return rows[-MAX_TREND_RUNS:], len(history) - len(same)


def short_path(path: Any) -> str:
    parts = Path(str(path)).parts
    return "/".join(parts[-2:]) if parts else "?"


def trend_section(lines: list[str], rows: Sequence[Mapping[str, Any]], left_out: int, plot: Path | None) -> None:
    lines += ["## This run against the previous runs", ""]
    if len(rows) < 2:
        lines += ["No earlier run on these rows in the run history (`run_history.jsonl`, which "
                  "scripts/check_quality.py appends to after each evaluated run), so there is no trend yet.", ""]
        return
    lines += ["Each row is one student evaluated on the same rows as this report (the gate's run history, oldest "
              "first; *this report* is the student above when the gate has not recorded it yet). A change smaller "
              "than two standard errors (see the versions table) is noise."
              + (f" Left out: {left_out} history entries made on other rows." if left_out else ""), ""]
    header = ["run", "checkpoint", "weights", *(label for _, label in TREND_FIGURES), "gate"]
    body = [[r["label"], short_path(r["checkpoint"]), str(r["fingerprint"] or "")[7:19],
             *(fmt_rate(r["figures"].get(name)) for name, _ in TREND_FIGURES),
             "n/a" if r["passed"] is None else ("passed" if r["passed"] else "FAILED")] for r in rows]
    lines += table(header, body)
    image(lines, plot, "Headline figures across runs")


def sweep_section(lines: list[str], sweep: Mapping[str, Any] | None) -> None:
    if sweep is None:
        return
    lines += ["## Checkpoint selection (the sweep)", "",
              f"Every saved checkpoint of the run was scored on {sweep['ranking'][0]['n']} `val` rows with the "
              f"evaluation's decoding; **{sweep['selected']}** (step {sweep['selected_step']}) scored best and is "
              f"the student this report evaluates (`checkpoint-best`). Ranked by semantic pass, then schema-valid "
              f"rate, then eval loss.", ""]
    lines += table(["checkpoint", "step", "semantic pass", "schema-valid", "semantic match, queries", "eval loss"],
                   [[("**" + c["name"] + "**") if c["name"] == sweep["selected"] else c["name"], c["step"],
                     fmt_rate(c["semantic_pass_rate"]), fmt_rate(c["schema_valid_rate"]),
                     fmt_rate(c["query_semantic_match_rate"]), fmt_number(c["eval_loss"], 4)]
                    for c in sweep["ranking"]])
