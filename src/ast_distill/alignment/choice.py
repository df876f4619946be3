"""Which student the alignment stage ends with: the SFT student, the DPO student or the boosted one.

Each run's checkpoint sweep scored its selected checkpoint on the same seeded `val` rows (seen schemas, never test
rows), so their figures compare: the one with the highest semantic pass rate wins, then schema-valid rate, then
the order of METHODS (a tie keeps the simpler student). Without sweeps (sweep.enabled false) there is nothing
honest to compare on, and the last method that trained wins, as before the boost existed. The choice is written to
``aligned.json`` beside the pairs file; the quality gate, the export default and the reports read it.

Run as:
    uv run python -m ast_distill.alignment.choice choose --config config/offline.json
    uv run python -m ast_distill.alignment.choice get eval_summary --config config/offline.json
"""
from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..config import Config, load_config
from ..errors import UserError
from ..jsonl import read_json, write_json_atomic
from ..runs import SWEEP_FILE, is_run_dir, selected_checkpoint

METHODS = ("sft", "dpo", "boost")  # also the tie order: the earlier wins
ALIGNED_FILE = "aligned.json"


def aligned_path(config: Config) -> Path:
    """Where the choice is recorded: aligned.json beside alignment.pairs_out."""
    return Path(config["alignment"]["pairs_out"]).parent / ALIGNED_FILE


def eval_dir(config: Config, method: str) -> Path:
    """Where a method's d_05 evaluation lives: evaluation.out_dir for SFT, <out_dir>-dpo and <out_dir>-boost."""
    base = str(config["evaluation"]["out_dir"]).rstrip("/")
    return Path(base if method == "sft" else f"{base}-{method}")


def run_dir(config: Config, method: str) -> Path:
    """A method's run dir: the SFT one DPO and the boost start from, alignment.output_dir, boost.output_dir."""
    if method == "sft":
        start = Path(config["alignment"]["adapter"])
        return start if is_run_dir(start) else start.parent
    return Path(config["alignment" if method == "dpo" else "boost"]["output_dir"])


def val_figures(folder: Path) -> dict[str, Any] | None:
    """The sweep's figures of a run's selected checkpoint, or None when the run has no sweep."""
    path = folder / SWEEP_FILE
    if not path.is_file():
        return None
    record = read_json(path)
    best = record["ranking"][0]
    return {"checkpoint": record["checkpoint_best"], "semantic_pass_rate": best["semantic_pass_rate"],
            "schema_valid_rate": best["schema_valid_rate"], "n": best["n"], "sweep": str(path)}


def rank(method: str, figures: Mapping[str, Any]) -> tuple[float, float, int]:
    return (-(figures["semantic_pass_rate"] or 0.0), -(figures["schema_valid_rate"] or 0.0), METHODS.index(method))


def margin_and_noise(best: Mapping[str, Any], other: Mapping[str, Any]) -> dict[str, float]:
    """How far the winner's val semantic pass is above the runner-up's, and two binomial standard errors of that
    difference: a margin below the noise is a choice that other val rows could reverse."""
    a, b = float(best["semantic_pass_rate"] or 0.0), float(other["semantic_pass_rate"] or 0.0)
    noise = 2 * math.sqrt(a * (1 - a) / max(int(best["n"]), 1) + b * (1 - b) / max(int(other["n"]), 1))
    return {"margin": round(a - b, 6), "noise": round(noise, 6)}


def describe(record: Mapping[str, Any]) -> str:
    """Why the student was kept, and how clearly (aligned.json's "why", which the CLI and the report show)."""
    text = f"(`{record['checkpoint']}`): {record['rule']}"
    close = record.get("closeness")
    if close:
        verdict = "within noise" if close["margin"] < close["noise"] else "beyond noise"
        text += (f"; {close['margin']:+.3f} over {close['runner_up']} on val, {verdict} (two standard errors "
                 f"{close['noise']:.3f})")
    return text


def choose(config: Config, methods: tuple[str, ...] = METHODS) -> dict[str, Any]:
    """Pick among the methods whose run finished (a selected checkpoint), write aligned.json and return it."""
    trained = {m: selected_checkpoint(run_dir(config, m)) for m in methods}
    trained = {m: str(path) for m, path in trained.items() if path is not None}
    if not trained:
        raise UserError(f"no finished student to choose from under {', '.join(str(run_dir(config, m)) for m in methods)}; "
                        f"run ./runTraining.sh and ./runAlignment.sh first")
    figures = {m: val_figures(run_dir(config, m)) for m in trained}
    scored = {m: f for m, f in figures.items() if f is not None}
    closeness = None
    if len(scored) == len(trained):
        ranked = sorted(scored, key=lambda m: rank(m, scored[m]))
        method = ranked[0]
        rule = "highest semantic pass on the sweep's val rows, then schema-valid, then the simpler method"
        if len(ranked) > 1:
            closeness = margin_and_noise(scored[ranked[0]], scored[ranked[1]]) | {"runner_up": ranked[1]}
    else:
        method = max(trained, key=METHODS.index)
        rule = "not every run was swept (sweep.enabled false?): the last method that trained"
    record = {"method": method, "checkpoint": trained[method], "run_dir": str(run_dir(config, method)),
              "eval_summary": str(eval_dir(config, method) / "evaluation_summary.json"), "rule": rule,
              "val": figures, "checkpoints": trained, "closeness": closeness}
    record["why"] = describe(record)
    write_json_atomic(aligned_path(config), record)
    return record


def chosen(config: Config) -> dict[str, Any] | None:
    """The recorded choice, or None when alignment has not chosen yet (or its student is gone)."""
    path = aligned_path(config)
    if not path.is_file():
        return None
    record = read_json(path)
    return record if Path(record.get("checkpoint", "")).is_dir() else None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Choose (or show) the student the alignment stage ends with.")
    parser.add_argument("command", choices=("choose", "get"))
    parser.add_argument("field", nargs="?", default="method", help="get: the aligned.json field to print")
    parser.add_argument("--config", default=None)
    args = parser.parse_args(argv)
    try:
        config = load_config(args.config)
        if args.command == "choose":
            record = choose(config)
            for method, figures in record["val"].items():
                shown = ("no sweep" if figures is None else f"val semantic pass {figures['semantic_pass_rate']}, "
                         f"schema-valid {figures['schema_valid_rate']} (n={figures['n']})")
                print(f"  {method:<6} {shown}")
            print(f"== aligned student: {record['method']} {record['why']}")
            return 0
        record = chosen(config)
        print("" if record is None else record.get(args.field, ""))
        return 0
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
