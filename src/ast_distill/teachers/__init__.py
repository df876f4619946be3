"""Teachers: one interface (base.Teacher), three backends, one factory.

``make_teacher`` picks the backend named by ``config["teacher"]["backend"]``:
- ``grammar``: the built-in teacher (no LLM, deterministic for a seed; offline runs and tests);
- ``ollama``: a model served by Ollama;
- ``openai``: any OpenAI-compatible server (vLLM, llama.cpp server, LM Studio).
LLM backends are imported only when chosen, so offline runs never load their clients.
"""
from __future__ import annotations

import os
import typing
from typing import Any

from ..errors import UserError
from ..settings import TeacherBackend
from .base import GeneratedPair, KindShares, Teacher, TeacherError, Verdict, map_bounded

BACKENDS: tuple[str, ...] = typing.get_args(TeacherBackend)


def make_teacher(config: dict[str, Any], model: str | None, *, retries: int, retry_wait_s: float,
                 seed: int, concurrency: int | None = None) -> Teacher:
    """The teacher the config asks for. ``model`` is the resolved teacher model id (LLM backends only);
    ``concurrency`` (a stage's --concurrency) overrides teacher.concurrency: requests in flight at once on each
    server (teacher.host / teacher.openai_base_url may list several; teachers/servers.py)."""
    t = config["teacher"]
    backend = t["backend"]
    shares = KindShares.from_config(config)
    in_flight = t["concurrency"] if concurrency is None else concurrency
    if backend not in BACKENDS:
        raise UserError(f"config key 'teacher.backend' is {backend!r}; use one of {', '.join(BACKENDS)}")
    if backend == "grammar":
        from .grammar import GrammarTeacher
        return GrammarTeacher(seed, shares.refusal, shares.clarification, shares.context)
    if not model:
        raise UserError(f"the {backend} teacher needs a model: pass --teacher-model, set LLM_MODEL (or "
                        f"dataset_generation.teacher_model), or run offline with --config config/offline.json")
    if backend == "ollama":
        from .ollama_teacher import OllamaTeacher, resolve_ollama_hosts
        return OllamaTeacher(model=model, host=resolve_ollama_hosts(t["host"]), timeout_s=t["timeout_s"],
                             retries=retries, retry_wait_s=retry_wait_s, concurrency=in_flight,
                             num_ctx=t["num_ctx"], temperature=t["temperature"], shares=shares)
    from .openai_teacher import OpenAITeacher
    key_env = t["openai_api_key_env"]
    return OpenAITeacher(model=model, base_url=t["openai_base_url"],
                         api_key=os.environ.get(key_env) if key_env else None, timeout_s=t["timeout_s"],
                         retries=retries, retry_wait_s=retry_wait_s, concurrency=in_flight,
                         temperature=t["temperature"], shares=shares)


__all__ = ["make_teacher", "BACKENDS", "Teacher", "TeacherError", "GeneratedPair", "Verdict", "map_bounded"]
