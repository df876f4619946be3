"""Stage 3: schemas (d_02) -> (request, AST) rows in English and French (d_03), some of them refusals.

Every AST is validated against its schema: invalid rows are kept with is_valid=false and the error; a
request that repeats one already written for the same schema is dropped and counted. Rows are appended
with fsync every --checkpoint-every rows, so a killed run loses at most that many, and a run started again
resumes by row id and ends with exactly the rows an uninterrupted run writes (per-schema seeds).

Run as:
    uv run scripts/generate_dataset.py --config config/offline.json
    uv run scripts/generate_dataset.py --teacher-model gpt-oss:120b --samples-per-schema 60 --concurrency 4
    uv run scripts/generate_dataset.py --config config/offline.json --no-resume   # start over
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.config import flag_settings, generation_teacher_model, load_config
from ast_distill.dataset import generate_dataset
from ast_distill.jsonl import meta_path
from ast_distill.settings import DatasetGenerationSettings, TeacherSettings, check_ranges
from ast_distill.teachers import make_teacher

SECTION = "dataset_generation"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--checkpoint-path", default=None,
                        help="JSONL that rows are appended to while running (default: --out itself); when it "
                             "differs from --out, --out is written from it at the end")
    cli.add_settings_flags(parser, DatasetGenerationSettings,
                           ("teacher_model", "teacher_retries", "teacher_retry_wait", "final_schemas_out",
                            "schema_specs_out", "samples_per_schema", "samples_per_user_schema", "seed", "checkpoint_every", "resume",
                            "dataset_out"), flags={"dataset_out": "--out"})
    cli.add_settings_flags(parser, TeacherSettings, ("concurrency",))
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    flagged = flag_settings(args, config, SECTION)
    settings = {key: flagged[key] for key in ("samples_per_schema", "samples_per_user_schema", "seed", "teacher_retries", "teacher_retry_wait",
                                              "checkpoint_every", "resume")}
    settings["schemas"] = flagged["final_schemas_out"]
    settings["domain_specs"] = flagged["schema_specs_out"]
    settings["out"] = flagged["dataset_out"]
    settings["checkpoint_path"] = args.checkpoint_path or settings["out"]
    settings["concurrency"] = flag_settings(args, config, "teacher")["concurrency"]
    settings["backend"] = config["teacher"]["backend"]
    settings["teacher_model"] = generation_teacher_model(args.teacher_model, config)
    check_ranges(TeacherSettings, settings)
    check_ranges(DatasetGenerationSettings, settings)
    cli.print_settings("generate_dataset", settings)
    teacher = make_teacher(config, settings["teacher_model"], retries=settings["teacher_retries"],
                           retry_wait_s=settings["teacher_retry_wait"], seed=settings["seed"],
                           concurrency=settings["concurrency"])
    summary = generate_dataset(
        teacher=teacher, schemas_path=settings["schemas"], specs_path=settings["domain_specs"],
        samples_per_schema=settings["samples_per_schema"], samples_per_user_schema=settings["samples_per_user_schema"],
        seed=settings["seed"], out=settings["out"],
        checkpoint_path=settings["checkpoint_path"], checkpoint_every=settings["checkpoint_every"],
        resume=settings["resume"], concurrency=teacher.concurrency, settings=settings)  # over all its servers
    print("== generate_dataset: summary")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    cli.print_outputs("generate_dataset", {"dataset": f"{settings['out']} ({summary['rows']} rows)",
                                           "provenance": meta_path(settings["out"])})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
