"""DPO training on the preference pairs (pairs.py), starting from the SFT result.

A LoRA adapter is merged into its base (``<output_dir>/sft-merged``, student/continuation.py) and a new adapter
is trained on top (the reference is the merged model: the new adapter disabled); the scratch student (a full
model) is trained in full against a frozen copy of itself. TRL's DPOTrainer computes the loss.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..budget import budget_callback
from ..errors import UserError
from ..jsonl import read_jsonl
from ..prompting import is_messages
from ..fingerprint import checkpoint_fingerprint
from ..runs import (METRICS_FILE, RUN_CONFIG_FILE, START_FINGERPRINT, metrics_callback, open_metrics_log,
                    resolve_checkpoint, resolve_resume, run_record, train_and_save)
from ..settings import AlignmentSettings, check_ranges
from .. import student
from ..student.continuation import MERGED_BASE_REF, check_start, ensure_merged_base, merged_base_callback
from ..student.models import (SCRATCH, StudentSetup, build_unsloth_lora_student, lora_config, parameter_counts,
                              training_device, unsloth_importable)
from ..training.data import sequence_length


def dpo_settings(cfg: Mapping[str, Any]) -> None:
    """Check resolved settings the config loader cannot: the ranges the alignment section declares
    (settings.AlignmentSettings); UserError names the flag."""
    check_ranges(AlignmentSettings, cfg, "{flag} must be {rule} (alignment settings)")


def load_pairs(path: str | Path) -> list[dict[str, Any]]:
    """The pairs file's records; UserError when one is not a conversational pair (prompt messages, chosen and
    rejected one assistant message each), e.g. a pairs file of the older plain-text format."""
    pairs = read_jsonl(path)
    for i, pair in enumerate(pairs):
        if not is_messages(pair.get("prompt")):
            raise UserError(f"{path}: pair {i + 1} has no 'prompt' chat messages; rebuild the pairs with "
                            f"scripts/build_alignment_pairs.py")
        for key in ("chosen", "rejected"):
            side = pair.get(key)
            if not (is_messages(side) and len(side) == 1 and side[0]["role"] == "assistant"):
                raise UserError(f"{path}: pair {i + 1} has no '{key}' as one assistant message; rebuild the pairs "
                                f"with scripts/build_alignment_pairs.py")
    return pairs


def choose_backend(start: str) -> str:
    """"unsloth" for an adapter start on CUDA when unsloth imports (imported here, first), else "hf"."""
    import torch

    if (Path(start) / "adapter_config.json").is_file() and torch.cuda.is_available() and unsloth_importable():
        return "unsloth"
    return "hf"


def pair_length(tokenizer: Any, pair: Mapping[str, Any]) -> int:
    """Tokens of the longer side: prompt + completion through the chat template, as TRL tokenizes it."""
    return max(sequence_length(tokenizer, {"prompt": pair["prompt"], "completion": pair[side]})
               for side in ("chosen", "rejected"))


def to_preference_dataset(pairs: list[dict[str, Any]], tokenizer: Any, max_seq_length: int) -> tuple[Any, int]:
    """(TRL conversational preference Dataset {prompt, chosen, rejected}, pairs dropped as too long).

    TRL would cut an over-long pair's completions, losing their ends; such pairs are dropped and counted.
    """
    from datasets import Dataset

    rows, dropped = [], 0
    for pair in pairs:
        if pair_length(tokenizer, pair) > max_seq_length:
            dropped += 1
            continue
        rows.append({"prompt": pair["prompt"], "chosen": pair["chosen"], "rejected": pair["rejected"]})
    return Dataset.from_list(rows), dropped


@dataclass
class DpoStart:
    """The model DPO trains, how, and what it is measured against."""
    setup: Any  # training.StudentSetup: kind "lora" (new adapter on the merged SFT model) or "scratch" (full)
    ref_model: Any  # a frozen copy for full training; None with LoRA (adapter disabled = merged SFT model)
    peft_config: Any  # LoraConfig for TRL to apply (hf backend), else None
    reference: str  # in words, for run_config.json


def load_dpo_start(cfg: Mapping[str, Any], backend: str, output_dir: Path, log: Any = print) -> DpoStart:
    """The SFT result made ready for DPO (see the module docstring)."""
    import copy

    if not cfg["adapter"]:
        raise UserError("no SFT checkpoint named: pass --adapter DIR or set alignment.adapter in the config")
    start = str(cfg["adapter"])
    if check_start(start, "--adapter") == "model":
        if cfg["load_in_4bit"]:
            log("note: load_in_4bit does not apply to a full model trained in full; loading full weights")
        model, tokenizer = student.load_student(start, for_training=True)
        ref_model = copy.deepcopy(model).eval()
        ref_model.requires_grad_(False)
        return DpoStart(StudentSetup(model, tokenizer, "scratch", ""), ref_model, None,
                        f"a frozen copy of {start}")
    merged = ensure_merged_base(start, cfg["base_model"], output_dir, log)
    base_ref = str(merged.resolve())
    reference = f"the merged SFT model {base_ref} (the DPO adapter disabled)"
    if backend == "unsloth":  # CUDA only; untested in CI
        setup = build_unsloth_lora_student(cfg, base_ref)
        setup.base_model = MERGED_BASE_REF
        return DpoStart(setup, None, None, reference)
    if cfg["load_in_4bit"]:
        log("note: load_in_4bit applies to the unsloth backend only; loading full weights")
    model, tokenizer = student.load_student(base_ref, for_training=True)
    # PEFT records this as the adapter's base and reads its config.json when saving (absolute, so it is
    # found from any cwd); each saved adapter is then pointed at MERGED_BASE_REF (point_at_merged_base).
    model.name_or_path = base_ref
    # setup.base_model: what checkpoint-final's adapter names (training's final save writes it there).
    return DpoStart(StudentSetup(model, tokenizer, "lora", MERGED_BASE_REF), None, lora_config(cfg, model.config.get_text_config().num_hidden_layers), reference)


def dpo_config(cfg: Mapping[str, Any], output_dir: str, *, bf16: bool, device: str) -> Any:
    """TRL's DPOConfig from the resolved alignment settings."""
    from trl import DPOConfig

    max_steps = int(cfg["max_steps"]) if cfg["max_steps"] is not None and int(cfg["max_steps"]) > 0 else -1
    save_steps = int(cfg["save_steps"])
    return DPOConfig(
        output_dir=output_dir,
        seed=int(cfg["seed"]),
        data_seed=int(cfg["seed"]),
        # DPO
        beta=float(cfg["beta"]),
        loss_type=["sigmoid"],  # the DPO paper's loss
        max_length=int(cfg["max_seq_length"]),
        precompute_ref_log_probs=False,
        dataset_num_proc=None,
        # schedule
        max_steps=max_steps,
        num_train_epochs=1.0,  # used when max_steps is -1: one pass over the pairs
        per_device_train_batch_size=int(cfg["batch_size"]),
        gradient_accumulation_steps=int(cfg["grad_accum"]),
        learning_rate=float(cfg["learning_rate"]),
        warmup_steps=int(cfg["warmup_steps"]),
        # precision
        bf16=bf16,
        use_cpu=device == "cpu",
        # logging and checkpoints
        logging_steps=int(cfg["logging_steps"]),
        logging_first_step=True,  # the first margin is the SFT model's own (about 0): the baseline
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=max(save_steps, 1),
        save_total_limit=int(cfg["save_total_limit"]) or None,
        report_to="none",
        dataloader_num_workers=0,
    )


def reward_margins(metrics_path: str | Path) -> dict[str, float | None]:
    """First and last logged rewards/margins (and accuracies) of a DPO run's training_metrics.jsonl."""
    logs = [r for r in read_jsonl(metrics_path, missing_ok=True) if "rewards/margins" in r]
    first, last = (logs[0], logs[-1]) if logs else ({}, {})
    return {"first_margin": first.get("rewards/margins"), "last_margin": last.get("rewards/margins"),
            "first_accuracy": first.get("rewards/accuracies"), "last_accuracy": last.get("rewards/accuracies")}


def build_dpo_trainer(cfg: Mapping[str, Any], start: DpoStart, dataset: Any, output_dir: Path, *, bf16: bool,
                      device: str, callbacks: Sequence[Any] = ()) -> Any:
    """TRL's DPOTrainer over the preference dataset (it tokenizes the pairs here); start.setup.model becomes
    the model it trains (PEFT-wrapped when TRL applied the LoRA config)."""
    from trl import DPOTrainer

    from ..distributed import CpuResumeMixin

    class ResumableDPOTrainer(CpuResumeMixin, DPOTrainer):
        """TRL's DPOTrainer; resumable under a launcher of several CPU processes (distributed.CpuResumeMixin)."""

    extra = [merged_base_callback()] if start.setup.kind == "lora" else []
    trainer = ResumableDPOTrainer(model=start.setup.model, ref_model=start.ref_model,
                         args=dpo_config(cfg, str(output_dir), bf16=bf16, device=device),
                         train_dataset=dataset, processing_class=start.setup.tokenizer,
                         peft_config=start.peft_config, callbacks=[*callbacks, *extra])
    start.setup.model = trainer.model
    return trainer


def train_dpo(cfg: Mapping[str, Any], *, resume: str | None = None,
              resolved_config: Mapping[str, Any] | None = None, log: Any = print) -> dict[str, Any]:
    """Run DPO with resolved alignment settings (the alignment section's DPO keys); returns what it wrote and
    measured.

    resume: None (fresh), "auto" (newest checkpoint-N of output_dir, fresh if none) or a checkpoint dir.
    With no pairs it trains nothing, writes nothing and returns {"trained": False}.
    """
    dpo_settings(cfg)
    if cfg["adapter"]:  # a run dir means its selected checkpoint; run_config records the one used
        cfg = {**cfg, "adapter": resolve_checkpoint(str(cfg["adapter"]))}
    pairs = load_pairs(cfg["pairs_out"])
    if not pairs:
        log(f"no pairs: nothing to train ({cfg['pairs_out']} is empty)")
        return {"trained": False, "pairs": 0}
    backend = choose_backend(str(cfg["adapter"]))  # imports unsloth, when used, before transformers and TRL
    from transformers import set_seed

    from ..hardware import announce, decide_precision

    output_dir = Path(cfg["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_dir = resolve_resume(resume, str(output_dir))
    device = training_device()
    precision = decide_precision(device, cfg["bf16"], stage="alignment")
    announce(precision, log)
    bf16 = precision.bf16
    set_seed(int(cfg["seed"]))
    start = load_dpo_start(cfg, backend, output_dir, log)
    setup = start.setup
    dataset, too_long = to_preference_dataset(pairs, setup.tokenizer, int(cfg["max_seq_length"]))
    if len(dataset) == 0:
        raise UserError(f"all {len(pairs)} pairs of {cfg['pairs_out']} exceed max_seq_length="
                        f"{cfg['max_seq_length']} tokens; raise --max-seq-length")
    log(f"pairs: {len(dataset)} trained on, {too_long} dropped as longer than max_seq_length; backend {backend} "
        f"on {device}, bf16 {bf16}, {setup.kind} student; reference: {start.reference}")

    metrics_path = output_dir / METRICS_FILE
    writer = open_metrics_log(output_dir, resume_dir)
    callbacks = [] if writer is None else [metrics_callback(writer)]  # None: not the main process
    budget = budget_callback(cfg, output_dir, resume_dir, eval_every=0, has_eval=False, log=log)
    callbacks += [budget] if budget is not None else []  # last: see budget.py
    trainer = build_dpo_trainer(cfg, start, dataset, output_dir, bf16=bf16, device=device, callbacks=callbacks)

    run_config = run_record(
        "dpo", "alignment", cfg, resolved_config,
        # The prompts DPO trained on are the SFT corpus's: predict renders its own the same way.
        schema_format=student.recorded_schema_format(str(cfg["adapter"])),
        resumed_from=resume_dir, backend=backend, device=device,
        dtype="bf16 autocast" if bf16 else "float32", precision=precision.record(),
        student=setup.kind, start=str(cfg["adapter"]), base_model=setup.base_model or SCRATCH,
        **{START_FINGERPRINT: checkpoint_fingerprint(str(cfg["adapter"]))},
        reference=start.reference,
        counts={"pairs": len(pairs), "trained_pairs": len(dataset), "dropped_overlong": too_long},
        parameters=parameter_counts(setup.model))
    run = train_and_save(trainer, setup.tokenizer, output_dir, run_config, resume_dir=resume_dir,
                         metrics_log=writer, budget=budget,
                         outcome=lambda wall_s: {"reward_margins": reward_margins(metrics_path)},
                         adapter_base=setup.adapter_base)
    margins = run.run_config["reward_margins"]
    log(f"DPO: {run.final_step} steps; reward margin {margins['first_margin']} (first log) -> "
        f"{margins['last_margin']} (last log)")
    return {"trained": True, "checkpoint_final": str(run.final), "metrics": str(metrics_path),
            "run_config": str(output_dir / RUN_CONFIG_FILE), "final_step": run.final_step,
            "train_loss": float(run.result.training_loss), **margins}
