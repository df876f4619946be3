"""The SFT stage: masking, learning, resume, over-long rows, honest splits, checkpoints that load anywhere."""
from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from helpers import make_tiny_corpus, make_tiny_lora_base, write_tiny_schemas
from transformers import TrainerCallback

from ast_distill.config import REPO_ROOT, load_config
from ast_distill.errors import UserError
from ast_distill.jsonl import read_jsonl, write_jsonl_atomic
from ast_distill.student.scratch import END_OF_TURN
from ast_distill.student.models import resolve_backend
from ast_distill.training import train_sft
from ast_distill.training.data import padding_share, select_rows
from ast_distill.training.stage import prepare
from ast_distill.training.trainer import build_trainer

torch.set_num_threads(1)

TINY_TRAINING = {
    "base_model": "scratch", "backend": "hf", "max_seq_length": 1024, "batch_size": 4, "grad_accum": 1,
    "learning_rate": 3e-3, "lr_scheduler_type": "constant", "warmup_steps": 0, "weight_decay": 0.0,
    "max_steps": 8, "eval_steps": 4, "save_steps": 4, "logging_steps": 1, "save_total_limit": 3,
    "early_stop_patience": 0, "load_in_4bit": False, "bf16": False, "sample_generations": 1,
    "eval_max_samples": 4, "scratch_hidden_size": 32, "scratch_num_layers": 2, "scratch_num_heads": 2,
    "scratch_num_kv_heads": 1, "scratch_head_dim": 16, "scratch_intermediate_size": 64,
    "scratch_vocab_size": 400, "torch_threads": 1,
}


def tiny_cfg(tmp_path: Path, rows: list[dict] | None = None, **overrides) -> dict:
    corpus = tmp_path / "d04.jsonl"
    write_jsonl_atomic(corpus, rows if rows is not None else make_tiny_corpus(40))
    cfg = dict(load_config()["training"], **TINY_TRAINING)
    cfg.update(training_corpus=str(corpus), output_dir=str(tmp_path / "run"), **overrides)
    return cfg


class Snapshot(TrainerCallback):
    """Keeps a copy of one weight at the start and at the end of training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = model.get_input_embeddings().weight.detach().clone()

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = model.get_input_embeddings().weight.detach().clone()


class Crash(TrainerCallback):
    """Simulates a killed run: raises once training passed a step (after that step's checkpoint)."""

    def __init__(self, at_step: int) -> None:
        self.at_step = at_step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.at_step:
            raise RuntimeError("killed")


def _quiet(*_args) -> None:
    pass


def test_collated_batch_masks_the_prompt_and_supervises_completion_and_stop_token(tmp_path):
    cfg = tiny_cfg(tmp_path, group_by_length=False)
    prep = prepare(cfg, read_jsonl(cfg["training_corpus"]))
    prep = dataclasses.replace(prep, train_rows=prep.train_rows[:4], val_rows=[], bf16=False, device="cpu")
    trainer = build_trainer(cfg, prep.setup, prep, str(tmp_path / "out"))
    batch = next(iter(trainer.get_train_dataloader()))
    tok = prep.setup.tokenizer
    end_of_turn = tok.convert_tokens_to_ids(END_OF_TURN)
    completions = {r["completion"][0]["content"] for r in prep.train_rows[:4]}
    for ids, labels, mask in zip(batch["input_ids"], batch["labels"], batch["attention_mask"]):
        supervised = labels != -100
        first = int(supervised.nonzero()[0])
        prompt_part = tok.decode(ids[:first])
        assert prompt_part.endswith("<start_of_turn>model\n")  # every prompt token is masked
        assert torch.equal(labels[supervised], ids[supervised])
        assert bool(supervised[first:int(mask.sum())].all())  # the whole completion is supervised
        assert not bool(supervised[mask == 0].any())  # padding is not
        text = tok.decode(ids[supervised])
        assert text.endswith(END_OF_TURN + "\n")
        assert text[:-len(END_OF_TURN) - 1] in completions
        assert end_of_turn in ids[supervised].tolist()


def test_chained_requests_supervise_every_answer_and_stop_token_but_no_request(tmp_path):
    cfg = tiny_cfg(tmp_path, group_by_length=False, requests_per_sequence=3, max_steps=4, batch_size=2)
    prep = prepare(cfg, read_jsonl(cfg["training_corpus"]))
    assert prep.conversations is not None and prep.passes >= 1
    assert len(prep.conversations) * 3 >= len(prep.train_rows)  # every row in some conversation
    trainer = build_trainer(cfg, prep.setup, dataclasses.replace(prep, val_rows=[]), str(tmp_path / "out"))
    batch = next(iter(trainer.get_train_dataloader()))
    tok = prep.setup.tokenizer
    completions = {r["completion"][0]["content"] for r in prep.train_rows}
    queries = [r["query"] for r in prep.train_rows]
    for ids, labels in zip(batch["input_ids"], batch["labels"]):
        supervised = (labels != -100).tolist()
        spans, current = [], []
        for token, keep in zip(ids.tolist(), supervised):
            if keep:
                current.append(token)
            elif current:
                spans.append(tok.decode(current))
                current = []
        if current:
            spans.append(tok.decode(current))
        text = tok.decode(ids)
        assert len(spans) == text.count("<start_of_turn>model") >= 2  # one supervised span per answer
        for span in spans:
            assert span.endswith(END_OF_TURN) and span[:-len(END_OF_TURN)] in completions
        assert text.count("Schema:") == 1 and text.count("Request: ") == len(spans)
        assert not any(q in span for q in queries for span in spans)


def test_chained_requests_fit_max_seq_length_and_keep_one_schema_per_conversation():
    from ast_distill.training.data import chain_requests

    rows = [{"schema_id": f"s{i % 2}", "query": f"q{i}", "prompt": [{"role": "user", "content": f"S{i % 2} q{i}"}],
             "completion": [{"role": "assistant", "content": f"a{i}"}]} for i in range(20)]
    conversations, lengths = chain_requests(rows, [10] * 20, [4] * 20, per_sequence=5, max_seq_length=22,
                                            passes=2, seed=0)
    assert max(lengths) <= 22 and sum(len(c) for c in conversations) == 2 * 20 * 2
    for messages in conversations:
        assert len({m["content"][1] for m in messages if m["content"].startswith("S")}) == 1  # one opening turn
        assert len({int(m["content"][1:]) % 2 for m in messages if m["role"] == "assistant"}) == 1  # one schema


def test_training_moves_weights_lowers_loss_and_writes_a_plain_transformers_checkpoint(tmp_path):
    write_tiny_schemas(tmp_path / "d02.jsonl")
    cfg = tiny_cfg(tmp_path, max_steps=12, eval_steps=6, save_steps=6)
    snap = Snapshot()
    out = train_sft(cfg, final_schemas=str(tmp_path / "d02.jsonl"), extra_callbacks=[snap], log=_quiet)

    assert not torch.allclose(snap.before, snap.after)
    records = read_jsonl(out["metrics"])
    losses = [r["loss"] for r in records if "loss" in r]
    assert len(losses) >= 10 and sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    evals = [r for r in records if "eval_loss" in r]
    assert [r["step"] for r in evals] == [6, 12]
    samples = [r for r in records if "samples" in r]
    assert samples and set(samples[0]["samples"][0]) == {"query", "output", "parsed", "schema_valid"}
    assert samples[0]["samples"][0]["schema_valid"] is not None  # the schema was found in d_02

    run_config = json.loads(Path(out["run_config"]).read_text())
    assert run_config["status"] == "complete" and run_config["final_step"] == 12
    assert run_config["counts"]["dropped_overlong_train"] == 0
    assert set(run_config["padding_share_estimate"]) == {"bucketed", "random"}
    assert 0.0 <= run_config["measured"]["padding_share"] < 1.0
    assert run_config["versions"]["trl"] and run_config["parameters"]["trainable"] > 0

    # A fresh interpreter, without this project, loads and runs checkpoint-final with plain transformers.
    code = (
        "import sys, torch\n"
        "from transformers import AutoModelForCausalLM, AutoTokenizer\n"
        f"p = {out['checkpoint_final']!r}\n"
        "tok = AutoTokenizer.from_pretrained(p); model = AutoModelForCausalLM.from_pretrained(p)\n"
        "msgs = [{'role': 'user', 'content': 'products above 12 euros'}]\n"
        "ids = tok.apply_chat_template(msgs, add_generation_prompt=True, return_tensors='pt', return_dict=True)\n"
        "out = model.generate(**ids, max_new_tokens=4, do_sample=False)\n"
        "assert out.shape[1] > ids['input_ids'].shape[1]\n"
        "assert 'ast_distill' not in sys.modules\n"
        "print(type(model).__name__)\n"
    )
    result = subprocess.run(check=False, args=[sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().endswith("Gemma3ForCausalLM")


def test_killed_run_resumes_from_its_checkpoint_and_reaches_the_same_final_step(tmp_path):
    cfg = tiny_cfg(tmp_path, max_steps=8, save_steps=4, eval_steps=4, sample_generations=0)
    with pytest.raises(RuntimeError, match="killed"):
        train_sft(cfg, extra_callbacks=[Crash(at_step=6)], log=_quiet)
    run = Path(cfg["output_dir"])
    assert (run / "checkpoint-4").is_dir() and not (run / "checkpoint-final").exists()

    out = train_sft(cfg, resume="auto", log=_quiet)
    assert out["final_step"] == 8
    run_config = json.loads((run / "run_config.json").read_text())
    assert run_config["resumed_from"].endswith("checkpoint-4")
    steps = [r["step"] for r in read_jsonl(out["metrics"]) if "loss" in r]
    assert steps == sorted(set(steps)) and steps[-1] == 8  # no step logged twice after the resume


def test_cosine_floor_holds_the_last_learning_rate_at_its_share_of_the_peak(tmp_path):
    cfg = tiny_cfg(tmp_path, lr_scheduler_type="cosine_with_min_lr", min_lr_rate=0.25, warmup_steps=0, max_steps=8)
    prep = prepare(cfg, read_jsonl(cfg["training_corpus"]))
    trainer = build_trainer(cfg, prep.setup, dataclasses.replace(prep, val_rows=[]), str(tmp_path / "out"))
    trainer.create_optimizer_and_scheduler(num_training_steps=8)
    rates = []
    for _ in range(8):
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
        rates.append(trainer.lr_scheduler.get_last_lr()[0])
    assert rates == sorted(rates, reverse=True)
    assert rates[-1] == pytest.approx(0.25 * 3e-3)


def test_a_learning_rate_floor_without_a_floor_scheduler_is_refused_with_a_user_error(tmp_path):
    cfg = tiny_cfg(tmp_path, lr_scheduler_type="cosine", min_lr_rate=0.1)
    with pytest.raises(UserError, match="cosine_with_min_lr"):
        prepare(cfg, read_jsonl(cfg["training_corpus"]))


def test_muon_steps_the_hidden_matrices_and_adamw_the_embeddings_and_norms_on_one_schedule(tmp_path):
    cfg = tiny_cfg(tmp_path, optimizer="muon", muon_learning_rate=0.02, lr_scheduler_type="cosine_with_min_lr",
                   min_lr_rate=0.25, warmup_steps=0, max_steps=8)
    prep = prepare(cfg, read_jsonl(cfg["training_corpus"]))
    trainer = build_trainer(cfg, prep.setup, dataclasses.replace(prep, val_rows=[]), str(tmp_path / "out"))
    trainer.create_optimizer_and_scheduler(num_training_steps=8)
    muon, adamw = trainer.optimizer.inner
    assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
    model = prep.setup.model
    in_muon = {id(p) for g in muon.param_groups for p in g["params"]}
    in_adamw = {id(p) for g in adamw.param_groups for p in g["params"]}
    assert id(model.model.layers[0].self_attn.q_proj.weight) in in_muon
    assert id(model.model.layers[0].mlp.down_proj.weight) in in_muon
    assert id(model.get_input_embeddings().weight) in in_adamw  # tied to the output head
    assert id(model.model.norm.weight) in in_adamw
    assert in_muon | in_adamw == {id(p) for p in model.parameters()} and not in_muon & in_adamw
    for _ in range(8):
        trainer.optimizer.step()
        trainer.lr_scheduler.step()
    assert trainer.lr_scheduler.get_last_lr() == pytest.approx([0.25 * 0.02, 0.25 * 3e-3])


class MatrixSnapshot(TrainerCallback):
    """A copy of the first attention query matrix at the start and at the end of training."""

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        self.before = model.model.layers[0].self_attn.q_proj.weight.detach().clone()

    def on_train_end(self, args, state, control, model=None, **kwargs):
        self.after = model.model.layers[0].self_attn.q_proj.weight.detach().clone()


def test_a_killed_muon_run_resumes_and_its_matrices_moved_and_loss_fell(tmp_path):
    cfg = tiny_cfg(tmp_path, optimizer="muon", max_steps=12, save_steps=4, eval_steps=4, sample_generations=0)
    with pytest.raises(RuntimeError, match="killed"):
        train_sft(cfg, extra_callbacks=[Crash(at_step=6)], log=_quiet)
    snap = MatrixSnapshot()
    out = train_sft(cfg, resume="auto", extra_callbacks=[snap], log=_quiet)
    assert out["final_step"] == 12
    assert not torch.allclose(snap.before, snap.after)  # Muon moved the matrix after the resume
    state = torch.load(Path(cfg["output_dir"]) / "checkpoint-12" / "optimizer.pt", weights_only=True)
    assert [len(inner["state"]) > 0 for inner in state["inner"]] == [True, True]  # both optimizers' moments
    losses = [r["loss"] for r in read_jsonl(out["metrics"]) if "loss" in r]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3


def test_an_unknown_optimizer_is_refused_with_a_user_error(tmp_path):
    cfg = tiny_cfg(tmp_path, optimizer="sgd")
    with pytest.raises(UserError, match="adamw, muon"):
        prepare(cfg, read_jsonl(cfg["training_corpus"]))


def test_a_compiled_run_pads_every_batch_to_max_seq_length_and_drops_a_short_last_batch(tmp_path):
    # "always": this test is about the compiled path's shapes, whatever this CPU's measured fast path is
    cfg = tiny_cfg(tmp_path, torch_compile="always", requests_per_sequence=2, max_seq_length=512, batch_size=3)
    prep = prepare(cfg, read_jsonl(cfg["training_corpus"]))
    trainer = build_trainer(cfg, prep.setup, dataclasses.replace(prep, val_rows=[]), str(tmp_path / "out"))
    shapes = {tuple(batch["input_ids"].shape) for batch in trainer.get_train_dataloader()}
    assert shapes == {(3, 512)}  # one shape: one compile
    assert trainer.args.torch_compile
    val = prep.val_rows[:5]
    assert val
    trainer = build_trainer(cfg, prep.setup, dataclasses.replace(prep, val_rows=val), str(tmp_path / "out2"))
    eval_shapes = [tuple(batch["input_ids"].shape) for batch in trainer.get_eval_dataloader()]
    assert eval_shapes == [(1, 512)] * len(val)  # eval: one row at a time, none dropped


@pytest.mark.slow
def test_a_compiled_run_learns_and_saves_a_checkpoint_without_compiler_prefixes(tmp_path):
    cfg = tiny_cfg(tmp_path, torch_compile="always", requests_per_sequence=2, max_seq_length=512, max_steps=10,
                   eval_steps=5, save_steps=5, sample_generations=0)
    snap = Snapshot()
    out = train_sft(cfg, extra_callbacks=[snap], log=_quiet)
    assert out["final_step"] == 10 and not torch.allclose(snap.before, snap.after)
    assert [r["step"] for r in read_jsonl(out["metrics"]) if "eval_loss" in r] == [5, 10]
    losses = [r["loss"] for r in read_jsonl(out["metrics"]) if "loss" in r]
    assert sum(losses[-3:]) / 3 < sum(losses[:3]) / 3
    from safetensors.torch import load_file
    names = load_file(str(Path(out["checkpoint_final"]) / "model.safetensors"))
    assert "model.embed_tokens.weight" in names and not any("_orig_mod" in n for n in names)


def test_overlong_corpus_exits_2_with_a_one_line_error(tmp_path):
    cfg_path = tmp_path / "cfg.json"
    cfg = tiny_cfg(tmp_path)
    cfg_path.write_text(json.dumps({"training": {**TINY_TRAINING, "max_seq_length": 64,
                                                 "training_corpus": cfg["training_corpus"],
                                                 "output_dir": cfg["output_dir"]}}))
    result = subprocess.run(check=False, args=[sys.executable, str(REPO_ROOT / "scripts" / "train_student.py"),
                             "--config", str(cfg_path)], capture_output=True, text=True, timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "max_seq_length=64" in errors[0]
    assert "Traceback" not in result.stderr
    assert not Path(cfg["output_dir"], "checkpoint-final").exists()


def test_rows_of_pref_and_test_splits_are_never_trained_on():
    rows = make_tiny_corpus(20)
    for i, row in enumerate(rows):
        row["split"] = ["train", "val", "pref", "test"][i % 4]
    split = select_rows(rows, val_split=0.1, eval_max_samples=None, max_samples=None, seed=0)
    assert {r["split"] for r in split.train} == {"train"}
    assert {r["split"] for r in split.val} == {"val"}
    assert split.counts["never_trained_rows"] == 10


def test_without_val_rows_a_seeded_share_of_train_is_held_out_and_val_split_0_disables_eval():
    rows = make_tiny_corpus(40, val_every=0)
    split = select_rows(rows, val_split=0.1, eval_max_samples=None, max_samples=None, seed=3)
    assert len(split.val) == 4 and len(split.train) == 36
    assert not {r["id"] for r in split.val} & {r["id"] for r in split.train}
    again = select_rows(rows, val_split=0.1, eval_max_samples=None, max_samples=None, seed=3)
    assert [r["id"] for r in again.val] == [r["id"] for r in split.val]
    assert select_rows(rows, val_split=0.0, eval_max_samples=None, max_samples=None, seed=3).val == []


def test_length_bucketing_cuts_the_padding_share():
    lengths = [20 + (i * 37) % 400 for i in range(512)]
    bucketed = padding_share(lengths, 8, True, seed=0)
    random_order = padding_share(lengths, 8, False, seed=0)
    assert 0.0 <= bucketed < random_order / 3
    assert padding_share([10] * 16, 4, False) == 0.0


def test_unsloth_is_not_used_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert resolve_backend("auto", "unsloth/gemma-3-270m-it") == "hf"
    assert resolve_backend("auto", "scratch") == "hf"
    with pytest.raises(UserError, match="CUDA"):
        resolve_backend("unsloth", "unsloth/gemma-3-270m-it")
    assert "unsloth" not in sys.modules


def test_lora_on_a_local_base_saves_an_adapter_that_plain_peft_loads(tmp_path):
    base = make_tiny_lora_base(tmp_path)
    cfg = tiny_cfg(tmp_path, base_model=base, max_steps=2, save_steps=0, val_split=0.0, lora_r=4, lora_alpha=8,
                   learning_rate=1e-2)
    out = train_sft(cfg, log=_quiet)
    final = Path(out["checkpoint_final"])
    adapter = json.loads((final / "adapter_config.json").read_text())
    assert adapter["base_model_name_or_path"] == str(Path(base).resolve())
    assert set(adapter["target_modules"]) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"}
    code = (
        "import sys, torch\n"
        "from peft import AutoPeftModelForCausalLM\n"
        "from transformers import AutoTokenizer\n"
        f"p = {str(final)!r}\n"
        "model = AutoPeftModelForCausalLM.from_pretrained(p); tok = AutoTokenizer.from_pretrained(p)\n"
        "lora = [n for n, _ in model.named_parameters() if 'lora_B' in n]\n"
        "assert lora and any(bool(p.abs().sum() > 0) for n, p in model.named_parameters() if 'lora_B' in n)\n"
        "assert 'ast_distill' not in sys.modules\n"
        "print('ok', len(lora))\n"
    )
    result = subprocess.run(check=False, args=[sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip().startswith("ok")


def test_lora_top_layers_adapts_only_the_last_layers_and_they_train(tmp_path):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    base = make_tiny_lora_base(tmp_path)  # 2 decoder layers
    cfg = tiny_cfg(tmp_path, base_model=base, max_steps=2, save_steps=0, val_split=0.0, lora_r=4, lora_alpha=8,
                   learning_rate=1e-2, lora_top_layers=1)
    out = train_sft(cfg, log=_quiet)
    final = Path(out["checkpoint_final"])
    assert json.loads((final / "adapter_config.json").read_text())["layers_to_transform"] == [1]
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), final)
    lora_b = {n: p for n, p in model.named_parameters() if "lora_B" in n}
    assert lora_b and all(".layers.1." in n for n in lora_b)
    assert any(bool(p.abs().sum() > 0) for p in lora_b.values())  # B starts at zero: the kept layer trained
