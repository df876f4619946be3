"""Teacher-aligned preference pairs for DPO, built from an evaluation of the SFT student on the pref rows.

A pair says, for the prompt the student saw: the teacher's AST (chosen) is better than what the student wrote
(rejected). Pairs are in TRL's conversational preference format: ``prompt`` is the evaluated row's chat
messages (the ones ``prompting.build_prompt`` made for d_04), ``chosen`` and ``rejected`` one assistant message
each, the AST as ``prompting.build_completion`` renders it (the student's raw text when its output did not
parse: a broken output is exactly what DPO should push down). TRL applies the chat template to them as SFT
does to its prompt-completion rows, so DPO scores the same token sequences SFT trained on, ending with the
template's end of turn and nothing after it (TRL appends an eos only to plain-text pairs).

DPO training (``train_dpo``) starts from the SFT result: a LoRA adapter is merged into its base
(``<output_dir>/sft-merged``) and a new adapter is trained on top (the reference is the merged model: the new
adapter disabled); the scratch student (a full model) is trained in full against a frozen copy of itself.
TRL's DPOTrainer computes the loss. The new adapter names its base relative to itself ("../sft-merged"), so
a run dir moved or copied elsewhere still loads with ``student.load_student``.
"""
from __future__ import annotations

import dataclasses

import random
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .jsonl import JsonlAppender, read_json, read_jsonl, write_json_atomic, write_jsonl_atomic
from .prompting import Messages, build_completion

# Why an evaluation row gave no pair, in the order the checks run.
DROP_REASONS = (
    "teacher_accepted",  # --only-rejected: the teacher held the student's output right
    "no_teacher_verdict",  # --only-rejected: the teacher gave no verdict on a wrong output
    "no_teacher_ast",  # the teacher wrote no AST to prefer
    "chosen_equals_rejected",  # both sides render to the same text: nothing to learn
    "over_max_pairs",  # left out by --max-pairs
)


def teacher_accepted(record: Mapping[str, Any]) -> bool | None:
    """The teacher's verdict on an evaluation row: True, False, or None when it gave none.

    evaluate_student.py writes True without a call when the output means the gold AST, and "error" when the
    judge call failed: that is None here, so such a row is never taken for a rejection (no pair).
    """
    verdict = record.get("teacher_verdict")
    return verdict if isinstance(verdict, bool) else None


def chosen_message(record: Mapping[str, Any]) -> Messages | None:
    """The teacher's AST as the assistant turn SFT trains on, or None when the row has no teacher AST."""
    ast = record.get("teacher_canonical")
    return build_completion(ast) if isinstance(ast, dict) else None


def rejected_message(record: Mapping[str, Any]) -> Messages:
    """The student's output as an assistant turn: its AST rendered as SFT's completions when it parsed, else
    its raw text."""
    ast = record.get("student_ast")
    if record.get("parsed") and isinstance(ast, dict):
        return build_completion(ast)
    return [{"role": "assistant", "content": str(record.get("student_raw") or "").strip()}]


def is_messages(value: Any) -> bool:
    """A non-empty list of chat messages {role, content: str}."""
    return isinstance(value, list) and bool(value) and all(
        isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str) for m in value)


def evaluated_prompts(records: Sequence[Mapping[str, Any]], dataset: str | Path | None) -> dict[str, Messages]:
    """id -> the chat messages each evaluation row's prompt was rendered from.

    evaluation_results.jsonl holds the rendered prompt_text only, so the messages come from the dataset the
    evaluation read (d_04), by row id; a record that carries its own "prompt" messages is taken as it is.
    """
    prompts = {str(r["id"]): list(r["prompt"]) for r in records if is_messages(r.get("prompt"))}
    if len(prompts) < len(records) and dataset:
        wanted = {str(r["id"]) for r in records} - prompts.keys()
        for row in read_jsonl(dataset):
            if str(row.get("id")) in wanted and is_messages(row.get("prompt")):
                prompts[str(row["id"])] = list(row["prompt"])
    return prompts


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


def _drop_reason(record: Mapping[str, Any], only_rejected: bool, chosen: Messages | None,
                 rejected: Messages) -> str | None:
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


def _pair_prompt(record: Mapping[str, Any], index: int, prompts: Mapping[str, Messages],
                 render: Callable[[Messages], str] | None, where: str) -> Messages:
    prompt = prompts.get(str(record["id"]))
    if prompt is None:
        raise UserError(f"{where}: row {index + 1} (id {record['id']}) has no prompt messages and the dataset holds "
                        f"no row with its id; pass the d_04 file the evaluation read (--dataset)")
    # The messages must be the ones the student was evaluated on, or DPO would train on another prompt.
    if render is not None and render(prompt) != record["prompt_text"]:
        raise UserError(f"{where}: row {index + 1} (id {record['id']}): the dataset's prompt for it renders to "
                        f"other text than the student was evaluated on; pass the --dataset and --adapter that "
                        f"evaluate_student.py used")
    return prompt


def build_pairs(records: Iterable[Mapping[str, Any]], prompts: Mapping[str, Messages], *,
                render: Callable[[Messages], str] | None = None, only_rejected: bool = True,
                max_pairs: int | None = None, seed: int = 0, where: str = "evaluation results") -> PairSet:
    """DPO pairs {id, schema_id, language, kind, prompt, chosen, rejected, ...} from evaluation rows.

    prompts: id -> the row's prompt messages (evaluated_prompts). render: the chat template of the evaluated
    checkpoint (student.prompt_text); when given, each kept pair's prompt must render to the row's prompt_text.
    Pair id = evaluation row id. With max_pairs, a seeded random subset is kept, in input order.
    """
    records = list(records)
    result = PairSet(pairs=[], n_rows=len(records))
    for index, record in enumerate(records):
        _check_record(record, index, where)
        chosen, rejected = chosen_message(record), rejected_message(record)
        reason = _drop_reason(record, only_rejected, chosen, rejected)
        if reason is not None:
            result.dropped[reason] += 1
            continue
        result.pairs.append({
            "id": record["id"], "schema_id": record.get("schema_id"), "split": record.get("split"),
            "language": record.get("language"), "kind": record.get("kind"),
            "prompt": _pair_prompt(record, index, prompts, render, where), "chosen": chosen, "rejected": rejected,
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
    """Build the pairs file from settings {eval_results, dataset, out, adapter, only_rejected, max_pairs, seed}.

    dataset: the d_04 file the evaluation read (the prompt messages, by row id). adapter: the evaluated
    checkpoint, whose chat template must render each pair's prompt to the text the student saw. Writes the
    pairs (empty when none are kept) and <pairs>.meta.json atomically; returns the counts.
    """
    from .student import load_tokenizer, prompt_text
    from .training import _git_commit, library_versions

    if not settings["adapter"]:
        raise UserError("no SFT checkpoint named: pass --adapter DIR or set alignment.adapter in the config")
    if settings["max_pairs"] is not None and settings["max_pairs"] < 0:
        raise UserError(f"--max-pairs must be 0 or more (unset = all), got {settings['max_pairs']}")
    records = read_jsonl(settings["eval_results"])
    if not records:
        raise UserError(f"{settings['eval_results']} holds no evaluation rows; run evaluate_student.py --split pref "
                        f"first")
    tokenizer = load_tokenizer(str(settings["adapter"]))
    result = build_pairs(records, evaluated_prompts(records, settings.get("dataset")),
                         render=lambda messages: prompt_text(tokenizer, messages),
                         only_rejected=bool(settings["only_rejected"]), max_pairs=settings["max_pairs"],
                         seed=int(settings["seed"]), where=str(settings["eval_results"]))
    write_jsonl_atomic(settings["out"], result.pairs)
    meta = {**result.counts(), "settings": dict(settings),
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
    "pairs_out", "adapter", "output_dir", "base_model", "max_steps", "max_minutes", "batch_size", "grad_accum",
    "learning_rate", "warmup_steps", "logging_steps", "save_steps", "save_total_limit", "beta", "load_in_4bit",
    "bf16", "max_seq_length", "lora_r", "lora_alpha", "lora_dropout", "seed",
)
MERGED_DIR = "sft-merged"  # the SFT adapter merged into its base: the new adapter's base and DPO's reference
# The base the DPO adapters name, relative to themselves: checkpoint-N and checkpoint-final sit beside
# sft-merged in output_dir, so the run dir loads wherever it is moved (student.adapter_base resolves it).
MERGED_BASE_REF = f"../{MERGED_DIR}"
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
        (float(cfg["max_minutes"]) >= 0, "--max-minutes must be >= 0 (0 = no time budget)"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"{message} (alignment settings)")


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
    from .student import adapter_base, load_student, load_tokenizer, merge_for_training

    recorded = adapter_base(adapter)
    if not base_model or base_model == "scratch" or _same_model_ref(base_model, recorded):
        model, tokenizer = merge_for_training(adapter)
        return model, tokenizer, recorded
    from peft import PeftModel

    base, _ = load_student(base_model, for_training=True)
    model = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    model.train()
    return model, load_tokenizer(adapter), base_model


def ensure_merged_base(adapter: str, base_model: str | None, output_dir: Path, log: Any = print) -> Path:
    """<output_dir>/sft-merged: the merged SFT model + tokenizer, written once (atomically) per adapter.

    The new DPO adapter names this dir as its base (MERGED_BASE_REF), so checkpoint-N and checkpoint-final
    load as merged SFT model + DPO adapter with student.load_student, wherever the run dir is.
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


def point_at_merged_base(checkpoint: str | Path) -> None:
    """Make a saved DPO adapter name its base as MERGED_BASE_REF (relative to itself); no-op for a full model."""
    path = Path(checkpoint) / "adapter_config.json"
    if path.is_file():
        config = read_json(path)
        if config.get("base_model_name_or_path") != MERGED_BASE_REF:
            write_json_atomic(path, {**config, "base_model_name_or_path": MERGED_BASE_REF})


def _merged_base_callback() -> Any:
    """Points each checkpoint-N the trainer saves at the merged base (checkpoint-final: training's final save)."""
    from transformers import TrainerCallback

    class PointAtMergedBase(TrainerCallback):
        def on_save(self, args, state, control, **kwargs):
            point_at_merged_base(Path(args.output_dir) / f"checkpoint-{state.global_step}")

    return PointAtMergedBase()


def pair_length(tokenizer: Any, pair: Mapping[str, Any]) -> int:
    """Tokens of the longer side: prompt + completion through the chat template, as TRL tokenizes it."""
    from .training import sequence_length

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
        return DpoStart(StudentSetup(model, tokenizer, "lora", MERGED_BASE_REF), None, None, reference)
    if cfg["load_in_4bit"]:
        log("note: load_in_4bit applies to the unsloth backend only; loading full weights")
    model, tokenizer = load_student(base_ref, for_training=True)
    # PEFT records this as the adapter's base and reads its config.json when saving (absolute, so it is
    # found from any cwd); each saved adapter is then pointed at MERGED_BASE_REF (point_at_merged_base).
    model.name_or_path = base_ref
    # setup.base_model: what checkpoint-final's adapter names (training's final save writes it there).
    return DpoStart(StudentSetup(model, tokenizer, "lora", MERGED_BASE_REF), None, _lora_config(cfg), reference)


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

    extra = [_merged_base_callback()] if start.setup.kind == "lora" else []
    trainer = DPOTrainer(model=start.setup.model, ref_model=start.ref_model,
                         args=dpo_config(cfg, str(output_dir), bf16=bf16, device=device),
                         train_dataset=dataset, processing_class=start.setup.tokenizer,
                         peft_config=start.peft_config, callbacks=[*callbacks, *extra])
    start.setup.model = trainer.model
    return trainer


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

    from .student import recorded_schema_format
    from .training import (METRICS_FILE, RUN_CONFIG_FILE, _git_commit, _make_metrics_callback,
                           _save_final, _trim_metrics, checkpoint_step, library_versions, parameter_counts,
                           resolve_resume, training_device)
    from .hardware import announce, decide_precision

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
    if resume_dir is not None:
        _trim_metrics(metrics_path, checkpoint_step(resume_dir))
    writer = JsonlAppender(metrics_path, fresh=resume_dir is None)
    callbacks = [_make_metrics_callback(writer)]
    budget = None
    if float(cfg["max_minutes"]) > 0:  # last: see budget.py
        from .budget import BUDGET_FILE, make_budget_callback

        if resume_dir is None:
            (output_dir / BUDGET_FILE).unlink(missing_ok=True)
        budget = make_budget_callback(float(cfg["max_minutes"]), output_dir, eval_every=0,
                                      save_every=int(cfg["save_steps"]), has_eval=False, log=log)
        callbacks.append(budget)
    trainer = build_dpo_trainer(cfg, start, dataset, output_dir, bf16=bf16, device=device, callbacks=callbacks)

    run_config = {
        "stage": "dpo", "status": "running", "alignment": dict(cfg), "config": dict(resolved_config or {}),
        # The prompts DPO trained on are the SFT corpus's: predict renders its own the same way.
        "schema_format": recorded_schema_format(str(cfg["adapter"])),
        "resumed_from": resume_dir, "backend": backend, "device": device,
        "dtype": "bf16 autocast" if bf16 else "float32", "precision": precision.record(),
        "student": setup.kind, "start": str(cfg["adapter"]),
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
                      reward_margins=margins,
                      time_budget=None if budget is None else dataclasses.asdict(budget.plan))
    final = _save_final(trainer, setup, output_dir, run_config)
    write_json_atomic(output_dir / RUN_CONFIG_FILE, run_config)
    log(f"DPO: {trainer.state.global_step} steps; reward margin {margins['first_margin']} (first log) -> "
        f"{margins['last_margin']} (last log)")
    return {"trained": True, "checkpoint_final": str(final), "metrics": str(metrics_path),
            "run_config": str(output_dir / RUN_CONFIG_FILE), "final_step": int(trainer.state.global_step),
            "train_loss": float(result.training_loss), **margins}
