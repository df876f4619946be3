"""Training on from a trained checkpoint: DPO after SFT, and the boost SFT run after SFT.

A full model (the scratch student) is simply loaded and trained on. A LoRA adapter is merged into its base once
(``<output_dir>/sft-merged``) and a new adapter is trained on top; the new adapter names that base relative to
itself ("../sft-merged"), so a run dir moved or copied elsewhere still loads with ``student.load_student``.
"""
from __future__ import annotations

import json
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..jsonl import read_json, write_json_atomic
from ..runs import point_adapter_at
from .. import student as loading  # lazy: torch is imported on first use
from .models import SCRATCH, StudentSetup, build_unsloth_lora_student, lora_config

MERGED_DIR = "sft-merged"  # the start's adapter merged into its base: the new adapter's base (and DPO's reference)
# The base the new adapters name, relative to themselves: checkpoint-N and checkpoint-final sit beside
# sft-merged in output_dir, so the run dir loads wherever it is moved (student.adapter_base resolves it).
MERGED_BASE_REF = f"../{MERGED_DIR}"
MERGED_FROM = "merged_from.json"


def same_model_ref(a: str, b: str) -> bool:
    return a == b or (Path(a).is_dir() and Path(b).is_dir() and Path(a).resolve() == Path(b).resolve())


def merge_adapter(adapter: str, base_model: str | None) -> tuple[Any, Any, str]:
    """(merged model, tokenizer, base used): the adapter merged into its base, fp32, trainable.

    base_model overrides the base the adapter records (e.g. a local copy of a hub model); None or "scratch"
    keeps the recorded one.
    """
    recorded = loading.adapter_base(adapter)
    if not base_model or base_model == SCRATCH or same_model_ref(base_model, recorded):
        model, tokenizer = loading.merge_for_training(adapter)
        return model, tokenizer, recorded
    from peft import PeftModel

    base, _ = loading.load_student(base_model, for_training=True)
    check_same_vocabulary(recorded, base_model, base)
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    model.train()
    return model, loading.load_tokenizer(adapter), base_model


def check_same_vocabulary(recorded: str, base_model: str, base: Any) -> None:
    """An override base must have the vocabulary the adapter was trained with (a trimmed base's is smaller: the
    adapter would load onto the full base and read every token id wrongly)."""
    config = Path(recorded) / "config.json"
    if not config.is_file():
        return  # a hub id: its config is not at hand, nothing to compare
    recorded_vocab = json.loads(config.read_text(encoding="utf-8")).get("vocab_size")
    rows = int(base.get_input_embeddings().weight.shape[0])
    if recorded_vocab is not None and int(recorded_vocab) != rows:
        raise UserError(f"alignment.base_model {base_model} has {rows} tokens but the SFT adapter was trained on "
                        f"{recorded} ({recorded_vocab} tokens); set alignment.base_model to null to use the base the "
                        f"adapter records")


def ensure_merged_base(adapter: str, base_model: str | None, output_dir: Path, log: Any = print) -> Path:
    """<output_dir>/sft-merged: the merged model + tokenizer, written once (atomically) per adapter and weights.

    The new adapter names this dir as its base (MERGED_BASE_REF), so checkpoint-N and checkpoint-final load as
    merged model + new adapter with student.load_student, wherever the run dir is. Under a launcher of several
    processes the main one merges, the others then find it merged.
    """
    from ..distributed import main_process_first

    with main_process_first():
        return _ensure_merged_base(adapter, base_model, output_dir, log)


def _ensure_merged_base(adapter: str, base_model: str | None, output_dir: Path, log: Any) -> Path:
    from ..fingerprint import checkpoint_fingerprint

    merged = output_dir / MERGED_DIR
    # the adapter's weights, not only its path: an SFT retrained at the same path is merged again
    source = {"adapter": str(Path(adapter).resolve()), "base_model": base_model,
              "fingerprint": checkpoint_fingerprint(adapter)}
    marker = merged / MERGED_FROM
    if marker.is_file() and read_json(marker) == source:
        return merged
    model, tokenizer, base_used = merge_adapter(adapter, base_model)
    partial = output_dir / (MERGED_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    write_json_atomic(partial / MERGED_FROM, source)
    shutil.rmtree(merged, ignore_errors=True)
    partial.rename(merged)
    log(f"merged the adapter {adapter} into {base_used}: {merged}")
    return merged


def point_at_merged_base(checkpoint: str | Path) -> None:
    """Make a saved adapter name its base as MERGED_BASE_REF (relative to itself); no-op for a full model."""
    point_adapter_at(Path(checkpoint), MERGED_BASE_REF)


def merged_base_callback() -> Any:
    """Points each checkpoint-N the trainer saves at the merged base (checkpoint-final: training's final save)."""
    from transformers import TrainerCallback

    class PointAtMergedBase(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            if state.is_world_process_zero:  # the process that saved it
                point_at_merged_base(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    return PointAtMergedBase()


def check_start(start: str, flag: str) -> str:
    """The kind of a checkpoint to train on ("model" or "adapter"); UserError for anything else."""
    kind = loading.student_kind(start)
    if kind == "hub":
        raise UserError(f"{flag} {start} is not a checkpoint dir; training goes on from a trained checkpoint, e.g. "
                        f"<training.output_dir>/checkpoint-best")
    return kind


def continue_from(cfg: Mapping[str, Any], start: str, output_dir: Path, *, backend: str, flag: str,
                  base_model: str | None = None, log: Any = print) -> StudentSetup:
    """The student to train on from ``start``: a full model loaded trainable ("scratch" kind, trained in full),
    or a new LoRA adapter (cfg's lora_r/alpha/dropout) on the start's adapter merged into its base (its base
    named MERGED_BASE_REF; the hf backend applies the adapter here, unsloth through its own call). base_model
    overrides the base the start's adapter records (see merge_adapter)."""
    if check_start(start, flag) == "model":
        model, tokenizer = loading.load_student(start, for_training=True)
        return StudentSetup(model, tokenizer, SCRATCH, "")
    merged = ensure_merged_base(start, base_model, output_dir, log)
    base_ref = str(merged.resolve())
    if backend == "unsloth":  # CUDA only; untested in CI
        setup = build_unsloth_lora_student(cfg, base_ref)
        setup.base_model = MERGED_BASE_REF
        return setup
    from peft import get_peft_model

    model, tokenizer = loading.load_student(base_ref, for_training=True)
    # PEFT records this as the adapter's base and reads its config.json when saving (absolute, so it is found
    # from any cwd); each saved adapter is then pointed at MERGED_BASE_REF (merged_base_callback).
    model.name_or_path = base_ref
    model = get_peft_model(model, lora_config(cfg, model.config.get_text_config().num_hidden_layers))
    return StudentSetup(model, tokenizer, "lora", MERGED_BASE_REF)
