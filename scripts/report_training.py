"""Stage 9: turn training metrics and evaluation files into PNG plots and Markdown reports.

Writes <out-dir>/report.md (training curves, metrics overall / seen / unseen / EN / FR, refusals, speed,
truncations, example failures by cause) and, when a DPO run left metrics or an evaluation,
<out-dir>/alignment_report.md (SFT vs DPO with deltas, DPO curves, a reading generated from the numbers).
Optional inputs that are missing are noted in the report and skipped.

Run as:
    uv run scripts/report_training.py
    uv run scripts/report_training.py --config config/offline.json
    uv run scripts/report_training.py --training-metrics outputs/student_runs/gemma3-270m/training_metrics.jsonl \
        --eval-summary outputs/student_runs/eval/evaluation_summary.json --out-dir outputs/reports/my-run
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ast_distill import cli
from ast_distill.alignment.choice import aligned_path
from ast_distill.alignment.choice import eval_dir as eval_dir_of
from ast_distill.config import flag_settings, load_config
from ast_distill.reporting import ReportInputs, build_reports
from ast_distill.gate import history_path
from ast_distill.runs import SWEEP_FILE
from ast_distill.settings import ReportingSettings, check_ranges


def build_parser() -> argparse.ArgumentParser:
    parser = cli.stage_parser(__doc__)
    # --- SFT inputs
    parser.add_argument("--training-metrics", default=None,
                        help="SFT training_metrics.jsonl (default: <training.output_dir>/training_metrics.jsonl)")
    parser.add_argument("--eval-summary", default=None,
                        help="evaluation_summary.json of the SFT adapter "
                             "(default: <evaluation.out_dir>/evaluation_summary.json)")
    parser.add_argument("--eval-results", default=None,
                        help="per-row evaluation_results.jsonl, for failure examples and truncation counts "
                             "(default: <evaluation.out_dir>/evaluation_results.jsonl; optional)")
    parser.add_argument("--unconstrained-summary", default=None,
                        help="evaluation_summary.json of an unconstrained-decoding run "
                             "(default: <evaluation.out_dir>/unconstrained/evaluation_summary.json; optional)")
    parser.add_argument("--baseline-summary", default=None,
                        help="evaluation_summary.json of the base model without adapter (optional; no default)")
    # --- DPO inputs
    parser.add_argument("--dpo-training-metrics", default=None,
                        help="DPO training_metrics.jsonl (default: <alignment.output_dir>/training_metrics.jsonl;"
                             " optional)")
    parser.add_argument("--dpo-eval-summary", default=None,
                        help="evaluation_summary.json of the DPO adapter "
                             "(default: <evaluation.out_dir>-dpo/evaluation_summary.json; optional); its "
                             "evaluation_results.jsonl beside it is used for row-by-row changes")
    # --- boost inputs
    parser.add_argument("--boost-training-metrics", default=None,
                        help="the boost run's training_metrics.jsonl (default: <boost.output_dir>/training_metrics.jsonl;"
                             " optional)")
    parser.add_argument("--boost-eval-summary", default=None,
                        help="evaluation_summary.json of the boosted student (default: "
                             "<evaluation.out_dir>-boost/evaluation_summary.json; optional); its results beside it "
                             "give the row-by-row changes")
    parser.add_argument("--aligned", default=None,
                        help="the alignment stage's choice, aligned.json (default: beside alignment.pairs_out; optional)")
    # --- across runs
    parser.add_argument("--checkpoint-sweep", default=None,
                        help="the SFT run's checkpoint_sweep.json (default: beside the training metrics; optional)")
    parser.add_argument("--run-history", default=None,
                        help="the quality gate's run history (default: gate.history, else "
                             "<out_dir>/run_history.jsonl; optional)")
    cli.add_settings_flags(parser, ReportingSettings)  # --out-dir, --examples-per-cause
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    reporting = flag_settings(args, config, "reporting")
    train_dir = Path(config["training"]["output_dir"])
    eval_dir = Path(config["evaluation"]["out_dir"])
    dpo_dir = Path(config["alignment"]["output_dir"])
    dpo_eval_dir, boost_eval_dir = eval_dir_of(config, "dpo"), eval_dir_of(config, "boost")
    settings = {
        "training_metrics": args.training_metrics or str(train_dir / "training_metrics.jsonl"),
        "eval_summary": args.eval_summary or str(eval_dir / "evaluation_summary.json"),
        "eval_results": args.eval_results or str(eval_dir / "evaluation_results.jsonl"),
        "unconstrained_summary": args.unconstrained_summary
        or str(eval_dir / "unconstrained" / "evaluation_summary.json"),
        "baseline_summary": args.baseline_summary,
        "dpo_training_metrics": args.dpo_training_metrics or str(dpo_dir / "training_metrics.jsonl"),
        "dpo_eval_summary": args.dpo_eval_summary or str(dpo_eval_dir / "evaluation_summary.json"),
        "boost_training_metrics": args.boost_training_metrics
        or str(Path(config["boost"]["output_dir"]) / "training_metrics.jsonl"),
        "boost_eval_summary": args.boost_eval_summary or str(boost_eval_dir / "evaluation_summary.json"),
        "aligned": args.aligned or str(aligned_path(config)),
        "out_dir": reporting["out_dir"],
        "run_history": args.run_history or history_path({**config, "reporting": reporting}),
        "examples_per_cause": reporting["examples_per_cause"],
    }
    settings["checkpoint_sweep"] = args.checkpoint_sweep or str(Path(settings["training_metrics"]).parent / SWEEP_FILE)
    check_ranges(ReportingSettings, settings)
    cli.print_settings("report_training", settings)
    inputs = ReportInputs(**{key: None if settings[key] is None else Path(settings[key])
                             for key in ("training_metrics", "eval_summary", "eval_results",
                                         "unconstrained_summary", "baseline_summary", "dpo_training_metrics",
                                         "dpo_eval_summary", "boost_training_metrics", "boost_eval_summary",
                                         "aligned", "checkpoint_sweep", "run_history")})
    written = build_reports(inputs, Path(settings["out_dir"]), examples_per_cause=settings["examples_per_cause"],
                            settings=settings)
    cli.print_outputs("report_training", {name: str(path) for name, path in written.items()})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
