"""OpenAITeacher against the fake server's OpenAI-compatible route on 127.0.0.1."""
from __future__ import annotations

import asyncio

import pytest
from fake_ollama import CANNED_PAIRS, CANNED_SPEC, FakeOllama, canned_responder, free_port, real_schema_row

from ast_distill import dsl
from ast_distill.teachers.base import TeacherError
from ast_distill.teachers.llm_teacher import TeacherReplyError
from ast_distill.teachers.openai_teacher import OpenAITeacher

MODEL = "served-model"


def make_teacher(base_url: str, **overrides) -> OpenAITeacher:
    settings = dict(model=MODEL, base_url=base_url, api_key=None, timeout_s=5.0, retries=3, retry_wait_s=0.01,
                    concurrency=2, temperature=0.5)
    settings.update(overrides)
    return OpenAITeacher(**settings)


async def pairs_then_close(teacher: OpenAITeacher, n: int = 4) -> list:
    try:
        return await teacher.generate_pairs(real_schema_row(), CANNED_SPEC, n=n, seed=3)
    finally:
        await teacher.aclose()


def test_generate_pairs_uses_json_schema_response_format_and_validates(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    row = real_schema_row()
    pairs = asyncio.run(pairs_then_close(make_teacher(fake_ollama.openai_url)))

    assert all(dsl.validation_error(row["schema"], p.ast) is None for p in pairs)
    assert [p.kind for p in pairs].count("refusal") == 1
    (request,) = fake_ollama.chat_requests
    assert request.path == "/v1/chat/completions" and request.model == MODEL
    assert request.body["response_format"]["type"] == "json_schema"
    assert request.schema["properties"]["pairs"]["items"]["properties"]["ast"]["anyOf"]
    assert request.body["seed"] == 3 and request.body["temperature"] == 0.5


def test_domain_spec_and_judge_share_the_prompts_and_parsing(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    teacher = make_teacher(fake_ollama.openai_url)

    async def both():
        try:
            spec = await teacher.domain_spec({"domain": "real estate"}, examples_per_schema=2, seed=1)
            verdict = await teacher.judge(real_schema_row()["schema"], "flats in Lyon", None,
                                          {"type": "query"}, "{}")
            return spec, verdict
        finally:
            await teacher.aclose()

    spec, verdict = asyncio.run(both())
    assert spec["fields"] == CANNED_SPEC["fields"] and spec["domain"] == "real estate"
    assert verdict.accept is False and verdict.canonical_ast == CANNED_PAIRS[0]["ast"]
    assert [r.task for r in fake_ollama.chat_requests] == ["spec", "verdict"]


def test_a_server_that_rejects_json_schema_gets_json_object_from_then_on(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    fake_ollama.reject_json_schema = True
    teacher = make_teacher(fake_ollama.openai_url, retries=0)

    async def twice():
        try:
            first = await teacher.generate_pairs(real_schema_row(), CANNED_SPEC, n=4, seed=1)
            second = await teacher.generate_pairs(real_schema_row(), CANNED_SPEC, n=4, seed=2)
            return first, second
        finally:
            await teacher.aclose()

    first, second = asyncio.run(twice())
    assert len(first) == len(second) == 4
    modes = [r.body.get("response_format", {}).get("type") for r in fake_ollama.chat_requests]
    assert modes == ["json_schema", "json_object", "json_object"]
    assert teacher.describe()["response_mode"] == "json_object"


@pytest.mark.parametrize("fault", ["http_500", "not_json", "bad_schema", "slow", "drop", "bad_body"])
def test_each_fault_is_retried_then_the_call_succeeds(fake_ollama: FakeOllama, fault: str):
    fake_ollama.responder = canned_responder
    fake_ollama.add_faults(fault)
    pairs = asyncio.run(pairs_then_close(make_teacher(fake_ollama.openai_url, timeout_s=0.5, retries=2)))
    assert len(pairs) == 4
    assert len(fake_ollama.chat_requests) == 2


def test_replies_that_keep_breaking_the_schema_raise_teacher_error(fake_ollama: FakeOllama):
    fake_ollama.add_faults("not_json", "bad_schema")
    with pytest.raises(TeacherReplyError, match="after 2 tries"):
        asyncio.run(pairs_then_close(make_teacher(fake_ollama.openai_url, retries=1)))
    assert len(fake_ollama.chat_requests) == 2


def test_a_dead_server_gives_a_clear_teacher_error_after_the_retries():
    base_url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(TeacherError) as caught:
        asyncio.run(pairs_then_close(make_teacher(base_url, retries=2)))
    message = str(caught.value)
    assert "\n" not in message
    assert f"server at {base_url} refused the connection after 3 tries" in message
    assert "teacher.openai_base_url" in message


def test_forever_retries_keep_going_until_the_server_heals(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    fake_ollama.add_faults(*["http_500"] * 5)
    pairs = asyncio.run(pairs_then_close(make_teacher(fake_ollama.openai_url, retries=-1, retry_wait_s=0.001)))
    assert len(pairs) == 4 and len(fake_ollama.chat_requests) == 6


@pytest.mark.parametrize("concurrency", [1, 6])
def test_concurrency_bounds_the_requests_in_flight(fake_ollama: FakeOllama, concurrency: int):
    fake_ollama.delay_s = 0.05
    teacher = make_teacher(fake_ollama.openai_url, concurrency=concurrency)
    schema = real_schema_row()["schema"]

    async def run_all():
        try:
            return await asyncio.gather(*(teacher.judge(schema, f"q{i}", None, {"type": "query"}, "{}")
                                          for i in range(6)))
        finally:
            await teacher.aclose()

    assert len(asyncio.run(run_all())) == 6
    if concurrency == 1:
        assert fake_ollama.max_in_flight == 1
    else:
        assert 1 < fake_ollama.max_in_flight <= concurrency


def test_ensure_model_available_names_the_served_models():
    async def check(url: str, model: str) -> None:
        teacher = make_teacher(url, model=model)
        try:
            await teacher.ensure_model_available()
        finally:
            await teacher.aclose()

    fake = FakeOllama(models=[MODEL])
    with fake:
        asyncio.run(check(fake.openai_url, MODEL))
        with pytest.raises(TeacherError, match=f"serves: {MODEL}"):
            asyncio.run(check(fake.openai_url, "missing-model"))
