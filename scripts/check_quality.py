"""The quality gate: check a student's evaluation summary against minimum rates and against the previous run.

Writes run_health.json beside the report (pass/fail, the checkpoint, the headline figures seen/unseen/EN/FR,
each check with its value and limit, the trend against the previous run, pointers to the run's files) and
appends the run to the run history. Exit code 0 when every check passes, 1 when one fails (one line each on
stderr), 2 on bad input.

Run as:
  uv run scripts/check_quality.py --config config/offline.json
  uv run scripts/check_quality.py --config config/offline-gemma.json --min-semantic-pass-unseen 0.2 \
      --eval-summary outputs/student_runs/gemma-eval-dpo/evaluation_summary.json
"""
from __future__ import annotations

import sys
from pathlib import Path

from ast_distill import cli, gate
from ast_distill.alignment.choice import aligned_path
from ast_distill.config import flag_settings, load_config
from ast_distill.evaluation import SUMMARY_NAME
from ast_distill.settings import GateSettings, check_ranges

FAILED = 1  # a failed check: the run is not good enough (not bad input, which is 2)


def build_parser():
    parser = cli.stage_parser(__doc__)
    cli.add_settings_flags(parser, GateSettings)  # every key of the gate section
    return parser


def main(args) -> int:
    config = load_config(args.config)
    limits = flag_settings(args, config, "gate")
    check_ranges(GateSettings, limits)
    reports = Path(config["reporting"]["out_dir"])
    summary = limits.pop("eval_summary") or str(Path(config["evaluation"]["out_dir"]) / SUMMARY_NAME)
    history = limits.pop("history") or gate.history_path(config)
    artifacts = {"report": str(reports / "report.md"), "alignment_report": str(reports / "alignment_report.md"),
                 "history": history, "aligned": str(aligned_path(config))}
    health = gate.run_gate(summary, history, str(reports / gate.HEALTH_NAME), limits, artifacts)
    for line in gate.failed_lines(health):
        print(line, file=sys.stderr)
    verdict = "passed" if health["passed"] else "FAILED"
    print(f"quality gate {verdict}: {len(health['checks'])} checks on {summary} "
          f"({'against the previous run' if health['previous_run'] else 'no previous run of this checkpoint'})")
    cli.print_outputs("check_quality", {"run_health": reports / gate.HEALTH_NAME, "history": history})
    return 0 if health["passed"] else FAILED


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
