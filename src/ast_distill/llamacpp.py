"""Decoding a GGUF student with llama.cpp (llama-cpp-python, the ``export`` extra): the ``llamacpp`` backend of
predict, evaluation and the benchmark, and the decoder that export verification measures.

It answers like ``generation.StudentGenerator`` (``generate_all`` yields (index, Generation) pairs), so
predict and verification treat both backends alike. What differs:
- one row at a time: llama-cpp-python's high-level API decodes one sequence; rows that share a prefix (the
  system text and the schema) reuse its KV cache, since ``Llama.generate`` keeps the longest common prefix;
- constrained decoding uses llama.cpp's own JSON-Schema grammar (``LlamaGrammar.from_json_schema``, what
  Ollama's ``format`` does too), compiled from ``generation.grammar_schema`` so properties come in the order
  the student was trained to write them;
- the prompt text is rendered by the export's Hugging Face tokenizer (``merged/``, the training chat
  template) and tokenized by llama.cpp, special tokens parsed, no BOS added (the template wrote it).
"""
from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tqdm.auto import tqdm

from .errors import UserError

if TYPE_CHECKING:  # generation pulls in torch and xgrammar: loaded with a model, not with a script's --help
    from .generation import Generation

DISTRIBUTION = "llama-cpp-python"
INSTALL_HINT = "install llama.cpp's tools with `uv sync --extra gemma --extra export` (./runExport.sh does it)"

def llama_cpp_version() -> str:
    """The installed llama-cpp-python version; UserError when the export extra is missing."""
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:
        raise UserError(f"{DISTRIBUTION} is not installed: {INSTALL_HINT}") from None


def llama_cpp() -> Any:
    """The llama_cpp module (its shared library loads here)."""
    llama_cpp_version()
    try:
        import llama_cpp as module
    except (ImportError, OSError) as exc:
        raise UserError(f"llama_cpp does not load ({exc}); reinstall it: {INSTALL_HINT}") from None
    return module


# An export folder's transformers model beside its GGUFs (export.bundle writes it): its tokenizer renders prompts.
MERGED_DIR = "merged"
DEFAULT_CTX = 2048  # tokens: the longest d_05 prompt of the offline dataset is ~700 tokens, plus 256 new ones


def llama_grammar_schema(schema: dict[str, Any]) -> Any:
    """generation.grammar_schema with every ``pattern``'s ``\\d`` written ``[0-9]``: llama-cpp-python's JSON
    Schema converter copies ``\\d`` into the GBNF, whose parser rejects the escape (51 of the 88 offline schemas,
    whose date fields carry ``^\\d{4}-\\d{2}-\\d{2}$``)."""
    from .generation import grammar_schema

    def rewrite(node: Any) -> Any:
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        if not isinstance(node, dict):
            return node
        return {key: (value.replace("\\d", "[0-9]") if key == "pattern" and isinstance(value, str) else rewrite(value))
                for key, value in node.items()}
    return rewrite(grammar_schema(schema))


def compile_grammar(llama_cpp: Any, model: Any, schema: dict[str, Any]) -> Any:
    """llama.cpp's grammar for a schema, checked by building its sampler once: a GBNF that llama.cpp cannot
    parse gives a NULL sampler, on which decoding would crash the process."""
    text = llama_cpp.llama_grammar.json_schema_to_gbnf(json.dumps(llama_grammar_schema(schema)))
    sampler = llama_cpp.llama_sampler_init_grammar(model.vocab, text.encode("utf-8"), b"root")
    if not sampler:
        raise UserError(f"llama.cpp cannot parse the grammar made from the schema {schema.get('title', '')!r}; "
                        f"decode it with the transformers backend (xgrammar)")
    llama_cpp.llama_sampler_free(sampler)
    return llama_cpp.LlamaGrammar.from_string(text, verbose=False)


class LlamaCppGenerator:
    """A GGUF model loaded by llama.cpp, decoding greedily one row at a time."""

    def __init__(self, gguf_path: str | Path, tokenizer: Any, *, n_ctx: int = DEFAULT_CTX,
                 threads: int | None = None) -> None:
        path = Path(gguf_path)
        if not path.is_file():
            raise UserError(f"{path} does not exist; pass a .gguf file written by scripts/export_student.py")
        self.llama_cpp = llama_cpp()
        self.threads = threads or os.cpu_count() or 1
        try:
            self.llm = self.llama_cpp.Llama(model_path=str(path), n_ctx=n_ctx, n_threads=self.threads,
                                            n_threads_batch=self.threads, n_batch=512, seed=0, verbose=False)
        except ValueError as exc:  # llama-cpp-python's word for a file llama.cpp cannot load
            raise UserError(f"llama.cpp cannot load {path} ({exc}); is it a GGUF file?") from None
        self.tokenizer = tokenizer
        self.n_ctx = n_ctx
        self.stop_token_ids = sorted({int(self.llm.token_eos()), *self._end_of_turn()})
        self._grammars: dict[str, Any] = {}

    def _end_of_turn(self) -> list[int]:
        ids = self.llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)
        return ids if len(ids) == 1 else []

    def encode(self, prompt_text: str) -> list[int]:
        return list(self.llm.tokenize(prompt_text.encode("utf-8"), add_bos=False, special=True))

    def grammar(self, schema: dict[str, Any]) -> Any:
        key = json.dumps(schema, sort_keys=True)
        if key not in self._grammars:
            self._grammars[key] = compile_grammar(self.llama_cpp, self.llm._model, schema)
        return self._grammars[key]

    def prepare_grammar(self, schema: dict[str, Any]) -> None:
        """Compile a schema's grammar now, so that timed decoding does not pay for it."""
        self.grammar(schema)

    def generate_one(self, ids: Sequence[int], schema: dict[str, Any] | None, *,
                     max_new_tokens: int) -> tuple[Generation, float | None]:
        """(Generation, seconds to the first new token) for one encoded prompt, greedy."""
        from .generation import Generation

        if len(ids) + max_new_tokens > self.n_ctx:
            raise UserError(f"a prompt of {len(ids)} tokens plus {max_new_tokens} new ones exceeds the context of "
                            f"{self.n_ctx} tokens; raise the context (--n-ctx)")
        grammar = None if schema is None else self.grammar(schema)  # text only: generate() builds its sampler
        stops = set(self.stop_token_ids)
        kept: list[int] = []
        truncated, first_s = True, None
        started = time.perf_counter()
        for token in self.llm.generate(list(ids), top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0,
                                       reset=True, grammar=grammar):
            if first_s is None:
                first_s = time.perf_counter() - started
            if token in stops:
                truncated = False
                break
            kept.append(int(token))
            if len(kept) >= max_new_tokens:
                break
        elapsed_ms = (time.perf_counter() - started) * 1000.0
        text = self.llm.detokenize(kept).decode("utf-8", errors="replace")
        return Generation(text=text, token_ids=kept, truncated=truncated, latency_ms=elapsed_ms), first_s

    def generate_all(self, prompt_texts: Sequence[str], schemas: Sequence[dict[str, Any] | None], *,
                     batch_size: int = 1, max_new_tokens: int, temperature: float = 0.0, top_p: float = 1.0,
                     desc: str = "generating", progress: bool = True) -> Iterator[list[tuple[int, Generation]]]:
        """Yields [(index, Generation)] per row (batch_size is accepted for StudentGenerator's callers; llama.cpp
        decodes one row at a time). Greedy only."""
        if temperature > 0:
            raise UserError("the llama.cpp backend decodes greedily (temperature 0); use the transformers backend "
                            "to sample")
        for index in tqdm(range(len(prompt_texts)), desc=desc, unit="row", disable=not progress):
            generation, _ = self.generate_one(self.encode(prompt_texts[index]), schemas[index],
                                              max_new_tokens=max_new_tokens)
            yield [(index, generation)]
