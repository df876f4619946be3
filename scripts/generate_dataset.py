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
from ast_distill.config import generation_teacher_model, load_config, pick, resolve
from ast_distill.dataset import generate_dataset, meta_path
from ast_distill.errors import UserError
from ast_distill.teachers import make_teacher

SECTION = "dataset_generation"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/defaults.json",
                        help="config JSON overlaid on config/defaults.json (default: %(default)s)")
    # --- teacher
    cli.add_teacher_flags(parser, SECTION)
    parser.add_argument("--concurrency", type=int, default=None,
                        help="teacher requests in flight at once, one schema each (default: teacher.concurrency)")
    # --- inputs and sizes
    parser.add_argument("--schemas", default=None, help="d_02 JSONL (default: dataset_generation.final_schemas_out)")
    parser.add_argument("--domain-specs", default=None,
                        help="d_01 JSONL, for field labels and examples (default: dataset_generation.schema_specs_out)")
    parser.add_argument("--samples-per-schema", type=int, default=None,
                        help="rows to keep per schema (default: dataset_generation.samples_per_schema)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed; each schema's teacher seed derives from it and the schema id "
                             "(default: dataset_generation.seed)")
    # --- checkpointing
    parser.add_argument("--checkpoint-path", default=None,
                        help="JSONL that rows are appended to while running (default: --out itself); when it "
                             "differs from --out, --out is written from it at the end")
    parser.add_argument("--checkpoint-every", type=int, default=None,
                        help="fsync after this many rows (default: dataset_generation.checkpoint_every)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                        help="keep rows already written and add only the missing ones; --no-resume deletes "
                             "the checkpoint file first (default: dataset_generation.resume)")
    # --- output
    parser.add_argument("--out", default=None, help="d_03 JSONL (default: dataset_generation.dataset_out)")
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = resolve(args, config, SECTION, ["samples_per_schema", "seed", "teacher_retries",
                                               "teacher_retry_wait", "checkpoint_every", "resume"])
    settings["schemas"] = pick(args.schemas, config, SECTION, "final_schemas_out")
    settings["domain_specs"] = pick(args.domain_specs, config, SECTION, "schema_specs_out")
    settings["out"] = pick(args.out, config, SECTION, "dataset_out")
    settings["checkpoint_path"] = args.checkpoint_path or settings["out"]
    settings["concurrency"] = pick(args.concurrency, config, "teacher", "concurrency")
    settings["backend"] = config["teacher"]["backend"]
    settings["teacher_model"] = generation_teacher_model(args.teacher_model, config)
    if settings["concurrency"] < 1 or settings["checkpoint_every"] < 1:
        raise UserError("--concurrency and --checkpoint-every must be 1 or more")
    cli.print_settings("generate_dataset", settings)
    teacher = make_teacher(config, settings["teacher_model"], retries=settings["teacher_retries"],
                           retry_wait_s=settings["teacher_retry_wait"], seed=settings["seed"],
                           concurrency=settings["concurrency"])
    summary = generate_dataset(
        teacher=teacher, schemas_path=settings["schemas"], specs_path=settings["domain_specs"],
        samples_per_schema=settings["samples_per_schema"], seed=settings["seed"], out=settings["out"],
        checkpoint_path=settings["checkpoint_path"], checkpoint_every=settings["checkpoint_every"],
        resume=settings["resume"], concurrency=settings["concurrency"], settings=settings)
    print("== generate_dataset: summary")
    for key, value in summary.items():
        print(f"  {key}: {value}")
    cli.print_outputs("generate_dataset", {"dataset": f"{settings['out']} ({summary['rows']} rows)",
                                           "provenance": meta_path(settings["out"])})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
