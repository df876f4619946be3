"""The type vocabulary of the settings: what a key's value may be.

The Literal aliases other modules share; `field_type` evaluates a section field's annotation and `choices`,
`allowed_types`, `type_name` read one (the loader's checks, the generated flags and the README tables all go
through them); `Range` is what the type cannot say (bounds such as >= 1 or in [0, 1)), declared on a field with
`setting(..., limits=Range(...))`. Stdlib only: prompting.py, teachers/ and student/ import the aliases from here.
"""
from __future__ import annotations

import functools
import json
import math
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal

TeacherBackend = Literal["grammar", "ollama", "openai"]  # the one list: teachers.BACKENDS is made from it
TrainingBackend = Literal["auto", "hf", "unsloth"]  # student.models.BACKENDS is made from it
Optimizer = Literal["adamw", "muon"]  # student.optim.OPTIMIZERS is made from it
SchemaFormat = Literal["compact", "json"]  # prompting.SCHEMA_FORMATS is made from it
Switch = bool | Literal["always"]  # on where measured faster / "always" = on regardless / off


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def field_type(cls: type, key: str) -> Any:
    """The annotation of `key` in section class `cls`, evaluated."""
    return _hints(cls)[key]


def _members(annotation: Any) -> tuple[Any, ...]:
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(m for part in typing.get_args(annotation) for m in _members(part))
    return (annotation,)


def choices(annotation: Any) -> tuple[Any, ...]:
    """The values a Literal part of the annotation allows (empty when none)."""
    return tuple(v for m in _members(annotation) if typing.get_origin(m) is Literal for v in typing.get_args(m))


def allowed_types(annotation: Any) -> tuple[type, ...]:
    """The JSON value types a key takes: a float also takes an int, a Literal its values' type, X | None null."""
    allowed: list[type] = []
    for member in _members(annotation):
        if typing.get_origin(member) is Literal:
            kinds = tuple(type(v) for v in typing.get_args(member))
        elif typing.get_origin(member) is list:  # list[str]: a JSON array (type_ok checks its items)
            kinds = (list,)
        elif member is float:
            kinds = (int, float)
        else:
            kinds = (member,)
        for kind in kinds:
            if kind not in allowed:
                allowed.append(kind)
    if type(None) in allowed:  # null is named last
        allowed = [k for k in allowed if k is not type(None)] + [type(None)]
    return tuple(allowed)


def type_name(annotation: Any) -> str:
    """How a type reads in docs: int, float, str | None, "compact" | "json", bool | "always"."""
    parts = []
    for member in _members(annotation):
        if typing.get_origin(member) is Literal:
            parts += [json.dumps(v) for v in typing.get_args(member)]
        elif typing.get_origin(member) is list:
            parts.append(f"list[{typing.get_args(member)[0].__name__}]")
        else:
            parts.append("None" if member is type(None) else member.__name__)
    return " | ".join(parts)


def type_ok(value: Any, allowed: tuple[type, ...]) -> bool:
    """Whether a config file's value is of one of the allowed types (a JSON true is no int here)."""
    if isinstance(value, bool) and bool not in allowed:
        return False  # True is an int in Python; not in a config file
    if isinstance(value, list):  # the only list keys hold strings (file paths)
        return list in allowed and all(isinstance(item, str) for item in value)
    return isinstance(value, allowed)


@dataclass(frozen=True)
class Range:
    """The values a number key takes beyond its type: null always passes (the loader has checked the type).

    at_least / above: lower bound (>= / >); at_most / below: upper bound (<= / <); finite: no infinity;
    negative_unset: any negative value means unset (as -1 or null) and passes; note: words after the rule in
    the error message, e.g. " tokens" or " (0 = no time budget)".
    """

    at_least: float | None = None
    above: float | None = None
    at_most: float | None = None
    below: float | None = None
    finite: bool = False
    negative_unset: bool = False
    note: str = ""

    def allows(self, value: Any) -> bool:
        """Whether `value` is inside the range (NaN never is)."""
        if value is None:
            return True
        number = float(value)
        if self.negative_unset and number < 0:
            return True
        return ((not self.finite or math.isfinite(number))
                and (self.at_least is None or number >= self.at_least)
                and (self.above is None or number > self.above)
                and (self.at_most is None or number <= self.at_most)
                and (self.below is None or number < self.below))

    def rule(self) -> str:
        """How the range reads: ">= 1", "> 0", "in [0, 1)", "in (0, 1]", then the note."""
        low = ("[", ">=", self.at_least) if self.at_least is not None else ("(", ">", self.above)
        high = ("]", "<=", self.at_most) if self.at_most is not None else (")", "<", self.below)
        if low[2] is not None and high[2] is not None:
            text = f"in {low[0]}{low[2]:g}, {high[2]:g}{high[0]}"
        elif low[2] is not None or high[2] is not None:
            _, sign, bound = low if low[2] is not None else high
            text = f"{sign} {bound:g}"
        else:
            text = "finite"
        return text + self.note
