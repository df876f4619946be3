"""The files made from the sections: config/defaults.json and the README's "Defaults explained" tables.

`uv run python -m ast_distill.settings --write` rewrites them (`main`); with no option it exits 1 while either
is stale, and a test fails too.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
from pathlib import Path
from typing import Any

from ..errors import UserError
from .sections import SECTIONS, Settings
from .types import field_type, type_name

REPO_ROOT = Path(__file__).resolve().parents[3]
DEFAULTS_PATH = REPO_ROOT / "config" / "defaults.json"
README_PATH = REPO_ROOT / "README.md"
WRITE_COMMAND = "uv run python -m ast_distill.settings --write"
README_BEGIN = f"<!-- settings:begin (generated from src/ast_distill/settings/sections.py: {WRITE_COMMAND}) -->"
README_END = "<!-- settings:end -->"
DEFAULTS_COMMENT = ("The real run: Ollama teacher gpt-oss:120b, student unsloth/gemma-3-270m-it with LoRA (Unsloth "
                    "on CUDA). Every known key lives here; other config files overlay it. README 'Defaults "
                    "explained' documents each key.")


def defaults_json() -> str:
    """The text of config/defaults.json."""
    return json.dumps({"_comment": DEFAULTS_COMMENT, **Settings().as_dict()}, indent=2) + "\n"


def _cell(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return f"`{value}`"
    return json.dumps(value)


def readme_tables() -> str:
    """The README's "Defaults explained" tables (between the settings markers), one row per key (its type
    followed by its range, where one is declared)."""
    out: list[str] = []
    for name, cls in SECTIONS.items():
        out += [f"### `{name}`: {cls.TITLE}", "| key | type | default | meaning |", "|---|---|---|---|"]
        for f in dataclasses.fields(cls):
            kind = type_name(field_type(cls, f.name)).replace("None", "null").replace("|", "\\|")
            if f.metadata["limits"] is not None:
                kind += f", {f.metadata['limits'].rule()}"
            out.append(f"| `{f.name}` | {kind} | {_cell(f.default)} | {f.metadata['help']} |")
        out.append("")
    return "\n".join(out)


def readme_with_tables(text: str) -> str:
    """README text with the part between the markers replaced by readme_tables()."""
    pattern = re.compile(re.escape(README_BEGIN) + r"\n.*?" + re.escape(README_END), re.S)
    if not pattern.search(text):
        raise UserError(f"{README_PATH}: no '{README_BEGIN}' ... '{README_END}' markers")
    return pattern.sub(lambda _: f"{README_BEGIN}\n{readme_tables()}{README_END}", text, count=1)


def stale_files() -> list[Path]:
    """The generated files that differ from what the dataclasses make."""
    stale = []
    if not DEFAULTS_PATH.is_file() or DEFAULTS_PATH.read_text(encoding="utf-8") != defaults_json():
        stale.append(DEFAULTS_PATH)
    readme = README_PATH.read_text(encoding="utf-8")
    if readme_with_tables(readme) != readme:
        stale.append(README_PATH)
    return stale


def main(argv: list[str] | None = None) -> int:
    """`python -m ast_distill.settings [--write]`: 1 while a generated file is stale (no option), else 0."""
    parser = argparse.ArgumentParser(description="Regenerate (or check) config/defaults.json and the README's "
                                                 "'Defaults explained' tables from the settings dataclasses.")
    parser.add_argument("--write", action="store_true", help="rewrite both files")
    parser.add_argument("--write-defaults", action="store_true", help="rewrite config/defaults.json")
    parser.add_argument("--write-readme", action="store_true", help="rewrite the README's tables")
    args = parser.parse_args(argv)
    if args.write or args.write_defaults:
        DEFAULTS_PATH.write_text(defaults_json(), encoding="utf-8")
        print(f"wrote {DEFAULTS_PATH}")
    if args.write or args.write_readme:
        README_PATH.write_text(readme_with_tables(README_PATH.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote the settings tables of {README_PATH}")
    if not (args.write or args.write_defaults or args.write_readme):
        stale = stale_files()
        for path in stale:
            print(f"stale: {path}; run: {WRITE_COMMAND}", file=sys.stderr)
        return 1 if stale else 0
    return 0

