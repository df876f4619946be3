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
from ast_distill.config import load_config, pick, resolve
from ast_distill.corpus import build_training_corpus
from ast_distill.dataset import meta_path
from ast_distill.prompting import SCHEMA_FORMATS

SECTION = "dataset_generation"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/defaults.json",
                        help="config JSON overlaid on config/defaults.json (default: %(default)s)")
    # --- inputs
    parser.add_argument("--dataset", default=None, help="d_03 JSONL (default: dataset_generation.dataset_out)")
    parser.add_argument("--schemas", default=None, help="d_02 JSONL (default: dataset_generation.final_schemas_out)")
    parser.add_argument("--domain-specs", default=None,
                        help="d_01 JSONL, only for its pretty copy (default: dataset_generation.schema_specs_out)")
    parser.add_argument("--include-invalid", action=argparse.BooleanOptionalAction, default=None,
                        help="list invalid rows (is_valid=false) as they are in <out>.invalid.jsonl for "
                             "inspection; invalid rows never enter train/val/pref/test either way "
                             "(default: dataset_generation.include_invalid)")
    parser.add_argument("--max-samples", type=int, default=None,
                        help="use at most this many valid rows, a seeded sample (-1 or unset = all; "
                             "default: dataset_generation.max_samples)")
    # --- splits
    parser.add_argument("--heldout-schema-fraction", type=float, default=None,
                        help="fraction of domains whose schemas are all held out as unseen (test only); at "
                             "least one domain when > 0 (default: dataset_generation.heldout_schema_fraction)")
    parser.add_argument("--val-fraction", type=float, default=None,
                        help="fraction of seen-schema rows for eval_loss (default: dataset_generation.val_fraction)")
    parser.add_argument("--pref-fraction", type=float, default=None,
                        help="fraction of seen-schema rows kept as the DPO pool "
                             "(default: dataset_generation.pref_fraction)")
    parser.add_argument("--test-fraction", type=float, default=None,
                        help="fraction of seen-schema rows held out for the test set "
                             "(default: dataset_generation.test_fraction)")
    parser.add_argument("--seed", type=int, default=None, help="split seed (default: dataset_generation.seed)")
    # --- prompt shape
    parser.add_argument("--schema-format", choices=SCHEMA_FORMATS, default=None,
                        help="how the schema appears in the prompt: compact text or minified JSON "
                             "(default: dataset_generation.schema_format)")
    # --- outputs
    parser.add_argument("--out", default=None,
                        help="d_04 JSONL (train, val, pref) (default: dataset_generation.training_corpus_out)")
    parser.add_argument("--test-out", default=None,
                        help="d_05 JSONL (test rows, seen and unseen schemas) (default: dataset_generation.test_set_out)")
    parser.add_argument("--pretty-dir", default=None,
                        help="folder for indented copies of d_01..d_05 (default: dataset_generation.pretty_dir)")
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = resolve(args, config, SECTION, ["include_invalid", "max_samples", "heldout_schema_fraction",
                                               "val_fraction", "pref_fraction", "test_fraction", "seed",
                                               "schema_format", "pretty_dir"])
    settings["dataset"] = pick(args.dataset, config, SECTION, "dataset_out")
    settings["schemas"] = pick(args.schemas, config, SECTION, "final_schemas_out")
    settings["domain_specs"] = pick(args.domain_specs, config, SECTION, "schema_specs_out")
    settings["out"] = pick(args.out, config, SECTION, "training_corpus_out")
    settings["test_out"] = pick(args.test_out, config, SECTION, "test_set_out")
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
