"""How far to trust an answer: the student's probability of its answer, calibrated on val rows (isotonic), the
reliability bands, the sweep storing the calibration with the checkpoint it keeps, and what evaluation reports."""
from __future__ import annotations

import math
import random
import shutil
from pathlib import Path

import pytest
from helpers import make_tiny_student

from ast_distill import runs
from ast_distill.calibration import (CALIBRATION_FILE, MIN_ROWS, calibrate, confidence_summary, fit_isotonic,
                                     load_calibration, reliability)
from ast_distill.evaluation import RESULTS_NAME
from ast_distill.fingerprint import checkpoint_fingerprint
from ast_distill.jsonl import read_json, write_jsonl_atomic
from ast_distill.sweep import Candidate, keep_best


def made_up(n: int, seed: int = 0) -> tuple[list[float], list[bool]]:
    """Answer log-probabilities whose probabilities p spread over (0, 1], right with probability p**2: an over-sure
    student."""
    rng = random.Random(seed)
    probabilities = [1.0 - rng.random() for _ in range(n)]
    return [math.log(p) for p in probabilities], [rng.random() < p * p for p in probabilities]


def test_the_isotonic_calibration_is_monotone_bounded_and_closer_to_the_truth_on_a_made_up_set() -> None:
    logprobs, right = made_up(2000)
    fitted = calibrate(logprobs, right)
    assert fitted is not None and fitted.rows == 2000
    assert all(a < b for a, b in zip(fitted.value, fitted.value[1:]))  # strictly rising steps
    assert all(0.0 <= v <= 1.0 for v in fitted.value) and fitted.raw == sorted(fitted.raw)
    grid = [math.log(i / 100) for i in range(1, 101)]
    mapped = [fitted(x) for x in grid]
    assert mapped == sorted(mapped)  # monotone everywhere, between the fitted points too
    # where the raw probability is far from the truth (p**2), the calibrated one is near the truth
    assert fitted(math.log(0.5)) == pytest.approx(0.25, abs=0.1)
    assert fitted(math.log(0.3)) == pytest.approx(0.09, abs=0.06)
    assert fitted.facts["ece_calibrated"] < fitted.facts["ece_raw"] / 3


def test_a_clean_split_calibrates_to_zero_and_one_and_too_few_rows_fit_nothing() -> None:
    steps, values = fit_isotonic([-9.0, -7.0, -5.0, -0.6, -0.2, -0.1], [False, False, False, True, True, True])
    assert values == [0.0, 1.0] and steps == [-5.0, -0.1]
    assert calibrate([0.5] * (MIN_ROWS - 1), [True] * (MIN_ROWS - 1)) is None
    with pytest.raises(ValueError):
        fit_isotonic([0.5], [])


def test_reliability_bands_count_every_row_and_an_honest_confidence_has_no_calibration_error() -> None:
    confidence = [0.05] * 20 + [0.55] * 20 + [0.95] * 20 + [1.0] * 20
    right = [i < 1 for i in range(20)] + [i < 11 for i in range(20)] + [i < 19 for i in range(20)] + [True] * 20
    report = reliability(confidence, right)
    assert sum(b["rows"] for b in report["bands"]) == 80 and report["rows"] == 80
    filled = [b for b in report["bands"] if b["rows"]]
    assert [b["rows"] for b in filled] == [20, 20, 40]  # 1.0 falls in the last band
    assert report["ece"] == pytest.approx(0.0, abs=0.01)


def evaluated(n: int, seed: int = 1) -> list[dict]:
    logprobs, right = made_up(n, seed)
    return [{"id": str(i), "answer_logprob": x, "schema_valid": True, "semantic_match": ok,
             "teacher_verdict": ok} for i, (x, ok) in enumerate(zip(logprobs, right))]


def test_the_sweep_stores_the_calibration_of_the_kept_checkpoints_val_answers_beside_its_weights(
        tmp_path: Path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    source = shutil.copytree(make_tiny_student(tmp_path / "student"), run / "checkpoint-10")
    val_dir = run / "sweep" / "checkpoint-10"
    write_jsonl_atomic(val_dir / RESULTS_NAME, evaluated(200))
    winner = Candidate(name="checkpoint-10", path=str(source), step=10, fingerprint=checkpoint_fingerprint(source),
                       eval_loss=None, evaluation=str(val_dir / "evaluation_summary.json"))
    selection = keep_best(run, winner)

    best = run / runs.BEST_DIR
    fitted = load_calibration(best)
    assert fitted is not None and fitted.rows == 200 and fitted.fitted_on.endswith(RESULTS_NAME)
    assert selection["calibration"]["rows"] == 200 and read_json(best / CALIBRATION_FILE)["method"] == "isotonic"
    assert checkpoint_fingerprint(best) == winner.fingerprint  # the calibration is no part of the weights


def test_the_evaluation_summary_reports_reliability_and_what_a_minimum_confidence_keeps(tmp_path: Path) -> None:
    records = evaluated(400, seed=2)
    records.append({"id": "gguf", "answer_logprob": None, "schema_valid": True, "semantic_match": True})
    raw_summary = confidence_summary(records, None, None)
    assert raw_summary["calibrated"] is False and raw_summary["rows"] == 400  # the row without one is left out
    fitted = calibrate([r["answer_logprob"] for r in records[:400]], [r["semantic_match"] for r in records[:400]])
    summary = confidence_summary(records, fitted, "x/calibration.json")
    assert summary["calibrated"] is True and summary["ece"] < raw_summary["ece"]
    answered = [s["answered"] for s in summary["selective"]]
    accuracy = [s["accuracy"] for s in summary["selective"]]
    assert answered == sorted(answered, reverse=True)  # a higher minimum answers fewer requests...
    assert accuracy == sorted(accuracy) and accuracy[-1] > summary["accuracy"]  # ...and more of them right
    assert confidence_summary([{"answer_logprob": None}], None, None) is None
