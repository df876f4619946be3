"""DPO training on tiny students: weights move, the chosen-vs-rejected reward margin grows, LoRA starts get a new
adapter on the merged SFT model, and a run resumes from its checkpoint."""
from __future__ import annotations

import importlib.util
import json
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from helpers import make_tiny_corpus, make_tiny_lora_base, make_tiny_student

from ast_distill import cli, runs
from ast_distill.alignment.dpo import build_dpo_trainer, load_dpo_start, load_pairs, to_preference_dataset
from ast_distill.config import REPO_ROOT, load_config
from ast_distill.jsonl import read_json, read_jsonl, write_jsonl_atomic
from ast_distill.prompting import build_completion
from ast_distill.student.scratch import END_OF_TURN
from ast_distill.student import load_student, load_tokenizer, prompt_text

torch.set_num_threads(1)


def run_dpo(argv: list[str]) -> int:
    script = REPO_ROOT / "scripts" / "train_alignment_dpo.py"
    spec = importlib.util.spec_from_file_location("train_alignment_dpo", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return cli.run(module.main, module.build_parser(), argv)


def wrong_ast(ast: dict[str, Any]) -> dict[str, Any]:
    """A plausible mistake: a refusal where a query was due, a query where a refusal was due."""
    if ast["type"] == "refusal":
        return {"type": "query", "filter": {"field": "name", "op": "equals", "value": "flight"}}
    return {"type": "refusal", "reason": "not supported", "suggestion": "ask something else"}


def write_pairs(path: Path, n: int = 8) -> Path:
    """Conversational pairs as build_alignment_pairs.py writes them. The request alone as the prompt: the schema
    text would make every step ten times longer."""
    pairs = [{"id": row["id"], "prompt": [{"role": "user", "content": row["query"]}],
              "chosen": build_completion(row["ast"]), "rejected": build_completion(wrong_ast(row["ast"]))}
             for row in make_tiny_corpus(n, val_every=0)]
    write_jsonl_atomic(path, pairs)
    return path


def dpo_args(pairs: Path, start: str, out: Path, *extra: str) -> list[str]:
    return ["--config", "config/offline.json", "--pairs", str(pairs), "--adapter", start, "--output-dir", str(out),
            "--max-steps", "6", "--batch-size", "4", "--grad-accum", "1", "--learning-rate", "0.002",
            "--warmup-steps", "0", "--logging-steps", "1", "--save-steps", "0", "--beta", "0.1",
            "--max-seq-length", "1024", "--no-bf16", "--seed", "0", *extra]


def margins(run_dir: Path) -> list[float]:
    return [r["rewards/margins"] for r in read_jsonl(run_dir / "training_metrics.jsonl") if "rewards/margins" in r]


def weights(model: Any) -> dict[str, torch.Tensor]:
    return {name: p.detach().clone() for name, p in model.state_dict().items()}


def test_dpo_on_scratch_student_moves_weights_and_grows_the_reward_margin(tmp_path: Path) -> None:
    student = make_tiny_student(tmp_path)
    # Given the SFT run dir, DPO starts from its selected checkpoint (the sweep's checkpoint-best), not the final.
    sft_run = tmp_path / "sft"
    shutil.copytree(student, sft_run / "checkpoint-final")
    runs.install_best(sft_run, student, {"source": "checkpoint-7"})
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    before = weights(load_student(student, device="cpu")[0])
    out = tmp_path / "dpo"
    assert run_dpo(dpo_args(pairs, str(sft_run), out)) == 0
    assert read_json(out / "run_config.json")["alignment"]["adapter"] == str(sft_run / "checkpoint-best")

    model, _ = load_student(str(out / "checkpoint-final"), device="cpu")
    after = weights(model)
    moved = [name for name in before if not torch.equal(before[name], after[name])]
    assert len(moved) > len(before) // 2
    assert weights(load_student(student, device="cpu")[0]).keys() == before.keys()  # the start is left as it was
    logged = margins(out)
    assert len(logged) >= 6
    assert abs(logged[0]) < 1e-3  # step 1: the policy is still the reference
    assert logged[-1] > logged[0] + 0.05
    run_config = read_json(out / "run_config.json")
    assert run_config["status"] == "complete" and run_config["final_step"] == 6
    assert run_config["student"] == "scratch" and "frozen copy" in run_config["reference"]


def make_sft_adapter(tmp_path: Path) -> tuple[str, str]:
    """(base dir, SFT adapter dir): a LoRA adapter with non-zero weights on the tiny base, tokenizer saved."""
    from peft import LoraConfig, get_peft_model

    base = make_tiny_lora_base(tmp_path)
    model, tokenizer = load_student(base, device="cpu")
    torch.manual_seed(0)
    peft_model = get_peft_model(model, LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"],
                                                  task_type="CAUSAL_LM"))
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.5)  # a trained adapter: merging it changes the model
    adapter = tmp_path / "sft" / "checkpoint-final"
    peft_model.save_pretrained(adapter)
    tokenizer.save_pretrained(adapter)
    return base, str(adapter)


def test_lora_start_trains_a_new_adapter_on_the_merged_sft_model(tmp_path: Path) -> None:
    base, adapter = make_sft_adapter(tmp_path)
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "dpo"
    assert run_dpo(dpo_args(pairs, adapter, out, "--base-model", "scratch", "--lora-r", "4",
                            "--lora-alpha", "8", "--lora-dropout", "0.0", "--learning-rate", "0.01")) == 0

    merged_dir = out / "sft-merged"
    sft, _ = load_student(adapter, device="cpu")
    merged, _ = load_student(str(merged_dir), device="cpu")
    expected = weights(sft.merge_and_unload())
    assert all(torch.allclose(expected[k], v, atol=1e-6) for k, v in weights(merged).items())
    assert not torch.equal(weights(load_student(base, device="cpu")[0])["model.layers.0.self_attn.q_proj.weight"],
                           expected["model.layers.0.self_attn.q_proj.weight"])

    final = out / "checkpoint-final"
    adapter_config = json.loads((final / "adapter_config.json").read_text())
    assert adapter_config["base_model_name_or_path"] == "../sft-merged"  # relative: the run dir can move
    dpo_model, _ = load_student(str(final), device="cpu")
    trained_b = [p for name, p in dpo_model.named_parameters() if "lora_B" in name]
    assert trained_b and any(p.abs().sum() > 0 for p in trained_b)  # LoRA B starts at zero: it moved
    ids = torch.tensor([[2, 5, 9, 14, 20]])
    with torch.no_grad():
        assert not torch.allclose(dpo_model(ids).logits, merged(ids).logits)
    logged = margins(out)
    assert logged[-1] > logged[0]
    assert read_json(out / "run_config.json")["student"] == "lora"


def test_resume_from_a_dpo_checkpoint_reaches_the_same_final_step(tmp_path: Path) -> None:
    student = make_tiny_student(tmp_path)
    pairs = write_pairs(tmp_path / "pairs.jsonl")
    out = tmp_path / "dpo"
    args = dpo_args(pairs, student, out, "--max-steps", "4", "--save-steps", "2", "--save-total-limit", "0")
    assert run_dpo(args) == 0
    full_run = [r["step"] for r in read_jsonl(out / "training_metrics.jsonl") if "loss" in r]
    # as if killed after checkpoint-2 was written
    shutil.rmtree(out / "checkpoint-4")
    shutil.rmtree(out / "checkpoint-final")
    assert run_dpo(args + ["--resume-from-checkpoint", "auto"]) == 0

    run_config = read_json(out / "run_config.json")
    assert run_config["resumed_from"] == str(out / "checkpoint-2")
    assert run_config["final_step"] == 4
    assert read_json(out / "checkpoint-final" / "run_config.json")["final_step"] == 4
    resumed = [r["step"] for r in read_jsonl(out / "training_metrics.jsonl") if "loss" in r]
    assert resumed == full_run  # steps 3 and 4 logged again once, nothing duplicated


def test_bad_resume_path_and_bad_pairs_are_one_line_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    student = make_tiny_student(tmp_path)
    pairs = write_pairs(tmp_path / "pairs.jsonl", n=2)
    assert run_dpo(dpo_args(pairs, student, tmp_path / "dpo", "--resume-from-checkpoint", str(tmp_path))) == 2
    assert "not a trainer checkpoint" in capsys.readouterr().err
    bad = tmp_path / "bad.jsonl"
    write_jsonl_atomic(bad, [{"id": "x", "prompt": "p", "chosen": "c", "rejected": "r"}])  # the old text format
    assert run_dpo(dpo_args(bad, student, tmp_path / "dpo")) == 2
    err = capsys.readouterr().err
    assert "has no 'prompt' chat messages" in err and "rebuild the pairs" in err and len(err.strip().splitlines()) == 1
    write_jsonl_atomic(bad, [{"id": "x", "prompt": [{"role": "user", "content": "p"}], "chosen": build_completion({})}])
    assert run_dpo(dpo_args(bad, student, tmp_path / "dpo")) == 2
    assert "has no 'rejected' as one assistant message" in capsys.readouterr().err
    assert run_dpo(dpo_args(pairs, str(tmp_path / "missing"), tmp_path / "dpo")) == 2
    assert "missing" in capsys.readouterr().err


def dpo_cfg(tmp_path: Path, start: str, pairs: Path) -> dict[str, Any]:
    """Resolved alignment settings (as train_alignment_dpo.py resolves them) for a tiny run."""
    cfg = dict(load_config(REPO_ROOT / "config" / "offline.json")["alignment"])
    cfg.update(pairs_out=str(pairs), adapter=start, output_dir=str(tmp_path / "dpo"), max_seq_length=4096,
               bf16=False, load_in_4bit=False, max_steps=1, batch_size=1, save_steps=0)
    return cfg


def dpo_tokenized(cfg: dict[str, Any], tokenizer: Any = None) -> dict[str, Any]:
    """The first pair as DPO trains on it: TRL's DPOTrainer tokenizes the dataset when it is built."""
    start = load_dpo_start(cfg, "hf", Path(cfg["output_dir"]), log=lambda *_: None)
    if tokenizer is not None:
        start.setup.tokenizer = tokenizer
    dataset, _ = to_preference_dataset(load_pairs(cfg["pairs_out"]), start.setup.tokenizer, cfg["max_seq_length"])
    trainer = build_dpo_trainer(cfg, start, dataset, Path(cfg["output_dir"]), bf16=False, device="cpu")
    return trainer.train_dataset[0]


def sft_tokens(tmp_path: Path, student: str, row: dict[str, Any]) -> tuple[list[int], list[int]]:
    """(prompt ids, completion ids) of a d_04 row as SFT trains on it: TRL's SFTTrainer over training.to_dataset."""
    from trl import SFTConfig, SFTTrainer

    from ast_distill.training.data import to_dataset

    model, tokenizer = load_student(student, device="cpu", for_training=True)
    args = SFTConfig(output_dir=str(tmp_path / "sft"), completion_only_loss=True, max_length=4096, report_to="none",
                     use_cpu=True)
    example = SFTTrainer(model=model, args=args, train_dataset=to_dataset([row]),
                         processing_class=tokenizer).train_dataset[0]
    pairs = list(zip(example["input_ids"], example["labels"]))  # label -100: a prompt token, not trained on
    return [i for i, label in pairs if label == -100], [i for i, label in pairs if label != -100]


def test_dpo_trains_on_the_sft_completion_tokens_ending_at_end_of_turn_with_no_eos(tmp_path: Path) -> None:
    student = make_tiny_student(tmp_path)
    row = make_tiny_corpus(1)[0]
    pairs = tmp_path / "pairs.jsonl"
    write_jsonl_atomic(pairs, [{"id": row["id"], "prompt": row["prompt"], "chosen": row["completion"],
                                "rejected": build_completion(wrong_ast(row["ast"]))}])
    tokenized = dpo_tokenized(dpo_cfg(tmp_path, student, pairs))
    sft_prompt, sft_completion = sft_tokens(tmp_path, student, row)
    tokenizer = load_tokenizer(student)

    at_inference = tokenizer(prompt_text(tokenizer, row["prompt"]), add_special_tokens=False)["input_ids"]
    assert tokenized["prompt_ids"] == sft_prompt == at_inference
    assert tokenized["chosen_ids"] == sft_completion  # the teacher's AST: exactly what SFT supervises
    end = tokenizer(END_OF_TURN + "\n", add_special_tokens=False)["input_ids"]
    for side in ("chosen_ids", "rejected_ids"):
        assert tokenized[side][-len(end):] == sft_completion[-len(end):] == end  # no eos after the end of turn
        assert tokenizer.eos_token_id not in tokenized[side]


def test_dpo_prompt_tokens_match_inference_when_the_tokenizer_adds_bos_itself(tmp_path: Path) -> None:
    from tokenizers.processors import TemplateProcessing

    student = make_tiny_student(tmp_path)
    pairs = write_pairs(tmp_path / "pairs.jsonl", n=1)
    tokenizer = load_tokenizer(student)
    tokenizer._tokenizer.post_processor = TemplateProcessing(  # like Gemma's: <bos> before every text
        single="<bos> $A", special_tokens=[("<bos>", tokenizer.bos_token_id)])
    text = prompt_text(tokenizer, load_pairs(pairs)[0]["prompt"])
    assert tokenizer(text)["input_ids"][:2] == [tokenizer.bos_token_id] * 2  # plain text would double it
    tokenized = dpo_tokenized(dpo_cfg(tmp_path, student, pairs), tokenizer)
    assert tokenized["prompt_ids"] == tokenizer(text, add_special_tokens=False)["input_ids"]  # one <bos>


def test_a_moved_dpo_run_dir_still_loads_its_checkpoints_and_keeps_the_sft_schema_format(tmp_path: Path) -> None:
    outputs = tmp_path / "outputs"
    _, adapter = make_sft_adapter(outputs)
    (Path(adapter).parent / "run_config.json").write_text(json.dumps({"stage": "sft", "schema_format": "json"}))
    pairs = write_pairs(outputs / "pairs.jsonl")
    out = outputs / "dpo"
    assert run_dpo(dpo_args(pairs, adapter, out, "--base-model", "scratch", "--max-steps", "2", "--save-steps", "1",
                            "--save-total-limit", "0", "--lora-r", "4", "--lora-alpha", "8",
                            "--lora-dropout", "0.0", "--learning-rate", "0.01")) == 0
    ids = torch.tensor([[2, 5, 9, 14, 20]])
    names = ("checkpoint-1", "checkpoint-final")
    with torch.no_grad():
        before = {name: load_student(str(out / name), device="cpu")[0](ids).logits for name in names}
    moved = tmp_path / "elsewhere"
    shutil.copytree(outputs, moved)
    shutil.rmtree(outputs)  # the SFT adapter, its base and the old sft-merged are gone

    for name in names:
        folder = moved / "dpo" / name
        assert read_json(folder / "adapter_config.json")["base_model_name_or_path"] == "../sft-merged"
        model, _ = load_student(str(folder), device="cpu")
        with torch.no_grad():
            assert torch.allclose(model(ids).logits, before[name])
    assert read_json(moved / "dpo" / "checkpoint-final" / "run_config.json")["schema_format"] == "json"
    assert read_json(moved / "dpo" / "run_config.json")["schema_format"] == "json"
