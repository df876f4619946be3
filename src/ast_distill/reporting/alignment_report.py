"""alignment_report.md: SFT vs DPO vs the failure-focused boost on the same rows (headline figures, rows fixed
and broken, cost, the student chosen), SFT vs DPO in detail (deltas, row-by-row changes), DPO training curves,
and a reading of the comparison generated from the numbers alone."""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..scoring import HEADLINE_FIGURES, RATE_KEYS, row_passes
from .inputs import LoadedInputs, ReportInputs, TrainingLogs
from .markdown import HOW_TO_READ_DPO, image, provenance_section, table
from .summaries import (METRIC_LABELS, SCOPES, Metrics, Summary, as_number, fmt_delta, fmt_n, fmt_rate,
                        scope_metrics, series)


def paired_changes(before: Sequence[Mapping[str, Any]], after: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Row-by-row comparison on the ids both runs evaluated: fixed, broken, still passing, still failing."""
    before_ok = {str(r["id"]): row_passes(r) for r in before if "id" in r}
    after_ok = {str(r["id"]): row_passes(r) for r in after if "id" in r}
    common = before_ok.keys() & after_ok.keys()
    counts = {"common": len(common), "fixed": 0, "broken": 0, "still_pass": 0, "still_fail": 0}
    for row_id in common:
        key = {(False, True): "fixed", (True, False): "broken", (True, True): "still_pass",
               (False, False): "still_fail"}[(before_ok[row_id], after_ok[row_id])]
        counts[key] += 1
    return counts


SIDE_BY_SIDE_FIGURES = (("semantic pass, all rows", ("overall",), "semantic_pass_rate"),) + tuple(
    (name.replace("_", " "), path, metric) for name, (path, metric) in HEADLINE_FIGURES.items())


def training_seconds(logs: TrainingLogs | None) -> float | None:
    """The trainer's own train_runtime of a run (its end-of-run log), None when not logged."""
    final = None if logs is None else logs.final
    return None if not final or final.get("train_runtime") is None else float(final["train_runtime"])


def side_by_side(loaded: LoadedInputs) -> list[str]:
    """The SFT, DPO and boosted students on the same d_05 rows: headline figures, rows each fixed and broke
    against SFT, training time, the val figures the choice used, and which student alignment kept."""
    columns = [("SFT", loaded.summary, loaded.results, loaded.sft_logs),
               ("DPO", loaded.dpo_summary, loaded.dpo_results, loaded.dpo_logs),
               ("boost", loaded.boost_summary, loaded.boost_results, loaded.boost_logs)]
    columns = [c for c in columns if c[1] is not None]
    if len(columns) < 2:
        return []
    lines = ["## SFT, DPO and boost side by side", "",
             "How to read this: each column is one student on the same d_05 rows. DPO trained on pairs (the "
             "teacher's AST over the student's wrong one); the boost went on with SFT on the train rows plus new "
             "teacher rows aimed at what failed on the pref rows. Fixed and broken count rows against the SFT "
             "student, row by row. Training time is the trainer's own (the boost's rows and DPO's pairs come from "
             "the same pref evaluation). The student kept is chosen on the val rows, never on these.", ""]
    rows = []
    for label, path, metric in SIDE_BY_SIDE_FIGURES:
        values = [scope_metrics(summary, path) for _, summary, _, _ in columns]
        rows.append([label] + [fmt_rate(None if v is None else v.get(metric)) for v in values])
    changes = [paired_changes(loaded.results, results) if loaded.results is not None and results is not None
               and name != "SFT" else None for name, _, results, _ in columns]
    rows.append(["rows fixed vs SFT"] + ["-" if c is None else str(c["fixed"]) for c in changes])
    rows.append(["rows broken vs SFT"] + ["-" if c is None else str(c["broken"]) for c in changes])
    rows.append(["training seconds"] + [fmt_seconds(training_seconds(logs)) for _, _, _, logs in columns])
    trained_on = {"SFT": "-", "DPO": pairs_trained(loaded.dpo_run), "boost": rows_trained(loaded.boost_run)}
    rows.append(["trained on"] + [trained_on[name] for name, _, _, _ in columns])
    val = (loaded.aligned or {}).get("val") or {}
    key = {"SFT": "sft", "DPO": "dpo", "boost": "boost"}
    rows.append(["val semantic pass (the choice)"] + [
        fmt_rate((val.get(key[name]) or {}).get("semantic_pass_rate")) for name, _, _, _ in columns])
    lines += table(["figure"] + [name for name, _, _, _ in columns], rows)
    nets = {name: c["fixed"] - c["broken"] for (name, _, _, _), c in zip(columns, changes) if c is not None}
    if nets:
        said = "; ".join(f"{name} fixed {c['fixed']} and broke {c['broken']} of {c['common']} rows (net {nets[name]:+d})"
                         for (name, _, _, _), c in zip(columns, changes) if c is not None)
        lines += [said[:1].upper() + said[1:] + ".", ""]
    if loaded.aligned:
        why = loaded.aligned.get("why") or loaded.aligned.get("rule", "")
        lines += [f"Kept: **{loaded.aligned['method']}** {why}.", ""]
    return lines


def pairs_trained(run: Mapping[str, Any] | None) -> str:
    counts = (run or {}).get("counts") or {}
    return "-" if counts.get("trained_pairs") is None else f"{counts['trained_pairs']} pairs"


def rows_trained(run: Mapping[str, Any] | None) -> str:
    counts = (run or {}).get("counts") or {}
    if counts.get("train_rows") is None:
        return "-"
    new = (counts.get("train_rows_by_source") or {}).get("boost")
    return f"{counts['train_rows']} rows" + ("" if new is None else f", {new} of them new")


def fmt_seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def _headline_metric(sft: Metrics | None, dpo: Metrics | None) -> str:
    # semantic pass is the best single number; without a teacher it may be missing, semantic match is not.
    for name in ("semantic_pass_rate", "semantic_match_rate"):
        if all(block is not None and as_number(block.get(name)) is not None for block in (sft, dpo)):
            return name
    return "semantic_pass_rate"


def describe_change(scope: str, metric: str, sft: Metrics | None, dpo: Metrics | None) -> tuple[str, int]:
    """One clause about a metric's move from SFT to DPO and its sign: +1 up, -1 down, 0 unchanged/noise."""
    label = METRIC_LABELS[metric]
    a = None if sft is None else as_number(sft.get(metric))
    b = None if dpo is None else as_number(dpo.get(metric))
    if a is None or b is None:
        return f"on {scope}, {label} is not available for both runs", 0
    n_a, n_b = as_number(sft.get("n")) or 0, as_number(dpo.get("n")) or 0
    # Refusal rates are over the refusing / refusal rows, a count the summary does not hold: no n for them.
    rows = "" if metric in ("refusal_precision", "refusal_recall") else f"n={n_b:g}"
    delta = b - a
    if abs(delta) < 0.0005:
        return f"on {scope}, {label} was unchanged at {a:.3f}" + (f" ({rows})" if rows else ""), 0
    verb = "rose" if delta > 0 else "fell"
    clause = f"on {scope}, {label} {verb} from {a:.3f} to {b:.3f} ({delta:+.3f}" + (f", {rows})" if rows else ")")
    if not rows:
        return clause, 1 if delta > 0 else -1
    # Two binomial standard errors: a smaller move is what re-running on other rows could give by chance.
    noise = 2 * math.sqrt(max(a * (1 - a), 0) / max(n_a, 1) + max(b * (1 - b), 0) / max(n_b, 1))
    if abs(delta) < noise:
        return clause + f", within noise (two standard errors = {noise:.3f})", 0
    return clause, 1 if delta > 0 else -1


def alignment_reading(sft: Summary | None, dpo: Summary | None, dpo_logs: TrainingLogs | None,
                      paired: Mapping[str, int] | None) -> str:
    """The honest one-paragraph reading of an SFT -> DPO comparison, built only from the numbers."""
    sentences: list[str] = []
    if sft is not None and dpo is not None:
        overall = (scope_metrics(sft, ("overall",)), scope_metrics(dpo, ("overall",)))
        metric = _headline_metric(*overall)
        clauses, signs = [], {}
        for scope, path in SCOPES[:3]:
            pair = (scope_metrics(sft, path), scope_metrics(dpo, path))
            if pair[0] is None and pair[1] is None:
                continue
            clause, signs[scope] = describe_change("all rows" if scope == "overall" else scope, metric, *pair)
            clauses.append(clause)
        joined = "; ".join(clauses)
        sentences.append(joined[:1].upper() + joined[1:])
        valid_clause, _ = describe_change("all rows", "schema_valid_rate", *overall)
        recall_clause, _ = describe_change("all rows", "refusal_recall", *overall)
        sentences.append(f"For context, {valid_clause}, and {recall_clause.removeprefix('on all rows, ')}")
        if paired and paired.get("common"):
            sentences.append(f"Row by row on the {paired['common']} rows both runs evaluated, DPO fixed "
                             f"{paired['fixed']} and broke {paired['broken']}")
        overall_sign, unseen_sign = signs.get("overall", 0), signs.get("unseen schemas", 0)
        if overall_sign > 0 and unseen_sign >= 0:
            verdict = "On these rows DPO helped beyond noise, without a loss on unseen schemas"
        elif overall_sign > 0:
            verdict = "DPO helped overall but lost ground on unseen schemas: it may be fitting the seen DSLs"
        elif overall_sign < 0:
            verdict = "On these rows DPO made the student worse beyond noise; keep the SFT adapter"
        else:
            verdict = "No overall change beyond noise: on these rows DPO neither clearly helped nor hurt"
        sentences.append(verdict)
    elif dpo is None:
        sentences.append("There is no evaluation of the DPO adapter, so nothing says yet whether DPO helped")
    else:
        sentences.append("There is no SFT evaluation summary to compare the DPO adapter with")
    if dpo_logs is not None and dpo_logs.train:
        steps, loss = series(dpo_logs.train, "loss")
        _, accuracy = series(dpo_logs.train, "rewards/accuracies")
        _, margin = series(dpo_logs.train, "rewards/margins")
        if loss:
            text = (f"During DPO training the loss went from {loss[0]:.3f} to {loss[-1]:.3f} over "
                    f"{steps[-1]:g} steps")
            if accuracy and margin:
                text += (f", ending with preference accuracy {accuracy[-1]:.3f} and reward margin "
                         f"{margin[-1]:.3f} on the training pairs")
            sentences.append(text)
    return ". ".join(sentences) + "."


def same_rows_note(sft: Summary | None, dpo: Summary | None) -> str | None:
    """A warning when the two summaries were not computed on the same rows, else None."""
    if sft is None or dpo is None:
        return None
    problems = []
    if sft.get("dataset") != dpo.get("dataset"):
        problems.append(f"datasets differ (`{sft.get('dataset')}` vs `{dpo.get('dataset')}`)")
    for label, path in SCOPES[:3]:
        a, b = fmt_n(scope_metrics(sft, path)), fmt_n(scope_metrics(dpo, path))
        if a != b:
            problems.append(f"{label} row counts differ ({a} vs {b})")
    if sft.get("constrained") != dpo.get("constrained"):
        problems.append("one run used constrained decoding and the other did not")
    if not problems:
        return None
    return "Warning: the two evaluations are not on the same rows: " + "; ".join(problems) + \
        ". Compare with care."


def render_alignment_report(inputs: ReportInputs, loaded: LoadedInputs, plots: Mapping[str, Path | None],
                            provenance: Mapping[str, Any]) -> str:
    """alignment_report.md: the side-by-side of SFT, DPO and boost, SFT vs DPO with deltas, DPO curves, a
    generated reading."""
    sft, dpo = loaded.summary, loaded.dpo_summary
    paired = None
    if loaded.results is not None and loaded.dpo_results is not None:
        paired = paired_changes(loaded.results, loaded.dpo_results)
    lines = ["# Alignment report: SFT, DPO and the boost", ""]
    lines += table(["input", "path", "status"], [
        ["SFT evaluation summary", f"`{inputs.eval_summary}`", "read" if sft is not None else "missing"],
        ["DPO evaluation summary", f"`{inputs.dpo_eval_summary}`", "read" if dpo is not None else "missing"],
        ["DPO training metrics", f"`{inputs.dpo_training_metrics}`",
         "read" if loaded.dpo_logs is not None else "missing"],
        ["boost evaluation summary", f"`{inputs.boost_eval_summary}`",
         "read" if loaded.boost_summary is not None else "missing"],
        ["boost training metrics", f"`{inputs.boost_training_metrics}`",
         "read" if loaded.boost_logs is not None else "missing"],
        ["alignment's choice", f"`{inputs.aligned}`", "read" if loaded.aligned is not None else "missing"]])
    lines += side_by_side(loaded)
    lines += ["## Reading (SFT vs DPO)", "", alignment_reading(sft, dpo, loaded.dpo_logs, paired), ""]
    note = same_rows_note(sft, dpo)
    if note:
        lines += [note, ""]
    lines += ["## SFT vs DPO", ""]
    if dpo is None:
        lines += ["No DPO evaluation summary: evaluate the DPO adapter (scripts/evaluate_student.py "
                  "--adapter <dpo run>/checkpoint-final) to compare.", ""]
    else:
        lines += ["How to read this: both columns are the same metrics on the evaluation rows, SFT adapter "
                  "then DPO adapter; the delta is DPO minus SFT, so positive is better except for truncated "
                  "and judge errors.", ""]
        rows = []
        for scope, path in SCOPES:
            a, b = scope_metrics(sft, path), scope_metrics(dpo, path)
            if a is None and b is None:
                continue
            rows.append([scope, "rows (n)", fmt_n(a), fmt_n(b), ""])
            for name in RATE_KEYS:
                before, after = (None if a is None else a.get(name)), (None if b is None else b.get(name))
                rows.append([scope, METRIC_LABELS[name], fmt_rate(before), fmt_rate(after),
                             fmt_delta(before, after)])
        lines += table(["rows", "metric", "SFT", "DPO", "delta"], rows)
        if paired is not None:
            lines += table(["row by row (same ids)", "rows"], [
                ["evaluated by both", paired["common"]], ["fixed by DPO", paired["fixed"]],
                ["broken by DPO", paired["broken"]], ["pass in both", paired["still_pass"]],
                ["fail in both", paired["still_fail"]]])
        image(lines, plots.get("metrics_sft_vs_dpo"), "SFT vs DPO metrics")
        image(lines, plots.get("metrics_sft_vs_dpo_by_schema"), "SFT vs DPO metrics by schema")
    lines += ["## DPO training curves", ""]
    if loaded.dpo_logs is None or not loaded.dpo_logs.train:
        lines += ["No DPO training metrics were read.", ""]
    else:
        lines += [HOW_TO_READ_DPO, ""]
        rows = []
        for key in ("loss", "rewards/accuracies", "rewards/margins", "rewards/chosen", "rewards/rejected"):
            steps, values = series(loaded.dpo_logs.train, key)
            if values:
                rows.append([key, f"{values[0]:.4f}", f"{values[-1]:.4f}", f"{steps[-1]:g}"])
        lines += table(["logged value", "first", "last", "last step"], rows)
        image(lines, plots.get("dpo_loss"), "DPO loss")
        image(lines, plots.get("dpo_rewards"), "DPO rewards and accuracy")
    provenance_section(lines, provenance)
    return "\n".join(lines)
