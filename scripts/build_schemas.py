"""Stage 2: domain specs (d_01) -> final JSON Schemas (d_02), one per spec.

Each schema is the base template filled with the spec's typed fields and 4-7 operators from the catalog;
every operator appears under one of its synonyms, drawn per schema, and its meaning is written only in the
schema's descriptions. Every schema is checked as a Draft 2020-12 JSON Schema before anything is written.

Run as:
    uv run scripts/build_schemas.py --config config/offline.json
    uv run scripts/build_schemas.py --min-operators 5 --max-operators 7 --seed 3
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.config import flag_settings, load_config
from ast_distill.dataset import build_schemas
from ast_distill.jsonl import meta_path
from ast_distill.settings import DatasetGenerationSettings

SECTION = "dataset_generation"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.stage_parser(__doc__)
    cli.add_settings_flags(parser, DatasetGenerationSettings,
                           ("schema_specs_out", "base_schema_template", "operator_catalog", "min_operators",
                            "max_operators", "seed", "final_schemas_out"), flags={"final_schemas_out": "--out"})
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = flag_settings(args, config, SECTION)
    settings["domain_specs"] = settings.pop("schema_specs_out")  # d_01, read
    settings["out"] = settings.pop("final_schemas_out")  # d_02, written
    cli.print_settings("build_schemas", settings)
    summary = build_schemas(specs_path=settings["domain_specs"], template_path=settings["base_schema_template"],
                            catalog_path=settings["operator_catalog"], min_operators=settings["min_operators"],
                            max_operators=settings["max_operators"], seed=settings["seed"], out=settings["out"],
                            settings=settings)
    cli.print_outputs("build_schemas", {
        "schemas": f"{settings['out']} ({summary['schemas']} schemas, {summary['domains']} domains)",
        "operators per schema (count: schemas)": summary["operators_per_schema"],
        "provenance": meta_path(settings["out"])})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
