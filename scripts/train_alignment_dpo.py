"""Stage 8: DPO on the teacher's preference pairs, starting from the SFT student.

A LoRA SFT adapter is merged into its base (<output-dir>/sft-merged) and a new LoRA adapter is trained on
top, measured against the merged model; a full SFT model (the scratch student) is trained in full against a
frozen copy of itself. TRL's DPOTrainer does the training (Unsloth on CUDA for LoRA, when it imports).
Writes <output-dir>/checkpoint-N/, checkpoint-final/ (adapter or model + tokenizer, loadable like any
student checkpoint; an adapter names its base as "../sft-merged", so the run dir loads after a move),
training_metrics.jsonl (TRL's loss and rewards/* per log) and run_config.json (with the schema_format of
the SFT checkpoint, which predict renders prompts with). The pairs must be conversational (as
build_alignment_pairs.py writes them): TRL applies the chat template to them exactly as SFT did.
An empty pairs file trains nothing and exits 0.

Run as:
    uv run scripts/train_alignment_dpo.py --config config/offline.json
    uv run scripts/train_alignment_dpo.py --config config/offline.json --max-steps 20 --output-dir /tmp/dpo
    uv run scripts/train_alignment_dpo.py --config config/offline.json --resume-from-checkpoint auto
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.alignment import train_dpo
from ast_distill.config import flag_settings, load_config
from ast_distill.settings import AlignmentSettings


def build_parser() -> argparse.ArgumentParser:
    p = cli.stage_parser(__doc__)
    cli.add_resume_flag(p)
    # every alignment key but stage 7's (the pref evaluation and the pair selection)
    cli.add_settings_flags(p, AlignmentSettings, groups=("inputs and outputs", "schedule", "DPO",
                                                         "precision and memory", "LoRA"))
    return p


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = flag_settings(args, config, "alignment")
    cli.print_settings("train_alignment_dpo", {**settings, "resume_from_checkpoint": args.resume_from_checkpoint})
    outputs = train_dpo(settings, resume=args.resume_from_checkpoint,
                        resolved_config={"config_file": args.config, **config, "alignment": settings})
    cli.print_outputs("train_alignment_dpo", outputs)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
