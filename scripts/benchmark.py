"""Measure how fast each part of the pipeline is, side by side in one run; write benchmark.json and a table.

Needs the offline pipeline's outputs (dataset and a trained student; --teacher-only needs the dataset only):
    ./runAll.sh --config config/offline.json --with-training

Run as:
    uv run scripts/benchmark.py --config config/offline.json
    uv run scripts/benchmark.py --config config/offline.json --quick      # smaller samples, a few minutes
    uv run scripts/benchmark.py --config config/offline-gemma.json \
        --gguf outputs/student_runs/gemma-dpo/export/student-f16.gguf --decoding-only   # transformers vs llama.cpp
    uv run scripts/benchmark.py --config config/offline.json --teacher-only   # teacher concurrency and servers
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ast_distill import benchmark, cli
from ast_distill.config import flag_settings, load_config
from ast_distill.jsonl import write_json_atomic
from ast_distill.errors import UserError
from ast_distill.provenance import provenance
from ast_distill.runs import resolve_checkpoint
from ast_distill.settings import EvaluationSettings


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    # --- inputs ---
    parser.add_argument("--config", default="config/offline.json", help="config file naming the pipeline's outputs")
    cli.add_settings_flags(parser, EvaluationSettings, ("adapter",))  # the student to time evaluation with
    parser.add_argument("--gguf", help="also time this GGUF of the student's export folder with llama.cpp (batch 1, "
                                       "free and constrained, first-token latency) on the same rows")
    # --- size ---
    parser.add_argument("--quick", action="store_true", help="fewer requests, rows and steps (a smoke run)")
    parser.add_argument("--decoding-only", action="store_true",
                        help="only the student's decoding: transformers at batch 1 and 16, and --gguf with llama.cpp "
                             "(no teacher, SFT or grammar groups)")
    parser.add_argument("--teacher-only", action="store_true",
                        help="only the teacher: concurrency 1 vs 8 on one local server, then 1, 2 and 4 servers "
                             "(needs the dataset, not a student)")
    # --- outputs ---
    parser.add_argument("--out", default="outputs/benchmarks/benchmark.json", help="where to write the figures")
    return parser


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    if args.teacher_only and (args.decoding_only or args.gguf):
        raise UserError("--teacher-only times the teacher alone: leave out --decoding-only and --gguf")
    adapter = flag_settings(args, config, "evaluation")["adapter"]
    if args.teacher_only:
        adapter = None
    elif not adapter or not Path(adapter).is_dir():
        raise UserError(f"no trained student at {adapter!r}: run ./runAll.sh --config config/offline.json "
                        f"--with-training first, or pass --adapter")
    else:
        adapter = resolve_checkpoint(adapter)  # a run dir: its selected checkpoint
    if args.gguf and not Path(args.gguf).is_file():
        raise UserError(f"--gguf {args.gguf} is not a file; pass a GGUF written by scripts/export_student.py")
    cli.print_settings("benchmark", {"config": args.config, "adapter": adapter, "gguf": args.gguf,
                                     "quick": args.quick, "decoding_only": args.decoding_only,
                                     "teacher_only": args.teacher_only, "out": args.out})
    results = benchmark.run_all(config, adapter=adapter, quick=args.quick, gguf=args.gguf,
                                decoding_only=args.decoding_only, teacher_only=args.teacher_only)
    results["provenance"] = provenance({"config": args.config, "adapter": adapter, "gguf": args.gguf,
                                        "quick": args.quick, "decoding_only": args.decoding_only,
                                        "teacher_only": args.teacher_only})
    write_json_atomic(Path(args.out), results)
    print(benchmark.table(results))
    cli.print_outputs("benchmark", {"figures": args.out})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
