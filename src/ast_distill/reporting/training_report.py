"""report.md: what was read, SFT training curves, evaluation metrics, comparisons, example failures."""
from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..failures import failure_profile
from ..hardware import machine_line
from ..scoring import FAILURE_CAUSES, classify_failure
from .history import sweep_section, trend_rows, trend_section
from .inputs import LoadedInputs, ReportInputs, TrainingLogs
from .markdown import (HOW_TO_READ_FAILURES, HOW_TO_READ_METRICS, HOW_TO_READ_TRAINING, code, image, json_text,
                       metrics_table, provenance_section, table, yes_no)
from .summaries import SCOPES, Metrics, Summary, as_number, fmt_n, fmt_number, fmt_rate, scope_metrics, series


def query_of(record: Mapping[str, Any]) -> str:
    """The request text of an evaluation row: its own field, else cut from the prompt text."""
    if isinstance(record.get("query"), str):
        return record["query"]
    prompt = str(record.get("prompt_text") or "")
    # build_prompt ends the user turn with "Request: <query>"; a chat template may follow with markers.
    found = re.findall(r"Request: ([^\n]*)", prompt)
    if not found:
        return "(query not recorded)"
    return re.sub(r"<[^<>\s]+>.*$", "", found[-1]).strip()


def expected_of(record: Mapping[str, Any]) -> tuple[str, Any]:
    """(label, AST) the row should have produced: the gold AST when recorded, else the teacher's."""
    for key in ("gold_ast", "expected_ast", "ast"):
        if record.get(key) is not None:
            return "expected", record[key]
    return "teacher", record.get("teacher_canonical")


def _summary_columns(summary: Summary | None) -> dict[str, Metrics | None]:
    return {label: scope_metrics(summary, path) for label, path in SCOPES}


def _training_section(lines: list[str], logs: TrainingLogs | None, plots: Mapping[str, Path | None]) -> None:
    lines += ["## Training curves (SFT)", ""]
    if logs is None:
        lines += ["No SFT training metrics were read (see the notes above).", ""]
        return
    lines += [HOW_TO_READ_TRAINING, ""]
    train_steps, train_loss = series(logs.train, "loss")
    eval_steps, eval_loss = series(logs.eval, "eval_loss")
    rows = [["train logs", len(logs.train)], ["eval logs", len(logs.eval)]]
    if train_loss:
        rows += [["first train loss", f"{train_loss[0]:.4f} (step {train_steps[0]:g})"],
                 ["last train loss", f"{train_loss[-1]:.4f} (step {train_steps[-1]:g})"]]
    if eval_loss:
        best = min(range(len(eval_loss)), key=eval_loss.__getitem__)
        rows += [["best eval loss", f"{eval_loss[best]:.4f} (step {eval_steps[best]:g})"],
                 ["last eval loss", f"{eval_loss[-1]:.4f} (step {eval_steps[-1]:g})"]]
    if logs.final is not None and as_number(logs.final.get("train_runtime")) is not None:
        rows.append(["train runtime", f"{logs.final['train_runtime']:.1f} s"])
    lines += table(["quantity", "value"], rows)
    if eval_loss and len(eval_loss) >= 2:
        best = min(eval_loss)
        if eval_loss[-1] > best * 1.05:
            lines += [f"The eval loss ended {eval_loss[-1]:.4f}, above its best {best:.4f}: the later steps "
                      f"overfit; the checkpoint near the best eval loss may generalise better.", ""]
        else:
            lines += [f"The eval loss ended within 5% of its best ({best:.4f}): no sign of overfitting.", ""]
    image(lines, plots.get("sft_loss"), "SFT train and eval loss")
    image(lines, plots.get("sft_learning_rate"), "SFT learning rate")
    if logs.samples:
        last = logs.samples[-1]
        lines += [f"Sample generations logged at step {last.get('step')} (greedy, during training):", ""]
        lines += table(["query", "output", "parsed", "schema-valid"],
                        [[s.get("query", ""), code(s.get("output", "")), yes_no(s.get("parsed")),
                          yes_no(s.get("schema_valid"))]
                         for s in last.get("samples") or [] if isinstance(s, dict)])


ANSWER_KIND_ROWS = (("query_semantic_match", "queries: semantic match"),
                    ("refusal_precision", "refusal precision"), ("refusal_recall", "refusal recall"),
                    ("clarification_precision", "clarification precision"),
                    ("clarification_recall", "clarification recall"),
                    ("clarification_option", "clarification offers a gold option"),
                    ("context_semantic_match", "requests with a context: semantic match"))


def _answer_kinds_section(lines: list[str], figures: Any) -> None:
    """Each answer kind's figures with their n and two standard errors (scoring.answer_kind_figures)."""
    if not isinstance(figures, Mapping):
        return
    lines += ["### Answer kinds", ""]
    rows = []
    for key, label in ANSWER_KIND_ROWS:
        figure = figures.get(key) if isinstance(figures.get(key), Mapping) else {}
        two_se = as_number(figure.get("two_se"))
        rows.append([label, fmt_rate(figure.get("rate")), "n/a" if two_se is None else f"± {two_se:.3f}",
                     f"{figure.get('hits', 0)}/{figure.get('n', 0)}"])
    lines += table(["figure", "rate", "2 SE", "rows"], rows)
    lines += ["Precision is over the outputs of that kind, recall over the rows whose gold is of that kind; "
              "\"offers a gold option\" is over gold clarifications that have options. 2 SE: two binomial standard "
              "errors, sqrt(p(1-p)/n); two runs whose rates differ by less are not told apart by this test set.", ""]


def _evaluation_section(lines: list[str], summary: Summary | None, results: list[dict[str, Any]] | None,
                        plots: Mapping[str, Path | None]) -> None:
    lines += ["## Evaluation", ""]
    if summary is None:
        lines += ["No evaluation summary was read (see the notes above).", ""]
        return
    lines += [HOW_TO_READ_METRICS, ""]
    lines += metrics_table(_summary_columns(summary))
    image(lines, plots.get("metrics_seen_vs_unseen"), "metrics on seen vs unseen schemas")
    image(lines, plots.get("metrics_en_vs_fr"), "metrics on EN vs FR requests")
    lines += ["### Refusals", ""]
    overall = summary["overall"]
    lines += [f"Refusal precision {fmt_rate(overall.get('refusal_precision'))}, refusal recall "
              f"{fmt_rate(overall.get('refusal_recall'))} over all rows. Low precision: the student refuses "
              f"requests it could answer; low recall: it invents an answer where the schema has no way to "
              f"express the request. n/a means no row of that kind was seen.", ""]
    _answer_kinds_section(lines, summary.get("answer_kinds"))
    _confidence_section(lines, summary.get("confidence"), plots)
    lines += ["### Speed", ""]
    speed = summary.get("speed") if isinstance(summary.get("speed"), dict) else {}
    lines += table(["quantity", "value"], [
        ["samples per second", fmt_number(speed.get("samples_per_s"), 2)],
        ["milliseconds per sample", fmt_number(speed.get("ms_per_sample"), 1)],
        ["wall time (s)", fmt_number(speed.get("wall_s"), 1)],
        ["batch size (rows)", speed.get("batch_size", "n/a")],
    ])
    lines += ["Speed is measured on the evaluation machine with its batch size; compare it only between "
              "runs on the same hardware.", ""]
    lines += ["### Truncations", ""]
    truncated_text = f"truncated rate {fmt_rate(overall.get('truncated_rate'))}"
    if results is not None:
        count = sum(1 for r in results if r.get("truncated"))
        truncated_text += f" ({count} of {len(results)} result rows)"
    lines += [f"Outputs that hit the generation token budget before closing their JSON: {truncated_text}. "
              f"Any truncation is lost accuracy; raise evaluation.max_new_tokens if it is above 0.", ""]


def _confidence_section(lines: list[str], confidence: Mapping[str, Any] | None,
                        plots: Mapping[str, Path | None]) -> None:
    """How far each answer's confidence can be trusted, and what a --min-confidence threshold keeps."""
    lines += ["### Confidence", ""]
    if not confidence:
        lines += ["No confidence: these results carry no token probabilities (llama.cpp, or results from before "
                  "they were recorded).", ""]
        return
    source = (f"calibrated on {confidence.get('fitted_on_rows')} val rows ({code(confidence.get('calibration'))})"
              if confidence.get("calibrated") else "raw: the student's probability of its answer (the checkpoint "
              "has no calibration.json: the checkpoint sweep writes one into checkpoint-best)")
    lines += [f"Each answer's confidence is {source}. Expected calibration error {fmt_rate(confidence.get('ece'))} "
              f"over {confidence.get('rows')} rows (0 = each band's confidence equals its share of right answers).",
              ""]
    image(lines, plots.get("reliability"), "reliability diagram")
    lines += table(["confidence band", "rows", "mean confidence", "share right"],
                   [[f"{b['band'][0]:.1f}-{b['band'][1]:.1f}", b["rows"], fmt_rate(b["mean_confidence"]),
                     fmt_rate(b["accuracy"])] for b in confidence.get("bands", []) if b.get("rows")])
    lines += table(["--min-confidence", "answered", "share right of those answered"],
                   [[f"{s['min_confidence']:g}", fmt_rate(s["answered"]), fmt_rate(s["accuracy"])]
                    for s in confidence.get("selective", [])])


def _comparison_section(lines: list[str], heading: str, columns: Mapping[str, Metrics | None],
                        plot: Path | None, missing: str, reading: str) -> None:
    lines += [f"## {heading}", ""]
    if sum(block is not None for block in columns.values()) < 2:
        lines += [missing, ""]
        return
    lines += [reading, ""]
    lines += metrics_table(columns)
    image(lines, plot, heading)


VERSION_SCOPES = (("all rows", ("overall",)), ("schema seen", ("by_schema", "seen")),
                  ("schema unseen", ("by_schema", "unseen")))


def semantic_with_noise(block: Metrics | None, *, queries_only: bool = False) -> str:
    """Semantic match (of all rows, or of the rows whose gold is a query) as "rate ± two binomial standard
    errors (n)", or "n/a"."""
    key = "query_semantic_match_rate" if queries_only else "semantic_match_rate"
    rate, n = as_number((block or {}).get(key)), as_number((block or {}).get("n"))
    if queries_only and n:
        share = as_number((block or {}).get("refusal_share"))
        n = None if share is None else round(n * (1 - share))
    if rate is None or not n:
        return "n/a"
    return f"{rate:.3f} ± {2 * math.sqrt(max(rate * (1 - rate), 0.0) / n):.3f} (n={int(n)})"


def _versions_section(lines: list[str], versions: Mapping[str, Summary | None]) -> None:
    """Semantic match of each version of the student that was evaluated (base, SFT, DPO), seen and unseen."""
    present = {name: summary for name, summary in versions.items() if summary is not None}
    if len(present) < 2:
        return
    lines += ["## Base vs SFT vs SFT + DPO: semantic match", "",
              "Each cell is the semantic match rate ± two binomial standard errors (rows). Compare versions only "
              "when they were evaluated on the same rows (the same dataset, max_samples and sample_seed). Every "
              "refusal means the same as every other, so the *queries only* rows leave the refusal rows out, and "
              "the *always refuse* column is what a student that refuses everything would score.", ""]
    first = next(iter(present.values()))
    rows = []
    for scope, path in VERSION_SCOPES:
        rows.append([scope, *(semantic_with_noise(scope_metrics(summary, path)) for summary in present.values()),
                     fmt_rate((scope_metrics(first, path) or {}).get("refusal_share"))])
        rows.append([f"{scope}, queries only",
                     *(semantic_with_noise(scope_metrics(summary, path), queries_only=True)
                       for summary in present.values()), fmt_rate(0.0)])
    lines += table(["rows", *present, "always refuse"], rows)


def _failures_section(lines: list[str], results: list[dict[str, Any]] | None, per_cause: int) -> None:
    lines += ["## Example failures", ""]
    if results is None:
        lines += ["No evaluation results were read, so no examples (see the notes above).", ""]
        return
    lines += [HOW_TO_READ_FAILURES, ""]
    by_cause: dict[str, list[dict[str, Any]]] = {cause: [] for cause in FAILURE_CAUSES}
    for record in results:
        cause = classify_failure(record)
        if cause is not None:
            by_cause[cause].append(record)
    failed = sum(len(v) for v in by_cause.values())
    lines += [f"{failed} of {len(results)} rows failed.", ""]
    lines += table(["cause", "rows", "share of all rows"],
                    [[cause, len(rows), fmt_rate(len(rows) / len(results)) if results else "n/a"]
                     for cause, rows in by_cause.items()])
    _wrong_parts(lines, by_cause["wrong meaning"])
    for cause, rows in by_cause.items():
        if not rows:
            continue
        lines += [f"### {cause} ({len(rows)} row{'s' if len(rows) != 1 else ''})", ""]
        for record in rows[:per_cause]:
            label, expected = expected_of(record)
            where = "seen" if record.get("schema_seen") else "unseen"
            lines += [f"- row `{record.get('id')}` ({where} schema `{record.get('schema_id')}`, "
                      f"{record.get('language', '?')}): {code(query_of(record))}",
                      f"  - {label}: {code(json_text(expected))}",
                      f"  - student: {code(record.get('student_raw', ''))}"]
        lines.append("")


def _wrong_parts(lines: list[str], wrong: list[dict[str, Any]]) -> None:
    """Where the valid but wrong answers differ from the gold, and the fields and operators most involved."""
    if not wrong:
        return
    profile = failure_profile(wrong)
    lines += [f"Of the {len(wrong)} *wrong meaning* rows, the part of the AST that differs from the gold (a row "
              f"may differ in several): the filter names other **fields**, uses another **operator** or "
              f"**value** on a field both name, joins its conditions another way (**logic**), or a clause "
              f"differs.", ""]
    lines += table(["part", "rows"], [[part, n] for part, n in profile["by_part"].items()])
    top_fields = ", ".join(f"`{name}` ({n})" for name, n in list(profile["fields"].items())[:8]) or "none"
    top_ops = ", ".join(f"`{name}` ({n})" for name, n in list(profile["operators"].items())[:8]) or "none"
    lines += [f"Fields the gold of those rows filters on, most frequent first: {top_fields}. Operators: "
              f"{top_ops}.", ""]


def _inputs_section(lines: list[str], inputs: ReportInputs, loaded: LoadedInputs) -> None:
    lines += ["## Run summary", ""]
    rows = []
    for label, path, value in (
            ("SFT training metrics", inputs.training_metrics, loaded.sft_logs),
            ("evaluation summary", inputs.eval_summary, loaded.summary),
            ("evaluation results", inputs.eval_results, loaded.results),
            ("unconstrained summary", inputs.unconstrained_summary, loaded.unconstrained),
            ("baseline summary", inputs.baseline_summary, loaded.baseline),
            ("DPO training metrics", inputs.dpo_training_metrics, loaded.dpo_logs),
            ("DPO evaluation summary", inputs.dpo_eval_summary, loaded.dpo_summary)):
        rows.append([label, f"`{path}`" if path else "-", "read" if value is not None else "skipped"])
    lines += table(["input", "path", "status"], rows)
    summary = loaded.summary
    if summary is not None:
        lines += table(["evaluated", "value"], [
            ["adapter", f"`{summary.get('adapter')}`"], ["dataset", f"`{summary.get('dataset')}`"],
            ["rows", summary.get("n", fmt_n(summary.get("overall")))],
            ["constrained decoding", summary.get("constrained")],
            ["teacher", json_text(summary.get("teacher"))],
            ["machine", machine_line(summary.get("machine"))]])
    if loaded.notes:
        lines += ["Notes:", ""] + [f"- {note}" for note in loaded.notes] + [""]


def render_report(inputs: ReportInputs, loaded: LoadedInputs, plots: Mapping[str, Path | None],
                  provenance: Mapping[str, Any], examples_per_cause: int) -> str:
    """report.md: what was read, training curves, metrics, comparisons, example failures, provenance."""
    name = (loaded.summary or {}).get("adapter") or inputs.training_metrics
    lines = [f"# Student report: {name}", ""]
    _inputs_section(lines, inputs, loaded)
    _training_section(lines, loaded.sft_logs, plots)
    sweep_section(lines, loaded.sweep)
    _evaluation_section(lines, loaded.summary, loaded.results, plots)
    overall = scope_metrics(loaded.summary, ("overall",))
    _comparison_section(
        lines, "Constrained vs unconstrained decoding",
        {"constrained": overall, "unconstrained": scope_metrics(loaded.unconstrained, ("overall",))},
        plots.get("metrics_constrained_vs_unconstrained"),
        "No unconstrained evaluation summary, so no comparison (run the evaluation with --no-constrained "
        "into <eval dir>/unconstrained to get one).",
        "How to read this: constrained decoding lets the student write only tokens the schema's grammar "
        "allows, so parsed and schema-valid rates should be near 1; the unconstrained column shows how much "
        "of that the model learnt by itself. The meaning rates are the fair comparison.")
    _comparison_section(
        lines, "Baseline (base model without adapter) vs student",
        {"baseline": scope_metrics(loaded.baseline, ("overall",)), "student": overall},
        plots.get("metrics_baseline_vs_student"),
        "No baseline summary given (--baseline-summary), so no comparison with the untrained base model.",
        "How to read this: the baseline is the base model with the same prompts and no fine-tuning; the gap "
        "is what distillation bought.")
    _versions_section(lines, {"base (no adapter)": loaded.baseline, "SFT": loaded.summary,
                              "SFT + DPO": loaded.dpo_summary})
    trend, left_out = trend_rows(loaded.history or [], loaded.summary)
    trend_section(lines, trend, left_out, plots.get("trend"))
    _failures_section(lines, loaded.results, examples_per_cause)
    provenance_section(lines, provenance)
    return "\n".join(lines)
