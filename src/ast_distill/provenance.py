"""What made an artifact: git commit, library versions, the command line. Written beside every output."""
from __future__ import annotations

import subprocess
import sys
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

from .config import REPO_ROOT
from .jsonl import meta_path, write_json_atomic

TRACKED_PACKAGES = ("ast-distill", "torch", "transformers", "trl", "peft", "datasets", "tokenizers",
                    "xgrammar", "jsonschema", "ollama", "openai", "unsloth")


def git_commit() -> dict[str, Any]:
    """{"commit": sha or None, "dirty": bool or None} of the project checkout."""
    def _git(*args: str) -> str | None:
        try:
            done = subprocess.run(["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    commit = _git("rev-parse", "HEAD")
    status = _git("status", "--porcelain", "--untracked-files=no")
    return {"commit": commit, "dirty": None if status is None else bool(status)}


def library_versions(packages: tuple[str, ...] = TRACKED_PACKAGES) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in packages:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            out[name] = None
    out["python"] = sys.version.split()[0]
    return out


def provenance(settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """The block every stage records next to its outputs."""
    return {"created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "command": sys.argv,
            "settings": settings or {}, "git": git_commit(), "versions": library_versions()}


def write_meta(out: str | Path, stage: str, settings: dict[str, Any], summary: dict[str, Any] | None = None,
               teacher: Any = None) -> Path:
    """Record what made an output in ``<out>.meta.json``: the stage, the provenance block, the teacher
    (its ``record()``: settings and what each server did) and the stage's summary."""
    record = {"stage": stage, **provenance(settings)}
    if teacher is not None:
        record["teacher"] = teacher.record()
    if summary is not None:
        record["summary"] = summary
    path = meta_path(out)
    write_json_atomic(path, record)
    return path
