"""Values of the built-in teacher: sampling them for a field and operator, and writing them so that the
exact AST value can be read back from the request (numbers as written, dates ISO or in words, enum labels)."""
from __future__ import annotations

import datetime as dt
import random
import re
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lexicon import Lex

TEXT_MATCH_OPS = ("contains", "starts_with", "ends_with")
FALLBACK_STRINGS = ("alpha", "north", "central", "premium", "delta", "river")
MONTHS = {
    "en": ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October",
           "November", "December"],
    "fr": ["janvier", "février", "mars", "avril", "mai", "juin", "juillet", "août", "septembre", "octobre",
           "novembre", "décembre"],
}


def parse_date(text: Any) -> dt.date | None:
    try:
        return dt.date.fromisoformat(str(text))
    except ValueError:
        return None


def _nice_int(rng: random.Random, low: int, high: int) -> int:
    value = rng.randint(low, high)
    span = high - low
    if span > 200 and rng.random() < 0.8:
        step = 10 ** max(0, len(str(span)) - 2)
        value = min(high, max(low, round(value / step) * step))
    return int(value)


def _sample_number(rng: random.Random, lex: Lex) -> int | float:
    low, high = lex.low, lex.high
    if lex.type == "integer":
        return _nice_int(rng, int(low), int(high))
    if rng.random() < 0.4 and high - low >= 2:
        return _nice_int(rng, int(low) + 1 if int(low) < low else int(low), int(high))
    decimals = 2 if high - low < 20 else 1
    value = round(rng.uniform(low, high), decimals)
    return int(value) if float(value).is_integer() else value


def _sample_date(rng: random.Random, lex: Lex) -> str:
    low, high = parse_date(lex.low), parse_date(lex.high)
    day = low + dt.timedelta(days=rng.randint(0, (high - low).days))
    return day.isoformat()


def sample_scalar(rng: random.Random, lex: Lex) -> Any:
    if lex.type == "enum":
        return rng.choice(lex.values)
    if lex.type == "boolean":
        return rng.random() < 0.6
    if lex.type in ("integer", "number"):
        return _sample_number(rng, lex)
    if lex.type == "date":
        return _sample_date(rng, lex)
    return rng.choice(lex.examples or FALLBACK_STRINGS)


def _sample_distinct(rng: random.Random, lex: Lex, count: int) -> list[Any] | None:
    if lex.type == "enum":
        pool = list(lex.values)
    elif lex.type == "string":
        pool = list(lex.examples or FALLBACK_STRINGS)
    else:
        seen: dict[str, Any] = {}
        for _ in range(count * 6):
            v = sample_scalar(rng, lex)
            seen.setdefault(str(v), v)
            if len(seen) == count:
                break
        pool = list(seen.values())
    if len(pool) < count:
        return None
    return rng.sample(pool, count)


def _text_fragment(rng: random.Random, text: str, op: str) -> str:
    """A piece of an example value for contains/starts_with/ends_with (kept verbatim in the request)."""
    words = [w for w in re.split(r"[\s\-]+", text) if len(w) >= 3]
    if op == "starts_with":
        return words[0] if words and rng.random() < 0.6 and text.startswith(words[0]) else text[:max(3, len(text) // 2)]
    if op == "ends_with":
        return words[-1] if words and rng.random() < 0.6 and text.endswith(words[-1]) else text[-max(3, len(text) // 2):]
    return rng.choice(words) if words else text


def sample_value(rng: random.Random, lex: Lex, op: str) -> Any:
    if op == "between":
        pair = _sample_distinct(rng, lex, 2)
        return None if pair is None else sorted(pair, key=lambda v: (v if lex.type != "date" else str(v)))
    if op in ("in", "not_in"):
        return _sample_distinct(rng, lex, rng.choice((2, 2, 3)))
    if op in TEXT_MATCH_OPS:
        return _text_fragment(rng, rng.choice(lex.examples or FALLBACK_STRINGS), op).strip() or None
    return sample_scalar(rng, lex)


def number_text(value: int | float) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def date_text(iso: str, lang: str, rng: random.Random, terse: bool = False) -> str:
    day = parse_date(iso)
    if day is None or terse and rng.random() < 0.8 or rng.random() < 0.45:
        return iso
    month = MONTHS[lang][day.month - 1]
    if lang == "fr":
        return f"{'1er' if day.day == 1 else day.day} {month} {day.year}"
    return f"{month} {day.day}, {day.year}" if rng.random() < 0.6 else f"{day.day} {month} {day.year}"


def enum_text(lex: Lex, value: Any, lang: str) -> str:
    spoken = lex.value_labels.get(str(value), {}).get(lang) if lex.value_labels else None
    return spoken or str(value).replace("_", " ")
