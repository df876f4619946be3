"""The one JSONL/JSON artifact module.

- ``read_jsonl``: a torn last line (a crash mid-write) is dropped with a warning; any other bad line is a
  UserError naming file:line.
- ``JsonlAppender``: append records, flush + fsync per batch, so a killed stage loses at most a batch.
- ``write_jsonl_atomic`` / ``write_json_atomic``: whole-file outputs go to a temp file, then rename.
- ``stable_id``: a short hash of what makes a record unique, for resume and dedupe by id.
"""
from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import UserError

_UMASK = os.umask(0)
os.umask(_UMASK)


def stable_id(*parts: Any) -> str:
    """A 16-hex-digit id from the JSON of its parts (key order independent)."""
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(blob.encode("utf-8")).hexdigest()[:16]


def dumps(record: Any) -> str:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":"))


def _iter_lines(path: Path) -> Iterator[tuple[int, str, bool]]:
    """(line number, text, is_last_line) for each non-empty line."""
    with path.open("r", encoding="utf-8") as handle:
        lines = handle.read().split("\n")
    # A file that ends with "\n" leaves an empty last element; the real last line is the one before.
    last_index = max((i for i, line in enumerate(lines) if line.strip()), default=-1)
    ended_cleanly = lines[-1] == ""
    for index, line in enumerate(lines):
        if line.strip():
            yield index + 1, line, index == last_index and not ended_cleanly


def read_jsonl(path: str | os.PathLike[str], *, missing_ok: bool = False) -> list[dict[str, Any]]:
    """All records of a JSONL file. A torn last line is dropped with a warning; other bad lines raise."""
    path = Path(path)
    if not path.is_file():
        if missing_ok:
            return []
        raise UserError(f"{path} does not exist; run the stage that writes it first")
    records: list[dict[str, Any]] = []
    for lineno, line, is_unterminated_last in _iter_lines(path):
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            if is_unterminated_last:
                print(f"warning: {path}:{lineno}: dropped a torn last line (an interrupted write)",
                      file=sys.stderr)
                continue
            raise UserError(f"{path}:{lineno}: not valid JSON ({exc.msg}); fix or remove that line") from None
        if not isinstance(record, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(record).__name__}")
        records.append(record)
    return records


def existing_ids(path: str | os.PathLike[str]) -> set[str]:
    """The ids already written to a JSONL file (empty when it does not exist)."""
    return {str(r["id"]) for r in read_jsonl(path, missing_ok=True) if "id" in r}


def repair_torn_tail(path: Path) -> None:
    """Cut a torn last line so that appends start on a fresh line."""
    if not path.is_file() or path.stat().st_size == 0:
        return
    data = path.read_bytes()
    if data.endswith(b"\n"):
        return
    cut = data.rfind(b"\n") + 1
    with path.open("r+b") as handle:
        handle.truncate(cut)


class JsonlAppender:
    """Append records to a JSONL file; ``flush()`` makes a batch durable (flush + fsync)."""

    def __init__(self, path: str | os.PathLike[str], *, fresh: bool = False) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if fresh and self.path.exists():
            self.path.unlink()
        repair_torn_tail(self.path)
        self._handle = self.path.open("a", encoding="utf-8")
        self.written = 0

    def write(self, record: dict[str, Any]) -> None:
        self._handle.write(dumps(record) + "\n")
        self.written += 1

    def flush(self) -> None:
        self._handle.flush()
        os.fsync(self._handle.fileno())

    def close(self) -> None:
        if not self._handle.closed:
            self.flush()
            self._handle.close()

    def __enter__(self) -> "JsonlAppender":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _atomic_write_text(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """A whole text file (a Markdown report) via temp file + rename."""
    _atomic_write_text(Path(path), text)


def write_bytes_atomic(path: str | os.PathLike[str], data: bytes) -> None:
    """A whole binary file (a PNG plot) via temp file + fsync + rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o666 & ~_UMASK)  # mkstemp makes 0600 files; outputs should read like any other file
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def write_jsonl_atomic(path: str | os.PathLike[str], records: Iterable[dict[str, Any]]) -> int:
    """Write all records at once (temp file + rename); returns how many."""
    lines = [dumps(r) for r in records]
    _atomic_write_text(Path(path), "".join(line + "\n" for line in lines))
    return len(lines)


def write_json_atomic(path: str | os.PathLike[str], obj: Any) -> None:
    _atomic_write_text(Path(path), json.dumps(obj, ensure_ascii=False, indent=2, default=str) + "\n")


def read_json(path: str | os.PathLike[str]) -> Any:
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (line {exc.lineno}: {exc.msg})") from None


def write_pretty_copy(jsonl_path: str | os.PathLike[str], pretty_dir: str | os.PathLike[str]) -> Path:
    """An indented JSON array copy of a JSONL artifact, for people to read (outputs/pretty/<name>.json)."""
    src = Path(jsonl_path)
    dst = Path(pretty_dir) / (src.stem + ".json")
    write_json_atomic(dst, read_jsonl(src))
    return dst


def meta_path(out: str | Path) -> Path:
    """Where every stage records what made an output file: ``<out>.meta.json`` beside it."""
    return Path(f"{out}.meta.json")
