"""The reports' PNG plots (matplotlib, Agg): training curves, metric bars, DPO curves, the trend across runs;
``draw_plots`` draws every plot the inputs allow."""
from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from ..jsonl import write_bytes_atomic
from ..scoring import CORRECTNESS_RATES
from .history import TREND_FIGURES, trend_rows
from .inputs import LoadedInputs, TrainingLogs
from .summaries import METRIC_LABELS, Metrics, as_number, fmt_n, scope_metrics, series

DPI = 120


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


def _train_series_figure(logs: TrainingLogs, key: str, size: tuple[float, float],
                         label: str) -> tuple[Figure, Any] | None:
    """A one-axis figure with one logged training value drawn; None when nothing was logged."""
    steps, values = series(logs.train, key)
    if not steps:
        return None
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    _line(ax, steps, values, label=label)
    return fig, ax


def plot_learning_rate(logs: TrainingLogs, path: Path, title: str) -> Path | None:
    drawn = _train_series_figure(logs, "learning_rate", (8, 3.5), "learning rate (scheduler)")
    if drawn is None:
        return None
    fig, ax = drawn
    _style_axis(ax, title, "optimizer step", "learning rate (optimizer step size)")
    ax.ticklabel_format(axis="y", style="sci", scilimits=(-3, 3))
    ax.legend()
    return _save(fig, path)


def _bars(ax: Any, groups: Mapping[str, Metrics | None], metrics: Sequence[str]) -> None:
    present = {label: m for label, m in groups.items() if m is not None}
    width = 0.8 / max(1, len(present))
    for index, (label, block) in enumerate(present.items()):
        xs = [i + (index - (len(present) - 1) / 2) * width for i in range(len(metrics))]
        values = [as_number(block.get(name)) for name in metrics]
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
                     metrics: Sequence[str] = CORRECTNESS_RATES) -> Path | None:
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
        _bars(ax, groups, CORRECTNESS_RATES)
        ax.set_title(name)
    fig.suptitle(title)
    fig.tight_layout()
    return _save(fig, path)


def plot_dpo_loss(logs: TrainingLogs, path: Path) -> Path | None:
    drawn = _train_series_figure(logs, "loss", (8, 4), "DPO loss (-log sigmoid of the reward gap)")
    if drawn is None:
        return None
    fig, ax = drawn
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


def plot_trend(rows: Sequence[Mapping[str, Any]], figures: Sequence[tuple[str, str]], path: Path) -> Path | None:
    """The headline figures of each run (oldest first), one line per figure; None with fewer than two runs."""
    if len(rows) < 2:
        return None
    fig = Figure(figsize=(8, 4.5))
    ax = fig.add_subplot()
    runs = list(range(1, len(rows) + 1))
    for name, label in figures:
        points = [(x, as_number(r["figures"].get(name))) for x, r in zip(runs, rows)]
        kept = [(x, y) for x, y in points if y is not None]
        if kept:
            _line(ax, [x for x, _ in kept], [y for _, y in kept], label=label)
    _style_axis(ax, "Headline figures across runs (same rows)", "run (oldest first)", "rate")
    ax.set_xticks(runs)
    ax.set_ylim(-0.02, 1.02)
    ax.legend()
    return _save(fig, path)


def plot_reliability(confidence: Mapping[str, Any] | None, path: Path) -> Path | None:
    """The reliability diagram: share of right answers against mean confidence in each confidence band (the
    diagonal is perfect calibration), with each band's rows as bars below."""
    bands = [b for b in (confidence or {}).get("bands", []) if b.get("rows")]
    if not bands:
        return None
    fig = Figure(figsize=(6, 6))
    top, bottom = fig.subplots(2, 1, sharex=True, gridspec_kw={"height_ratios": [3, 1]})
    top.plot([0, 1], [0, 1], linestyle=":", color="gray", label="perfectly calibrated")
    top.plot([b["mean_confidence"] for b in bands], [b["accuracy"] for b in bands], marker="o",
             label="student" + (" (calibrated on val rows)" if confidence.get("calibrated") else " (raw)"))
    _style_axis(top, f"Reliability (ECE {confidence.get('ece')})", "", "share of answers right")
    top.set_xlim(0, 1)
    top.set_ylim(-0.02, 1.02)
    top.legend(loc="upper left")
    bottom.bar([sum(b["band"]) / 2 for b in bands], [b["rows"] for b in bands], width=0.08, color="tab:gray")
    _style_axis(bottom, "", "confidence (band)", "rows")
    return _save(fig, path)


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
        plots["reliability"] = plot_reliability(summary.get("confidence"), out_dir / "reliability.png")
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
    trend, _ = trend_rows(loaded.history or [], summary)
    plots["trend"] = plot_trend(trend, TREND_FIGURES, out_dir / "trend.png")
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
