"""What made an artifact, as a short digest: a checkpoint's weights and tokenizer, or any JSON value.

A stage that resumes compares these with what it recorded, so a checkpoint retrained at the same path (or
rows regenerated under the same ids) is never mistaken for the one that made the results on disk.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

# Files that decide what a checkpoint generates: weights (full model or LoRA adapter), the config that shapes
# them (an adapter's names its base model), the tokenizer and the chat template. Trainer state, optimizer,
# RNG and run logs do not change the outputs, and run_config.json holds timestamps, so they are left out.
WEIGHT_PATTERNS = ("*.safetensors", "*.bin", "*.index.json")
CONFIG_FILES = ("config.json", "adapter_config.json", "generation_config.json", "tokenizer.json",
                "tokenizer_config.json", "tokenizer.model", "special_tokens_map.json", "added_tokens.json",
                "vocab.json", "merges.txt", "chat_template.jinja", "chat_template.json")
NOT_WEIGHTS = ("training_args.bin",)  # the Trainer's pickled arguments, saved beside checkpoint-N weights
CHUNK = 1 << 20


def checkpoint_files(path: str | Path) -> list[Path]:
    """The files of a checkpoint dir that checkpoint_fingerprint reads, sorted by name."""
    folder = Path(path)
    found = {p for pattern in WEIGHT_PATTERNS for p in folder.glob(pattern) if p.name not in NOT_WEIGHTS}
    found |= {folder / name for name in CONFIG_FILES}
    return sorted((p for p in found if p.is_file()), key=lambda p: p.name)


def checkpoint_fingerprint(path: str | Path) -> str:
    """"sha256:<hex>" over a checkpoint dir's weight, config and tokenizer files (names and bytes), or over one
    model file (a GGUF); "hub:<id>" for a hub id, whose files this machine may not hold (the id is all that
    names them)."""
    folder = Path(path)
    if folder.is_file():
        return file_digest(folder)
    if folder.is_dir():
        return file_digest(*checkpoint_files(folder))
    return f"hub:{path}"


def file_digest(*files: str | Path) -> str:
    """"sha256:<hex>" over files' names, sizes and bytes, in the order given."""
    digest = hashlib.sha256()
    for file in map(Path, files):
        digest.update(f"{file.name}\0{file.stat().st_size}\0".encode())  # name + size: no two files' bytes blur
        with file.open("rb") as handle:
            while chunk := handle.read(CHUNK):
                digest.update(chunk)
    return f"sha256:{digest.hexdigest()}"


def json_digest(value: Any) -> str:
    """"sha256:<hex>" of a JSON value in canonical form (sorted keys, no spaces)."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return f"sha256:{hashlib.sha256(text.encode('utf-8')).hexdigest()}"
