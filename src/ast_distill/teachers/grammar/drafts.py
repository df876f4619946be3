"""The built-in teacher's one loop from a plan of rows to distinct pairs, for the project's DSLs and any schema."""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ...records import CLARIFICATION, LANGUAGES, QUERY, REFUSAL, kind_of, request_key
from ..base import GeneratedPair, KindShares

# A draft kind of its own: a request that needs its context, written twice (with the context: answered; the same
# words without it: a clarification), so the student learns to read the Context line and to ask when it is absent.
CONTEXT_TWINS = "context"

# Writes the rows of one draft of a kind (QUERY | REFUSAL | CLARIFICATION | CONTEXT_TWINS) in a language; None when
# this draft failed.
Writer = Callable[[str, str], list[GeneratedPair] | None]


def pair(drafted: tuple[str, Any], lang: str, context: dict[str, Any] | None = None) -> GeneratedPair:
    """A drafted (request, AST) as a row, its kind read from its AST."""
    query, ast = drafted
    return GeneratedPair(query=query, language=lang, ast=ast, kind=kind_of(ast), context=context)


def draft_kinds(n: int, shares: KindShares, rng: random.Random) -> list[tuple[str, str]]:
    """(kind, language) of every draft for about n rows (KindShares.counts), shuffled by `rng`. Languages alternate
    among the one-row drafts and among the twins (two rows each), so the rows split evenly between them."""
    counts = shares.counts(n)
    singles = [REFUSAL] * counts["refusal"] + [CLARIFICATION] * counts["clarification"] + [QUERY] * counts["query"]
    drafts: list[tuple[str, str]] = []
    for kinds in (singles, [CONTEXT_TWINS] * counts["context_twins"]):
        languages = [LANGUAGES[i % 2] for i in range(len(kinds))]
        rng.shuffle(kinds)
        rng.shuffle(languages)
        drafts += zip(kinds, languages)
    rng.shuffle(drafts)
    return drafts


def draft_pairs(n: int, shares: KindShares, rng: random.Random, write: Writer, max_tries: int) -> list[GeneratedPair]:
    """About n pairs in the shares' kinds, languages alternating; each draft is retried until its requests are new
    (records.request_key: words up to case and punctuation, and context; the stage drops repeats), at most
    `max_tries` times (then that draft is given up)."""
    pairs: list[GeneratedPair] = []
    seen: set[str] = set()
    for kind, lang in draft_kinds(n, shares, rng):
        for _ in range(max_tries):
            drafted = write(kind, lang)
            if not drafted:
                continue
            keys = [request_key(p.query, p.context) for p in drafted]
            if all(keys) and len(set(keys)) == len(keys) and not seen & set(keys):
                seen.update(keys)
                pairs.extend(drafted)
                break
    return pairs
