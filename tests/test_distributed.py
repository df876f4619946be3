"""SFT and DPO launched by torchrun in 2 CPU processes (gloo): one set of artifacts, replicas in sync, the loss falls
(the reward margin grows), each process trains on its own share of the rows, and a resumed launch goes on from the
checkpoint. The scripts are the ones a single process runs; only the launcher differs."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import make_tiny_corpus, write_tiny_schemas
from test_dpo import dpo_args, make_sft_adapter, margins, write_pairs
from test_training import TINY_TRAINING

from ast_distill.config import REPO_ROOT
from ast_distill.jsonl import read_jsonl, write_jsonl_atomic

pytestmark = pytest.mark.slow
PROCESSES = 2


def write_config(tmp_path: Path, **training) -> Path:
    corpus = tmp_path / "d04.jsonl"
    write_jsonl_atomic(corpus, make_tiny_corpus(48))
    write_tiny_schemas(tmp_path / "d02.jsonl")
    config = {"training": {**TINY_TRAINING, "training_corpus": str(corpus), "output_dir": str(tmp_path / "run"),
                           "group_by_length": False, **training},
              "dataset_generation": {"final_schemas_out": str(tmp_path / "d02.jsonl")}}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def torchrun(script: str, *arguments: str, cwd: Path = REPO_ROOT) -> subprocess.CompletedProcess[str]:
    """scripts/<script> under torchrun, as a user launches it (README: scale-out)."""
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={PROCESSES}",
               str(REPO_ROOT / "scripts" / script), *arguments]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, cwd=cwd, env=env, check=False)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:") or "Error" in line]
    assert result.returncode == 0, "\n".join(errors[-20:]) or result.stderr[-4000:]
    return result


def loss_steps(metrics: Path) -> list[int]:
    return [r["step"] for r in read_jsonl(metrics) if "loss" in r]


def test_sft_in_two_processes_writes_once_keeps_replicas_in_sync_learns_and_resumes(tmp_path: Path) -> None:
    config = write_config(tmp_path, max_steps=8, save_steps=4, eval_steps=4, logging_steps=1, sample_generations=1,
                          learning_rate=3e-3)
    first = torchrun("train_student.py", "--config", str(config))
    run = tmp_path / "run"

    assert first.stdout.count("== train_student: resolved settings") == 1  # the other process prints nothing
    run_config = json.loads((run / "run_config.json").read_text())
    assert run_config["status"] == "complete" and run_config["final_step"] == 8
    fingerprints = run_config["distributed"]["replica_fingerprints"]
    assert run_config["distributed"]["processes"] == PROCESSES and len(fingerprints) == PROCESSES
    assert len(set(fingerprints)) == 1  # each process hashed its own weights: the same

    records = read_jsonl(run / "training_metrics.jsonl")
    assert loss_steps(run / "training_metrics.jsonl") == list(range(1, 9))  # every step logged once, not twice
    assert [r["step"] for r in records if "samples" in r] == [4, 8]  # sample generations by one process
    losses = [r["loss"] for r in records if "loss" in r]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    # Data parallel: each step took batch_size rows in each process, so 8 steps went twice as far through the rows.
    train_rows = run_config["counts"]["train_rows"]
    last_epoch = [r["epoch"] for r in records if "loss" in r][-1]
    assert last_epoch == pytest.approx(8 * TINY_TRAINING["batch_size"] * PROCESSES / train_rows, rel=0.15)
    assert (run / "checkpoint-final" / "model.safetensors").is_file()
    assert sorted(p.name for p in (run / "checkpoint-4").glob("rng_state*.pth")) == ["rng_state_0.pth",
                                                                                     "rng_state_1.pth"]

    torchrun("train_student.py", "--config", str(config), "--resume-from-checkpoint", "auto", "--max-steps", "12")
    resumed = json.loads((run / "run_config.json").read_text())
    assert resumed["resumed_from"].endswith("checkpoint-8") and resumed["final_step"] == 12
    assert len(set(resumed["distributed"]["replica_fingerprints"])) == 1
    assert loss_steps(run / "training_metrics.jsonl") == list(range(1, 13))  # trimmed to step 8, then 9-12 once


def test_dpo_on_a_lora_start_in_two_processes_merges_once_writes_once_and_grows_the_margin(tmp_path: Path) -> None:
    _base, adapter = make_sft_adapter(tmp_path)
    pairs = write_pairs(tmp_path / "pairs.jsonl", n=16)
    out = tmp_path / "dpo"
    result = torchrun("train_alignment_dpo.py", *dpo_args(pairs, adapter, out, "--base-model", "scratch",
                                                         "--lora-r", "4", "--lora-alpha", "8", "--lora-dropout", "0.0",
                                                         "--learning-rate", "0.01", "--batch-size", "2",
                                                         "--save-steps", "3", "--max-minutes", "0"))

    assert result.stdout.count("== train_alignment_dpo: resolved settings") == 1
    run_config = json.loads((out / "run_config.json").read_text())
    assert run_config["status"] == "complete" and run_config["final_step"] == 6
    assert run_config["distributed"]["processes"] == PROCESSES
    assert len(set(run_config["distributed"]["replica_fingerprints"])) == 1
    assert sorted(p.name for p in out.iterdir() if p.name.startswith("sft-merged")) == ["sft-merged"]  # merged once
    for checkpoint in ("checkpoint-3", "checkpoint-final"):  # every adapter points at the merged base
        adapter_config = json.loads((out / checkpoint / "adapter_config.json").read_text())
        assert adapter_config["base_model_name_or_path"] == "../sft-merged"
    logged = margins(out)
    assert len(logged) == 6 and logged[-1] > logged[0]  # one log per step, by one process
