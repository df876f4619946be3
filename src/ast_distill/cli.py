"""Shared plumbing for the thin scripts: run main() with one-line errors and exit code 2 on bad input."""
from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

from .errors import UserError

EXIT_BAD_INPUT = 2


def run(main: Callable[[argparse.Namespace], int], parser: argparse.ArgumentParser,
        argv: list[str] | None = None) -> int:
    """Parse argv, call main, turn a UserError into one line on stderr and exit code 2."""
    args = parser.parse_args(argv)
    try:
        return int(main(args) or 0)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("interrupted: what was written so far is kept; run again to resume", file=sys.stderr)
        return 130


def print_settings(stage: str, settings: Mapping[str, Any]) -> None:
    """At start, a stage prints its resolved settings."""
    print(f"== {stage}: resolved settings")
    for key in sorted(settings):
        print(f"  {key} = {json.dumps(settings[key], default=str)}")


def print_outputs(stage: str, outputs: Mapping[str, Any]) -> None:
    """At the end, a stage prints what it wrote."""
    print(f"== {stage}: wrote")
    for key, value in outputs.items():
        print(f"  {key}: {value}")


def add_teacher_flags(parser: argparse.ArgumentParser, section: str) -> None:
    """--teacher-model, --teacher-retries, --teacher-retry-wait, defaulting from `section` of the config."""
    parser.add_argument("--teacher-model", default=None,
                        help=f"LLM teacher model id (default: {section}.teacher_model, then LLM_MODEL, then "
                             ".llmrc); ignored by the built-in teacher")
    parser.add_argument("--teacher-retries", type=int, default=None,
                        help=f"extra tries for a failed teacher call or a reply that does not validate "
                             f"(-1 = forever; default: {section}.teacher_retries)")
    parser.add_argument("--teacher-retry-wait", type=float, default=None,
                        help=f"seconds before the first retry, doubling after each "
                             f"(default: {section}.teacher_retry_wait)")
