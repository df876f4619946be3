"""How far to trust an answer: the student's own probability of it, calibrated on the val rows.

The raw confidence of an answer is the log-probability the student gave that exact output (generation.Generation.
answer_logprob: the sum of its tokens' log-probabilities, stop token included, as decoded; under constrained
decoding, renormalized over what the grammar allows; a log, since a long answer's probability underflows). Its
exp ranks answers, but it is no probability of being right: a long AST of sure tokens scores lower than a short
one, and a small model is over- or under-sure.

So the checkpoint sweep fits a calibration on the val rows of the checkpoint it keeps (``fit_isotonic``: the
pool-adjacent-violators fit of "right" on the answer log-probability, non-decreasing) and stores it beside the
weights (``<checkpoint>/calibration.json``). Evaluation and predict read it: an answer's ``confidence`` is then the
share of val answers of that log-probability that were right; without a calibration it is the answer's raw
probability. ``reliability`` gives the bands a reliability diagram plots and the expected calibration error (ECE).
Torch-free.
"""
from __future__ import annotations

import bisect
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .jsonl import read_json, write_json_atomic
from .scoring import row_passes

CALIBRATION_FILE = "calibration.json"
BANDS = 10  # reliability bands of width 0.1
SELECTIVE_THRESHOLDS = (0.5, 0.7, 0.9)  # --min-confidence values whose effect evaluation reports
MIN_ROWS = 20  # fewer val rows than this: no calibration is fitted (it would be noise)


@dataclass
class Calibration:
    """A non-decreasing step map from an answer's log-probability to the share of right answers (isotonic)."""
    raw: list[float]  # the upper answer log-probability of each step, ascending
    value: list[float]  # the calibrated confidence of each step, non-decreasing
    rows: int  # val rows it was fitted on
    fitted_on: str = ""  # the evaluation results it was fitted from
    method: str = "isotonic"
    facts: dict[str, Any] = field(default_factory=dict)  # the val figures at fit time (accuracy, ECE before/after)

    def __call__(self, logprob: float) -> float:
        """The calibrated confidence of an answer log-probability: the value of the first step reaching it."""
        index = bisect.bisect_left(self.raw, logprob)
        return self.value[min(index, len(self.value) - 1)]


def fit_isotonic(raw: Sequence[float], right: Sequence[bool]) -> tuple[list[float], list[float]]:
    """Pool adjacent violators: the non-decreasing step function of the raw score (an answer log-probability)
    closest (least squares) to the 0/1 outcomes. Returns (upper raw score of each step, its value)."""
    if len(raw) != len(right) or not raw:
        raise ValueError("fit_isotonic needs as many outcomes as confidences, at least one")
    pairs = sorted(zip(raw, right), key=lambda pair: pair[0])
    blocks: list[list[float]] = []  # [sum of outcomes, count, upper raw]
    for confidence, outcome in pairs:
        blocks.append([float(outcome), 1.0, float(confidence)])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] >= blocks[-1][0] / blocks[-1][1]:
            total, count, upper = blocks.pop()
            blocks[-1][0] += total
            blocks[-1][1] += count
            blocks[-1][2] = upper
    # equal means were pooled too (>=), so values strictly rise from step to step
    return [b[2] for b in blocks], [round(b[0] / b[1], 6) for b in blocks]


def reliability(confidence: Sequence[float], right: Sequence[bool], bands: int = BANDS) -> dict[str, Any]:
    """Answers by confidence band ([0, 0.1), ..., [0.9, 1.0]): rows, mean confidence and share right in each, and
    the expected calibration error (the row-weighted mean gap between the two)."""
    rows: list[dict[str, Any]] = []
    gap = 0.0
    for band in range(bands):
        low, high = band / bands, (band + 1) / bands
        inside = [(c, r) for c, r in zip(confidence, right) if low <= c < high or (band == bands - 1 and c == high)]
        if not inside:
            rows.append({"band": [low, high], "rows": 0, "mean_confidence": None, "accuracy": None})
            continue
        mean = sum(c for c, _ in inside) / len(inside)
        accuracy = sum(1 for _, r in inside if r) / len(inside)
        gap += len(inside) * abs(mean - accuracy)
        rows.append({"band": [low, high], "rows": len(inside), "mean_confidence": round(mean, 4),
                     "accuracy": round(accuracy, 4)})
    total = len(confidence)
    return {"bands": rows, "ece": round(gap / total, 4) if total else None, "rows": total}


def calibrate(logprobs: Sequence[float], right: Sequence[bool], fitted_on: str = "") -> Calibration | None:
    """The calibration of these val answers (None below MIN_ROWS rows), with the val figures before and after
    (before: the raw probability, exp of the log-probability)."""
    if len(logprobs) < MIN_ROWS:
        return None
    steps, values = fit_isotonic(logprobs, right)
    fitted = Calibration(steps, values, len(logprobs), fitted_on)
    fitted.facts = {"accuracy": round(sum(right) / len(right), 4),
                    "ece_raw": reliability([math.exp(x) for x in logprobs], right)["ece"],
                    "ece_calibrated": reliability([fitted(x) for x in logprobs], right)["ece"]}
    return fitted


def write_calibration(checkpoint: str | Path, calibration: Calibration) -> Path:
    path = Path(checkpoint) / CALIBRATION_FILE
    write_json_atomic(path, asdict(calibration))
    return path


def load_calibration(checkpoint: str | Path) -> Calibration | None:
    """The calibration stored with a checkpoint (None when it has none: a run without a sweep, a GGUF)."""
    path = Path(checkpoint) / CALIBRATION_FILE
    if not path.is_file():
        return None
    return Calibration(**read_json(path))


def confidence_of(logprob: float | None, calibration: Calibration | None) -> float | None:
    """An answer's confidence from its log-probability: calibrated when the checkpoint has a calibration, else the
    raw probability of the answer."""
    if logprob is None:
        return None
    return round(calibration(logprob) if calibration is not None else math.exp(logprob), 6)


def confidence_summary(records: Sequence[dict[str, Any]], calibration: Calibration | None,
                       where: str | None) -> dict[str, Any] | None:
    """evaluation_summary.json's "confidence": the reliability of the answers' confidence (calibrated when the
    checkpoint has a calibration, else raw), and what a --min-confidence threshold keeps: the share of answers
    at or above it and how many of those are right. None when no record has an answer log-probability (llama.cpp)."""
    scored = [(float(r["answer_logprob"]), row_passes(r)) for r in records if r.get("answer_logprob") is not None]
    if not scored:
        return None
    confidence = [float(confidence_of(logprob, calibration)) for logprob, _ in scored]
    right = [ok for _, ok in scored]
    selective = []
    for threshold in SELECTIVE_THRESHOLDS:
        kept = [ok for c, ok in zip(confidence, right) if c >= threshold]
        selective.append({"min_confidence": threshold, "answered": round(len(kept) / len(right), 4),
                          "accuracy": round(sum(kept) / len(kept), 4) if kept else None})
    return {"calibrated": calibration is not None, "calibration": where,
            "fitted_on_rows": calibration.rows if calibration is not None else None,
            "accuracy": round(sum(right) / len(right), 4), **reliability(confidence, right), "selective": selective}
