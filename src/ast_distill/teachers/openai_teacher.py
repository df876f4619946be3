"""The OpenAI-compatible teacher: any server speaking /v1/chat/completions (vLLM, llama.cpp server, LM
Studio, OpenAI itself) through the ``openai`` package.

Structured output uses ``response_format={"type": "json_schema", ...}``; a server that rejects it (HTTP
400/422) gets ``{"type": "json_object"}`` instead, then no response_format at all (the prompts describe the
reply in words, and replies are checked either way). The fallback is remembered for later requests.
Prompts, response schemas and parsing: llm_prompts.py; retries, concurrency and errors: llm_teacher.py.
"""
from __future__ import annotations

import json
import logging
from typing import Any

import openai

from .base import DEFAULT_REFUSAL_FRACTION, KindShares, TeacherError
from .llm_prompts import BadReply
from .llm_teacher import Failure, LLMTeacher
from .servers import Server

log = logging.getLogger("ast_distill.teachers")

RESPONSE_MODES = ("json_schema", "json_object", "none")  # tried in this order
RETRYABLE_STATUS = {408, 409, 425, 429}
NO_KEY = "not-needed"  # local servers ignore the key, but the client insists on one


class OpenAITeacher(LLMTeacher):
    """A model behind an OpenAI-compatible chat completions endpoint."""

    name = "openai"

    def __init__(self, model: str, base_url: str | list[str] | None, api_key: str | None, timeout_s: float,
                 retries: int, retry_wait_s: float, concurrency: int, temperature: float,
                 refusal_fraction: float = DEFAULT_REFUSAL_FRACTION, shares: KindShares | None = None):
        # one URL, a list of them, or none (an empty list too): the client's default, api.openai.com
        urls = [base_url] if base_url is None or isinstance(base_url, str) else (list(base_url) or [None])
        super().__init__(model=model, urls=urls, timeout_s=timeout_s, retries=retries, retry_wait_s=retry_wait_s,
                         concurrency=concurrency, temperature=temperature, refusal_fraction=refusal_fraction,
                         shares=shares)
        self._api_key = api_key or NO_KEY
        self.response_mode = RESPONSE_MODES[0]

    def where(self, url: str | None = None) -> str:
        return f"the OpenAI-compatible server at {self.urls_text(url, 'api.openai.com (default)')}"

    def refused_hint(self) -> str:
        return ("start the server, or set teacher.openai_base_url (it usually ends in /v1), or use "
                "config/offline.json")

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "response_mode": self.response_mode}

    def _new_client(self, url: str | None) -> openai.AsyncOpenAI:
        kwargs: dict[str, Any] = {"api_key": self._api_key, "timeout": self.timeout_s, "max_retries": 0}
        if url:
            kwargs["base_url"] = url
        return openai.AsyncOpenAI(**kwargs)  # retries are ours: max_retries=0

    async def _close_client(self, client: openai.AsyncOpenAI) -> None:
        await client.close()

    @staticmethod
    def _response_format(mode: str, schema: dict[str, Any]) -> dict[str, Any] | None:
        if mode == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "reply", "schema": schema, "strict": False}}
        if mode == "json_object":
            return {"type": "json_object"}
        return None

    async def _chat(self, client: openai.AsyncOpenAI, messages: list[dict[str, str]], schema: dict[str, Any],
                    *, seed: int | None, temperature: float, reply_tokens: int) -> str:
        kwargs: dict[str, Any] = {"model": self.model, "messages": messages, "temperature": temperature}
        if seed is not None:
            kwargs["seed"] = seed
        while True:
            mode = self.response_mode
            response_format = self._response_format(mode, schema)
            try:
                completion = await client.chat.completions.create(
                    **kwargs, **({"response_format": response_format} if response_format else {}))
                break
            except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
                if mode == RESPONSE_MODES[-1]:
                    raise
                if self.response_mode == mode:  # another request may have moved on already
                    self.response_mode = RESPONSE_MODES[RESPONSE_MODES.index(mode) + 1]
                    log.warning("%s rejected response_format %s (%s); using %s from now on", self.where(),
                                mode, _status_detail(exc), self.response_mode)
        choices = getattr(completion, "choices", None)
        if not choices:
            raise BadReply("the HTTP body is not a chat completion (no choices)")
        choice = choices[0]
        if choice.finish_reason == "length":
            raise BadReply("the reply was cut at the server's length limit: raise its context or max tokens")
        return choice.message.content or ""

    def _failure(self, exc: BaseException) -> Failure | None:
        if isinstance(exc, openai.APITimeoutError):
            return Failure("timeout", "request timed out")
        if isinstance(exc, openai.APIConnectionError):
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection error"
            if cause == "ConnectError":
                return Failure("refused", str(exc))
            return Failure("server", f"{cause}: {exc}")
        if isinstance(exc, openai.APIStatusError):
            detail = _status_detail(exc)
            if exc.status_code >= 500 or exc.status_code in RETRYABLE_STATUS:
                return Failure("server", detail)
            if exc.status_code in (401, 403):
                return Failure("fatal", f"{detail}: set the API key in the environment variable named by "
                                        f"teacher.openai_api_key_env", retryable=False)
            if exc.status_code == 404:
                return Failure("fatal", f"{detail}: check teacher.openai_base_url (it usually ends in /v1) "
                                        f"and that the server serves model {self.model}", retryable=False)
            return Failure("fatal", detail, retryable=False)
        if isinstance(exc, (openai.APIResponseValidationError, json.JSONDecodeError)):
            return Failure("reply", f"the HTTP body is not a chat completion ({type(exc).__name__})")
        return None

    async def ensure_model_available(self) -> None:
        """Fail fast (TeacherError) when no server answers or one does not list the model (one that does not
        answer, among several, is a warning: see LLMTeacher._ask_every_server)."""
        async def attempt(client: openai.AsyncOpenAI, number: int) -> list[str]:
            return [m.id async for m in client.models.list()]

        def check(server: Server, names: list[str]) -> None:
            if names and self.model not in names:
                raise TeacherError(f"{self.where(server.url)} does not serve model {self.model} (it serves: "
                                   f"{', '.join(sorted(names))}): pass one of them as --teacher-model")

        await self._ask_every_server(attempt, check)


def _status_detail(exc: openai.APIStatusError) -> str:
    message = exc.message
    body = exc.body
    if isinstance(body, dict):
        error = body.get("error", body)
        message = error.get("message", message) if isinstance(error, dict) else str(error)
    return f"HTTP {exc.status_code}: {' '.join(str(message).split())[:200]}"
