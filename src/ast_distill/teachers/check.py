"""Fail fast when a configured LLM teacher cannot be reached: one line saying how to start it.

Run as:
    uv run python -m ast_distill.teachers.check --config config/defaults.json [--teacher-model gpt-oss:120b]
    uv run python -m ast_distill.teachers.check --config config/defaults.json --role generate
Exit 0 when the teacher answers (or is the built-in one), 2 otherwise.

``--role`` picks the model the way the stage that follows does (config.judge_teacher_model for ``judge``,
the default, as runEvals.sh and runAlignment.sh need; config.generation_teacher_model for ``generate``), so
the check tests the very model that stage will call.
"""
from __future__ import annotations

import argparse
import asyncio
import sys

from .. import cli
from ..config import generation_teacher_model, judge_teacher_model, load_config
from ..errors import UserError
from . import make_teacher
from .base import TeacherError

ROLES = {"judge": judge_teacher_model, "generate": generation_teacher_model}


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Check that the configured teacher answers.")
    parser.add_argument("--config", default="config/defaults.json", help="config file (JSON)")
    parser.add_argument("--teacher-model", default=None, help="teacher model id (default: config, LLM_MODEL)")
    parser.add_argument("--retries", type=int, default=0, help="tries after the first (-1 = forever)")
    parser.add_argument("--role", choices=ROLES, default="judge",
                        help="which model to test: the one that judges (evaluation.teacher_model, then "
                             "dataset_generation.teacher_model) or the one that generates the dataset "
                             "(default: %(default)s)")
    return parser


async def _check(teacher: object) -> None:
    try:
        ensure = getattr(teacher, "ensure_model_available", None)
        if ensure is not None:
            await ensure()
    finally:
        await teacher.aclose()  # type: ignore[attr-defined]


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    backend = config["teacher"]["backend"]
    if backend == "grammar":
        return 0
    model = ROLES[args.role](args.teacher_model, config)
    teacher = make_teacher(config, model, retries=args.retries, retry_wait_s=0.5, seed=0)
    try:
        asyncio.run(_check(teacher))
    except TeacherError as exc:
        raise UserError(f"the {backend} teacher is not reachable: {exc}") from None
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
