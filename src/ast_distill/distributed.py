"""Training in several processes, as ``torchrun`` or ``accelerate launch`` start them: who writes what, and
decisions every process must share.

HF Trainer and TRL already run data-parallel under a launcher (one replica per process, gradients averaged,
checkpoints saved by the main process, each process's RNG state in the checkpoint). What is left to this
project:
- the files it writes itself (run_config.json, training_metrics.jsonl, sample generations, checkpoint-final's
  extras) come from the main process only (``is_main_process``); a file every process then reads (a trimmed
  or merged base) is made by the main process first (``main_process_first``);
- a decision one process measures (the CPU's bf16 probe) is the main process's for all (``agree``); what
  each process counts (tokens trained on) is summed (``gather``);
- the other processes print nothing on stdout (``cli.run``), so the log reads as one run.
Nothing here starts a process group unless the launcher's environment says there are several processes
(WORLD_SIZE > 1); the group is accelerate's (gloo on CPUs, NCCL on GPUs), the one the Trainer then uses.
"""
from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def world_size() -> int:
    """Processes in this training (1 when not launched by torchrun / accelerate launch)."""
    return int(os.environ.get("WORLD_SIZE") or 1)


def process_rank() -> int:
    """This process's rank (0 = the main process)."""
    return int(os.environ.get("RANK") or 0)


def local_rank() -> int:
    """This process's rank on its machine: its GPU's index under a launcher (one process per GPU)."""
    return int(os.environ.get("LOCAL_RANK") or 0)


def is_distributed() -> bool:
    return world_size() > 1


def is_main_process() -> bool:
    return process_rank() == 0


def _state() -> Any:
    """accelerate's process state (starts the process group on first use), on the device training uses."""
    from accelerate import PartialState

    from .student.models import training_device

    return PartialState(cpu=training_device() == "cpu")  # as TrainingArguments(use_cpu=...) makes it


def agree(value: Any) -> Any:
    """The main process's ``value`` in every process (pickled); ``value`` itself when there is one process."""
    if not is_distributed():
        return value
    from accelerate.utils import broadcast_object_list

    _state()
    return broadcast_object_list([value], from_process=0)[0]


def gather(value: Any) -> list[Any]:
    """Every process's ``value``, in rank order (pickled); ``[value]`` when there is one process."""
    if not is_distributed():
        return [value]
    from accelerate.utils import gather_object

    _state()
    return list(gather_object([value]))


def barrier() -> None:
    """Wait here until every process is here."""
    if is_distributed():
        _state().wait_for_everyone()


@contextmanager
def main_process_first() -> Iterator[None]:
    """The main process runs the block first (making files); the others run it after (finding them made)."""
    if not is_distributed():
        yield
        return
    with _state().main_process_first():
        yield


def replica_fingerprints(model: Any) -> list[str]:
    """Each process's digest of the weights it trains (its replica of them), in rank order: all equal when the
    replicas stayed in sync, as data-parallel training keeps them. Every process must call it."""
    import hashlib

    digest = hashlib.sha256()
    for name, parameter in sorted(model.named_parameters(), key=lambda item: item[0]):
        if parameter.requires_grad:
            digest.update(name.encode("utf-8"))
            digest.update(parameter.detach().float().cpu().numpy().tobytes())
    return gather(digest.hexdigest()[:16])


class CpuResumeMixin:
    """For a Trainer class: resuming a run of several CPU processes loads the optimizer state onto the CPU.

    transformers (5.17) maps optimizer.pt to ``args.device`` when there are several processes; on CPUs that device
    is "cpu:<rank>", which torch.load cannot restore to ("don't know how to restore data location"). Here the
    state is loaded as the one-process path loads it, to "cpu"; every other case is the Trainer's own."""

    def _load_optimizer_and_scheduler(self, checkpoint: str | None) -> None:
        args = self.args  # type: ignore[attr-defined]
        if checkpoint is None or args.world_size <= 1 or args.device.type != "cpu":
            return super()._load_optimizer_and_scheduler(checkpoint)  # type: ignore[misc]
        import torch
        from transformers.trainer import OPTIMIZER_NAME, SCHEDULER_NAME

        optimizer, scheduler = os.path.join(checkpoint, OPTIMIZER_NAME), os.path.join(checkpoint, SCHEDULER_NAME)
        if os.path.isfile(optimizer) and os.path.isfile(scheduler):
            self.optimizer.load_state_dict(  # type: ignore[attr-defined]
                torch.load(optimizer, map_location="cpu", weights_only=True))
            self.lr_scheduler.load_state_dict(torch.load(scheduler, weights_only=True))  # type: ignore[attr-defined]
        return None


def record() -> dict[str, Any]:
    """run_config.json's note of how the run was launched."""
    return {"processes": world_size(),
            "launcher": "torchrun / accelerate launch" if is_distributed() else "one process"}
