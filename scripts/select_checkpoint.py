"""Checkpoint sweep: score every saved checkpoint of a training run on the val rows and select the best.

Each checkpoint-N of the run (and checkpoint-final) is evaluated on the same seeded sample of `val` rows with the
evaluation's decoding and judge (into <run>/sweep/<checkpoint>/, resumable), ranked by semantic pass rate, then
schema-valid rate, then eval_loss; the winner is copied to <run>/checkpoint-best, which evaluation, DPO, export
and predict use when given the run dir. Writes <run>/checkpoint_sweep.json (the ranking). runTraining.sh and
runAlignment.sh run it after training when `sweep.enabled` is true.

Run as:
  uv run scripts/select_checkpoint.py --config config/offline.json
  uv run scripts/select_checkpoint.py --config config/offline.json --run-dir outputs/student_runs/scratch-dpo
  uv run scripts/select_checkpoint.py --run-dir outputs/student_runs/gemma3-270m --max-samples 200 --top-k 2
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.config import flag_settings, judge_teacher_model, load_config
from ast_distill.runs import SWEEP_FILE
from ast_distill.settings import SweepSettings, check_ranges
from ast_distill.sweep import format_ranking, run_sweep


def build_parser() -> argparse.ArgumentParser:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--run-dir", help="the training run to sweep (default: training.output_dir)")
    parser.add_argument("--teacher-model", help="judge model (default: as evaluate_student.py's)")
    cli.add_settings_flags(parser, SweepSettings, notes={"enabled": "the runners' switch; this script always sweeps"})
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    sweep = flag_settings(args, config, "sweep")
    if sweep["max_samples"] is not None and sweep["max_samples"] < 0:
        sweep["max_samples"] = None
    check_ranges(SweepSettings, sweep)
    run_dir = args.run_dir or config["training"]["output_dir"]
    cli.print_settings("select_checkpoint", {**sweep, "run_dir": run_dir})
    record = run_sweep(run_dir, config, sweep, teacher_model=judge_teacher_model(args.teacher_model, config))
    print(format_ranking(record))
    print(f"selected {record['selected']} (step {record['selected_step']}) -> {record['checkpoint_best']}"
          + (f"; deleted {', '.join(record['pruned'])}" if record["pruned"] else ""))
    cli.print_outputs("select_checkpoint", {"checkpoint_best": record["checkpoint_best"],
                                            "sweep": f"{run_dir.rstrip('/')}/{SWEEP_FILE}"})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
