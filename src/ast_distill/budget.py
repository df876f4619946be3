"""A time budget for a training stage: measure the step time, then end the schedule inside the budget.

``training.max_minutes`` (and ``alignment.max_minutes``) caps the minutes a trainer spends in its loop
(optimizer steps, evals and checkpoints; loading data and building the model are not counted). The same
config trains ~20x more steps on a CPU with native bf16 than on one without, so a fixed ``max_steps`` is either
too short on one or hours long on the other. With a budget, ``max_steps`` becomes an upper bound:

1. the first step is left out (warm-up, and compiling when torch_compile is on);
2. after ``CALIBRATION_STEPS`` more steps (or 10% of the budget, whichever comes first) the mean step time gives
   the number of steps that fit in what is left, after the evals and checkpoints those steps will need;
3. the learning-rate schedule is re-fitted to end at that step (the cosine reaches its floor when training
   stops, instead of being cut off mid-way), and the trainer stops there, with a last eval;
4. each eval, and each further 10% of the budget, re-plans with the eval and checkpoint times measured so far
   and the step time of the steps since the last plan, when there are at least CALIBRATION_STEPS of them (fewer
   are noise: at batch 1, two short steps once read 3.2 s/step where ~7 was right). The first steps can mislead:
   the length-grouped sampler serves the longest batch first, and other load on the machine then counts; in one
   Gemma run at batch 1 the first 10 steps averaged 13.9 s where later ones took ~7 s, and planning only once
   stopped it after 12.7 of its 24 minutes. Whatever the plan, no step starts when the budget is spent.

The plan is written to ``time_budget.json`` in the run dir, so a resumed run keeps the schedule it started with.
"""
from __future__ import annotations

import functools
import math
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .errors import UserError
from .jsonl import read_json, write_json_atomic

BUDGET_FILE = "time_budget.json"
CALIBRATION_STEPS = 10  # timed steps after the first before the first plan
CALIBRATION_SHARE = 0.1  # ... or this share of the budget, whichever comes first (at least 2 timed steps)
FORWARD_SHARE = 1 / 3  # an eval batch costs about a third of a train step of the same tokens (no backward)


def fit_steps(*, remaining_s: float, step_s: float, done: int, upper: int, eval_every: int, eval_s: float,
              save_every: int, save_s: float, final_eval: bool) -> int:
    """The last step index that fits: done steps plus as many more as remaining_s pays for.

    Each future step costs step_s, plus its share of an eval every eval_every steps and a checkpoint every
    save_every steps (0 = none); a final eval is reserved when final_eval. Never beyond upper, never below done.
    """
    per_step = step_s
    if eval_every > 0:
        per_step += eval_s / eval_every
    if save_every > 0:
        per_step += save_s / save_every
    spend = remaining_s - (eval_s if final_eval else 0.0)
    more = math.floor(max(spend, 0.0) / max(per_step, 1e-9))
    return max(done, min(upper, done + more))


def refit_schedule(scheduler: Any, total_steps: int) -> bool:
    """Make a transformers LambdaLR schedule end at total_steps; False when it has no horizon (constant).

    transformers builds each schedule as functools.partial(<lr lambda>, num_training_steps=N, ...): the same
    lambda with a new N keeps its warmup, shape and floor, and ends at total_steps.
    """
    lambdas = getattr(scheduler, "lr_lambdas", None)
    if not lambdas:
        return False
    changed = False
    for i, fn in enumerate(lambdas):
        if isinstance(fn, functools.partial) and "num_training_steps" in fn.keywords:
            lambdas[i] = functools.partial(fn.func, *fn.args, **{**fn.keywords, "num_training_steps": total_steps})
            changed = True
    if changed:  # the rate of the next step, from the new horizon
        for group, base, fn in zip(scheduler.optimizer.param_groups, scheduler.base_lrs, lambdas):
            group["lr"] = base * fn(scheduler.last_epoch)
    return changed


@dataclass
class BudgetPlan:
    """What the budget decided; written to time_budget.json and run_config.json."""
    max_minutes: float
    upper_steps: int
    planned_steps: int | None = None
    step_seconds: float | None = None
    eval_seconds: float | None = None
    save_seconds: float | None = None
    decided_at_step: int | None = None
    replans: list[dict[str, Any]] = field(default_factory=list)
    stopped_by: str | None = None  # "plan", "budget" (the clock ran out first) or None (max_steps reached)


def make_budget_callback(max_minutes: float, output_dir: str | Path, *, eval_every: int, save_every: int,
                         has_eval: bool, log: Any = print) -> Any:
    """A TrainerCallback that keeps training inside max_minutes (see the module docstring).

    Add it after every other callback: an eval's time is measured from the end of its step to this callback's
    on_evaluate, so what other callbacks do at eval time (sample generations) counts as eval time.
    """
    from transformers import TrainerCallback

    path = Path(output_dir) / BUDGET_FILE
    budget_s = float(max_minutes) * 60.0

    class TimeBudgetCallback(TrainerCallback):
        def __init__(self) -> None:
            self.plan = BudgetPlan(float(max_minutes), 0)
            self.started = self.mark = 0.0
            self.side_s = 0.0  # seconds spent in evals and checkpoints, left out of step times
            self.first_done: tuple[float, float, int] | None = None  # (time, side seconds, step) after step 1
            self.window: tuple[float, float, int] | None = None  # the same at the last plan: the next step time
            self.eval_times: list[float] = []
            self.save_times: list[float] = []

        def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
            self.started = self.mark = time.perf_counter()
            self.plan.upper_steps = int(state.max_steps)  # max_steps (or the epochs' steps): the upper bound
            if state.global_step > 0 and path.is_file():  # a resumed run keeps the schedule it started with
                stored = read_json(path)
                self.plan = BudgetPlan(**{k: v for k, v in stored.items() if k in BudgetPlan.__annotations__})
                if self.plan.planned_steps:
                    self._apply(state, lr_scheduler, self.plan.planned_steps, f"resumed with the plan in {path}")

        def on_step_end(self, args, state, control, lr_scheduler=None, **kwargs):
            now = self.mark = time.perf_counter()
            elapsed = now - self.started
            if self.first_done is None:
                self.first_done = (now, self.side_s, state.global_step)
            elif self.plan.decided_at_step is None:
                timed = state.global_step - self.first_done[2]
                if timed >= CALIBRATION_STEPS or (timed >= 2 and elapsed >= CALIBRATION_SHARE * budget_s):
                    self.plan.step_seconds = self._step_seconds(now, state.global_step, self.first_done)
                    self.plan.decided_at_step = state.global_step
                    self._replan(state, lr_scheduler, elapsed, "measured")
            elif self.window is None:  # a resumed run: its plan was read back; time the steps from here
                self.window = (now, self.side_s, state.global_step)
            elif (state.global_step - self.window[2] >= CALIBRATION_STEPS
                  and now - self.window[0] >= CALIBRATION_SHARE * budget_s and not control.should_training_stop):
                self.plan.step_seconds = self._step_seconds(now, state.global_step, self.window)
                self._replan(state, lr_scheduler, elapsed, "re-measured")
            last_step = self.plan.step_seconds or (elapsed / max(state.global_step, 1))
            if self.plan.planned_steps is not None and state.global_step >= self.plan.planned_steps:
                self._stop(control, "plan")
            elif elapsed + last_step > budget_s:
                self._stop(control, "budget")
                log(f"time budget: {max_minutes:g} min spent after step {state.global_step}; stopping")

        def on_evaluate(self, args, state, control, lr_scheduler=None, **kwargs):
            now = time.perf_counter()
            self.eval_times.append(now - self.mark)
            self.side_s += now - self.mark
            self.mark = now
            if self.plan.decided_at_step is not None and not control.should_training_stop:
                if self.window is not None and state.global_step - self.window[2] >= CALIBRATION_STEPS:
                    self.plan.step_seconds = self._step_seconds(now, state.global_step, self.window)
                self._replan(state, lr_scheduler, now - self.started, "after eval")

        def on_save(self, args, state, control, **kwargs):
            now = time.perf_counter()
            self.save_times.append(now - self.mark)
            self.side_s += now - self.mark
            self.mark = now

        def _step_seconds(self, now: float, step: int, since: tuple[float, float, int]) -> float:
            """Mean seconds per optimizer step since `since`, evals and checkpoints left out."""
            t0, side0, step0 = since
            return max((now - t0 - (self.side_s - side0)) / max(step - step0, 1), 1e-6)

        def _replan(self, state: Any, scheduler: Any, elapsed: float, why: str) -> None:
            self.window = (time.perf_counter(), self.side_s, state.global_step)
            step_s = float(self.plan.step_seconds)
            # until an eval is measured, guess: the val rows' forward passes, about 4 steps' worth at a third each
            eval_s = max(self.eval_times) if self.eval_times else step_s * FORWARD_SHARE * 4
            save_s = max(self.save_times) if self.save_times else (0.0 if save_every <= 0 else 2.0)
            planned = fit_steps(remaining_s=budget_s - elapsed, step_s=step_s, done=state.global_step,
                                upper=self.plan.upper_steps, eval_every=eval_every if has_eval else 0,
                                eval_s=eval_s, save_every=save_every, save_s=save_s, final_eval=has_eval)
            self.plan.eval_seconds, self.plan.save_seconds = round(eval_s, 3), round(save_s, 3)
            self.plan.replans.append({"step": state.global_step, "why": why, "planned_steps": planned,
                                      "step_seconds": round(step_s, 4), "elapsed_s": round(elapsed, 1)})
            if planned != self.plan.planned_steps:
                self._apply(state, scheduler, planned, f"{why}: {step_s:.2f} s/step, eval {eval_s:.1f} s, "
                                                       f"{elapsed:.0f} of {budget_s:.0f} s spent")
            write_json_atomic(path, asdict(self.plan))

        def _apply(self, state: Any, scheduler: Any, planned: int, why: str) -> None:
            self.plan.planned_steps = planned
            state.max_steps = planned
            fitted = scheduler is not None and refit_schedule(scheduler, planned)
            log(f"time budget {max_minutes:g} min: training ends at step {planned} of at most "
                f"{self.plan.upper_steps} ({why}; schedule {'fitted to it' if fitted else 'unchanged'})")

        def _stop(self, control: Any, why: str) -> None:
            control.should_training_stop = True
            if has_eval:
                control.should_evaluate = True  # the last eval_loss of the run, at its last step
            self.plan.stopped_by = why
            write_json_atomic(path, asdict(self.plan))

    return TimeBudgetCallback()


def budget_callback(cfg: Mapping[str, Any], output_dir: Path, resume_dir: str | None, *, eval_every: int,
                    has_eval: bool, log: Any = print) -> Any:
    """The max_minutes time budget as a callback (None when max_minutes is 0); a fresh run plans anew, a
    resumed one keeps its plan (budget.py). SFT and DPO alike."""
    from .distributed import is_distributed, is_main_process, world_size

    if float(cfg["max_minutes"]) > 0 and is_distributed():  # each process's clock would plan its own schedule
        raise UserError(f"max_minutes {cfg['max_minutes']:g} (a time budget) plans the schedule from one process's "
                        f"step times; with {world_size()} processes set max_minutes to 0 and bound the run with "
                        f"max_steps or num_epochs")
    if resume_dir is None and is_main_process():
        (output_dir / BUDGET_FILE).unlink(missing_ok=True)
    if float(cfg["max_minutes"]) <= 0:
        return None
    return make_budget_callback(float(cfg["max_minutes"]), output_dir, eval_every=eval_every,
                                save_every=int(cfg["save_steps"]), has_eval=has_eval, log=log)
