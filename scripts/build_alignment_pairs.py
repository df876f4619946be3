"""Stage 7: DPO preference pairs from the teacher's verdicts on the SFT student's outputs for the pref rows.

For each evaluation row the teacher rejected, a pair in TRL's conversational preference format: prompt = the
row's chat messages (from the d_04 file the evaluation read, by id; they must render to the exact prompt text
the student saw), chosen = the teacher's AST, rejected = what the student wrote, each one assistant message
as SFT's completions are (the minified AST; DPO then applies the same chat template as SFT).
Rows without a teacher AST, or whose two sides are the same text, are dropped; the counts by reason are
printed and written to <pairs>.meta.json. When no pair is left, an empty pairs file is written and the
stage exits 0: there is nothing to train.

Run as:
    uv run scripts/build_alignment_pairs.py --config config/offline.json
    uv run scripts/build_alignment_pairs.py --no-only-rejected --max-pairs 200 --out /tmp/dpo_pairs.jsonl \
        --eval-results outputs/student_runs/alignment/pref_eval/evaluation_results.jsonl
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.alignment import write_pairs
from ast_distill.config import flag_settings, load_config
from ast_distill.settings import AlignmentSettings, TrainingSettings


def build_parser() -> argparse.ArgumentParser:
    p = cli.stage_parser(__doc__)
    cli.add_settings_flags(p, AlignmentSettings, ("eval_results", "pairs_out", "adapter", "only_rejected",
                                                  "max_pairs", "seed"), flags={"pairs_out": "--out"})
    # the d_04 file the evaluation read: the prompt messages of its rows, by id
    cli.add_settings_flags(p, TrainingSettings, ("training_corpus",), flags={"training_corpus": "--dataset"})
    return p


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    alignment = flag_settings(args, config, "alignment")
    settings = {
        "eval_results": alignment["eval_results"],
        "dataset": flag_settings(args, config, "training")["training_corpus"],
        "out": alignment["pairs_out"],
        "adapter": alignment["adapter"],
        "only_rejected": alignment["only_rejected"],
        "max_pairs": alignment["max_pairs"],
        "seed": alignment["seed"],
    }
    cli.print_settings("build_alignment_pairs", settings)
    outputs = write_pairs(settings, resolved_config={"config_file": args.config, **config})
    cli.print_outputs("build_alignment_pairs", outputs)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
