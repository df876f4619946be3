"""runAll.sh end to end on a tiny offline config: every stage runs, resumes, and fails loudly."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from ast_distill.config import REPO_ROOT


def _tiny_config(tmp: Path) -> Path:
    out = tmp / "out"
    config = json.loads((REPO_ROOT / "config" / "offline.json").read_text())
    config["dataset_generation"].update({
        "max_domains": 6, "schemas_per_domain": 1, "samples_per_schema": 24, "heldout_schema_fraction": 0.2,
        "val_fraction": 0.1, "pref_fraction": 0.25, "test_fraction": 0.15,
        "schema_specs_out": f"{out}/d_01.jsonl", "final_schemas_out": f"{out}/d_02.jsonl",
        "dataset_out": f"{out}/d_03.jsonl", "training_corpus_out": f"{out}/d_04.jsonl",
        "test_set_out": f"{out}/d_05.jsonl", "pretty_dir": f"{out}/pretty"})
    config["training"].update({
        "training_corpus": f"{out}/d_04.jsonl", "output_dir": f"{out}/sft", "max_steps": 6, "warmup_steps": 1,
        "batch_size": 8, "eval_steps": 3, "save_steps": 3, "logging_steps": 1, "sample_generations": 1,
        "scratch_hidden_size": 32, "scratch_num_layers": 2, "scratch_num_heads": 2, "scratch_num_kv_heads": 1,
        "scratch_head_dim": 16, "scratch_intermediate_size": 64, "scratch_vocab_size": 400})
    config["evaluation"].update({
        "dataset": f"{out}/d_05.jsonl", "final_schemas": f"{out}/d_02.jsonl", "adapter": f"{out}/sft",
        "out_dir": f"{out}/eval", "max_samples": 8, "max_new_tokens": 48, "batch_size": 8})
    config["alignment"].update({
        "eval_results": f"{out}/align/pref_eval/evaluation_results.jsonl",
        "eval_summary": f"{out}/align/pref_eval/evaluation_summary.json", "pairs_out": f"{out}/align/pairs.jsonl",
        "adapter": f"{out}/sft", "output_dir": f"{out}/dpo", "pref_max_samples": 8,
        "max_steps": 2, "save_steps": 1, "logging_steps": 1, "warmup_steps": 0, "batch_size": 2,
        # a 400-token BPE spends ~520 tokens on a prompt (offline.json's 512 fits its own tokenizer, not this one)
        "max_seq_length": 768})
    config["boost"] = {"rows_out": f"{out}/align/boost_rows.jsonl", "corpus_out": f"{out}/align/boost_corpus.jsonl",
                       "output_dir": f"{out}/boost", "max_steps": 2, "warmup_steps": 0, "rows_per_failure": 2}
    config["reporting"]["out_dir"] = f"{out}/reports"
    config["sweep"] = {"max_samples": 6}
    path = tmp / "tiny.json"
    path.write_text(json.dumps(config))
    return path


def _run_all(config: Path, tmp: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, RUNALL_LOG_DIR=str(tmp / "logs"), CUDA_VISIBLE_DEVICES="")
    return subprocess.run(["bash", str(REPO_ROOT / "runAll.sh"), "--config", str(config), *extra],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=900)


@pytest.mark.slow
def test_runall_offline_runs_every_stage_then_resumes_with_nothing_left_to_do(tmp_path: Path) -> None:
    config = _tiny_config(tmp_path)
    done = _run_all(config, tmp_path, "--with-training", "--with-evals", "--with-alignment")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    out = tmp_path / "out"
    for name in ("d_01.jsonl", "d_02.jsonl", "d_03.jsonl", "d_04.jsonl", "d_05.jsonl"):
        assert (out / name).stat().st_size > 0
    assert (out / "sft" / "checkpoint-final").is_dir()
    for run in ("sft", "dpo", "boost"):  # each training is swept; later stages use its checkpoint-best
        sweep = json.loads((out / run / "checkpoint_sweep.json").read_text())
        assert len(sweep["ranking"]) >= 2 and all(c["n"] == 6 for c in sweep["ranking"])
        assert (out / run / "checkpoint-best" / "selected.json").is_file()
    summary = json.loads((out / "eval" / "evaluation_summary.json").read_text())
    assert summary["overall"]["n"] == 8 and summary["adapter"] == str(out / "sft" / "checkpoint-best")
    dpo_summary = json.loads((out / "eval-dpo" / "evaluation_summary.json").read_text())
    assert dpo_summary["adapter"] == str(out / "dpo" / "checkpoint-best")
    # the boost: rows aimed at the pref failures, SFT on from the SFT student, evaluated on the same d_05 rows
    boost_rows = [json.loads(line) for line in (out / "align" / "boost_rows.jsonl").read_text().splitlines()]
    assert boost_rows and all(row["is_valid"] and row["boost_targets"] for row in boost_rows)
    boost_run = json.loads((out / "boost" / "run_config.json").read_text())
    assert boost_run["start_from"] == str(out / "sft" / "checkpoint-best")
    boost_summary = json.loads((out / "eval-boost" / "evaluation_summary.json").read_text())
    assert boost_summary["overall"]["n"] == 8 and boost_summary["adapter"] == str(out / "boost" / "checkpoint-best")
    # the gate judged the student alignment kept, and the report shows all three
    aligned = json.loads((out / "align" / "aligned.json").read_text())
    assert aligned["method"] in ("sft", "dpo", "boost") and set(aligned["val"]) == {"sft", "dpo", "boost"}
    assert f"checks on {aligned['eval_summary']}" in done.stdout
    assert "SFT, DPO and boost side by side" in (out / "reports" / "alignment_report.md").read_text()
    assert (out / "reports" / "report.md").is_file()
    for stage in ("dataset", "training", "evaluation", "alignment"):
        assert (tmp_path / "logs" / f"{stage}.log").stat().st_size > 0
    rows_before = (out / "d_03.jsonl").read_bytes()
    again = _run_all(config, tmp_path, "--with-training", "--with-evals")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert (out / "d_03.jsonl").read_bytes() == rows_before  # resumed: nothing regenerated or duplicated


def test_runall_names_a_bad_flag_and_a_missing_config_in_one_line(tmp_path: Path) -> None:
    bad_flag = _run_all(tmp_path / "none.json", tmp_path, "--with-everything")
    assert bad_flag.returncode == 2 and "unknown flag '--with-everything'" in bad_flag.stderr
    missing = _run_all(tmp_path / "none.json", tmp_path)
    assert missing.returncode == 2 and "does not exist" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1


def test_runall_stops_in_one_line_when_the_ollama_teacher_is_unreachable(tmp_path: Path) -> None:
    from ast_distill.testing.fake_ollama import free_port

    config = tmp_path / "ollama.json"
    config.write_text(json.dumps({"teacher": {"backend": "ollama", "host": f"http://127.0.0.1:{free_port()}",
                                              "timeout_s": 2.0}}))
    done = _run_all(config, tmp_path, "--with-training")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "ollama serve" in done.stderr and "config/offline.json" in done.stderr
    assert not (tmp_path / "logs" / "dataset.log").exists()  # no stage started


def _run_alignment(tmp: Path, *flags: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AST_DISTILL_ENV_READY="1", CUDA_VISIBLE_DEVICES="")
    return subprocess.run(["bash", str(REPO_ROOT / "runAlignment.sh"), *flags], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=600)


def test_run_alignment_documents_no_resume_and_refuses_a_path_it_chooses_in_one_line(tmp_path: Path) -> None:
    shown = _run_alignment(tmp_path, "--help")
    assert shown.returncode == 0 and "--no-resume" in shown.stdout and "forwarded" in shown.stdout
    refused = _run_alignment(tmp_path, "--no-resume", "--eval-results", str(tmp_path / "x.jsonl"))
    assert refused.returncode == 2 and len(refused.stderr.strip().splitlines()) == 1
    assert "--eval-results is chosen by the runner" in refused.stderr


@pytest.mark.slow  # imports torch in a subprocess to parse the forwarded flags
def test_run_alignment_checks_forwarded_flags_before_any_step_in_one_line(tmp_path: Path) -> None:
    done = _run_alignment(tmp_path, "--config", str(REPO_ROOT / "config" / "offline.json"), "--no-resume",
                          "--max-new-tokens", "many")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "--max-new-tokens" in done.stderr and "evaluate_student.py" in done.stderr
    assert "[alignment 1/6]" not in done.stdout


TODO_SCHEMA = {"title": "TodoItem", "description": "One item of a to-do list", "type": "object",
               "required": ["title", "priority"], "additionalProperties": False,
               "properties": {"title": {"type": "string", "maxLength": 24},
                              "priority": {"enum": ["low", "normal", "urgent"]},
                              "due": {"type": "string", "format": "date"},
                              "done": {"type": "boolean"}}}


@pytest.mark.slow
def test_runall_trains_a_named_user_schema_end_to_end_inside_its_own_folder(tmp_path: Path) -> None:
    tiny = json.loads(_tiny_config(tmp_path).read_text())
    config = {"teacher": {"backend": "grammar"},
              "dataset_generation": {"samples_per_user_schema": 60, "val_fraction": 0.1, "pref_fraction": 0.1,
                                     "test_fraction": 0.15},
              "training": {**{k: v for k, v in tiny["training"].items() if k != "training_corpus"},
                           "output_dir": "outputs/student_runs/tiny"},  # an outputs/ path: moved under the name
              "evaluation": {"adapter": "outputs/student_runs/tiny", "out_dir": "outputs/student_runs/tiny-eval",
                             "max_samples": 8, "max_new_tokens": 48, "batch_size": 8}, "sweep": {"max_samples": 6}}
    path, schema = tmp_path / "named.json", tmp_path / "todo.schema.json"
    path.write_text(json.dumps(config))
    schema.write_text(json.dumps(TODO_SCHEMA))
    root = tmp_path / "trainings"
    env = dict(os.environ, AST_DISTILL_TRAININGS_ROOT=str(root), CUDA_VISIBLE_DEVICES="")
    done = subprocess.run(["bash", str(REPO_ROOT / "runAll.sh"), "--name", "todo", "--schema", str(schema),
                           "--config", str(path), "--with-training", "--with-evals"], cwd=REPO_ROOT, env=env,
                          capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    folder = root / "todo"
    assert [p.name for p in root.iterdir()] == ["todo"]  # everything of the training is in its folder
    for name in ("config.json", "schemas/todo.schema.json", "d_02_final_schemas.jsonl", "d_05_test_set.jsonl",
                 "logs/training.log", "logs/evaluation.log"):
        assert (folder / name).is_file(), name
    rows = [json.loads(line) for line in (folder / "d_03_dataset.jsonl").read_text().splitlines()]
    assert len(rows) == 60 and all(r["is_valid"] for r in rows)
    summary = json.loads((folder / "student_runs" / "tiny-eval" / "evaluation_summary.json").read_text())
    test_rows = (folder / "d_05_test_set.jsonl").read_text().count("\n")
    assert test_rows >= 1 and summary["overall"]["n"] == min(8, test_rows)
    assert summary["adapter"] == str(folder / "student_runs/tiny/checkpoint-best")
    assert any(folder.rglob("report.md"))
    listed = subprocess.run([sys.executable, "-m", "ast_distill.trainings", "list"], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout.startswith(f"todo: schema {folder / 'schemas'}")
    assert f"on {min(8, test_rows)} test rows" in listed.stdout
    answered = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "predict.py"), "--name", "todo",
                               "--query", "urgent: pay the rent", "--max-new-tokens", "96"], cwd=REPO_ROOT, env=env,
                              capture_output=True, text=True, timeout=300)
    assert answered.returncode == 0, answered.stderr[-2000:]
    from ast_distill import dsl

    answer = json.loads(answered.stdout.strip().splitlines()[-1])  # a tiny student: valid, or cut by the budget
    assert dsl.validator_for(dsl.with_refusal(TODO_SCHEMA)).is_valid(answer) or (
        answer is None and "truncated" in answered.stderr), (answer, answered.stderr[-500:])
