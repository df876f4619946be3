"""Stages 1-4 with an LLM teacher (the fake Ollama server, faults injected), run twice as
runDatasetGeneration.sh runs them: the rerun keeps the specs and schema ids, asks for no spec, and d_04 builds.

The scripts run in this process (loaded from scripts/, called through cli.run like their __main__) so that the
fake server, a thread here, sees every request they make.
"""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest
from fake_ollama import FakeOllama, LLMLikeResponder

from ast_distill import cli
from ast_distill.config import REPO_ROOT
from ast_distill.jsonl import read_jsonl, write_jsonl_atomic
from ast_distill.teachers import check

MODEL = "writer-model:test"
PROMPTS = read_jsonl(REPO_ROOT / "data" / "domain_prompts.jsonl")[:4]
SAMPLES = 12
STAGES = ("generate_domain_specs", "build_schemas", "generate_dataset", "build_training_corpus")
# Every kind of reply trouble a server gives, each retried by the teacher (teacher_retries covers them all).
FAULTS = ("http_500", "not_json", "bad_schema", "drop", "bad_body")


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


SCRIPTS = {name: load_script(name) for name in STAGES}


def outputs(root: Path) -> dict[str, Path]:
    return {key: root / "outputs" / f"{key}.jsonl" for key in ("d_01", "d_02", "d_03", "d_04", "d_05")}


def write_config(root: Path, url: str) -> Path:
    prompts = root / "prompts.jsonl"
    write_jsonl_atomic(prompts, PROMPTS)
    paths = outputs(root)
    config = {
        "teacher": {"backend": "ollama", "host": url, "timeout_s": 5.0, "concurrency": 2},
        "dataset_generation": {
            "prompts_path": str(prompts), "teacher_model": MODEL, "schemas_per_domain": 1,
            "examples_per_schema": 4, "samples_per_schema": SAMPLES, "teacher_retries": len(FAULTS),
            "teacher_retry_wait": 0.01, "checkpoint_every": 5, "heldout_schema_fraction": 0.25,
            "val_fraction": 0.1, "pref_fraction": 0.1, "test_fraction": 0.1,
            "schema_specs_out": str(paths["d_01"]), "final_schemas_out": str(paths["d_02"]),
            "dataset_out": str(paths["d_03"]), "training_corpus_out": str(paths["d_04"]),
            "test_set_out": str(paths["d_05"]), "pretty_dir": str(root / "outputs" / "pretty")}}
    path = root / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_dataset_generation(config: Path) -> None:
    """What runDatasetGeneration.sh runs: the preflight check, then stages 1-4, each stopping the run on error."""
    assert cli.run(check.main, check.build_parser(), ["--config", str(config), "--role", "generate"]) == 0
    for stage in STAGES:
        script = SCRIPTS[stage]
        assert cli.run(script.main, script.build_parser(), ["--config", str(config)]) == 0, stage


def test_a_rerun_with_an_llm_teacher_keeps_specs_and_schema_ids_and_builds_d04(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fake = FakeOllama(LLMLikeResponder(), models=[MODEL])
    with fake as url:
        config = write_config(tmp_path, url)
        paths = outputs(tmp_path)
        fake.add_faults(*FAULTS)
        run_dataset_generation(config)
        assert not fake.faults  # every fault was met, and retried
        specs, schema_ids = read_jsonl(paths["d_01"]), [r["id"] for r in read_jsonl(paths["d_02"])]
        rows = read_jsonl(paths["d_03"])
        assert len(specs) == len(schema_ids) == len(PROMPTS) and len(rows) == len(PROMPTS) * SAMPLES

        # An interrupted stage 3: a third of the rows are gone. The rerun meets the same faults.
        write_jsonl_atomic(paths["d_03"], rows[: len(rows) // 3])
        first_run = len(fake.chat_requests)
        fake.add_faults(*FAULTS)
        capsys.readouterr()
        run_dataset_generation(config)
        log = capsys.readouterr()

    asked = [r.task for r in fake.chat_requests[first_run:]]
    assert "spec" not in asked and "pairs" in asked  # the specs were kept; only the missing rows were asked for
    assert not fake.faults
    assert read_jsonl(paths["d_01"]) == specs
    assert [r["id"] for r in read_jsonl(paths["d_02"])] == schema_ids
    again = read_jsonl(paths["d_03"])
    assert len(again) == len({r["id"] for r in again}) == len(PROMPTS) * SAMPLES
    assert {r["schema_id"] for r in again} == set(schema_ids)  # no stray rows of schemas that no longer exist
    assert "does not have" not in log.err
    corpus, test = read_jsonl(paths["d_04"]), read_jsonl(paths["d_05"])
    assert corpus and {r["split"] for r in corpus} >= {"train"}
    assert len(corpus) + len(test) == len([r for r in again if r["is_valid"]])
