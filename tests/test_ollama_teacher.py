"""OllamaTeacher against the fake Ollama server on 127.0.0.1: happy path, every scripted fault, concurrency."""
from __future__ import annotations

import asyncio
import json
import threading

import ollama
import pytest
from fake_ollama import CANNED_PAIRS, CANNED_SPEC, FakeOllama, canned_responder, free_port, real_schema_row
from jsonschema import Draft202012Validator

from ast_distill import dsl
from ast_distill.teachers import llm_prompts
from ast_distill.teachers.base import TeacherError, map_bounded
from ast_distill.teachers.llm_teacher import TeacherReplyError
from ast_distill.teachers.ollama_teacher import OllamaTeacher

MODEL = "teacher-model:test"
PROMPT_ROW = {"id": "p1", "domain": "real estate", "description": "Homes for sale in France."}


def make_teacher(host: str, **overrides) -> OllamaTeacher:
    settings = dict(model=MODEL, host=host, timeout_s=5.0, retries=3, retry_wait_s=0.01, concurrency=2,
                    num_ctx=None, temperature=0.7)
    settings.update(overrides)
    return OllamaTeacher(**settings)


async def judge_once(teacher: OllamaTeacher, schema_row: dict) -> object:
    try:
        return await teacher.judge(schema_row["schema"], "flats in Lyon", CANNED_PAIRS[0]["ast"],
                                   {"type": "query"}, '{"type":"query"}')
    finally:
        await teacher.aclose()


# --- happy path ----------------------------------------------------------------------------------------

def test_domain_spec_returns_d01_body_and_requests_structured_output(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    spec = asyncio.run(make_teacher(fake_ollama.url).domain_spec(PROMPT_ROW, examples_per_schema=7, seed=5))

    assert spec["domain"] == "real estate"
    assert spec["fields"] == CANNED_SPEC["fields"]
    assert spec["example_queries"] == CANNED_SPEC["example_queries"]
    dsl.check_fields(spec["fields"], "spec")  # raises if the body is not a usable field list
    (request,) = fake_ollama.chat_requests
    assert request.model == MODEL
    assert request.body["stream"] is False
    assert request.schema == llm_prompts.spec_format()
    assert request.options["seed"] == 5 and request.options["temperature"] == 0.7
    assert "real estate" in request.messages[-1]["content"] and "7 example queries" in request.messages[-1]["content"]


def test_generate_pairs_validate_against_a_real_dsl_schema(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    row = real_schema_row()
    pairs = asyncio.run(make_teacher(fake_ollama.url).generate_pairs(row, CANNED_SPEC, n=4, seed=1))

    assert [p.query for p in pairs] == [p["query"] for p in CANNED_PAIRS]
    assert all(dsl.validation_error(row["schema"], p.ast) is None for p in pairs)
    assert {p.language for p in pairs} == {"en", "fr"}
    assert [p.kind for p in pairs].count("refusal") == 1
    # The requested format wraps the DSL schema with its $defs hoisted: it is a valid schema that accepts
    # the DSL's ASTs and rejects what the DSL rejects.
    fmt = fake_ollama.chat_requests[0].schema
    Draft202012Validator.check_schema(fmt)
    validator = Draft202012Validator(fmt)
    assert validator.is_valid({"pairs": CANNED_PAIRS})
    broken = {"language": "en", "query": "q", "ast": {"type": "query", "filter": {"field": "nope", "op": "equals",
                                                                                  "value": 1}}}
    assert not validator.is_valid({"pairs": [broken]})


def test_embedding_a_schema_that_recurses_on_its_root_keeps_it_recursive():
    tree = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object",
            "properties": {"v": {"$ref": "#/$defs/V"}, "child": {"$ref": "#"}}, "required": ["v"],
            "additionalProperties": False, "$defs": {"V": {"type": "integer"}}}
    validator = Draft202012Validator(llm_prompts.pairs_format(tree))

    def wrapped(ast: dict) -> dict:
        return {"pairs": [{"language": "fr", "query": "q", "ast": ast}]}

    assert validator.is_valid(wrapped({"v": 1, "child": {"v": 2, "child": {"v": 3}}}))
    assert not validator.is_valid(wrapped({"v": 1, "child": {"v": "two"}}))
    assert not validator.is_valid(wrapped({"v": 1, "child": {"w": 2}}))


def test_generate_pairs_splits_big_requests_and_lists_earlier_queries(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    n = llm_prompts.PAIRS_PER_REQUEST + 3
    asyncio.run(make_teacher(fake_ollama.url).generate_pairs(real_schema_row(), CANNED_SPEC, n=n, seed=1))

    first, second = fake_ollama.chat_requests
    assert f"exactly {llm_prompts.PAIRS_PER_REQUEST} pairs" in first.messages[-1]["content"]
    assert "exactly 3 pairs" in second.messages[-1]["content"]
    assert "do not repeat" not in first.messages[-1]["content"]
    assert f"- {CANNED_PAIRS[0]['query']}" in second.messages[-1]["content"].split("do not repeat")[1]


def test_judge_returns_the_teachers_verdict_and_canonical_ast(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    verdict = asyncio.run(judge_once(make_teacher(fake_ollama.url), real_schema_row()))

    assert verdict.accept is False
    assert verdict.canonical_ast == CANNED_PAIRS[0]["ast"]
    assert verdict.reason == "the city filter is missing"
    assert fake_ollama.chat_requests[0].options["temperature"] == 0.0  # a judge starts greedy


def test_judge_never_accepts_a_student_output_that_is_not_json(fake_ollama: FakeOllama):
    fake_ollama.responder = lambda request: {"accept": True, "reason": "fine",
                                             "canonical_ast": CANNED_PAIRS[0]["ast"]}
    teacher = make_teacher(fake_ollama.url)
    verdict = asyncio.run(teacher.judge(real_schema_row()["schema"], "flats in Lyon", CANNED_PAIRS[0]["ast"],
                                        None, "flats lyon ???"))
    assert verdict.accept is False
    assert "flats lyon ???" in fake_ollama.chat_requests[0].messages[-1]["content"]


def test_num_ctx_is_sized_to_the_prompt_when_not_configured(fake_ollama: FakeOllama):
    row = real_schema_row()
    asyncio.run(make_teacher(fake_ollama.url).generate_pairs(row, CANNED_SPEC, n=20, seed=1))

    request = fake_ollama.chat_requests[0]
    num_ctx = request.options["num_ctx"]
    assert num_ctx >= llm_prompts.MIN_NUM_CTX
    assert num_ctx & (num_ctx - 1) == 0  # a power of two
    assert num_ctx >= request.prompt_chars / 3 + llm_prompts.pairs_reply_tokens(20)
    # A prompt twice the size of the context gets a bigger context.
    long_messages = [{"role": "user", "content": "x" * (num_ctx * 3 * 2)}]
    assert llm_prompts.estimate_num_ctx(long_messages, 0) > num_ctx


def test_configured_num_ctx_is_sent_verbatim(fake_ollama: FakeOllama):
    asyncio.run(judge_once(make_teacher(fake_ollama.url, num_ctx=12345), real_schema_row()))
    assert fake_ollama.chat_requests[0].options["num_ctx"] == 12345


def test_one_teacher_works_across_separate_event_loops(fake_ollama: FakeOllama):
    teacher = make_teacher(fake_ollama.url)
    row = real_schema_row()
    for _ in range(2):  # a stage may call asyncio.run more than once with one teacher
        asyncio.run(teacher.judge(row["schema"], "q", None, {"type": "query"}, "{}"))
    assert len(fake_ollama.chat_requests) == 2


# --- faults --------------------------------------------------------------------------------------------

@pytest.mark.parametrize("fault", ["http_500", "not_json", "bad_schema", "slow", "drop", "bad_body"])
def test_each_fault_is_retried_then_the_call_succeeds(fake_ollama: FakeOllama, fault: str):
    fake_ollama.responder = canned_responder
    fake_ollama.slow_s = 2.0
    fake_ollama.add_faults(fault)
    teacher = make_teacher(fake_ollama.url, timeout_s=0.5, retries=2)
    verdict = asyncio.run(judge_once(teacher, real_schema_row()))

    assert verdict.canonical_ast == CANNED_PAIRS[0]["ast"]
    assert len(fake_ollama.chat_requests) == 2


def test_a_retry_after_a_bad_reply_asks_with_a_new_seed(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    fake_ollama.add_faults("not_json")
    asyncio.run(make_teacher(fake_ollama.url).domain_spec(PROMPT_ROW, examples_per_schema=3, seed=5))
    seeds = [r.options["seed"] for r in fake_ollama.chat_requests]
    assert len(seeds) == 2 and seeds[0] != seeds[1]


def test_a_reply_that_keeps_breaking_the_schema_is_never_returned(fake_ollama: FakeOllama):
    fake_ollama.add_faults(*["bad_schema"] * 3)
    teacher = make_teacher(fake_ollama.url, retries=2)
    with pytest.raises(TeacherReplyError) as caught:
        asyncio.run(teacher.generate_pairs(real_schema_row(), CANNED_SPEC, n=4, seed=1))

    assert len(fake_ollama.chat_requests) == 3
    message = str(caught.value)
    assert "\n" not in message and "after 3 tries" in message and MODEL in message


def test_pairs_whose_asts_all_break_the_dsl_are_retried_and_never_marked_valid(fake_ollama: FakeOllama):
    bad_ast = {"type": "query", "filter": {"field": "kind", "op": "equals", "value": "castle"}}
    fake_ollama.responder = lambda request: {"pairs": [{"language": "en", "query": "castles", "ast": bad_ast}]}
    row = real_schema_row()
    pairs = asyncio.run(make_teacher(fake_ollama.url, retries=1).generate_pairs(row, CANNED_SPEC, n=1, seed=1))

    assert len(fake_ollama.chat_requests) == 2  # retried once
    # The last reply fits the envelope, so it comes back for the caller to record as invalid.
    assert [p.ast for p in pairs] == [bad_ast]
    assert dsl.validation_error(row["schema"], pairs[0].ast) is not None


def test_a_dead_server_gives_a_clear_teacher_error_after_the_retries():
    host = f"http://127.0.0.1:{free_port()}"
    teacher = make_teacher(host, retries=2)
    with pytest.raises(TeacherError) as caught:
        asyncio.run(judge_once(teacher, real_schema_row()))

    message = str(caught.value)
    assert "\n" not in message
    assert f"Ollama at {host} refused the connection after 3 tries" in message
    assert "ollama serve" in message and f"ollama pull {MODEL}" in message


def test_a_timeout_that_persists_names_the_timeout_setting(fake_ollama: FakeOllama):
    fake_ollama.slow_s = 2.0
    fake_ollama.add_faults("slow", "slow")
    with pytest.raises(TeacherError, match="did not answer within 0.3 s .*teacher.timeout_s"):
        asyncio.run(judge_once(make_teacher(fake_ollama.url, timeout_s=0.3, retries=1), real_schema_row()))


def test_forever_retries_keep_going_until_the_server_heals(fake_ollama: FakeOllama):
    fake_ollama.responder = canned_responder
    fake_ollama.add_faults(*["http_500"] * 5)
    verdict = asyncio.run(judge_once(make_teacher(fake_ollama.url, retries=-1, retry_wait_s=0.001),
                                     real_schema_row()))
    assert verdict.canonical_ast == CANNED_PAIRS[0]["ast"]
    assert len(fake_ollama.chat_requests) == 6


def test_forever_retries_wait_for_a_server_that_starts_later():
    fake = FakeOllama(canned_responder, port=free_port())
    starter = threading.Timer(0.3, fake.start)  # the user runs `ollama serve` a moment later
    starter.start()
    try:
        verdict = asyncio.run(judge_once(make_teacher(fake.url, retries=-1, retry_wait_s=0.01),
                                         real_schema_row()))
    finally:
        starter.join()
        fake.stop()
    assert verdict.canonical_ast == CANNED_PAIRS[0]["ast"]


def test_an_unknown_model_fails_at_once_naming_ollama_pull():
    fake = FakeOllama(models=["other:1b"])
    with fake as url:
        with pytest.raises(TeacherError, match=f"ollama pull {MODEL}"):
            asyncio.run(judge_once(make_teacher(url, retries=5), real_schema_row()))
    assert len(fake.chat_requests) == 1  # not retried: waiting will not make the model appear


def test_ensure_model_available_checks_the_servers_model_list():
    async def check(url: str, model: str) -> None:
        teacher = make_teacher(url, model=model)
        try:
            await teacher.ensure_model_available()
        finally:
            await teacher.aclose()

    with FakeOllama(models=["llama3:latest", MODEL]) as url:
        asyncio.run(check(url, MODEL))
        asyncio.run(check(url, "llama3"))  # Ollama's implicit :latest
        with pytest.raises(TeacherError, match="ollama pull gpt-oss:120b"):
            asyncio.run(check(url, "gpt-oss:120b"))


# --- concurrency ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("concurrency", [1, 8])
def test_concurrency_bounds_the_requests_in_flight(fake_ollama: FakeOllama, concurrency: int):
    fake_ollama.responder = canned_responder
    fake_ollama.delay_s = 0.05
    teacher = make_teacher(fake_ollama.url, concurrency=concurrency)
    row = real_schema_row()

    async def run_all() -> list:
        try:
            # Gathered without map_bounded: the teacher itself must keep the bound.
            return await asyncio.gather(*(teacher.judge(row["schema"], f"q{i}", None, {"type": "query"}, "{}")
                                          for i in range(8)))
        finally:
            await teacher.aclose()

    verdicts = asyncio.run(run_all())
    assert len(verdicts) == 8 and len(fake_ollama.chat_requests) == 8
    if concurrency == 1:
        assert fake_ollama.max_in_flight == 1
    else:
        assert 1 < fake_ollama.max_in_flight <= concurrency


def test_map_bounded_over_the_teacher_overlaps_requests(fake_ollama: FakeOllama):
    fake_ollama.delay_s = 0.05
    teacher = make_teacher(fake_ollama.url, concurrency=4)
    row = real_schema_row()
    results = asyncio.run(map_bounded(
        lambda i: teacher.judge(row["schema"], f"q{i}", None, {"type": "query"}, "{}"), range(6),
        teacher.concurrency))
    assert len(results) == 6
    assert 1 < fake_ollama.max_in_flight <= 4


# --- the fake server itself ----------------------------------------------------------------------------

def test_the_fake_server_streams_ndjson_when_the_client_streams(fake_ollama: FakeOllama):
    fake_ollama.responder = lambda request: {"hello": "world", "padding": "x" * 40}

    async def stream() -> str:
        client = ollama.AsyncClient(host=fake_ollama.url, timeout=5)
        parts = [part.message.content async for part in await client.chat(
            model=MODEL, messages=[{"role": "user", "content": "hi"}], stream=True)]
        await client.close()
        return "".join(parts)

    assert json.loads(asyncio.run(stream())) == {"hello": "world", "padding": "x" * 40}
    assert fake_ollama.chat_requests[0].stream is True


def test_a_pair_keeps_its_context_and_the_same_words_without_it_are_another_row() -> None:
    from helpers import make_tiny_schema_record

    from ast_distill.dataset import pair_to_row
    from ast_distill.teachers.base import GeneratedPair

    record = make_tiny_schema_record()
    today = {"type": "query", "filter": {"field": "released", "op": "equals", "value": "2026-12-01"}}
    asked = {"type": "clarification", "question": "Which date is today?", "options": []}
    reply = json.dumps({"pairs": [
        {"language": "en", "query": "products released today", "context": {"today": "2026-12-01"}, "ast": today},
        {"language": "en", "query": "products released today", "ast": asked}]})
    pairs = llm_prompts.parse_pairs(reply, record["schema"])
    assert [p.context for p in pairs] == [{"today": "2026-12-01"}, None]
    answered, asked_back = (pair_to_row(p, record, "ollama:test") for p in pairs)
    assert answered["is_valid"] and asked_back["is_valid"] and answered["id"] != asked_back["id"]
    assert (answered["kind"], asked_back["kind"]) == ("query", "clarification")
    assert answered["context"] == {"today": "2026-12-01"} and "context" not in asked_back
    bad = pair_to_row(GeneratedPair("products released today", "en", today, context=["today"]), record, "t")
    assert not bad["is_valid"] and "the context must be a JSON object" in bad["validation_error"]


def test_pairs_requests_ask_for_each_kind_only_where_the_schema_has_it() -> None:
    from helpers import make_tiny_schema_record

    from ast_distill.teachers.base import KindShares

    record = make_tiny_schema_record()
    plan = llm_prompts.pairs_plan(50, KindShares(0.2, 0.1, 0.2))
    assert [size for size, _ in plan] == [20, 20, 10]
    assert sum(kinds["refusal"] for _, kinds in plan) == 10 and sum(kinds["context_twins"] for _, kinds in plan) == 5
    text = llm_prompts.pairs_messages(record, {}, *plan[0], avoid=[], examples=[])[-1]["content"]
    assert "4 of them refusals, 2 clarifications, 2 requests that need a context" in text
    plain = {**record, "schema": {"type": "object", "properties": {"n": {"type": "integer"}}, "required": ["n"],
                                  "additionalProperties": False}}
    text = llm_prompts.pairs_messages(plain, {}, *plan[0], avoid=[], examples=[])[-1]["content"]
    assert text.endswith("4 of them refusals.")  # no clarification answer in this schema: none asked for
