"""Reports: Markdown + PNG plots from the training metrics and the evaluation files.

``build_reports`` reads what stages 5, 6 and 8 wrote (training_metrics.jsonl, evaluation_summary.json,
evaluation_results.jsonl, and the same for the DPO run), draws the plots and writes ``report.md`` and,
when there is anything from DPO, ``alignment_report.md``. Every input except "training metrics or an
evaluation summary" is optional: a missing one becomes a note in the report, never a crash. Every number
in the prose is computed from the inputs; nothing is hard-coded.

Modules, one job each: ``inputs`` (where the inputs live, reading them), ``summaries`` (numbers out of
summaries and logs, and their printed form), ``plots`` (matplotlib), ``markdown`` (tables, sections, the
"How to read this" texts), ``training_report`` (report.md), ``alignment_report`` (alignment_report.md),
``build`` (the driver). Per-row verdicts and failure causes are ``ast_distill.scoring``'s.
"""
from __future__ import annotations

from .alignment_report import alignment_reading, describe_change, render_alignment_report, same_rows_note
from .build import build_reports, provenance
from .inputs import LoadedInputs, ReportInputs, TrainingLogs, load_inputs, split_training_logs
from .plots import draw_plots
from .training_report import query_of, render_report

__all__ = ["LoadedInputs", "ReportInputs", "TrainingLogs", "alignment_reading", "build_reports", "describe_change",
           "draw_plots", "load_inputs", "provenance", "query_of", "render_alignment_report", "render_report",
           "same_rows_note", "split_training_logs"]
