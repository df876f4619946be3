"""The built-in teacher's one loop from a plan of rows to distinct pairs, for the project's DSLs and any schema."""
from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from ...records import LANGUAGES, QUERY, REFUSAL, normalize_query
from ..base import GeneratedPair


# Writes one (request, AST) of a kind ("query" | "refusal") in a language; None when this draft failed.
Writer = Callable[[str, str], tuple[str, Any] | None]


def draft_pairs(n: int, refusal_fraction: float, rng: random.Random, write: Writer,
                max_tries: int) -> list[GeneratedPair]:
    """About n pairs: round(n * refusal_fraction) refusals, languages alternating, both shuffled by `rng`; each
    row drafted until its request is new up to case and punctuation (the stage drops such duplicates), at most
    `max_tries` times (then that row is given up)."""
    n_refusals = round(n * refusal_fraction)
    kinds = [REFUSAL] * n_refusals + [QUERY] * (n - n_refusals)
    languages = [LANGUAGES[i % 2] for i in range(n)]
    rng.shuffle(kinds)
    rng.shuffle(languages)
    pairs: list[GeneratedPair] = []
    seen: set[str] = set()
    for kind, lang in zip(kinds, languages):
        for _ in range(max_tries):
            drafted = write(kind, lang)
            if drafted is None:
                continue
            query, ast = drafted
            key = normalize_query(query)
            if key and key not in seen:
                seen.add(key)
                pairs.append(GeneratedPair(query=query, language=lang, ast=ast, kind=kind))
                break
    return pairs
