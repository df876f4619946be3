"""Stage 8, boost (1/2): new teacher rows aimed at the SFT student's failures on the pref rows.

Reads the pref evaluation (runAlignment.sh's step 1), finds per schema what the failed rows exercise (their gold
ASTs' fields, operators and clauses; refusals the student missed), asks the dataset's teacher for about
--rows-per-failure new rows per failed row on those schemas, keeps the valid ones aimed at a failure that repeat no
request of the dataset, and writes them (--rows-out, d_03-shaped, each with the failures it aims at) and the boost
corpus (--corpus-out: the new rows as `train` rows, --replay-ratio train rows of d_04 per new row, d_04's val and
pref rows) for scripts/train_boost.py. A rerun keeps
both while the pref evaluation, corpus, settings and teacher are unchanged (--no-resume writes them again).

Run as:
    uv run scripts/build_boost_rows.py --config config/offline.json
    uv run scripts/build_boost_rows.py --config config/offline.json --rows-per-failure 2 --max-rows 300
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.alignment.boost import build_boost_rows
from ast_distill.config import flag_settings, generation_teacher_model, load_config
from ast_distill.jsonl import meta_path
from ast_distill.settings import AlignmentSettings, BoostSettings, DatasetGenerationSettings
from ast_distill.teachers import make_teacher


def build_parser() -> argparse.ArgumentParser:
    p = cli.stage_parser(__doc__)
    p.add_argument("--no-resume", dest="resume", action="store_false",
                   help="write the rows again even when the kept ones were made from the same inputs")
    cli.add_settings_flags(p, BoostSettings, ("rows_per_failure", "max_rows", "candidates_per_row", "replay_ratio", "seed",
                                              "rows_out", "corpus_out"))
    cli.add_settings_flags(p, AlignmentSettings, ("eval_results",))
    cli.add_settings_flags(p, DatasetGenerationSettings, ("teacher_model",))
    return p


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    boost = {**config["boost"], **flag_settings(args, config, "boost")}
    pref_results = flag_settings(args, config, "alignment")["eval_results"]
    generation = config["dataset_generation"]
    model = generation_teacher_model(flag_settings(args, config, "dataset_generation")["teacher_model"], config)
    cli.print_settings("build_boost_rows", {**boost, "pref_results": pref_results, "teacher_model": model})
    teacher = make_teacher(config, model, retries=generation["teacher_retries"],
                           retry_wait_s=generation["teacher_retry_wait"], seed=int(boost["seed"]))
    summary = build_boost_rows(teacher=teacher, pref_results=pref_results,
                               corpus=generation["training_corpus_out"], dataset=generation["dataset_out"],
                               schemas=generation["final_schemas_out"], specs=generation["schema_specs_out"],
                               cfg=boost, resume=args.resume)
    cli.print_outputs("build_boost_rows", {"rows": f"{boost['rows_out']} ({summary['rows']} rows)",
                                           "corpus": f"{boost['corpus_out']} ({summary['corpus_rows']} rows)",
                                           "provenance": meta_path(boost["rows_out"])})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
