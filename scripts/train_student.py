"""Stage 5: supervised fine-tuning of the student on the d_04 training corpus.

Trains on the corpus's "train" rows, reports eval_loss on its "val" rows, never touches "pref" or "test"
rows. The student is a pretrained model with LoRA (Unsloth on CUDA, else transformers + PEFT + TRL) or, with
--base-model scratch, a small Gemma 3 with a tokenizer trained on the corpus, trained in full.
Writes <output-dir>/checkpoint-N/, checkpoint-final/ (model or adapter + tokenizer), training_metrics.jsonl
and run_config.json.

Run as:
    uv run scripts/train_student.py --config config/offline.json
    uv run scripts/train_student.py --config config/offline.json --max-steps 50 --output-dir /tmp/sft
    uv run scripts/train_student.py --resume-from-checkpoint auto      # go on from the newest checkpoint
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.config import flag_settings, load_config
from ast_distill.settings import TrainingSettings
from ast_distill.training import train_sft


def build_parser() -> argparse.ArgumentParser:
    p = cli.stage_parser(__doc__)
    cli.add_resume_flag(p)
    cli.add_settings_flags(p, TrainingSettings)  # every key of the training section
    return p


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = flag_settings(args, config, "training")
    cli.print_settings("train_student", {**settings, "resume_from_checkpoint": args.resume_from_checkpoint})
    outputs = train_sft(settings, resume=args.resume_from_checkpoint,
                        final_schemas=config["dataset_generation"]["final_schemas_out"],
                        resolved_config={"config_file": args.config, **config, "training": settings})
    cli.print_outputs("train_student", outputs)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
