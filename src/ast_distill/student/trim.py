"""A pretrained student with a trimmed vocabulary: only the tokens a run can use keep their embedding rows.

Gemma 3 270M has 262,144 tokens and ties its LM head to its embedding: 168M of its 268M parameters. On a CPU
the head dominates: measured on a 2-core CPU without native bf16, 256 of the 380 ms of a decoding step at
batch 8 went to the head, and xgrammar's per-step mask walks the whole vocabulary. A JSON-AST student writes
few of those tokens, so the run keeps:
- every special, user-defined and byte piece (``<bos>``, ``<end_of_turn>``, ``\\n``, the 256 byte-fallback
  pieces), except the ``<unusedN>`` placeholders;
- the ``core_size`` most frequent ordinary pieces (a SentencePiece BPE vocabulary lists pieces by merge
  order, which is frequency order), so text the corpus never showed (an unseen schema) still tokenizes much
  as the full vocabulary does;
- every piece the run's texts (its train and val conversations, as the chat template renders them) encode to;
- and every piece those are merged from (all splits of a kept piece into two pieces of the vocabulary), so
  BPE takes the same merge path: the trimmed tokenizer encodes the run's texts to exactly the same pieces.

The trimmed base is an ordinary Hugging Face folder (config with the smaller ``vocab_size``, the embedding rows
of the kept tokens, a SentencePiece tokenizer of the kept pieces with Gemma's chat template) that plain
transformers loads. Its build checks both promises and refuses to cache anything else: the texts encode to the
same pieces, and the trimmed model's logits equal the full model's logits at the kept tokens.
It is cached like a packaged base (bases.ensure_cached), keyed by its source, core_size and the texts.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ..errors import UserError
from .bases import ensure_cached, save_sentencepiece_tokenizer

# Bump when the trimming below changes what it writes: trimmed bases made by another version are rebuilt.
TRIM_VERSION = 1
TRIMMED_DIR = "base-trimmed"  # <output_dir>/base-trimmed-<digest>, beside the run's checkpoints
SOURCE_MODEL = "tokenizer.model"  # a trimmable base ships its SentencePiece model
NORMAL_PIECE = 1  # SentencePiece piece types: 1 normal, 2 unknown, 3 control, 4 user-defined, 6 byte
_UNUSED = re.compile(r"<unused\d+>")


def is_trimmable(base_folder: str) -> bool:
    """Whether a base folder carries the SentencePiece model trimming rebuilds its tokenizer from."""
    return (Path(base_folder) / SOURCE_MODEL).is_file()


def load_pieces(base_folder: str) -> Any:
    """The base's SentencePiece ModelProto."""
    from sentencepiece import sentencepiece_model_pb2 as spm

    proto = spm.ModelProto()
    proto.ParseFromString((Path(base_folder) / SOURCE_MODEL).read_bytes())
    return proto


def merge_closure(pieces: Iterable[str], vocabulary: set[str] | dict[str, int]) -> set[str]:
    """``pieces`` and, recursively, both halves of every split of a kept piece into two vocabulary pieces:
    whatever path BPE merged a piece along, its steps are all kept."""
    kept = set(pieces)
    pending = list(kept)
    while pending:
        piece = pending.pop()
        for cut in range(1, len(piece)):
            left, right = piece[:cut], piece[cut:]
            if left in vocabulary and right in vocabulary:
                for half in (left, right):
                    if half not in kept:
                        kept.add(half)
                        pending.append(half)
    return kept


def kept_token_ids(proto: Any, used_ids: Iterable[int], core_size: int) -> list[int]:
    """Ids of the full vocabulary to keep, ascending (so <pad>, <eos>, <bos>, <unk> keep ids 0-3)."""
    pieces = [p.piece for p in proto.pieces]
    index = {piece: i for i, piece in enumerate(pieces)}
    always = {i for i, p in enumerate(proto.pieces) if p.type != NORMAL_PIECE and not _UNUSED.fullmatch(p.piece)}
    ordinary = [i for i, p in enumerate(proto.pieces) if p.type == NORMAL_PIECE]  # merge order: most frequent first
    wanted = {pieces[i] for i in set(used_ids) | set(ordinary[:max(0, core_size)])}
    closed = merge_closure(wanted, index)
    return sorted(always | {index[p] for p in closed})


def trimmed_proto(proto: Any, kept: Sequence[int]) -> bytes:
    """The SentencePiece model of the kept pieces, in kept order (their new ids), scores and types unchanged."""
    from sentencepiece import sentencepiece_model_pb2 as spm

    out = spm.ModelProto()
    out.CopyFrom(proto)
    del out.pieces[:]
    for i in kept:
        out.pieces.append(proto.pieces[i])
    out.trainer_spec.vocab_size = len(kept)
    return out.SerializeToString()


def texts_fingerprint(texts: Sequence[str]) -> str:
    digest = hashlib.sha256()
    for text in texts:
        digest.update(text.encode("utf-8"))
        digest.update(b"\0")
    return digest.hexdigest()


def source_record(base_folder: str) -> dict[str, Any]:
    """What identifies the source base: its made_by.json when it is a packaged base, else its config's size
    and tokenizer.model's sha256."""
    folder = Path(base_folder)
    made_by = folder / "made_by.json"
    if made_by.is_file():
        return {k: v for k, v in json.loads(made_by.read_text(encoding="utf-8")).items() if k != "seconds"}
    return {"tokenizer_model_sha256": hashlib.sha256((folder / SOURCE_MODEL).read_bytes()).hexdigest(),
            "model_bytes": sum(p.stat().st_size for p in folder.glob("*.safetensors"))}


def ensure_trimmed_base(base_folder: str, parent: Path, texts: Sequence[str], core_size: int,
                        log: Any = print) -> Path:
    """The trimmed copy of ``base_folder`` for ``texts``: ``<parent>/base-trimmed-<digest>``, built when missing.

    The digest names what made it (source, core size, texts), so another corpus gets another folder and never
    replaces the base that an earlier checkpoint's adapter names."""
    expected = {"trimmed_from": str(Path(base_folder).resolve()), "source": source_record(base_folder),
                "core_size": int(core_size), "texts": len(texts), "texts_sha256": texts_fingerprint(texts),
                "trim_version": TRIM_VERSION}
    digest = hashlib.sha256(json.dumps(expected, sort_keys=True).encode("utf-8")).hexdigest()[:12]
    folder = Path(parent).absolute() / f"{TRIMMED_DIR}-{digest}"
    return ensure_cached(folder, expected, lambda work: build_trimmed_base(base_folder, work, texts, core_size), log=log)


def build_trimmed_base(base_folder: str, work: Path, texts: Sequence[str], core_size: int) -> dict[str, Any]:
    """Write the trimmed base into ``work``; returns the facts made_by.json records (sizes, checks)."""
    from transformers import AutoTokenizer

    full_tokenizer = AutoTokenizer.from_pretrained(base_folder)
    full_ids = full_tokenizer(list(texts), add_special_tokens=False)["input_ids"]
    proto = load_pieces(base_folder)
    if len(full_tokenizer) != len(proto.pieces):  # tokens added beyond the SentencePiece model would be lost
        raise UserError(f"{base_folder}: the tokenizer has {len(full_tokenizer)} tokens, its tokenizer.model "
                        f"{len(proto.pieces)}; trimming needs one vocabulary: set training.trim_vocabulary to 0")
    kept = kept_token_ids(proto, (i for ids in full_ids for i in ids), core_size)
    tokenizer = save_sentencepiece_tokenizer(trimmed_proto(proto, kept), work, full_tokenizer.chat_template)
    check_same_pieces(full_ids, tokenizer(list(texts), add_special_tokens=False)["input_ids"], kept)
    new_id = {old: new for new, old in enumerate(kept)}
    write_trimmed_model(base_folder, work, kept, new_id)
    return {"vocab_size": {"full": len(proto.pieces), "kept": len(kept)}, "checked_texts": len(texts)}


def check_same_pieces(full_ids: list[list[int]], trimmed_ids: list[list[int]], kept: Sequence[int]) -> None:
    """The trimmed tokenizer must encode every text to the same pieces as the full one (a bug otherwise)."""
    for row, (full, trimmed) in enumerate(zip(full_ids, trimmed_ids, strict=True)):
        if [kept[i] for i in trimmed] != full:
            raise RuntimeError(f"text {row}: the trimmed tokenizer encodes it to other pieces than the full one")


def write_trimmed_model(base_folder: str, work: Path, kept: Sequence[int], new_id: dict[int, int]) -> None:
    """The base model with only the kept embedding rows (the tied LM head with them); its logits at the kept
    tokens are checked against the full model's on a probe."""
    import torch
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(base_folder, dtype=torch.float32)
    if not model.config.get_text_config().tie_word_embeddings:
        raise UserError(f"{base_folder}: its LM head is not tied to its embedding, which trimming needs; set "
                        f"training.trim_vocabulary to 0")
    index = torch.tensor(list(kept), dtype=torch.long)
    probe = torch.tensor([[kept[min(i, len(kept) - 1)] for i in (2, 300, 500, 1000, 4000, 9000)]])
    with torch.inference_mode():
        expected = model(probe).logits[..., index]
    embedding = model.get_input_embeddings()
    embedding.weight = torch.nn.Parameter(embedding.weight.detach()[index].clone())
    embedding.num_embeddings = len(kept)
    model.config.get_text_config().vocab_size = len(kept)
    model.config.vocab_size = len(kept)
    model.tie_weights()
    generation = model.generation_config
    eos = generation.eos_token_id if isinstance(generation.eos_token_id, list) else [generation.eos_token_id]
    generation.eos_token_id = [new_id[i] for i in eos if i is not None and i in new_id]
    for name in ("pad_token_id", "bos_token_id"):
        if getattr(generation, name, None) is not None:
            setattr(generation, name, new_id[getattr(generation, name)])
    model.save_pretrained(str(work))
    reloaded = AutoModelForCausalLM.from_pretrained(str(work), dtype=torch.float32)
    with torch.inference_mode():
        got = reloaded(torch.tensor([[new_id[i] for i in probe[0].tolist()]])).logits
    if got.shape != expected.shape or not torch.allclose(got, expected, atol=1e-4, rtol=1e-4):
        raise RuntimeError("the trimmed model's logits differ from the full model's at the kept tokens")
