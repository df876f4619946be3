"""Stages 1-4 end to end on a tiny config with the built-in teacher: outputs, honest splits, resume, bad input.

Scripts run as subprocesses with the venv's python (sys.executable), exactly as users run them.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from ast_distill.config import REPO_ROOT
from ast_distill.dataset import build_schemas, generate_dataset, generate_domain_specs
from ast_distill.errors import UserError
from ast_distill.jsonl import read_jsonl, write_jsonl_atomic
from ast_distill.prompting import build_completion, build_prompt
from ast_distill.teachers.base import GeneratedPair, Teacher, TeacherError

STAGES = ("generate_domain_specs", "build_schemas", "generate_dataset", "build_training_corpus")
PROMPTS = read_jsonl(REPO_ROOT / "data" / "domain_prompts.jsonl")
SCHEMAS_PER_DOMAIN, SAMPLES_PER_SCHEMA = 2, 24


def outputs_of(root: Path) -> dict[str, Path]:
    out = root / "outputs"
    return {"specs": out / "d_01.jsonl", "schemas": out / "d_02.jsonl", "dataset": out / "d_03.jsonl",
            "corpus": out / "d_04.jsonl", "test": out / "d_05.jsonl", "pretty": out / "pretty"}


def write_config(root: Path, extra: dict[str, Any] | None = None) -> Path:
    """A tiny config whose inputs and outputs all live under root."""
    root.mkdir(parents=True, exist_ok=True)
    prompts = root / "prompts.jsonl"
    if not prompts.exists():
        write_jsonl_atomic(prompts, PROMPTS[:4])
    paths = outputs_of(root)
    section = {"prompts_path": str(prompts), "schemas_per_domain": SCHEMAS_PER_DOMAIN,
               "samples_per_schema": SAMPLES_PER_SCHEMA, "examples_per_schema": 3, "checkpoint_every": 5,
               "heldout_schema_fraction": 0.25, "val_fraction": 0.1, "pref_fraction": 0.1, "test_fraction": 0.1,
               "schema_specs_out": str(paths["specs"]), "final_schemas_out": str(paths["schemas"]),
               "dataset_out": str(paths["dataset"]), "training_corpus_out": str(paths["corpus"]),
               "test_set_out": str(paths["test"]), "pretty_dir": str(paths["pretty"])}
    config = {"teacher": {"backend": "grammar"}, "dataset_generation": section}
    for key, values in (extra or {}).items():
        config.setdefault(key, {}).update(values)
    path = root / "config.json"
    path.write_text(json.dumps(config), encoding="utf-8")
    return path


def run_stage(stage: str, config: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / f"{stage}.py"), "--config", str(config),
                           *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, result.stderr[-3000:]
    return result


@pytest.fixture(scope="module")
def pipeline(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    root = tmp_path_factory.mktemp("pipeline")
    config = write_config(root)
    logs = {stage: ok(run_stage(stage, config)).stdout for stage in STAGES}
    return {"root": root, "config": config, "paths": outputs_of(root), "logs": logs}


def copy_pipeline(pipeline: dict[str, Any], root: Path, extra: dict[str, Any] | None = None) -> Path:
    shutil.copytree(pipeline["root"] / "outputs", root / "outputs")
    shutil.copy(pipeline["root"] / "prompts.jsonl", root / "prompts.jsonl")
    return write_config(root, extra)


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def by_id(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: r["id"])


def assert_one_line_error(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, (result.stdout[-2000:], result.stderr[-2000:])
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


# --------------------------------------------------------------------------------------------------------
# The happy path
# --------------------------------------------------------------------------------------------------------

def test_stages_write_every_artifact_with_its_provenance(pipeline: dict[str, Any]) -> None:
    paths = pipeline["paths"]
    assert len(read_jsonl(paths["specs"])) == 4 * SCHEMAS_PER_DOMAIN
    assert len(read_jsonl(paths["schemas"])) == 4 * SCHEMAS_PER_DOMAIN
    assert len(read_jsonl(paths["dataset"])) == 4 * SCHEMAS_PER_DOMAIN * SAMPLES_PER_SCHEMA
    for key in ("specs", "schemas", "dataset", "corpus", "test"):
        meta = json.loads(Path(f"{paths[key]}.meta.json").read_text(encoding="utf-8"))
        assert meta["settings"] and meta["versions"]["jsonschema"] and "commit" in meta["git"]
    pretty = sorted(p.name for p in paths["pretty"].iterdir())
    assert pretty == ["d_01.json", "d_02.json", "d_03.json", "d_04.json", "d_05.json"]
    assert json.loads((paths["pretty"] / "d_03.json").read_text(encoding="utf-8")) == read_jsonl(paths["dataset"])
    assert "split report" in pipeline["logs"]["build_training_corpus"]
    assert "distinct_query_ratio" in pipeline["logs"]["generate_dataset"]


def test_every_valid_row_validates_against_its_schema_draft_2020_12(pipeline: dict[str, Any]) -> None:
    schemas = {r["id"]: r["schema"] for r in read_jsonl(pipeline["paths"]["schemas"])}
    rows = read_jsonl(pipeline["paths"]["dataset"])
    valid = [r for r in rows if r["is_valid"]]
    assert len(valid) == len(rows)  # the built-in teacher writes only valid ASTs
    for schema in schemas.values():
        Draft202012Validator.check_schema(schema)
    for row in valid:
        Draft202012Validator(schema=schemas[row["schema_id"]]).validate(row["ast"])
    assert {r["language"] for r in rows} == {"en", "fr"}
    assert any(r["kind"] == "refusal" for r in rows)


def test_splits_are_honest(pipeline: dict[str, Any]) -> None:
    paths = pipeline["paths"]
    domain_of = {r["id"]: r["domain"] for r in read_jsonl(paths["schemas"])}
    corpus, test = read_jsonl(paths["corpus"]), read_jsonl(paths["test"])
    held = set(json.loads(Path(f"{paths['corpus']}.meta.json").read_text())["summary"]["heldout_domains"])
    assert len(held) == 1  # 25 % of 4 domains
    assert {r["split"] for r in corpus} <= {"train", "val", "pref"} and {r["split"] for r in test} == {"test"}
    assert not {r["id"] for r in corpus} & {r["id"] for r in test}
    assert all(r["schema_seen"] and domain_of[r["schema_id"]] not in held for r in corpus)
    # every row of a held-out domain (all its schema variants) is in d_05, marked unseen
    held_rows = {r["id"] for r in read_jsonl(paths["dataset"]) if domain_of[r["schema_id"]] in held}
    unseen = {r["id"] for r in test if not r["schema_seen"]}
    assert held_rows == unseen and len({r["schema_id"] for r in test if not r["schema_seen"]}) == SCHEMAS_PER_DOMAIN
    assert any(r["schema_seen"] for r in test)
    assert len(corpus) + len(test) == len(read_jsonl(paths["dataset"]))
    assert {"train", "val", "pref"} == {r["split"] for r in corpus}


def test_one_request_text_lands_in_one_split(pipeline: dict[str, Any]) -> None:
    rows = read_jsonl(pipeline["paths"]["corpus"]) + read_jsonl(pipeline["paths"]["test"])
    splits: dict[str, set[str]] = {}
    for row in rows:
        if row["schema_seen"]:
            splits.setdefault(" ".join(row["query"].lower().split()), set()).add(row["split"])
    assert all(len(s) == 1 for s in splits.values())


def test_prompts_and_completions_come_from_the_one_builder(pipeline: dict[str, Any]) -> None:
    schemas = {r["id"]: r["schema"] for r in read_jsonl(pipeline["paths"]["schemas"])}
    for row in read_jsonl(pipeline["paths"]["corpus"])[:40] + read_jsonl(pipeline["paths"]["test"])[:40]:
        assert row["prompt"] == build_prompt(schemas[row["schema_id"]], row["query"], "compact", row.get("context"))
        assert row["completion"] == build_completion(row["ast"])


def test_invalid_rows_never_reach_any_split(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    config = copy_pipeline(pipeline, tmp_path)
    paths = outputs_of(tmp_path)
    rows = read_jsonl(paths["dataset"])
    for row in rows[:10]:
        row.update(is_valid=False, validation_error="(root): broken on purpose")
    write_jsonl_atomic(paths["dataset"], rows)
    ok(run_stage("build_training_corpus", config, "--include-invalid"))
    used = {r["id"] for r in read_jsonl(paths["corpus"]) + read_jsonl(paths["test"])}
    assert not used & {r["id"] for r in rows[:10]}
    listing = read_jsonl(paths["corpus"].with_name("d_04.invalid.jsonl"))
    assert {r["id"] for r in listing} == {r["id"] for r in rows[:10]}


# --------------------------------------------------------------------------------------------------------
# Resume
# --------------------------------------------------------------------------------------------------------

def test_killed_generation_resumes_without_duplicates(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    schemas = tmp_path / "three_schemas.jsonl"
    write_jsonl_atomic(schemas, read_jsonl(pipeline["paths"]["schemas"])[:3])
    config = write_config(tmp_path)
    samples = 500
    common = ["--schemas", str(schemas), "--domain-specs", str(pipeline["paths"]["specs"]),
              "--samples-per-schema", str(samples), "--checkpoint-every", "7"]
    killed = tmp_path / "killed.jsonl"
    process = subprocess.Popen([sys.executable, str(REPO_ROOT / "scripts" / "generate_dataset.py"), "--config",
                                str(config), *common, "--out", str(killed)], cwd=REPO_ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not (killed.exists() and killed.stat().st_size > 0) and time.monotonic() < deadline:
        time.sleep(0.005)
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    at_kill = len(read_jsonl(killed))
    assert at_kill < 3 * samples, "the run finished before it was killed; nothing was tested"
    ok(run_stage("generate_dataset", config, *common, "--out", str(killed)))
    straight = tmp_path / "straight.jsonl"
    ok(run_stage("generate_dataset", config, *common, "--out", str(straight)))
    resumed, expected = read_jsonl(killed), read_jsonl(straight)
    assert len({r["id"] for r in resumed}) == len(resumed) == len(expected) == 3 * samples
    assert by_id(resumed) == by_id(expected)


def test_resume_after_a_torn_partial_write_matches_an_uninterrupted_run(tmp_path: Path,
                                                                        pipeline: dict[str, Any]) -> None:
    config = copy_pipeline(pipeline, tmp_path)
    dataset = outputs_of(tmp_path)["dataset"]
    expected = read_jsonl(dataset)
    data = dataset.read_bytes()
    dataset.write_bytes(data[: int(len(data) * 0.55)])  # cut inside a schema and inside a line
    result = ok(run_stage("generate_dataset", config))
    assert "torn last line" in result.stderr
    assert by_id(read_jsonl(dataset)) == by_id(expected)
    assert dataset.read_bytes().count(b"\n") == len(expected)


def test_no_resume_starts_over_and_checkpoint_path_feeds_out(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    config = copy_pipeline(pipeline, tmp_path)
    paths = outputs_of(tmp_path)
    expected = read_jsonl(paths["dataset"])
    stray = {**expected[0], "id": "stray", "query": "left over from another run"}
    write_jsonl_atomic(paths["dataset"], [stray] + expected[:5])
    ok(run_stage("generate_dataset", config, "--no-resume"))
    assert by_id(read_jsonl(paths["dataset"])) == by_id(expected)
    checkpoint, final = tmp_path / "work.jsonl", tmp_path / "final.jsonl"
    ok(run_stage("generate_dataset", config, "--checkpoint-path", str(checkpoint), "--out", str(final)))
    assert by_id(read_jsonl(final)) == by_id(read_jsonl(checkpoint)) == by_id(expected)


# --------------------------------------------------------------------------------------------------------
# Bad input: exit 2, one line on stderr, existing outputs untouched
# --------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("stage", STAGES)
def test_unknown_config_key_fails_cleanly(tmp_path: Path, pipeline: dict[str, Any], stage: str) -> None:
    config = copy_pipeline(pipeline, tmp_path, {"dataset_generation": {"samples_per_shema": 3}})
    before = snapshot(tmp_path / "outputs")
    assert_one_line_error(run_stage(stage, config), "unknown config key", "samples_per_shema")
    assert snapshot(tmp_path / "outputs") == before


def test_a_line_that_is_not_json_fails_cleanly(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    config = copy_pipeline(pipeline, tmp_path)
    schemas = outputs_of(tmp_path)["schemas"]
    lines = schemas.read_text(encoding="utf-8").splitlines(keepends=True)
    schemas.write_text(lines[0] + "{this is not json\n" + "".join(lines[1:]), encoding="utf-8")
    before = snapshot(tmp_path / "outputs")
    assert_one_line_error(run_stage("generate_dataset", config), "d_02.jsonl:2", "not valid JSON")
    assert snapshot(tmp_path / "outputs") == before


def test_a_template_that_is_not_a_json_schema_fails_cleanly(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    config = copy_pipeline(pipeline, tmp_path)
    template = json.loads((REPO_ROOT / "data" / "base_schema_template.json").read_text(encoding="utf-8"))
    template["$defs"]["Query"]["properties"]["limit"]["minimum"] = "one"  # a JSON Schema needs a number here
    bad = tmp_path / "template.json"
    bad.write_text(json.dumps(template), encoding="utf-8")
    before = snapshot(tmp_path / "outputs")
    assert_one_line_error(run_stage("build_schemas", config, "--template", str(bad)), "not a valid JSON Schema")
    assert snapshot(tmp_path / "outputs") == before


@pytest.mark.parametrize("content", ["", "\n\n", '{"id": "a", "domain": "x", "description": "y"}\nnope\n'],
                         ids=["empty", "blank-lines", "bad-line"])
def test_empty_or_broken_prompts_file_fails_cleanly(tmp_path: Path, pipeline: dict[str, Any], content: str) -> None:
    config = copy_pipeline(pipeline, tmp_path)
    (tmp_path / "prompts.jsonl").write_text(content, encoding="utf-8")
    before = snapshot(tmp_path / "outputs")
    result = run_stage("generate_domain_specs", config)
    assert_one_line_error(result, "prompts.jsonl")
    assert snapshot(tmp_path / "outputs") == before


def test_fractions_that_leave_no_training_rows_fail_cleanly(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    config = copy_pipeline(pipeline, tmp_path)
    before = snapshot(tmp_path / "outputs")
    result = run_stage("build_training_corpus", config, "--val-fraction", "0.5", "--test-fraction", "0.5")
    assert_one_line_error(result, "no training rows")
    assert snapshot(tmp_path / "outputs") == before


@pytest.mark.parametrize("stage", STAGES)
def test_help_works(stage: str) -> None:
    result = subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / f"{stage}.py"), "--help"],
                            cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "--config" in result.stdout and "Run as" not in result.stderr


# --------------------------------------------------------------------------------------------------------
# The stage with a non-deterministic (LLM-like) teacher, in process
# --------------------------------------------------------------------------------------------------------

class StubLLMTeacher(Teacher):
    """Returns fresh requests on every call, one duplicate and one invalid AST per call; can fail."""

    name = "stub"
    deterministic = False

    def __init__(self, fail_on_call: int | None = None, first: int = 0) -> None:
        self.model, self.concurrency = "stub-1", 1
        self.requests: list[tuple[str, int]] = []
        self.fail_on_call = fail_on_call
        self.counter = first

    async def generate_pairs(self, schema_row: dict[str, Any], spec: dict[str, Any], n: int,
                             seed: int) -> list[GeneratedPair]:
        self.requests.append((schema_row["id"], n))
        if self.fail_on_call is not None and len(self.requests) == self.fail_on_call:
            raise TeacherError("the stub server went away")
        pairs = []
        for i in range(n):
            self.counter += 1
            ast = {"type": "query", "limit": 5} if i else {"type": "query", "limit": "five"}  # first is invalid
            pairs.append(GeneratedPair(query=f"Request number {self.counter}", language="en" if i % 2 else "fr",
                                       ast=ast))
        pairs.insert(1, GeneratedPair(query=pairs[0].query.upper() + "!", language="en", ast={"type": "query"}))
        return pairs


def run_library_stage(pipeline: dict[str, Any], tmp_path: Path, teacher: Teacher, samples: int = 5) -> dict[str, Any]:
    schemas = tmp_path / "two_schemas.jsonl"
    if not schemas.exists():
        write_jsonl_atomic(schemas, read_jsonl(pipeline["paths"]["schemas"])[:2])
    return generate_dataset(teacher=teacher, schemas_path=schemas, specs_path=pipeline["paths"]["specs"],
                            samples_per_schema=samples, seed=1, out=tmp_path / "d_03.jsonl", checkpoint_path=None,
                            checkpoint_every=2, resume=True, concurrency=1, settings={})


def test_llm_rows_are_validated_deduplicated_and_topped_up_on_resume(tmp_path: Path,
                                                                       pipeline: dict[str, Any]) -> None:
    teacher = StubLLMTeacher()
    summary = run_library_stage(pipeline, tmp_path, teacher)
    rows = read_jsonl(tmp_path / "d_03.jsonl")
    assert summary["rows"] == len(rows) == 10 and summary["duplicates_dropped"] == 2
    invalid = [r for r in rows if not r["is_valid"]]
    assert len(invalid) == 2 and all("limit" in r["validation_error"] for r in invalid)
    assert all(r["teacher"] == "stub:stub-1" for r in rows)
    first_schema = rows[0]["schema_id"]
    write_jsonl_atomic(tmp_path / "d_03.jsonl", [r for r in rows if r["schema_id"] != first_schema] +
                       [r for r in rows if r["schema_id"] == first_schema][:2])
    again = StubLLMTeacher(first=100)
    run_library_stage(pipeline, tmp_path, again)
    assert again.requests == [(first_schema, 3)]  # only the missing rows of the partial schema are asked for
    final = read_jsonl(tmp_path / "d_03.jsonl")
    assert len(final) == 10 and len({r["id"] for r in final}) == 10
    # A teacher that repeats a request already written (up to case and punctuation) adds nothing for it.
    kept = [r for r in final if r["schema_id"] == first_schema][:2]
    write_jsonl_atomic(tmp_path / "d_03.jsonl", [r for r in final if r["schema_id"] != first_schema] + kept)
    echo = StubLLMTeacher()
    replies = [GeneratedPair(query=kept[0]["query"].upper() + " ?", language="fr", ast={"type": "query"}),
               GeneratedPair(query="A brand new request", language="en", ast={"type": "query"})]

    async def echo_pairs(*_args: Any) -> list[GeneratedPair]:
        return replies

    echo.generate_pairs = echo_pairs  # type: ignore[method-assign]
    summary = run_library_stage(pipeline, tmp_path, echo, samples=3)
    assert summary["duplicates_dropped"] == 1 and summary["new_rows"] == 1
    assert [r["query"] for r in read_jsonl(tmp_path / "d_03.jsonl")][-1] == "A brand new request"


def test_teacher_failure_keeps_the_rows_already_written(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    with pytest.raises(UserError, match="1 of 2 schemas done.*run again to resume.*went away"):
        run_library_stage(pipeline, tmp_path, StubLLMTeacher(fail_on_call=2))
    kept = read_jsonl(tmp_path / "d_03.jsonl")
    assert len(kept) == 5 and len({r["schema_id"] for r in kept}) == 1


# --------------------------------------------------------------------------------------------------------
# Stages 1 and 2 on a rerun: specs made with the same settings are kept, schema ids stay
# --------------------------------------------------------------------------------------------------------

class StubSpecTeacher(Teacher):
    """Writes a new spec on every call (as an LLM does); records the (prompt, seed) of each call; can fail."""

    name = "stub"

    def __init__(self, model: str = "stub-1", fail_on_call: int | None = None) -> None:
        self.model, self.concurrency = model, 1
        self.calls: list[str] = []
        self.fail_on_call = fail_on_call

    async def domain_spec(self, prompt_row: dict[str, Any], examples_per_schema: int, seed: int) -> dict[str, Any]:
        self.calls.append(prompt_row["id"])
        if self.fail_on_call is not None and len(self.calls) == self.fail_on_call:
            raise TeacherError("the stub server went away")
        return {"description": f"take {len(self.calls)}", "fields": prompt_row["fields"][:5],
                "example_queries": [f"request {len(self.calls)}"]}


def run_specs(tmp_path: Path, teacher: Teacher, prompts: list[dict[str, Any]] | None = None,
              examples: int = 3, seed: int = 1, resume: bool = True) -> list[dict[str, Any]]:
    write_jsonl_atomic(tmp_path / "prompts.jsonl", prompts or PROMPTS[:3])
    generate_domain_specs(teacher=teacher, prompts_path=tmp_path / "prompts.jsonl", examples_per_schema=examples,
                          schemas_per_domain=2, max_domains=None, seed=seed, retries=0, out=tmp_path / "d_01.jsonl",
                          settings={}, resume=resume)
    return read_jsonl(tmp_path / "d_01.jsonl")


def test_spec_rerun_asks_only_for_missing_or_changed_specs(tmp_path: Path) -> None:
    first = run_specs(tmp_path, StubSpecTeacher())
    assert len(first) == 6
    same = StubSpecTeacher()
    assert run_specs(tmp_path, same) == first and same.calls == []  # same settings: kept, no teacher call
    write_jsonl_atomic(tmp_path / "d_01.jsonl", first[1:])  # a spec skipped (or lost) earlier
    missing = StubSpecTeacher()
    again = run_specs(tmp_path, missing)
    assert missing.calls == [first[0]["prompt_id"]] and again[1:] == first[1:] and again[0]["id"] == first[0]["id"]
    edited = [dict(p) for p in PROMPTS[:3]]
    edited[2]["description"] += " Now with more detail."
    changed_prompt = StubSpecTeacher()
    run_specs(tmp_path, changed_prompt, prompts=edited)
    assert changed_prompt.calls == [edited[2]["id"]] * 2  # both variants of the edited prompt, nothing else
    for change in ({"examples": 4}, {"seed": 2}, {"resume": False}):
        teacher = StubSpecTeacher()
        run_specs(tmp_path, teacher, prompts=edited, **change)
        assert len(teacher.calls) == 6, change
    other_model = StubSpecTeacher(model="stub-2")
    run_specs(tmp_path, other_model, prompts=edited, resume=True)
    assert len(other_model.calls) == 6


def test_a_spec_teacher_failure_keeps_the_specs_done_and_the_rerun_goes_on(tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"of 6 specs asked for are done.*run again to resume.*went away") as caught:
        run_specs(tmp_path, StubSpecTeacher(fail_on_call=3))
    kept = read_jsonl(tmp_path / "d_01.jsonl")
    assert f"({len(kept)} of 6" in str(caught.value) and 2 <= len(kept) < 6  # those finished before the stop
    rest = StubSpecTeacher()
    final = run_specs(tmp_path, rest)
    assert len(rest.calls) == 6 - len(kept) and len(final) == 6 and all(r in final for r in kept)


def test_schema_ids_follow_from_the_specs_and_the_seed(tmp_path: Path, pipeline: dict[str, Any]) -> None:
    specs = pipeline["paths"]["specs"]

    def ids(seed: int, name: str, specs_path: Path = specs) -> list[str]:
        out = tmp_path / f"{name}.jsonl"
        build_schemas(specs_path=specs_path, template_path=REPO_ROOT / "data" / "base_schema_template.json",
                      catalog_path=REPO_ROOT / "data" / "operator_catalog.json", min_operators=4, max_operators=7,
                      seed=seed, out=out, settings={})
        return [r["id"] for r in read_jsonl(out)]

    first = ids(11, "a")
    assert ids(11, "b") == first  # same specs, same seed: same ids, run after run
    assert ids(12, "c") != first
    edited = read_jsonl(specs)
    edited[0]["description"] = "a spec an LLM wrote again, differently"
    write_jsonl_atomic(tmp_path / "edited.jsonl", edited)
    other = ids(11, "d", tmp_path / "edited.jsonl")
    assert other[0] != first[0] and other[1:] == first[1:]  # a new spec is a new schema: why stage 1 keeps specs
