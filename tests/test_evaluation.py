"""Scoring, summary and resume of the evaluation stage, and its CLI's error paths."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import (make_tiny_corpus, make_tiny_lora_base, make_tiny_schema_record, make_tiny_student,
                     write_tiny_schemas)

from ast_distill import cli, dsl
from ast_distill.config import REPO_ROOT, load_config
from ast_distill.errors import UserError
from ast_distill.evaluation import EvalSettings, baseline_of, judge_records, run_evaluation, select_rows
from ast_distill.fingerprint import checkpoint_fingerprint
from ast_distill.generation import Generation
from ast_distill.jsonl import read_jsonl, write_jsonl_atomic
from ast_distill.scoring import metrics, score_output, summarize
from ast_distill.teachers.base import Teacher, TeacherError, Verdict

torch.set_num_threads(1)
SCHEMA_RECORD = make_tiny_schema_record()
SCHEMA = SCHEMA_RECORD["schema"]
SCHEMAS = {SCHEMA_RECORD["id"]: SCHEMA}


class CountingTeacher(Teacher):
    """Rejects every output it is asked about and offers the gold AST; fails on call number `fail_at`."""

    name = "counting"

    def __init__(self, fail_at: int | None = None) -> None:
        self.asked: list[str] = []
        self.fail_at = fail_at

    async def judge(self, schema: dict, query: str, gold_ast: Any, student_ast: Any, student_raw: str) -> Verdict:
        self.asked.append(query)
        if self.fail_at is not None and len(self.asked) >= self.fail_at:
            raise TeacherError("fake teacher down")
        return Verdict(accept=False, canonical_ast=gold_ast, reason="not what was asked")


def row(ast: dict, **extra: Any) -> dict:
    base = make_tiny_corpus(1)[0]
    return {**base, "ast": ast, "kind": "refusal" if ast.get("type") == "refusal" else "query", **extra}


def score(gold: dict, text: str, truncated: bool = False) -> dict:
    return score_output(row(gold), SCHEMA, Generation(text=text, token_ids=[1, 2], truncated=truncated,
                                                      latency_ms=10.0), prompt_text="P", constrained=True)


GOLD = {"type": "query", "filter": {"and": [{"field": "price", "op": "above", "value": 10},
                                            {"field": "category", "op": "equals", "value": "toy"}]}}
REFUSAL = {"type": "refusal", "reason": "not about products", "suggestion": "ask about prices"}


# --- scoring -------------------------------------------------------------------------------------------


def test_identical_output_scores_exact_and_semantic_without_a_judge() -> None:
    record = score(GOLD, json.dumps(GOLD, separators=(",", ":")))
    assert record["parsed"] and record["schema_valid"] and record["exact_match"] and record["semantic_match"]
    assert record["teacher_verdict"] is True and record["teacher_canonical"] == GOLD
    assert record["gold_ast"] == GOLD and record["prompt_text"] == "P" and record["latency_ms"] == 10.0


def test_reordered_and_children_match_in_meaning_but_not_exactly() -> None:
    swapped = {"type": "query", "filter": {"and": list(reversed(GOLD["filter"]["and"]))}}
    record = score(GOLD, json.dumps(swapped))
    assert record["semantic_match"] and not record["exact_match"]
    assert record["student_canonical"] == score(GOLD, json.dumps(GOLD))["student_canonical"]


def test_broken_json_is_not_parsed_nor_valid_and_awaits_the_judge() -> None:
    record = score(GOLD, '{"type":"query","filter":', truncated=True)
    assert not record["parsed"] and not record["schema_valid"] and not record["semantic_match"]
    assert record["student_ast"] is None and record["student_canonical"] is None and record["truncated"]
    assert record["teacher_verdict"] is None


def test_json_that_breaks_the_schema_parses_but_is_not_valid() -> None:
    record = score(GOLD, '{"type":"query","select":["colour"]}')
    assert record["parsed"] and not record["schema_valid"] and "select" in record["validation_error"]


def test_a_json_list_is_not_an_ast() -> None:
    assert not score(GOLD, "[1, 2]")["parsed"]


def test_any_refusal_matches_a_gold_refusal_but_never_a_query() -> None:
    other_words = {"type": "refusal", "reason": "autre", "suggestion": "autre chose"}
    assert score(REFUSAL, json.dumps(other_words))["semantic_match"]
    assert not score(GOLD, json.dumps(other_words))["semantic_match"]


def test_the_teacher_is_asked_only_where_the_meaning_differs() -> None:
    import asyncio

    records = [score(GOLD, json.dumps(GOLD)), score(GOLD, '{"type":"query"}'), score(GOLD, "nonsense")]
    teacher = CountingTeacher()
    asked = asyncio.run(judge_records(teacher, records, SCHEMAS))
    assert asked == 2 and len(teacher.asked) == 2
    assert [r["teacher_verdict"] for r in records] == [True, False, False]
    assert records[1]["teacher_canonical"] == GOLD and records[1]["teacher_reason"] == "not what was asked"


# --- summary -------------------------------------------------------------------------------------------


def fake_record(**values: Any) -> dict:
    base = {"parsed": True, "schema_valid": True, "exact_match": False, "semantic_match": False,
            "teacher_verdict": False, "truncated": False, "kind": "query", "student_ast": {"type": "query"},
            "language": "en", "schema_seen": True, "latency_ms": 10.0}
    return {**base, **values}


def test_rates_count_each_flag_and_pass_needs_valid_and_accepted() -> None:
    records = [
        fake_record(exact_match=True, semantic_match=True, teacher_verdict=True),
        fake_record(schema_valid=False, teacher_verdict=True),  # accepted but invalid: not a pass
        fake_record(parsed=False, schema_valid=False, student_ast=None, truncated=True, teacher_verdict=None),
        fake_record(),
    ]
    m = metrics(records)
    assert m["n"] == 4
    assert (m["parsed_rate"], m["schema_valid_rate"], m["exact_match_rate"]) == (0.75, 0.5, 0.25)
    assert (m["teacher_accept_rate"], m["semantic_pass_rate"], m["truncated_rate"]) == (0.5, 0.25, 0.25)


def test_refusal_precision_and_recall() -> None:
    said = {"type": "refusal", "reason": "r", "suggestion": "s"}
    records = [
        fake_record(kind="refusal", student_ast=said),  # true positive
        fake_record(kind="refusal"),  # missed refusal
        fake_record(kind="query", student_ast=said),  # refused a fine request
        fake_record(kind="query", student_ast=said),
        fake_record(kind="query"),
    ]
    m = metrics(records)
    assert m["refusal_precision"] == round(1 / 3, 6) and m["refusal_recall"] == 0.5
    assert metrics([fake_record()])["refusal_precision"] is None  # no refusal said: no precision


def test_summary_splits_seen_and_unseen_schemas_and_languages() -> None:
    records = [fake_record(schema_seen=True, language="en", semantic_match=True),
               fake_record(schema_seen=False, language="fr"), fake_record(schema_seen=False, language="fr")]
    summary = summarize(records)
    assert summary["overall"]["n"] == 3
    assert summary["by_schema"]["seen"]["n"] == 1 and summary["by_schema"]["unseen"]["n"] == 2
    assert summary["by_schema"]["seen"]["semantic_match_rate"] == 1.0
    assert summary["by_language"]["en"]["n"] == 1 and summary["by_language"]["fr"]["n"] == 2
    assert summarize([])["overall"]["parsed_rate"] is None


# --- row selection ------------------------------------------------------------------------------------


def test_rows_are_filtered_by_split_and_gold_validity_then_sampled_by_seed() -> None:
    rows = make_tiny_corpus(20)
    rows[0]["ast"] = {"type": "query", "select": ["colour"]}  # an invalid gold AST
    for r in rows[:10]:
        r["split"] = "pref"
    pref = select_rows(rows, SCHEMAS, split="pref")
    assert len(pref) == 9 and all(r["split"] == "pref" for r in pref)
    assert len(select_rows(rows, SCHEMAS, split="pref", include_invalid=True)) == 10
    first = select_rows(rows, SCHEMAS, max_samples=5, sample_seed=3)
    assert len(first) == 5 and first == select_rows(rows, SCHEMAS, max_samples=5, sample_seed=3)
    assert first != select_rows(rows, SCHEMAS, max_samples=5, sample_seed=4)
    with pytest.raises(UserError, match="no rows of split 'test'"):
        select_rows(rows, SCHEMAS, split="test")


def test_a_seeded_sample_holds_only_rows_whose_gold_is_valid_and_is_the_same_for_its_seed() -> None:
    rows = make_tiny_corpus(30)
    for r in rows[::3]:
        r["ast"] = {"type": "query", "select": ["colour"]}  # invalid against the schema
    rows[1]["is_valid"] = False  # marked invalid by the dataset
    invalid = {r["id"] for r in rows[::3]} | {rows[1]["id"]}
    valid = [r for r in rows if r["id"] not in invalid]
    samples = []
    for seed in range(4):
        sample = select_rows(rows, SCHEMAS, max_samples=6, sample_seed=seed)
        assert len(sample) == 6 and not {r["id"] for r in sample} & invalid
        assert sample == select_rows(rows, SCHEMAS, max_samples=6, sample_seed=seed)
        samples.append([r["id"] for r in sample])
    assert len({tuple(s) for s in samples}) > 1
    # Asking for as many rows as there are valid ones (or more) is no sample: every valid row, in order.
    assert select_rows(rows, SCHEMAS, max_samples=len(valid) + 5, sample_seed=1) == valid
    assert select_rows(rows, SCHEMAS, max_samples=0) == []


def test_a_row_of_an_unknown_schema_is_a_user_error() -> None:
    rows = make_tiny_corpus(2)
    rows[1]["schema_id"] = "nope"
    with pytest.raises(UserError, match="schema nope"):
        select_rows(rows, SCHEMAS)


# --- a run, killed and resumed ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_student(tmp_path_factory: pytest.TempPathFactory) -> str:
    return make_tiny_student(tmp_path_factory.mktemp("eval_student"))


def make_settings(tmp_path: Path, adapter: str, n: int, **overrides: Any) -> EvalSettings:
    rows = make_tiny_corpus(n)
    for i, r in enumerate(rows):
        r["split"], r["schema_seen"] = "test", i % 3 != 0
    write_jsonl_atomic(tmp_path / "d05.jsonl", rows)
    write_tiny_schemas(tmp_path / "d02.jsonl")
    out = tmp_path / "eval"
    values = {"adapter": adapter, "dataset": str(tmp_path / "d05.jsonl"),
              "final_schemas": str(tmp_path / "d02.jsonl"), "out_dir": str(out),
              "eval_results": str(out / "evaluation_results.jsonl"),
              "checkpoint_path": str(out / "evaluation_results.checkpoint.json"), "max_new_tokens": 24,
              "batch_size": 4, "checkpoint_every": 1, "device": "cpu"}
    return EvalSettings(**{**values, **overrides})


def test_killed_evaluation_resumes_without_rescoring_rows(tmp_path: Path, tiny_student: str) -> None:
    settings = make_settings(tmp_path, tiny_student, 12)
    config = load_config(REPO_ROOT / "config" / "offline.json")
    first = CountingTeacher()
    summary = run_evaluation(settings, config, teacher=first)
    assert summary["n"] == 12 and summary["calls_this_run"]["generated"] == 12
    results = Path(settings.eval_results)
    lines = results.read_text(encoding="utf-8").splitlines()
    assert len(lines) == 12
    # A kill mid-write: 5 whole lines survive, then half a line.
    results.write_text("\n".join(lines[:5]) + "\n" + lines[5][:40], encoding="utf-8")

    second = CountingTeacher()
    summary = run_evaluation(settings, config, teacher=second)
    assert summary["calls_this_run"]["generated"] == 7
    unmatched = [r for r in read_jsonl(results)[5:] if not r["semantic_match"]]
    assert len(second.asked) == len(unmatched) == summary["calls_this_run"]["judged"]
    ids = [r["id"] for r in read_jsonl(results)]
    assert len(ids) == len(set(ids)) == 12 and summary["n"] == 12
    assert summary["by_schema"]["unseen"]["n"] == 4
    saved = json.loads(Path(settings.summary_path).read_text(encoding="utf-8"))
    assert saved["overall"] == summary["overall"] and saved["made_with"]["versions"]["xgrammar"]

    third = CountingTeacher()
    summary = run_evaluation(settings, config, teacher=third)
    assert summary["calls_this_run"]["generated"] == 0 and not third.asked and summary["n"] == 12


def test_a_judge_that_always_fails_leaves_a_finished_evaluation_with_every_row_marked_error(
        tmp_path: Path, tiny_student: str) -> None:
    settings = make_settings(tmp_path, tiny_student, 8)
    config = load_config(REPO_ROOT / "config" / "offline.json")
    down = CountingTeacher(fail_at=1)
    summary = run_evaluation(settings, config, teacher=down)
    records = read_jsonl(settings.eval_results)
    assert len(records) == summary["n"] == 8 and not any(r["semantic_match"] for r in records)  # all judged
    assert len(down.asked) == 8
    assert all(r["teacher_verdict"] == "error" and r["teacher_reason"] == "fake teacher down"
               and r["teacher_canonical"] is None for r in records)
    assert summary["overall"]["judge_error_rate"] == 1.0 and summary["overall"]["teacher_accept_rate"] == 0.0
    # Rows judged "error" count as done on resume (--no-resume judges them again).
    again = run_evaluation(settings, config, teacher=CountingTeacher())
    assert again["calls_this_run"]["generated"] == 0 and again["overall"]["judge_error_rate"] == 1.0


def test_a_judge_error_is_neither_an_accept_nor_a_rejection_that_makes_a_dpo_pair() -> None:
    from ast_distill import scoring
    from ast_distill.alignment import pairs as alignment

    error = {**score(GOLD, '{"type":"query"}'), "teacher_verdict": "error", "teacher_reason": "down",
             "split": "pref", "schema_seen": True}
    rejected = {**error, "id": "other", "teacher_verdict": False, "teacher_canonical": GOLD}
    m = metrics([error, rejected])
    assert (m["teacher_accept_rate"], m["semantic_pass_rate"], m["judge_error_rate"]) == (0.0, 0.0, 0.5)
    assert scoring.teacher_accepted(error) is None and not scoring.row_passes(error)
    assert alignment.teacher_accepted(error) is None
    prompts = {r["id"]: make_tiny_corpus(1)[0]["prompt"] for r in (error, rejected)}
    for only_rejected in (True, False):
        pairs = alignment.build_pairs([error, rejected], prompts, only_rejected=only_rejected)
        assert [p["id"] for p in pairs.pairs] == ["other"]


def test_results_made_another_way_start_over_and_say_why(tmp_path: Path, tiny_student: str,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path, tiny_student, 4)
    config = load_config(REPO_ROOT / "config" / "offline.json")
    run_evaluation(settings, config, teacher=None)
    capsys.readouterr()
    free = make_settings(tmp_path, tiny_student, 4, constrained=False)
    summary = run_evaluation(free, config, teacher=None)
    said = [line for line in capsys.readouterr().out.splitlines() if line.startswith("starting over")]
    assert len(said) == 1 and "constrained true -> false" in said[0]
    assert summary["calls_this_run"]["generated"] == 4 and summary["constrained"] is False
    assert all(r["constrained"] is False for r in read_jsonl(free.eval_results))
    fresh = make_settings(tmp_path, tiny_student, 4, constrained=False, resume=False)
    summary = run_evaluation(fresh, config, teacher=None)  # --no-resume: starts over even with nothing changed
    assert summary["calls_this_run"]["generated"] == 4 and len(read_jsonl(fresh.eval_results)) == 4


def test_an_unchanged_rerun_resumes_with_nothing_regenerated(tmp_path: Path, tiny_student: str,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path, tiny_student, 4)
    config = load_config(REPO_ROOT / "config" / "offline.json")
    first = run_evaluation(settings, config, teacher=None)
    before = Path(settings.eval_results).read_bytes()
    again = run_evaluation(settings, config, teacher=None)
    assert again["calls_this_run"]["generated"] == 0 and again["overall"] == first["overall"]
    assert Path(settings.eval_results).read_bytes() == before
    assert "starting over" not in capsys.readouterr().out


def test_a_changed_decoding_setting_starts_over(tmp_path: Path, tiny_student: str,
                                                capsys: pytest.CaptureFixture[str]) -> None:
    config = load_config(REPO_ROOT / "config" / "offline.json")
    run_evaluation(make_settings(tmp_path, tiny_student, 4), config, teacher=None)
    capsys.readouterr()
    longer = make_settings(tmp_path, tiny_student, 4, max_new_tokens=32)
    summary = run_evaluation(longer, config, teacher=None)
    out = capsys.readouterr().out
    assert summary["calls_this_run"]["generated"] == 4 and "max_new_tokens 24 -> 32" in out
    assert len(read_jsonl(longer.eval_results)) == 4
    saved = json.loads(Path(longer.checkpoint_path).read_text(encoding="utf-8"))
    assert saved["max_new_tokens"] == 32 and saved["done"] == 4


def test_a_checkpoint_retrained_at_the_same_path_is_evaluated_again(tmp_path: Path,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    from transformers import AutoModelForCausalLM

    path = make_tiny_student(tmp_path / "run")
    config = load_config(REPO_ROOT / "config" / "offline.json")
    settings = make_settings(tmp_path, path, 4)
    first = run_evaluation(settings, config, teacher=None)
    # "runTraining.sh --force": other weights, same folder, same tokenizer and config.
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.1)
    model.save_pretrained(path)
    capsys.readouterr()
    second = run_evaluation(settings, config, teacher=None)
    assert second["calls_this_run"]["generated"] == 4 and second["fingerprint"] != first["fingerprint"]
    assert second["fingerprint"] == checkpoint_fingerprint(path) and second["adapter"] == first["adapter"]
    assert "starting over" in capsys.readouterr().out
    saved = json.loads(Path(settings.checkpoint_path).read_text(encoding="utf-8"))
    assert saved["fingerprint"] == second["fingerprint"]


def without_key(node: Any, key: str) -> Any:
    """A JSON value with every `key` of its objects taken away."""
    if isinstance(node, dict):
        return {k: without_key(v, key) for k, v in node.items() if k != key}
    return [without_key(v, key) for v in node] if isinstance(node, list) else node


def test_constrained_evaluation_of_an_untrained_student_is_valid_whenever_it_finishes(tmp_path: Path,
                                                                                      tiny_student: str) -> None:
    # Sampled, not greedy: greedily, a random student writes its first free string until max_new_tokens (the
    # grammar leaves maxLength to validation), so no row would finish.
    settings = make_settings(tmp_path, tiny_student, 12, max_new_tokens=160, temperature=1.0)
    torch.manual_seed(0)
    summary = run_evaluation(settings, load_config(REPO_ROOT / "config" / "offline.json"), teacher=None)
    overall = summary["overall"]
    records = read_jsonl(settings.eval_results)
    # The grammar holds everything but a free string's maxLength (checked by validation), so a finished output
    # is valid unless a random string ran past it: such an output is valid once maxLength is taken away.
    no_max_length = without_key(read_jsonl(settings.final_schemas)[0]["schema"], "maxLength")
    too_long = sum(1 for r in records if r["parsed"] and not r["schema_valid"]
                   and dsl.validation_error(no_max_length, r["student_ast"]) is None)
    assert overall["parsed_rate"] == pytest.approx(1.0 - overall["truncated_rate"])
    assert overall["schema_valid_rate"] == pytest.approx(overall["parsed_rate"] - too_long / 12)
    assert overall["schema_valid_rate"] > 0
    assert summary["teacher"]["backend"] is None
    # Every answer carries the student's probability of it; with no calibration.json beside the weights it is raw.
    confidence = summary["confidence"]
    assert confidence["calibrated"] is False and confidence["rows"] == overall["n"] == 12
    assert sum(band["rows"] for band in confidence["bands"]) == 12
    assert all(r["answer_logprob"] <= 0.0 for r in read_jsonl(settings.eval_results))  # a log-probability


def test_baseline_evaluates_the_base_model_a_lora_adapter_names(tmp_path: Path) -> None:
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    base = make_tiny_lora_base(tmp_path)
    lora = get_peft_model(AutoModelForCausalLM.from_pretrained(base),
                          LoraConfig(r=2, lora_alpha=4, target_modules=["q_proj", "v_proj"]))
    adapter = str(tmp_path / "adapter")
    lora.save_pretrained(adapter)
    assert baseline_of(adapter) == base
    settings = make_settings(tmp_path, adapter, 3, baseline=True)
    summary = run_evaluation(settings, load_config(REPO_ROOT / "config" / "offline.json"), teacher=None)
    assert summary["baseline"] is True and summary["model_path"] == base and summary["n"] == 3
    adapted = make_settings(tmp_path, adapter, 3)  # the adapter itself, into the same folder: starts over
    summary = run_evaluation(adapted, load_config(REPO_ROOT / "config" / "offline.json"), teacher=None)
    assert summary["baseline"] is False and summary["model_path"] == adapter
    assert summary["calls_this_run"]["generated"] == 3


# --- CLI ----------------------------------------------------------------------------------------------


def load_script(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_cli(argv: list[str]) -> int:
    script = load_script("evaluate_student")
    return cli.run(script.main, script.build_parser(), argv)


def test_baseline_of_a_scratch_student_is_refused_in_one_line(tmp_path: Path, tiny_student: str,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path, tiny_student, 2)
    code = run_cli(["--adapter", tiny_student, "--baseline", "--dataset", settings.dataset,
                    "--schemas", settings.final_schemas, "--out-dir", settings.out_dir])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "no base model" in err
    assert not Path(settings.eval_results).exists()


def test_no_adapter_and_a_bad_adapter_dir_are_one_line_errors(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(["--out-dir", str(tmp_path)]) == 2
    assert "--adapter" in capsys.readouterr().err
    settings = make_settings(tmp_path, str(tmp_path), 2)
    empty = tmp_path / "not_a_checkpoint"
    empty.mkdir()
    code = run_cli(["--adapter", str(empty), "--dataset", settings.dataset, "--schemas", settings.final_schemas,
                    "--out-dir", settings.out_dir])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and "adapter_config.json" in err


def test_cli_evaluates_with_the_built_in_teacher_and_prints_the_table(tmp_path: Path, tiny_student: str,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    settings = make_settings(tmp_path, tiny_student, 6)
    code = run_cli(["--config", str(REPO_ROOT / "config" / "offline.json"), "--adapter", tiny_student,
                    "--dataset", settings.dataset, "--schemas", settings.final_schemas, "--out-dir", settings.out_dir,
                    "--max-new-tokens", "24", "--batch-size", "3", "--max-samples", "4", "--device", "cpu"])
    out = capsys.readouterr().out
    assert code == 0 and "overall" in out and "samples/s" in out
    summary = json.loads(Path(settings.summary_path).read_text(encoding="utf-8"))
    assert summary["n"] == 4 and summary["teacher"]["backend"] == "grammar"
    records = read_jsonl(settings.eval_results)
    assert all(isinstance(r["teacher_verdict"], bool) for r in records)


@pytest.mark.slow
def test_run_evals_sh_evaluates_constrained_and_free_then_resumes(tmp_path: Path, tiny_student: str) -> None:
    import os
    import subprocess

    settings = make_settings(tmp_path, tiny_student, 4)
    config = tmp_path / "config.json"
    out = tmp_path / "eval"
    config.write_text(json.dumps({
        "teacher": {"backend": "grammar"},
        "training": {"output_dir": str(tmp_path / "run")},
        "evaluation": {"dataset": settings.dataset, "final_schemas": settings.final_schemas, "adapter": tiny_student,
                       "out_dir": str(out), "max_new_tokens": 24, "batch_size": 4},
        "alignment": {"output_dir": str(tmp_path / "no-dpo-run")},
        "reporting": {"out_dir": str(tmp_path / "report")},
    }), encoding="utf-8")
    env = {**os.environ, "AST_DISTILL_ENV_READY": "1", "CUDA_VISIBLE_DEVICES": ""}
    argv = [str(REPO_ROOT / "runEvals.sh"), "--config", str(config), "--device", "cpu"]
    done = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    constrained = json.loads((out / "evaluation_summary.json").read_text(encoding="utf-8"))
    free = json.loads((out / "unconstrained" / "evaluation_summary.json").read_text(encoding="utf-8"))
    assert constrained["constrained"] is True and free["constrained"] is False
    assert constrained["n"] == free["n"] == 4
    assert not (tmp_path / "eval-dpo").exists()
    again = subprocess.run(argv, check=False, capture_output=True, text=True, timeout=600, cwd=REPO_ROOT, env=env)
    assert again.returncode == 0 and "0 to go" in again.stdout
