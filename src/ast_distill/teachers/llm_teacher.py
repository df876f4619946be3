"""What the Ollama and OpenAI-compatible teachers share: retries with backoff, bounded concurrency, errors.

A backend supplies a client, one chat call (``_chat``: messages + JSON Schema -> reply text) and a way to
classify its exceptions (``_failure``). Everything else lives here:
- every request runs on one of the teacher's servers (servers.py: one or several URLs, each with
  ``concurrency`` requests in flight at most, so callers may gather freely; a server that fails is set aside
  and its requests go to the others without spending their retries);
- failures that may pass (server errors, timeouts, refused or dropped connections, replies that do not
  parse or fit the requested schema) are retried after ``retry_wait_s``, doubling up to 60 s; ``retries``
  counts the tries after the first, ``-1`` retries forever; a retry uses a new seed so that a bad reply is
  not simply sampled again;
- what cannot pass (an unknown model, a refused API key) fails at once; after the last try the caller gets
  ``TeacherError`` with one line: what failed, where, how often, and what to do.
"""
from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

from ..errors import UserError
from . import llm_prompts
from .base import (
    DEFAULT_REFUSAL_FRACTION,
    GeneratedPair,
    KindShares,
    Teacher,
    TeacherError,
    Verdict,
    check_refusal_fraction,
)
from .llm_prompts import BadReply
from .servers import HEALTH_KINDS, Server, ServerPool

T = TypeVar("T")
log = logging.getLogger("ast_distill.teachers")

MAX_BACKOFF_S = 60.0
RETRY_SEED_STRIDE = 7919  # a retry's seed: seed + attempt * stride, far from the next item's seed


class TeacherReplyError(TeacherError):
    """The server answered, but never with a reply of the requested shape."""


class ServerUnreachable(TeacherError):
    """A server refused, timed out or kept failing (HTTP 5xx, dropped connections) through every try."""


@dataclass
class Failure:
    """One failed try, classified. kind: refused | timeout | server | reply | fatal."""
    kind: str
    detail: str
    retryable: bool = True


_NO_FALLBACK = object()


class LLMTeacher(Teacher):
    """Base of the LLM backends: the three Teacher methods built on ``_chat`` plus retries."""

    name = "llm"

    def __init__(self, model: str, urls: Sequence[str | None], timeout_s: float, retries: int, retry_wait_s: float,
                 concurrency: int, temperature: float, num_ctx: int | None = None,
                 refusal_fraction: float = DEFAULT_REFUSAL_FRACTION, shares: KindShares | None = None):
        """``urls``: the servers (None = the backend's default); ``concurrency``: requests in flight per server;
        ``shares``: the answer kinds asked for (refusal_fraction alone: the default clarification and context
        shares)."""
        if not model:
            raise UserError(f"the {self.name} teacher needs a model: pass --teacher-model, set LLM_MODEL, or use "
                            f"config/offline.json")
        self.model = model
        self.shares = shares or KindShares(check_refusal_fraction(refusal_fraction))
        self.timeout_s = float(timeout_s)
        self.retries = int(retries)
        self.retry_wait_s = float(retry_wait_s)
        self.temperature = float(temperature)
        self.num_ctx = num_ctx
        self.pool = ServerPool(list(urls), int(concurrency), self.retry_wait_s, self._new_client)
        self.concurrency = self.pool.concurrency  # over all servers: what callers gather at once

    # --- backend hooks --------------------------------------------------------------------------------

    def _new_client(self, url: str | None) -> Any:
        raise NotImplementedError

    async def _close_client(self, client: Any) -> None:
        raise NotImplementedError

    async def _chat(self, client: Any, messages: list[dict[str, str]], schema: dict[str, Any], *,
                    seed: int | None, temperature: float, reply_tokens: int) -> str:
        """One request; the reply's text. Raises the client's exceptions or BadReply."""
        raise NotImplementedError

    def _failure(self, exc: BaseException) -> Failure | None:
        """Classify a client exception; None for anything that is not a transport/server failure."""
        raise NotImplementedError

    def where(self, url: str | None = None) -> str:
        """A server (``url``) or all of them, for messages: e.g. "Ollama at http://127.0.0.1:11434"."""
        raise NotImplementedError

    def urls_text(self, url: str | None, default: str) -> str:
        """How ``where`` names the server(s): the one given, else every URL of the pool (None = ``default``)."""
        urls = [url] if url is not None else [s.url for s in self.pool.servers]
        return ", ".join(u or default for u in urls)

    def refused_hint(self) -> str:
        raise NotImplementedError

    # --- the Teacher interface ------------------------------------------------------------------------

    async def domain_spec(self, prompt_row: dict[str, Any], examples_per_schema: int,
                          seed: int) -> dict[str, Any]:
        messages = llm_prompts.spec_messages(prompt_row, examples_per_schema)
        return await self._ask(messages, llm_prompts.spec_format(),
                               lambda text: llm_prompts.parse_spec(text, prompt_row), seed=seed,
                               temperature=self.temperature,
                               reply_tokens=llm_prompts.spec_reply_tokens(examples_per_schema))

    def spec_prompt(self, prompt_row: dict[str, Any], examples_per_schema: int) -> str:
        """The messages a domain_spec call sends (instructions included: new instructions, new specs)."""
        return json.dumps(llm_prompts.spec_messages(prompt_row, examples_per_schema), ensure_ascii=False)

    async def generate_pairs(self, schema_row: dict[str, Any], spec: dict[str, Any], n: int,
                             seed: int, focus: str = "") -> list[GeneratedPair]:
        schema = schema_row["schema"]
        response_schema = llm_prompts.pairs_format(schema)
        pairs: list[GeneratedPair] = []
        plan = llm_prompts.pairs_plan(n, self.shares)
        windows = llm_prompts.example_windows(spec, seed, len(plan))
        # Requests run one after another so that each can be told which queries exist already.
        for index, (size, kinds) in enumerate(plan):
            messages = llm_prompts.pairs_messages(schema_row, spec, size, kinds,
                                                  avoid=[p.query for p in pairs], examples=windows[index],
                                                  focus=focus)
            pairs += await self._ask(messages, response_schema,
                                     lambda text: llm_prompts.parse_pairs(text, schema), seed=seed + index,
                                     temperature=self.temperature,
                                     reply_tokens=llm_prompts.pairs_reply_tokens(size))
        return pairs[:n]

    async def judge(self, schema: dict[str, Any], query: str, gold_ast: dict[str, Any] | None,
                    student_ast: dict[str, Any] | None, student_raw: str) -> Verdict:
        messages = llm_prompts.judge_messages(schema, query, gold_ast, student_ast, student_raw)
        # A judge should be repeatable: greedy first; retries sample at the configured temperature.
        return await self._ask(messages, llm_prompts.judge_format(schema),
                               lambda text: llm_prompts.parse_verdict(text, schema, student_ast), seed=None,
                               temperature=0.0, reply_tokens=llm_prompts.JUDGE_REPLY_TOKENS)

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "where": self.where(),
                "concurrency": self.concurrency, "concurrency_per_server": self.pool.servers[0].limit,
                "timeout_s": self.timeout_s, "retries": self.retries, "retry_wait_s": self.retry_wait_s,
                "temperature": self.temperature, "num_ctx": self.num_ctx,
                **self.shares.describe()}

    def server_stats(self) -> list[dict[str, Any]]:
        return self.pool.stats()

    async def aclose(self) -> None:
        await self.pool.aclose(self._close_client)

    # --- machinery ------------------------------------------------------------------------------------

    async def _ask(self, messages: list[dict[str, str]], schema: dict[str, Any], parse: Callable[[str], T],
                   *, seed: int | None, temperature: float, reply_tokens: int) -> T:
        async def attempt(client: Any, number: int) -> T:
            text = await self._chat(
                client, messages, schema,
                seed=None if seed is None else seed + (number - 1) * RETRY_SEED_STRIDE,
                temperature=temperature if number == 1 else max(temperature, self.temperature),
                reply_tokens=reply_tokens)
            return parse(text)

        return await self._with_retries(attempt)

    async def _with_retries(self, attempt: Callable[[Any, int], Awaitable[T]], server: Server | None = None) -> T:
        """Run attempt(client, try number) until it returns, retrying what may pass; ``server`` pins one.

        A server's own failure (refused, timeout, 5xx) sets it aside; while another server is healthy the
        request moves there at once and the try does not count (at most once per other server per try)."""
        fallback: Any = _NO_FALLBACK
        number = 1  # the tries that count; a move keeps its try's number, so its seed too
        moves_left = len(self.pool.servers) - 1
        while True:
            target = server or self.pool.pick()
            try:
                async with self.pool.use(target) as client:
                    result = await attempt(client, number)
                self.pool.succeeded(target, result)
                return result
            except BadReply as exc:
                failure = Failure("reply", str(exc))
                if exc.fallback is not None:
                    fallback = exc.fallback
            except Exception as exc:  # classified below; anything unknown propagates unchanged
                failure = self._failure(exc)
                if failure is None:
                    raise
            set_aside = self.pool.failed(target, failure.kind)
            if not failure.retryable:
                raise TeacherError(self._message(failure, number, target)) from None
            if set_aside and server is None and moves_left > 0 and self.pool.others_healthy(target):
                moves_left -= 1
                log.warning("%s: %s (%s); set aside, its request goes to another server", self.where(target.url),
                            failure.kind, failure.detail)
                continue
            if 0 <= self.retries < number:
                if fallback is not _NO_FALLBACK:
                    return fallback  # fits the envelope; the caller validates and records it
                error = (TeacherReplyError if failure.kind == "reply"
                         else ServerUnreachable if failure.kind in HEALTH_KINDS else TeacherError)
                raise error(self._message(failure, number, target)) from None
            wait = min(self.retry_wait_s * 2 ** (number - 1), MAX_BACKOFF_S)
            log.warning("%s: try %d failed (%s: %s); retrying in %.2f s", self.where(target.url), number,
                        failure.kind, failure.detail, wait)
            await asyncio.sleep(wait)
            number += 1
            moves_left = len(self.pool.servers) - 1

    async def _ask_every_server(self, attempt: Callable[[Any, int], Awaitable[T]],
                                check: Callable[[Server, T], None]) -> None:
        """The preflight: ``attempt`` on each server in turn, ``check(server, reply)`` raising TeacherError for a
        wrong answer (a missing model). A server that does not answer is set aside with one warning line while
        another answers (it is tried again later, as in a stage); when none answers, the first one's error."""
        unreachable: list[str] = []
        for server in self.pool.servers:
            try:
                reply = await self._with_retries(attempt, server)
            except ServerUnreachable as exc:
                unreachable.append(str(exc))
                continue
            check(server, reply)
        if len(unreachable) == len(self.pool.servers):
            raise ServerUnreachable(unreachable[0])
        for line in unreachable:
            log.warning("%s; the other servers take its requests until it answers", line)

    def _message(self, failure: Failure, tries: int, server: Server) -> str:
        after = f"after {tries} {'try' if tries == 1 else 'tries'}"
        if len(self.pool.servers) > 1:
            after += f" over {len(self.pool.servers)} servers ({self.where()})"
        where = self.where(server.url)
        detail = " ".join(failure.detail.split())
        if failure.kind == "refused":
            return f"{where} refused the connection {after}: {self.refused_hint()}"
        if failure.kind == "timeout":
            return (f"{where} did not answer within {self.timeout_s:g} s ({after}): raise "
                    f"teacher.timeout_s, lower teacher.concurrency, or check that the server is not overloaded")
        if failure.kind == "reply":
            return (f"model {self.model} at {where} never replied with the requested JSON {after} "
                    f"(last: {detail}): raise the retries or use a stronger model")
        if failure.kind == "server":
            return f"{where} kept failing {after} (last: {detail}): check the server's log"
        return f"{where}: {detail}"
