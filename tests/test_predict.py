"""predict(): a tiny trained student turns requests into schema-valid JSON ASTs; bad inputs exit 2 in one line."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_tiny_corpus, make_tiny_schema_record, make_tiny_student

from ast_distill import cli, dsl, student
from ast_distill.config import REPO_ROOT
from ast_distill.predict import predict, trained_schema_format

torch.set_num_threads(1)
SCHEMA = make_tiny_schema_record()["schema"]
TRAINED_ROWS = make_tiny_corpus(2)  # "products above 5 euros", "les produits de la catégorie toy"


def train_tiny(path: str, rows: list[dict], steps: int) -> list[float]:
    """A few hundred plain next-token steps on the completions only (prompt tokens masked); returns losses."""
    torch.manual_seed(0)
    model, tokenizer = student.load_student(path, device="cpu", for_training=True)
    examples = []
    for row in rows:
        prompt = tokenizer(student.prompt_text(tokenizer, row["prompt"]), add_special_tokens=False)["input_ids"]
        target = tokenizer(row["completion"][0]["content"] + "<end_of_turn>", add_special_tokens=False)["input_ids"]
        examples.append((torch.tensor([prompt + target]), torch.tensor([[-100] * len(prompt) + target])))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    losses = []
    for step in range(steps):
        input_ids, labels = examples[step % len(examples)]
        loss = model(input_ids=input_ids, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.save_pretrained(path)
    return losses


@pytest.fixture(scope="module")
def trained_student(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = make_tiny_student(tmp_path_factory.mktemp("predict"))
    losses = train_tiny(path, TRAINED_ROWS, steps=300)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 / 10  # it learned
    return path


@pytest.fixture(scope="module")
def schema_file(tmp_path_factory: pytest.TempPathFactory) -> str:
    path = tmp_path_factory.mktemp("schema") / "schema.json"
    path.write_text(json.dumps(SCHEMA), encoding="utf-8")
    return str(path)


def test_predict_script_prints_one_valid_json_ast_per_request(trained_student: str, schema_file: str) -> None:
    queries = [r["query"] for r in TRAINED_ROWS]
    argv = [sys.executable, str(REPO_ROOT / "scripts" / "predict.py"), "--adapter", trained_student,
            "--schema", schema_file, "--device", "cpu", "--max-new-tokens", "64"]
    for query in queries:
        argv += ["--query", query]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == len(queries)
    asts = [json.loads(line) for line in lines]
    for ast, row in zip(asts, TRAINED_ROWS):
        assert dsl.validation_error(SCHEMA, ast) is None
        assert ast == row["ast"]  # a trained request comes back as its training AST


def test_unconstrained_prediction_of_the_trained_student_also_finds_the_ast(trained_student: str) -> None:
    results = predict(trained_student, SCHEMA, [r["query"] for r in TRAINED_ROWS], constrained=False,
                      max_new_tokens=64, device="cpu")
    assert [r["ast"] for r in results] == [r["ast"] for r in TRAINED_ROWS]
    assert all(r["parsed"] and r["schema_valid"] and not r["truncated"] for r in results)


def test_schema_format_comes_from_the_run_config_beside_or_above_the_checkpoint(tmp_path: Path) -> None:
    checkpoint = tmp_path / "run" / "checkpoint-final"
    checkpoint.mkdir(parents=True)
    assert trained_schema_format(str(checkpoint)) == "compact"
    (tmp_path / "run" / "run_config.json").write_text(json.dumps({"training": {"schema_format": "json"}}))
    assert trained_schema_format(str(checkpoint)) == "json"
    (checkpoint / "run_config.json").write_text(json.dumps({"schema_format": "compact"}))
    assert trained_schema_format(str(checkpoint)) == "compact"


def load_script() -> Any:
    spec = importlib.util.spec_from_file_location("script_predict", REPO_ROOT / "scripts" / "predict.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(argv: list[str]) -> int:
    script = load_script()
    return cli.run(script.main, script.build_parser(), argv)


def test_a_schema_file_that_is_not_a_json_schema_exits_2_in_one_line(tmp_path: Path, trained_student: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"type": "objekt"}), encoding="utf-8")
    assert run_cli(["--adapter", trained_student, "--schema", str(bad), "--query", "x"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "not a valid JSON Schema" in err and "bad.json" in err
    broken = tmp_path / "broken.json"
    broken.write_text("{not json", encoding="utf-8")
    assert run_cli(["--adapter", trained_student, "--schema", str(broken), "--query", "x"]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_an_adapter_dir_that_is_not_a_checkpoint_exits_2_in_one_line(tmp_path: Path, schema_file: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for adapter in (str(empty), str(tmp_path / "missing" / "checkpoint-final")):
        assert run_cli(["--adapter", adapter, "--schema", schema_file, "--query", "x"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:") and "checkpoint" in err
