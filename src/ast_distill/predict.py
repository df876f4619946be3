"""Using a trained student: requests in, one JSON AST per request out.

The prompt is built exactly as in training (``prompting.build_prompt``), with the schema rendered in the format
the checkpoint was trained with: ``schema_format`` from the run's ``run_config.json`` (in the checkpoint dir
or its parent, the run dir), else "compact".
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from . import dsl
from .errors import UserError
from .evaluation import load_generator, parse_output
from .generation import StudentGenerator
from .prompting import SCHEMA_FORMATS, build_prompt
from .student import prompt_text

DEFAULT_SCHEMA_FORMAT = "compact"
RUN_CONFIG_NAME = "run_config.json"


def _find_schema_format(value: Any) -> str | None:
    """The first "schema_format" string anywhere in a run_config (flat or sectioned)."""
    if isinstance(value, dict):
        if isinstance(value.get("schema_format"), str):
            return value["schema_format"]
        for child in value.values():
            found = _find_schema_format(child)
            if found:
                return found
    return None


def trained_schema_format(adapter: str) -> str:
    """The schema_format the checkpoint was trained with (run_config.json beside or above it), else compact."""
    folder = Path(adapter)
    for candidate in (folder / RUN_CONFIG_NAME, folder.parent / RUN_CONFIG_NAME):
        if candidate.is_file():
            try:
                found = _find_schema_format(json.loads(candidate.read_text(encoding="utf-8")))
            except json.JSONDecodeError:
                raise UserError(f"{candidate} is not valid JSON; fix it or pass the schema format explicitly") from None
            if found in SCHEMA_FORMATS:
                return found
    return DEFAULT_SCHEMA_FORMAT


def predict_with(generator: StudentGenerator, schema: dict[str, Any], queries: Sequence[str], *,
                 schema_format: str, constrained: bool = True, max_new_tokens: int = 256,
                 batch_size: int = 8) -> list[dict[str, Any]]:
    """predict() with a student already loaded (for callers that answer many requests)."""
    texts = [prompt_text(generator.tokenizer, build_prompt(schema, q, schema_format)) for q in queries]
    results: list[dict[str, Any]] = [{} for _ in queries]
    batches = generator.generate_all(texts, [schema if constrained else None] * len(texts), batch_size=batch_size,
                                     max_new_tokens=max_new_tokens, progress=len(texts) > batch_size)
    for batch in batches:
        for i, gen in batch:
            parsed, ast = parse_output(gen.text)
            results[i] = {"query": queries[i], "ast": ast, "raw": gen.text, "parsed": parsed,
                          "schema_valid": parsed and dsl.validation_error(schema, ast) is None,
                          "truncated": gen.truncated}
    return results


def predict(adapter: str, schema: dict[str, Any], queries: list[str], *, constrained: bool = True,
            max_new_tokens: int = 256, schema_format: str | None = None, device: str | None = None,
            batch_size: int = 8) -> list[dict[str, Any]]:
    """One result per query: {query, ast (None unless parsed), raw, parsed, schema_valid, truncated}.

    adapter: a checkpoint dir (LoRA adapter or full scratch model). schema: the DSL's JSON Schema.
    """
    dsl.check_json_schema(schema, "the schema")
    fmt = schema_format or trained_schema_format(adapter)
    generator = load_generator(adapter, device)
    return predict_with(generator, schema, queries, schema_format=fmt, constrained=constrained,
                        max_new_tokens=max_new_tokens, batch_size=batch_size)
