"""Stage 8, boost (2/2): SFT goes on from the selected SFT checkpoint on the train rows plus the boost rows.

The training section's settings, with the boost section's corpus (scripts/build_boost_rows.py's --corpus-out),
output dir, steps, time budget, learning rate and warmup; a checkpoint at half and at the end (the sweep scores
both). A full model (the scratch student) trains on in full; a LoRA adapter is merged into its base and a new
adapter trained on top. Writes <output-dir>/checkpoint-N/, checkpoint-final/, training_metrics.jsonl and
run_config.json, as scripts/train_student.py does.

Run as:
    uv run scripts/train_boost.py --config config/offline.json
    uv run scripts/train_boost.py --config config/offline.json --start-from outputs/student_runs/scratch --max-steps 40
    uv run scripts/train_boost.py --config config/offline.json --resume-from-checkpoint auto
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.alignment.boost import boost_training_settings
from ast_distill.config import flag_settings, load_config
from ast_distill.settings import BoostSettings
from ast_distill.training import train_sft


def build_parser() -> argparse.ArgumentParser:
    p = cli.stage_parser(__doc__)
    cli.add_resume_flag(p)
    p.add_argument("--start-from", default=None, metavar="DIR",
                   help="the SFT checkpoint (or run dir = its selected checkpoint) to go on from (default: "
                        "alignment.adapter, the checkpoint DPO starts from too)")
    cli.add_settings_flags(p, BoostSettings, ("corpus_out", "output_dir", "max_steps", "max_minutes", "learning_rate",
                                              "warmup_steps"))
    return p


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    boost = {**config["boost"], **flag_settings(args, config, "boost")}
    start = args.start_from or config["alignment"]["adapter"]
    settings = boost_training_settings(config["training"], boost, start)
    cli.print_settings("train_boost", {**settings, "resume_from_checkpoint": args.resume_from_checkpoint})
    outputs = train_sft(settings, resume=args.resume_from_checkpoint,
                        final_schemas=config["dataset_generation"]["final_schemas_out"],
                        resolved_config={"config_file": args.config, **config, "training": settings})
    cli.print_outputs("train_boost", outputs)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
