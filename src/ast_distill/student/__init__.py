"""The student: loading one for inference or further training (``loading``), building one to train (``models``:
scratch, LoRA with PEFT or Unsloth), its optimizer (``optim``: Muon + AdamW), the scratch model and tokenizer
(``scratch``, whose turn markers every student shares) and packaged offline bases (``bases``).

The loading API is what most callers need, so it is importable from the package itself; it is imported on
first use (it pulls in torch and transformers), so that importing a light part of the package stays light.
"""
from __future__ import annotations

from typing import Any

__all__ = ["adapter_base", "for_inference", "from_pretrained", "inference_dtype", "load_for_inference", "load_student", "load_tokenizer", "merge_for_training",
           "pick_device", "prompt_text", "recorded_schema_format", "stop_token_ids", "student_kind"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from . import loading

        return getattr(loading, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
