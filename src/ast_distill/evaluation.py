"""Stage 6: generate with the student on test (or pref) rows, score each output, judge, summarize, resume.

Per row (``scoring.score_output``): ``parsed`` (the output is one JSON object), ``schema_valid`` (it validates
against the row's schema), ``exact_match`` (same completion text as the gold AST), ``semantic_match`` (same
meaning: canonical forms equal), and the teacher's verdict ``teacher_verdict``: True (accept), False
(reject), None (no judge) or "error" (the judge failed after its retries; the row is kept and the run goes
on). The teacher is asked only where the meaning differs from the gold AST; where it matches, the verdict is
True with no call.

Results are appended to ``evaluation_results.jsonl`` with flush + fsync every ``checkpoint_every`` rows, and a
small checkpoint JSON beside it records what made them (RESUME_KEYS: the checkpoint's fingerprint, the decoding
settings, the selected rows). A rerun that finds the same record skips the ids already scored, so a killed
evaluation resumes where it stopped; one that finds another record starts over, saying which keys differ.
Rows whose verdict is "error" count as done: ``--no-resume`` judges them again. The summary is computed from
the results file and written atomically.
"""
from __future__ import annotations

import asyncio
import json
import random
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import dsl, student
from .calibration import CALIBRATION_FILE, confidence_summary, load_calibration
from .runs import resolve_checkpoint
from .config import Config
from .errors import UserError
from .fingerprint import checkpoint_fingerprint, json_digest
from .hardware import machine_record
from .jsonl import JsonlAppender, read_json, read_jsonl, write_json_atomic
from .prompting import render_request
from .provenance import provenance
from .settings import EvaluationSettings
from .scoring import apply_judge_error, apply_verdict, parse_output, rate, score_output, summarize
from .teachers import Teacher, TeacherError, make_teacher

if TYPE_CHECKING:  # torch and xgrammar load when a run decodes, not when a script builds its parser
    from .generation import Generation, StudentGenerator

RESULTS_NAME = "evaluation_results.jsonl"
SUMMARY_NAME = "evaluation_summary.json"


def progress_path(eval_results: str | Path) -> str:
    """The progress checkpoint JSON of a results file: <results>.checkpoint.json beside it."""
    return str(Path(eval_results).with_suffix(".checkpoint.json"))
# What made the rows: a rerun resumes a results file only when all of these agree with its checkpoint JSON.
# The batch size is left out (greedy decoding does not depend on it), and so is the path of the checkpoint:
# its fingerprint (weights, config, tokenizer) is what matters, so a retrain at the same path is caught.
RESUME_KEYS = ("fingerprint", "baseline", "constrained", "grammar_rules", "dynamic_int8", "max_new_tokens",
               "truncation_retry", "temperature", "top_p", "dataset", "split", "max_samples", "sample_seed",
               "include_invalid", "rows_digest", "record_version")


@dataclass(kw_only=True)
class EvalSettings(EvaluationSettings):
    """One evaluation run: the evaluation section (flags over the config) and what a run adds to it."""
    eval_results: str  # the results JSONL (default <out_dir>/evaluation_results.jsonl)
    checkpoint_path: str  # its progress checkpoint (what made the rows, how many are done)
    split: str | None = None  # evaluate only the rows of this split (None = all)
    baseline: bool = False  # the untrained base of `adapter` instead of the checkpoint
    gguf: str | None = None  # decode this GGUF of an export folder with llama.cpp instead (export.runtime)
    device: str | None = None  # None = student.pick_device()

    @property
    def summary_path(self) -> Path:
        return Path(self.out_dir) / SUMMARY_NAME


# --- inputs -------------------------------------------------------------------------------------------


def select_rows(rows: Sequence[dict[str, Any]], schemas: Mapping[str, dict[str, Any]], *, split: str | None = None,
                include_invalid: bool = False, max_samples: int | None = None, sample_seed: int = 0,
                where: str = "the dataset") -> list[dict[str, Any]]:
    """The rows to evaluate: of one split (None = all), gold-valid unless asked, then a seeded sample (whose
    gold ASTs are validated as it is drawn, not every row's first)."""
    for row in rows:
        for key in ("id", "schema_id", "prompt", "ast"):
            if key not in row:
                raise UserError(f"{where}: row {row.get('id', '?')} has no '{key}'; expected d_04/d_05 rows")
        if row["schema_id"] not in schemas:
            raise UserError(f"{where}: row {row['id']} names schema {row['schema_id']}, which the schemas file "
                            f"does not hold; pass the d_02 file the dataset was built from (--schemas)")
    if split is not None:
        present = sorted({str(r.get("split")) for r in rows})
        rows = [r for r in rows if r.get("split") == split]
        if not rows:
            raise UserError(f"{where} has no rows of split '{split}' (splits present: {', '.join(present)})")
    keep = (lambda row: True) if include_invalid else _gold_checker(schemas)
    if max_samples is not None and max_samples >= 0:
        return _seeded_sample(list(rows), keep, max_samples, sample_seed)
    return [r for r in rows if keep(r)]


def _gold_checker(schemas: Mapping[str, dict[str, Any]]) -> Callable[[Mapping[str, Any]], bool]:
    """Whether a row's gold is valid: not marked invalid, and its AST validates against its schema.

    One validator per schema id, looked up once: dsl.validator_for serializes the schema on every call."""
    validators: dict[str, Any] = {}

    def valid(row: Mapping[str, Any]) -> bool:
        if row.get("is_valid") is False:
            return False
        schema_id = row["schema_id"]
        if schema_id not in validators:
            validators[schema_id] = dsl.validator_for(schemas[schema_id])
        return bool(validators[schema_id].is_valid(row.get("ast")))

    return valid


def _seeded_sample(rows: list[dict[str, Any]], keep: Callable[[Mapping[str, Any]], bool], max_samples: int,
                   seed: int) -> list[dict[str, Any]]:
    """The first `max_samples` rows `keep` accepts, in an order shuffled by `seed`; every kept row, in the
    dataset's order, when there are no more than that.

    Rows are checked lazily in the shuffled order, so a 16-row sample of 6,000 rows validates about as many
    gold ASTs as it keeps (~3 ms each), not all of them. With ``keep`` accepting everything this is the plain seeded shuffle's prefix.
    """
    if max_samples == 0:
        return []
    order = list(range(len(rows)))
    random.Random(seed).shuffle(order)
    picked: list[int] = []
    for index in order:
        if keep(rows[index]):
            picked.append(index)
            if len(picked) == max_samples:
                return [rows[i] for i in picked]
    return [rows[i] for i in sorted(picked)]


# --- judging ------------------------------------------------------------------------------------------


async def judge_records(teacher: Teacher | None, records: Sequence[dict[str, Any]],
                        schemas: Mapping[str, dict[str, Any]]) -> int:
    """Ask the teacher about every record whose meaning differs from the gold; returns how many were asked.

    The teacher bounds its own concurrency and retries. A call that still fails leaves its record with
    teacher_verdict "error" (the reason holds the error): one bad reply must not abort an evaluation.
    With no teacher, those records keep teacher_verdict None (counted as not accepted).
    """
    todo = [r for r in records if r["teacher_verdict"] is None]
    if teacher is None or not todo:
        return 0

    async def one(record: dict[str, Any]) -> None:
        try:
            # The judge reads the request as the student did: with its context line when it has one.
            request = render_request(record.get("query") or "", record.get("context"))
            verdict = await teacher.judge(schemas[record["schema_id"]], request,
                                          record["gold_ast"], record["student_ast"], record["student_raw"])
        except TeacherError as exc:
            apply_judge_error(record, exc)
            return
        apply_verdict(record, verdict)

    await asyncio.gather(*(one(r) for r in todo))
    return len(todo)


# --- summary ------------------------------------------------------------------------------------------


def speed(records: Sequence[Mapping[str, Any]], *, wall_s: float, batch_size: int) -> dict[str, Any]:
    """Generation speed from the rows' latencies (each row's share of its batch's wall time)."""
    total_ms = sum(float(r.get("latency_ms") or 0.0) for r in records)
    ms = total_ms / len(records) if records else None
    return {"samples_per_s": round(1000.0 / ms, 3) if ms else None,
            "ms_per_sample": round(ms, 3) if ms is not None else None,
            "wall_s": round(wall_s, 3), "batch_size": batch_size}


def format_table(summary: Mapping[str, Any]) -> str:
    """A short fixed-width table of the main rates per group."""
    columns = [("n", "n"), ("parsed", "parsed_rate"), ("valid", "schema_valid_rate"), ("exact", "exact_match_rate"),
               ("semantic", "semantic_match_rate"), ("sem/query", "query_semantic_match_rate"),
               ("refusals", "refusal_share"), ("teacher", "teacher_accept_rate"),
               ("pass", "semantic_pass_rate"), ("trunc", "truncated_rate")]
    groups = [("overall", summary["overall"])]
    groups += [(f"schema {k}", v) for k, v in summary["by_schema"].items()]
    groups += [(f"lang {k}", v) for k, v in summary["by_language"].items()]
    lines = [f"{'group':<16}" + "".join(f"{title:>9}" for title, _ in columns)]
    for name, m in groups:
        cells = []
        for _, key in columns:
            value = m.get(key)
            cells.append(f"{'-':>9}" if value is None else f"{value:>9}" if key == "n" else f"{value:>9.3f}")
        lines.append(f"{name:<16}" + "".join(cells))
    return "\n".join(lines)


# --- the student ----------------------------------------------------------------------------------------


def baseline_of(adapter: str) -> str:
    """The base model a LoRA adapter was trained from; a full checkpoint (scratch) has no meaningful base."""
    kind = student.student_kind(adapter)
    if kind == "hub":
        return adapter
    if kind == "model":
        raise UserError(f"{adapter} is a full model (e.g. the scratch student), not a LoRA adapter: it has no base "
                        f"model to compare with; drop --baseline")
    return student.adapter_base(adapter)  # a relative base (a DPO adapter's) resolved against its folder


# --- the run --------------------------------------------------------------------------------------------


# What a result record holds: raise it when records gain a field, so that older results are made again rather than
# resumed without it (2: answer_logprob, the student's log-probability of its answer).
RECORD_VERSION = 3


def made_from(settings: EvalSettings, model_path: str, rows: Sequence[Mapping[str, Any]],
              schemas: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """The RESUME_KEYS values of this run: what its rows are made from (checkpoint, decoding, row selection)."""
    # The rows as the evaluation reads them (prompt, gold AST, schema), so rows regenerated under the same ids
    # or a changed schemas file also count as other rows.
    selected = {str(r["id"]): [r["prompt"], r["ast"], schemas[r["schema_id"]]] for r in rows}
    from .generation import GRAMMAR_RULES  # here: torch and xgrammar load when a run decodes

    return {"fingerprint": checkpoint_fingerprint(model_path), "baseline": settings.baseline,
            "constrained": settings.constrained, "grammar_rules": GRAMMAR_RULES if settings.constrained else None,
            "dynamic_int8": settings.dynamic_int8,
            "max_new_tokens": settings.max_new_tokens, "truncation_retry": settings.truncation_retry,
            "temperature": settings.temperature, "top_p": settings.top_p, "dataset": settings.dataset,
            "split": settings.split, "max_samples": settings.max_samples, "sample_seed": settings.sample_seed,
            "include_invalid": settings.include_invalid, "rows_digest": json_digest(selected),
            "record_version": RECORD_VERSION}


def _short(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else value
    return text if len(text) <= 20 else text[:19] + "…"


def resume_mismatch(previous: Mapping[str, Any] | None, meta: Mapping[str, Any]) -> str | None:
    """Why results recorded with checkpoint JSON ``previous`` cannot be resumed by a run made as ``meta``
    (None: they can). A key the old record lacks (a results file from an older version) is a difference."""
    if previous is None:
        return "no checkpoint JSON says what made them"
    clashes = [f"{k} {_short(previous[k]) if k in previous else '(not recorded)'} -> {_short(meta[k])}"
               for k in RESUME_KEYS if k not in previous or previous[k] != meta[k]]
    return ", ".join(clashes) or None


def _resume_state(settings: EvalSettings, meta: dict[str, Any]) -> None:
    """Resume when the results on disk were made the way this run would make them; else start over.

    Starting over deletes the results, their checkpoint JSON and the summary (it describes those rows).
    """
    results, checkpoint = Path(settings.eval_results), Path(settings.checkpoint_path)
    if settings.resume and results.is_file():
        why = resume_mismatch(read_json(checkpoint) if checkpoint.is_file() else None, meta)
        if why is None:
            return
        print(f"starting over: {results} was made another way ({why}); its rows are not reused")
    elif settings.resume:
        return  # nothing to resume: the checkpoint JSON is rewritten before the first row
    for path in (results, checkpoint, settings.summary_path):
        if path.exists():
            path.unlink()


def _write_checkpoint(settings: EvalSettings, meta: dict[str, Any], done: int, total: int) -> None:
    now = datetime.now(UTC).isoformat(timespec="seconds")
    write_json_atomic(settings.checkpoint_path, {**meta, "done": done, "total": total,
                                                 "results": settings.eval_results, "updated_at": now})


def make_eval_teacher(config: Config, settings: EvalSettings) -> Teacher | None:
    """The judge the config names; an LLM backend with no model named means no judge (with a note).

    settings.teacher_model is already resolved (flag > config > LLM_MODEL > .llmrc > the data's teacher).
    """
    if config["teacher"]["backend"] != "grammar" and not settings.teacher_model:
        print("note: no teacher model named: outputs whose meaning differs from the gold are not judged, so "
              "teacher_accept_rate counts semantic matches only", file=sys.stderr)
        return None
    return make_teacher(config, settings.teacher_model, retries=settings.teacher_retries,
                        retry_wait_s=settings.teacher_retry_wait, seed=settings.sample_seed)


async def _generate_and_score(settings: EvalSettings, generator: StudentGenerator, todo: list[dict[str, Any]],
                              schemas: Mapping[str, dict[str, Any]], teacher: Teacher | None,
                              on_records: Callable[[list[dict[str, Any]]], None]) -> dict[str, int]:
    import torch  # here, not at the top: the script's --help and the runners' flag check stay fast

    prompt_texts = [student.prompt_text(generator.tokenizer, row["prompt"]) for row in todo]
    constraints = [schemas[row["schema_id"]] if settings.constrained else None for row in todo]
    if settings.constrained:
        for schema_id in sorted({row["schema_id"] for row in todo}):
            generator.prepare_grammar(schemas[schema_id])  # compile up front: errors before any generation
    calls = {"generated": 0, "judged": 0}
    torch.manual_seed(settings.sample_seed)  # sampling (temperature > 0) repeats for a seed
    batches = generator.generate_all(prompt_texts, constraints, batch_size=settings.batch_size,
                                     max_new_tokens=settings.max_new_tokens, temperature=settings.temperature,
                                     top_p=settings.top_p, desc="evaluating")
    for batch in batches:
        batch, retried = retry_truncated(generator, batch, prompt_texts, constraints, settings)
        records = [score_output(todo[i], schemas[todo[i]["schema_id"]], gen, prompt_text=prompt_texts[i],
                                constrained=settings.constrained) | {"retried": i in retried} for i, gen in batch]
        calls["generated"] += len(records)
        calls["judged"] += await judge_records(teacher, records, schemas)
        on_records(records)
    return calls


def retry_truncated(generator: StudentGenerator, batch: list[tuple[int, Generation]], prompt_texts: Sequence[str],
                    constraints: Sequence[dict[str, Any] | None], settings: EvalSettings,
                    ) -> tuple[list[tuple[int, Generation]], set[int]]:
    """Constrained outputs of a batch that reached max_new_tokens, generated once more with truncation_retry
    times the budget (the retry's output replaces the first; its latency adds to it). Returns the batch and the
    indices retried. A constrained output that stops early is valid JSON, so a truncation is the one failure a
    bigger budget can turn into a right answer; free outputs that run on are usually loops and are left."""
    budget = int(settings.max_new_tokens * settings.truncation_retry)
    todo = [i for i, gen in batch if gen.truncated and constraints[i] is not None]
    if budget <= settings.max_new_tokens or not todo:
        return batch, set()
    again: dict[int, Generation] = {}
    for part in generator.generate_all([prompt_texts[i] for i in todo], [constraints[i] for i in todo],
                                       batch_size=settings.batch_size, max_new_tokens=budget,
                                       temperature=settings.temperature, top_p=settings.top_p, progress=False):
        again.update((todo[j], gen) for j, gen in part)
    merged = [(i, replace(again[i], latency_ms=gen.latency_ms + again[i].latency_ms) if i in again else gen)
              for i, gen in batch]
    return merged, set(todo)


def run_evaluation(settings: EvalSettings, config: Config, *,
                   teacher: Teacher | None | str = "auto") -> dict[str, Any]:
    """Evaluate, resuming by id; returns the summary (also written to <out_dir>/evaluation_summary.json).

    ``teacher``: "auto" builds the judge from the config; tests pass their own (or None). A run dir as
    ``settings.adapter`` means its selected checkpoint (runs.resolve_checkpoint), which the summary names.
    """
    if not settings.gguf:
        settings = replace(settings, adapter=resolve_checkpoint(settings.adapter))
    schemas = dsl.load_schemas(settings.final_schemas)
    rows = select_rows(read_jsonl(settings.dataset), schemas, split=settings.split,
                       include_invalid=settings.include_invalid, max_samples=settings.max_samples,
                       sample_seed=settings.sample_seed, where=settings.dataset)
    if not rows:
        raise UserError(f"{settings.dataset}: no rows to evaluate (all gold ASTs invalid? try --include-invalid)")
    if settings.gguf:
        model_path = settings.gguf  # its fingerprint is the file's sha256
    elif settings.baseline:
        model_path = baseline_of(settings.adapter)
    else:
        student.student_kind(settings.adapter)  # a bad path is a UserError before any result is deleted
        model_path = settings.adapter
    meta = {"adapter": settings.adapter, "model_path": model_path, **made_from(settings, model_path, rows, schemas)}
    _resume_state(settings, meta)
    wanted = {str(r["id"]) for r in rows}
    done_ids = {str(r["id"]) for r in read_jsonl(settings.eval_results, missing_ok=True)} & wanted
    todo = [r for r in rows if str(r["id"]) not in done_ids]
    print(f"rows: {len(rows)} selected, {len(done_ids)} already scored, {len(todo)} to go")

    started = time.perf_counter()
    calls = {"generated": 0, "judged": 0}
    teacher_info = _previous_teacher(settings)
    if todo:
        from .predict import load_generator, load_gguf_generator

        generator = (load_gguf_generator(settings.gguf) if settings.gguf
                     else load_generator(model_path, settings.device, dynamic_int8=settings.dynamic_int8))
        judge = make_eval_teacher(config, settings) if teacher == "auto" else teacher
        teacher_info = judge.describe() if judge is not None else {
            "backend": None, "note": "no teacher: rows whose meaning differs from the gold were not judged"}
        meta["teacher"] = teacher_info
        calls = _run_todo(settings, meta, generator, todo, schemas, judge, total=len(rows), already=len(done_ids))
        if judge is not None:
            teacher_info = judge.record()  # with what each server did
    wall_s = time.perf_counter() - started

    records = [r for r in read_jsonl(settings.eval_results) if str(r["id"]) in wanted]
    calibration = None if settings.gguf or settings.baseline else load_calibration(model_path)
    summary = {"adapter": settings.adapter, "baseline": settings.baseline, "model_path": model_path,
               "backend": "llamacpp" if settings.gguf else "transformers",
               "fingerprint": meta["fingerprint"], "rows_digest": meta["rows_digest"],
               "dataset": settings.dataset, "split": settings.split, "n": len(records),
               "constrained": settings.constrained, "dynamic_int8": settings.dynamic_int8, "teacher": teacher_info,
               **summarize(records),
               "confidence": confidence_summary(records, calibration, None if calibration is None
                                                else str(Path(model_path) / CALIBRATION_FILE)),
               "speed": speed(records, wall_s=wall_s, batch_size=settings.batch_size),
               "calls_this_run": calls,
               "machine": machine_record(settings.device or student.pick_device()),
               "made_with": provenance({"evaluation": asdict(settings), "config": config})}
    write_json_atomic(settings.summary_path, summary)
    return summary


def _previous_teacher(settings: EvalSettings) -> dict[str, Any] | None:
    path = Path(settings.checkpoint_path)
    return read_json(path).get("teacher") if path.is_file() else None


def _run_todo(settings: EvalSettings, meta: dict[str, Any], generator: StudentGenerator,
              todo: list[dict[str, Any]], schemas: Mapping[str, dict[str, Any]], teacher: Teacher | None, *,
              total: int, already: int) -> dict[str, int]:
    """Generate, score and judge the rows still to do, appending results with fsync as batches finish."""
    every = max(1, settings.checkpoint_every)
    with JsonlAppender(settings.eval_results) as out:
        pending = 0
        _write_checkpoint(settings, meta, already, total)  # says what made the results before any is written

        def save() -> None:
            out.flush()
            _write_checkpoint(settings, meta, already + out.written, total)

        def on_records(records: list[dict[str, Any]]) -> None:
            nonlocal pending
            for record in records:
                out.write(record)
            pending += len(records)
            if pending >= every:
                save()
                pending = 0

        async def main() -> dict[str, int]:
            try:
                return await _generate_and_score(settings, generator, todo, schemas, teacher, on_records)
            finally:
                if teacher is not None:
                    await teacher.aclose()

        calls = asyncio.run(main())  # a failed judge call marks its row "error" (judge_records): no abort here
        save()
    return calls


# --- throughput (for the benchmark) ---------------------------------------------------------------------


def measure_throughput(adapter: str | StudentGenerator, rows: Sequence[dict[str, Any]],
                       schemas: Mapping[str, dict[str, Any]], batch_size: int, constrained: bool,
                       max_new_tokens: int, *, device: str | None = None, warmup_batches: int = 1) -> dict[str, Any]:
    """Evaluation generation speed on ``rows`` (d_04/d_05 rows; schemas: schema_id -> schema).

    Model loading and grammar compilation are not timed; ``warmup_batches`` batches run first, untimed.
    Returns samples/s, ms per sample, new tokens/s, and the parsed / schema-valid / truncated rates.
    """
    from .predict import load_generator

    generator = adapter if not isinstance(adapter, str) else load_generator(adapter, device)
    texts = [student.prompt_text(generator.tokenizer, row["prompt"]) for row in rows]
    constraints = [schemas[row["schema_id"]] if constrained else None for row in rows]
    if constrained:
        for schema in constraints:
            generator.prepare_grammar(schema)
    if warmup_batches > 0:
        n = min(len(texts), batch_size * warmup_batches)
        for _ in generator.generate_all(texts[:n], constraints[:n], batch_size=batch_size,
                                        max_new_tokens=max_new_tokens, progress=False):
            pass
    started = time.perf_counter()
    outputs: list[Generation | None] = [None] * len(rows)
    for batch in generator.generate_all(texts, constraints, batch_size=batch_size, max_new_tokens=max_new_tokens,
                                        desc=f"throughput bs={batch_size} constrained={constrained}"):
        for i, gen in batch:
            outputs[i] = gen
    wall_s = time.perf_counter() - started
    done = [g for g in outputs if g is not None]
    parsed = [parse_output(g.text) for g in done]
    valid = sum(1 for (ok, ast), row in zip(parsed, rows)
                if ok and dsl.validation_error(schemas[row["schema_id"]], ast) is None)
    n = len(done)
    return {"n": n, "batch_size": batch_size, "constrained": constrained, "max_new_tokens": max_new_tokens,
            "wall_s": round(wall_s, 3), "samples_per_s": round(n / wall_s, 3) if wall_s else None,
            "ms_per_sample": round(1000.0 * wall_s / n, 3) if n else None,
            "new_tokens_per_s": round(sum(len(g.token_ids) for g in done) / wall_s, 1) if wall_s else None,
            "parsed_rate": rate(sum(ok for ok, _ in parsed), n), "schema_valid_rate": rate(valid, n),
            "truncated_rate": rate(sum(g.truncated for g in done), n)}
