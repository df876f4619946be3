"""Reports: Markdown + PNG plots from the training metrics and the evaluation files.

``build_reports`` reads what stages 5, 6 and 8 wrote (training_metrics.jsonl, evaluation_summary.json,
evaluation_results.jsonl, and the same for the DPO run), draws the plots and writes ``report.md`` and,
when there is anything from DPO, ``alignment_report.md``. Every input except "training metrics or an
evaluation summary" is optional: a missing one becomes a note in the report, never a crash. Every number
in the prose is computed from the inputs; nothing is hard-coded.
"""
from __future__ import annotations

import io
import json
import math
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from .errors import UserError
from .hardware import machine_line
from .jsonl import (
    read_json,
    read_jsonl,
    write_bytes_atomic,
    write_json_atomic,
    write_text_atomic,
)
from .provenance import provenance as shared_provenance

# The six "did it work?" rates, in the order a reader climbs them: parsed -> valid -> right.
BAR_METRICS: tuple[str, ...] = ("parsed_rate", "schema_valid_rate", "exact_match_rate", "semantic_match_rate",
                                "teacher_accept_rate", "semantic_pass_rate")
TABLE_METRICS: tuple[str, ...] = BAR_METRICS + ("refusal_precision", "refusal_recall", "truncated_rate",
                                                "judge_error_rate")
METRIC_LABELS: dict[str, str] = {
    "parsed_rate": "parsed", "schema_valid_rate": "schema-valid", "exact_match_rate": "exact match",
    "semantic_match_rate": "semantic match", "teacher_accept_rate": "teacher accept",
    "semantic_pass_rate": "semantic pass", "refusal_precision": "refusal precision",
    "refusal_recall": "refusal recall", "truncated_rate": "truncated", "judge_error_rate": "judge errors",
}
# Where each slice of rows lives in evaluation_summary.json.
SCOPES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("overall", ("overall",)), ("seen schemas", ("by_schema", "seen")), ("unseen schemas", ("by_schema", "unseen")),
    ("EN", ("by_language", "en")), ("FR", ("by_language", "fr")),
)
FAILURE_CAUSES: tuple[str, ...] = ("not parsed", "schema invalid", "wrong meaning", "wrongly refused",
                                   "missed refusal")
DPI = 120
EXAMPLE_CHARS = 400  # long raw outputs are cut in the examples so the report stays readable

Summary = dict[str, Any]
Metrics = dict[str, Any]


# ----------------------------------------------------------------------------------------------- inputs

@dataclass
class ReportInputs:
    """Where each input lives. Paths may point at files that do not exist (then they are skipped)."""
    training_metrics: Path | None
    eval_summary: Path | None
    eval_results: Path | None = None
    unconstrained_summary: Path | None = None
    baseline_summary: Path | None = None
    dpo_training_metrics: Path | None = None
    dpo_eval_summary: Path | None = None
    dpo_eval_results: Path | None = None  # default: evaluation_results.jsonl beside dpo_eval_summary

    def __post_init__(self) -> None:
        if self.dpo_eval_results is None and self.dpo_eval_summary is not None:
            self.dpo_eval_results = Path(self.dpo_eval_summary).parent / "evaluation_results.jsonl"


@dataclass
class TrainingLogs:
    """training_metrics.jsonl split by log kind, one record per step (a resumed run's newest log wins)."""
    train: list[dict[str, Any]] = field(default_factory=list)
    eval: list[dict[str, Any]] = field(default_factory=list)
    samples: list[dict[str, Any]] = field(default_factory=list)
    final: dict[str, Any] | None = None  # the trainer's end-of-run log (train_runtime, train_loss, ...)


@dataclass
class LoadedInputs:
    sft_logs: TrainingLogs | None = None
    summary: Summary | None = None
    results: list[dict[str, Any]] | None = None
    unconstrained: Summary | None = None
    baseline: Summary | None = None
    dpo_logs: TrainingLogs | None = None
    dpo_summary: Summary | None = None
    dpo_results: list[dict[str, Any]] | None = None
    notes: list[str] = field(default_factory=list)  # what was skipped and why


def _dedupe_by_step(records: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    # A run resumed from a checkpoint logs some steps again; the newest log is the one that counts.
    by_step: dict[Any, dict[str, Any]] = {}
    for record in records:
        by_step[record.get("step")] = record
    return sorted(by_step.values(), key=lambda r: (r.get("step") is None, r.get("step") or 0))


def split_training_logs(records: Iterable[dict[str, Any]]) -> TrainingLogs:
    """Sort the logs of a training_metrics.jsonl into train / eval / sample-generation / final logs."""
    train, evals, samples, final = [], [], [], None
    for record in records:
        if "samples" in record:
            samples.append(record)
        elif "eval_loss" in record:
            evals.append(record)
        elif "loss" in record:
            train.append(record)
        elif "train_runtime" in record or "train_loss" in record:
            final = record
    return TrainingLogs(_dedupe_by_step(train), _dedupe_by_step(evals), _dedupe_by_step(samples), final)


def load_training_logs(path: Path) -> TrainingLogs:
    """Read and split a training_metrics.jsonl; a bad line is a UserError naming file:line."""
    return split_training_logs(read_jsonl(path))


def load_summary(path: Path) -> Summary:
    """Read an evaluation_summary.json; anything but a JSON object with an "overall" block is a UserError."""
    summary = read_json(path)
    if not isinstance(summary, dict) or not isinstance(summary.get("overall"), dict):
        raise UserError(f"{path}: not an evaluation summary (expected a JSON object with an \"overall\" "
                        f"block); pass the evaluation_summary.json written by scripts/evaluate_student.py")
    return summary


def _load_optional(path: Path | None, label: str, loader: Callable[[Path], Any], notes: list[str]) -> Any:
    if path is None:
        notes.append(f"{label}: not given; skipped.")
        return None
    if not Path(path).is_file():
        notes.append(f"{label}: `{path}` not found; skipped.")
        return None
    return loader(Path(path))


def load_inputs(inputs: ReportInputs) -> LoadedInputs:
    """Read every input that exists. Raises UserError when neither training metrics nor a summary exist."""
    have_metrics = inputs.training_metrics is not None and Path(inputs.training_metrics).is_file()
    have_summary = inputs.eval_summary is not None and Path(inputs.eval_summary).is_file()
    if not have_metrics and not have_summary:
        raise UserError(f"nothing to report: neither training metrics ({inputs.training_metrics}) nor an "
                        f"evaluation summary ({inputs.eval_summary}) exists; run training or evaluation "
                        f"first, or pass --training-metrics / --eval-summary")
    loaded = LoadedInputs()
    notes = loaded.notes
    loaded.sft_logs = _load_optional(inputs.training_metrics, "SFT training metrics", load_training_logs, notes)
    loaded.summary = _load_optional(inputs.eval_summary, "Evaluation summary", load_summary, notes)
    loaded.results = _load_optional(inputs.eval_results, "Evaluation results", read_jsonl, notes)
    loaded.unconstrained = _load_optional(inputs.unconstrained_summary, "Unconstrained evaluation summary",
                                          load_summary, notes)
    loaded.baseline = _load_optional(inputs.baseline_summary, "Baseline (no adapter) summary", load_summary,
                                     notes)
    loaded.dpo_logs = _load_optional(inputs.dpo_training_metrics, "DPO training metrics", load_training_logs,
                                     notes)
    loaded.dpo_summary = _load_optional(inputs.dpo_eval_summary, "DPO evaluation summary", load_summary, notes)
    if loaded.dpo_summary is not None:
        loaded.dpo_results = _load_optional(inputs.dpo_eval_results, "DPO evaluation results", read_jsonl,
                                            notes)
    return loaded


# ---------------------------------------------------------------------------------------------- numbers

def scope_metrics(summary: Summary | None, path: Sequence[str]) -> Metrics | None:
    """The metrics block at path (e.g. ("by_schema", "seen")) of a summary, or None when absent."""
    node: Any = summary
    for key in path:
        if not isinstance(node, dict):
            return None
        node = node.get(key)
    return node if isinstance(node, dict) else None


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def fmt_rate(value: Any) -> str:
    """A rate as the report prints it: three decimals, "n/a" when missing."""
    number = _number(value)
    return "n/a" if number is None else f"{number:.3f}"


def _fmt_number(value: Any, digits: int) -> str:
    number = _number(value)
    return "n/a" if number is None else f"{number:.{digits}f}"


def fmt_delta(before: Any, after: Any) -> str:
    a, b = _number(before), _number(after)
    return "n/a" if a is None or b is None else f"{b - a:+.3f}"


def fmt_n(metrics: Metrics | None) -> str:
    n = None if metrics is None else metrics.get("n")
    return "n/a" if n is None else str(n)


def series(logs: Sequence[Mapping[str, Any]], key: str) -> tuple[list[float], list[float]]:
    """(steps, values) of one logged key, skipping logs without a finite value."""
    steps, values = [], []
    for log in logs:
        step, value = _number(log.get("step")), _number(log.get(key))
        if step is not None and value is not None:
            steps.append(step)
            values.append(value)
    return steps, values


def teacher_accepted(record: Mapping[str, Any]) -> bool | None:
    """The teacher's verdict on one evaluation row (a bool, {"accept": ...} or "accept"/"reject"), or None
    (no verdict, or "error": the judge call failed)."""
    verdict = record.get("teacher_verdict")
    if isinstance(verdict, dict):
        verdict = verdict.get("accept")
    if isinstance(verdict, str):
        return {"accept": True, "accepted": True, "reject": False, "rejected": False}.get(verdict.lower())
    return verdict if isinstance(verdict, bool) else None


def _is_refusal(ast: Any) -> bool:
    return isinstance(ast, dict) and ast.get("type") == "refusal"


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
    gold_refusal = record.get("kind") == "refusal"
    student_refusal = _is_refusal(record.get("student_ast"))
    if gold_refusal and not student_refusal:
        return "missed refusal"
    if student_refusal and not gold_refusal:
        return "wrongly refused"
    if not record.get("schema_valid"):
        return "schema invalid"
    return "wrong meaning"


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


# ------------------------------------------------------------------------------------------------ plots

def _save(fig: Figure, path: Path) -> Path:
    FigureCanvasAgg(fig)  # Agg: no display needed, same pixels everywhere
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    write_bytes_atomic(path, buffer.getvalue())
    return path


def _style_axis(ax: Any, title: str, xlabel: str, ylabel: str) -> None:
    ax.set_title(title)
    ax.set_xlabel(xlabel)
    ax.set_ylabel(ylabel)
    ax.grid(True, alpha=0.3)


def _line(ax: Any, xs: list[float], ys: list[float], label: str, **style: Any) -> None:
    # Few points (a short run) get markers so that a single logged step is still visible.
    ax.plot(xs, ys, label=label, marker="o" if len(xs) <= 30 else None, markersize=3, **style)


def plot_losses(logs: TrainingLogs, path: Path, title: str) -> Path | None:
    """Train loss and eval loss against the optimizer step, on one figure."""
    train = series(logs.train, "loss")
    evals = series(logs.eval, "eval_loss")
    if not train[0] and not evals[0]:
        return None
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    if train[0]:
        _line(ax, *train, label="train loss (logging window mean)")
    if evals[0]:
        _line(ax, *evals, label="eval loss (held-out val rows)", linestyle="--")
    _style_axis(ax, title, "optimizer step", "cross-entropy loss (nats / token)")
    ax.legend()
    return _save(fig, path)


def plot_learning_rate(logs: TrainingLogs, path: Path, title: str) -> Path | None:
    steps, values = series(logs.train, "learning_rate")
    if not steps:
        return None
    fig = Figure(figsize=(8, 3.5))
    ax = fig.add_subplot()
    _line(ax, steps, values, label="learning rate (scheduler)")
    _style_axis(ax, title, "optimizer step", "learning rate (optimizer step size)")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.legend()
    return _save(fig, path)


def _bars(ax: Any, groups: Mapping[str, Metrics | None], metrics: Sequence[str]) -> None:
    present = {label: m for label, m in groups.items() if m is not None}
    width = 0.8 / max(1, len(present))
    for index, (label, block) in enumerate(present.items()):
        xs = [i + (index - (len(present) - 1) / 2) * width for i in range(len(metrics))]
        values = [_number(block.get(name)) for name in metrics]
        heights = [0.0 if v is None else v for v in values]
        bars = ax.bar(xs, heights, width, label=f"{label} (n={fmt_n(block)})")
        # Three decimals, as in the tables; narrower bars get a smaller font so labels do not touch.
        texts = ["n/a" if v is None else f"{v:.3f}" for v in values]
        ax.bar_label(bars, labels=texts, fontsize=6.5 if len(present) > 2 else 8, padding=2)
    ax.set_xticks(range(len(metrics)))
    ax.set_xticklabels([METRIC_LABELS[name].replace(" ", "\n") for name in metrics])
    # Head room above 1.0 holds the bar labels and the legend, so neither covers a bar.
    ax.set_ylim(0, 1.32)
    ax.set_yticks([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    ax.set_ylabel("rate (fraction of rows, 0-1)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(loc="upper center", ncol=max(1, len(present)), fontsize=8, frameon=False)


def plot_metric_bars(groups: Mapping[str, Metrics | None], path: Path, title: str,
                     metrics: Sequence[str] = BAR_METRICS) -> Path | None:
    """Grouped bars: one group per metric, one bar per slice/run; None when fewer than one slice exists."""
    if not any(block is not None for block in groups.values()):
        return None
    fig = Figure(figsize=(9, 4.5))
    ax = fig.add_subplot()
    _bars(ax, groups, metrics)
    ax.set_title(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_metric_bar_panels(panels: Mapping[str, Mapping[str, Metrics | None]], path: Path,
                           title: str) -> Path | None:
    """Several grouped-bar panels stacked (e.g. seen / unseen schemas), one title."""
    panels = {name: groups for name, groups in panels.items() if any(g is not None for g in groups.values())}
    if not panels:
        return None
    fig = Figure(figsize=(9, 4.0 * len(panels)))
    for index, (name, groups) in enumerate(panels.items()):
        ax = fig.add_subplot(len(panels), 1, index + 1)
        _bars(ax, groups, BAR_METRICS)
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_dpo_loss(logs: TrainingLogs, path: Path) -> Path | None:
    steps, values = series(logs.train, "loss")
    if not steps:
        return None
    fig = Figure(figsize=(8, 4))
    ax = fig.add_subplot()
    _line(ax, steps, values, label="DPO loss (-log sigmoid of the reward gap)")
    evals = series(logs.eval, "eval_loss")
    if evals[0]:
        _line(ax, *evals, label="DPO eval loss", linestyle="--")
    _style_axis(ax, "DPO training loss", "optimizer step", "DPO loss (nats)")
    ax.legend()
    return _save(fig, path)


def plot_dpo_rewards(logs: TrainingLogs, path: Path) -> Path | None:
    """Top: reward margin (and chosen / rejected rewards); bottom: preference accuracy."""
    margins = series(logs.train, "rewards/margins")
    accuracies = series(logs.train, "rewards/accuracies")
    if not margins[0] and not accuracies[0]:
        return None
    fig = Figure(figsize=(8, 6.5))
    top = fig.add_subplot(2, 1, 1)
    for key, label, style in (("rewards/margins", "margin (chosen - rejected)", {"linewidth": 2}),
                              ("rewards/chosen", "chosen", {"linestyle": "--"}),
                              ("rewards/rejected", "rejected", {"linestyle": ":"})):
        xs, ys = series(logs.train, key)
        if xs:
            _line(top, xs, ys, label=label, **style)
    top.axhline(0.0, color="grey", linewidth=0.8)
    _style_axis(top, "DPO rewards", "optimizer step", "reward (beta x log-ratio, nats)")
    top.legend(fontsize=8)
    bottom = fig.add_subplot(2, 1, 2)
    if accuracies[0]:
        _line(bottom, *accuracies, label="rewards/accuracies (chosen beats rejected)")
    bottom.set_ylim(-0.05, 1.05)
    _style_axis(bottom, "DPO preference accuracy", "optimizer step", "fraction of pairs (0-1)")
    bottom.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


# --------------------------------------------------------------------------------------------- markdown

def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _code(text: Any) -> str:
    text = str(text).replace("\n", " ")
    if len(text) > EXAMPLE_CHARS:
        text = text[:EXAMPLE_CHARS] + " ..."
    return f"`` {text} ``" if "`" in text else f"`{text}`"


def _yes_no(value: Any) -> str:
    return "n/a" if value is None else ("yes" if value else "no")


def _json_text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _table(header: Sequence[str], rows: Iterable[Sequence[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return lines + [""]


def _image(lines: list[str], path: Path | None, alt: str) -> None:
    if path is not None:
        lines += [f"![{alt}]({path.name})", ""]


def metrics_table(columns: Mapping[str, Metrics | None]) -> list[str]:
    """Markdown rows: one per metric, one column per slice, plus the row count."""
    header = ["metric", *columns]
    rows = [["rows (n)", *(fmt_n(block) for block in columns.values())]]
    for name in TABLE_METRICS:
        rows.append([METRIC_LABELS[name],
                     *(fmt_rate(None if block is None else block.get(name)) for block in columns.values())])
    return _table(header, rows)


def _summary_columns(summary: Summary | None) -> dict[str, Metrics | None]:
    return {label: scope_metrics(summary, path) for label, path in SCOPES}


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
    "that says whether the student works. *refusal precision*: of the outputs that refused, the share that "
    "should have; *refusal recall*: of the rows that called for a refusal, the share refused. *truncated*: "
    "outputs cut off by the token budget. *judge errors*: rows the teacher could not judge (its call failed "
    "after its retries); they count as neither accepted nor rejected. Seen schemas were trained on (new "
    "queries only); unseen schemas "
    "were never trained on, so the gap between the two columns is the generalisation gap."
)
HOW_TO_READ_FAILURES = (
    "How to read this: every row that did not pass is given one cause, checked in this order: the output "
    "was not one JSON object (*not parsed*); the request called for a refusal and the student answered "
    "anyway (*missed refusal*); the student refused a request the schema can express (*wrongly refused*); "
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
    if logs.final is not None and _number(logs.final.get("train_runtime")) is not None:
        rows.append(["train runtime", f"{logs.final['train_runtime']:.1f} s"])
    lines += _table(["quantity", "value"], rows)
    if eval_loss and len(eval_loss) >= 2:
        best = min(eval_loss)
        if eval_loss[-1] > best * 1.05:
            lines += [f"The eval loss ended {eval_loss[-1]:.4f}, above its best {best:.4f}: the later steps "
                      f"overfit; the checkpoint near the best eval loss may generalise better.", ""]
        else:
            lines += [f"The eval loss ended within 5% of its best ({best:.4f}): no sign of overfitting.", ""]
    _image(lines, plots.get("sft_loss"), "SFT train and eval loss")
    _image(lines, plots.get("sft_learning_rate"), "SFT learning rate")
    if logs.samples:
        last = logs.samples[-1]
        lines += [f"Sample generations logged at step {last.get('step')} (greedy, during training):", ""]
        lines += _table(["query", "output", "parsed", "schema-valid"],
                        [[s.get("query", ""), _code(s.get("output", "")), _yes_no(s.get("parsed")),
                          _yes_no(s.get("schema_valid"))]
                         for s in last.get("samples") or [] if isinstance(s, dict)])


def _evaluation_section(lines: list[str], summary: Summary | None, results: list[dict[str, Any]] | None,
                        plots: Mapping[str, Path | None]) -> None:
    lines += ["## Evaluation", ""]
    if summary is None:
        lines += ["No evaluation summary was read (see the notes above).", ""]
        return
    lines += [HOW_TO_READ_METRICS, ""]
    lines += metrics_table(_summary_columns(summary))
    _image(lines, plots.get("metrics_seen_vs_unseen"), "metrics on seen vs unseen schemas")
    _image(lines, plots.get("metrics_en_vs_fr"), "metrics on EN vs FR requests")
    lines += ["### Refusals", ""]
    overall = summary["overall"]
    lines += [f"Refusal precision {fmt_rate(overall.get('refusal_precision'))}, refusal recall "
              f"{fmt_rate(overall.get('refusal_recall'))} over all rows. Low precision: the student refuses "
              f"requests it could answer; low recall: it invents an answer where the schema has no way to "
              f"express the request. n/a means no row of that kind was seen.", ""]
    lines += ["### Speed", ""]
    speed = summary.get("speed") if isinstance(summary.get("speed"), dict) else {}
    lines += _table(["quantity", "value"], [
        ["samples per second", _fmt_number(speed.get("samples_per_s"), 2)],
        ["milliseconds per sample", _fmt_number(speed.get("ms_per_sample"), 1)],
        ["wall time (s)", _fmt_number(speed.get("wall_s"), 1)],
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


def _comparison_section(lines: list[str], heading: str, columns: Mapping[str, Metrics | None],
                        plot: Path | None, missing: str, reading: str) -> None:
    lines += [f"## {heading}", ""]
    if sum(block is not None for block in columns.values()) < 2:
        lines += [missing, ""]
        return
    lines += [reading, ""]
    lines += metrics_table(columns)
    _image(lines, plot, heading)


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
    lines += _table(["cause", "rows", "share of all rows"],
                    [[cause, len(rows), fmt_rate(len(rows) / len(results)) if results else "n/a"]
                     for cause, rows in by_cause.items()])
    for cause, rows in by_cause.items():
        if not rows:
            continue
        lines += [f"### {cause} ({len(rows)} row{'s' if len(rows) != 1 else ''})", ""]
        for record in rows[:per_cause]:
            label, expected = expected_of(record)
            where = "seen" if record.get("schema_seen") else "unseen"
            lines += [f"- row `{record.get('id')}` ({where} schema `{record.get('schema_id')}`, "
                      f"{record.get('language', '?')}): {_code(query_of(record))}",
                      f"  - {label}: {_code(_json_text(expected))}",
                      f"  - student: {_code(record.get('student_raw', ''))}"]
        lines.append("")


def _provenance_section(lines: list[str], provenance: Mapping[str, Any]) -> None:
    lines += ["## Provenance", ""]
    lines += [f"- {key}: `{_json_text(value)}`" for key, value in provenance.items()]
    lines.append("")


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
    lines += _table(["input", "path", "status"], rows)
    summary = loaded.summary
    if summary is not None:
        lines += _table(["evaluated", "value"], [
            ["adapter", f"`{summary.get('adapter')}`"], ["dataset", f"`{summary.get('dataset')}`"],
            ["rows", summary.get("n", fmt_n(summary.get("overall")))],
            ["constrained decoding", summary.get("constrained")],
            ["teacher", _json_text(summary.get("teacher"))],
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
    _failures_section(lines, loaded.results, examples_per_cause)
    _provenance_section(lines, provenance)
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- alignment

def _headline_metric(sft: Metrics | None, dpo: Metrics | None) -> str:
    # semantic pass is the best single number; without a teacher it may be missing, semantic match is not.
    for name in ("semantic_pass_rate", "semantic_match_rate"):
        if all(block is not None and _number(block.get(name)) is not None for block in (sft, dpo)):
            return name
    return "semantic_pass_rate"


def describe_change(scope: str, metric: str, sft: Metrics | None, dpo: Metrics | None) -> tuple[str, int]:
    """One clause about a metric's move from SFT to DPO and its sign: +1 up, -1 down, 0 unchanged/noise."""
    label = METRIC_LABELS[metric]
    a = None if sft is None else _number(sft.get(metric))
    b = None if dpo is None else _number(dpo.get(metric))
    if a is None or b is None:
        return f"on {scope}, {label} is not available for both runs", 0
    n_a, n_b = _number(sft.get("n")) or 0, _number(dpo.get("n")) or 0
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
    """alignment_report.md: SFT vs DPO on the same rows with deltas, DPO curves, a generated reading."""
    sft, dpo = loaded.summary, loaded.dpo_summary
    paired = None
    if loaded.results is not None and loaded.dpo_results is not None:
        paired = paired_changes(loaded.results, loaded.dpo_results)
    lines = ["# Alignment report: SFT vs DPO", ""]
    lines += _table(["input", "path", "status"], [
        ["SFT evaluation summary", f"`{inputs.eval_summary}`", "read" if sft is not None else "missing"],
        ["DPO evaluation summary", f"`{inputs.dpo_eval_summary}`", "read" if dpo is not None else "missing"],
        ["DPO training metrics", f"`{inputs.dpo_training_metrics}`",
         "read" if loaded.dpo_logs is not None else "missing"]])
    lines += ["## Reading", "", alignment_reading(sft, dpo, loaded.dpo_logs, paired), ""]
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
            for name in TABLE_METRICS:
                before, after = (None if a is None else a.get(name)), (None if b is None else b.get(name))
                rows.append([scope, METRIC_LABELS[name], fmt_rate(before), fmt_rate(after),
                             fmt_delta(before, after)])
        lines += _table(["rows", "metric", "SFT", "DPO", "delta"], rows)
        if paired is not None:
            lines += _table(["row by row (same ids)", "rows"], [
                ["evaluated by both", paired["common"]], ["fixed by DPO", paired["fixed"]],
                ["broken by DPO", paired["broken"]], ["pass in both", paired["still_pass"]],
                ["fail in both", paired["still_fail"]]])
        _image(lines, plots.get("metrics_sft_vs_dpo"), "SFT vs DPO metrics")
        _image(lines, plots.get("metrics_sft_vs_dpo_by_schema"), "SFT vs DPO metrics by schema")
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
        lines += _table(["logged value", "first", "last", "last step"], rows)
        _image(lines, plots.get("dpo_loss"), "DPO loss")
        _image(lines, plots.get("dpo_rewards"), "DPO rewards and accuracy")
    _provenance_section(lines, provenance)
    return "\n".join(lines)


# ---------------------------------------------------------------------------------------------- driver

def provenance(settings: Mapping[str, Any]) -> dict[str, Any]:
    """What made a report: the shared provenance block plus the plotting library's version."""
    import matplotlib

    made = shared_provenance(dict(settings))
    made["versions"]["matplotlib"] = matplotlib.__version__
    return made


def draw_plots(loaded: LoadedInputs, out_dir: Path) -> dict[str, Path | None]:
    """Every plot the inputs allow; a plot whose data is missing maps to None."""
    summary = loaded.summary
    plots: dict[str, Path | None] = {}
    if loaded.sft_logs is not None:
        plots["sft_loss"] = plot_losses(loaded.sft_logs, out_dir / "sft_loss.png", "SFT loss")
        plots["sft_learning_rate"] = plot_learning_rate(loaded.sft_logs, out_dir / "sft_learning_rate.png",
                                                        "SFT learning rate schedule")
    if summary is not None:
        plots["metrics_seen_vs_unseen"] = plot_metric_bars(
            {"seen schemas": scope_metrics(summary, ("by_schema", "seen")),
             "unseen schemas": scope_metrics(summary, ("by_schema", "unseen"))},
            out_dir / "metrics_seen_vs_unseen.png", "Student metrics: seen vs unseen schemas")
        plots["metrics_en_vs_fr"] = plot_metric_bars(
            {"EN": scope_metrics(summary, ("by_language", "en")), "FR": scope_metrics(summary, ("by_language", "fr"))},
            out_dir / "metrics_en_vs_fr.png", "Student metrics: English vs French requests")
    overall = scope_metrics(summary, ("overall",))
    if overall is not None and loaded.unconstrained is not None:
        plots["metrics_constrained_vs_unconstrained"] = plot_metric_bars(
            {"constrained": overall, "unconstrained": scope_metrics(loaded.unconstrained, ("overall",))},
            out_dir / "metrics_constrained_vs_unconstrained.png",
            "Student metrics: constrained vs unconstrained decoding (all rows)")
    if overall is not None and loaded.baseline is not None:
        plots["metrics_baseline_vs_student"] = plot_metric_bars(
            {"baseline (no adapter)": scope_metrics(loaded.baseline, ("overall",)), "student": overall},
            out_dir / "metrics_baseline_vs_student.png", "Base model vs distilled student (all rows)")
    if loaded.dpo_logs is not None:
        plots["dpo_loss"] = plot_dpo_loss(loaded.dpo_logs, out_dir / "dpo_loss.png")
        plots["dpo_rewards"] = plot_dpo_rewards(loaded.dpo_logs, out_dir / "dpo_rewards.png")
    if loaded.dpo_summary is not None:
        dpo = loaded.dpo_summary
        plots["metrics_sft_vs_dpo"] = plot_metric_bars(
            {"SFT": overall, "DPO": scope_metrics(dpo, ("overall",))},
            out_dir / "metrics_sft_vs_dpo.png", "SFT vs DPO adapter (all rows)")
        plots["metrics_sft_vs_dpo_by_schema"] = plot_metric_bar_panels(
            {f"{kind} schemas": {"SFT": scope_metrics(summary, ("by_schema", kind)),
                                 "DPO": scope_metrics(dpo, ("by_schema", kind))} for kind in ("seen", "unseen")},
            out_dir / "metrics_sft_vs_dpo_by_schema.png", "SFT vs DPO adapter by schema")
    return plots


def build_reports(inputs: ReportInputs, out_dir: Path, *, examples_per_cause: int = 3,
                  settings: Mapping[str, Any] | None = None) -> dict[str, Path]:
    """Read the inputs, draw the plots, write report.md (+ alignment_report.md when DPO ran); returns
    {name: path} of everything written. Raises UserError on bad or absent required input."""
    loaded = load_inputs(inputs)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    made = provenance(settings or {})
    plots = draw_plots(loaded, out_dir)
    written: dict[str, Path] = {}
    report_path = out_dir / "report.md"
    write_text_atomic(report_path, render_report(inputs, loaded, plots, made, examples_per_cause))
    written["report"] = report_path
    if loaded.dpo_logs is not None or loaded.dpo_summary is not None:
        alignment_path = out_dir / "alignment_report.md"
        write_text_atomic(alignment_path, render_alignment_report(inputs, loaded, plots, made))
        written["alignment_report"] = alignment_path
    run_path = out_dir / "report_run.json"
    write_json_atomic(run_path, {**made, "notes": loaded.notes})
    written["run_record"] = run_path
    written.update({name: path for name, path in plots.items() if path is not None})
    return written
