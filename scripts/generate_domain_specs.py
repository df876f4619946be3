"""Stage 1: domain prompts -> domain specs (d_01): typed fields, enum values, ranges, example requests.

With dataset_generation.user_schemas (a named training's --schema), each of the user's schema files gives its
spec instead: domain, description and the schema's outline, derived without a teacher (user_dsl.py).

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
from ast_distill.config import flag_settings, generation_teacher_model, load_config
from ast_distill.dataset import generate_domain_specs
from ast_distill.jsonl import meta_path
from ast_distill.settings import DatasetGenerationSettings
from ast_distill.teachers import make_teacher
from ast_distill.teachers.grammar import GrammarTeacher
from ast_distill.user_dsl import write_user_specs

SECTION = "dataset_generation"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--offline-fallback", action="store_true",
                        help="use the built-in grammar teacher whatever teacher.backend says (no LLM, no network)")
    cli.add_settings_flags(parser, DatasetGenerationSettings,
                           ("teacher_model", "teacher_retries", "teacher_retry_wait", "prompts_path",
                            "examples_per_schema", "schemas_per_domain", "max_domains", "seed", "resume",
                            "schema_specs_out"), flags={"schema_specs_out": "--out"})
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = flag_settings(args, config, SECTION)
    user_schemas = config[SECTION]["user_schemas"]
    if user_schemas:  # the user's own DSL: one spec per schema file, derived, no teacher call
        settings = {"user_schemas": user_schemas, "out": settings["schema_specs_out"]}
        cli.print_settings("generate_domain_specs", settings)
        summary = write_user_specs(user_schemas, settings["out"], settings)
        cli.print_outputs("generate_domain_specs", {
            "domain specs": f"{settings['out']} ({summary['specs_written']} from the user's schemas)",
            "provenance": meta_path(settings["out"])})
        return 0
    del settings["teacher_model"]  # resolved below: flag > config > LLM_MODEL > .llmrc
    settings["out"] = settings.pop("schema_specs_out")
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
