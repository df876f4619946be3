"""The checkpoint sweep: which of a run's saved checkpoints writes the best ASTs, not the lowest loss.

After SFT (and after DPO) the run dir holds a few ``checkpoint-N`` dirs and ``checkpoint-final`` (the last step,
or the best eval_loss with early stopping). Each is evaluated on the same seeded sample of ``val`` rows (seen
schemas; never test rows, never unseen schemas) with the evaluation's decoding and judge (stage 6, one folder per
candidate under ``<run>/sweep/``, so a killed sweep resumes by checkpoint and by row), ranked by semantic pass
rate, then schema-valid rate, then eval_loss (lower first; none last), then the later step, and the winner is
copied to ``<run>/checkpoint-best`` (runs.install_best), which every stage given the run dir uses. The ranking is
written to ``<run>/checkpoint_sweep.json``; with ``top_k`` the other checkpoint-N dirs are deleted.
"""
from __future__ import annotations

import math
import shutil
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .calibration import calibrate, write_calibration
from .config import Config, judge_teacher_model
from .errors import UserError
from .evaluation import RESULTS_NAME, EvalSettings, progress_path, run_evaluation
from .fingerprint import checkpoint_fingerprint
from .jsonl import read_json, read_jsonl, write_json_atomic
from .provenance import provenance
from .scoring import row_passes
from .runs import (BEST_DIR, FINAL_DIR, METRICS_FILE, RUN_CONFIG_FILE, SWEEP_FILE,
                   final_checkpoint_complete, install_best, latest_checkpoint, saved_checkpoints, checkpoint_step)
from .teachers import Teacher

SWEEP_DIR = "sweep"  # <run>/sweep/<checkpoint name>/: each candidate's val evaluation
SPLIT = "val"


@dataclass
class Candidate:
    """One checkpoint of the run and its val figures."""
    name: str  # checkpoint-N or checkpoint-final
    path: str
    step: int  # the training step its weights are from
    fingerprint: str
    eval_loss: float | None  # logged at that step (None: no evaluation then, or DPO, which has none)
    semantic_pass_rate: float | None = None
    schema_valid_rate: float | None = None
    query_semantic_match_rate: float | None = None
    n: int = 0
    evaluation: str = ""  # its evaluation_summary.json


def eval_losses(run_dir: Path) -> dict[int, float]:
    """step -> eval_loss from the run's metrics log (the last record of a step wins)."""
    losses = {}
    for record in read_jsonl(run_dir / METRICS_FILE, missing_ok=True):
        if isinstance(record.get("eval_loss"), (int, float)):
            losses[int(record.get("step", -1))] = float(record["eval_loss"])
    return losses


def final_step(run_dir: Path) -> int:
    """The step checkpoint-final was saved at (run_config.json's final_step; -1 when unrecorded)."""
    for path in (run_dir / FINAL_DIR / RUN_CONFIG_FILE, run_dir / RUN_CONFIG_FILE):
        if path.is_file():
            value = read_json(path).get("final_step")
            if isinstance(value, int):
                return value
    return -1


def candidates(run_dir: Path) -> list[Candidate]:
    """Every saved checkpoint-N with weights, then checkpoint-final when complete."""
    losses = eval_losses(run_dir)
    found = [(p, checkpoint_step(p)) for p in saved_checkpoints(run_dir)]
    if final_checkpoint_complete(run_dir / FINAL_DIR):
        found.append((run_dir / FINAL_DIR, final_step(run_dir)))
    return [Candidate(path.name, str(path), step, checkpoint_fingerprint(path), losses.get(step))
            for path, step in found]


def rank_key(candidate: Candidate) -> tuple[float, float, float, int]:
    """Sort key, best first: semantic pass, schema-valid, eval_loss (lower; none last), later step."""
    loss = candidate.eval_loss if candidate.eval_loss is not None else math.inf
    return (-(candidate.semantic_pass_rate or 0.0), -(candidate.schema_valid_rate or 0.0), loss, -candidate.step)


def val_settings(config: Config, sweep: Mapping[str, Any], candidate: Candidate, out_dir: Path,
                 teacher_model: str | None) -> EvalSettings:
    """The evaluation of one candidate: the evaluation section's decoding and judge on the sweep's val rows."""
    values = {k: v for k, v in config["evaluation"].items() if k not in ("out_dir", "teacher_model")}
    values.update(adapter=candidate.path, dataset=sweep["dataset"] or config["training"]["training_corpus"],
                  max_samples=sweep["max_samples"], resume=True)
    return EvalSettings(**values, out_dir=str(out_dir), eval_results=str(out_dir / RESULTS_NAME),
                        checkpoint_path=progress_path(out_dir / RESULTS_NAME),
                        split=SPLIT, teacher_model=teacher_model)


def score_candidates(run_dir: Path, found: list[Candidate], config: Config, sweep: Mapping[str, Any],
                     teacher: Teacher | None | str, teacher_model: str | None) -> None:
    """Evaluate each candidate on the val rows (one evaluation per distinct fingerprint), filling its figures."""
    by_fingerprint: dict[str, dict[str, Any]] = {}
    for candidate in found:
        out_dir = run_dir / SWEEP_DIR / candidate.name
        if candidate.fingerprint not in by_fingerprint:
            print(f"== sweep: {candidate.name} (step {candidate.step}) on the {SPLIT} rows")
            settings = val_settings(config, sweep, candidate, out_dir, teacher_model)
            summary = run_evaluation(settings, config, teacher=teacher)
            by_fingerprint[candidate.fingerprint] = {"summary": summary, "path": str(settings.summary_path)}
        done = by_fingerprint[candidate.fingerprint]
        overall = done["summary"]["overall"]
        candidate.semantic_pass_rate = overall["semantic_pass_rate"]
        candidate.schema_valid_rate = overall["schema_valid_rate"]
        candidate.query_semantic_match_rate = overall["query_semantic_match_rate"]
        candidate.n = int(done["summary"]["n"])
        candidate.evaluation = done["path"]


def keep_best(run_dir: Path, winner: Candidate) -> dict[str, Any]:
    """checkpoint-best = a copy of the winner, with selected.json saying which it is and why, and the confidence
    calibration fitted on the winner's val answers (calibration.py; none below its minimum of rows)."""
    selection = {"source": winner.name, "step": winner.step, "fingerprint": winner.fingerprint,
                 "semantic_pass_rate": winner.semantic_pass_rate, "schema_valid_rate": winner.schema_valid_rate,
                 "eval_loss": winner.eval_loss, "sweep": str(run_dir / SWEEP_FILE)}
    best = install_best(run_dir, winner.path, selection)
    results = Path(winner.evaluation).parent / RESULTS_NAME if winner.evaluation else None
    records = read_jsonl(results, missing_ok=True) if results is not None else []
    scored = [r for r in records if r.get("answer_logprob") is not None]
    calibration = calibrate([float(r["answer_logprob"]) for r in scored], [row_passes(r) for r in scored],
                            fitted_on=str(results))
    if calibration is not None:
        write_calibration(best, calibration)
    selection["calibration"] = None if calibration is None else {"rows": calibration.rows, **calibration.facts}
    return selection


def prune(run_dir: Path, ranked: list[Candidate], top_k: int | None) -> list[str]:
    """Delete the checkpoint-N dirs outside the top K (never the newest: training resumes from it)."""
    if not top_k:
        return []
    newest = latest_checkpoint(run_dir)
    kept = {c.name for c in [c for c in ranked if c.name != FINAL_DIR][:top_k]}
    removed = []
    for candidate in ranked:
        if candidate.name in kept or candidate.name == FINAL_DIR or candidate.path == newest:
            continue
        shutil.rmtree(candidate.path, ignore_errors=True)
        removed.append(candidate.name)
    return removed


def run_sweep(run_dir: str | Path, config: Config, sweep: Mapping[str, Any], *, teacher: Teacher | None | str = "auto",
              teacher_model: str | None = None) -> dict[str, Any]:
    """Score, rank, select, prune; writes <run>/checkpoint_sweep.json and returns it."""
    folder = Path(run_dir)
    found = candidates(folder)
    if not found:
        raise UserError(f"{folder}: no checkpoint-N with weights and no complete {FINAL_DIR} to sweep; train first "
                        f"(./runTraining.sh) or pass the run dir of a finished training")
    score_candidates(folder, found, config, sweep, teacher, teacher_model or judge_teacher_model(None, config))
    ranked = sorted(found, key=rank_key)
    selection = keep_best(folder, ranked[0])
    removed = prune(folder, ranked, sweep["top_k"])
    record = {"run_dir": str(folder), "selected": ranked[0].name, "selected_step": ranked[0].step,
              "checkpoint_best": str(folder / BEST_DIR), "split": SPLIT, "ranking": [asdict(c) for c in ranked],
              "pruned": removed, "selection": selection,
              "made_with": provenance({"sweep": dict(sweep), "evaluation": dict(config["evaluation"])})}
    write_json_atomic(folder / SWEEP_FILE, record)
    return record


def cell(value: float | None, width: int) -> str:
    """A rate or loss right-aligned in `width` characters, "-" when there is none."""
    return f"{'-':>{width}}" if value is None else f"{value:>{width}.3f}"


def format_ranking(record: Mapping[str, Any]) -> str:
    """The ranking as a small fixed-width table, the selected checkpoint marked."""
    lines = [f"  {'checkpoint':<20}{'step':>7}{'n':>6}{'pass':>8}{'valid':>8}{'sem/query':>10}{'eval_loss':>10}"]
    for c in record["ranking"]:
        mark = "*" if c["name"] == record["selected"] else " "
        lines.append(f"{mark} {c['name']:<20}{c['step']:>7}{c['n']:>6}{cell(c['semantic_pass_rate'], 8)}"
                     f"{cell(c['schema_valid_rate'], 8)}{cell(c['query_semantic_match_rate'], 10)}"
                     f"{cell(c['eval_loss'], 10)}")
    return "\n".join(lines)
