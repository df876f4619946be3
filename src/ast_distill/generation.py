"""Batched generation for the student, optionally constrained to the DSL's JSON Schema with xgrammar.

One loop serves both paths (transformers' ``generate`` with left padding and the KV cache), so samples/s of
constrained and free decoding compare fairly; the constrained path only adds a logits processor that masks,
at each step and for each row, the tokens its schema's grammar cannot take next.

The grammar is compiled from the schema with minified separators and no free whitespace, because the student
is trained to write ``render_ast`` output: minified JSON with render_ast's fixed key order. xgrammar writes an
object's properties in the order the schema declares them, so the schema handed to it has every
``properties`` reordered that way: the grammar then matches the training completions even for a schema
written by hand in another order.

The grammar leaves out the schema's ``maxLength`` keywords (``grammar_schema``): xgrammar expands a bounded
string into one rule per length, which on Gemma 3's 262,144-token vocabulary made one DSL schema take ~13 s
to compile instead of ~0.15 s (``minLength: 1`` costs little and stays). Nothing is hidden by it: the whole
output is bounded by ``max_new_tokens``, so decoding cannot loop, and a row that reaches it before writing a
stop token is reported ``truncated``; validity is judged against the full schema (jsonschema, in scoring),
so an overlong string is reported invalid. Numbers are the other way round: a bound costs nothing to
compile, so a number the schema leaves unbounded gets +-(10**15 - 1) in the grammar (a weak student otherwise
repeats a digit until max_new_tokens). Measured on Gemma 3's vocabulary, xgrammar 0.2.8: a DSL schema compiles
in 0.15 s with or without the number bounds, and in 3.1 s with every free string capped at 48 characters
(maxLength), which is why strings stay unbounded.

xgrammar 0.2.8 lets a length-bounded JSON string (here: one with minLength) hold raw control characters
(U+0000..U+001F), which strict JSON forbids; tokens that decode to any such byte are therefore masked as well
(minified JSON never needs them: a newline inside a string is written as an escape).
"""
from __future__ import annotations

import json
import math
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import xgrammar as xgr
from tqdm.auto import tqdm
from transformers import LogitsProcessor, LogitsProcessorList

from .canonical import ordered_keys
from .errors import UserError


@dataclass
class Generation:
    """What the student wrote for one prompt."""
    text: str  # decoded, stop token and special tokens removed
    token_ids: list[int]  # generated ids up to (not including) the first stop token
    truncated: bool  # no stop token within max_new_tokens
    latency_ms: float  # this row's share of its batch's wall time
    # log-probability of each token picked, the stop token included, under the distribution it was picked from
    # (the grammar's mask applied: constrained decoding renormalizes over what the grammar allows); None when the
    # decoder does not report them (llama.cpp)
    token_logprobs: list[float] | None = None

    @property
    def answer_logprob(self) -> float | None:
        """The log-probability the student gave this whole answer (sum of token_logprobs): the raw confidence, as a
        log so that a long answer does not underflow to 0 (calibration.py maps it to a probability)."""
        return None if self.token_logprobs is None else float(sum(self.token_logprobs))

    @property
    def sequence_probability(self) -> float | None:
        """exp(answer_logprob): the probability of this exact answer."""
        return None if self.answer_logprob is None else math.exp(self.answer_logprob)


def model_vocab_size(model: Any) -> int:
    """Rows of the model's output layer: the logits width, which may exceed len(tokenizer)."""
    head = model.get_output_embeddings()
    weight = getattr(head, "weight", None)
    if callable(weight):  # a dynamically quantized Linear keeps its weight behind a method
        weight = weight()
    if weight is not None:
        return int(weight.shape[0])
    return int(model.config.get_text_config().vocab_size)


# Length bounds the grammar leaves out (see the module docstring); the full schema still judges validity.
_UNCOMPILED_KEYWORDS = frozenset({"maxLength"})
# Keywords whose value maps names to subschemas (a field may be called "maxLength") or holds literal data.
_NAME_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_LITERALS = frozenset({"enum", "const", "default", "examples"})
# The bound the grammar puts on a number the schema leaves unbounded on a side: 15 digits (what a double holds
# exactly), so a weak student that repeats a digit ends its number instead of writing until max_new_tokens.
NUMBER_BOUND = 10**15 - 1
# The version of grammar_schema's rewrite: evaluation records it, so results decoded under other rules are not
# resumed. Raise it whenever grammar_schema changes what a grammar allows.
GRAMMAR_RULES = 2


def grammar_schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The copy of `schema` that the decoding grammar is compiled from: properties in render_ast's order,
    no maxLength, numbers bounded to NUMBER_BOUND on a side the schema leaves open, draft-07 tuples
    (`items: [...]`, `additionalItems`) written as 2020-12's `prefixItems` and `items`, the only form xgrammar
    reads (it rejects a list under `items`)."""
    return in_render_order(_for_grammar(schema))


def _numeric(schema: dict[str, Any]) -> bool:
    kinds = schema.get("type")
    kinds = kinds if isinstance(kinds, list) else [kinds]
    return any(kind in ("integer", "number") for kind in kinds)


def _for_grammar(schema: Any) -> Any:
    """A copy of a JSON Schema rewritten for xgrammar in every subschema (names and literals kept)."""
    if isinstance(schema, list):
        return [_for_grammar(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    tuple_form = isinstance(schema.get("items"), list)
    for key, value in schema.items():
        if key in _UNCOMPILED_KEYWORDS:
            continue
        if tuple_form and key in ("items", "additionalItems"):
            out["prefixItems" if key == "items" else "items"] = _for_grammar(value)
        elif key in _LITERALS:
            out[key] = value
        elif key in _NAME_MAPS and isinstance(value, dict):
            out[key] = {name: _for_grammar(sub) for name, sub in value.items()}
        else:
            out[key] = _for_grammar(value)
    if _numeric(schema):
        if "maximum" not in schema and "exclusiveMaximum" not in schema:
            out["maximum"] = NUMBER_BOUND
        if "minimum" not in schema and "exclusiveMinimum" not in schema:
            out["minimum"] = -NUMBER_BOUND
    return out


def in_render_order(schema: Any) -> Any:
    """A copy of a JSON Schema whose every ``properties`` lists its keys in render_ast's order."""
    if isinstance(schema, list):
        return [in_render_order(item) for item in schema]
    if not isinstance(schema, dict):
        return schema
    out = {key: in_render_order(value) for key, value in schema.items()}
    if isinstance(schema.get("properties"), dict):
        props = out["properties"]
        out["properties"] = {key: props[key] for key in ordered_keys(props)}
    return out


_CONTROL_BYTE = re.compile(rb"[\x00-\x1f]")


def _json_safe_mask(info: xgr.TokenizerInfo, vocab_size: int) -> torch.Tensor:
    """One bitmask row (xgrammar layout: bit j%32 of word j//32) allowing every token except those whose
    text holds a control byte; stop tokens stay allowed. Reading xgrammar's ``decoded_vocab`` is nearly all
    of its cost (1-2 s for Gemma 3's 262,144 tokens); the regex scan takes ~0.05 s."""
    allowed = torch.ones(vocab_size, dtype=torch.bool)
    vocab = info.decoded_vocab[:vocab_size]
    allowed[:len(vocab)] = torch.tensor([_CONTROL_BYTE.search(text) is None for text in vocab], dtype=torch.bool)
    allowed[[t for t in info.stop_token_ids if t < vocab_size]] = True
    words = xgr.get_bitmask_shape(1, vocab_size)[1]
    bits = torch.zeros(words * 32, dtype=torch.int64)
    bits[:vocab_size] = allowed.long()
    packed = (bits.view(words, 32) << torch.arange(32, dtype=torch.int64)).sum(dim=1)
    packed = torch.where(packed >= 2**31, packed - 2**32, packed)  # as two's complement int32
    return packed.to(torch.int32)


class GrammarCache:
    """Compiles each distinct schema once into an xgrammar grammar for one tokenizer."""

    def __init__(self, tokenizer: Any, *, vocab_size: int, stop_token_ids: Sequence[int]) -> None:
        self.info = xgr.TokenizerInfo.from_huggingface(tokenizer, vocab_size=vocab_size,
                                                       stop_token_ids=list(stop_token_ids))
        self.compiler = xgr.GrammarCompiler(self.info, max_threads=2, cache_enabled=False)
        self._compiled: dict[str, xgr.CompiledGrammar] = {}
        self.json_safe_mask = _json_safe_mask(self.info, vocab_size)

    def compiled(self, schema: dict[str, Any]) -> xgr.CompiledGrammar:
        key = json.dumps(schema, ensure_ascii=False, sort_keys=True)
        if key not in self._compiled:
            try:
                self._compiled[key] = self.compiler.compile_json_schema(
                    json.dumps(grammar_schema(schema), ensure_ascii=False), any_whitespace=False,
                    separators=(",", ":"))
            except (RuntimeError, ValueError) as exc:
                title = schema.get("title", "(untitled)") if isinstance(schema, dict) else "(not an object)"
                first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
                raise UserError(f"cannot build a decoding grammar for schema '{title}': {first_line}; "
                                f"decode without constraints (--no-constrained)") from None
        return self._compiled[key]

    def matcher(self, schema: dict[str, Any]) -> xgr.GrammarMatcher:
        return xgr.GrammarMatcher(self.compiled(schema))


class GrammarLogitsProcessor(LogitsProcessor):
    """Masks each row's logits to the tokens its grammar allows next; rows with no matcher run free.

    ``generate`` calls it once per step with every token chosen so far, so the row's previous token is fed
    to its matcher first. A matcher that accepted a stop token is finished and masks nothing (generate pads
    that row from then on).
    """

    def __init__(self, matchers: Sequence[xgr.GrammarMatcher | None], vocab_size: int,
                 prompt_length: int, json_safe_mask: torch.Tensor) -> None:
        self.matchers = list(matchers)
        self.json_safe_mask = json_safe_mask
        self.vocab_size = vocab_size
        self.prompt_length = prompt_length
        self.bitmask = xgr.allocate_token_bitmask(len(self.matchers), vocab_size)

    def _live(self) -> list[int]:
        return [i for i, m in enumerate(self.matchers) if m is not None and not m.is_terminated()]

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if input_ids.shape[1] > self.prompt_length:
            last = input_ids[:, -1].tolist()
            for i in self._live():
                if not self.matchers[i].accept_token(last[i]):
                    raise RuntimeError(f"row {i}: the grammar rejected token {last[i]} it had allowed")
        live = self._live()
        if not live:
            return scores
        xgr.reset_token_bitmask(self.bitmask)
        for i in live:
            self.matchers[i].fill_next_token_bitmask(self.bitmask, i)
        self.bitmask[live] &= self.json_safe_mask
        xgr.apply_token_bitmask_inplace(scores, self.bitmask.to(scores.device), vocab_size=self.vocab_size,
                                        indices=live)
        return scores


class TokenLogprobRecorder(LogitsProcessor):
    """Keeps, for every row, the log-probability of each token the decoding picks, from the scores it picks from.

    Last in the processor list, it sees the scores after the grammar's mask (and after sampling's warpers, when
    sampling). At step t it reads the token picked at step t-1 from ``input_ids``; ``finish`` reads the last one.
    It holds one step's log-probabilities, not every step's scores (``output_scores`` would keep a batch x
    vocabulary tensor per step: gigabytes for Gemma's 262,144 tokens).
    """

    def __init__(self, prompt_length: int) -> None:
        self.prompt_length = prompt_length
        self.previous: torch.Tensor | None = None
        self.logprobs: list[list[float]] = []

    def _take(self, input_ids: torch.Tensor) -> None:
        if self.previous is None:
            return
        picked = self.previous.gather(1, input_ids[:, -1:].to(self.previous.device)).squeeze(1).tolist()
        if not self.logprobs:
            self.logprobs = [[] for _ in picked]
        for row, value in enumerate(picked):
            self.logprobs[row].append(float(value))

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        self._take(input_ids)
        self.previous = torch.log_softmax(scores.float(), dim=-1)
        return scores

    def finish(self, sequences: torch.Tensor) -> list[list[float]]:
        """Every row's log-probabilities, given generate's output (its last token was picked after the last call)."""
        if sequences.shape[1] > self.prompt_length:
            self._take(sequences)
        self.previous = None
        return self.logprobs


class StudentGenerator:
    """Generates for batches of prompt texts with one model: left padding, stop on real stop tokens."""

    def __init__(self, model: Any, tokenizer: Any, *, stop_token_ids: Sequence[int]) -> None:
        if not stop_token_ids:
            raise ValueError("stop_token_ids must name at least one token")
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.stop_token_ids = [int(t) for t in stop_token_ids]
        self.vocab_size = model_vocab_size(model)
        pad = tokenizer.pad_token_id
        self.pad_token_id = int(pad if pad is not None else self.stop_token_ids[0])
        self._grammars: GrammarCache | None = None

    @property
    def grammars(self) -> GrammarCache:
        if self._grammars is None:
            self._grammars = GrammarCache(self.tokenizer, vocab_size=self.vocab_size,
                                          stop_token_ids=self.stop_token_ids)
        return self._grammars

    def prepare_grammar(self, schema: dict[str, Any]) -> None:
        """Compile a schema's grammar now, so that timed decoding does not pay for it."""
        self.grammars.compiled(schema)

    def encode(self, prompt_text: str) -> list[int]:
        # The chat template already wrote <bos>; adding special tokens again would double it.
        return list(self.tokenizer(prompt_text, add_special_tokens=False)["input_ids"])

    def _left_pad(self, encoded: Sequence[Sequence[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(ids) for ids in encoded)
        input_ids = torch.full((len(encoded), width), self.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(encoded), width), dtype=torch.long)
        for row, ids in enumerate(encoded):
            if ids:
                input_ids[row, width - len(ids):] = torch.tensor(ids, dtype=torch.long)
                attention[row, width - len(ids):] = 1
        device = self.model.device
        return input_ids.to(device), attention.to(device)

    def _generation_kwargs(self, max_new_tokens: int, temperature: float, top_p: float) -> dict[str, Any]:
        kwargs: dict[str, Any] = {
            "max_new_tokens": max_new_tokens,
            "eos_token_id": self.stop_token_ids,
            "pad_token_id": self.pad_token_id,
            "do_sample": temperature > 0,
        }
        if temperature > 0:
            # Set every warper the checkpoint's own generation_config could fill in (Gemma ships top_k=64,
            # top_p=0.95), so that only our flags shape the sampling.
            kwargs.update(temperature=float(temperature), top_p=float(top_p), top_k=0, min_p=None)
        return kwargs

    def generate_batch(self, encoded: Sequence[Sequence[int]], schemas: Sequence[dict[str, Any] | None], *,
                       max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0) -> list[Generation]:
        """One batch: ``schemas[i]`` constrains row i (None = free decoding)."""
        input_ids, attention = self._left_pad(encoded)
        matchers = [None if s is None else self.grammars.matcher(s) for s in schemas]
        processors = LogitsProcessorList()
        if any(m is not None for m in matchers):
            processors.append(GrammarLogitsProcessor(matchers, self.vocab_size, input_ids.shape[1],
                                                     self.grammars.json_safe_mask))
        recorder = TokenLogprobRecorder(input_ids.shape[1])
        processors.append(recorder)  # last: the scores the token is picked from
        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(input_ids=input_ids, attention_mask=attention, logits_processor=processors,
                                      **self._generation_kwargs(max_new_tokens, temperature, top_p))
        share_ms = (time.perf_counter() - started) * 1000.0 / len(encoded)
        logprobs = recorder.finish(out)
        new_tokens = out[:, input_ids.shape[1]:].tolist()
        return [self._finish(ids, share_ms, logprobs[row] if logprobs else [])
                for row, ids in enumerate(new_tokens)]

    def _finish(self, ids: list[int], latency_ms: float, logprobs: list[float]) -> Generation:
        stops = set(self.stop_token_ids)
        cut = next((i for i, t in enumerate(ids) if t in stops), None)
        kept = ids if cut is None else ids[:cut]
        text = self.tokenizer.decode(kept, skip_special_tokens=True)
        answered = logprobs[:len(ids) if cut is None else cut + 1]  # the stop token's too: ending is a choice
        return Generation(text=text, token_ids=kept, truncated=cut is None, latency_ms=latency_ms,
                          token_logprobs=answered)

    def generate_all(self, prompt_texts: Sequence[str], schemas: Sequence[dict[str, Any] | None], *,
                     batch_size: int, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                     desc: str = "generating", progress: bool = True) -> Iterator[list[tuple[int, Generation]]]:
        """Yields each batch's (index into prompt_texts, Generation) pairs as soon as it is done.

        Prompts are batched by token length (longest first) so that left padding wastes little and the
        memory peak comes first.
        """
        if batch_size < 1:
            raise UserError(f"batch size must be >= 1, got {batch_size}")
        encoded = [self.encode(t) for t in prompt_texts]
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        with tqdm(total=len(order), desc=desc, unit="row", disable=not progress) as bar:
            for start in range(0, len(order), batch_size):
                batch = order[start:start + batch_size]
                outputs = self.generate_batch([encoded[i] for i in batch], [schemas[i] for i in batch],
                                              max_new_tokens=max_new_tokens, temperature=temperature,
                                              top_p=top_p)
                bar.update(len(batch))
                yield list(zip(batch, outputs))
