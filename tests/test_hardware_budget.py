"""The measured fast path (bf16 / torch.compile decided per machine) and the training time budget."""
from __future__ import annotations

import json

import pytest
import torch
from test_training import TINY_TRAINING, _quiet, tiny_cfg

from ast_distill import hardware
from ast_distill.budget import BUDGET_FILE, fit_steps, refit_schedule
from ast_distill.config import load_config
from ast_distill.errors import UserError
from ast_distill.jsonl import read_json, read_jsonl
from ast_distill.student.optim import fp32_newton_schulz, newton_schulz_fp32
from ast_distill.training import train_sft

torch.set_num_threads(1)


def fake_cpu(monkeypatch, *, fp32: float, bf16: float, flags: list[str]) -> None:
    """This process's CPU, as the probe would measure it."""
    monkeypatch.setattr(hardware, "cpu_matmul_rates", lambda: (fp32, bf16))
    monkeypatch.setattr(hardware, "cpu_info", lambda: hardware.CpuInfo("Test CPU", "AVX2", flags, 2))


def test_a_cpu_with_emulated_bf16_trains_in_fp32_without_compiling(monkeypatch):
    fake_cpu(monkeypatch, fp32=38.0, bf16=1.0, flags=["avx2"])
    decision = hardware.decide_precision("cpu", True, True)
    assert not decision.bf16 and not decision.torch_compile and not decision.warnings
    record = decision.record()
    assert record["fp32_gflops"] == 38.0 and record["bf16_gflops"] == 1.0
    assert record["cpu"]["cpu_class"] == "no-native-bf16"
    assert "38.0 GFLOP/s fp32 vs 1.0 bf16" in decision.line()


def test_a_cpu_with_fast_bf16_trains_in_bf16_and_compiles_when_asked(monkeypatch):
    fake_cpu(monkeypatch, fp32=60.0, bf16=240.0, flags=["avx512f", "amx_bf16"])
    decision = hardware.decide_precision("cpu", True, True)
    assert decision.bf16 and decision.torch_compile
    assert decision.record()["cpu"]["cpu_class"] == "native-bf16"
    assert not hardware.decide_precision("cpu", False, False).bf16  # off stays off


def test_forcing_bf16_on_a_slow_cpu_keeps_it_on_with_a_one_line_warning(monkeypatch):
    fake_cpu(monkeypatch, fp32=38.0, bf16=1.0, flags=["avx2"])
    decision = hardware.decide_precision("cpu", "always", "always")
    assert decision.bf16 and decision.torch_compile
    assert len(decision.warnings) == 2 and all("\n" not in w for w in decision.warnings)
    assert "38x slower" in decision.warnings[0]


def test_an_unknown_precision_setting_is_a_user_error(tmp_path):
    with pytest.raises(UserError, match="true .* \"always\" or false"):
        hardware.decide_precision("cpu", "sometimes")
    bad = tmp_path / "c.json"
    bad.write_text(json.dumps({"training": {"bf16": "maybe"}}))
    with pytest.raises(UserError, match="training.bf16"):
        load_config(bad)


def test_the_probe_measures_both_dtypes_on_this_cpu():
    fp32, bf16 = hardware.matmul_gflops(torch.float32, size=64, seconds=0.01), \
        hardware.matmul_gflops(torch.bfloat16, size=64, seconds=0.01)
    assert fp32 > 0 and bf16 > 0
    info = hardware.cpu_info()
    assert info.capability and info.cpu_class in ("native-bf16", "no-native-bf16")


def test_fp32_newton_schulz_orthogonalizes_like_torchs_bf16_one():
    from torch.optim import _muon

    grad = torch.randn(48, 16, generator=torch.Generator().manual_seed(0))
    ours = newton_schulz_fp32(grad, (3.4445, -4.775, 2.0315), 5, 1e-7)
    theirs = _muon._zeropower_via_newtonschulz(grad, (3.4445, -4.775, 2.0315), 5, 1e-7).float()
    assert ours.dtype == torch.float32 and ours.shape == grad.shape
    assert torch.allclose(ours, theirs, atol=0.05)  # bf16 rounding apart, the same iteration
    with fp32_newton_schulz():
        assert _muon._zeropower_via_newtonschulz is newton_schulz_fp32
    assert _muon._zeropower_via_newtonschulz is not newton_schulz_fp32  # restored


def test_fit_steps_leaves_room_for_evals_saves_and_a_last_eval():
    # 100 s left at 1 s/step, an eval of 10 s every 10 steps (1 s/step), no saves, a last eval reserved:
    assert fit_steps(remaining_s=100, step_s=1.0, done=20, upper=1000, eval_every=10, eval_s=10.0,
                     save_every=0, save_s=0.0, final_eval=True) == 20 + 45
    assert fit_steps(remaining_s=100, step_s=1.0, done=20, upper=30, eval_every=0, eval_s=0.0,
                     save_every=0, save_s=0.0, final_eval=False) == 30  # max_steps stays the upper bound
    assert fit_steps(remaining_s=-5, step_s=1.0, done=20, upper=30, eval_every=0, eval_s=0.0,
                     save_every=0, save_s=0.0, final_eval=False) == 20


def test_refitting_a_cosine_schedule_makes_it_end_at_the_new_step():
    from transformers import get_cosine_schedule_with_warmup

    param = torch.nn.Parameter(torch.zeros(1))
    optimizer = torch.optim.SGD([param], lr=1.0)
    scheduler = get_cosine_schedule_with_warmup(optimizer, num_warmup_steps=2, num_training_steps=1000)
    for _ in range(10):
        optimizer.step()
        scheduler.step()
    assert refit_schedule(scheduler, 20)
    rates = []
    for _ in range(10):
        optimizer.step()
        scheduler.step()
        rates.append(optimizer.param_groups[0]["lr"])
    assert rates[-1] == pytest.approx(0.0, abs=1e-9)  # step 20: the end of the cosine
    assert rates == sorted(rates, reverse=True)


def test_a_time_budget_stops_training_early_at_the_planned_step_with_the_schedule_ended(tmp_path):
    cfg = tiny_cfg(tmp_path, max_steps=100000, max_minutes=0.25, lr_scheduler_type="cosine", warmup_steps=2,
                   eval_steps=1000, save_steps=0, sample_generations=0)
    out = train_sft(cfg, log=_quiet)
    plan = read_json(tmp_path / "run" / BUDGET_FILE)
    assert plan["planned_steps"] is not None and plan["planned_steps"] < 100000
    assert plan["stopped_by"] in ("plan", "budget")
    if plan["stopped_by"] == "plan":
        assert out["final_step"] == plan["planned_steps"]
        last_lr = [r["learning_rate"] for r in read_jsonl(out["metrics"]) if "learning_rate" in r][-1]
        assert last_lr < 0.05 * TINY_TRAINING["learning_rate"]  # the cosine ran to its end, not cut off
    run_config = read_json(tmp_path / "run" / "run_config.json")
    assert run_config["time_budget"]["planned_steps"] == plan["planned_steps"]
    assert run_config["precision"]["device"] == "cpu" and "bf16" in run_config["precision"]
    evals = [r["step"] for r in read_jsonl(out["metrics"]) if "eval_loss" in r]
    assert evals and evals[-1] == out["final_step"]  # a last eval_loss at the last step


def test_batched_conversation_lengths_equal_the_chat_template_token_counts_one_by_one(tmp_path):
    from helpers import make_tiny_corpus

    from ast_distill.student.scratch import corpus_texts, train_tokenizer
    from ast_distill.training.data import conversation_lengths, follow_up_lengths

    rows = make_tiny_corpus(30)
    tokenizer = train_tokenizer(corpus_texts(rows), 400)
    conversations = [r["prompt"] + r["completion"] for r in rows]
    one_by_one = [len(tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"])
                  for c in conversations]
    assert conversation_lengths(tokenizer, conversations) == one_by_one
    assert all(n > 0 for n in follow_up_lengths(tokenizer, rows))


def test_the_budget_re_measures_the_step_time_when_the_first_steps_were_slow(tmp_path, monkeypatch):
    clock, callback, state, control = budget_on_a_fake_clock(tmp_path, monkeypatch, eval_every=0)
    while not control.should_training_stop:
        clock.now += 14.0 if state.global_step < 11 else 7.0  # the longest batches come first
        state.global_step += 1
        callback.on_step_end(None, state, control)
    plan = read_json(tmp_path / BUDGET_FILE)
    # 11 steps of 14 s leave 446 s: ~63 more steps of 7 s. Planning once, at 14 s/step, stopped near step 42.
    assert 70 <= state.global_step <= 75 and clock.now <= 600.0
    assert plan["planned_steps"] == state.global_step and plan["step_seconds"] == pytest.approx(7.0)
    assert [r["why"] for r in plan["replans"]][:2] == ["measured", "re-measured"]


def test_an_eval_right_after_a_plan_keeps_the_step_time_instead_of_timing_two_short_steps(tmp_path, monkeypatch):
    clock, callback, state, control = budget_on_a_fake_clock(tmp_path, monkeypatch, eval_every=100)
    for _ in range(11):  # the first plan: 7 s/step
        clock.now += 7.0
        state.global_step += 1
        callback.on_step_end(None, state, control)
    for _ in range(2):  # two short steps, then an eval of 20 s
        clock.now += 1.0
        state.global_step += 1
        callback.on_step_end(None, state, control)
    clock.now += 20.0
    callback.on_evaluate(None, state, control)
    plan = read_json(tmp_path / BUDGET_FILE)
    assert [r["why"] for r in plan["replans"]] == ["measured", "after eval"]
    assert plan["step_seconds"] == pytest.approx(7.0) and plan["eval_seconds"] == pytest.approx(20.0)


def budget_on_a_fake_clock(tmp_path, monkeypatch, *, eval_every: int):
    """A 10-minute budget callback whose clock the test moves: (clock, callback, state, control), begun."""
    from types import SimpleNamespace

    from ast_distill import budget

    clock = SimpleNamespace(now=0.0)
    monkeypatch.setattr(budget, "time", SimpleNamespace(perf_counter=lambda: clock.now))
    callback = budget.make_budget_callback(10.0, tmp_path, eval_every=eval_every, save_every=0,
                                           has_eval=eval_every > 0, log=lambda *_: None)
    state = SimpleNamespace(global_step=0, max_steps=100000)
    control = SimpleNamespace(should_training_stop=False, should_evaluate=False)
    callback.on_train_begin(None, state, control)
    return clock, callback, state, control


def test_a_time_budget_under_a_launcher_of_several_processes_is_refused_in_one_line(tmp_path, monkeypatch):
    from ast_distill.budget import budget_callback

    monkeypatch.setenv("WORLD_SIZE", "2")  # as torchrun sets it: each process's clock would plan its own schedule
    with pytest.raises(UserError, match="with 2 processes set max_minutes to 0") as error:
        budget_callback({"max_minutes": 1.5, "save_steps": 0}, tmp_path, None, eval_every=0, has_eval=False)
    assert "\n" not in str(error.value)
    monkeypatch.setenv("WORLD_SIZE", "1")
    assert budget_callback({"max_minutes": 1.5, "save_steps": 0}, tmp_path, None, eval_every=0,
                           has_eval=False) is not None


def test_outside_a_launcher_the_distributed_helpers_are_the_one_process_case(monkeypatch):
    from ast_distill import distributed

    for name in ("WORLD_SIZE", "RANK"):
        monkeypatch.delenv(name, raising=False)
    assert distributed.world_size() == 1 and distributed.is_main_process() and not distributed.is_distributed()
    assert distributed.agree({"a": 1}) == {"a": 1} and distributed.gather(3) == [3]
    with distributed.main_process_first():
        pass  # no process group is started: nothing to wait for
    assert distributed.record()["processes"] == 1
    monkeypatch.setenv("RANK", "1")
    assert not distributed.is_main_process()
