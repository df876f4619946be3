"""Building a student to train: the backend, the base tokenizer, and the model (scratch, LoRA with
transformers + PEFT, or LoRA with Unsloth). SFT and DPO both build here.

Heavy libraries are imported inside functions: Unsloth must be imported before transformers to patch it, and
it raises at import on a machine with no GPU, so it is imported only on the CUDA path.
"""
from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import UserError
from ..settings import TrainingBackend
from .bases import resolve_base_model

BACKENDS: tuple[str, ...] = typing.get_args(TrainingBackend)
SCRATCH = "scratch"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


@dataclass
class StudentSetup:
    model: Any
    tokenizer: Any
    kind: str  # "scratch" (full training) or "lora"
    base_model: str  # what checkpoint-final's adapter names as its base ("" for scratch)

    @property
    def adapter_base(self) -> str | None:
        """The base a saved adapter must name (runs.save_final); None for a model trained in full."""
        return self.base_model if self.kind == "lora" else None


def unsloth_importable() -> bool:
    try:
        import unsloth  # noqa: F401  (raises at import on a machine with no GPU)
    except Exception:  # noqa: BLE001  ImportError, or unsloth's own error when it finds no accelerator
        return False
    return True


def resolve_backend(backend: str, base_model: str) -> str:
    """"hf" or "unsloth". auto = unsloth when CUDA is there and unsloth imports; the scratch student is hf."""
    if backend not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)}, got {backend!r}")
    if base_model == SCRATCH:
        if backend == "unsloth":
            raise UserError("base_model 'scratch' trains with the hf backend (Unsloth needs a pretrained model); "
                            "pass --backend hf or auto")
        return "hf"
    if backend == "hf":
        return "hf"
    import torch

    has_cuda = torch.cuda.is_available()
    if backend == "unsloth":
        if not has_cuda:
            raise UserError("backend 'unsloth' needs a CUDA GPU and none is visible; pass --backend hf (or auto)")
        if not unsloth_importable():
            raise UserError("backend 'unsloth' is selected but unsloth does not import; install the cuda extra "
                            "(uv sync --extra cuda) or pass --backend hf")
        return "unsloth"
    return "unsloth" if has_cuda and unsloth_importable() else "hf"


def training_device() -> str:
    from .loading import pick_device

    return pick_device()


def base_reference(base_model: str) -> str:
    """A local base dir as an absolute path (so the adapter finds it from any cwd); a hub id as is; a packaged
    base (pypi:gemma3-270m) as its cached folder, so the adapter names a base plain PEFT loads."""
    from .loading import student_kind

    base_model = resolve_base_model(base_model)
    kind = student_kind(base_model)
    if kind == "adapter":
        raise UserError(f"base_model {base_model} is a LoRA adapter; pass its base model (or merge it first)")
    return str(Path(base_model).resolve()) if kind == "model" else base_model


def check_chat_template(tokenizer: Any, name: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"the tokenizer of {name} has no chat template; use an instruction-tuned base such as "
                        f"unsloth/gemma-3-270m-it")


def load_base_tokenizer(cfg: Mapping[str, Any], train_rows: list[dict[str, Any]], resume_dir: str | None) -> Any:
    """The tokenizer to train with: a resumed run's own, a new scratch BPE, or the base model's."""
    from .loading import load_tokenizer

    if resume_dir is not None and (Path(resume_dir) / "tokenizer_config.json").is_file():
        return load_tokenizer(resume_dir)
    if cfg["base_model"] == SCRATCH:
        from ..distributed import agree, is_main_process
        from .scratch import corpus_texts, train_tokenizer

        # Several processes (torchrun): the main one trains the BPE and every process takes that one.
        return agree(train_tokenizer(corpus_texts(train_rows), int(cfg["scratch_vocab_size"]))
                     if is_main_process() else None)
    tokenizer = load_tokenizer(base_reference(cfg["base_model"]))
    check_chat_template(tokenizer, cfg["base_model"])
    return tokenizer


def build_scratch_student(cfg: Mapping[str, Any], tokenizer: Any) -> StudentSetup:
    from .scratch import build_scratch_model, scratch_config_from

    sizes = scratch_config_from(cfg)
    model = build_scratch_model(tokenizer, **sizes, max_position_embeddings=max(2048, int(cfg["max_seq_length"])))
    return StudentSetup(model, tokenizer, SCRATCH, "")


def adapted_layers(cfg: Mapping[str, Any], num_layers: int) -> list[int] | None:
    """The decoder layers LoRA adapts: the last `lora_top_layers` of `num_layers` (SFT's setting; DPO has
    none and adapts all), None = every layer."""
    top = int(cfg.get("lora_top_layers") or 0)
    if top <= 0 or top >= num_layers:
        return None
    return list(range(num_layers - top, num_layers))


def lora_config(cfg: Mapping[str, Any], num_layers: int) -> Any:
    """PEFT's LoraConfig from a settings section's lora_r, lora_alpha, lora_dropout (SFT and DPO alike)."""
    from peft import LoraConfig

    return LoraConfig(r=int(cfg["lora_r"]), lora_alpha=int(cfg["lora_alpha"]), lora_dropout=float(cfg["lora_dropout"]),
                      target_modules=LORA_TARGETS, layers_to_transform=adapted_layers(cfg, num_layers),
                      bias="none", task_type="CAUSAL_LM")


def build_hf_lora_student(cfg: Mapping[str, Any], tokenizer: Any, device: str, bf16: bool) -> StudentSetup:
    """transformers base + PEFT LoRA. The base stays fp32 on CPU/MPS; bf16 weights on CUDA when bf16 is on."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    base = base_reference(cfg["base_model"])
    dtype = torch.bfloat16 if (bf16 and device == "cuda") else torch.float32
    if cfg["load_in_4bit"]:
        print("note: load_in_4bit applies to the unsloth backend only; the hf backend loads full weights")
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except OSError as exc:
        raise UserError(f"could not load base model {base}: {str(exc).strip().splitlines()[0]}") from None
    model = get_peft_model(model, lora_config(cfg, model.config.get_text_config().num_hidden_layers))
    return StudentSetup(model, tokenizer, "lora", base)


def build_unsloth_lora_student(cfg: Mapping[str, Any], model_name: str | None = None, *,
                               gradient_checkpointing: bool = False) -> StudentSetup:
    """Unsloth's FastLanguageModel (4-bit when load_in_4bit) + its LoRA, on ``model_name`` (default: the
    settings' base_model, a packaged base resolved to its folder). CUDA only; not run in CI.
    The StudentSetup's base_model is the model name; DPO replaces it with the name its adapters record."""
    from unsloth import FastLanguageModel  # first: it patches transformers/TRL/PEFT on import

    from ..distributed import is_distributed, local_rank

    name = model_name or base_reference(cfg["base_model"])
    # Under a launcher each process trains on its own GPU: Unsloth would put every replica on the first one.
    placement = {"device_map": {"": local_rank()}} if is_distributed() else {}
    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=name,
        max_seq_length=int(cfg["max_seq_length"]),
        load_in_4bit=bool(cfg["load_in_4bit"]),
        dtype=None,  # Unsloth picks bf16 where the GPU has it, else fp16
        full_finetuning=False,
        **placement,
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=int(cfg["lora_r"]),
        lora_alpha=int(cfg["lora_alpha"]),
        lora_dropout=float(cfg["lora_dropout"]),
        target_modules=LORA_TARGETS,
        layers_to_transform=adapted_layers(cfg, model.config.get_text_config().num_hidden_layers),
        bias="none",
        use_gradient_checkpointing="unsloth" if gradient_checkpointing else False,
        random_state=int(cfg["seed"]),
        max_seq_length=int(cfg["max_seq_length"]),
    )
    check_chat_template(tokenizer, name)
    return StudentSetup(model, tokenizer, "lora", name)


def parameter_counts(model: Any) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": int(total), "trainable": int(trainable)}
