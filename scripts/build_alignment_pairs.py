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
from ast_distill.config import load_config, pick

BOOL = argparse.BooleanOptionalAction


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--config", default="config/defaults.json",
                   help="config file overlaying config/defaults.json (default: %(default)s)")

    # inputs / outputs
    p.add_argument("--eval-results", dest="eval_results",
                   help="evaluation_results.jsonl of the SFT student on the pref rows, with teacher verdicts "
                        "(default: alignment.eval_results)")
    p.add_argument("--dataset",
                   help="the d_04 file the evaluation read: the prompt messages of its rows, by id "
                        "(default: training.training_corpus)")
    p.add_argument("--out", help="pairs JSONL to write; <name>.meta.json goes beside it (default: alignment.pairs_out)")
    p.add_argument("--adapter",
                   help="the SFT checkpoint that was evaluated; its chat template must render each pair's prompt "
                        "to the text the student saw (default: alignment.adapter)")

    # selection
    p.add_argument("--only-rejected", dest="only_rejected", action=BOOL,
                   help="keep only rows the teacher rejected (default: alignment.only_rejected, on)")
    p.add_argument("--max-pairs", dest="max_pairs", type=int,
                   help="keep at most N pairs, a seeded random subset (unset = all)")
    p.add_argument("--seed", type=int, help="seed of the --max-pairs subset (default: alignment.seed)")
    return p


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = {
        "eval_results": pick(args.eval_results, config, "alignment", "eval_results"),
        "dataset": pick(args.dataset, config, "training", "training_corpus"),
        "out": pick(args.out, config, "alignment", "pairs_out"),
        "adapter": pick(args.adapter, config, "alignment", "adapter"),
        "only_rejected": pick(args.only_rejected, config, "alignment", "only_rejected"),
        "max_pairs": pick(args.max_pairs, config, "alignment", "max_pairs"),
        "seed": pick(args.seed, config, "alignment", "seed"),
    }
    cli.print_settings("build_alignment_pairs", settings)
    outputs = write_pairs(settings, resolved_config={"config_file": args.config, **config})
    cli.print_outputs("build_alignment_pairs", outputs)
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
