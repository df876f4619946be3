"""The checkpoint sweep (issue 17): every saved checkpoint scored on val rows, the best copied to checkpoint-best,
and the stages given a run dir use it; a new training forgets the old choice; truncated outputs get a retry."""
from __future__ import annotations

import shutil
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import torch
from helpers import make_memorizing_student, make_tiny_corpus, make_tiny_student, write_tiny_schemas

from ast_distill import runs
from ast_distill.config import REPO_ROOT, load_config
from ast_distill.errors import UserError
from ast_distill.evaluation import EvalSettings, run_evaluation
from ast_distill.fingerprint import checkpoint_fingerprint
from ast_distill.jsonl import JsonlAppender, read_json, read_jsonl, write_json_atomic, write_jsonl_atomic
from ast_distill.predict import predict
from ast_distill.sweep import SWEEP_DIR, run_sweep

torch.set_num_threads(1)
pytestmark = pytest.mark.slow  # a student is trained to remember the val rows (~20 s)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    """d_02 + d_04 files, a student that writes the val rows' gold ASTs, and an untrained one."""
    root = tmp_path_factory.mktemp("sweep")
    rows = make_tiny_corpus(30)  # every 5th row is val: 6 rows, one of each shape
    write_jsonl_atomic(root / "d04.jsonl", rows)
    schema = write_tiny_schemas(root / "d02.jsonl")["schema"]
    val = [r for r in rows if r["split"] == "val"]
    return SimpleNamespace(root=root, val=val, schema=schema, good=make_memorizing_student(root, val),
                           bad=make_tiny_student(root / "bad"))


def add_checkpoint(run: Path, name: str, source: str, step: int) -> Path:
    """A checkpoint as the trainer leaves it: weights + tokenizer, its state, optimizer and RNG files."""
    folder = run / name
    shutil.copytree(source, folder)
    if name != runs.FINAL_DIR:
        write_json_atomic(folder / runs.TRAINER_STATE, {"global_step": step})
        (folder / "optimizer.pt").write_bytes(b"\0" * 64)
        (folder / "rng_state.pth").write_bytes(b"\0" * 8)
    return folder


def make_run(trained: SimpleNamespace, run: Path) -> Path:
    """A run whose step-10 checkpoint remembers the val rows and whose later ones (and the final) do not, while
    the logged eval_loss keeps falling: the case where the last or lowest-loss checkpoint is the wrong pick."""
    add_checkpoint(run, "checkpoint-10", trained.good, 10)
    add_checkpoint(run, "checkpoint-15", trained.bad, 15)
    add_checkpoint(run, "checkpoint-20", trained.bad, 20)
    add_checkpoint(run, runs.FINAL_DIR, trained.bad, 20)
    write_json_atomic(run / runs.RUN_CONFIG_FILE, {"stage": "sft", "status": "complete", "final_step": 20})
    with JsonlAppender(run / runs.METRICS_FILE) as log:
        for step, loss in ((10, 0.9), (15, 0.6), (20, 0.5)):
            log.write({"step": step, "eval_loss": loss})
    return run


def sweep_config(trained: SimpleNamespace) -> tuple[dict[str, Any], dict[str, Any]]:
    config = load_config(REPO_ROOT / "config" / "offline.json")
    config["evaluation"].update(final_schemas=str(trained.root / "d02.jsonl"), max_new_tokens=96, batch_size=8,
                                truncation_retry=1.0)
    return config, {"enabled": True, "dataset": str(trained.root / "d04.jsonl"), "max_samples": None, "top_k": None}


@pytest.fixture(scope="module")
def swept(trained: SimpleNamespace, tmp_path_factory: pytest.TempPathFactory) -> SimpleNamespace:
    run = make_run(trained, tmp_path_factory.mktemp("swept") / "sft")
    config, sweep = sweep_config(trained)
    return SimpleNamespace(run=run, config=config, sweep=sweep, record=run_sweep(run, config, sweep, teacher=None))


def test_the_sweep_selects_an_earlier_checkpoint_that_scores_higher_than_the_last(swept: SimpleNamespace,
                                                                                  trained: SimpleNamespace) -> None:
    record, run = swept.record, swept.run
    assert record["selected"] == "checkpoint-10"  # not the last step, not the lowest eval_loss
    best, *rest = record["ranking"]
    assert best["name"] == "checkpoint-10" and best["semantic_pass_rate"] == 1.0 and best["n"] == 6
    assert all(c["semantic_pass_rate"] < 0.5 for c in rest)
    assert [c["name"] for c in rest] == ["checkpoint-20", runs.FINAL_DIR, "checkpoint-15"]  # then eval_loss, step
    copy = run / runs.BEST_DIR
    assert checkpoint_fingerprint(copy) == checkpoint_fingerprint(run / "checkpoint-10")
    assert not (copy / "optimizer.pt").exists() and not (copy / "rng_state.pth").exists()
    assert read_json(copy / runs.SELECTION_FILE)["source"] == "checkpoint-10"
    assert read_json(run / runs.SWEEP_FILE)["selected"] == "checkpoint-10"
    # val rows only, and one evaluation per distinct weights (checkpoint-15, -20 and the final are one model)
    assert sorted(p.name for p in (run / SWEEP_DIR).iterdir()) == ["checkpoint-10", "checkpoint-15"]
    scored = {r["id"] for r in read_jsonl(run / SWEEP_DIR / "checkpoint-10" / "evaluation_results.jsonl")}
    assert scored == {r["id"] for r in trained.val}


def test_evaluation_predict_and_the_runners_given_the_run_dir_use_the_selected_checkpoint(
        swept: SimpleNamespace, trained: SimpleNamespace, tmp_path: Path) -> None:
    run = swept.run
    assert runs.resolve_checkpoint(str(run)) == str(run / runs.BEST_DIR)
    assert runs.resolve_checkpoint(str(run / runs.FINAL_DIR)) == str(run / runs.FINAL_DIR)  # a checkpoint as given
    values = {k: v for k, v in swept.config["evaluation"].items() if k not in ("out_dir", "teacher_model")}
    values.update(adapter=str(run), dataset=str(trained.root / "d04.jsonl"))
    out = tmp_path / "eval"
    summary = run_evaluation(EvalSettings(**values, out_dir=str(out), split="val",
                                          eval_results=str(out / "r.jsonl"), checkpoint_path=str(out / "c.json")),
                             swept.config, teacher=None)
    assert summary["adapter"] == str(run / runs.BEST_DIR) and summary["overall"]["semantic_match_rate"] == 1.0
    row = trained.val[0]
    assert predict(str(run), trained.schema, [row["query"]], max_new_tokens=96)[0]["ast"] == row["ast"]
    assert runs.main(["selected", str(run)]) == 0


def test_a_rerun_of_the_sweep_generates_nothing_and_top_k_deletes_the_other_checkpoints(
        trained: SimpleNamespace, tmp_path: Path) -> None:
    run = make_run(trained, tmp_path / "sft")
    config, sweep = sweep_config(trained)
    run_sweep(run, config, sweep, teacher=None)
    again = run_sweep(run, config, {**sweep, "top_k": 1}, teacher=None)
    for name in ("checkpoint-10", "checkpoint-15"):
        assert read_json(run / SWEEP_DIR / name / "evaluation_summary.json")["calls_this_run"]["generated"] == 0
    assert again["selected"] == "checkpoint-10" and again["pruned"] == ["checkpoint-15"]
    # the best is kept, and the newest, which training resumes from
    assert sorted(p.name for p in run.glob("checkpoint-*")) == ["checkpoint-10", "checkpoint-20", runs.BEST_DIR,
                                                               runs.FINAL_DIR]
    assert runs.latest_checkpoint(run) == str(run / "checkpoint-20")


def test_a_new_training_in_the_run_dir_forgets_the_old_selection_before_it_starts(
        swept: SimpleNamespace, trained: SimpleNamespace, tmp_path: Path) -> None:
    run = tmp_path / "sft"
    shutil.copytree(swept.run, run)
    seen_during_training = []

    class Trainer:  # what train_and_save asks of TRL's trainer
        state = SimpleNamespace(global_step=3)
        model = torch.nn.Linear(2, 2)  # the weights it trained (train_and_save fingerprints them)

        def train(self, resume_from_checkpoint: str | None = None) -> Any:
            seen_during_training.append((run / runs.BEST_DIR).exists() or (run / runs.SWEEP_FILE).exists())
            return SimpleNamespace(training_loss=1.0)

        def save_model(self, path: str) -> None:
            shutil.copytree(trained.bad, path, dirs_exist_ok=True)

    tokenizer = SimpleNamespace(save_pretrained=lambda path: None)
    runs.train_and_save(Trainer(), tokenizer, run, {"stage": "sft"}, resume_dir=None,
                        metrics_log=JsonlAppender(tmp_path / "m.jsonl"))
    assert seen_during_training == [False]
    assert runs.resolve_checkpoint(str(run)) == str(run / runs.FINAL_DIR)


def test_a_run_dir_without_a_finished_checkpoint_is_a_one_line_error(tmp_path: Path, trained: SimpleNamespace) -> None:
    add_checkpoint(tmp_path / "sft", "checkpoint-5", trained.bad, 5)
    with pytest.raises(UserError, match="no complete checkpoint-best or checkpoint-final"):
        runs.resolve_checkpoint(str(tmp_path / "sft"))


def test_a_truncated_constrained_answer_is_retried_with_a_bigger_budget_and_then_scores(
        swept: SimpleNamespace, trained: SimpleNamespace, tmp_path: Path) -> None:
    values = {k: v for k, v in swept.config["evaluation"].items() if k not in ("out_dir", "teacher_model")}
    values.update(adapter=trained.good, dataset=str(trained.root / "d04.jsonl"), max_new_tokens=12)

    def evaluate(retry: float, name: str) -> dict[str, Any]:
        out = tmp_path / name
        settings = EvalSettings(**{**values, "truncation_retry": retry}, out_dir=str(out), split="val",
                                eval_results=str(out / "r.jsonl"), checkpoint_path=str(out / "c.json"))
        return run_evaluation(settings, swept.config, teacher=None)["overall"]

    cut = evaluate(1.0, "no-retry")  # 12 tokens are too few for any of the remembered answers
    assert cut["truncated_rate"] == 1.0 and cut["retried_rate"] == 0.0 and cut["semantic_match_rate"] == 0.0
    retried = evaluate(10.0, "retry")  # one more try with 120 tokens
    assert retried["retried_rate"] == 1.0 and retried["truncated_rate"] == 0.0
    assert retried["semantic_match_rate"] == 1.0
