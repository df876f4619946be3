"""predict(): a tiny trained student turns requests into schema-valid JSON ASTs; bad inputs exit 2 in one line."""
from __future__ import annotations

import importlib.util
import json
import math
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_tiny_corpus, make_tiny_schema_record, make_tiny_student, write_tiny_schemas

from ast_distill import cli, dsl, student
from ast_distill.calibration import Calibration, write_calibration
from ast_distill.config import REPO_ROOT, load_config
from ast_distill.corpus import build_training_corpus, corpus_schema_format
from ast_distill.errors import UserError
from ast_distill.generation import StudentGenerator
from ast_distill.jsonl import write_jsonl_atomic
from ast_distill.predict import ask_back, load_generator, predict, trained_schema_format
from ast_distill.prompting import build_completion, build_prompt, render_schema
from ast_distill.training import train_sft

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


def test_min_confidence_withholds_answers_below_it_and_with_confidence_prints_each_answers_confidence(
        trained_student: str, schema_file: str, tmp_path: Path) -> None:
    checkpoint = tmp_path / "checkpoint"
    shutil.copytree(trained_student, checkpoint)
    query = TRAINED_ROWS[0]["query"]
    base = [sys.executable, str(REPO_ROOT / "scripts" / "predict.py"), "--adapter", str(checkpoint), "--schema",
            schema_file, "--device", "cpu", "--max-new-tokens", "64", "--query", query, "--query", "zzz qqq"]

    def run(*flags: str) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(base + list(flags), check=False, capture_output=True, text=True, timeout=300,
                              cwd=REPO_ROOT)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    shown = [json.loads(line) for line in run("--with-confidence").stdout.splitlines()]
    raw = [answer["confidence"] for answer in shown]
    assert shown[0]["ast"] == TRAINED_ROWS[0]["ast"] and all(0.0 < c <= 1.0 for c in raw) and raw[0] != raw[1]
    # The two answers' confidences (a 2-row student is sure of both; which is surer is no property of it) and a
    # threshold between them: the surer answer stays, the other is asked back with itself as the one option.
    sure, unsure = (0, 1) if raw[0] > raw[1] else (1, 0)
    between = (raw[0] + raw[1]) / 2
    kept = run("--min-confidence", f"{between:.6f}")
    answers = [json.loads(line) for line in kept.stdout.splitlines()]
    assert answers[sure] == shown[sure]["ast"]
    assert answers[unsure] == {"type": "clarification", "question": "Is this what you mean?",
                               "options": [{"label": "this query", "ast": shown[unsure]["ast"]}]}
    assert dsl.validation_error(SCHEMA, answers[unsure]) is None
    assert "below --min-confidence" in kept.stderr and "raw (the checkpoint has no calibration.json)" in kept.stderr
    # With a calibration stored beside the weights (the sweep's), the confidence printed is the calibrated one.
    write_calibration(checkpoint, Calibration(raw=[math.log(between), 0.0], value=[0.2, 0.9], rows=40))
    calibrated = [json.loads(line)["confidence"] for line in run("--with-confidence").stdout.splitlines()]
    assert calibrated[sure] == 0.9 and calibrated[unsure] == 0.2
    bad = subprocess.run(base + ["--min-confidence", "1.5"], check=False, capture_output=True, text=True,
                         timeout=300, cwd=REPO_ROOT)
    assert bad.returncode == 2 and bad.stderr.strip().count("\n") == 0 and "[0, 1]" in bad.stderr


def usual_category_row(category: str) -> dict[str, Any]:
    """The same words, a different context: only the Context line tells the answers apart."""
    query, context = "products in my usual category", {"today": "2026-12-01", "defaults": {"category": category}}
    ast = {"type": "query", "filter": {"field": "category", "op": "equals", "value": category}}
    return {"query": query, "context": context, "ast": ast, "prompt": build_prompt(SCHEMA, query, "compact", context),
            "completion": build_completion(ast)}


def test_a_context_dependent_request_is_answered_with_the_contexts_value(tmp_path: Path) -> None:
    rows = [usual_category_row("toy"), usual_category_row("book")]
    path = make_tiny_student(tmp_path / "student")
    losses = train_tiny(path, rows, steps=300)
    assert sum(losses[-10:]) / 10 < sum(losses[:10]) / 10 / 10  # it learned
    queries = [r["query"] for r in rows] + [rows[0]["query"]]
    results = predict(path, SCHEMA, queries, max_new_tokens=64, device="cpu",
                      contexts=[r["context"] for r in rows] + [{"defaults": {"category": "toy"}, "today": "2026-12-01"}])
    assert [r["ast"] for r in results] == [rows[0]["ast"], rows[1]["ast"], rows[0]["ast"]]
    assert results[1]["context"] == rows[1]["context"]


def test_context_flag_reaches_the_prompt_and_bad_context_exits_2_in_one_line(tmp_path: Path, trained_student: str,
                                                                              schema_file: str) -> None:
    base = [sys.executable, str(REPO_ROOT / "scripts" / "predict.py"), "--adapter", trained_student, "--schema",
            schema_file, "--device", "cpu", "--max-new-tokens", "8", "--query", "q"]
    for context, why in (("{today", "--context is not JSON"), ('["today"]', "the context must be a JSON object")):
        done = subprocess.run(base + ["--context", context], check=False, capture_output=True, text=True, timeout=300,
                              cwd=REPO_ROOT)
        assert done.returncode == 2 and done.stderr.strip().count("\n") == 0 and why in done.stderr
    lines = tmp_path / "requests.jsonl"
    lines.write_text('{"query": "q", "context": 3}\n', encoding="utf-8")
    done = subprocess.run(base[:-2] + ["--input", str(lines)], check=False, capture_output=True, text=True,
                          timeout=300, cwd=REPO_ROOT)
    assert done.returncode == 2 and "record 1: the context must be a JSON object" in done.stderr


def test_ask_back_offers_a_low_confidence_query_when_the_schema_can_ask() -> None:
    query = TRAINED_ROWS[0]["ast"]
    assert ask_back(query, SCHEMA) == {"type": "clarification", "question": "Is this what you mean?",
                                       "options": [{"label": "this query", "ast": query}]}
    refusal = {"type": "refusal", "reason": "r", "suggestion": "s"}
    assert ask_back(refusal, SCHEMA)["options"] == []  # nothing to offer: still a question
    asked = {"type": "clarification", "question": "Which?", "options": []}
    assert ask_back(asked, SCHEMA) is asked
    plain = {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
             "additionalProperties": False}  # a user's schema: no clarification answer
    assert ask_back({"n": 3}, plain) is None


def test_unconstrained_prediction_of_the_trained_student_also_finds_the_ast(trained_student: str) -> None:
    results = predict(trained_student, SCHEMA, [r["query"] for r in TRAINED_ROWS], constrained=False,
                      max_new_tokens=64, device="cpu")
    assert [r["ast"] for r in results] == [r["ast"] for r in TRAINED_ROWS]
    assert all(r["parsed"] and r["schema_valid"] and not r["truncated"] for r in results)


def test_schema_format_is_the_top_level_key_of_the_checkpoint_or_run_dir_run_config(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run, checkpoint = tmp_path / "run", tmp_path / "run" / "checkpoint-final"
    checkpoint.mkdir(parents=True)
    assert trained_schema_format(str(checkpoint)) == "compact"
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "records no schema_format" in err and "--schema-format" in err
    # A config's schema_format is what a corpus was to be built with, not what this one was: not read.
    (run / "run_config.json").write_text(json.dumps({"config": {"dataset_generation": {"schema_format": "json"}}}))
    assert trained_schema_format(str(checkpoint)) == "compact"
    (run / "run_config.json").write_text(json.dumps({"stage": "sft", "schema_format": "json"}))
    assert trained_schema_format(str(checkpoint)) == "json"
    (checkpoint / "run_config.json").write_text(json.dumps({"schema_format": "compact"}))
    assert trained_schema_format(str(checkpoint)) == "compact"
    (checkpoint / "run_config.json").write_text(json.dumps({"schema_format": "yaml"}))
    with pytest.raises(UserError, match="schema_format 'yaml' is not one of"):
        trained_schema_format(str(checkpoint))


def test_predict_renders_the_schema_as_the_checkpoint_corpus_was_built_json_here(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    schemas = tmp_path / "d_02.jsonl"
    record = write_tiny_schemas(schemas)
    d03 = tmp_path / "d_03.jsonl"
    write_jsonl_atomic(d03, [{"id": row["id"], "schema_id": record["id"], "domain": record["domain"],
                              "language": row["language"], "query": row["query"], "ast": row["ast"],
                              "kind": row["kind"], "is_valid": True} for row in make_tiny_corpus(8)])
    d04 = tmp_path / "d_04.jsonl"
    build_training_corpus(dataset_path=d03, schemas_path=schemas, include_invalid=False, max_samples=None,
                          heldout_schema_fraction=0.0, val_fraction=0.0, pref_fraction=0.0, test_fraction=0.0,
                          schema_format="json", seed=0, out=d04, test_out=tmp_path / "d_05.jsonl", pretty_dir=None,
                          pretty_sources=[], settings={})
    assert corpus_schema_format(d04) == "json"
    cfg = dict(load_config()["training"], training_corpus=str(d04), output_dir=str(tmp_path / "run"),
               base_model="scratch", backend="hf", max_steps=1, batch_size=2, grad_accum=1, save_steps=0,
               val_split=0.0, sample_generations=0, early_stop_patience=0, bf16=False, load_in_4bit=False,
               max_seq_length=4096, torch_threads=1, scratch_hidden_size=32, scratch_num_layers=1,
               scratch_num_heads=2, scratch_num_kv_heads=1, scratch_head_dim=16, scratch_intermediate_size=64,
               scratch_vocab_size=400)
    final = train_sft(cfg, log=lambda *_: None)["checkpoint_final"]
    assert json.loads((Path(final) / "run_config.json").read_text())["schema_format"] == "json"

    prompts: list[str] = []
    generate_all = StudentGenerator.generate_all

    def recording(self: StudentGenerator, texts: list[str], *args: Any, **kwargs: Any) -> Any:
        prompts.extend(texts)
        return generate_all(self, texts, *args, **kwargs)

    monkeypatch.setattr(StudentGenerator, "generate_all", recording)
    predict(final, record["schema"], ["products above 5 euros"], max_new_tokens=4, device="cpu")
    assert len(prompts) == 1
    assert render_schema(record["schema"], "json") in prompts[0]
    assert render_schema(record["schema"], "compact") not in prompts[0]


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
    # valid JSON Schemas this pipeline still cannot use: a $ref outside the file, a root that admits nothing
    for schema, said in (({"properties": {"a": {"$ref": "https://example.com/a.json"}}}, "points outside"),
                         ({"type": "integer", "minimum": 3, "maximum": 1}, "admits no value")):
        bad.write_text(json.dumps(schema), encoding="utf-8")
        assert run_cli(["--adapter", trained_student, "--schema", str(bad), "--query", "x"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and said in err and "bad.json" in err


def test_an_adapter_dir_that_is_not_a_checkpoint_exits_2_in_one_line(tmp_path: Path, schema_file: str,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    for adapter in (str(empty), str(tmp_path / "missing" / "checkpoint-final")):
        assert run_cli(["--adapter", adapter, "--schema", schema_file, "--query", "x"]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and err.startswith("error:") and "checkpoint" in err


def test_a_draft_07_schema_is_checked_by_its_own_draft_and_its_tuples_decode_under_constraints(
        tmp_path: Path) -> None:
    from ast_distill.generation import NUMBER_BOUND, grammar_schema

    point = {"type": "array", "items": [{"type": "number"}, {"type": "string", "maxLength": 4}],
             "additionalItems": False, "minItems": 2}
    schema = {"$schema": "http://json-schema.org/draft-07/schema#", "type": "object",
              "properties": {"pt": point}, "required": ["pt"], "additionalProperties": False}
    dsl.check_json_schema(schema, "point.json")  # tuple-form items: valid in draft 7, not in 2020-12
    with pytest.raises(UserError, match="not a valid JSON Schema at properties/pt/items"):
        dsl.check_json_schema({k: v for k, v in schema.items() if k != "$schema"}, "point.json")
    assert dsl.validation_error(schema, {"pt": [1.5, "a"]}) is None
    assert dsl.validation_error(schema, {"pt": [1.5, "a", 3]}) is not None  # additionalItems: false
    assert grammar_schema(schema)["properties"]["pt"] == {"type": "array", "prefixItems": [
        {"type": "number", "maximum": NUMBER_BOUND, "minimum": -NUMBER_BOUND}, {"type": "string"}],
        "items": False, "minItems": 2}
    tiny = make_tiny_student(tmp_path)
    generator = load_generator(tiny, "cpu")
    text = student.prompt_text(generator.tokenizer, build_prompt(schema, "a point"))
    [[(_, generated)]] = generator.generate_all([text], [schema], batch_size=1, max_new_tokens=12)
    assert generated.text.startswith('{"pt":[')  # xgrammar read the tuple (it rejects a list under items)
    # predict decodes with the schema wrapped (a refusal is valid too): the untrained student writes one or the other
    result = predict(tiny, schema, ["a point"], max_new_tokens=12)[0]
    assert result["raw"].startswith(('{"pt":[', '{"type":"refusal"'))
