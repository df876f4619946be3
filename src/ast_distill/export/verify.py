"""Does each GGUF answer like the trained student? Decode the same rows with transformers and with llama.cpp.

For every row both decoders get the same prompt text (the checkpoint's chat template over the row's prompt):
- free decoding, greedy: the share of rows whose new tokens are exactly the transformers student's
  (token agreement), and whether llama.cpp tokenizes the prompt to the same ids;
- constrained decoding (xgrammar for transformers, llama.cpp's JSON-Schema grammar for the GGUF): semantic
  match with the gold AST and schema validity, scored by ``scoring.score_output`` as evaluation does;
- speed: new tokens per second, milliseconds to the first new token (llama.cpp; transformers decodes a batch
  at once, so it has no per-row first token), rows per second.
"""
from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import student
from ..predict import load_generator
from ..scoring import metrics, score_output
from ..llamacpp import LlamaCppGenerator

TRANSFORMERS = "transformers"


def _decode(generator: Any, texts: Sequence[str], schemas: Sequence[dict[str, Any] | None], *, max_new_tokens: int,
            batch_size: int, desc: str) -> tuple[list[Any], float]:
    """Generations in row order and the wall seconds they took."""
    out: list[Any] = [None] * len(texts)
    started = time.perf_counter()
    for batch in generator.generate_all(texts, schemas, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                        desc=desc):
        for index, generation in batch:
            out[index] = generation
    return out, time.perf_counter() - started


def _llama_decode(generator: LlamaCppGenerator, encoded: Sequence[Sequence[int]],
                  schemas: Sequence[dict[str, Any] | None], *, max_new_tokens: int,
                  desc: str) -> tuple[list[Any], list[float], float]:
    """Generations, seconds to each row's first token, and wall seconds, one row at a time."""
    from tqdm.auto import tqdm

    generations, firsts = [], []
    started = time.perf_counter()
    for ids, schema in tqdm(list(zip(encoded, schemas)), desc=desc, unit="row"):
        generation, first_s = generator.generate_one(ids, schema, max_new_tokens=max_new_tokens)
        generations.append(generation)
        firsts.append(first_s if first_s is not None else 0.0)
    return generations, firsts, time.perf_counter() - started


def _quality(rows: Sequence[Mapping[str, Any]], schemas: Mapping[str, dict[str, Any]], texts: Sequence[str],
             generations: Sequence[Any]) -> dict[str, Any]:
    rates = metrics([score_output(row, schemas[row["schema_id"]], gen, prompt_text=text, constrained=True)
                     for row, text, gen in zip(rows, texts, generations)])
    return {key: rates[key] for key in ("semantic_match_rate", "schema_valid_rate", "truncated_rate")}


def _speed(generations: Sequence[Any], wall_s: float) -> dict[str, Any]:
    tokens = sum(len(g.token_ids) for g in generations)
    return {"new_tokens_per_s": round(tokens / wall_s, 1) if wall_s else None,
            "rows_per_s": round(len(generations) / wall_s, 3) if wall_s else None}


def verify_ggufs(checkpoint: str, ggufs: Mapping[str, Path], tokenizer_dir: Path, rows: Sequence[Mapping[str, Any]],
                 schemas: Mapping[str, dict[str, Any]], *, max_new_tokens: int, batch_size: int, n_ctx: int,
                 log: Callable[[str], Any] = print) -> dict[str, Any]:
    """{"rows": n, "formats": {name: measures}} with "transformers" first: the reference every GGUF is held to."""
    reference = load_generator(checkpoint, "cpu")
    texts = [student.prompt_text(reference.tokenizer, row["prompt"]) for row in rows]
    row_schemas = [schemas[row["schema_id"]] for row in rows]
    log(f"verify: {len(rows)} rows with transformers (the trained student), free then constrained")
    ref_free, free_s = _decode(reference, texts, [None] * len(texts), max_new_tokens=max_new_tokens,
                               batch_size=batch_size, desc="transformers free")
    ref_constrained, constrained_s = _decode(reference, texts, row_schemas, max_new_tokens=max_new_tokens,
                                             batch_size=batch_size, desc="transformers constrained")
    reference_ids = [reference.encode(t) for t in texts]
    formats: dict[str, Any] = {TRANSFORMERS: {
        "decoder": f"transformers + xgrammar, batch {batch_size}", "token_agreement": 1.0,
        **_quality(rows, schemas, texts, ref_constrained), **_speed(ref_constrained, constrained_s),
        "free_rows_per_s": round(len(texts) / free_s, 3) if free_s else None}}
    del reference
    tokenizer = student.load_tokenizer(str(tokenizer_dir))
    for name, path in ggufs.items():
        log(f"verify: {len(rows)} rows with llama.cpp on {path.name}")
        generator = LlamaCppGenerator(path, tokenizer, n_ctx=n_ctx)
        encoded = [generator.encode(t) for t in texts]
        free, _, free_wall = _llama_decode(generator, encoded, [None] * len(texts), max_new_tokens=max_new_tokens,
                                           desc=f"{name} free")
        constrained, firsts, wall = _llama_decode(generator, encoded, row_schemas, max_new_tokens=max_new_tokens,
                                                  desc=f"{name} constrained")
        formats[name] = {
            "decoder": "llama.cpp + its JSON-Schema grammar, batch 1", "bytes": path.stat().st_size,
            "prompt_tokens_equal": round(sum(a == b for a, b in zip(encoded, reference_ids)) / len(texts), 4),
            "token_agreement": round(sum(g.token_ids == r.token_ids for g, r in zip(free, ref_free)) / len(texts), 4),
            **_quality(rows, schemas, texts, constrained), **_speed(constrained, wall),
            "free_rows_per_s": round(len(texts) / free_wall, 3) if free_wall else None,
            "first_token_ms_median": round(statistics.median(firsts) * 1000.0, 1) if firsts else None}
        del generator
    return {"rows": len(rows), "max_new_tokens": max_new_tokens, "formats": formats}


def verification_table(report: Mapping[str, Any]) -> str:
    """Markdown: one row per format, transformers first."""
    header = ("| format | size | prompt tokens as transformers | same tokens as transformers (free) | semantic match "
              "| schema valid | truncated | new tokens/s | first token | rows/s (free) |")
    lines = [f"{report['rows']} d_05 rows, greedy; quality columns use constrained decoding.", "", header,
             "|" + "---|" * 10]
    for name, m in report["formats"].items():
        size = f"{m['bytes'] / 1e6:.0f} MB" if m.get("bytes") else "-"
        prompt = f"{m['prompt_tokens_equal']:.2f}" if "prompt_tokens_equal" in m else "-"
        first = f"{m['first_token_ms_median']:.0f} ms" if m.get("first_token_ms_median") is not None else "-"
        lines.append(f"| {name} | {size} | {prompt} | {m['token_agreement']:.2f} | {m['semantic_match_rate']:.3f} | "
                     f"{m['schema_valid_rate']:.2f} | {m['truncated_rate']:.2f} | {m['new_tokens_per_s']} | {first} | "
                     f"{m['rows_per_s']} ({m['free_rows_per_s']}) |")
    return "\n".join(lines)
