"""The export stage: a checkpoint becomes a self-contained folder a user runs where they work.

``<out_dir>/`` holds ``merged/`` (the LoRA merged into its base with PEFT's merge_and_unload, a plain
transformers folder with the SentencePiece tokenizer llama.cpp's converter reads), ``student-<type>.gguf`` per
requested type (F16 by llama.cpp's converter, the others by its quantizer from the F16 file),
``modelfiles/<schema id>.Modelfile`` with ``schemas/<schema id>.json`` beside them, ``verification.json``
(export.verify), ``README.md`` and ``made_by.json`` (checkpoint fingerprint, settings, tool versions, git
commit, seconds per step, bytes and sha256 of every file).

The folder is built beside its final place and renamed into it when complete (``bases.ensure_cached``), so an
interrupted export (a full disk included) leaves the previous export, or none, never half of one. A rerun
with the same checkpoint (same fingerprint), settings and tool versions keeps the folder as it is; anything
else rebuilds it whole, so no file in it comes from an older model or setting.
"""
from __future__ import annotations

import hashlib
import shutil
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import student
from ..errors import UserError
from ..fingerprint import checkpoint_fingerprint
from ..jsonl import read_json, read_jsonl, write_json_atomic, write_text_atomic
from ..llamacpp import MERGED_DIR as MERGED
from ..prompting import build_prompt
from ..provenance import git_commit, library_versions
from ..runs import selected_checkpoint
from ..settings import ExportSettings
from ..student.bases import MADE_BY, ensure_cached
from . import llamacpp_tools, modelfile
from .verify import verification_table

SENTENCEPIECE = "tokenizer.model"
MERGED_FROM = "merged_from.json"  # alignment.dpo's record of the SFT adapter its merged base came from
EXPORT_VERSION = 1  # bump when what an export writes changes: older exports are rebuilt
TOOL_PACKAGES = ("ast-distill", "torch", "transformers", "peft", "llama-cpp-python", "gguf")
SHA_CHUNK = 1 << 20


@dataclass
class ExportRun(ExportSettings):
    """One export: the export section with the checkpoint and out_dir resolved."""
    schema_format: str = "compact"  # how the checkpoint's training prompts rendered the schema
    types: list[str] = field(default_factory=list)  # quant_types, checked


def gguf_name(quant_type: str) -> str:
    return f"student-{quant_type}.gguf"


def default_checkpoint(config: Mapping[str, Any]) -> str:
    """The student alignment chose (alignment/choice.py's aligned.json) when it chose one; else the DPO student's
    selected checkpoint (checkpoint-best, else checkpoint-final) when DPO finished, else the SFT student's."""
    from ..alignment.choice import chosen

    record = chosen(config)
    if record is not None:
        return str(record["checkpoint"])
    for section in ("alignment", "training"):
        chosen = selected_checkpoint(config[section]["output_dir"])
        if chosen is not None:
            return str(chosen)
    raise UserError(f"no complete checkpoint-best or checkpoint-final under {config['alignment']['output_dir']} "
                    f"nor {config['training']['output_dir']}; train first or pass --checkpoint DIR")


def sentencepiece_model_of(checkpoint: str) -> Path | None:
    """The tokenizer.model of a checkpoint's lineage: its own, else its adapter base's, else (a DPO base merged
    from an SFT adapter) that adapter's; None when none has one (the scratch student's BPE tokenizer)."""
    folder, seen = Path(checkpoint), set()
    while folder.is_dir() and folder.resolve() not in seen:
        seen.add(folder.resolve())
        if (folder / SENTENCEPIECE).is_file():
            return folder / SENTENCEPIECE
        if (folder / "adapter_config.json").is_file():
            folder = Path(student.adapter_base(str(folder)))
        elif (folder / MERGED_FROM).is_file():
            folder = Path(str(read_json(folder / MERGED_FROM).get("adapter") or ""))
        else:
            return None
    return None


def no_sentencepiece(checkpoint: str) -> str:
    return (f"{checkpoint} has no SentencePiece tokenizer.model in its lineage, and llama.cpp's Gemma 3 converter "
            f"cannot read a BPE tokenizer.json (the scratch student's): export a Gemma student, or use this "
            f"checkpoint with transformers (predict.py --adapter)")


def check_checkpoint(path: str) -> None:
    """A checkpoint folder (adapter or full model) whose base resolves and whose lineage holds the SentencePiece
    model llama.cpp's converter reads; UserError in one line otherwise."""
    if not Path(path).is_dir():
        raise UserError(f"{path} is not a folder; pass a checkpoint dir such as <run>/checkpoint-final")
    kind = student.student_kind(path)
    if kind == "hub":
        raise UserError(f"{path} is a model name, not a checkpoint dir; export a trained checkpoint")
    if kind == "adapter":
        base = student.adapter_base(path)
        if not Path(base).is_dir() and not base.startswith("pypi:"):
            raise UserError(f"{path}: its base model {base} is not a folder here; export where the run was trained, "
                            f"or fix base_model_name_or_path in its adapter_config.json")
    if sentencepiece_model_of(path) is None:
        raise UserError(no_sentencepiece(path))


def write_merged(checkpoint: str, out: Path) -> dict[str, Any]:
    """merged/: the adapter folded into its base (a full model is saved as is), with its tokenizer files and
    the lineage's SentencePiece model, which llama.cpp's converter needs for Gemma 3."""
    spm = sentencepiece_model_of(checkpoint)
    if spm is None:  # check_checkpoint said so already; here for callers that skip it
        raise UserError(no_sentencepiece(checkpoint))
    model, tokenizer = student.load_for_inference(checkpoint, device="cpu")
    model.save_pretrained(out, safe_serialization=True)
    tokenizer.save_pretrained(out)
    shutil.copyfile(spm, out / SENTENCEPIECE)
    return {"sentencepiece_from": str(spm)}


def longest_prompt_tokens(tokenizer: Any, schemas: Mapping[str, dict[str, Any]], schema_format: str) -> int:
    """Tokens of the longest training-shaped prompt over the Modelfiles' schemas, with a long request."""
    request = "x " * 64
    return max(len(tokenizer(student.prompt_text(tokenizer, build_prompt(s, request, schema_format)),
                             add_special_tokens=False)["input_ids"]) for s in schemas.values())


def write_modelfiles(work: Path, run: ExportRun, schemas: Mapping[str, dict[str, Any]]) -> int:
    """modelfiles/<id>.Modelfile and schemas/<id>.json per schema; returns num_ctx."""
    tokenizer = student.load_tokenizer(str(work / MERGED))
    num_ctx = modelfile.context_size(longest_prompt_tokens(tokenizer, schemas, run.schema_format),
                                     run.max_new_tokens)
    header = f"Ollama Modelfile of the student exported from {run.checkpoint} (ast-distill export_student.py)."
    for schema_id, schema in schemas.items():
        template = modelfile.template_for(tokenizer, schema, run.schema_format)
        text = modelfile.modelfile_text(gguf_path=f"../{gguf_name(run.modelfile_gguf)}", template=template,
                                        num_ctx=num_ctx, max_new_tokens=run.max_new_tokens,
                                        header=f"{header}\nSchema: {schema_id}")
        write_text_atomic(work / "modelfiles" / f"{schema_id}.Modelfile", text)
        write_text_atomic(work / "schemas" / f"{schema_id}.json", modelfile.schema_record_json(schema_id, schema))
    return num_ctx


def file_digests(folder: Path) -> dict[str, dict[str, Any]]:
    """{relative path: {bytes, sha256}} of every file under folder."""
    out: dict[str, dict[str, Any]] = {}
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        digest = hashlib.sha256()
        with path.open("rb") as handle:
            while chunk := handle.read(SHA_CHUNK):
                digest.update(chunk)
        out[str(path.relative_to(folder))] = {"bytes": path.stat().st_size, "sha256": digest.hexdigest()}
    return out


def expected_record(run: ExportRun) -> dict[str, Any]:
    """What made an export, as made_by.json records it; an export that records anything else is rebuilt."""
    settings = {k: v for k, v in vars(run).items() if k not in ("out_dir",)}
    return {"export_version": EXPORT_VERSION, "checkpoint": run.checkpoint,
            "checkpoint_fingerprint": checkpoint_fingerprint(run.checkpoint), "settings": settings,
            "tools": library_versions(TOOL_PACKAGES)}


def build_export(work: Path, run: ExportRun, schemas: Mapping[str, dict[str, Any]],
                 verify: Callable[[Path, dict[str, Path]], dict[str, Any] | None], log: Callable[[str], Any]) -> dict:
    """Fill ``work`` with everything but made_by.json; returns the facts made_by.json adds."""
    seconds: dict[str, float] = {}
    started = time.perf_counter()
    log(f"export: merging {run.checkpoint} into {MERGED}/")
    facts = write_merged(run.checkpoint, work / MERGED)
    seconds["merge"] = round(time.perf_counter() - started, 1)
    f16 = work / gguf_name("f16")
    log("export: converting to F16 GGUF with llama.cpp's converter")
    seconds["convert_f16"] = round(llamacpp_tools.convert_to_gguf(work / MERGED, f16, "f16", log=log), 1)
    ggufs: dict[str, Path] = {}
    for quant_type in run.types:
        target = work / gguf_name(quant_type)
        if quant_type == "f16":
            ggufs[quant_type] = target  # written above: every other type is quantized from it
            continue
        if quant_type in llamacpp_tools.CONVERTER_TYPES:
            log(f"export: converting to {quant_type.upper()} GGUF")
            seconds[f"convert_{quant_type}"] = round(llamacpp_tools.convert_to_gguf(work / MERGED, target, quant_type,
                                                                                    log=log), 1)
        else:
            log(f"export: quantizing to {quant_type.upper()} with llama.cpp's quantizer")
            seconds[f"quantize_{quant_type}"] = round(llamacpp_tools.quantize(f16, target, quant_type), 1)
        ggufs[quant_type] = target
    num_ctx = write_modelfiles(work, run, schemas)
    step = time.perf_counter()
    report = verify(work, ggufs)
    seconds["verify"] = round(time.perf_counter() - step, 1)
    if "f16" not in run.types:
        f16.unlink()  # only the quantizer's source
    if report is not None:
        write_json_atomic(work / "verification.json", report)
    write_text_atomic(work / "README.md", modelfile.export_readme(
        checkpoint=run.checkpoint, gguf_bytes={p.name: p.stat().st_size for p in sorted(work.glob("*.gguf"))},
        schema_ids=sorted(schemas), modelfile_gguf=gguf_name(run.modelfile_gguf), num_ctx=num_ctx,
        table=verification_table(report) if report else None))
    return {**facts, "num_ctx": num_ctx, "seconds": seconds, "git": git_commit(),
            "sha256": file_digests(work), "verification": report}


def run_export(run: ExportRun, schemas: Mapping[str, dict[str, Any]],
               verify: Callable[[Path, dict[str, Path]], dict[str, Any] | None],
               log: Callable[[str], Any] = print) -> Path:
    """The export folder, built (or kept, when made_by.json says the same checkpoint and settings made it)."""
    out = Path(run.out_dir or "")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create {out.parent} ({exc.strerror}); pass a writable --out-dir") from None
    try:
        return ensure_cached(out.absolute(), expected_record(run), lambda work: build_export(work, run, schemas,
                                                                                             verify, log),
                             log=log, required=("README.md",))
    except OSError as exc:
        raise UserError(f"writing the export to {out} failed ({exc.strerror or exc}); nothing under its final name "
                        f"was replaced: free some space and run again") from None


def load_made_by(out_dir: str | Path) -> dict[str, Any]:
    return read_json(Path(out_dir) / MADE_BY)


def rows_for_check(path: str, schemas: Mapping[str, dict[str, Any]], n: int) -> list[dict[str, Any]]:
    """A seeded sample of n gold-valid rows of the verification dataset."""
    from ..evaluation import select_rows

    return select_rows(read_jsonl(path), schemas, max_samples=n, sample_seed=0, where=path)
