"""The failure-focused boost: targets from the failed pref rows, new teacher rows that are valid, new and aimed at
those failures (never on unseen schemas, never repeating a dataset request), and SFT that goes on from the
selected checkpoint on train + boost rows."""
from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_tiny_corpus, make_tiny_schema_record, make_tiny_student, write_tiny_schemas

from ast_distill import dsl, runs
from ast_distill.alignment import choice
from ast_distill.alignment.boost import (SOURCE, boost_training_settings, build_boost_rows, failure_targets,
                                         rows_wanted)
from ast_distill.config import load_config
from ast_distill.jsonl import read_json, read_jsonl, write_jsonl_atomic
from ast_distill.records import normalize_query
from ast_distill.student import load_student
from ast_distill.teachers.grammar import GrammarTeacher
from ast_distill.training import train_sft

torch.set_num_threads(1)

REFUSAL = {"type": "refusal", "reason": "no such field", "suggestion": "ask about prices"}
STOCK_BELOW = {"type": "query", "filter": {"field": "stock", "op": "below", "value": 5}}
PRICE_ABOVE = {"type": "query", "filter": {"field": "price", "op": "above", "value": 10}}


def evaluated(schema_id: str, gold: dict[str, Any], student: dict[str, Any] | None, n: int = 0) -> dict[str, Any]:
    """One pref evaluation record as evaluate_student.py writes it (the fields failure_detail reads)."""
    same = student == gold
    return {"id": f"{schema_id}-{n}", "schema_id": schema_id, "kind": gold["type"], "gold_ast": gold,
            "student_ast": student, "parsed": student is not None, "schema_valid": student is not None,
            "semantic_match": same, "teacher_accept": same}


def test_failure_targets_name_what_the_failed_rows_exercise() -> None:
    records = [evaluated("s", STOCK_BELOW, PRICE_ABOVE, 1),  # wrong meaning: the gold's field and operator
               evaluated("s", STOCK_BELOW, None, 2),  # not parsed: the same targets again
               evaluated("s", REFUSAL, PRICE_ABOVE, 3),  # a missed refusal
               evaluated("s", PRICE_ABOVE, PRICE_ABOVE, 4)]  # passed: counts nothing
    targets = failure_targets(records)["s"]
    assert targets["failed"] == 3
    assert targets["field:stock"] == 2 and targets["op:below"] == 2 and targets["refusal"] == 1
    assert "field:price" not in targets
    assert rows_wanted({"a": targets, "b": failure_targets(records[:1])["s"]}, 4, None) == {"a": 12, "b": 4}
    assert sum(rows_wanted({"a": targets, "b": failure_targets(records[:1])["s"]}, 4, 10).values()) == 10


def test_failure_targets_of_a_user_schema_are_its_leaf_paths_and_enum_values() -> None:
    gold = {"action": "scene", "name": "away", "rooms": ["kitchen"], "start": "2027-04-11T08:30:00Z"}
    wrong = {**gold, "start": "2027-04-18T18:00:00Z"}
    record = {"id": "home-1", "schema_id": "home", "kind": "query", "gold_ast": gold, "student_ast": wrong,
              "parsed": True, "schema_valid": True, "semantic_match": False, "teacher_accept": False}
    targets = failure_targets([record])["home"]
    assert {"key:action", "value:action=scene", "key:rooms[]", "value:rooms[]=kitchen", "key:start"} <= set(targets)
    assert not any(name.startswith(("field:", "op:", "clause:")) for name in targets)


def boost_inputs(tmp_path: Path, dataset_rows: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """Files build_boost_rows reads: the tiny schema, its corpus, a d_03 dataset and pref results where the
    student failed rows about stock (and one row of a schema the corpus does not know)."""
    record = write_tiny_schemas(tmp_path / "d02.jsonl")
    corpus = make_tiny_corpus(30)
    write_jsonl_atomic(tmp_path / "d04.jsonl", corpus)
    write_jsonl_atomic(tmp_path / "d03.jsonl", dataset_rows if dataset_rows is not None else
                       [{"schema_id": r["schema_id"], "query": r["query"]} for r in corpus])
    pref = [evaluated(record["id"], STOCK_BELOW, PRICE_ABOVE, i) for i in range(3)]
    pref += [evaluated("an-unseen-schema", STOCK_BELOW, PRICE_ABOVE, 9)]
    write_jsonl_atomic(tmp_path / "pref.jsonl", pref)
    cfg = dict(load_config()["boost"], rows_out=str(tmp_path / "boost_rows.jsonl"),
               corpus_out=str(tmp_path / "boost_corpus.jsonl"), rows_per_failure=4, replay_ratio=1.0)
    return {"teacher": GrammarTeacher(seed=5), "pref_results": tmp_path / "pref.jsonl",
            "corpus": tmp_path / "d04.jsonl", "dataset": tmp_path / "d03.jsonl", "schemas": tmp_path / "d02.jsonl",
            "specs": tmp_path / "missing-specs.jsonl", "cfg": cfg, "log": lambda *_: None}


def test_boost_rows_are_valid_new_and_aimed_at_the_failures(tmp_path: Path) -> None:
    inputs = boost_inputs(tmp_path)
    summary = build_boost_rows(**inputs)
    rows = read_jsonl(tmp_path / "boost_rows.jsonl")
    schema = make_tiny_schema_record()
    assert summary["rows"] == len(rows) == 12  # 4 per failed row of the seen schema; the unseen one gets none
    assert {r["schema_id"] for r in rows} == {schema["id"]}
    assert all(dsl.validation_error(schema["schema"], r["ast"]) is None for r in rows)
    assert all({"field:stock", "op:below"} & set(r["boost_targets"]) for r in rows)
    # the corpus the boost run trains on: the new rows as train rows rendered like the others, as many train rows
    # of d_04 replayed (replay_ratio 1), and every val row of d_04 (eval_loss)
    corpus = read_jsonl(tmp_path / "boost_corpus.jsonl")
    added = [r for r in corpus if r.get("source") == SOURCE]
    assert len(added) == 12 and {r["split"] for r in added} == {"train"}
    assert all(r["prompt"][0]["content"] for r in added)
    d04 = read_jsonl(tmp_path / "d04.jsonl")
    kept = [r for r in corpus if r.get("source") != SOURCE]
    assert sum(r["split"] == "train" for r in kept) == summary["replayed_train_rows"] == 12
    assert [r for r in kept if r["split"] == "val"] == [r for r in d04 if r["split"] == "val"]
    # replay_ratio null (the default) keeps every row of d_04
    build_boost_rows(**{**inputs, "cfg": {**inputs["cfg"], "replay_ratio": None}})
    assert [r for r in read_jsonl(tmp_path / "boost_corpus.jsonl") if r.get("source") != SOURCE] == d04

    # A request the dataset holds (here: every one just written, as if they were test rows) is never kept.
    taken = [{"schema_id": r["schema_id"], "query": r["query"].upper() + "!"} for r in rows]
    inputs = boost_inputs(tmp_path, dataset_rows=taken)
    build_boost_rows(**inputs, resume=False)
    again = read_jsonl(tmp_path / "boost_rows.jsonl")
    assert again and not {normalize_query(r["query"]) for r in again} & {normalize_query(r["query"]) for r in rows}


def test_a_rerun_keeps_the_boost_rows_of_the_same_inputs_and_remakes_them_after_a_new_pref_evaluation(
        tmp_path: Path) -> None:
    inputs = boost_inputs(tmp_path)
    build_boost_rows(**inputs)
    said: list[str] = []
    build_boost_rows(**{**inputs, "log": said.append})
    assert said and said[0].startswith("boost rows: kept")
    write_jsonl_atomic(tmp_path / "pref.jsonl", read_jsonl(tmp_path / "pref.jsonl")[:1])
    said.clear()
    summary = build_boost_rows(**{**inputs, "log": said.append})
    assert not said[0].startswith("boost rows: kept") and summary["rows"] == 4


@pytest.mark.slow
def test_boost_training_goes_on_from_the_selected_checkpoint_and_learns_the_boost_rows(tmp_path: Path) -> None:
    from transformers import TrainerCallback

    class Snapshot(TrainerCallback):
        def on_train_begin(self, args, state, control, model=None, **kwargs):
            self.before = {k: v.detach().clone() for k, v in model.state_dict().items()}

    student = make_tiny_student(tmp_path)
    sft_run = tmp_path / "sft"
    shutil.copytree(student, sft_run / "checkpoint-final")
    runs.install_best(sft_run, student, {"source": "checkpoint-3"})
    corpus = make_tiny_corpus(24)
    for row in corpus:
        row["source"] = SOURCE if row["split"] == "train" else None
    write_jsonl_atomic(tmp_path / "boost_corpus.jsonl", corpus)
    config = load_config()
    training = dict(config["training"], base_model="scratch", backend="hf", max_seq_length=1024, batch_size=4,
                    grad_accum=1, learning_rate=3e-3, optimizer="adamw", lr_scheduler_type="constant",
                    logging_steps=1, bf16=False, torch_compile=False, sample_generations=0, eval_max_samples=4,
                    torch_threads=1, requests_per_sequence=1)
    boost = dict(config["boost"], corpus_out=str(tmp_path / "boost_corpus.jsonl"),
                 output_dir=str(tmp_path / "boost"), max_steps=12, warmup_steps=0)
    settings = boost_training_settings(training, boost, str(sft_run))
    snapshot = Snapshot()
    outputs = train_sft(settings, extra_callbacks=[snapshot], log=lambda *_: None)

    start = load_student(str(sft_run / "checkpoint-best"), device="cpu")[0].state_dict()
    assert all(torch.equal(start[k], v) for k, v in snapshot.before.items())  # began at the selected weights
    final = load_student(outputs["checkpoint_final"], device="cpu")[0].state_dict()
    assert sum(not torch.equal(start[k], final[k]) for k in start) > len(start) // 2
    losses = [r["loss"] for r in read_jsonl(tmp_path / "boost" / "training_metrics.jsonl") if "loss" in r]
    assert len(losses) == 12 and sum(losses[-3:]) < sum(losses[:3])
    run_config = read_json(tmp_path / "boost" / "run_config.json")
    assert run_config["start_from"] == str(sft_run / "checkpoint-best")
    assert (tmp_path / "boost" / "checkpoint-6").is_dir()  # a middle checkpoint for the sweep


def finished_run(folder: Path, semantic_pass: float | None, schema_valid: float = 1.0) -> Path:
    """A run dir with a complete checkpoint-best and, unless semantic_pass is None, its sweep's ranking."""
    best = folder / runs.BEST_DIR
    best.mkdir(parents=True)
    for name in ("model.safetensors", "config.json", "tokenizer_config.json"):
        (best / name).write_text("{}", encoding="utf-8")
    (folder / runs.FINAL_DIR).mkdir()
    if semantic_pass is not None:
        ranking = [{"semantic_pass_rate": semantic_pass, "schema_valid_rate": schema_valid, "n": 100}]
        (folder / runs.SWEEP_FILE).write_text(json.dumps({"checkpoint_best": str(best), "ranking": ranking}))
    return folder


def choice_config(tmp_path: Path) -> dict[str, Any]:
    config = load_config()
    config["alignment"].update(adapter=str(tmp_path / "sft"), output_dir=str(tmp_path / "dpo"),
                               pairs_out=str(tmp_path / "align" / "pairs.jsonl"))
    config["boost"]["output_dir"] = str(tmp_path / "boost")
    config["evaluation"]["out_dir"] = str(tmp_path / "eval")
    return config


def test_alignment_keeps_the_student_with_the_best_val_figures_and_a_tie_keeps_the_simpler(tmp_path: Path) -> None:
    config = choice_config(tmp_path)
    finished_run(tmp_path / "sft", 0.30)
    finished_run(tmp_path / "dpo", 0.31)
    finished_run(tmp_path / "boost", 0.36)
    record = choice.choose(config)
    assert record["method"] == "boost" and record["checkpoint"] == str(tmp_path / "boost" / runs.BEST_DIR)
    assert record["eval_summary"] == str(tmp_path / "eval-boost" / "evaluation_summary.json")
    assert choice.chosen(config) == read_json(tmp_path / "align" / choice.ALIGNED_FILE) == record
    # 0.36 vs 0.31 on 100 val rows: a margin of 0.05 against two standard errors of ~0.13
    assert record["closeness"]["runner_up"] == "dpo" and record["closeness"]["margin"] == pytest.approx(0.05)
    assert "within noise" in record["why"] and record["closeness"]["noise"] == pytest.approx(0.1333, abs=1e-3)

    shutil.rmtree(tmp_path / "boost")  # a tie on semantic pass goes to schema-valid, then the simpler method
    finished_run(tmp_path / "boost", 0.31, schema_valid=0.99)
    assert choice.choose(config)["method"] == "dpo"
    (tmp_path / "sft" / runs.SWEEP_FILE).write_text(json.dumps(
        {"checkpoint_best": "x", "ranking": [{"semantic_pass_rate": 0.31, "schema_valid_rate": 1.0, "n": 100}]}))
    assert choice.choose(config)["method"] == "sft"

    shutil.rmtree(tmp_path / "dpo")  # no sweep on a run: nothing fair to compare on, the last method trained
    finished_run(tmp_path / "dpo", None)
    record = choice.choose(config)
    assert record["method"] == "boost" and "not every run was swept" in record["rule"]
    shutil.rmtree(tmp_path / "boost")  # the kept student is gone: nothing is chosen any more
    assert choice.chosen(config) is None
