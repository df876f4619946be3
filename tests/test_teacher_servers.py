"""A teacher over several servers (teacher.host / teacher.openai_base_url as a list): requests spread by load,
each server bounded by teacher.concurrency, a failing server set aside with its requests moved to the others,
what each server did in the stage summary, and stage 3 losing or doubling no row when a server dies halfway."""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from fake_ollama import CANNED_PAIRS, FakeOllama, LLMLikeResponder, canned_responder, free_port, real_schema_row
from test_dataset_llm_rerun import MODEL, PROMPTS, SAMPLES, SCRIPTS, outputs, write_config

from ast_distill import cli
from ast_distill.config import load_config
from ast_distill.jsonl import meta_path, read_json, read_jsonl
from ast_distill.teachers import make_teacher
from ast_distill.teachers.base import TeacherError
from ast_distill.teachers.ollama_teacher import OllamaTeacher
from ast_distill.teachers.openai_teacher import OpenAITeacher


def ollama_teacher(hosts: list[str], **overrides) -> OllamaTeacher:
    settings = dict(model=MODEL, host=hosts, timeout_s=5.0, retries=0, retry_wait_s=0.05, concurrency=2,
                    num_ctx=None, temperature=0.7)
    settings.update(overrides)
    return OllamaTeacher(**settings)


def judge_many(teacher, count: int) -> list[object]:
    row = real_schema_row()

    async def run() -> list[object]:
        try:
            return await asyncio.gather(*(teacher.judge(row["schema"], f"flats {i}", CANNED_PAIRS[0]["ast"],
                                                        {"type": "query"}, "{}") for i in range(count)))
        finally:
            await teacher.aclose()

    return asyncio.run(run())


def test_requests_spread_over_the_servers_each_bounded_by_the_per_server_concurrency() -> None:
    fakes = [FakeOllama(canned_responder, delay_s=0.05) for _ in range(2)]
    with fakes[0] as first, fakes[1] as second:
        teacher = ollama_teacher([first, second], concurrency=2)
        assert teacher.concurrency == 4  # what callers may gather: 2 servers x 2
        described = teacher.describe()
        verdicts = judge_many(teacher, 16)

    assert len(verdicts) == 16
    served = [len(f.chat_requests) for f in fakes]
    assert sum(served) == 16 and min(served) >= 6  # least in flight first: both took a fair share
    assert all(1 <= f.max_in_flight <= 2 for f in fakes)
    stats = teacher.server_stats()
    assert [s["url"] for s in stats] == [first, second]
    assert [s["replies"] for s in stats] == served and all(not s["failures"] for s in stats)
    # describe() names the teacher (digests of what it made use it, e.g. the boost's resume): it does not change
    # as requests are made; record(), what outputs keep, adds what each server did.
    assert teacher.describe() == described and "servers" not in described
    assert teacher.record()["servers"] == stats


def test_a_dead_server_is_set_aside_and_its_requests_go_to_the_others_without_spending_retries() -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    fake = FakeOllama(canned_responder, delay_s=0.02)
    with fake as alive:
        teacher = ollama_teacher([dead, alive], retries=0)  # no retries: only moves can save these requests
        verdicts = judge_many(teacher, 12)

    assert len(verdicts) == 12 and len(fake.chat_requests) == 12
    dead_stats, alive_stats = teacher.server_stats()
    assert dead_stats["replies"] == 0 and dead_stats["failures"].get("refused", 0) >= 1
    assert dead_stats["times_set_aside"] == dead_stats["failures"]["refused"]
    assert alive_stats["replies"] == 12 and not alive_stats["failures"]


def test_when_every_server_fails_the_error_is_one_line_naming_them() -> None:
    dead = [f"http://127.0.0.1:{free_port()}" for _ in range(2)]
    teacher = ollama_teacher(dead, retries=1, retry_wait_s=0.01)
    with pytest.raises(TeacherError) as error:
        judge_many(teacher, 1)
    message = str(error.value)
    assert "\n" not in message and "refused the connection after 2 tries over 2 servers" in message
    assert all(url in message for url in dead)
    assert sum(s["failures"]["refused"] for s in teacher.server_stats()) == 4  # 2 tries, each on both servers


def test_the_openai_teacher_spreads_over_a_list_of_base_urls() -> None:
    fakes = [FakeOllama(canned_responder, delay_s=0.05, models=[MODEL]) for _ in range(2)]
    with fakes[0], fakes[1]:
        teacher = OpenAITeacher(model=MODEL, base_url=[f.openai_url for f in fakes], api_key=None, timeout_s=5.0,
                                retries=0, retry_wait_s=0.05, concurrency=1, temperature=0.5)
        asyncio.run(teacher.ensure_model_available())  # asks every server
        judge_many(teacher, 8)
    assert [len(f.chat_requests) for f in fakes] == [4, 4]  # one slot each: strictly alternating
    assert all(f.max_in_flight == 1 for f in fakes)
    assert all(any(r["path"] == "/v1/models" for r in f.requests) for f in fakes)


def test_a_config_lists_teacher_servers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("OLLAMA_HOST", raising=False)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps({"teacher": {"backend": "ollama", "host": ["http://a:1", "http://b:2"],
                                                   "concurrency": 3}}), encoding="utf-8")
    config = load_config(str(config_path))
    teacher = make_teacher(config, MODEL, retries=0, retry_wait_s=0.1, seed=0)
    assert [s["url"] for s in teacher.server_stats()] == ["http://a:1", "http://b:2"]
    assert teacher.concurrency == 6 and teacher.describe()["concurrency_per_server"] == 3

    for backend, key, default in (("ollama", "host", "http://127.0.0.1:11434"),
                                  ("openai", "openai_base_url", "api.openai.com (default)")):
        config_path.write_text(json.dumps({"teacher": {"backend": backend, key: []}}), encoding="utf-8")
        empty = make_teacher(load_config(str(config_path)), MODEL, retries=0, retry_wait_s=0.1, seed=0)
        assert empty.where().endswith(default) and len(empty.server_stats()) == 1  # an empty list: the default

    config_path.write_text(json.dumps({"teacher": {"host": ["http://a:1", 2]}}), encoding="utf-8")
    with pytest.raises(Exception) as error:
        load_config(str(config_path))
    assert "teacher.host" in str(error.value) and "\n" not in str(error.value)


def test_stage_3_loses_and_doubles_no_row_when_one_of_two_servers_dies_halfway(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    responder = LLMLikeResponder()  # shared: every reply's queries are new, so a doubled request would show
    dying = FakeOllama(responder, models=[MODEL], delay_s=0.02, parallel=2)
    steady = FakeOllama(responder, models=[MODEL], delay_s=0.02, parallel=2)

    died: list[bool] = []

    def die_after_three(request):
        if request.task == "pairs" and sum(r.task == "pairs" for r in dying.chat_requests) >= 3 and not died:
            died.append(True)
            dying.add_faults("die")  # the next request to this server finds it dead, and so do all later ones
        return responder(request)

    dying.responder = die_after_three
    samples = 5 * SAMPLES  # 3 requests per schema (20 pairs each): 12 in all, so the death comes halfway
    with dying as first, steady as second:
        config = write_config(tmp_path, first)
        settings = json.loads(config.read_text())
        settings["teacher"]["host"] = [first, second]
        settings["dataset_generation"]["teacher_retries"] = 0  # the move to the other server is no retry
        settings["dataset_generation"]["samples_per_schema"] = samples
        config.write_text(json.dumps(settings), encoding="utf-8")
        for stage in ("generate_domain_specs", "build_schemas", "generate_dataset"):
            script = SCRIPTS[stage]
            assert cli.run(script.main, script.build_parser(), ["--config", str(config)]) == 0, stage
        printed = capsys.readouterr().out

    rows = read_jsonl(outputs(tmp_path)["d_03"])
    assert died and len(rows) == len(PROMPTS) * samples
    assert len({r["id"] for r in rows}) == len(rows) and len({r["query"] for r in rows}) == len(rows)
    summary = read_json(meta_path(outputs(tmp_path)["d_03"]))["summary"]
    died, lived = summary["servers"]
    assert died["url"] == first and died["replies"] >= 2 and sum(died["failures"].values()) >= 1
    assert lived["replies"] > died["replies"] and not lived["failures"]
    assert died["rows"] + lived["rows"] == summary["pairs_generated"]
    assert "servers:" in printed and first in printed
    assert read_json(meta_path(outputs(tmp_path)["d_03"]))["teacher"]["servers"] == summary["servers"]


def test_the_preflight_warns_about_a_dead_server_among_live_ones_and_fails_when_none_answers_or_one_lacks_the_model(
        caplog: pytest.LogCaptureFixture) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    with FakeOllama(models=[MODEL]) as alive, FakeOllama(models=["another-model"]) as without_model:
        asyncio.run(ollama_teacher([dead, alive]).ensure_model_available())  # one answers: the run may start
        assert any(dead in record.getMessage() and "other servers take its requests" in record.getMessage()
                   for record in caplog.records)
        with pytest.raises(TeacherError, match=f"Ollama at {without_model} has no model {MODEL}"):
            asyncio.run(ollama_teacher([alive, without_model]).ensure_model_available())
    with pytest.raises(TeacherError, match="refused the connection") as error:
        asyncio.run(ollama_teacher([dead, f"http://127.0.0.1:{free_port()}"]).ensure_model_available())
    assert "\n" not in str(error.value)
