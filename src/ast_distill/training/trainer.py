"""The SFT trainer: TRL's SFTTrainer configured from the training settings, counting the tokens it trains on,
and logging a few greedy sample generations at each eval.

The dataset goes to TRL in its conversational prompt-completion form, so TRL masks the prompt
(completion_only_loss) and the chat template's end of turn closes every supervised completion. Chained
conversations (requests_per_sequence > 1) go as messages, and TRL's assistant_only_loss supervises every
answer. TRL is imported inside functions, after Unsloth when Unsloth is the backend.
"""
from __future__ import annotations

import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import UserError
from ..jsonl import JsonlAppender
from ..settings import TrainingSettings, check_ranges
from ..student.models import StudentSetup
from ..student.chat import END_OF_TURN
from .data import to_conversation_dataset, to_dataset

if TYPE_CHECKING:
    from .stage import Prepared

SAMPLE_MAX_NEW_TOKENS = 512  # cap for the sample generations logged at each eval (else gold length + 24)


def load_schemas(path: str | None) -> dict[str, dict[str, Any]]:
    """{schema_id: schema} from a d_02 file; empty when the file is missing (validity is then skipped)."""
    if not path or not Path(path).is_file():
        return {}
    from ..dsl import load_schemas as read_schemas

    return read_schemas(path)


def generate_samples(model: Any, tokenizer: Any, rows: list[dict[str, Any]],
                     schemas: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """Greedy outputs for rows' prompts, decoded and parsed as the evaluation stage does (StudentGenerator,
    scoring.parse_output): {query, output, parsed, schema_valid (None when the schema is unknown)}."""
    from ..dsl import validation_error
    from ..generation import StudentGenerator
    from ..scoring import parse_output
    from ..student import prompt_text, stop_token_ids

    was_training = model.training
    generator = StudentGenerator(model, tokenizer, stop_token_ids=stop_token_ids(tokenizer))  # eval mode
    samples = []
    try:
        for row in rows:
            gold = len(tokenizer(row["completion"][0]["content"], add_special_tokens=False)["input_ids"])
            generation = generator.generate_batch([generator.encode(prompt_text(tokenizer, row["prompt"]))], [None],
                                                  max_new_tokens=min(SAMPLE_MAX_NEW_TOKENS, gold + 24))[0]
            output = generation.text.strip()
            parsed, ast = parse_output(output)
            schema = schemas.get(str(row.get("schema_id")))
            valid = None if schema is None else bool(parsed and validation_error(schema, ast) is None)
            samples.append({"query": row.get("query"), "output": output, "parsed": parsed, "schema_valid": valid})
    finally:
        model.train(was_training)
    return samples


def samples_callback(writer: JsonlAppender, tokenizer: Any, rows: list[dict[str, Any]],
                     schemas: dict[str, dict[str, Any]]) -> Any:
    """At each eval, a few greedy generations on val prompts: {step, samples: [...]}."""
    from transformers import TrainerCallback

    class SampleGenerationCallback(TrainerCallback):
        def on_evaluate(self, args, state, control, model=None, **kwargs):
            if rows and model is not None:
                writer.write({"step": state.global_step, "samples": generate_samples(model, tokenizer, rows, schemas)})
                writer.flush()

    return SampleGenerationCallback()


def counting_trainer_class() -> type:
    """SFTTrainer that counts real vs padded tokens of the batches it trains on and times eval/saves.

    Defined on first use so that TRL is imported after Unsloth when Unsloth is the backend.
    """
    from trl import SFTTrainer

    from ..distributed import CpuResumeMixin

    class CountingSFTTrainer(CpuResumeMixin, SFTTrainer):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self.token_counts = {"real": 0, "slots": 0, "answers": 0}
            # every supervised answer ends with one supervised end-of-turn token: counting them counts answers
            self.stop_id = self.processing_class.convert_tokens_to_ids(END_OF_TURN)
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


def scheduler_kwargs(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """transformers' lr_scheduler_kwargs: the cosine floor (min_lr_rate, a share of the peak rate) when the
    scheduler has one (in the range settings.TrainingSettings declares). A floor set for a scheduler without one
    is an error rather than silently ignored."""
    rate = float(cfg.get("min_lr_rate") or 0.0)
    if cfg["lr_scheduler_type"] == MIN_LR_SCHEDULER:
        check_ranges(TrainingSettings, {"min_lr_rate": rate},
                     "training.{key} is {value}: give a share of the peak learning rate {rule}")
        return {"min_lr_rate": rate}
    if rate:
        raise UserError(f"training.min_lr_rate is {rate} but lr_scheduler_type is {cfg['lr_scheduler_type']!r}: "
                        f"the floor needs lr_scheduler_type {MIN_LR_SCHEDULER!r} (or set min_lr_rate to 0)")
    return {}


def sft_config(cfg: Mapping[str, Any], output_dir: str, *, has_eval: bool, bf16: bool, device: str,
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


def compile_settings(cfg: Mapping[str, Any], torch_compile: bool) -> dict[str, Any]:
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


def build_trainer(cfg: Mapping[str, Any], setup: StudentSetup, prep: "Prepared", output_dir: str,
                  callbacks: list[Any] | None = None) -> Any:
    from transformers import EarlyStoppingCallback

    from ..student.optim import build_optimizer

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
    trainer_class = counting_trainer_class()
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
