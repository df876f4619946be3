"""The quality gate: minimums and regressions against the previous run, run_health.json, the run history."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

from ast_distill import cli
from ast_distill.config import REPO_ROOT
from ast_distill.jsonl import read_jsonl, write_json_atomic
from ast_distill.scoring import HEADLINE_FIGURES, headline_figures

SCRIPT = REPO_ROOT / "scripts" / "check_quality.py"


def group(semantic_pass: float | None, *, query: float = 0.3, valid: float = 1.0, recall: float = 0.5) -> dict:
    return {"semantic_pass_rate": semantic_pass, "query_semantic_match_rate": query, "schema_valid_rate": valid,
            "refusal_recall": recall}


def summary(fingerprint: str, seen: float, unseen: float | None, *, adapter: str = "runs/sft/checkpoint-final",
            rows: str = "sha256:rows", query: float = 0.3) -> dict:
    """An evaluation summary as stage 6 writes it, with only what the gate reads."""
    return {"adapter": adapter, "fingerprint": fingerprint, "rows_digest": rows, "n": 160,
            "overall": group(seen if unseen is None else (seen + unseen) / 2, query=query),
            "by_schema": {"seen": group(seen), "unseen": group(unseen)},
            "by_language": {"en": group(seen), "fr": group(unseen)}}


def gate_here(tmp_path: Path, capsys: pytest.CaptureFixture, the_summary: dict, *flags: str) -> tuple[int, str, dict]:
    """(exit code, stderr, run_health.json) of check_quality.py on one summary, in this process."""
    config = json.loads((REPO_ROOT / "config" / "offline.json").read_text())
    config["reporting"]["out_dir"] = str(tmp_path / "reports")
    write_json_atomic(tmp_path / "config.json", config)
    write_json_atomic(tmp_path / "summary.json", the_summary)
    spec = importlib.util.spec_from_file_location("check_quality", SCRIPT)
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    capsys.readouterr()
    code = cli.run(script.main, script.build_parser(), ["--config", str(tmp_path / "config.json"),
                                                        "--eval-summary", str(tmp_path / "summary.json"), *flags])
    health_path = tmp_path / "reports" / "run_health.json"
    health = json.loads(health_path.read_text()) if health_path.is_file() else {}
    return code, capsys.readouterr().err, health


def test_a_first_run_checks_the_minimums_only_and_passes_when_they_hold(tmp_path: Path, capsys) -> None:
    code, err, health = gate_here(tmp_path, capsys, summary("sha256:a", 0.4, 0.2), "--min-semantic-pass-unseen",
                                  "0.15", "--min-schema-valid", "0.95")
    assert code == 0 and err == ""
    assert health["passed"] and health["previous_run"] is None and health["trend"] is None
    assert [c["name"] for c in health["checks"]] == ["min_semantic_pass_unseen", "min_schema_valid"]
    assert health["figures"]["semantic_pass_unseen"] == 0.2 and health["figures"]["semantic_pass_fr"] == 0.2
    assert len(read_jsonl(tmp_path / "reports" / "run_history.jsonl")) == 1


def test_a_student_worse_than_the_previous_run_by_more_than_max_drop_fails_one_line_per_check(tmp_path: Path,
                                                                                             capsys) -> None:
    assert gate_here(tmp_path, capsys, summary("sha256:old", 0.40, 0.25))[0] == 0
    code, err, health = gate_here(tmp_path, capsys, summary("sha256:new", 0.38, 0.10, query=0.1),
                                  "--max-drop", "0.05", "--min-semantic-pass-unseen", "0.2")
    assert code == 1 and not health["passed"]
    lines = err.strip().splitlines()
    assert lines == ["gate: semantic_pass_unseen is 0.100, below min_semantic_pass_unseen 0.2",
                     "gate: semantic_pass_unseen fell by 0.150 against the previous run, more than max_drop 0.05",
                     "gate: query_semantic_match fell by 0.200 against the previous run, more than max_drop 0.05"]
    assert health["previous_run"]["fingerprint"] == "sha256:old"
    assert health["trend"]["semantic_pass_seen"] == pytest.approx(-0.02)  # within max_drop: no failed check
    assert health["artifacts"]["eval_summary"].endswith("summary.json")


def test_the_same_weights_are_never_their_own_baseline_and_other_rows_are_not_compared(tmp_path: Path,
                                                                                       capsys) -> None:
    first = summary("sha256:a", 0.4, 0.2)
    assert gate_here(tmp_path, capsys, first)[0] == 0
    code, _, health = gate_here(tmp_path, capsys, first)  # the gate run again on the same run
    assert code == 0 and health["previous_run"] is None
    assert len(read_jsonl(tmp_path / "reports" / "run_history.jsonl")) == 1
    other_rows = summary("sha256:b", 0.0, 0.0, rows="sha256:other")
    code, _, health = gate_here(tmp_path, capsys, other_rows)
    assert code == 0 and health["previous_run"] is None  # no regression check across different test rows


def test_a_minimum_on_a_group_without_rows_fails_and_bad_input_is_exit_2(tmp_path: Path, capsys) -> None:
    code, err, _ = gate_here(tmp_path, capsys, summary("sha256:a", 0.4, None), "--min-semantic-pass-unseen", "0.1")
    assert code == 1 and "semantic_pass_unseen is none" in err
    code, err, _ = gate_here(tmp_path, capsys, {"not": "a summary"})
    assert code == 2 and "not an evaluation summary" in err and "\n" not in err.strip()
    code, err, _ = gate_here(tmp_path, capsys, summary("sha256:a", 0.4, 0.2), "--max-drop", "1.5")
    assert code == 2 and "--max-drop must be in [0, 1]" in err


def test_figures_read_every_headline_rate_of_a_summary() -> None:
    figures = headline_figures(summary("sha256:a", 0.5, 0.1))
    assert set(figures) == set(HEADLINE_FIGURES) and figures["schema_valid"] == 1.0 and figures["refusal_recall"] == 0.5
