"""Run dirs (runs.py): one rule for "latest checkpoint" and "final checkpoint complete", asked by Python and
by the bash runners alike."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from ast_distill import runs
from ast_distill.config import REPO_ROOT


def make_checkpoint(run_dir: Path, step: int, *, state: bool = True) -> Path:
    folder = run_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    if state:
        (folder / runs.TRAINER_STATE).write_text("{}", encoding="utf-8")
    return folder


def make_final(run_dir: Path, files: tuple[str, ...]) -> Path:
    final = run_dir / runs.FINAL_DIR
    final.mkdir(parents=True)
    for name in files:
        (final / name).write_text("{}", encoding="utf-8")
    return final


def test_latest_checkpoint_is_the_highest_step_the_trainer_can_resume(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, 9)
    make_checkpoint(tmp_path, 10)
    make_checkpoint(tmp_path, 200, state=False)  # interrupted while saving: no trainer_state.json
    (tmp_path / "checkpoint-final").mkdir()
    assert runs.latest_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")  # numeric, not text, order
    assert runs.latest_checkpoint(tmp_path / "missing") is None


def test_final_checkpoint_needs_weights_config_and_tokenizer(tmp_path: Path) -> None:
    complete = make_final(tmp_path / "a", ("adapter_model.safetensors", "adapter_config.json", "tokenizer_config.json"))
    no_config = make_final(tmp_path / "b", ("model.safetensors", "tokenizer_config.json"))
    no_tokenizer = make_final(tmp_path / "c", ("model.safetensors", "config.json"))
    assert runs.final_checkpoint_complete(complete)
    assert not runs.final_checkpoint_complete(no_config)
    assert not runs.final_checkpoint_complete(no_tokenizer)


def runner_answer(function: str, run_dir: Path) -> subprocess.CompletedProcess[str]:
    script = f'source scripts/runner_common.sh; {function} "$1"'
    return subprocess.run(["bash", "-c", script, "runner", str(run_dir)], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=120)


def test_bash_runners_ask_the_same_rules(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, 3)
    make_checkpoint(tmp_path, 40, state=False)
    assert runner_answer("latest_checkpoint", tmp_path).stdout.strip() == str(tmp_path / "checkpoint-3")
    assert runner_answer("final_complete", tmp_path).returncode == 1
    make_final(tmp_path, ("model.safetensors", "config.json", "tokenizer_config.json"))
    assert runner_answer("final_complete", tmp_path).returncode == 0
    assert runner_answer("latest_checkpoint", tmp_path / "none").stdout.strip() == ""


def test_a_run_trained_from_weights_the_start_no_longer_has_is_forgotten_checkpoints_and_sweep_only(
        tmp_path: Path) -> None:
    from ast_distill.fingerprint import checkpoint_fingerprint

    start = make_final(tmp_path / "sft", ("model.safetensors", "config.json", "tokenizer_config.json"))
    run = tmp_path / "dpo"
    make_checkpoint(run, 20)
    make_final(run, ("model.safetensors", "config.json", "tokenizer_config.json"))
    (run / runs.SWEEP_FILE).write_text("{}", encoding="utf-8")
    (run / runs.METRICS_FILE).write_text("", encoding="utf-8")
    (run / runs.RUN_CONFIG_FILE).write_text(json.dumps({runs.START_FINGERPRINT: checkpoint_fingerprint(start)}))
    assert not runs.trained_from_other_weights(run, start)
    assert not runs.trained_from_other_weights(tmp_path / "no-run-yet", start)
    ask = [sys.executable, "-m", "ast_distill.runs", "stale", str(run), str(start)]
    assert subprocess.run(ask, capture_output=True, text=True, timeout=120).returncode == 1
    (start / "model.safetensors").write_text('{"retrained": true}', encoding="utf-8")  # SFT trained again
    assert runs.trained_from_other_weights(run, start)
    done = subprocess.run(ask, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["checkpoint-20", "checkpoint-final", runs.SWEEP_FILE]
    assert sorted(p.name for p in run.iterdir()) == [runs.RUN_CONFIG_FILE, runs.METRICS_FILE]


def test_an_sft_run_trained_on_rows_the_corpus_no_longer_holds_is_forgotten(tmp_path: Path) -> None:
    from ast_distill.fingerprint import file_digest

    corpus = tmp_path / "d_04.jsonl"
    corpus.write_text('{"id": "a"}\n', encoding="utf-8")
    run = tmp_path / "sft"
    make_checkpoint(run, 10)
    make_final(run, ("model.safetensors", "config.json", "tokenizer_config.json"))
    (run / runs.RUN_CONFIG_FILE).write_text(json.dumps({runs.CORPUS_FINGERPRINT: file_digest(corpus)}))
    ask = [sys.executable, "-m", "ast_distill.runs", "stale", str(run), "--corpus", str(corpus)]
    assert not runs.trained_on_other_rows(run, corpus)
    assert subprocess.run(ask, capture_output=True, text=True, timeout=120).returncode == 1
    corpus.write_text('{"id": "b"}\n', encoding="utf-8")  # the dataset was made again (another schema)
    assert runs.trained_on_other_rows(run, corpus)
    done = subprocess.run(ask, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.split() == ["checkpoint-10", "checkpoint-final"]


def test_resume_metrics_log_drops_records_after_the_checkpoint(tmp_path: Path) -> None:
    log = runs.open_metrics_log(tmp_path, None)
    for step in (1, 2, 3, 4):
        log.write({"step": step, "loss": 1.0 / step})
    log.close()
    resumed = runs.open_metrics_log(tmp_path, str(tmp_path / "checkpoint-2"))
    resumed.close()
    steps = [line for line in (tmp_path / runs.METRICS_FILE).read_text(encoding="utf-8").splitlines() if line]
    assert [json.loads(line)["step"] for line in steps] == [1, 2]


def test_stage_modules_and_script_parsers_load_without_torch() -> None:
    """The runners ask runs.py and check forwarded flags with the scripts' own parsers: torch loads only when a
    stage runs (it costs seconds on every runner call otherwise)."""
    code = (
        "import importlib.util, pathlib, sys\n"
        "import ast_distill.runs, ast_distill.training, ast_distill.alignment, ast_distill.evaluation\n"
        "for path in sorted(pathlib.Path('scripts').glob('*.py')):\n"
        "    spec = importlib.util.spec_from_file_location(path.stem, path)\n"
        "    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "    module.build_parser()\n"
        "print(sorted(m for m in ('torch', 'transformers', 'trl', 'peft', 'xgrammar') if m in sys.modules))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300,
                          check=True)
    assert done.stdout.strip() == "[]"
