"""JSONL artifacts: torn last lines, bad lines, atomic writes, durable appends that resume."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from ast_distill import jsonl
from ast_distill.errors import UserError
from ast_distill.jsonl import JsonlAppender, existing_ids, read_jsonl, stable_id, write_jsonl_atomic


def test_torn_last_line_is_dropped_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n{"id": "b"}\n{"id": "c", "que', encoding="utf-8")
    assert [r["id"] for r in read_jsonl(path)] == ["a", "b"]
    assert "torn last line" in capsys.readouterr().err


def test_bad_middle_line_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\nnot json\n{"id": "c"}\n', encoding="utf-8")
    with pytest.raises(UserError, match=r"rows\.jsonl:2: not valid JSON"):
        read_jsonl(path)


def test_bad_last_line_that_ends_with_newline_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n{"id": \n', encoding="utf-8")  # complete line, so not a torn write
    with pytest.raises(UserError, match=":2:"):
        read_jsonl(path)


def test_a_line_that_is_not_an_object_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    path.write_text('{"id": "a"}\n[1, 2]\n', encoding="utf-8")
    with pytest.raises(UserError, match="expected a JSON object"):
        read_jsonl(path)


def test_missing_file_is_an_error_unless_allowed(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="does not exist"):
        read_jsonl(tmp_path / "none.jsonl")
    assert read_jsonl(tmp_path / "none.jsonl", missing_ok=True) == []


def test_atomic_write_leaves_the_old_file_when_the_rename_fails(tmp_path: Path,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl_atomic(path, [{"id": "old"}])
    before = path.read_bytes()

    def broken_replace(src: str, dst: str) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(jsonl.os, "replace", broken_replace)
    with pytest.raises(OSError):
        write_jsonl_atomic(path, [{"id": "new-1"}, {"id": "new-2"}])
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["out.jsonl"]  # no temp file left behind


def test_atomic_write_replaces_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "out.jsonl"
    write_jsonl_atomic(path, [{"id": "a"}, {"id": "b"}])
    assert write_jsonl_atomic(path, [{"id": "c"}]) == 1
    assert read_jsonl(path) == [{"id": "c"}]


def test_appender_resumes_after_a_torn_tail(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    with JsonlAppender(path) as out:
        for i in range(3):
            out.write({"id": str(i)})
    with path.open("a", encoding="utf-8") as handle:
        handle.write('{"id": "3", "half')  # a write killed halfway
    with JsonlAppender(path) as out:
        out.write({"id": "3"})
        out.write({"id": "4"})
    assert [r["id"] for r in read_jsonl(path)] == ["0", "1", "2", "3", "4"]
    assert existing_ids(path) == {"0", "1", "2", "3", "4"}


def test_fresh_appender_starts_over(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    with JsonlAppender(path) as out:
        out.write({"id": "old"})
    with JsonlAppender(path, fresh=True) as out:
        out.write({"id": "new"})
    assert read_jsonl(path) == [{"id": "new"}]


def test_flushed_rows_are_on_disk_before_close(tmp_path: Path) -> None:
    path = tmp_path / "rows.jsonl"
    out = JsonlAppender(path)
    out.write({"id": "a"})
    out.flush()
    assert read_jsonl(path) == [{"id": "a"}]
    out.close()


def test_stable_id_is_stable_and_ignores_key_order() -> None:
    assert stable_id("s1", "en", "show listings") == stable_id("s1", "en", "show listings")
    assert stable_id({"a": 1, "b": 2}) == stable_id({"b": 2, "a": 1})
    assert stable_id("s1", "en", "q") != stable_id("s1", "fr", "q")
    assert len(stable_id("x")) == 16
