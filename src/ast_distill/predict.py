"""Using a trained student: requests in, one JSON AST per request out.

The prompt is built exactly as in training (``prompting.build_prompt``), with the schema rendered in the format
the checkpoint was trained with: the top-level ``schema_format`` of the run's ``run_config.json`` (in the
checkpoint dir, else its parent, the run dir), which SFT copies from its corpus's .meta.json and DPO from the
SFT checkpoint; "compact", with a note on stderr, when the run recorded none.
"""
from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from . import dsl, student
from .prompting import build_prompt
from .scoring import parse_output

if TYPE_CHECKING:  # torch and xgrammar load with the student, not when a script builds its parser
    from .generation import StudentGenerator

DEFAULT_SCHEMA_FORMAT = "compact"


def load_generator(path: str, device: str | None = None, *, dynamic_int8: bool = False) -> StudentGenerator:
    """A checkpoint (LoRA adapter or full model) loaded for decoding, an adapter merged into its base
    (student.load_for_inference), ready to generate (predict, evaluation, benchmark)."""
    from .generation import StudentGenerator

    model, tokenizer = student.load_for_inference(path, device=device, dynamic_int8=dynamic_int8)
    return StudentGenerator(model, tokenizer, stop_token_ids=student.stop_token_ids(tokenizer))


def trained_schema_format(adapter: str) -> str:
    """The schema_format the checkpoint's training corpus was rendered with (student.recorded_schema_format);
    compact, with a note on stderr, when its run recorded none."""
    found = student.recorded_schema_format(adapter)
    if found is None:
        print(f"note: {adapter} records no schema_format in its run_config.json (nor does its run dir); rendering "
              f"the schema as {DEFAULT_SCHEMA_FORMAT} (pass --schema-format to choose)", file=sys.stderr)
        return DEFAULT_SCHEMA_FORMAT
    return found


def predict_with(generator: StudentGenerator, schema: dict[str, Any], queries: Sequence[str], *,
                 schema_format: str, constrained: bool = True, max_new_tokens: int = 256,
                 batch_size: int = 8) -> list[dict[str, Any]]:
    """predict() with a student already loaded (for callers that answer many requests)."""
    texts = [student.prompt_text(generator.tokenizer, build_prompt(schema, q, schema_format)) for q in queries]
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
    generator = load_generator(adapter, device)  # first: a path that is no checkpoint fails here, in one line
    fmt = schema_format or trained_schema_format(adapter)
    return predict_with(generator, schema, queries, schema_format=fmt, constrained=constrained,
                        max_new_tokens=max_new_tokens, batch_size=batch_size)
