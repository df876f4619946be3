"""Run directories of the training stages (SFT and DPO): their checkpoints, resume, metrics log and records.

One home for the rules every caller needs, Python and the bash runners alike (``python -m ast_distill.runs``):
- a run dir holds ``checkpoint-N/`` (the trainer's, resumable: it has ``trainer_state.json``),
  ``checkpoint-final/`` (the model or adapter + tokenizer, written beside and renamed into place, so it
  exists only when complete), ``training_metrics.jsonl`` and ``run_config.json``;
- "latest checkpoint" = the newest checkpoint-N holding trainer_state.json (one the trainer can go on from);
- "final checkpoint complete" = weights, a model/adapter config and a tokenizer config are all there;
- ``checkpoint-best/`` (written by the checkpoint sweep, ``sweep.py``) is a copy of the checkpoint that scored
  best on the val rows; a run's "selected checkpoint" is checkpoint-best when complete, else checkpoint-final.
  Every stage given a run dir instead of a checkpoint dir uses the selected one (``resolve_checkpoint``); a new
  training in the dir deletes the old selection first, so it never outlives the weights it was chosen among.

Torch-free at import: the metrics callback imports transformers when it is built.

Run as:
    uv run python -m ast_distill.runs latest outputs/student_runs/gemma3-270m     # prints the dir, or nothing
    uv run python -m ast_distill.runs complete outputs/student_runs/gemma3-270m   # exit 0 when checkpoint-final is complete
    uv run python -m ast_distill.runs selected outputs/student_runs/gemma3-270m   # the checkpoint a stage would use
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import shutil
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .jsonl import JsonlAppender, read_jsonl, write_json_atomic, write_jsonl_atomic
from .provenance import provenance

FINAL_DIR = "checkpoint-final"
BEST_DIR = "checkpoint-best"
SELECTION_FILE = "selected.json"  # in checkpoint-best: which checkpoint it copies, and the sweep's ranking
SWEEP_FILE = "checkpoint_sweep.json"  # in the run dir: every candidate's val figures, best first
# Trainer files a copied checkpoint does not need to generate (resuming uses the checkpoint-N itself).
RESUME_ONLY_FILES = ("optimizer.pt", "scheduler.pt", "scaler.pt", "rng_state*.pth")
METRICS_FILE = "training_metrics.jsonl"
RUN_CONFIG_FILE = "run_config.json"
TRAINER_STATE = "trainer_state.json"
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin")
MODEL_CONFIGS = ("config.json", "adapter_config.json")


def checkpoint_step(path: str | Path) -> int:
    """N of a checkpoint-N dir; -1 for any other name (checkpoint-final included)."""
    name = Path(path).name
    return int(name.split("-", 1)[1]) if name.startswith("checkpoint-") and name[11:].isdigit() else -1


def latest_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint-N dir holding a trainer_state.json, or None."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = [p for p in folder.iterdir()
             if p.is_dir() and checkpoint_step(p) >= 0 and (p / TRAINER_STATE).is_file()]
    return str(max(found, key=checkpoint_step)) if found else None


def resolve_resume(resume: str | None, output_dir: str | Path) -> str | None:
    """None (fresh), or the checkpoint dir to resume from: "auto" = newest in output_dir (if any)."""
    if not resume:
        return None
    if resume == "auto":
        return latest_checkpoint(output_dir)
    if not (Path(resume) / TRAINER_STATE).is_file():
        raise UserError(f"--resume-from-checkpoint {resume}: not a trainer checkpoint (no {TRAINER_STATE}); "
                        f"pass a checkpoint-N dir or 'auto'")
    return resume


def final_checkpoint_complete(path: str | Path) -> bool:
    """A checkpoint-final dir holds weights (full model or adapter), their config and a tokenizer."""
    folder = Path(path)
    return (any((folder / name).is_file() for name in WEIGHT_FILES)
            and any((folder / name).is_file() for name in MODEL_CONFIGS)
            and (folder / "tokenizer_config.json").is_file())


def saved_checkpoints(output_dir: str | Path) -> list[Path]:
    """The checkpoint-N dirs of a run that hold weights, oldest first."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return []
    found = [p for p in folder.iterdir() if p.is_dir() and checkpoint_step(p) >= 0
             and any((p / name).is_file() for name in WEIGHT_FILES)]
    return sorted(found, key=checkpoint_step)


def selected_checkpoint(run_dir: str | Path) -> Path | None:
    """The checkpoint a stage uses from a run dir: checkpoint-best when complete, else checkpoint-final when
    complete, else None."""
    for name in (BEST_DIR, FINAL_DIR):
        if final_checkpoint_complete(Path(run_dir) / name):
            return Path(run_dir) / name
    return None


def is_run_dir(path: str | Path) -> bool:
    """A training run's folder (it holds checkpoint-* dirs and no weights of its own), not a checkpoint."""
    folder = Path(path)
    return (folder.is_dir() and not any((folder / name).is_file() for name in WEIGHT_FILES)
            and any(p.is_dir() and p.name.startswith("checkpoint-") for p in folder.iterdir()))


def resolve_checkpoint(path: str) -> str:
    """A checkpoint dir as given; a run dir -> its selected checkpoint (a UserError when none is complete)."""
    if not is_run_dir(path):
        return path
    chosen = selected_checkpoint(path)
    if chosen is None:
        raise UserError(f"{path} is a run dir with no complete {BEST_DIR} or {FINAL_DIR}; finish its training "
                        f"(rerun the runner to resume) or pass a checkpoint dir")
    return str(chosen)


def clear_selection(output_dir: str | Path) -> None:
    """Forget the sweep's choice (checkpoint-best and checkpoint_sweep.json): the run's weights are changing."""
    folder = Path(output_dir)
    shutil.rmtree(folder / BEST_DIR, ignore_errors=True)
    (folder / SWEEP_FILE).unlink(missing_ok=True)


def install_best(run_dir: str | Path, source: str | Path, selection: Mapping[str, Any]) -> Path:
    """Copy checkpoint ``source`` (without optimizer, scheduler and RNG states) to <run_dir>/checkpoint-best,
    written beside and renamed into place, with ``selection`` as its selected.json."""
    best = Path(run_dir) / BEST_DIR
    partial = Path(run_dir) / (BEST_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    shutil.copytree(source, partial, ignore=shutil.ignore_patterns(*RESUME_ONLY_FILES))
    write_json_atomic(partial / SELECTION_FILE, dict(selection))
    shutil.rmtree(best, ignore_errors=True)
    os.replace(partial, best)
    return best


def trim_metrics(path: Path, last_step: int) -> None:
    """On resume, drop the log records written after the checkpoint (the trainer logs them again)."""
    if path.is_file():
        write_jsonl_atomic(path, [r for r in read_jsonl(path) if int(r.get("step", 0)) <= last_step])


def open_metrics_log(output_dir: Path, resume_dir: str | None) -> JsonlAppender | None:
    """training_metrics.jsonl of the run: fresh for a new run, trimmed to the checkpoint's step on resume; None
    in a process other than the main one of a multi-process run (distributed.py): the main one writes the log."""
    from .distributed import is_main_process

    if not is_main_process():
        return None
    path = output_dir / METRICS_FILE
    if resume_dir is not None:
        trim_metrics(path, checkpoint_step(resume_dir))
    return JsonlAppender(path, fresh=resume_dir is None)


def jsonable(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def metrics_callback(writer: JsonlAppender) -> Any:
    """A transformers callback that streams every trainer log (train, eval, final summary) to the metrics
    log, one fsync per log."""
    from transformers import TrainerCallback

    class MetricsCallback(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                record = {"step": state.global_step, "epoch": state.epoch}
                record.update({k: v for k, v in logs.items() if jsonable(v)})
                writer.write(record)
                writer.flush()

    return MetricsCallback()


def run_record(stage: str, settings_section: str, settings: Mapping[str, Any],
               resolved_config: Mapping[str, Any] | None, **facts: Any) -> dict[str, Any]:
    """run_config.json at the start of a run: the stage's settings (under its config section's name), the whole
    resolved config, the stage's own facts (backend, device, precision decision, counts, ...) and the shared
    provenance block (created_at, command, git, versions). status "running" until the run ends."""
    made = provenance(dict(settings))
    return {"stage": stage, "status": "running", settings_section: made.pop("settings"),
            "config": None if resolved_config is None else dict(resolved_config), **facts, **made}


def point_adapter_at(adapter_dir: Path, base_model: str) -> None:
    """Make a saved adapter name ``base_model`` as its base (Unsloth may record its 4-bit variant instead;
    DPO names its merged SFT base relative to itself); no-op for a full model."""
    path = adapter_dir / "adapter_config.json"
    if not path.is_file():
        return
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("base_model_name_or_path") != base_model:
        config["base_model_name_or_path"] = base_model
        write_json_atomic(path, config)


def save_final(trainer: Any, tokenizer: Any, output_dir: Path, run_config: Mapping[str, Any], *,
               adapter_base: str | None) -> Path:
    """checkpoint-final written beside, then renamed into place: it exists only when complete.

    adapter_base: the base an adapter must name (None for a model trained in full)."""
    final = output_dir / FINAL_DIR
    partial = output_dir / (FINAL_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    trainer.save_model(str(partial))
    tokenizer.save_pretrained(str(partial))
    if adapter_base:
        point_adapter_at(partial, adapter_base)
    write_json_atomic(partial / RUN_CONFIG_FILE, dict(run_config))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    return final


@dataclass
class FinishedRun:
    """What train_and_save ran and wrote."""
    result: Any  # the trainer's TrainOutput (training_loss, ...)
    final_step: int
    wall_s: float  # seconds in trainer.train(), evals and checkpoint saves included
    final: Path  # checkpoint-final
    run_config: dict[str, Any]  # as written, status "complete"


def train_and_save(trainer: Any, tokenizer: Any, output_dir: Path, run_config: dict[str, Any], *,
                   resume_dir: str | None, metrics_log: JsonlAppender | None, budget: Any = None,
                   adapter_base: str | None = None,
                   outcome: Callable[[float], Mapping[str, Any]] | None = None) -> FinishedRun:
    """The common end of a training stage: record the run as "running", train (resuming from resume_dir),
    close the metrics log, record the outcome (final step, loss, wall time, the time budget's plan, the
    replicas' fingerprints and the stage's own figures from ``outcome(wall_s)``), save checkpoint-final and record
    the run as "complete". Under a launcher of several processes every process trains and computes the outcome
    (it may gather), and the main one writes (distributed.py); ``metrics_log`` is None in the others."""
    from .distributed import barrier, is_main_process, record, replica_fingerprints

    main = is_main_process()
    run_config.update(distributed=record())
    if main:
        write_json_atomic(output_dir / RUN_CONFIG_FILE, run_config)
        clear_selection(output_dir)  # the sweep's old choice was made among weights this run replaces
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume_dir)
    finally:
        if metrics_log is not None:
            metrics_log.close()
    wall = time.perf_counter() - started
    step = int(trainer.state.global_step)
    run_config.update(status="complete", final_step=step, train_loss=float(result.training_loss),
                      wall_s=round(wall, 2), **(outcome(wall) if outcome else {}),
                      time_budget=None if budget is None else dataclasses.asdict(budget.plan))
    run_config["distributed"]["replica_fingerprints"] = replica_fingerprints(trainer.model)
    final = output_dir / FINAL_DIR
    if main:
        final = save_final(trainer, tokenizer, output_dir, run_config, adapter_base=adapter_base)
        write_json_atomic(output_dir / RUN_CONFIG_FILE, run_config)
    barrier()  # no process ends before checkpoint-final is in place
    return FinishedRun(result, step, wall, final, run_config)


START_FINGERPRINT = "start_fingerprint"  # run_config.json: the weights a run trained on from (DPO, the boost)
CORPUS_FINGERPRINT = "corpus_fingerprint"  # run_config.json: the rows an SFT run trained on (its corpus file)


def trained_from_other_weights(run_dir: str | Path, start: str | Path) -> bool:
    """True when the run dir's run_config.json records a start whose weights are not ``start``'s now (the SFT
    student was retrained at the same path): its checkpoints are of another lineage. False when nothing is
    recorded (no run yet, or a run from before starts were recorded)."""
    from .fingerprint import checkpoint_fingerprint

    path = Path(run_dir) / RUN_CONFIG_FILE
    if not path.is_file():
        return False
    recorded = json.loads(path.read_text(encoding="utf-8")).get(START_FINGERPRINT)
    return recorded is not None and recorded != checkpoint_fingerprint(start)


def trained_on_other_rows(run_dir: str | Path, corpus: str | Path) -> bool:
    """True when the run dir's run_config.json records a training corpus whose bytes are not ``corpus``'s now (the
    dataset was made again: another schema, other settings). False when nothing is recorded or the corpus is gone."""
    from .fingerprint import file_digest

    path = Path(run_dir) / RUN_CONFIG_FILE
    if not path.is_file() or not Path(corpus).is_file():
        return False
    recorded = json.loads(path.read_text(encoding="utf-8")).get(CORPUS_FINGERPRINT)
    return recorded is not None and recorded != file_digest(corpus)


def forget_run(run_dir: str | Path) -> list[str]:
    """Delete a run dir's checkpoints, sweep and choice (not its other files): what a run from other start
    weights left, so that no later step resumes from, sweeps or selects them. Returns the names deleted."""
    folder = Path(run_dir)
    gone = sorted(p.name for p in folder.glob("checkpoint-*") if p.is_dir()) + \
        [name for name in ("sweep", SWEEP_FILE) if (folder / name).exists()]
    for name in gone:
        target = folder / name
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    return gone


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Ask about a run dir (what the bash runners use).")
    parser.add_argument("question", choices=("latest", "complete", "selected", "stale"),
                        help="latest: print the newest resumable checkpoint-N (nothing when none); "
                             "complete: exit 0 when <run dir>/checkpoint-final is complete, else 1; "
                             "selected: print the checkpoint a stage uses for this path (a run dir's "
                             "checkpoint-best, else checkpoint-final, nothing when neither is complete; any other "
                             "path as given); stale: when the run was trained on from other weights than START "
                             "now has (or, with --corpus, on other rows than CORPUS holds now), delete its "
                             "checkpoints and sweep, print what was deleted and exit 0, else exit 1")
    parser.add_argument("run_dir")
    parser.add_argument("start", nargs="?", default=None, help="stale: the checkpoint the run trains on from")
    parser.add_argument("--corpus", help="stale: the training corpus the run trains on")
    args = parser.parse_args(argv)
    if args.question == "stale":
        other_weights = bool(args.start) and trained_from_other_weights(args.run_dir, args.start)
        other_rows = bool(args.corpus) and trained_on_other_rows(args.run_dir, args.corpus)
        if not (other_weights or other_rows):
            return 1
        print(" ".join(forget_run(args.run_dir)))
        return 0
    if args.question == "latest":
        print(latest_checkpoint(args.run_dir) or "")
        return 0
    if args.question == "selected":
        print(str(selected_checkpoint(args.run_dir) or "") if is_run_dir(args.run_dir) else args.run_dir)
        return 0
    return 0 if final_checkpoint_complete(Path(args.run_dir) / FINAL_DIR) else 1


if __name__ == "__main__":
    sys.exit(main())
