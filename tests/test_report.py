"""Stage 9 reports: hand-made metrics and evaluation files in, Markdown + PNGs out."""
from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path
from typing import Any

import pytest

from ast_distill import cli
from ast_distill.calibration import confidence_summary
from ast_distill.reporting import alignment_reading, describe_change, query_of, same_rows_note, split_training_logs
from ast_distill.scoring import answer_kind_figures, classify_failure

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "report_training.py"
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _script() -> Any:
    spec = importlib.util.spec_from_file_location("report_training", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_script(argv: list[str]) -> int:
    module = _script()
    return cli.run(module.main, module.build_parser(), argv)


def metrics_block(n: int, semantic: float, **extra: float) -> dict[str, Any]:
    block = {"n": n, "parsed_rate": 0.975, "schema_valid_rate": 0.95, "exact_match_rate": semantic - 0.1,
             "semantic_match_rate": semantic, "teacher_accept_rate": semantic + 0.01,
             "semantic_pass_rate": semantic, "query_semantic_match_rate": semantic, "refusal_share": 0.25,
             "refusal_precision": 0.8, "refusal_recall": 0.667,
             "truncated_rate": 0.025}
    block.update(extra)
    return block


def summary(seen: float, unseen: float, en: float, fr: float, overall: float,
            dataset: str = "outputs/d_05_test_set.jsonl") -> dict[str, Any]:
    return {"adapter": "runs/sft/checkpoint-final", "dataset": dataset, "n": 160, "constrained": True,
            "teacher": {"backend": "grammar"},
            "overall": metrics_block(160, overall),
            "by_schema": {"seen": metrics_block(120, seen), "unseen": metrics_block(40, unseen)},
            "by_language": {"en": metrics_block(80, en), "fr": metrics_block(80, fr)},
            "speed": {"samples_per_s": 12.5, "ms_per_sample": 80.0, "wall_s": 12.8, "batch_size": 16}}


def training_logs(steps: int = 40, dpo: bool = False) -> list[dict[str, Any]]:
    logs = []
    for step in range(5, steps + 1, 5):
        log = {"step": step, "epoch": step / 40, "loss": 3.0 / step, "grad_norm": 1.0,
               "learning_rate": 1e-3 * (1 - step / (steps + 5))}
        if dpo:
            log.update({"rewards/chosen": 0.1 * step, "rewards/rejected": -0.05 * step,
                        "rewards/margins": 0.15 * step, "rewards/accuracies": min(1.0, 0.5 + step / 80)})
        logs.append(log)
        if not dpo and step % 10 == 0:
            logs.append({"step": step, "epoch": step / 40, "eval_loss": 2.5 / step, "eval_runtime": 1.0})
    if not dpo:
        logs.append({"step": 20, "samples": [{"query": "show open tickets", "output": '{"type":"query"}',
                                              "parsed": True, "schema_valid": True}]})
    return logs


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    return path


def write_json(path: Path, obj: Any) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj), encoding="utf-8")
    return path


def result_row(row_id: str, *, kind: str = "query", parsed: bool = True, valid: bool = True,
               semantic: bool = True, student_ast: Any = None, query: str = "q",
               verdict: Any = None) -> dict[str, Any]:
    gold = {"type": "refusal", "reason": "r", "suggestion": "s"} if kind == "refusal" else \
        {"type": "query", "limit": 5}
    if student_ast is None and parsed:
        student_ast = gold if semantic else {"type": "query", "limit": 7}
    prompt = f"<start_of_turn>user\nSchema:\nTickets\n\nRequest: {query}<end_of_turn>\n<start_of_turn>model\n"
    return {"id": row_id, "schema_id": "s1", "split": "test", "schema_seen": True, "language": "en",
            "kind": kind, "prompt_text": prompt, "student_raw": json.dumps(student_ast) if parsed else "{oops",
            "student_ast": student_ast, "parsed": parsed, "schema_valid": valid, "exact_match": semantic,
            "semantic_match": semantic, "teacher_verdict": verdict, "teacher_canonical": gold,
            "student_canonical": student_ast, "constrained": True, "truncated": not parsed, "latency_ms": 10.0}


def one_of_each_failure() -> list[dict[str, Any]]:
    refusal = {"type": "refusal", "reason": "r", "suggestion": "s"}
    return [
        result_row("ok1", query="fine request"),
        result_row("np1", parsed=False, valid=False, semantic=False, query="garbled output request"),
        result_row("si1", valid=False, semantic=False, query="invalid schema request"),
        result_row("wm1", semantic=False, verdict={"accept": False}, query="wrong meaning request"),
        result_row("wr1", semantic=False, student_ast=refusal, query="wrongly refused request"),
        result_row("mr1", kind="refusal", semantic=False, query="missed refusal request"),
    ]


@pytest.fixture
def run_layout(tmp_path: Path) -> dict[str, Path]:
    """A config whose default paths all point into tmp_path, as a real run would lay them out."""
    layout = {"train": tmp_path / "runs" / "sft", "eval": tmp_path / "runs" / "eval",
              "dpo": tmp_path / "runs" / "sft-dpo", "out": tmp_path / "reports"}
    layout["config"] = write_json(tmp_path / "config.json", {
        "training": {"output_dir": str(layout["train"])}, "evaluation": {"out_dir": str(layout["eval"])},
        "alignment": {"output_dir": str(layout["dpo"]), "pairs_out": str(tmp_path / "runs" / "align" / "pairs.jsonl")},
        "boost": {"output_dir": str(tmp_path / "runs" / "sft-boost")}, "reporting": {"out_dir": str(layout["out"])}})
    layout["boost"] = tmp_path / "runs" / "sft-boost"
    return layout


def test_report_and_plots_are_written_with_the_input_numbers(run_layout: dict[str, Path]) -> None:
    write_jsonl(run_layout["train"] / "training_metrics.jsonl", training_logs())
    write_json(run_layout["eval"] / "evaluation_summary.json", summary(0.437, 0.219, 0.391, 0.353, 0.372))
    write_jsonl(run_layout["eval"] / "evaluation_results.jsonl", one_of_each_failure())
    write_json(run_layout["eval"] / "unconstrained" / "evaluation_summary.json",
               summary(0.301, 0.152, 0.3, 0.3, 0.288))

    assert run_script(["--config", str(run_layout["config"])]) == 0

    out = run_layout["out"]
    report = (out / "report.md").read_text(encoding="utf-8")
    for png in ("sft_loss.png", "sft_learning_rate.png", "metrics_seen_vs_unseen.png", "metrics_en_vs_fr.png",
                "metrics_constrained_vs_unconstrained.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC), png
        assert f"]({png})" in report, f"{png} is not embedded"
    # The metrics table carries the summary's numbers as printed (three decimals).
    table_row = next(line for line in report.splitlines() if line.startswith("| semantic match |"))
    assert table_row.split("|")[2:7] == [" 0.372 ", " 0.437 ", " 0.219 ", " 0.391 ", " 0.353 "]
    assert "0.288" in report  # unconstrained overall semantic match
    assert "| samples per second | 12.50 |" in report
    assert "(1 of 6 result rows)" in report
    assert "Sample generations logged at step 20" in report
    assert not (out / "alignment_report.md").exists()
    assert (out / "report_run.json").is_file()
    assert "No confidence: these results carry no token probabilities" in report  # this summary has none


def test_the_report_shows_the_reliability_of_the_confidence_and_what_a_minimum_keeps(
        run_layout: dict[str, Path]) -> None:
    write_jsonl(run_layout["train"] / "training_metrics.jsonl", training_logs())
    records = [{"answer_logprob": math.log(0.95), "schema_valid": True, "semantic_match": i < 18} for i in range(20)]
    records += [{"answer_logprob": math.log(0.35), "schema_valid": True, "semantic_match": i < 5} for i in range(20)]
    confidence = confidence_summary(records, None, None)
    write_json(run_layout["eval"] / "evaluation_summary.json",
               {**summary(0.437, 0.219, 0.391, 0.353, 0.372), "confidence": confidence})

    assert run_script(["--config", str(run_layout["config"])]) == 0

    out = run_layout["out"]
    report = (out / "report.md").read_text(encoding="utf-8")
    assert (out / "reliability.png").read_bytes().startswith(PNG_MAGIC) and "](reliability.png)" in report
    assert "| 0.9-1.0 | 20 | 0.950 | 0.900 |" in report and "| 0.3-0.4 | 20 | 0.350 | 0.250 |" in report
    assert "| 0.5 | 0.500 | 0.900 |" in report  # --min-confidence 0.5 answers half, 90% of them right
    assert f"Expected calibration error {confidence['ece']:.3f}" in report


def test_the_report_shows_each_answer_kind_with_its_rows_and_two_standard_errors(
        run_layout: dict[str, Path]) -> None:
    write_jsonl(run_layout["train"] / "training_metrics.jsonl", training_logs())
    asked = {"type": "clarification", "question": "Which?", "options": []}
    query = {"type": "query", "limit": 3}
    records = ([{"kind": "clarification", "gold_ast": asked, "student_ast": asked, "semantic_match": True}] * 3
               + [{"kind": "clarification", "gold_ast": asked, "student_ast": query, "semantic_match": False}]
               + [{"kind": "query", "gold_ast": query, "student_ast": query, "semantic_match": True}] * 4)
    write_json(run_layout["eval"] / "evaluation_summary.json",
               {**summary(0.437, 0.219, 0.391, 0.353, 0.372), "answer_kinds": answer_kind_figures(records)})

    assert run_script(["--config", str(run_layout["config"])]) == 0

    report = (run_layout["out"] / "report.md").read_text(encoding="utf-8")
    assert "### Answer kinds" in report
    assert "| clarification precision | 1.000 | ± 0.000 | 3/3 |" in report
    assert f"| clarification recall | 0.750 | ± {2 * math.sqrt(0.75 * 0.25 / 4):.3f} | 3/4 |" in report
    assert "| refusal recall | n/a | n/a | 0/0 |" in report  # no refusal row: no rate, no error bar


def test_failures_are_grouped_by_cause_with_query_expected_and_student_output(tmp_path: Path) -> None:
    summary_path = write_json(tmp_path / "eval" / "evaluation_summary.json", summary(0.5, 0.4, 0.5, 0.4, 0.47))
    results = write_jsonl(tmp_path / "eval" / "evaluation_results.jsonl", one_of_each_failure())
    out = tmp_path / "out"

    assert run_script(["--eval-summary", str(summary_path), "--eval-results", str(results),
                       "--training-metrics", str(tmp_path / "none.jsonl"), "--out-dir", str(out)]) == 0

    report = (out / "report.md").read_text(encoding="utf-8")
    failures = report.split("## Example failures", 1)[1]
    assert "5 of 6 rows failed." in failures
    for cause, query in (("not parsed", "garbled output request"), ("schema invalid", "invalid schema request"),
                         ("wrong meaning", "wrong meaning request"), ("wrongly refused", "wrongly refused request"),
                         ("missed refusal", "missed refusal request")):
        section = failures.split(f"### {cause} (1 row)", 1)[1].split("###", 1)[0]
        assert f"`{query}`" in section, cause
        assert "teacher: `" in section and "student: `" in section
    assert "fine request" not in failures


def test_missing_optional_inputs_are_noted_not_fatal(run_layout: dict[str, Path]) -> None:
    write_jsonl(run_layout["train"] / "training_metrics.jsonl", training_logs())

    assert run_script(["--config", str(run_layout["config"])]) == 0

    report = (run_layout["out"] / "report.md").read_text(encoding="utf-8")
    assert "Evaluation summary: `" in report and "not found; skipped" in report
    assert "No evaluation summary was read" in report
    assert "No unconstrained evaluation summary" in report
    assert "No baseline summary given" in report
    assert (run_layout["out"] / "sft_loss.png").is_file()
    assert not (run_layout["out"] / "metrics_seen_vs_unseen.png").exists()


def test_no_training_metrics_and_no_eval_summary_is_a_one_line_error(
        run_layout: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    assert run_script(["--config", str(run_layout["config"])]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: nothing to report") and "\n" not in err
    assert not run_layout["out"].exists()


def test_bad_jsonl_line_in_metrics_exits_2_naming_file_and_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    metrics = tmp_path / "training_metrics.jsonl"
    metrics.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": \n{"step": 3, "loss": 1.0}\n',
                       encoding="utf-8")

    code = run_script(["--training-metrics", str(metrics), "--out-dir", str(tmp_path / "out")])

    assert code == 2
    assert f"{metrics}:2" in capsys.readouterr().err
    assert not (tmp_path / "out" / "report.md").exists()


def test_alignment_report_compares_sft_and_dpo_with_right_deltas(run_layout: dict[str, Path]) -> None:
    write_jsonl(run_layout["train"] / "training_metrics.jsonl", training_logs())
    write_json(run_layout["eval"] / "evaluation_summary.json", summary(0.41, 0.2, 0.35, 0.33, 0.36))
    write_jsonl(run_layout["eval"] / "evaluation_results.jsonl",
                [result_row("a", semantic=False), result_row("b"), result_row("c", semantic=False)])
    dpo_eval = run_layout["eval"].with_name("eval-dpo")
    write_json(dpo_eval / "evaluation_summary.json", summary(0.44, 0.2, 0.4, 0.3, 0.38))
    write_jsonl(dpo_eval / "evaluation_results.jsonl",
                [result_row("a"), result_row("b"), result_row("c", semantic=False)])
    write_jsonl(run_layout["dpo"] / "training_metrics.jsonl", training_logs(dpo=True))

    assert run_script(["--config", str(run_layout["config"])]) == 0

    out = run_layout["out"]
    text = (out / "alignment_report.md").read_text(encoding="utf-8")
    assert "| seen schemas | semantic pass | 0.410 | 0.440 | +0.030 |" in text
    assert "| unseen schemas | semantic pass | 0.200 | 0.200 | +0.000 |" in text
    assert "| FR | semantic match | 0.330 | 0.300 | -0.030 |" in text
    assert "on seen schemas, semantic pass rose from 0.410 to 0.440 (+0.030, n=120)" in text
    assert "on unseen schemas, semantic pass was unchanged at 0.200" in text
    assert "DPO fixed 1 and broke 0" in text
    assert "| fixed by DPO | 1 |" in text
    assert "not on the same rows" not in text
    for png in ("dpo_loss.png", "dpo_rewards.png", "metrics_sft_vs_dpo.png", "metrics_sft_vs_dpo_by_schema.png"):
        assert (out / png).read_bytes().startswith(PNG_MAGIC), png
        assert f"]({png})" in text, png
    assert "| rewards/accuracies | 0.5625 | 1.0000 | 40 |" in text


def test_alignment_report_puts_sft_dpo_and_boost_side_by_side_with_rows_fixed_cost_and_the_choice(
        run_layout: dict[str, Path]) -> None:
    write_jsonl(run_layout["train"] / "training_metrics.jsonl", training_logs())
    write_json(run_layout["eval"] / "evaluation_summary.json", summary(0.41, 0.2, 0.35, 0.33, 0.36))
    write_jsonl(run_layout["eval"] / "evaluation_results.jsonl",
                [result_row("a", semantic=False), result_row("b"), result_row("c", semantic=False)])
    for method, overall, rows in (("dpo", 0.38, [result_row("a"), result_row("b"), result_row("c", semantic=False)]),
                                  ("boost", 0.43, [result_row("a"), result_row("b", semantic=False),
                                                   result_row("c")])):
        folder = run_layout["eval"].with_name(f"eval-{method}")
        write_json(folder / "evaluation_summary.json", summary(0.44, 0.2, 0.4, 0.3, overall))
        write_jsonl(folder / "evaluation_results.jsonl", rows)
        write_jsonl(run_layout[method] / "training_metrics.jsonl",
                    training_logs(dpo=method == "dpo") + [{"step": 40, "train_runtime": 61.4 if method == "dpo" else 95.0}])
    write_json(run_layout["dpo"] / "run_config.json", {"counts": {"trained_pairs": 223}})
    write_json(run_layout["boost"] / "run_config.json",
               {"counts": {"train_rows": 7900, "train_rows_by_source": {"corpus": 7535, "boost": 365}}})
    write_json(run_layout["config"].parent / "runs" / "align" / "aligned.json", {
        "method": "boost", "checkpoint": "runs/sft-boost/checkpoint-best", "rule": "highest semantic pass on val",
        "val": {"sft": {"semantic_pass_rate": 0.05}, "dpo": {"semantic_pass_rate": 0.06},
                "boost": {"semantic_pass_rate": 0.09}}})

    assert run_script(["--config", str(run_layout["config"])]) == 0

    text = (run_layout["out"] / "alignment_report.md").read_text(encoding="utf-8")
    assert "| figure | SFT | DPO | boost |" in text
    assert "| semantic pass, all rows | 0.360 | 0.380 | 0.430 |" in text
    assert "| rows fixed vs SFT | - | 1 | 2 |" in text and "| rows broken vs SFT | - | 0 | 1 |" in text
    assert "| training seconds | - | 61 | 95 |" in text
    assert "| trained on | - | 223 pairs | 7900 rows, 365 of them new |" in text
    assert "| val semantic pass (the choice) | 0.050 | 0.060 | 0.090 |" in text
    assert "DPO fixed 1 and broke 0 of 3 rows (net +1); boost fixed 2 and broke 1 of 3 rows (net +1)." in text
    assert "Kept: **boost**" in text


def test_alignment_report_warns_when_rows_differ_and_notes_missing_dpo_eval() -> None:
    sft = summary(0.41, 0.2, 0.35, 0.33, 0.36)
    dpo = summary(0.44, 0.2, 0.4, 0.3, 0.38, dataset="outputs/other.jsonl")
    assert "datasets differ" in same_rows_note(sft, dpo)
    assert same_rows_note(sft, sft) is None
    reading = alignment_reading(sft, None, split_training_logs(training_logs(dpo=True)), None)
    assert "no evaluation of the DPO adapter" in reading
    assert "loss went from 0.600 to 0.075 over 40 steps" in reading


def test_small_moves_on_few_rows_are_called_noise_not_progress() -> None:
    before, after = metrics_block(20, 0.40), metrics_block(20, 0.45)
    clause, sign = describe_change("all rows", "semantic_pass_rate", before, after)
    assert "within noise" in clause and sign == 0
    big_before, big_after = metrics_block(5000, 0.40), metrics_block(5000, 0.45)
    clause, sign = describe_change("all rows", "semantic_pass_rate", big_before, big_after)
    assert "within noise" not in clause and sign == 1
    assert "DPO helped beyond noise" in alignment_reading(
        {"overall": big_before}, {"overall": big_after}, None, None)


def test_resumed_run_keeps_the_newest_log_of_each_step() -> None:
    logs = split_training_logs([{"step": 10, "loss": 2.0}, {"step": 20, "loss": 1.5},
                                {"step": 10, "loss": 1.9}, {"step": 10, "eval_loss": 1.8},
                                {"train_runtime": 5.0, "train_loss": 1.7, "step": 20}])
    assert [(log["step"], log["loss"]) for log in logs.train] == [(10, 1.9), (20, 1.5)]
    assert [log["eval_loss"] for log in logs.eval] == [1.8]
    assert logs.final is not None and logs.final["train_runtime"] == 5.0


def test_failure_causes_and_query_extraction() -> None:
    causes = [classify_failure(row) for row in one_of_each_failure()]
    assert causes == [None, "not parsed", "schema invalid", "wrong meaning", "wrongly refused", "missed refusal"]
    accepted_by_teacher = result_row("t", semantic=False, verdict={"accept": True})
    assert classify_failure(accepted_by_teacher) is None
    assert query_of(result_row("q", query="montre les billets | ouverts")) == "montre les billets | ouverts"


def test_the_report_puts_base_sft_and_dpo_side_by_side_seen_and_unseen_with_two_standard_errors(
        run_layout: dict[str, Path]) -> None:
    write_jsonl(run_layout["train"] / "training_metrics.jsonl", training_logs())
    write_json(run_layout["eval"] / "evaluation_summary.json", summary(0.5, 0.25, 0.35, 0.33, 0.36))
    base = write_json(run_layout["eval"].with_name("eval-base") / "evaluation_summary.json",
                      summary(0.1, 0.0, 0.1, 0.1, 0.1))
    dpo_eval = run_layout["eval"].with_name("eval-dpo")
    write_json(dpo_eval / "evaluation_summary.json", summary(0.6, 0.25, 0.4, 0.3, 0.38))

    assert run_script(["--config", str(run_layout["config"]), "--baseline-summary", str(base)]) == 0

    report = (run_layout["out"] / "report.md").read_text(encoding="utf-8")
    assert "| rows | base (no adapter) | SFT | SFT + DPO | always refuse |" in report
    # seen: n=120; 2 * sqrt(0.5 * 0.5 / 120) = 0.091; unseen: n=40, a rate of 0 has no spread
    assert ("| schema seen | 0.100 ± 0.055 (n=120) | 0.500 ± 0.091 (n=120) | 0.600 ± 0.089 (n=120) | 0.250 |"
            in report)
    assert ("| schema unseen | 0.000 ± 0.000 (n=40) | 0.250 ± 0.137 (n=40) | 0.250 ± 0.137 (n=40) | 0.250 |"
            in report)
    # queries only: a quarter of the rows are refusals, so 90 of the 120 seen rows; always refusing scores 0
    assert ("| schema seen, queries only | 0.100 ± 0.063 (n=90) | 0.500 ± 0.105 (n=90) | 0.600 ± 0.103 (n=90) "
            "| 0.000 |" in report)


def test_the_report_shows_the_checkpoint_sweep_and_this_run_against_earlier_runs_on_the_same_rows(
        run_layout: dict[str, Path]) -> None:
    write_jsonl(run_layout["train"] / "training_metrics.jsonl", training_logs())
    now = {**summary(0.6, 0.3, 0.5, 0.4, 0.45), "fingerprint": "sha256:cccccccccccccccc", "rows_digest": "sha256:r1"}
    write_json(run_layout["eval"] / "evaluation_summary.json", now)
    write_json(run_layout["train"] / "checkpoint_sweep.json", {
        "selected": "checkpoint-20", "selected_step": 20, "ranking": [
            {"name": "checkpoint-20", "step": 20, "n": 50, "semantic_pass_rate": 0.62, "schema_valid_rate": 1.0,
             "query_semantic_match_rate": 0.55, "eval_loss": 0.71},
            {"name": "checkpoint-final", "step": 40, "n": 50, "semantic_pass_rate": 0.58, "schema_valid_rate": 1.0,
             "query_semantic_match_rate": 0.5, "eval_loss": 0.69}]})

    def entry(fingerprint: str, rows: str, seen: float, passed: bool) -> dict[str, Any]:
        return {"adapter": "runs/sft/checkpoint-best", "fingerprint": fingerprint, "rows_digest": rows,
                "recorded_at": f"2026-11-{fingerprint[-2:]}", "passed": passed,
                "figures": {"semantic_pass_seen": seen, "semantic_pass_unseen": 0.2, "query_semantic_match": 0.3,
                            "schema_valid": 1.0}}
    write_jsonl(run_layout["out"] / "run_history.jsonl", [
        entry("sha256:aaaaaaaaaaaa01", "sha256:r1", 0.41, True), entry("sha256:bbbbbbbbbbbb02", "sha256:r0", 0.9, True),
        entry("sha256:dddddddddddd03", "sha256:r1", 0.52, False)])

    assert run_script(["--config", str(run_layout["config"])]) == 0
    report = (run_layout["out"] / "report.md").read_text(encoding="utf-8")
    sweep = report.split("## Checkpoint selection (the sweep)")[1].split("\n## ")[0]
    assert "**checkpoint-20** (step 20)" in sweep and "| **checkpoint-20** | 20 | 0.620 | 1.000 | 0.550 | 0.7100 |" in sweep
    trend = report.split("## This run against the previous runs")[1].split("\n## ")[0]
    rows = [line for line in trend.splitlines() if line.startswith("| 2026") or line.startswith("| this report")]
    assert [r.split("|")[1].strip() for r in rows] == ["2026-11-01", "2026-11-03", "this report"]
    assert [r.split("|")[4].strip() for r in rows] == ["0.410", "0.520", "0.600"]  # semantic pass, seen
    assert "Left out: 1 history entries made on other rows" in trend and "](trend.png)" in trend
    assert (run_layout["out"] / "trend.png").read_bytes().startswith(PNG_MAGIC)
