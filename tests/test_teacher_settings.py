"""LLM teacher settings are honoured, not only parsed: --concurrency, refusal_fraction, examples_per_schema
and the seed, one model rule for generating and judging (and the preflight check), OLLAMA_HOST."""
from __future__ import annotations

import asyncio
import importlib.util
import json
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from fake_ollama import CANNED_SPEC, FakeOllama, LLMLikeResponder, canned_responder, real_schema_row

from ast_distill import cli
from ast_distill.config import (
    REPO_ROOT,
    generation_teacher_model,
    judge_teacher_model,
    load_config,
)
from ast_distill.dataset import build_schemas, generate_domain_specs
from ast_distill.errors import UserError
from ast_distill.jsonl import read_jsonl, write_jsonl_atomic
from ast_distill.teachers import check, llm_prompts, make_teacher
from ast_distill.teachers.grammar import GrammarTeacher
from ast_distill.teachers.llm_teacher import LLMTeacher
from ast_distill.teachers.ollama_teacher import DEFAULT_HOST, resolve_ollama_hosts

MODEL = "teacher-model:test"


def load_script(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(f"script_{name}", REPO_ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def ollama_config(url: str | None, **sections: dict[str, Any]) -> dict[str, Any]:
    config = load_config(None)
    config["teacher"]["host"] = url
    for section, values in sections.items():
        config[section].update(values)
    return config


def pairs_requests(teacher: LLMTeacher, spec: dict[str, Any], n: int, seed: int) -> None:
    async def run() -> None:
        try:
            await teacher.generate_pairs(real_schema_row(), spec, n, seed)
        finally:
            await teacher.aclose()

    asyncio.run(run())


def shown_examples(content: str) -> list[str]:
    """The example requests a pairs request shows, in order."""
    section = content.split("Example requests for inspiration:\n", 1)[1].split("\n\n", 1)[0]
    return [line[2:] for line in section.splitlines()]


# --- --concurrency ------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def four_schemas(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """d_01 and d_02 for four domains, from the built-in teacher (no server needed for stages 1-2)."""
    root = tmp_path_factory.mktemp("four_schemas")
    write_jsonl_atomic(root / "prompts.jsonl", read_jsonl(REPO_ROOT / "data" / "domain_prompts.jsonl")[:4])
    generate_domain_specs(teacher=GrammarTeacher(1), prompts_path=root / "prompts.jsonl", examples_per_schema=3,
                          schemas_per_domain=1, max_domains=None, seed=1, retries=0, out=root / "d_01.jsonl",
                          settings={})
    build_schemas(specs_path=root / "d_01.jsonl", template_path=REPO_ROOT / "data" / "base_schema_template.json",
                  catalog_path=REPO_ROOT / "data" / "operator_catalog.json", min_operators=4, max_operators=7,
                  seed=1, out=root / "d_02.jsonl", settings={})
    return {"specs": root / "d_01.jsonl", "schemas": root / "d_02.jsonl"}


@pytest.mark.parametrize(("configured", "flag"), [(1, 3), (8, 1)])
def test_dataset_concurrency_flag_sets_the_requests_in_flight(tmp_path: Path, four_schemas: dict[str, Path],
                                                              configured: int, flag: int) -> None:
    script = load_script("generate_dataset")
    fake = FakeOllama(LLMLikeResponder(), delay_s=0.2)
    with fake as url:
        config = tmp_path / "config.json"
        config.write_text(json.dumps({"teacher": {"backend": "ollama", "host": url, "concurrency": configured},
                                      "dataset_generation": {"teacher_model": MODEL, "teacher_retries": 0}}))
        argv = ["--config", str(config), "--schemas", str(four_schemas["schemas"]), "--domain-specs",
                str(four_schemas["specs"]), "--samples-per-schema", "4", "--concurrency", str(flag),
                "--out", str(tmp_path / "d_03.jsonl")]
        assert cli.run(script.main, script.build_parser(), argv) == 0
    assert len(read_jsonl(tmp_path / "d_03.jsonl")) == 16
    if flag == 1:
        assert fake.max_in_flight == 1  # teacher.concurrency 8 does not outrank the flag
    else:
        assert 1 < fake.max_in_flight <= flag  # more than teacher.concurrency 1: the flag reached the teacher


# --- refusal_fraction -----------------------------------------------------------------------------------------

def test_llm_teachers_ask_for_the_configured_share_of_refusals(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = canned_responder
    config = ollama_config(fake_ollama.url, dataset_generation={"refusal_fraction": 0.4})
    teacher = make_teacher(config, MODEL, retries=0, retry_wait_s=0.01, seed=0)
    assert teacher.describe()["refusal_fraction"] == 0.4
    pairs_requests(teacher, CANNED_SPEC, n=20, seed=1)
    asked = fake_ollama.chat_requests[0].messages[-1]["content"]
    # 20 rows at the default shares: 6% clarifications (1), 8% needing a context (one pair of twins).
    assert ("exactly 20 pairs: 10 in English and 10 in French; 8 of them refusals, 1 clarifications, 1 requests "
            "that need a context, each written twice") in asked
    openai = make_teacher({**config, "teacher": {**config["teacher"], "backend": "openai"}}, MODEL, retries=0,
                          retry_wait_s=0.01, seed=0)
    assert openai.refusal_fraction == 0.4
    with pytest.raises(UserError, match="refusal_fraction must be in"):
        make_teacher(ollama_config(fake_ollama.url, dataset_generation={"refusal_fraction": 1.5}), MODEL,
                     retries=0, retry_wait_s=0.01, seed=0)


# --- examples_per_schema and the seed ---------------------------------------------------------------------------

def test_pairs_requests_show_every_spec_example_in_an_order_set_by_the_seed(fake_ollama: FakeOllama) -> None:
    fake_ollama.responder = canned_responder
    examples = [f"example request {i:02d}" for i in range(30)]
    spec = {**CANNED_SPEC, "example_queries": examples}

    def shown(seed: int) -> list[list[str]]:
        start = len(fake_ollama.chat_requests)
        config = ollama_config(fake_ollama.url)
        pairs_requests(make_teacher(config, MODEL, retries=0, retry_wait_s=0.01, seed=0), spec,
                       n=3 * llm_prompts.PAIRS_PER_REQUEST, seed=seed)
        return [shown_examples(r.messages[-1]["content"]) for r in fake_ollama.chat_requests[start:]]

    first = shown(seed=5)
    assert len(first) == 3 and all(len(w) == llm_prompts.SPEC_EXAMPLES_SHOWN for w in first)
    assert set().union(*first) == set(examples)  # all 30, not only the first 12
    assert first[0] != examples[: llm_prompts.SPEC_EXAMPLES_SHOWN]  # shuffled
    assert shown(seed=5) == first  # the same for a seed
    assert shown(seed=6) != first


def test_few_examples_are_all_shown_shuffled_by_the_seed() -> None:
    spec = {"example_queries": ["a", "b", "c", "d", "e"]}
    windows = llm_prompts.example_windows(spec, seed=3, requests=2)
    assert windows[0] == windows[1] and sorted(windows[0]) == ["a", "b", "c", "d", "e"]
    assert windows == llm_prompts.example_windows(spec, seed=3, requests=2)


# --- one model rule for generating and judging; the preflight check tests the judge --------------------------

def test_the_judge_model_follows_the_same_rule_as_the_generating_model(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("LLM_MODEL", "from-env")
    config = load_config(None)
    config["dataset_generation"]["teacher_model"] = "writer"
    assert generation_teacher_model(None, config) == judge_teacher_model(None, config) == "writer"
    assert judge_teacher_model("from-flag", config) == generation_teacher_model("from-flag", config) == "from-flag"
    config["evaluation"]["teacher_model"] = "judge"
    assert judge_teacher_model(None, config) == "judge" and generation_teacher_model(None, config) == "writer"
    config["evaluation"]["teacher_model"] = config["dataset_generation"]["teacher_model"] = None
    assert generation_teacher_model(None, config) == judge_teacher_model(None, config) == "from-env"
    monkeypatch.delenv("LLM_MODEL")
    (tmp_path / ".llmrc").write_text("LLM_MODEL=from-llmrc\n", encoding="utf-8")
    assert generation_teacher_model(None, config) == judge_teacher_model(None, config) == "from-llmrc"
    config["teacher"]["backend"] = "grammar"
    assert generation_teacher_model("x", config) is None and judge_teacher_model("x", config) is None


def test_evaluate_student_judges_with_the_model_the_check_tests(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_MODEL", "from-env")
    script = load_script("evaluate_student")
    path = tmp_path / "config.json"
    for evaluation in ({"teacher_model": None}, {"teacher_model": "judge"}):
        path.write_text(json.dumps({"dataset_generation": {"teacher_model": "writer"}, "evaluation": evaluation}))
        config = load_config(path)
        args = script.build_parser().parse_args(["--config", str(path), "--adapter", "some/checkpoint"])
        assert script.settings_from(args, config).teacher_model == judge_teacher_model(None, config) == \
            (evaluation["teacher_model"] or "writer")


def test_the_preflight_check_tests_the_model_its_stage_will_call(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    with FakeOllama(models=["judge-model:1"]) as url:
        path = tmp_path / "config.json"
        path.write_text(json.dumps({"teacher": {"backend": "ollama", "host": url},
                                    "dataset_generation": {"teacher_model": "writer-model:1"},
                                    "evaluation": {"teacher_model": "judge-model:1"}}))

        def run(*flags: str) -> int:
            return cli.run(check.main, check.build_parser(), ["--config", str(path), *flags])

        assert run() == 0  # the judge (evaluation.teacher_model) is served
        capsys.readouterr()
        assert run("--role", "generate") == 2
        assert "ollama pull writer-model:1" in capsys.readouterr().err
        path.write_text(json.dumps({"teacher": {"backend": "ollama", "host": url},
                                    "dataset_generation": {"teacher_model": "judge-model:1"}}))
        assert run() == 0 and run("--role", "generate") == 0  # no judge named: the model that wrote the data


# --- OLLAMA_HOST ------------------------------------------------------------------------------------------------

def test_ollama_host_from_the_environment_when_the_config_names_none(fake_ollama: FakeOllama,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_ollama.responder = canned_responder
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{fake_ollama.port}")  # as users export it for the ollama CLI
    config = load_config(None)
    assert config["teacher"]["host"] is None
    teacher = make_teacher(config, MODEL, retries=0, retry_wait_s=0.01, seed=0)
    pairs_requests(teacher, CANNED_SPEC, n=4, seed=1)
    assert len(fake_ollama.chat_requests) == 1  # the request reached the server OLLAMA_HOST names
    assert str(fake_ollama.port) in teacher.where()
    assert resolve_ollama_hosts("http://127.0.0.1:9") == ["http://127.0.0.1:9"]  # the config's host wins
    monkeypatch.delenv("OLLAMA_HOST")
    assert resolve_ollama_hosts(None) == [DEFAULT_HOST] == ["http://127.0.0.1:11434"]
