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
from ast_distill.config import load_config, pick, resolve
from ast_distill.dataset import build_schemas, meta_path

SECTION = "dataset_generation"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/defaults.json",
                        help="config JSON overlaid on config/defaults.json (default: %(default)s)")
    # --- inputs
    parser.add_argument("--domain-specs", default=None,
                        help="d_01 JSONL to read (default: dataset_generation.schema_specs_out)")
    parser.add_argument("--template", dest="base_schema_template", default=None,
                        help="base JSON Schema template with the __FIELD__/__COMPARE__ placeholders "
                             "(default: dataset_generation.base_schema_template)")
    parser.add_argument("--operator-catalog", default=None,
                        help="operator catalog JSON (default: dataset_generation.operator_catalog)")
    # --- operators per schema
    parser.add_argument("--min-operators", type=int, default=None,
                        help="fewest operators kept per schema, eq included (default: dataset_generation.min_operators)")
    parser.add_argument("--max-operators", type=int, default=None,
                        help="most operators kept per schema (default: dataset_generation.max_operators)")
    parser.add_argument("--seed", type=int, default=None,
                        help="seed for operator and alias choices (default: dataset_generation.seed)")
    # --- output
    parser.add_argument("--out", default=None, help="d_02 JSONL to write (default: dataset_generation.final_schemas_out)")
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = resolve(args, config, SECTION, ["base_schema_template", "operator_catalog", "min_operators",
                                               "max_operators", "seed"])
    settings["domain_specs"] = pick(args.domain_specs, config, SECTION, "schema_specs_out")
    settings["out"] = pick(args.out, config, SECTION, "final_schemas_out")
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
