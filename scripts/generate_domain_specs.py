"""Stage 1: domain prompts -> domain specs (d_01): typed fields, enum values, ranges, example requests.

The teacher named by teacher.backend writes one spec per (domain prompt, variant); a reply whose fields do
not validate is asked again (--teacher-retries), then skipped and counted, never written. The built-in
teacher (backend "grammar", or --offline-fallback) picks 5-8 fields from each prompt's field pool instead.
A rerun keeps the specs an earlier run wrote with the same settings (so stage 2 builds the same schema ids
and the rows of stage 3 still belong to them) and asks only for the missing or changed ones.

Run as:
    uv run scripts/generate_domain_specs.py --config config/offline.json
    uv run scripts/generate_domain_specs.py --teacher-model gpt-oss:120b --schemas-per-domain 2
    uv run scripts/generate_domain_specs.py --offline-fallback --max-domains 3 --out /tmp/d_01.jsonl
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.config import generation_teacher_model, load_config, pick, resolve
from ast_distill.dataset import generate_domain_specs, meta_path
from ast_distill.teachers import make_teacher
from ast_distill.teachers.grammar import GrammarTeacher

SECTION = "dataset_generation"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/defaults.json",
                        help="config JSON overlaid on config/defaults.json (default: %(default)s)")
    # --- teacher
    cli.add_teacher_flags(parser, SECTION)
    parser.add_argument("--offline-fallback", action="store_true",
                        help="use the built-in grammar teacher whatever teacher.backend says (no LLM, no network)")
    # --- what to generate
    parser.add_argument("--prompts", dest="prompts_path", default=None,
                        help="domain prompts JSONL (default: dataset_generation.prompts_path)")
    parser.add_argument("--examples-per-schema", type=int, default=None,
                        help="example requests asked for in each spec (default: dataset_generation.examples_per_schema)")
    parser.add_argument("--schemas-per-domain", type=int, default=None,
                        help="spec variants per domain prompt, each becoming one schema "
                             "(default: dataset_generation.schemas_per_domain)")
    parser.add_argument("--max-domains", type=int, default=None,
                        help="use only the first N domain prompts (-1 or unset = all; default: "
                             "dataset_generation.max_domains)")
    parser.add_argument("--seed", type=int, default=None, help="seed (default: dataset_generation.seed)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction, default=None,
                        help="keep each spec already in --out that the same teacher, seed, examples_per_schema "
                             "and prompt made, asking the teacher only for the others; --no-resume asks for "
                             "every spec again (default: dataset_generation.resume)")
    # --- output
    parser.add_argument("--out", default=None,
                        help="d_01 JSONL to write (default: dataset_generation.schema_specs_out)")
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = resolve(args, config, SECTION, ["prompts_path", "examples_per_schema", "schemas_per_domain",
                                               "max_domains", "seed", "teacher_retries", "teacher_retry_wait",
                                               "resume"])
    settings["out"] = pick(args.out, config, SECTION, "schema_specs_out")
    settings["backend"] = "grammar" if args.offline_fallback else config["teacher"]["backend"]
    settings["teacher_model"] = (None if args.offline_fallback else
                                 generation_teacher_model(args.teacher_model, config))
    cli.print_settings("generate_domain_specs", settings)
    if args.offline_fallback:
        teacher = GrammarTeacher(settings["seed"], config[SECTION]["refusal_fraction"])
    else:
        teacher = make_teacher(config, settings["teacher_model"], retries=settings["teacher_retries"],
                               retry_wait_s=settings["teacher_retry_wait"], seed=settings["seed"])
    summary = generate_domain_specs(
        teacher=teacher, prompts_path=settings["prompts_path"], examples_per_schema=settings["examples_per_schema"],
        schemas_per_domain=settings["schemas_per_domain"], max_domains=settings["max_domains"],
        seed=settings["seed"], retries=settings["teacher_retries"], out=settings["out"], resume=settings["resume"],
        settings=settings)
    cli.print_outputs("generate_domain_specs", {
        "domain specs": f"{settings['out']} ({summary['specs_written']} specs from {summary['prompts']} prompts: "
                        f"{summary['specs_kept']} kept from an earlier run, {summary['specs_asked']} asked)",
        "skipped (never validated)": summary["skipped_invalid"],
        "provenance": meta_path(settings["out"])})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
