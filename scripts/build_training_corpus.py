"""Stage 4: dataset rows (d_03) -> training corpus (d_04: train, val, pref) and test set (d_05).

Splits are honest: whole domains (every schema variant of each) are held out as unseen schemas and go to
the test set only; the other rows are split by request text into train / val / pref / test. Each row
becomes chat messages built by the project's one prompt builder, plus the completion (the AST as minified
JSON). Also writes indented copies of d_01..d_05 into the pretty folder and prints a split report.

Run as:
    uv run scripts/build_training_corpus.py --config config/offline.json
    uv run scripts/build_training_corpus.py --heldout-schema-fraction 0.25 --schema-format json
"""
from __future__ import annotations

import argparse
import sys

from ast_distill import cli
from ast_distill.config import flag_settings, load_config
from ast_distill.corpus import build_training_corpus
from ast_distill.jsonl import meta_path
from ast_distill.settings import DatasetGenerationSettings

SECTION = "dataset_generation"


def build_parser() -> argparse.ArgumentParser:
    parser = cli.stage_parser(__doc__)
    cli.add_settings_flags(parser, DatasetGenerationSettings,
                           ("dataset_out", "final_schemas_out", "schema_specs_out", "include_invalid", "max_samples",
                            "heldout_schema_fraction", "val_fraction", "pref_fraction", "test_fraction", "seed",
                            "schema_format", "training_corpus_out", "test_set_out", "pretty_dir"),
                           flags={"training_corpus_out": "--out"})
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    flagged = flag_settings(args, config, SECTION)
    settings = {key: flagged[key] for key in ("include_invalid", "max_samples", "heldout_schema_fraction",
                                              "val_fraction", "pref_fraction", "test_fraction", "seed",
                                              "schema_format", "pretty_dir")}
    settings["dataset"] = flagged["dataset_out"]
    settings["schemas"] = flagged["final_schemas_out"]
    settings["domain_specs"] = flagged["schema_specs_out"]
    settings["out"] = flagged["training_corpus_out"]
    settings["test_out"] = flagged["test_set_out"]
    cli.print_settings("build_training_corpus", settings)
    summary = build_training_corpus(
        dataset_path=settings["dataset"], schemas_path=settings["schemas"],
        include_invalid=settings["include_invalid"], max_samples=settings["max_samples"],
        heldout_schema_fraction=settings["heldout_schema_fraction"], val_fraction=settings["val_fraction"],
        pref_fraction=settings["pref_fraction"], test_fraction=settings["test_fraction"],
        schema_format=settings["schema_format"], seed=settings["seed"], out=settings["out"],
        test_out=settings["test_out"], pretty_dir=settings["pretty_dir"],
        pretty_sources=[settings["domain_specs"], settings["schemas"], settings["dataset"]], settings=settings)
    splits = summary["splits"]
    cli.print_outputs("build_training_corpus", {
        "training corpus": f"{settings['out']} (train {splits['train']}, val {splits['val']}, pref {splits['pref']})",
        "test set": f"{settings['test_out']} ({summary['test_seen']} seen-schema + {summary['test_unseen']} "
                    f"unseen-schema rows)",
        **({"invalid listing": summary["outputs"]["invalid_listing"]} if "invalid_listing" in summary["outputs"] else {}),
        "pretty copies": settings["pretty_dir"],
        "provenance": f"{meta_path(settings['out'])}, {meta_path(settings['test_out'])}"})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
