"""Muon for a model's hidden weight matrices, AdamW for the rest, as one optimizer the Trainer can schedule.

Muon (torch.optim.Muon) orthogonalizes each 2-D update; it trains the hidden matrices of a small transformer in
fewer steps than AdamW. It is defined for hidden matrices only: embeddings (tied to the output head here), norms
and biases stay with AdamW, as in modded-nanogpt and nanochat. The Trainer and its learning-rate scheduler see
one torch Optimizer whose param_groups are both inner optimizers' groups, so a schedule scales both.
"""
from __future__ import annotations

import contextlib
import typing
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import torch
import torch.optim._muon as torch_muon  # its Newton-Schulz step, swapped for an fp32 one where bf16 is slow

from ..errors import UserError
from ..settings import Optimizer, TrainingSettings, check_ranges

OPTIMIZERS: tuple[str, ...] = typing.get_args(Optimizer)


def split_for_muon(model: torch.nn.Module) -> tuple[list[torch.nn.Parameter], list[torch.nn.Parameter]]:
    """(hidden matrices for Muon, everything else for AdamW) among the trainable parameters."""
    embeddings = {id(p) for m in model.modules() if isinstance(m, torch.nn.Embedding) for p in m.parameters()}
    output = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    if output is not None:
        embeddings |= {id(p) for p in output.parameters()}
    muon, adamw = [], []
    for param in model.parameters():
        if not param.requires_grad:
            continue
        (muon if param.ndim == 2 and id(param) not in embeddings else adamw).append(param)
    return muon, adamw


def newton_schulz_fp32(grad: torch.Tensor, ns_coefficients: tuple[float, float, float], ns_steps: int,
                       eps: float) -> torch.Tensor:
    """torch.optim.Muon's quintic Newton-Schulz orthogonalization, computed in fp32 instead of bf16.

    torch runs it in bf16 (cheap on GPUs and on CPUs with native bf16). On a CPU without native bf16 a bf16
    matmul is emulated: measured ~1 GFLOP/s against ~100 in fp32 on an AVX2-only EPYC, which made the optimizer
    step cost seconds. Same iteration, same coefficients, in fp32.
    """
    a, b, c = ns_coefficients
    x = grad.float()
    tall = grad.size(0) > grad.size(1)
    if tall:
        x = x.T
    x = x / x.norm().clamp(min=eps)
    for _ in range(ns_steps):
        gram = x @ x.T
        x = torch.addmm(x, torch.addmm(gram, gram, gram, beta=b, alpha=c), x, beta=a)
    return (x.T if tall else x).to(grad.dtype)


@contextlib.contextmanager
def fp32_newton_schulz() -> Iterator[None]:
    """Within the block, torch.optim.Muon orthogonalizes in fp32 (see newton_schulz_fp32)."""
    original = torch_muon._zeropower_via_newtonschulz
    torch_muon._zeropower_via_newtonschulz = newton_schulz_fp32
    try:
        yield
    finally:
        torch_muon._zeropower_via_newtonschulz = original


class MuonAdamW(torch.optim.Optimizer):
    """torch.optim.Muon on the hidden matrices and torch.optim.AdamW on the rest, stepped together.

    muon_lr is Muon's own rate (its "original" scale: a unit-RMS orthogonal update times sqrt(max(1, rows/cols)));
    lr is AdamW's. The scheduler multiplies each group's initial rate by the same factor. bf16_newton_schulz
    False runs Muon's orthogonalization in fp32 (for CPUs where bf16 is slow; hardware.decide_precision).
    """

    def __init__(self, model: torch.nn.Module, *, lr: float, muon_lr: float, weight_decay: float = 0.0,
                 betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8, momentum: float = 0.95,
                 bf16_newton_schulz: bool = True) -> None:
        muon_params, adamw_params = split_for_muon(model)
        self.bf16_newton_schulz = bf16_newton_schulz
        self.inner: list[torch.optim.Optimizer] = []
        if muon_params:
            self.inner.append(torch.optim.Muon(muon_params, lr=muon_lr, weight_decay=weight_decay,
                                               momentum=momentum, nesterov=True))
        if adamw_params:
            self.inner.append(torch.optim.AdamW(adamw_params, lr=lr, betas=betas, eps=eps,
                                                weight_decay=weight_decay))
        # torch's Optimizer bookkeeping (hooks, defaults) over all groups; the groups themselves are the inner
        # optimizers' dicts, so a scheduler writing group["lr"] reaches the optimizer that owns the group.
        super().__init__([{"params": g["params"]} for o in self.inner for g in o.param_groups], {"lr": lr})
        self.param_groups = [g for o in self.inner for g in o.param_groups]

    @torch.no_grad()
    def step(self, closure: Callable[[], float] | None = None) -> float | None:
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        with contextlib.nullcontext() if self.bf16_newton_schulz else fp32_newton_schulz():
            for optimizer in self.inner:
                optimizer.step()
        return loss

    def zero_grad(self, set_to_none: bool = True) -> None:
        for optimizer in self.inner:
            optimizer.zero_grad(set_to_none=set_to_none)

    def state_dict(self) -> dict[str, Any]:
        return {"inner": [o.state_dict() for o in self.inner]}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        for optimizer, state in zip(self.inner, state_dict["inner"], strict=True):
            optimizer.load_state_dict(state)
        self.param_groups = [g for o in self.inner for g in o.param_groups]


def check_optimizer(cfg: Mapping[str, Any]) -> None:
    """UserError for an optimizer this project does not build, or Muon with a rate outside its range
    (settings.TrainingSettings)."""
    if cfg["optimizer"] not in OPTIMIZERS:
        raise UserError(f"training.optimizer is {cfg['optimizer']!r}: use one of {', '.join(OPTIMIZERS)}")
    if cfg["optimizer"] == "muon":
        check_ranges(TrainingSettings, {"muon_learning_rate": cfg["muon_learning_rate"]},
                     "training.{key} is {value}: give a rate {rule} (0.02 is Muon's usual one)")


def build_optimizer(cfg: Mapping[str, Any], model: torch.nn.Module, *, bf16: bool = True) -> MuonAdamW | None:
    """None (the Trainer builds AdamW from its config), or Muon on the hidden matrices + AdamW on the rest
    (Muon's orthogonalization in bf16 only where the run uses bf16, i.e. where it was measured fast)."""
    if cfg["optimizer"] == "adamw":
        return None
    return MuonAdamW(model, lr=float(cfg["learning_rate"]), muon_lr=float(cfg["muon_learning_rate"]),
                     weight_decay=float(cfg["weight_decay"]), bf16_newton_schulz=bf16)
