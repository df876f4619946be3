"""Named trainings: one folder per DSL under outputs/<name>/, made, found and listed here.

A named training is a config file, `outputs/<name>/config.json`: the settings it was made from (a config file
over the defaults), with `run.name` set so that every output path moves under `outputs/<name>/`
(settings.relocate_outputs) and, for a user's DSL, `dataset_generation.user_schemas` pointing at a copy of the
user's schema in `outputs/<name>/schemas/` (so editing the original later changes nothing until the training is
prepared again). Every runner and stage script takes `--name NAME` for `--config outputs/<NAME>/config.json`.

Run as:
    uv run python -m ast_distill.trainings prepare --name smart-home --schema data/examples/smart_home.schema.json \
        --config config/offline.json
    uv run python -m ast_distill.trainings list
"""
from __future__ import annotations

import argparse
import datetime as dt
import json
import sys
from pathlib import Path
from typing import Any

from .errors import UserError
from .jsonl import read_json, write_text_atomic
from .settings import DEFAULTS_PATH, load_settings, read_json_object
from .settings.loader import TRAINING_CONFIG, training_config, training_config_path, training_folder, trainings_root
from .user_dsl import read_user_schema

def copy_schemas(name: str, schemas: list[str]) -> list[str]:
    """Each schema checked, then copied to outputs/<name>/schemas/<file name>; the copies' paths."""
    folder = training_folder(name) / "schemas"
    checked = [(Path(p), read_user_schema(p)) for p in schemas]  # all checked before anything is written
    names = [p.name for p, _ in checked]
    if len(set(names)) != len(names):
        raise UserError(f"schema files must have distinct file names within a training, got {', '.join(names)}")
    copies = []
    for source, schema in checked:
        target = folder / source.name
        if not (target.is_file() and read_json(target) == schema):
            write_text_atomic(target, json.dumps(schema, indent=2, ensure_ascii=False) + "\n")
        copies.append(str(target))
    return copies


def prepare(name: str, config: str | None = None, schemas: list[str] | None = None) -> Path:
    """Make or update outputs/<name>/config.json and return it.

    With neither `config` nor `schemas`, the training must exist and is used as it is. Otherwise its config is
    `config` (else the training's own, else config/defaults.json) overlaid on the defaults, with run.name = name
    and, when `schemas` are given, user_schemas = their copies (else the training keeps its own). A later stage
    sees a changed setting through its own resume rules.
    """
    target = training_config_path(name)
    if config is None and not schemas:
        return training_config(name)
    if config is not None:
        source = Path(config)
    else:  # a new schema: the training's own config, or the defaults for a new training
        source = target if target.is_file() else DEFAULTS_PATH
    overlay = read_json_object(source)
    overlay.pop("_comment", None)
    overlay.setdefault("run", {})["name"] = name
    generation = overlay.setdefault("dataset_generation", {})
    if schemas:
        generation["user_schemas"] = copy_schemas(name, schemas)
    elif "user_schemas" not in generation and target.is_file():  # a new config keeps the training's own DSL
        generation["user_schemas"] = load_settings(target).dataset_generation.user_schemas
    if not generation:
        del overlay["dataset_generation"]
    overlay = {"_comment": f"training '{name}': made by `python -m ast_distill.trainings prepare` from {source} on "
                           f"{dt.date.today().isoformat()}; every stage takes --name {name} for this file",
               **overlay}
    text = json.dumps(overlay, indent=2, ensure_ascii=False) + "\n"
    scratch = target.with_name(target.name + ".checking")
    write_text_atomic(scratch, text)
    try:
        load_settings(scratch)  # every key and type checked before the training's config is replaced
    finally:
        scratch.unlink(missing_ok=True)
    if not (target.is_file() and target.read_text(encoding="utf-8") == text):
        write_text_atomic(target, text)
    return target


def headline(summary_path: Path) -> dict[str, Any]:
    """The figures a listing shows from an evaluation summary ({} when there is none)."""
    if not summary_path.is_file():
        return {}
    overall = read_json(summary_path).get("overall") or {}
    return {"semantic_pass": overall.get("semantic_pass_rate"), "schema_valid": overall.get("schema_valid_rate"),
            "rows": overall.get("n")}


def describe(name: str) -> dict[str, Any]:
    """One training: its user schemas (empty for the project's DSLs), its student (the checkpoint alignment kept,
    else its SFT run dir) and that student's headline figures on d_05."""
    from .alignment.choice import chosen

    settings = load_settings(training_config(name)).as_dict()
    choice = chosen(settings)
    summary = Path(choice["eval_summary"] if choice else Path(settings["evaluation"]["out_dir"]) /
                   "evaluation_summary.json")
    return {"name": name, "schemas": list(settings["dataset_generation"]["user_schemas"] or []),
            "student": choice["checkpoint"] if choice else settings["training"]["output_dir"],
            "method": choice["method"] if choice else "sft", "figures": headline(summary)}


def names() -> list[str]:
    root = trainings_root()
    return sorted(p.parent.name for p in root.glob(f"*/{TRAINING_CONFIG}")) if root.is_dir() else []


def listing() -> str:
    """The trainings under outputs/, one line each."""
    lines = []
    for name in names():
        row = describe(name)
        figures = row["figures"]
        shown = (f"semantic pass {figures['semantic_pass']:.3f}, schema-valid {figures['schema_valid']:.3f} on "
                 f"{figures['rows']} test rows" if figures.get("semantic_pass") is not None else "not evaluated yet")
        schemas = ", ".join(row["schemas"]) or "the project's DSLs"
        lines.append(f"{name}: schema {schemas}; student {row['student']} ({row['method']}); {shown}")
    if not lines:
        return (f"no named trainings under {trainings_root()}/ (make one: ./runAll.sh --name NAME --schema FILE "
                f"--config config/offline.json --with-training --with-evals)")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ast_distill.trainings", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    make = commands.add_parser("prepare", help="make or update outputs/<name>/config.json; prints its path")
    make.add_argument("--name", required=True)
    make.add_argument("--config", help="config file overlaying the defaults (default: the training's own)")
    make.add_argument("--schema", action="append", help="a JSON Schema file of the user's DSL; repeat for several")
    commands.add_parser("list", help="the named trainings: schema, student, headline figures")
    args = parser.parse_args(argv)
    try:
        if args.command == "prepare":
            print(prepare(args.name, args.config, args.schema))
        else:
            print(listing())
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
