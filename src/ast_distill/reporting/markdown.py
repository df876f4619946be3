"""Markdown building blocks shared by the reports: cells, code spans, tables, images, the metrics table,
the provenance section, and the "How to read this" texts."""
from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..scoring import RATE_KEYS
from .summaries import METRIC_LABELS, Metrics, fmt_n, fmt_rate

EXAMPLE_CHARS = 400  # long raw outputs are cut in the examples so the report stays readable


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def code(text: Any) -> str:
    text = str(text).replace("\n", " ")
    if len(text) > EXAMPLE_CHARS:
        text = text[:EXAMPLE_CHARS] + " ..."
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def yes_no(value: Any) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def image(lines: list[str], path: Path | None, alt: str) -> None:
    if path is not None:
        lines += [f"![{alt}]({path.name})", ""]


def metrics_table(columns: Mapping[str, Metrics | None]) -> list[str]:
    """Markdown rows: one per metric, one column per slice, plus the row count."""
    header = ["metric", *columns]
    rows = [["rows (n)", *(fmt_n(block) for block in columns.values())]]
    for name in RATE_KEYS:
        rows.append([METRIC_LABELS[name],
                     *(fmt_rate(None if block is None else block.get(name)) for block in columns.values())])
    return table(header, rows)


HOW_TO_READ_TRAINING = (
    "How to read this: the train loss is the mean cross-entropy on the completion tokens over each "
    "logging window; the eval loss is the same quantity on held-out validation rows, computed without any "
    "teacher. Both should fall. A train loss that keeps falling while the eval loss climbs back up means "
    "the student is memorising its training rows. The eval loss only says how close the student is to the "
    "stored completions token by token; whether the ASTs mean the right thing is measured by the "
    "evaluation below."
)
HOW_TO_READ_METRICS = (
    "How to read this: each rate is a fraction of the evaluated rows (0 to 1). *parsed*: the output is one "
    "JSON object. *schema-valid*: it validates against the row's JSON Schema. *exact match*: same text as "
    "the gold AST once keys are ordered. *semantic match*: same meaning as the gold AST after "
    "canonicalisation (and/or order, value sets, 1 == 1.0). *teacher accept*: the teacher judged it right "
    "(n/a when no teacher judged). *semantic pass*: schema-valid and right in meaning; it is the number "
    "that says whether the student works. *semantic match, queries only*: the same on the rows whose gold is "
    "a query (every refusal means the same as every other, so refusals are easy points); *refusal share*: the "
    "share of rows whose gold is a refusal, which is what a student that always refuses scores in semantic "
    "match. *refusal precision*: of the outputs that refused, the share that "
    "should have; *refusal recall*: of the rows that called for a refusal, the share refused; the same four for "
    "*clarifications* (the student asks back: a question and the queries the request could mean), and whether a "
    "clarification offers one of the gold's options. *truncated*: "
    "outputs cut off by the token budget, after one retry with a bigger one (*retried*: the rows retried). *judge errors*: rows the teacher could not judge (its call failed "
    "after its retries); they count as neither accepted nor rejected. Seen schemas were trained on (new "
    "queries only); unseen schemas "
    "were never trained on, so the gap between the two columns is the generalisation gap."
)
HOW_TO_READ_FAILURES = (
    "How to read this: every row that did not pass is given one cause, checked in this order: the output "
    "was not one JSON object (*not parsed*); the request called for a refusal and the student answered "
    "anyway (*missed refusal*); the student refused a request the schema can express (*wrongly refused*); "
    "the request called for a clarification and the student answered anyway (*missed clarification*), or it "
    "asked back on a request it could answer (*wrongly asked*); "
    "the JSON breaks the schema, e.g. an unknown field or an operator alias not in this schema "
    "(*schema invalid*); or it is valid but means something else (*wrong meaning*). \"expected\" is the "
    "gold AST when the results record it, else the teacher's canonical AST."
)
HOW_TO_READ_DPO = (
    "How to read this: DPO rewards are beta times how much more (or less) likely the policy makes a "
    "completion than the SFT reference does. The margin is chosen minus rejected; the accuracy is the share "
    "of pairs where the chosen completion gets the higher reward. A loss near 0 with accuracy near 1 means "
    "the student separates its training pairs well; a margin stuck near 0 means it learnt no preference. "
    "These curves are on the training pairs only: whether DPO helped is decided by the evaluation table."
)


def provenance_section(lines: list[str], provenance: Mapping[str, Any]) -> None:
    lines += ["## Provenance", ""]
    lines += [f"- {key}: `{json_text(value)}`" for key, value in provenance.items()]
    lines.append("")
