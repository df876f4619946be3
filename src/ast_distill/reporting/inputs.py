"""The reports' inputs: where they live (ReportInputs), reading them, and what was read (LoadedInputs).

Every input except "training metrics or an evaluation summary" is optional: a missing one becomes a note.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..jsonl import read_json, read_jsonl
from .summaries import Summary


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
    boost_training_metrics: Path | None = None
    boost_eval_summary: Path | None = None
    boost_eval_results: Path | None = None  # default: evaluation_results.jsonl beside boost_eval_summary
    aligned: Path | None = None  # alignment's choice (aligned.json)
    checkpoint_sweep: Path | None = None  # the SFT run's checkpoint_sweep.json
    run_history: Path | None = None  # the gate's run_history.jsonl

    def __post_init__(self) -> None:
        if self.dpo_eval_results is None and self.dpo_eval_summary is not None:
            self.dpo_eval_results = Path(self.dpo_eval_summary).parent / "evaluation_results.jsonl"
        if self.boost_eval_results is None and self.boost_eval_summary is not None:
            self.boost_eval_results = Path(self.boost_eval_summary).parent / "evaluation_results.jsonl"


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
    boost_logs: TrainingLogs | None = None
    boost_summary: Summary | None = None
    boost_results: list[dict[str, Any]] | None = None
    aligned: dict[str, Any] | None = None
    dpo_run: dict[str, Any] | None = None  # run_config.json beside the DPO metrics
    boost_run: dict[str, Any] | None = None  # run_config.json beside the boost metrics
    sweep: dict[str, Any] | None = None
    history: list[dict[str, Any]] | None = None
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
    loaded.boost_logs = _load_optional(inputs.boost_training_metrics, "Boost training metrics",
                                       load_training_logs, notes)
    loaded.boost_summary = _load_optional(inputs.boost_eval_summary, "Boost evaluation summary", load_summary,
                                          notes)
    if loaded.boost_summary is not None:
        loaded.boost_results = _load_optional(inputs.boost_eval_results, "Boost evaluation results", read_jsonl,
                                              notes)
    loaded.aligned = _load_optional(inputs.aligned, "Alignment's choice", read_json, notes)
    for name, metrics in (("dpo_run", inputs.dpo_training_metrics), ("boost_run", inputs.boost_training_metrics)):
        path = None if metrics is None else Path(metrics).parent / "run_config.json"
        if path is not None and path.is_file():
            setattr(loaded, name, read_json(path))
    loaded.sweep = _load_optional(inputs.checkpoint_sweep, "Checkpoint sweep", read_json, notes)
    loaded.history = _load_optional(inputs.run_history, "Run history", read_jsonl, notes)
    if loaded.dpo_summary is not None:
        loaded.dpo_results = _load_optional(inputs.dpo_eval_results, "DPO evaluation results", read_jsonl,
                                            notes)
    return loaded
