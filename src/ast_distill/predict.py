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
from .calibration import Calibration, confidence_of, load_calibration
from .errors import UserError
from .jsonl import read_json
from .prompting import build_prompt
from .records import CLARIFICATION, QUERY, is_clarification, kind_of
from .runs import resolve_checkpoint
from .scoring import parse_output

if TYPE_CHECKING:  # torch and xgrammar load with the student, not when a script builds its parser
    from .generation import StudentGenerator

DEFAULT_SCHEMA_FORMAT = "compact"
BACKENDS = ("transformers", "llamacpp")  # transformers + xgrammar, or a GGUF with llama.cpp + its grammar


def load_generator(path: str, device: str | None = None, *, dynamic_int8: bool = False) -> StudentGenerator:
    """A checkpoint (LoRA adapter or full model) loaded for decoding, an adapter merged into its base
    (student.load_for_inference), ready to generate (predict, evaluation, benchmark)."""
    from .generation import StudentGenerator

    model, tokenizer = student.load_for_inference(path, device=device, dynamic_int8=dynamic_int8)
    return StudentGenerator(model, tokenizer, stop_token_ids=student.stop_token_ids(tokenizer))


def load_gguf_generator(gguf: str, *, n_ctx: int | None = None) -> Any:
    """A GGUF written by scripts/export_student.py, loaded by llama.cpp (llamacpp.LlamaCppGenerator), with
    the export folder's tokenizer (``merged/`` beside it) rendering the training prompt."""
    from pathlib import Path

    from .llamacpp import DEFAULT_CTX, MERGED_DIR, LlamaCppGenerator

    folder = Path(gguf).parent
    if not (folder / MERGED_DIR / "tokenizer_config.json").is_file():
        raise UserError(f"{gguf}: no merged/ folder with a tokenizer beside it; pass a GGUF from an export folder "
                        f"(scripts/export_student.py), which renders the training prompt with it")
    return LlamaCppGenerator(gguf, student.load_tokenizer(str(folder / MERGED_DIR)), n_ctx=n_ctx or DEFAULT_CTX)


def trained_schema_format(adapter: str) -> str:
    """The schema_format the checkpoint's training corpus was rendered with (student.recorded_schema_format; for
    a GGUF, what its export recorded); compact, with a note on stderr, when its run recorded none."""
    found = exported_schema_format(adapter) if adapter.endswith(".gguf") else student.recorded_schema_format(adapter)
    if found is None:
        print(f"note: {adapter} records no schema_format in its run_config.json (nor does its run dir); rendering "
              f"the schema as {DEFAULT_SCHEMA_FORMAT} (pass --schema-format to choose)", file=sys.stderr)
        return DEFAULT_SCHEMA_FORMAT
    return found


def exported_schema_format(gguf: str) -> str | None:
    """The schema_format an export folder's made_by.json records for its checkpoint (None when it records none)."""
    from pathlib import Path

    made_by = Path(gguf).parent / "made_by.json"
    if not made_by.is_file():
        return None
    found = read_json(made_by).get("settings", {}).get("schema_format")
    return str(found) if found else None


LOW_CONFIDENCE_QUESTION = "Is this what you mean?"


def ask_back(ast: Any, schema: dict[str, Any]) -> dict[str, Any] | None:
    """What to answer instead of an answer below --min-confidence: a clarification that offers the answer as its one
    option (none when the answer is not a query) when the schema has the Clarification answer, else None (no
    answer). A clarification stays as it is."""
    if is_clarification(ast):
        return ast
    if not dsl.validator_for(schema).is_valid(dsl.SAMPLE_CLARIFICATION):
        return None
    asked = {"type": CLARIFICATION, "question": LOW_CONFIDENCE_QUESTION, "options": []}
    if isinstance(ast, dict) and kind_of(ast) == QUERY:
        candidate = {**asked, "options": [{"label": "this query", "ast": ast}]}
        if dsl.validator_for(schema).is_valid(candidate):
            return candidate
    return asked


def predict_with(generator: StudentGenerator, schema: dict[str, Any], queries: Sequence[str], *,
                 schema_format: str, constrained: bool = True, max_new_tokens: int = 256,
                 batch_size: int = 8, calibration: Calibration | None = None,
                 contexts: Sequence[dict[str, Any] | None] | None = None) -> list[dict[str, Any]]:
    """predict() with a student already loaded (for callers that answer many requests)."""
    contexts = list(contexts) if contexts is not None else [None] * len(queries)
    texts = [student.prompt_text(generator.tokenizer, build_prompt(schema, q, schema_format, c))
             for q, c in zip(queries, contexts)]
    results: list[dict[str, Any]] = [{} for _ in queries]
    answers = dsl.with_refusal(schema)  # a refusal is always a valid answer, whatever the schema's shape
    batches = generator.generate_all(texts, [answers if constrained else None] * len(texts), batch_size=batch_size,
                                     max_new_tokens=max_new_tokens, progress=len(texts) > batch_size)
    for batch in batches:
        for i, gen in batch:
            parsed, ast = parse_output(gen.text)
            results[i] = {"query": queries[i], "context": contexts[i], "ast": ast, "raw": gen.text, "parsed": parsed,
                          "schema_valid": parsed and dsl.validation_error(answers, ast) is None,
                          "truncated": gen.truncated,
                          "confidence": confidence_of(gen.answer_logprob, calibration),
                          "calibrated": calibration is not None}
    return results


def predict(adapter: str, schema: dict[str, Any], queries: list[str], *, constrained: bool = True,
            max_new_tokens: int = 256, schema_format: str | None = None, device: str | None = None,
            batch_size: int = 8, backend: str = "transformers",
            contexts: Sequence[dict[str, Any] | None] | None = None) -> list[dict[str, Any]]:
    """One result per query: {query, context, ast (None unless parsed), raw, parsed, schema_valid, truncated,
    confidence, calibrated}: contexts, one per query (None for none), go into the prompt (prompting.render_request);
    confidence is the student's probability of its answer, calibrated when the checkpoint has a
    calibration.json (calibration.py), None with llama.cpp (which reports no token probabilities here).

    adapter: a checkpoint dir (LoRA adapter or full scratch model) or a run dir (its selected checkpoint:
    checkpoint-best, else checkpoint-final), or with backend "llamacpp" a GGUF file of an export folder.
    schema: the DSL's JSON Schema; a refusal is a valid answer too (dsl.with_refusal), whatever its shape.
    """
    dsl.check_json_schema(schema, "the schema")
    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    # First: a path that is no checkpoint (or no GGUF) fails here, in one line.
    if backend != "llamacpp":
        adapter = resolve_checkpoint(adapter)
    generator = load_gguf_generator(adapter) if backend == "llamacpp" else load_generator(adapter, device)
    fmt = schema_format or trained_schema_format(adapter)
    calibration = None if backend == "llamacpp" else load_calibration(adapter)
    return predict_with(generator, schema, queries, schema_format=fmt, constrained=constrained,
                        max_new_tokens=max_new_tokens, batch_size=batch_size, calibration=calibration,
                        contexts=contexts)
