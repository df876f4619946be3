"""The one teacher interface. Backends: built-in grammar teacher, Ollama, OpenAI-compatible servers.

Every method is async so that LLM backends can run several requests at once (bounded by ``concurrency``);
the built-in teacher simply computes. Teacher replies are never trusted: callers validate every AST.
"""
from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ..errors import UserError
from ..records import QUERY
from ..settings import DatasetGenerationSettings, check_ranges

T = TypeVar("T")
R = TypeVar("R")

# A teacher built without a config (tests, benchmarks) asks for the config's default share of refusals; runs
# pass their dataset_generation.refusal_fraction through teachers.make_teacher.
DEFAULT_REFUSAL_FRACTION: float = DatasetGenerationSettings.refusal_fraction


DEFAULT_CLARIFICATION_FRACTION: float = DatasetGenerationSettings.clarification_fraction
DEFAULT_CONTEXT_FRACTION: float = DatasetGenerationSettings.context_fraction


def check_refusal_fraction(value: float) -> float:
    """refusal_fraction in its range (settings.DatasetGenerationSettings): a UserError naming the config key
    otherwise."""
    check_ranges(DatasetGenerationSettings, {"refusal_fraction": value},
                 "dataset_generation.{key} must be {rule}, got {value}; fix the config")
    return float(value)


@dataclass(frozen=True)
class KindShares:
    """What share of a teacher's rows is of each answer kind (dataset_generation.*_fraction): refusals,
    clarifications, and requests that need their context (half answered from it, half asked back without it)."""
    refusal: float = DEFAULT_REFUSAL_FRACTION
    clarification: float = DEFAULT_CLARIFICATION_FRACTION
    context: float = DEFAULT_CONTEXT_FRACTION

    def __post_init__(self) -> None:
        check_refusal_fraction(self.refusal)
        check_ranges(DatasetGenerationSettings, {"clarification_fraction": self.clarification,
                                                 "context_fraction": self.context},
                     "dataset_generation.{key} must be {rule}, got {value}; fix the config")
        total = self.refusal + self.clarification + self.context
        if total >= 1:
            raise UserError(f"dataset_generation.refusal_fraction + clarification_fraction + context_fraction = "
                            f"{total:g} leaves no plain queries; keep the sum below 1")

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> "KindShares":
        d = config["dataset_generation"]
        return cls(d["refusal_fraction"], d.get("clarification_fraction", DEFAULT_CLARIFICATION_FRACTION),
                   d.get("context_fraction", DEFAULT_CONTEXT_FRACTION))

    def counts(self, n: int) -> dict[str, int]:
        """Rows of each kind among n: refusals, clarifications, contextual twins (pairs of rows), queries."""
        twins = round(n * self.context / 2)
        refusals, clarifications = round(n * self.refusal), round(n * self.clarification)
        return {"refusal": refusals, "clarification": clarifications, "context_twins": twins,
                "query": max(0, n - refusals - clarifications - 2 * twins)}

    def describe(self) -> dict[str, float]:
        return {"refusal_fraction": self.refusal, "clarification_fraction": self.clarification,
                "context_fraction": self.context}


@dataclass
class GeneratedPair:
    """One (query, AST) pair as a teacher wrote it; ``ast`` may be anything until validated."""
    query: str
    language: str
    ast: Any
    kind: str = QUERY  # records.KINDS: QUERY | REFUSAL | CLARIFICATION
    context: dict[str, Any] | None = None  # what the request leaves to its context (prompting.render_request)


@dataclass
class Verdict:
    """A teacher's judgement of a student AST for a query."""
    accept: bool
    canonical_ast: dict[str, Any] | None  # the AST the teacher holds correct (for DPO "chosen")
    reason: str = ""
    raw: Any = field(default=None, repr=False)


class TeacherError(RuntimeError):
    """A teacher call failed after its retries (server down, replies never parsed)."""


class Teacher:
    """Base class. Subclasses implement the three async methods."""

    name: str = "teacher"
    model: str | None = None
    concurrency: int = 1
    shares: KindShares = KindShares()  # what share of the rows it writes is of each answer kind

    @property
    def refusal_fraction(self) -> float:
        return self.shares.refusal

    async def domain_spec(self, prompt_row: dict[str, Any], examples_per_schema: int,
                          seed: int) -> dict[str, Any]:
        """A d_01 body for one domain prompt: description, fields [{name,type,description,values?}],
        example_queries."""
        raise NotImplementedError

    def spec_prompt(self, prompt_row: dict[str, Any], examples_per_schema: int) -> str:
        """The text a domain_spec call is made from. Part of a d_01 record's fingerprint: a rerun keeps a
        spec only while this text is unchanged. Here the prompt row itself; LLM teachers send messages."""
        return json.dumps(prompt_row, sort_keys=True, ensure_ascii=False)  # key order in the file is no change

    async def generate_pairs(self, schema_row: dict[str, Any], spec: dict[str, Any], n: int,
                             seed: int, focus: str = "") -> list[GeneratedPair]:
        """About n (query, AST) pairs for one schema, EN and FR, some refusals. ``focus``: what the rows should
        be about, in words (the boost names the student's failures); a teacher that cannot read it may ignore
        it (callers filter)."""
        raise NotImplementedError

    async def judge(self, schema: dict[str, Any], query: str, gold_ast: dict[str, Any] | None,
                    student_ast: dict[str, Any] | None, student_raw: str) -> Verdict:
        """Is the student's AST right for the query? If not, which AST is? ``query``: the request as the student
        read it (prompting.render_request: its context line, if any, then "Request: ...") or its bare words."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        return {"backend": self.name, "model": self.model, "concurrency": self.concurrency}

    def server_stats(self) -> list[dict[str, Any]]:
        """What each server did so far (url, replies, rows, failures by kind); empty for a teacher without servers.
        Not part of ``describe()``, which names the teacher and its settings (digests of what it made use it)."""
        return []

    def record(self) -> dict[str, Any]:
        """``describe()`` and, when it has servers, what each did: what a stage's outputs record."""
        stats = self.server_stats()
        return {**self.describe(), **({"servers": stats} if stats else {})}

    async def aclose(self) -> None:
        """Release clients (HTTP connections)."""


async def map_bounded(func: Callable[[T], Awaitable[R]], items: Iterable[T], concurrency: int,
                      on_result: Callable[[T, R], None] | None = None) -> list[R]:
    """Run func over items with at most `concurrency` in flight; results in input order.

    ``on_result`` is called as each finishes (in completion order), so callers can write and flush
    durable progress while slower items are still running.
    """
    semaphore = asyncio.Semaphore(max(1, concurrency))
    items = list(items)

    async def one(item: T) -> R:
        async with semaphore:
            result = await func(item)
        if on_result is not None:
            on_result(item, result)
        return result

    return list(await asyncio.gather(*(one(item) for item in items)))
