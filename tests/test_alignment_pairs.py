"""DPO pairs from a hand-made evaluation_results.jsonl: what is chosen, what is rejected, what is dropped and why."""
from __future__ import annotations

import functools
import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
from helpers import make_tiny_corpus, make_tiny_student

from ast_distill import cli
from ast_distill.config import REPO_ROOT
from ast_distill.jsonl import meta_path, read_json, read_jsonl, write_jsonl_atomic
from ast_distill.prompting import build_completion
from ast_distill.student import load_tokenizer, prompt_text

TEACHER_AST = {"type": "query", "filter": {"field": "price", "op": "above", "value": 20}}
WRONG_AST = {"filter": {"value": 30, "op": "above", "field": "price"}, "type": "query"}  # keys out of order
REFUSAL = {"type": "refusal", "reason": "flights are not products", "suggestion": "ask about products"}


def load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(name, REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_pairs(argv: list[str]) -> int:
    script = load_script("build_alignment_pairs")
    return cli.run(script.main, script.build_parser(), argv)


@pytest.fixture(scope="module")
def student_dir(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_student(tmp_path_factory.mktemp("student"))


@functools.cache
def tokenizer_of(student: str) -> Any:
    return load_tokenizer(student)


def eval_row(student: str, i: int, *, verdict: bool | None, teacher: Any, student_ast: Any = None,
             raw: str | None = None, semantic: bool = False, split: str = "pref") -> dict[str, Any]:
    """One evaluation_results record as evaluate_student.py writes it."""
    row = make_tiny_corpus(i + 1)[i]
    parsed = student_ast is not None
    return {
        "id": f"row-{i}", "schema_id": row["schema_id"], "split": split, "schema_seen": True,
        "language": row["language"], "kind": row["kind"], "query": row["query"],
        "prompt_text": prompt_text(tokenizer_of(student), row["prompt"]),
        "student_raw": raw if raw is not None else json.dumps(student_ast), "student_ast": student_ast,
        "parsed": parsed, "schema_valid": parsed, "exact_match": False, "semantic_match": semantic,
        "teacher_verdict": verdict, "teacher_canonical": teacher, "gold_ast": row["ast"],
    }


def write_rows(tmp_path: Path, rows: list[dict[str, Any]]) -> Path:
    path = tmp_path / "pref_eval" / "evaluation_results.jsonl"
    write_jsonl_atomic(path, rows)
    return path


def pref_rows(n: int = 8, schema_format: str = "compact") -> list[dict[str, Any]]:
    """The d_04 rows the evaluation read: the tiny corpus, with the ids eval_row gives them."""
    rows = make_tiny_corpus(n, schema_format=schema_format)
    return [dict(row, id=f"row-{i}", split="pref") for i, row in enumerate(rows)]


def build(tmp_path: Path, student: str, rows: list[dict[str, Any]], *extra: str,
          dataset: list[dict[str, Any]] | None = None) -> tuple[int, Path]:
    results = write_rows(tmp_path, rows)
    d04 = tmp_path / "d_04_training_corpus.jsonl"
    write_jsonl_atomic(d04, pref_rows() if dataset is None else dataset)
    out = tmp_path / "pairs" / "dpo_pairs.jsonl"
    code = run_pairs(["--eval-results", str(results), "--dataset", str(d04), "--out", str(out),
                      "--adapter", student, *extra])
    return code, out


def mixed_rows(student: str) -> list[dict[str, Any]]:
    return [
        eval_row(student, 0, verdict=False, teacher=TEACHER_AST, student_ast=WRONG_AST),  # kept (parsed)
        eval_row(student, 1, verdict=False, teacher=REFUSAL, raw='{"type":"query","filter":'),  # kept (raw)
        eval_row(student, 2, verdict=True, teacher=TEACHER_AST, student_ast=TEACHER_AST, semantic=True),
        eval_row(student, 3, verdict=False, teacher=None, student_ast=WRONG_AST),  # no teacher AST
        eval_row(student, 4, verdict=False, teacher=TEACHER_AST,  # same text once rendered
                 student_ast={"filter": TEACHER_AST["filter"], "type": "query"}),
        eval_row(student, 5, verdict=None, teacher=None, student_ast=WRONG_AST),  # teacher gave no verdict
    ]


def assistant(content: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": content}]


def test_pairs_are_the_evaluated_prompt_messages_and_one_assistant_message_per_side(tmp_path: Path,
                                                                                    student_dir: str) -> None:
    rows = mixed_rows(student_dir)
    code, out = build(tmp_path, student_dir, rows)
    assert code == 0
    pairs = {p["id"]: p for p in read_jsonl(out)}
    assert sorted(pairs) == ["row-0", "row-1"]
    d04 = pref_rows()
    assert pairs["row-0"]["prompt"] == d04[0]["prompt"] and pairs["row-1"]["prompt"] == d04[1]["prompt"]
    assert prompt_text(tokenizer_of(student_dir), pairs["row-0"]["prompt"]) == rows[0]["prompt_text"]
    # chosen: the teacher's AST as SFT's completion; rejected: the student's AST so rendered, or its raw text
    assert pairs["row-0"]["chosen"] == build_completion(TEACHER_AST)
    assert pairs["row-0"]["rejected"] == assistant('{"type":"query","filter":{"field":"price","op":"above","value":30}}')
    assert pairs["row-1"]["chosen"] == build_completion(REFUSAL)  # reason and suggestion kept
    assert pairs["row-1"]["rejected"] == assistant('{"type":"query","filter":')


def test_a_record_that_carries_its_prompt_messages_needs_no_dataset_row(tmp_path: Path, student_dir: str) -> None:
    row = eval_row(student_dir, 0, verdict=False, teacher=TEACHER_AST, student_ast=WRONG_AST)
    row["prompt"] = pref_rows(1)[0]["prompt"]
    code, out = build(tmp_path, student_dir, [row], dataset=[])
    assert code == 0
    assert read_jsonl(out)[0]["prompt"] == row["prompt"]


def test_a_dataset_without_the_row_or_with_another_prompt_is_a_one_line_error_and_writes_nothing(
        tmp_path: Path, student_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [eval_row(student_dir, 0, verdict=False, teacher=TEACHER_AST, student_ast=WRONG_AST)]
    code, out = build(tmp_path, student_dir, rows, dataset=pref_rows()[1:])
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "no row with its id" in err and "--dataset" in err
    # the same ids, but the schema rendered as JSON: not the prompt the student was evaluated on
    code, out = build(tmp_path, student_dir, rows, dataset=pref_rows(schema_format="json"))
    assert code == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "renders to other text" in err
    assert not out.exists() and not meta_path(out).exists()


def test_drops_are_counted_by_reason_in_meta_and_on_stdout(tmp_path: Path, student_dir: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    code, out = build(tmp_path, student_dir, mixed_rows(student_dir))
    assert code == 0
    meta = read_json(meta_path(out))
    assert meta["rows"] == 6 and meta["pairs"] == 2
    assert meta["dropped"] == {"teacher_accepted": 1, "no_teacher_verdict": 1, "no_teacher_ast": 1,
                               "chosen_equals_rejected": 1, "over_max_pairs": 0}
    assert meta["versions"]["trl"] and meta["settings"]["dataset"].endswith("d_04_training_corpus.jsonl")
    stdout = capsys.readouterr().out
    assert "kept 2 of 6" in stdout and "teacher_accepted 1" in stdout and "chosen_equals_rejected 1" in stdout


def test_no_only_rejected_keeps_accepted_rows_whose_teacher_ast_is_spelled_differently(
        tmp_path: Path, student_dir: str) -> None:
    both = [{"field": "price", "op": "above", "value": 5}, {"field": "stock", "op": "below", "value": 3}]
    teacher = {"type": "query", "filter": {"and": both}}
    student = {"type": "query", "filter": {"and": both[::-1]}}  # same meaning, other order
    rows = mixed_rows(student_dir) + [eval_row(student_dir, 6, verdict=True, teacher=teacher, student_ast=student)]
    code, out = build(tmp_path, student_dir, rows, "--no-only-rejected")
    assert code == 0
    assert [p["id"] for p in read_jsonl(out)] == ["row-0", "row-1", "row-6"]
    meta = read_json(meta_path(out))
    # row-2: accepted, teacher AST == student AST; rows 3 and 5: no teacher AST
    assert meta["dropped"]["teacher_accepted"] == 0 and meta["dropped"]["no_teacher_verdict"] == 0
    assert meta["dropped"]["chosen_equals_rejected"] == 2 and meta["dropped"]["no_teacher_ast"] == 2


def test_max_pairs_keeps_a_seeded_subset_and_counts_the_rest(tmp_path: Path, student_dir: str) -> None:
    rows = [eval_row(student_dir, i, verdict=False, teacher=TEACHER_AST, student_ast=WRONG_AST) for i in range(6)]
    kept = []
    for attempt in range(2):
        code, out = build(tmp_path / str(attempt), student_dir, rows, "--max-pairs", "2", "--seed", "7")
        assert code == 0
        kept.append([p["id"] for p in read_jsonl(out)])
        assert read_json(meta_path(out))["dropped"]["over_max_pairs"] == 4
    assert len(kept[0]) == 2 and kept[0] == kept[1]
    assert set(kept[0]) <= {r["id"] for r in rows}


def test_nothing_rejected_writes_empty_pairs_and_dpo_exits_zero_without_training(
        tmp_path: Path, student_dir: str, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [eval_row(student_dir, i, verdict=True, teacher=TEACHER_AST, student_ast=TEACHER_AST, semantic=True)
            for i in range(3)]
    code, out = build(tmp_path, student_dir, rows)
    assert code == 0
    assert out.is_file() and read_jsonl(out) == []
    assert "nothing to train" in capsys.readouterr().out
    dpo = load_script("train_alignment_dpo")
    run_dir = tmp_path / "dpo"
    code = cli.run(dpo.main, dpo.build_parser(), ["--pairs", str(out), "--adapter", student_dir,
                                                  "--output-dir", str(run_dir)])
    assert code == 0
    assert "no pairs: nothing to train" in capsys.readouterr().out
    assert not (run_dir / "checkpoint-final").exists()


def test_test_rows_are_refused_so_dpo_never_trains_on_them(tmp_path: Path, student_dir: str,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    rows = [eval_row(student_dir, 0, verdict=False, teacher=TEACHER_AST, student_ast=WRONG_AST, split="test")]
    code, out = build(tmp_path, student_dir, rows)
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "pref rows only" in err and len(err.strip().splitlines()) == 1
    assert not out.exists()


def test_missing_eval_results_is_a_one_line_error(tmp_path: Path, student_dir: str,
                                                  capsys: pytest.CaptureFixture[str]) -> None:
    code = run_pairs(["--eval-results", str(tmp_path / "nope.jsonl"), "--out", str(tmp_path / "p.jsonl"),
                      "--adapter", student_dir])
    assert code == 2
    assert "nope.jsonl does not exist" in capsys.readouterr().err

