"""Valid instances of any JSON Schema, sampled: the built-in teacher's answers for a user's DSL.

`InstanceSampler(schema, rng).sample()` walks the schema: internal `$ref`s resolved, `allOf` merged, one branch
of `anyOf`/`oneOf` (a `oneOf` sample must match exactly one), `enum`/`const`, every `required` property and
each optional one with probability `optional_p` (none past `max_depth`, so recursion ends), array sizes within
`minItems`..`maxItems` (small), `uniqueItems`, tuple items (`prefixItems`, draft-07 `items: [...]`), number
bounds (`minimum`, `maximum`, exclusive ones, `multipleOf`), string lengths, `format` date/date-time/time/email/
uri/uuid, and `pattern` (a small generator over Python's regex parser). Whatever it builds is checked against
the whole schema by the caller: a sample that is not valid is dropped, never kept.
"""
from __future__ import annotations

import datetime as dt
import math
import random
import re._parser as regex_parser  # Python's own regex parser (3.11+), its opcodes included: reads `pattern`
import string
from typing import Any

from ...schema_checks import SchemaContext

WORDS = ("alpha", "blue", "garden", "north", "delta", "river", "maple", "orion", "lumen", "cedar", "atlas", "nova")
EXAMPLE_NAMES = ("Alice", "Bruno", "Chloé", "David", "Emma", "Farid", "Inès", "Jonas")
NUMBER_SPAN = 100  # an unbounded number is drawn within this distance of its one bound (or of 0)


class SampleError(ValueError):
    """The schema asks for something the sampler cannot build (the caller skips that sample)."""


def regex_sample(pattern: str, rng: random.Random, max_repeat: int = 4) -> str:
    """A string matching `pattern` (anchors dropped; repeats capped at max_repeat beyond their minimum)."""
    def walk(items: Any) -> str:
        out = []
        for op, arg in items:
            if op == regex_parser.LITERAL:
                out.append(chr(arg))
            elif op == regex_parser.ANY:
                out.append(rng.choice(string.ascii_lowercase))
            elif op == regex_parser.IN:
                out.append(charset(arg))
            elif op in (regex_parser.MAX_REPEAT, regex_parser.MIN_REPEAT):
                low, high, inner = arg
                high = low + max_repeat if high == regex_parser.MAXREPEAT else min(high, low + max_repeat)
                out.extend(walk(inner) for _ in range(rng.randint(low, high)))
            elif op == regex_parser.SUBPATTERN:
                out.append(walk(arg[-1]))
            elif op == regex_parser.BRANCH:
                out.append(walk(rng.choice(arg[1])))
            elif op == regex_parser.AT:
                continue
            else:
                raise SampleError(f"pattern {pattern!r}: {op} is not sampled")
        return "".join(out)

    def charset(items: Any) -> str:
        choices: list[str] = []
        for op, arg in items:
            if op == regex_parser.NEGATE:
                raise SampleError(f"pattern {pattern!r}: negated sets are not sampled")
            if op == regex_parser.LITERAL:
                choices.append(chr(arg))
            elif op == regex_parser.RANGE:
                low, high = arg
                choices.extend(chr(c) for c in range(low, min(high, low + 60) + 1))
            elif op == regex_parser.CATEGORY:
                choices.extend({regex_parser.CATEGORY_DIGIT: string.digits,
                                regex_parser.CATEGORY_WORD: string.ascii_letters + string.digits,
                                regex_parser.CATEGORY_SPACE: " "}.get(arg, string.ascii_lowercase))
        if not choices:
            raise SampleError(f"pattern {pattern!r}: an empty set")
        return rng.choice(choices)

    return walk(regex_parser.parse(pattern))


class InstanceSampler:
    """Samples instances of one schema (see the module docstring)."""

    def __init__(self, schema: dict[str, Any], rng: random.Random, *, max_depth: int = 4, optional_p: float = 0.5,
                 max_items: int = 3, context: SchemaContext | None = None):
        from ...dsl import validator_class

        self.schema = schema
        self.rng = rng
        self.max_depth = max_depth
        self.optional_p = optional_p
        self.max_items = max_items
        self.context = context or SchemaContext(validator_class(schema)(schema))

    def sample(self, node: Any = None) -> Any:
        return self.value(self.schema if node is None else node, 0)

    # -- schema plumbing --------------------------------------------------------------------------------------
    def resolve(self, node: Any, depth: int) -> dict[str, Any]:
        """The node with its $ref followed and its allOf members merged in."""
        if node is True or node == {}:
            return {"type": "string"}
        if not isinstance(node, dict):
            raise SampleError("a false schema admits nothing")
        for _ in range(24):
            ref = node.get("$ref")
            if not isinstance(ref, str):
                break
            node = {**self.context.lookup(ref), **{k: v for k, v in node.items() if k != "$ref"}}
        for member in node.get("allOf", []):
            member = self.resolve(member, depth)
            node = {**member, **{k: v for k, v in node.items() if k != "allOf"},
                    "properties": {**member.get("properties", {}), **node.get("properties", {})},
                    "required": sorted({*member.get("required", []), *node.get("required", [])})}
        return node

    def value(self, node: Any, depth: int) -> Any:
        node = self.resolve(node, depth)
        if "const" in node:
            return node["const"]
        if "enum" in node:
            return self.rng.choice(node["enum"])
        for key in ("oneOf", "anyOf"):
            branches = node.get(key)
            if branches:
                return self.branch(node, key, branches, depth)
        kind = node.get("type")
        if isinstance(kind, list):
            kind = self.rng.choice([k for k in kind if k != "null"] or kind)
        if kind is None:
            kind = ("object" if "properties" in node else "array" if "items" in node or "prefixItems" in node
                    else "string")
        maker = {"object": self.object, "array": self.array, "string": self.string, "integer": self.integer,
                 "number": self.number, "boolean": lambda n, d: self.rng.random() < 0.5,
                 "null": lambda n, d: None}.get(kind)
        if maker is None:
            raise SampleError(f"unknown type {kind!r}")
        return maker(node, depth)

    def branch(self, node: dict[str, Any], key: str, branches: list[Any], depth: int) -> Any:
        """A value of one branch; for oneOf, one that the other branches reject (a few tries)."""
        rest = {k: v for k, v in node.items() if k not in ("oneOf", "anyOf")}
        order = list(range(len(branches)))
        self.rng.shuffle(order)
        if depth >= self.max_depth:  # deep down, prefer branches without nesting (recursion must end)
            order.sort(key=lambda i: "$ref" in str(branches[i]) or "properties" in str(branches[i]))
        for i in order * 2:
            chosen = {**rest, **self.resolve(branches[i], depth)} if rest.keys() - {"description", "title"} \
                else branches[i]
            try:
                value = self.value(chosen, depth)
            except SampleError:
                continue
            if key == "anyOf" or sum(self.context.admits(b, value) for b in branches) == 1:
                return value
        raise SampleError(f"no {key} branch could be sampled")

    # -- value kinds ------------------------------------------------------------------------------------------
    def object(self, node: dict[str, Any], depth: int) -> dict[str, Any]:
        properties = node.get("properties") or {}
        required = set(node.get("required") or [])
        out: dict[str, Any] = {}
        for name, child in properties.items():
            wanted = name in required or (depth < self.max_depth and self.rng.random() < self.optional_p)
            if wanted:
                try:
                    out[name] = self.value(child, depth + 1)
                except SampleError:
                    if name in required:
                        raise
        missing = required - out.keys()
        if missing:  # required without a properties entry: any value the schema allows
            extra = node.get("additionalProperties")
            for name in sorted(missing):
                out[name] = self.value(extra if isinstance(extra, dict) else {"type": "string"}, depth + 1)
        low = node.get("minProperties") or 0
        for name, child in properties.items():
            if len(out) >= low:
                break
            if name not in out:
                out[name] = self.value(child, depth + 1)
        return out

    def array(self, node: dict[str, Any], depth: int) -> list[Any]:
        prefix = node.get("prefixItems") or (node["items"] if isinstance(node.get("items"), list) else None)
        if prefix:
            return [self.value(child, depth + 1) for child in prefix[:max(len(prefix), node.get("minItems", 0))]]
        low = node.get("minItems", 0)
        high = min(node.get("maxItems", low + self.max_items), low + self.max_items)
        if depth >= self.max_depth:
            high = low
        count = self.rng.randint(max(low, 1 if high >= 1 else 0), high) if high >= low else low
        item = node.get("items", {"type": "string"})
        values: list[Any] = []
        for _ in range(count * 4):
            if len(values) >= count:
                break
            value = self.value(item, depth + 1)
            if node.get("uniqueItems") and value in values:
                continue
            values.append(value)
        if len(values) < low:
            raise SampleError("too few distinct array items")
        return values

    def string(self, node: dict[str, Any], depth: int) -> str:
        fmt = node.get("format")
        if fmt in ("date", "date-time", "time"):
            day = dt.date(2026, 1, 1) + dt.timedelta(days=self.rng.randrange(730))
            clock = dt.time(self.rng.randrange(7, 22), self.rng.choice((0, 15, 30, 45)))
            # RFC 3339, as JSON Schema defines these formats: a time carries its offset (here Z), and xgrammar's
            # format grammar will not let a student end a time without one
            return {"date": day.isoformat(), "time": f"{clock.isoformat()}Z",
                    "date-time": f"{day.isoformat()}T{clock.isoformat()}Z"}[fmt]
        if fmt == "email":
            return f"{self.rng.choice(EXAMPLE_NAMES).lower().replace('é', 'e').replace('è', 'e')}@example.com"
        if fmt in ("uri", "url"):
            return f"https://example.com/{self.rng.choice(WORDS)}"
        if fmt == "uuid":
            return "%08x-%04x-4%03x-8%03x-%012x" % tuple(self.rng.getrandbits(b) for b in (32, 16, 12, 12, 48))
        if "pattern" in node:
            return regex_sample(node["pattern"], self.rng)
        low, high = node.get("minLength", 1), node.get("maxLength", 40)
        text = self.rng.choice(EXAMPLE_NAMES) if self.rng.random() < 0.3 else " ".join(
            self.rng.sample(WORDS, self.rng.randint(1, 2)))
        while len(text) < low:
            text += " " + self.rng.choice(WORDS)
        return text[:high].strip() if len(text[:high].strip()) >= low else text[:high]

    def integer(self, node: dict[str, Any], depth: int) -> int:
        low, high = self.bounds(node, integer=True)
        step = node.get("multipleOf")
        if isinstance(step, int) and step > 0:
            first = math.ceil(low / step)
            last = math.floor(high / step)
            if first > last:
                raise SampleError("no multiple of multipleOf within the bounds")
            return self.rng.randint(first, last) * step
        return self.rng.randint(low, high)

    def number(self, node: dict[str, Any], depth: int) -> float | int:
        if self.rng.random() < 0.5 or isinstance(node.get("multipleOf"), int):
            try:
                return self.integer(node, depth)
            except (SampleError, ValueError):
                pass
        low, high = self.bounds(node, integer=False)
        step = node.get("multipleOf") or 0.5
        first, last = math.ceil(low / step), math.floor(high / step)
        if first > last:
            raise SampleError("no number of that step within the bounds")
        value = round(self.rng.randint(first, last) * step, 6)
        return int(value) if float(value).is_integer() else value  # 24, not 24.0: what the request says

    def bounds(self, node: dict[str, Any], integer: bool) -> tuple[Any, Any]:
        """The closed interval a number is drawn from (exclusive bounds moved inwards)."""
        low, high = node.get("minimum"), node.get("maximum")
        tiny = 1 if integer else 0.5
        if isinstance(node.get("exclusiveMinimum"), (int, float)) and not isinstance(node["exclusiveMinimum"], bool):
            low = node["exclusiveMinimum"] + tiny if low is None else max(low, node["exclusiveMinimum"] + tiny)
        if isinstance(node.get("exclusiveMaximum"), (int, float)) and not isinstance(node["exclusiveMaximum"], bool):
            high = node["exclusiveMaximum"] - tiny if high is None else min(high, node["exclusiveMaximum"] - tiny)
        if low is None and high is None:
            low, high = 0, NUMBER_SPAN
        elif low is None:
            low = high - NUMBER_SPAN
        elif high is None:
            high = low + NUMBER_SPAN
        if integer:
            low, high = math.ceil(low), math.floor(high)
        if low > high:
            raise SampleError("empty number range")
        return low, high
