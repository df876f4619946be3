"""Teacher-aligned preference pairs for DPO, built from an evaluation of the SFT student on the pref rows.

A pair says, for the exact prompt text the student saw: the teacher's AST (chosen) is better than what the
student wrote (rejected). Both sides are completion texts in the SFT format: ``render_ast`` (the one
completion renderer) followed by the chat template's end-of-turn text, so DPO scores the same token
sequences SFT trained on, stop token included. The student's side is its own AST in that rendering when it
parsed, and its raw text when it did not (a broken output is exactly what DPO should push down). TRL then
appends the tokenizer's eos token to both plain-text sides: the same token on each, after the stop token.

DPO training (``train_dpo``) starts from the SFT result: a LoRA adapter is merged into its base and a new
adapter is trained on top (the reference is the merged model: the new adapter disabled); the scratch student
(a full model) is trained in full against a frozen copy of itself. TRL's DPOTrainer computes the loss.
"""
from __future__ import annotations

import random
import sys
import time
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .canonical import render_ast
from .errors import UserError
from .jsonl import JsonlAppender, read_json, read_jsonl, write_json_atomic, write_jsonl_atomic

# Why an evaluation row gave no pair, in the order the checks run.
DROP_REASONS = (
    "teacher_accepted",  # --only-rejected: the teacher held the student's output right
    "no_teacher_verdict",  # --only-rejected: the teacher gave no verdict on a wrong output
    "no_teacher_ast",  # the teacher wrote no AST to prefer
    "chosen_equals_rejected",  # both sides render to the same text: nothing to learn
    "over_max_pairs",  # left out by --max-pairs
)

_PROBE = "\u2063PROBE\u2063"  # never trimmed by a chat template, never found in a real completion


def completion_ending(tokenizer: Any) -> str:
    """The text a chat template writes after an assistant message's content (Gemma 3: "<end_of_turn>\\n").

    SFT trains on the template's completion (what follows the generation prompt), which is the content and
    this ending; plain-text DPO completions get it appended so they end the same way.
    """
    user = [{"role": "user", "content": "x"}]
    prompt = tokenizer.apply_chat_template(user, tokenize=False, add_generation_prompt=True)
    full = tokenizer.apply_chat_template(user + [{"role": "assistant", "content": _PROBE}], tokenize=False)
    if not full.startswith(prompt) or _PROBE not in full:
        raise UserError("the tokenizer's chat template does not render an assistant turn after the generation "
                        "prompt; cannot tell how completions end")
    return full[len(prompt):].split(_PROBE, 1)[1]


def teacher_accepted(record: Mapping[str, Any]) -> bool | None:
    """The teacher's verdict on an evaluation row: True, False, or None when it gave none.

    evaluate_student.py writes True without a call when the output means the gold AST.
    """
    verdict = record.get("teacher_verdict")
    return verdict if isinstance(verdict, bool) else None


def chosen_text(record: Mapping[str, Any], ending: str) -> str | None:
    """The teacher's AST as a completion, or None when the row has no teacher AST."""
    ast = record.get("teacher_canonical")
    return render_ast(ast) + ending if isinstance(ast, dict) else None


def rejected_text(record: Mapping[str, Any], ending: str) -> str:
    """The student's output as a completion: its AST rendered when it parsed, else its raw text."""
    ast = record.get("student_ast")
    if record.get("parsed") and isinstance(ast, dict):
        return render_ast(ast) + ending
    return str(record.get("student_raw") or "").strip() + ending


@dataclass
class PairSet:
    """The pairs kept, and how many evaluation rows were dropped for each reason."""
    pairs: list[dict[str, Any]]
    n_rows: int
    dropped: Counter[str] = field(default_factory=Counter)

    def counts(self) -> dict[str, Any]:
        return {"rows": self.n_rows, "pairs": len(self.pairs),
                "dropped": {reason: self.dropped.get(reason, 0) for reason in DROP_REASONS}}


def _check_record(record: Mapping[str, Any], index: int, where: str) -> None:
    for key in ("id", "prompt_text"):
        if not isinstance(record.get(key), str) or not record[key]:
            raise UserError(f"{where}: row {index + 1} has no '{key}'; pass the evaluation_results.jsonl that "
                            f"scripts/evaluate_student.py wrote")
    # DESIGN.md "Honest splits": no test row and no row of a held-out schema is ever trained on.
    if record.get("split") == "test" or record.get("schema_seen") is False:
        raise UserError(f"{where}: row {index + 1} (id {record['id']}) is a test row or a held-out schema's row; "
                        f"DPO pairs must come from the pref rows only (evaluate_student.py --split pref)")


def _drop_reason(record: Mapping[str, Any], only_rejected: bool, chosen: str | None, rejected: str) -> str | None:
    if only_rejected:
        verdict = teacher_accepted(record)
        if verdict is True:
            return "teacher_accepted"
        if verdict is None:
            return "no_teacher_verdict"
    if chosen is None:
        return "no_teacher_ast"
    if chosen == rejected:
        return "chosen_equals_rejected"
    return None


def build_pairs(records: Iterable[Mapping[str, Any]], ending: str, *, only_rejected: bool = True,
                max_pairs: int | None = None, seed: int = 0, where: str = "evaluation results") -> PairSet:
    """DPO pairs {id, schema_id, language, kind, prompt, chosen, rejected, ...} from evaluation rows.

    Pair id = evaluation row id. With max_pairs, a seeded random subset is kept, in input order.
    """
    records = list(records)
    result = PairSet(pairs=[], n_rows=len(records))
    for index, record in enumerate(records):
        _check_record(record, index, where)
        chosen, rejected = chosen_text(record, ending), rejected_text(record, ending)
        reason = _drop_reason(record, only_rejected, chosen, rejected)
        if reason is not None:
            result.dropped[reason] += 1
            continue
        result.pairs.append({
            "id": record["id"], "schema_id": record.get("schema_id"), "split": record.get("split"),
            "language": record.get("language"), "kind": record.get("kind"),
            "prompt": record["prompt_text"], "chosen": chosen, "rejected": rejected,
            "teacher_verdict": teacher_accepted(record), "student_parsed": bool(record.get("parsed")),
        })
    if max_pairs is not None and len(result.pairs) > max_pairs:
        keep = set(random.Random(seed).sample(range(len(result.pairs)), max_pairs))
        result.dropped["over_max_pairs"] += len(result.pairs) - max_pairs
        result.pairs = [pair for i, pair in enumerate(result.pairs) if i in keep]
    return result


def pairs_meta_path(pairs_path: str | Path) -> Path:
    """<pairs>.meta.json beside the pairs file: counts, drop reasons, settings, provenance."""
    path = Path(pairs_path)
    return path.with_name(path.name.removesuffix(".jsonl") + ".meta.json")


def write_pairs(settings: Mapping[str, Any], *, resolved_config: Mapping[str, Any] | None = None,
                log: Any = print) -> dict[str, Any]:
    """Build the pairs file from settings {eval_results, out, adapter, only_rejected, max_pairs, seed}.

    adapter: the checkpoint whose tokenizer's chat template gives the completion ending. Writes the pairs
    (empty when none are kept) and <pairs>.meta.json atomically; returns the counts.
    """
    from .student import load_tokenizer
    from .training import _git_commit, library_versions

    if not settings["adapter"]:
        raise UserError("no SFT checkpoint named: pass --adapter DIR or set alignment.adapter in the config")
    if settings["max_pairs"] is not None and settings["max_pairs"] < 0:
        raise UserError(f"--max-pairs must be 0 or more (unset = all), got {settings['max_pairs']}")
    records = read_jsonl(settings["eval_results"])
    if not records:
        raise UserError(f"{settings['eval_results']} holds no evaluation rows; run evaluate_student.py --split pref "
                        f"first")
    ending = completion_ending(load_tokenizer(str(settings["adapter"])))
    result = build_pairs(records, ending, only_rejected=bool(settings["only_rejected"]),
                         max_pairs=settings["max_pairs"], seed=int(settings["seed"]),
                         where=str(settings["eval_results"]))
    write_jsonl_atomic(settings["out"], result.pairs)
    meta = {**result.counts(), "completion_ending": ending, "settings": dict(settings),
            "config": dict(resolved_config or {}), "versions": library_versions(), "git": _git_commit(),
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
    write_json_atomic(pairs_meta_path(settings["out"]), meta)
    dropped = ", ".join(f"{reason} {n}" for reason, n in result.counts()["dropped"].items())
    log(f"pairs: kept {len(result.pairs)} of {result.n_rows} evaluation rows; dropped: {dropped}")
    if not result.pairs:
        log("no pairs: no evaluation row gave a chosen/rejected pair (see the drop counts above); nothing to train")
    return {"pairs_file": str(settings["out"]), "meta": str(pairs_meta_path(settings["out"])), **result.counts()}


# ---------------------------------------------------------------------------------------------------------
# DPO training
# ---------------------------------------------------------------------------------------------------------

# Every key of the config's alignment section that train_dpo reads (pairs_out is the pairs file).
DPO_KEYS = (
    "pairs_out", "adapter", "output_dir", "base_model", "max_steps", "batch_size", "grad_accum", "learning_rate",
    "warmup_steps", "logging_steps", "save_steps", "save_total_limit", "beta", "load_in_4bit", "bf16",
    "max_seq_length", "lora_r", "lora_alpha", "lora_dropout", "seed",
)
MERGED_DIR = "sft-merged"  # the SFT adapter merged into its base: the new adapter's base and DPO's reference
_MERGED_FROM = "merged_from.json"


def dpo_settings(cfg: Mapping[str, Any]) -> None:
    """Check resolved settings the config loader cannot (ranges); UserError names the flag."""
    checks = [
        (int(cfg["batch_size"]) >= 1, "--batch-size must be >= 1"),
        (int(cfg["grad_accum"]) >= 1, "--grad-accum must be >= 1"),
        (int(cfg["max_seq_length"]) >= 16, "--max-seq-length must be >= 16 tokens"),
        (float(cfg["learning_rate"]) > 0, "--learning-rate must be > 0"),
        (float(cfg["beta"]) > 0, "--beta must be > 0"),
        (int(cfg["logging_steps"]) >= 1, "--logging-steps must be >= 1"),
        (int(cfg["warmup_steps"]) >= 0, "--warmup-steps must be >= 0"),
        (cfg["max_steps"] is None or int(cfg["max_steps"]) != 0, "--max-steps must be > 0, or -1/null for one pass"),
        (int(cfg["save_steps"]) >= 0, "--save-steps must be >= 0 (0 = no checkpoint-N)"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"{message} (alignment settings)")


def load_pairs(path: str | Path) -> list[dict[str, Any]]:
    """The pairs file's records; UserError when one lacks a text prompt, chosen or rejected."""
    pairs = read_jsonl(path)
    for i, pair in enumerate(pairs):
        for key in ("prompt", "chosen", "rejected"):
            if not isinstance(pair.get(key), str) or not pair[key]:
                raise UserError(f"{path}: pair {i + 1} has no text '{key}'; build the pairs with "
                                f"scripts/build_alignment_pairs.py")
    return pairs


def _starts_as_adapter(path: str) -> bool:
    return (Path(path) / "adapter_config.json").is_file()


def choose_backend(start: str) -> str:
    """"unsloth" for an adapter start on CUDA when unsloth imports (imported here, first), else "hf"."""
    import torch

    from .training import _unsloth_importable

    if _starts_as_adapter(start) and torch.cuda.is_available() and _unsloth_importable():
        return "unsloth"
    return "hf"


def _same_model_ref(a: str, b: str) -> bool:
    return a == b or (Path(a).is_dir() and Path(b).is_dir() and Path(a).resolve() == Path(b).resolve())


def merge_adapter(adapter: str, base_model: str | None) -> tuple[Any, Any, str]:
    """(merged model, tokenizer, base used): the SFT adapter merged into its base, fp32, trainable.

    base_model overrides the base the adapter records (e.g. a local copy of a hub model); None or "scratch"
    keeps the recorded one.
    """
    from .student import _adapter_base, _from_pretrained, load_tokenizer, merge_for_training

    recorded = _adapter_base(adapter)
    if not base_model or base_model == "scratch" or _same_model_ref(base_model, recorded):
        model, tokenizer = merge_for_training(adapter)
        return model, tokenizer, recorded
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = _from_pretrained(AutoModelForCausalLM, base_model, dtype=torch.float32)
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    model.train()
    return model, load_tokenizer(adapter), base_model


def ensure_merged_base(adapter: str, base_model: str | None, output_dir: Path, log: Any = print) -> Path:
    """<output_dir>/sft-merged: the merged SFT model + tokenizer, written once (atomically) per adapter.

    The new DPO adapter names this dir as its base, so checkpoint-N and checkpoint-final load as
    merged SFT model + DPO adapter with student.load_student.
    """
    import shutil

    merged = output_dir / MERGED_DIR
    source = {"adapter": str(Path(adapter).resolve()), "base_model": base_model}
    marker = merged / _MERGED_FROM
    if marker.is_file() and read_json(marker) == source:
        return merged
    model, tokenizer, base_used = merge_adapter(adapter, base_model)
    partial = output_dir / (MERGED_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    model.save_pretrained(partial)
    tokenizer.save_pretrained(partial)
    write_json_atomic(partial / _MERGED_FROM, source)
    shutil.rmtree(merged, ignore_errors=True)
    partial.rename(merged)
    log(f"merged the SFT adapter {adapter} into {base_used}: {merged}")
    return merged


def prompt_for_tokenizer(prompt: str, tokenizer: Any) -> str:
    """The prompt text as TRL should tokenize it: TRL calls the tokenizer with its special tokens, so when
    the tokenizer adds <bos> itself the chat template's own <bos> is cut (inference tokenizes the template
    text with add_special_tokens=False: one <bos> either way)."""
    bos = tokenizer.bos_token
    if bos and prompt.startswith(bos) and tokenizer.bos_token_id is not None:
        if tokenizer("x")["input_ids"][:1] == [tokenizer.bos_token_id]:
            return prompt[len(bos):]
    return prompt


def pair_length(tokenizer: Any, prompt: str, pair: Mapping[str, Any]) -> int:
    """Tokens of the longer side (prompt + completion + the eos TRL appends)."""
    return 1 + max(len(tokenizer(prompt + pair[side])["input_ids"]) for side in ("chosen", "rejected"))


def to_preference_dataset(pairs: list[dict[str, Any]], tokenizer: Any, max_seq_length: int) -> tuple[Any, int]:
    """(TRL plain-text preference Dataset {prompt, chosen, rejected}, pairs dropped as too long).

    TRL would cut an over-long pair's completions, losing their ends; such pairs are dropped and counted.
    """
    from datasets import Dataset

    rows, dropped = [], 0
    for pair in pairs:
        prompt = prompt_for_tokenizer(pair["prompt"], tokenizer)
        if pair_length(tokenizer, prompt, pair) > max_seq_length:
            dropped += 1
            continue
        rows.append({"prompt": prompt, "chosen": pair["chosen"], "rejected": pair["rejected"]})
    return Dataset.from_list(rows), dropped


@dataclass
class DpoStart:
    """The model DPO trains, how, and what it is measured against."""
    setup: Any  # training.StudentSetup: kind "lora" (new adapter on the merged SFT model) or "scratch" (full)
    ref_model: Any  # a frozen copy for full training; None with LoRA (adapter disabled = merged SFT model)
    peft_config: Any  # LoraConfig for TRL to apply (hf backend), else None
    reference: str  # in words, for run_config.json


def _lora_config(cfg: Mapping[str, Any]) -> Any:
    from peft import LoraConfig

    from .training import LORA_TARGETS

    return LoraConfig(r=int(cfg["lora_r"]), lora_alpha=int(cfg["lora_alpha"]), lora_dropout=float(cfg["lora_dropout"]),
                      target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")


def load_dpo_start(cfg: Mapping[str, Any], backend: str, output_dir: Path, log: Any = print) -> DpoStart:
    """The SFT result made ready for DPO (see the module docstring)."""
    import copy

    from .student import load_student, student_kind
    from .training import StudentSetup

    if not cfg["adapter"]:
        raise UserError("no SFT checkpoint named: pass --adapter DIR or set alignment.adapter in the config")
    start = str(cfg["adapter"])
    kind = student_kind(start)
    if kind == "hub":
        raise UserError(f"--adapter {start} is not a checkpoint dir; DPO starts from the SFT result, e.g. "
                        f"<training.output_dir>/checkpoint-final")
    if kind == "model":
        if cfg["load_in_4bit"]:
            log("note: load_in_4bit does not apply to a full model trained in full; loading full weights")
        model, tokenizer = load_student(start, for_training=True)
        ref_model = copy.deepcopy(model).eval()
        ref_model.requires_grad_(False)
        return DpoStart(StudentSetup(model, tokenizer, "scratch", ""), ref_model, None,
                        f"a frozen copy of {start}")
    merged = ensure_merged_base(start, cfg["base_model"], output_dir, log)
    base_ref = str(merged.resolve())
    reference = f"the merged SFT model {base_ref} (the DPO adapter disabled)"
    if backend == "unsloth":  # CUDA only; untested in CI
        from unsloth import FastLanguageModel

        model, tokenizer = FastLanguageModel.from_pretrained(
            model_name=base_ref, max_seq_length=int(cfg["max_seq_length"]), load_in_4bit=bool(cfg["load_in_4bit"]),
            dtype=None)
        from .training import LORA_TARGETS

        model = FastLanguageModel.get_peft_model(
            model, r=int(cfg["lora_r"]), lora_alpha=int(cfg["lora_alpha"]), lora_dropout=float(cfg["lora_dropout"]),
            target_modules=LORA_TARGETS, bias="none", use_gradient_checkpointing=False,
            random_state=int(cfg["seed"]), max_seq_length=int(cfg["max_seq_length"]))
        return DpoStart(StudentSetup(model, tokenizer, "lora", base_ref), None, None, reference)
    if cfg["load_in_4bit"]:
        log("note: load_in_4bit applies to the unsloth backend only; loading full weights")
    model, tokenizer = load_student(base_ref, for_training=True)
    model.name_or_path = base_ref  # PEFT records this as the new adapter's base
    return DpoStart(StudentSetup(model, tokenizer, "lora", base_ref), None, _lora_config(cfg), reference)


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


def train_dpo(cfg: Mapping[str, Any], *, resume: str | None = None,
              resolved_config: Mapping[str, Any] | None = None, log: Any = print) -> dict[str, Any]:
    """Run DPO with resolved alignment settings (DPO_KEYS); returns what it wrote and measured.

    resume: None (fresh), "auto" (newest checkpoint-N of output_dir, fresh if none) or a checkpoint dir.
    With no pairs it trains nothing, writes nothing and returns {"trained": False}.
    """
    dpo_settings(cfg)
    pairs = load_pairs(cfg["pairs_out"])
    if not pairs:
        log(f"no pairs: nothing to train ({cfg['pairs_out']} is empty)")
        return {"trained": False, "pairs": 0}
    backend = choose_backend(str(cfg["adapter"]))  # imports unsloth, when used, before transformers and TRL
    from transformers import set_seed

    from .training import (METRICS_FILE, RUN_CONFIG_FILE, _git_commit, _make_metrics_callback,
                           _save_final, _trim_metrics, checkpoint_step, library_versions, parameter_counts,
                           resolve_resume, training_device, use_bf16)

    output_dir = Path(cfg["output_dir"])
    output_dir.mkdir(parents=True, exist_ok=True)
    resume_dir = resolve_resume(resume, str(output_dir))
    device = training_device()
    bf16 = use_bf16(bool(cfg["bf16"]), device)
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
    if resume_dir is not None:
        _trim_metrics(metrics_path, checkpoint_step(resume_dir))
    writer = JsonlAppender(metrics_path, fresh=resume_dir is None)
    from trl import DPOTrainer

    trainer = DPOTrainer(model=setup.model, ref_model=start.ref_model,
                         args=dpo_config(cfg, str(output_dir), bf16=bf16, device=device),
                         train_dataset=dataset, processing_class=setup.tokenizer, peft_config=start.peft_config,
                         callbacks=[_make_metrics_callback(writer)])
    setup.model = trainer.model  # the PEFT-wrapped model when TRL applied the LoRA config

    run_config = {
        "stage": "dpo", "status": "running", "alignment": dict(cfg), "config": dict(resolved_config or {}),
        "resumed_from": resume_dir, "backend": backend, "device": device,
        "dtype": "bf16 autocast" if bf16 else "float32", "student": setup.kind, "start": str(cfg["adapter"]),
        "base_model": setup.base_model or "scratch", "reference": start.reference,
        "counts": {"pairs": len(pairs), "trained_pairs": len(dataset), "dropped_overlong": too_long},
        "parameters": parameter_counts(setup.model), "versions": library_versions(), "git": _git_commit(),
        "command": sys.argv, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(output_dir / RUN_CONFIG_FILE, run_config)
    started = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume_dir)
    finally:
        writer.close()
    margins = reward_margins(metrics_path)
    run_config.update(status="complete", final_step=int(trainer.state.global_step),
                      train_loss=float(result.training_loss), wall_s=round(time.perf_counter() - started, 2),
                      reward_margins=margins)
    final = _save_final(trainer, setup, output_dir, run_config)
    write_json_atomic(output_dir / RUN_CONFIG_FILE, run_config)
    log(f"DPO: {trainer.state.global_step} steps; reward margin {margins['first_margin']} (first log) -> "
        f"{margins['last_margin']} (last log)")
    return {"trained": True, "checkpoint_final": str(final), "metrics": str(metrics_path),
            "run_config": str(output_dir / RUN_CONFIG_FILE), "final_step": int(trainer.state.global_step),
            "train_loss": float(result.training_loss), **margins}
