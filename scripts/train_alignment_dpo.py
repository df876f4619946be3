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
from ast_distill.alignment import DPO_KEYS, train_dpo
from ast_distill.config import load_config, resolve

BOOL = argparse.BooleanOptionalAction


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config/defaults.json",
                   help="config file overlaying config/defaults.json (default: %(default)s)")

    # inputs / outputs
    p.add_argument("--pairs", dest="pairs_out", help="pairs JSONL from build_alignment_pairs.py "
                                                     "(default: alignment.pairs_out)")
    p.add_argument("--adapter", help="the SFT result to start from: a LoRA adapter dir or a full model dir "
                                     "(default: alignment.adapter)")
    p.add_argument("--output-dir", dest="output_dir", help="run dir for checkpoints, metrics and run_config.json "
                                                           "(default: alignment.output_dir)")
    p.add_argument("--base-model", dest="base_model",
                   help="base to merge a LoRA adapter into; 'scratch' or the adapter's own base = the base the "
                        "adapter records (default: alignment.base_model)")
    p.add_argument("--resume-from-checkpoint", dest="resume_from_checkpoint", metavar="PATH|auto",
                   help="go on from a checkpoint-N dir; 'auto' = the newest in --output-dir (fresh if none)")
    p.add_argument("--seed", type=int, help="seed for init and data order")

    # schedule
    p.add_argument("--max-steps", dest="max_steps", type=int,
                   help="optimizer steps (an upper bound when --max-minutes is set); -1 = one pass over the pairs")
    p.add_argument("--max-minutes", dest="max_minutes", type=float,
                   help="time budget of the DPO loop in minutes: the step time is measured and the schedule fitted "
                        "to end inside it (0 = none)")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="pairs per device batch")
    p.add_argument("--grad-accum", dest="grad_accum", type=int, help="batches per optimizer step")
    p.add_argument("--learning-rate", dest="learning_rate", type=float, help="peak learning rate (linear decay)")
    p.add_argument("--warmup-steps", dest="warmup_steps", type=int, help="linear warmup, in optimizer steps")
    p.add_argument("--logging-steps", dest="logging_steps", type=int, help="log loss and rewards/* every N steps")
    p.add_argument("--save-steps", dest="save_steps", type=int, help="write checkpoint-N every N steps (0 = never)")
    p.add_argument("--save-total-limit", dest="save_total_limit", type=int,
                   help="keep at most N checkpoint-N dirs (0 = keep all)")

    # DPO
    p.add_argument("--beta", type=float, help="DPO beta: weight of the policy/reference log-ratio in the reward "
                                              "(higher = stay closer to the SFT model)")

    # precision, memory
    p.add_argument("--load-in-4bit", dest="load_in_4bit", action=BOOL, help="4-bit base weights (unsloth backend)")
    cli.add_measured_switch(p, "--bf16", "bf16", "bf16 mixed precision (CUDA with bf16, CPU autocast)")
    p.add_argument("--max-seq-length", dest="max_seq_length", type=int,
                   help="tokens per prompt+completion; longer pairs are dropped and counted")

    # LoRA (adapter starts)
    p.add_argument("--lora-r", dest="lora_r", type=int, help="rank of the new DPO adapter")
    p.add_argument("--lora-alpha", dest="lora_alpha", type=int, help="LoRA scaling numerator")
    p.add_argument("--lora-dropout", dest="lora_dropout", type=float, help="dropout on the LoRA path")
    return p


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = resolve(args, config, "alignment", DPO_KEYS)
    cli.print_settings("train_alignment_dpo", {**settings, "resume_from_checkpoint": args.resume_from_checkpoint})
    outputs = train_dpo(settings, resume=args.resume_from_checkpoint,
                        resolved_config={"config_file": args.config, **config, "alignment": settings})
    cli.print_outputs("train_alignment_dpo", outputs)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
