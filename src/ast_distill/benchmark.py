"""Side-by-side speed measurements of the pipeline's parts, in one run so that ratios hold on a noisy machine.

Each figure compares settings of one part: teacher concurrency 1 vs 8 against a local server with a fixed
reply delay, 1 vs 2 vs 4 such servers behind one teacher (each answering two requests at a time, as a
server's batch does), the built-in teacher, prompt tokens per schema rendering, SFT tokens/s with and without
length bucketing, evaluation samples/s at batch 1 vs 16 and constrained vs unconstrained, and what xgrammar
costs with the student's tokenizer (compile time per schema, mask time per decoded token). Speed is only ever
measured here, never asserted in tests.
"""
from __future__ import annotations

import asyncio
import contextlib
import json
import random
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from . import dsl, evaluation, hardware, predict, prompting, student, training
from .canonical import render_ast
from .student.models import training_device
from .config import Config
from .jsonl import read_jsonl
from .teachers.base import map_bounded
from .teachers.grammar import GrammarTeacher
from .teachers.ollama_teacher import OllamaTeacher


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def teacher_throughput(schema_rows: list[dict[str, Any]], specs: dict[str, dict[str, Any]], *,
                       concurrency: int, requests: int, delay_s: float, servers: int = 1,
                       parallel: int | None = None) -> dict[str, Any]:
    """Valid rows/s from the Ollama teacher against `servers` local servers that answer after `delay_s`, each
    working on at most `parallel` requests at once (None: unbounded); `concurrency` is per server."""
    tasks = [schema_rows[i % len(schema_rows)] for i in range(requests)]

    async def run(urls: list[str]) -> tuple[int, int, float, list[dict[str, Any]]]:
        teacher = OllamaTeacher(model="bench", host=urls, timeout_s=30.0, retries=0, retry_wait_s=0.1,
                                concurrency=concurrency, num_ctx=4096, temperature=0.0)

        async def one(row: dict[str, Any]) -> list[Any]:
            return await teacher.generate_pairs(row, specs.get(row.get("spec_id", ""), {}), 4, 0)

        start = time.perf_counter()
        try:
            results = await map_bounded(one, tasks, teacher.concurrency)
        finally:
            await teacher.aclose()
        wall = time.perf_counter() - start
        rows = [(row, p) for row, pairs in zip(tasks, results) for p in pairs]
        valid = sum(1 for row, p in rows if dsl.validation_error(row["schema"], p.ast) is None)
        return len(rows), valid, wall, teacher.server_stats()

    with contextlib.ExitStack() as stack:
        urls = [stack.enter_context(fake_server_process(delay_s, parallel)) for _ in range(servers)]
        total, valid, wall, stats = asyncio.run(run(urls))
    return {"servers": servers, "concurrency_per_server": concurrency, "server_parallel": parallel,
            "requests": requests, "reply_delay_s": delay_s, "rows": total, "valid_rows": valid,
            "wall_s": round(wall, 3), "rows_per_s": round(valid / wall, 2),
            "requests_per_server": [s["replies"] for s in stats]}


@contextlib.contextmanager
def fake_server_process(delay_s: float, parallel: int | None) -> Iterator[str]:
    """A fake teacher server in a process of its own (its threads would otherwise share this interpreter with the
    client being timed); yields its URL."""
    command = [sys.executable, "-m", "ast_distill.testing.fake_ollama", "--delay-s", str(delay_s)]
    command += ["--parallel", str(parallel)] if parallel else []
    process = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        url = process.stdout.readline().strip()  # type: ignore[union-attr]
        if not url:
            raise RuntimeError(f"the fake server did not start: {' '.join(command)}")
        yield url
    finally:
        process.stdin.close()  # type: ignore[union-attr]
        process.wait(timeout=10)


def teacher_groups(schema_rows: list[dict[str, Any]], specs: dict[str, dict[str, Any]], *, quick: bool,
                   log: Callable[[str], None]) -> dict[str, Any]:
    """Teacher concurrency 1 vs 8 on one server; then 1, 2 and 4 servers that each answer 2 requests at a time,
    with replies of 100 ms (where this machine's client may be the ceiling) and of 400 ms."""
    requests = 16 if quick else 48
    log("teacher throughput (local Ollama-API server, 100 ms per reply) ...")
    teacher: dict[str, Any] = {
        f"concurrency_{c}": teacher_throughput(schema_rows, specs, concurrency=c, requests=requests, delay_s=0.1)
        for c in (1, 8)}
    teacher["speedup_8_vs_1"] = round(teacher["concurrency_8"]["rows_per_s"]
                                      / teacher["concurrency_1"]["rows_per_s"], 2)
    for delay_ms in SERVER_DELAYS_MS:
        log(f"teacher throughput over 1, 2 and 4 servers (each {SERVER_PARALLEL} requests at a time, {delay_ms} ms "
            f"per reply) ...")
        for count in SERVER_COUNTS:
            teacher[f"servers_{count}_{delay_ms}ms"] = teacher_throughput(
                schema_rows, specs, concurrency=SERVER_PARALLEL, requests=requests * 2, delay_s=delay_ms / 1000,
                servers=count, parallel=SERVER_PARALLEL)
        base = teacher[f"servers_1_{delay_ms}ms"]["rows_per_s"]
        for count in SERVER_COUNTS[1:]:
            teacher[f"speedup_{count}_servers_vs_1_{delay_ms}ms"] = round(
                teacher[f"servers_{count}_{delay_ms}ms"]["rows_per_s"] / base, 2)
    return teacher


SERVER_COUNTS = (1, 2, 4)
SERVER_DELAYS_MS = (100, 400)
SERVER_PARALLEL = 2  # requests each fake server works on at once (a real one: its batch / OLLAMA_NUM_PARALLEL)


def grammar_teacher_throughput(schema_rows: list[dict[str, Any]], specs: dict[str, dict[str, Any]], *,
                               rows_per_schema: int) -> dict[str, Any]:
    teacher = GrammarTeacher(seed=0)

    async def run() -> int:
        count = 0
        for i, row in enumerate(schema_rows):
            pairs = await teacher.generate_pairs(row, specs[row["spec_id"]], rows_per_schema, i)
            count += sum(1 for p in pairs if dsl.validation_error(row["schema"], p.ast) is None)
        return count

    start = time.perf_counter()
    valid = asyncio.run(run())
    wall = time.perf_counter() - start
    return {"schemas": len(schema_rows), "valid_rows": valid, "wall_s": round(wall, 3),
            "rows_per_s": round(valid / wall, 1)}


def prompt_tokens(rows: list[dict[str, Any]], schemas: dict[str, dict[str, Any]],
                  vocab_size: int) -> dict[str, Any]:
    """Prompt tokens per row for each schema rendering, with one BPE tokenizer trained on all renderings."""
    texts = {fmt: [m["content"] for r in rows for m in prompting.build_prompt(schemas[r["schema_id"]],
                                                                              r["query"], fmt)]
             for fmt in prompting.SCHEMA_FORMATS}
    from .student import scratch

    tokenizer = scratch.train_tokenizer([t for fmt in texts.values() for t in fmt], vocab_size)
    out: dict[str, Any] = {"tokenizer": f"byte-level BPE, {vocab_size} tokens, trained on every rendering"}
    for fmt in prompting.SCHEMA_FORMATS:
        counts = [len(tokenizer("".join(m["content"] for m in prompting.build_prompt(
            schemas[r["schema_id"]], r["query"], fmt)))["input_ids"]) for r in rows]
        out[fmt] = {"rows": len(counts), "mean": round(statistics.mean(counts), 1),
                    "p95": _percentile([float(c) for c in counts], 0.95)}
    return out


def sft_throughput(corpus_rows: list[dict[str, Any]], training_cfg: dict[str, Any], *,
                   steps: int) -> dict[str, Any]:
    """SFT tokens/s side by side, at the config's batch size, the first step (warm-up, compiling) left out.

    Batching: one request per sequence in random order, the same bucketed by length, requests chained per
    schema (the config's requests_per_sequence, at least 4) bucketed; those with the precision this machine's
    probe picks (hardware.decide_precision) and no compile. Then the chained setting compiled ("always",
    padded to max_seq_length), in fp32, and with bf16 autocast forced ("always"; a few steps only, since
    on a CPU without native bf16 a step takes ~15x longer); for a student with a trimmed vocabulary, also the
    chained setting with the whole vocabulary.
    """
    chain = max(int(training_cfg["requests_per_sequence"]), 4)
    chained = dict(group_by_length=True, requests_per_sequence=chain, torch_compile=False)
    variants = {"unbucketed": (dict(group_by_length=False, requests_per_sequence=1, torch_compile=False), steps),
                "bucketed": (dict(group_by_length=True, requests_per_sequence=1, torch_compile=False), steps),
                f"chained_{chain}": (chained, steps),
                f"chained_{chain}_compiled": (dict(chained, torch_compile="always"), steps),
                f"chained_{chain}_fp32": (dict(chained, bf16=False), steps),
                f"chained_{chain}_bf16_forced": (dict(chained, bf16="always"), min(steps, 4))}
    if int(training_cfg.get("trim_vocabulary") or 0) > 0:  # a trimmed pretrained student: what trimming saves
        variants[f"chained_{chain}_full_vocabulary"] = (dict(chained, trim_vocabulary=0), steps)
    out: dict[str, Any] = {}
    for name, (overrides, n) in variants.items():
        measured = training.measure_sft_throughput(corpus_rows, dict(training_cfg, **overrides), n)
        out[name] = {k: round(v, 4) if isinstance(v, float) else v for k, v in measured.items()}
        out[name]["steps"] = n
    return out


def eval_throughput(generator: Any, rows: list[dict[str, Any]], schemas: dict[str, dict[str, Any]], *,
                    max_new_tokens: int) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for batch_size in (1, 16):
        for constrained in (False, True):
            key = f"batch{batch_size}_{'constrained' if constrained else 'unconstrained'}"
            out[key] = evaluation.measure_throughput(generator, rows, schemas, batch_size, constrained,
                                                     max_new_tokens)
    return out


def inference_variants(adapter: str, rows: list[dict[str, Any]], schemas: dict[str, dict[str, Any]], *,
                       batch_size: int, max_new_tokens: int) -> dict[str, Any]:
    """Constrained decoding of the same rows by the checkpoint as loaded (a LoRA adapter unmerged), merged
    (what evaluation and predict use), and merged with dynamic int8 weights (CPU only, opt-in)."""
    from .generation import StudentGenerator

    def measure(model: Any, tokenizer: Any) -> dict[str, Any]:
        generator = StudentGenerator(model, tokenizer, stop_token_ids=student.stop_token_ids(tokenizer))
        return evaluation.measure_throughput(generator, rows, schemas, batch_size, True, max_new_tokens)

    out: dict[str, Any] = {}
    model, tokenizer = student.load_student(adapter)  # loaded once; merged, then quantized as a copy
    if student.student_kind(adapter) == "adapter":
        out["lora_unmerged"] = measure(model, tokenizer)
    model = student.for_inference(model)
    out["merged"] = measure(model, tokenizer)
    if model.device.type == "cpu":
        out["merged_dynamic_int8"] = measure(student.for_inference(model, dynamic_int8=True), tokenizer)
    return out


def grammar_cost(generator: Any, rows: list[dict[str, Any]], schemas: dict[str, dict[str, Any]], *,
                 schema_count: int, steps_per_schema: int) -> dict[str, Any]:
    """xgrammar's cost with the student's tokenizer: compile time per schema (of the first `schema_count` schemas
    `rows` name) and, per decoding step, the time to fill one row's token bitmask and apply it to the logits.

    A fresh GrammarCache, so nothing comes from the evaluation's cache. The steps walk each schema's gold
    completion (render_ast of its first row's AST), as a trained student writes it. The first schema is also
    compiled with its maxLength kept, which generation leaves out of the grammar, to show what that would cost.
    """
    from .generation import GrammarCache, in_render_order

    cache = GrammarCache(generator.tokenizer, vocab_size=generator.vocab_size,
                         stop_token_ids=generator.stop_token_ids)
    first_rows: dict[str, dict[str, Any]] = {}
    for row in rows:
        first_rows.setdefault(row["schema_id"], row)
    picked = list(first_rows.values())[:schema_count]
    compile_ms: list[float] = []
    step_ms: list[float] = []
    for row in picked:
        started = time.perf_counter()
        compiled = cache.compiled(schemas[row["schema_id"]])
        compile_ms.append(1000.0 * (time.perf_counter() - started))
        step_ms += _mask_step_ms(generator, cache, compiled, render_ast(row["ast"]), steps_per_schema)
    started = time.perf_counter()
    cache.compiler.compile_json_schema(json.dumps(in_render_order(schemas[picked[0]["schema_id"]])),
                                       any_whitespace=False, separators=(",", ":"))
    kept_ms = 1000.0 * (time.perf_counter() - started)
    return {"tokenizer_vocab": generator.vocab_size, "schemas": len(picked),
            "compile_ms_mean": round(statistics.mean(compile_ms), 1), "compile_ms_max": round(max(compile_ms), 1),
            "compile_ms_max_length_kept": round(kept_ms, 1), "mask_steps": len(step_ms),
            "mask_ms_per_token_mean": round(statistics.mean(step_ms), 3) if step_ms else None,
            "mask_ms_per_token_p95": round(_percentile(step_ms, 0.95), 3) if step_ms else None}


def _mask_step_ms(generator: Any, cache: Any, compiled: Any, completion: str, max_steps: int) -> list[float]:
    """ms per step of what GrammarLogitsProcessor does for one row: fill its bitmask, keep JSON-safe tokens,
    apply the mask to the logits; the matcher then accepts the completion's next token (not timed)."""
    import torch
    import xgrammar as xgr

    matcher = xgr.GrammarMatcher(compiled)
    ids = generator.tokenizer(completion, add_special_tokens=False)["input_ids"][:max_steps]
    bitmask = xgr.allocate_token_bitmask(1, generator.vocab_size)
    logits = torch.zeros(1, generator.vocab_size, device=generator.model.device)
    out: list[float] = []
    for token in ids:
        started = time.perf_counter()
        matcher.fill_next_token_bitmask(bitmask, 0)
        bitmask &= cache.json_safe_mask
        xgr.apply_token_bitmask_inplace(logits, bitmask.to(logits.device), vocab_size=generator.vocab_size)
        if logits.is_cuda:
            torch.cuda.synchronize()
        out.append(1000.0 * (time.perf_counter() - started))
        if not matcher.accept_token(token):
            break  # a gold the grammar cannot write (should not happen): stop walking it
    return out


def load_pipeline_outputs(config: Config) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]],
                                                   dict[str, dict[str, Any]], list[dict[str, Any]],
                                                   list[dict[str, Any]]]:
    """d_01 specs by id, d_02 rows, schemas by id, d_04 rows and d_05 rows named by the config."""
    gen = config["dataset_generation"]
    specs = {r["id"]: r for r in read_jsonl(gen["schema_specs_out"])}
    schema_rows = read_jsonl(gen["final_schemas_out"])
    schemas = {r["id"]: r["schema"] for r in schema_rows}
    return (schema_rows, specs, schemas, read_jsonl(gen["training_corpus_out"]),
            read_jsonl(gen["test_set_out"]))


FIRST_TOKEN_ROWS = 16  # rows timed to their first new token (llama.cpp)


def llamacpp_throughput(gguf: str, rows: list[dict[str, Any]], schemas: dict[str, dict[str, Any]], *,
                        max_new_tokens: int) -> dict[str, Any]:
    """A GGUF decoded by llama.cpp (batch 1, the batch its Python API decodes) on the same rows as the
    transformers student: free and constrained, and the median milliseconds to the first new token over the first
    FIRST_TOKEN_ROWS rows."""
    gen = predict.load_gguf_generator(gguf)
    out: dict[str, Any] = {"gguf": gguf}
    for constrained in (False, True):
        key = f"batch1_{'constrained' if constrained else 'unconstrained'}"
        out[key] = evaluation.measure_throughput(gen, rows, schemas, 1, constrained, max_new_tokens)
    # First-token latency is the prompt's prefill: a few rows show it without a third pass over all of them.
    firsts = [gen.generate_one(gen.encode(student.prompt_text(gen.tokenizer, row["prompt"])),
                               schemas[row["schema_id"]], max_new_tokens=1)[1] or 0.0 for row in rows[:FIRST_TOKEN_ROWS]]
    out["first_token_ms_median"] = round(statistics.median(firsts) * 1000.0, 1)
    return out


def run_all(config: Config, *, adapter: str | None, quick: bool, gguf: str | None = None, decoding_only: bool = False,
            teacher_only: bool = False, log: Callable[[str], None] = print) -> dict[str, Any]:
    """Every group of figures, side by side; ``decoding_only`` keeps the student's decoding (transformers at
    batch 1 and 16, llama.cpp on a GGUF) and leaves out the teacher, prompt, SFT, variant and grammar groups;
    ``teacher_only`` keeps the teacher groups (no student needed)."""
    schema_rows, specs, schemas, corpus, test_rows = load_pipeline_outputs(config)
    rng = random.Random(0)
    results: dict[str, Any] = {"machine": hardware.decide_precision(
        training_device(), config["training"]["bf16"], config["training"]["torch_compile"]).record()}
    if decoding_only:
        eval_rows = rng.sample(test_rows, min(len(test_rows), 16 if quick else 64))
        decoding(results, config, adapter, gguf, eval_rows, schemas, log)
        del results["generator"]
        return results
    results["teacher"] = teacher_groups(schema_rows, specs, quick=quick, log=log)
    if teacher_only:
        return results
    log("built-in teacher throughput ...")
    results["grammar_teacher"] = grammar_teacher_throughput(schema_rows, specs,
                                                            rows_per_schema=20 if quick else 100)
    log("prompt tokens per rendering ...")
    sample = rng.sample(corpus, min(len(corpus), 200 if quick else 1000))
    results["prompt_tokens"] = prompt_tokens(sample, schemas, int(config["training"]["scratch_vocab_size"]))
    log("SFT throughput: random order, length bucketing, requests chained per schema ...")
    results["sft"] = sft_throughput(corpus, config["training"], steps=5 if quick else 20)
    eval_rows = rng.sample(test_rows, min(len(test_rows), 16 if quick else 64))
    generator = decoding(results, config, adapter, gguf, eval_rows, schemas, log)["generator"]
    del results["generator"]
    log("inference variants: LoRA unmerged vs merged vs merged + dynamic int8 ...")
    results["inference"] = inference_variants(adapter, eval_rows[:8 if quick else 32], schemas,
                                              batch_size=int(config["evaluation"]["batch_size"]),
                                              max_new_tokens=int(config["evaluation"]["max_new_tokens"]))
    log("grammar cost: compile per schema, mask per token ...")
    results["grammar"] = grammar_cost(generator, eval_rows, schemas, schema_count=3 if quick else 6,
                                      steps_per_schema=16 if quick else 32)
    return results


def decoding(results: dict[str, Any], config: Config, adapter: str, gguf: str | None, rows: list[dict[str, Any]],
             schemas: dict[str, dict[str, Any]], log: Callable[[str], None]) -> dict[str, Any]:
    """The decoding groups into ``results``: transformers at batch 1 and 16 (free, constrained), and llama.cpp on
    ``gguf`` on the same rows; results["generator"] holds the loaded transformers student for later groups."""
    max_new_tokens = int(config["evaluation"]["max_new_tokens"])
    log("evaluation throughput: batch 1 vs 16, constrained vs not ...")
    generator = predict.load_generator(adapter)
    results["evaluation"] = ev = eval_throughput(generator, rows, schemas, max_new_tokens=max_new_tokens)
    ev["constrained_cost_batch16"] = round(
        1.0 - ev["batch16_constrained"]["samples_per_s"] / ev["batch16_unconstrained"]["samples_per_s"], 3)
    ev["batch16_speedup_unconstrained"] = round(
        ev["batch16_unconstrained"]["samples_per_s"] / ev["batch1_unconstrained"]["samples_per_s"], 2)
    if gguf:
        log("llama.cpp backend: the exported GGUF on the same rows ...")
        results["llamacpp"] = llamacpp_throughput(gguf, rows, schemas, max_new_tokens=max_new_tokens)
    results["generator"] = generator
    return results


def table(results: dict[str, Any]) -> str:
    """A short Markdown table of the headline figures."""
    machine = results.get("machine") or {}
    cpu = machine.get("cpu") or {}
    rows: list[tuple[str, Any]] = [
        ("machine (CPU class; probe fp32 / bf16 GFLOP/s)",
         f"{cpu.get('model', machine.get('device'))} ({cpu.get('cpu_class', '-')}; "
         f"{machine.get('fp32_gflops')} / {machine.get('bf16_gflops')})")]
    if "teacher" in results:  # absent from a decoding-only run
        t = results["teacher"]
        rows += [("teacher rows/s, concurrency 1", t["concurrency_1"]["rows_per_s"]),
                 ("teacher rows/s, concurrency 8", t["concurrency_8"]["rows_per_s"]),
                 ("teacher speed-up 8 vs 1", f"{t['speedup_8_vs_1']}x")]
        rows += [(f"teacher rows/s, {n} server{'s' if n > 1 else ''} x {SERVER_PARALLEL} at a time, {ms} ms replies"
                  + (" (speed-up vs 1)" if n > 1 else ""),
                  t[f"servers_{n}_{ms}ms"]["rows_per_s"] if n == 1
                  else f"{t[f'servers_{n}_{ms}ms']['rows_per_s']} ({t[f'speedup_{n}_servers_vs_1_{ms}ms']}x)")
                 for ms in SERVER_DELAYS_MS for n in SERVER_COUNTS if f"servers_{n}_{ms}ms" in t]
    if "sft" in results:  # absent from decoding-only and teacher-only runs
        pt, sft = results["prompt_tokens"], results["sft"]
        rows.append(("built-in teacher rows/s", results["grammar_teacher"]["rows_per_s"]))
        rows += [(f"prompt tokens/row, {fmt} schema (mean / p95)", f"{pt[fmt]['mean']} / {pt[fmt]['p95']}")
                 for fmt in prompting.SCHEMA_FORMATS]
        rows += [(f"SFT tokens/s, {k} (padding share; answers/s)",
                  f"{sft[k]['tokens_per_s']:.0f} ({sft[k]['padding_share']:.1%}; {sft[k]['answers_per_s']:.1f})")
                 for k in sft]
    ev = results.get("evaluation")
    if ev:  # absent from a teacher-only run
        rows += [(f"eval samples/s, {k.replace('_', ', ')}", ev[k]["samples_per_s"]) for k in
                 ("batch1_unconstrained", "batch1_constrained", "batch16_unconstrained", "batch16_constrained")]
        rows.append(("constrained decoding cost at batch 16", f"{ev['constrained_cost_batch16']:.1%}"))
    rows += [(f"eval samples/s, constrained batch {v['batch_size']}, {k.replace('_', ' ')} (schema-valid)",
              f"{v['samples_per_s']} ({v['schema_valid_rate']})") for k, v in results.get("inference", {}).items()]
    lc = results.get("llamacpp")
    if lc:
        rows += [(f"llama.cpp samples/s, batch 1, {k.split('_')[1]} (schema-valid), {Path(lc['gguf']).name}",
                  f"{lc[k]['samples_per_s']} ({lc[k]['schema_valid_rate']})")
                 for k in ("batch1_unconstrained", "batch1_constrained")]
        rows.append(("llama.cpp first-token ms (median, constrained)", lc["first_token_ms_median"]))
    gr = results.get("grammar")
    rows += [] if gr is None else [(f"grammar compile ms/schema, {gr['tokenizer_vocab']}-token vocab (mean / max of {gr['schemas']})",
              f"{gr['compile_ms_mean']} / {gr['compile_ms_max']}"),
             ("grammar compile ms, one schema with maxLength kept", gr["compile_ms_max_length_kept"]),
             (f"grammar mask ms/token, fill + apply (mean / p95 of {gr['mask_steps']} steps)",
              f"{gr['mask_ms_per_token_mean']} / {gr['mask_ms_per_token_p95']}")]
    width = max(len(name) for name, _ in rows)
    lines = [f"| {'measure'.ljust(width)} | value |", f"|{'-' * (width + 2)}|-------|"]
    lines += [f"| {name.ljust(width)} | {value} |" for name, value in rows]
    return "\n".join(lines)
