"""The Ollama teacher: the ``ollama`` client's ``chat`` with structured output (``format=<JSON Schema>``).

``num_ctx`` is sent with every request: the configured value, or one sized to the prompt and the reply
(Ollama's own default context is small and silently cuts long prompts). Prompts, response schemas and
reply parsing: llm_prompts.py; retries, concurrency and errors: llm_teacher.py.
"""
from __future__ import annotations

import json
import os
from typing import Any

import httpx
import ollama
import pydantic

from . import llm_prompts
from .base import DEFAULT_REFUSAL_FRACTION, KindShares, TeacherError
from .llm_prompts import BadReply
from .llm_teacher import Failure, LLMTeacher
from .servers import Server

RETRYABLE_STATUS = {408, 425, 429}
DEFAULT_HOST = "http://127.0.0.1:11434"  # Ollama's own default


def resolve_ollama_hosts(configured: str | list[str] | None) -> list[str]:
    """teacher.host (one URL or a list) when the config sets it, else Ollama's own convention: the OLLAMA_HOST
    environment variable, else http://127.0.0.1:11434. config/defaults.json leaves teacher.host null so that a
    user who exports OLLAMA_HOST (as for the ``ollama`` CLI) reaches that server."""
    listed = [configured] if isinstance(configured, str) else list(configured or [])
    hosts = [host.strip() for host in listed if host.strip()]
    return hosts or [os.environ.get("OLLAMA_HOST", "").strip() or DEFAULT_HOST]


class OllamaTeacher(LLMTeacher):
    """A model served by Ollama (default http://127.0.0.1:11434), on one server or spread over several."""

    name = "ollama"

    def __init__(self, model: str, host: str | list[str], timeout_s: float, retries: int, retry_wait_s: float,
                 concurrency: int, num_ctx: int | None, temperature: float,
                 refusal_fraction: float = DEFAULT_REFUSAL_FRACTION, shares: KindShares | None = None):
        super().__init__(model=model, urls=[host] if isinstance(host, str) else host, timeout_s=timeout_s,
                         retries=retries, retry_wait_s=retry_wait_s, concurrency=concurrency,
                         temperature=temperature, num_ctx=num_ctx, refusal_fraction=refusal_fraction,
                         shares=shares)

    def where(self, url: str | None = None) -> str:
        return f"Ollama at {self.urls_text(url, DEFAULT_HOST)}"

    def refused_hint(self) -> str:
        return (f"start it with `ollama serve` and `ollama pull {self.model}`, or set teacher.host (or "
                f"OLLAMA_HOST), or use config/offline.json")

    def _new_client(self, url: str | None) -> ollama.AsyncClient:
        return ollama.AsyncClient(host=url, timeout=self.timeout_s)

    async def _close_client(self, client: ollama.AsyncClient) -> None:
        await client.close()

    async def _chat(self, client: ollama.AsyncClient, messages: list[dict[str, str]], schema: dict[str, Any],
                    *, seed: int | None, temperature: float, reply_tokens: int) -> str:
        options: dict[str, Any] = {
            "num_ctx": self.num_ctx or llm_prompts.estimate_num_ctx(messages, reply_tokens),
            "temperature": temperature,
        }
        if seed is not None:
            options["seed"] = seed
        response = await client.chat(model=self.model, messages=messages, format=schema, options=options,
                                     stream=False)
        if response.done_reason == "length":
            raise BadReply(f"the reply was cut at the length limit (num_ctx={options['num_ctx']}); "
                           f"raise teacher.num_ctx")
        return response.message.content or ""

    def _failure(self, exc: BaseException) -> Failure | None:
        if isinstance(exc, ollama.ResponseError):
            detail = f"HTTP {exc.status_code}: {exc.error}"
            if exc.status_code >= 500 or exc.status_code in RETRYABLE_STATUS:
                return Failure("server", detail)
            if exc.status_code == 404:
                return Failure("fatal", f"{detail}: run `ollama pull {self.model}` or pick a model that "
                                        f"`ollama list` shows", retryable=False)
            return Failure("fatal", detail, retryable=False)
        if isinstance(exc, httpx.TimeoutException):
            return Failure("timeout", type(exc).__name__)
        if isinstance(exc, ConnectionError):  # the ollama client's translation of httpx.ConnectError
            return Failure("refused", str(exc))
        if isinstance(exc, httpx.TransportError):  # dropped connection, protocol error
            return Failure("server", f"{type(exc).__name__}: {exc}")
        if isinstance(exc, (json.JSONDecodeError, pydantic.ValidationError)):  # a body that is not a reply
            return Failure("reply", f"the HTTP body is not an Ollama chat reply ({type(exc).__name__})")
        return None

    async def ensure_model_available(self) -> None:
        """Fail fast (TeacherError) when no server answers or one lacks the model (one that does not answer,
        among several, is a warning: see LLMTeacher._ask_every_server)."""
        async def attempt(client: ollama.AsyncClient, number: int) -> ollama.ListResponse:
            return await client.list()

        def check(server: Server, listing: ollama.ListResponse) -> None:
            names = {m.model for m in listing.models if m.model}
            if self.model not in names and f"{self.model}:latest" not in names:
                have = ", ".join(sorted(names)) or "none"
                raise TeacherError(f"{self.where(server.url)} has no model {self.model} (it has: {have}): run "
                                   f"`ollama pull {self.model}`")

        await self._ask_every_server(attempt, check)
