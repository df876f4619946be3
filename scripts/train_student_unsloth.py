"""Stage 5: supervised fine-tuning of the student on the d_04 training corpus.

Trains on the corpus's "train" rows, reports eval_loss on its "val" rows, never touches "pref" or "test"
rows. The student is a pretrained model with LoRA (Unsloth on CUDA, else transformers + PEFT + TRL) or, with
--base-model scratch, a small Gemma 3 with a tokenizer trained on the corpus, trained in full.
Writes <output-dir>/checkpoint-N/, checkpoint-final/ (model or adapter + tokenizer), training_metrics.jsonl
and run_config.json.

Run as:
    uv run scripts/train_student_unsloth.py --config config/offline.json
    uv run scripts/train_student_unsloth.py --config config/offline.json --max-steps 50 --output-dir /tmp/sft
    uv run scripts/train_student_unsloth.py --resume-from-checkpoint auto      # go on from the newest checkpoint
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.config import load_config, resolve
from ast_distill.training import BACKENDS, TRAINING_KEYS, train_sft

BOOL = argparse.BooleanOptionalAction


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config/defaults.json",
                   help="config file overlaying config/defaults.json (default: %(default)s)")

    # inputs / outputs
    p.add_argument("--training-corpus", dest="training_corpus", help="d_04 JSONL with train/val/pref rows")
    p.add_argument("--output-dir", dest="output_dir", help="run dir for checkpoints, metrics and run_config.json")
    p.add_argument("--base-model", dest="base_model",
                   help="hub id or local model dir (LoRA), or 'scratch' (new tokenizer + small Gemma 3, full training)")
    p.add_argument("--backend", choices=BACKENDS,
                   help="auto = unsloth when CUDA is there and unsloth imports, else hf (transformers + PEFT + TRL)")
    p.add_argument("--resume-from-checkpoint", dest="resume_from_checkpoint", metavar="PATH|auto",
                   help="go on from a checkpoint-N dir; 'auto' = the newest in --output-dir (fresh if none)")

    # data split and sequence budget
    p.add_argument("--seed", type=int, help="seed for the held-out split, init and data order")
    p.add_argument("--max-samples", dest="max_samples", type=int, help="cap on train rows (unset = all)")
    p.add_argument("--val-split", dest="val_split", type=float,
                   help="0 disables eval; else the val rows are used, or this fraction of train when there are none")
    p.add_argument("--eval-max-samples", dest="eval_max_samples", type=int, help="cap on eval rows")
    p.add_argument("--max-seq-length", dest="max_seq_length", type=int,
                   help="tokens per prompt+completion; longer rows are dropped and counted")
    p.add_argument("--requests-per-sequence", dest="requests_per_sequence", type=int,
                   help="chain up to N train requests of one schema into one conversation (the schema is read "
                        "once for N answers); 1 = one request per sequence")
    p.add_argument("--group-by-length", dest="group_by_length", action=BOOL,
                   help="draw batches of similar lengths so padding stays small")

    # schedule
    p.add_argument("--max-steps", dest="max_steps", type=int,
                   help="optimizer steps (an upper bound when --max-minutes is set); -1 = use --num-epochs")
    p.add_argument("--max-minutes", dest="max_minutes", type=float,
                   help="time budget of the training loop in minutes: the step time is measured and the schedule "
                        "fitted to end inside it (0 = none)")
    p.add_argument("--num-epochs", dest="num_epochs", type=float, help="epochs, used when --max-steps is -1")
    p.add_argument("--logging-steps", dest="logging_steps", type=int, help="log train metrics every N steps")
    p.add_argument("--eval-steps", dest="eval_steps", type=int, help="eval_loss + sample generations every N steps")
    p.add_argument("--save-steps", dest="save_steps", type=int, help="write checkpoint-N every N steps (0 = never)")
    p.add_argument("--save-total-limit", dest="save_total_limit", type=int,
                   help="keep at most N checkpoint-N dirs (0 = keep all)")
    p.add_argument("--early-stop-min-delta", dest="early_stop_min_delta", type=float,
                   help="eval_loss improvement (nats) that counts as progress")
    p.add_argument("--early-stop-patience", dest="early_stop_patience", type=int,
                   help="stop after N evals without progress (0 = off)")
    p.add_argument("--sample-generations", dest="sample_generations", type=int,
                   help="val prompts generated greedily at each eval and logged (0 = none)")

    # optimization
    p.add_argument("--optimizer", choices=("adamw", "muon"),
                   help="adamw, or muon: Muon on the hidden weight matrices and AdamW on embeddings and norms")
    p.add_argument("--learning-rate", dest="learning_rate", type=float,
                   help="peak learning rate (AdamW's; with --optimizer muon, that of embeddings and norms)")
    p.add_argument("--muon-learning-rate", dest="muon_learning_rate", type=float,
                   help="--optimizer muon only: peak learning rate of the hidden matrices")
    p.add_argument("--lr-scheduler-type", dest="lr_scheduler_type",
                   help="transformers scheduler: linear, cosine, cosine_with_min_lr, ...")
    p.add_argument("--min-lr-rate", dest="min_lr_rate", type=float,
                   help="cosine_with_min_lr only: final learning rate as a share of the peak (0 = decay to zero)")
    p.add_argument("--weight-decay", dest="weight_decay", type=float,
                   help="decoupled weight decay (AdamW, and Muon with --optimizer muon)")
    p.add_argument("--warmup-steps", dest="warmup_steps", type=int, help="linear warmup, in optimizer steps")
    p.add_argument("--batch-size", dest="batch_size", type=int, help="rows per device batch")
    p.add_argument("--grad-accum", dest="grad_accum", type=int, help="batches per optimizer step")
    p.add_argument("--max-grad-norm", dest="max_grad_norm", type=float, help="gradient clipping norm")

    # precision, memory, threads
    p.add_argument("--load-in-4bit", dest="load_in_4bit", action=BOOL, help="4-bit base weights (unsloth backend)")
    cli.add_measured_switch(p, "--bf16", "bf16", "bf16 mixed precision (CUDA with bf16, CPU autocast)")
    cli.add_measured_switch(p, "--torch-compile", "torch_compile",
                            "torch.compile the model; pads every batch to --max-seq-length (one shape, one compile)")
    p.add_argument("--use-gradient-checkpointing", dest="use_gradient_checkpointing", action=BOOL,
                   help="recompute activations to save memory")
    p.add_argument("--eval-accumulation-steps", dest="eval_accumulation_steps", type=int,
                   help="eval batches accumulated before moving results off the device (0 = all)")
    p.add_argument("--torch-threads", dest="torch_threads", type=int, help="CPU threads for torch (0 = torch default)")

    # LoRA (pretrained base models)
    p.add_argument("--lora-r", dest="lora_r", type=int, help="LoRA rank")
    p.add_argument("--lora-alpha", dest="lora_alpha", type=int, help="LoRA scaling numerator")
    p.add_argument("--lora-dropout", dest="lora_dropout", type=float, help="dropout on the LoRA path")

    # scratch student (--base-model scratch)
    p.add_argument("--scratch-hidden-size", dest="scratch_hidden_size", type=int, help="model width")
    p.add_argument("--scratch-num-layers", dest="scratch_num_layers", type=int, help="transformer layers")
    p.add_argument("--scratch-num-heads", dest="scratch_num_heads", type=int, help="attention heads")
    p.add_argument("--scratch-num-kv-heads", dest="scratch_num_kv_heads", type=int, help="key/value heads")
    p.add_argument("--scratch-head-dim", dest="scratch_head_dim", type=int, help="width of one head")
    p.add_argument("--scratch-intermediate-size", dest="scratch_intermediate_size", type=int, help="MLP width")
    p.add_argument("--scratch-vocab-size", dest="scratch_vocab_size", type=int, help="BPE vocabulary size (tokens)")
    p.add_argument("--scratch-rope-theta", dest="scratch_rope_theta", type=int,
                   help="rotary position base of every layer (Gemma 3's global layers use 1000000)")
    return p


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = resolve(args, config, "training", TRAINING_KEYS)
    cli.print_settings("train_student", {**settings, "resume_from_checkpoint": args.resume_from_checkpoint})
    outputs = train_sft(settings, resume=args.resume_from_checkpoint,
                        final_schemas=config["dataset_generation"]["final_schemas_out"],
                        resolved_config={"config_file": args.config, **config, "training": settings})
    cli.print_outputs("train_student", outputs)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
