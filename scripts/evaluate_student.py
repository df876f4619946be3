"""Stage 6: evaluate a student checkpoint on the test set (or the pref rows) with the teacher as judge.

Generates with the student (schema-constrained by default), scores each output (parsed, schema-valid, exact and
semantic match), asks the teacher about outputs whose meaning differs from the gold AST, and writes
<out_dir>/evaluation_results.jsonl (one record per row, resumable by id) and evaluation_summary.json.

Run as:
  uv run scripts/evaluate_student.py --config config/offline.json
  uv run scripts/evaluate_student.py --adapter outputs/student_runs/gemma3-270m/checkpoint-final \
      --teacher-model gpt-oss:120b
  uv run scripts/evaluate_student.py --config config/offline.json --no-constrained \
      --out-dir outputs/student_runs/scratch-eval/unconstrained
  uv run scripts/evaluate_student.py --dataset outputs/d_04_training_corpus.jsonl --split pref \
      --eval-results outputs/student_runs/alignment/pref_eval/evaluation_results.jsonl
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ast_distill import cli
from ast_distill.config import judge_teacher_model, load_config, pick, resolve
from ast_distill.errors import UserError
from ast_distill.evaluation import RESULTS_NAME, SPLITS, EvalSettings, format_table, run_evaluation

CONFIG_KEYS = ("adapter", "dataset", "final_schemas", "max_new_tokens", "temperature", "top_p", "batch_size",
               "max_samples", "sample_seed", "include_invalid", "constrained", "teacher_retries",
               "teacher_retry_wait", "checkpoint_every", "resume")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", default="config/defaults.json",
                        help="config file overlaying config/defaults.json (default: %(default)s)")
    # What to evaluate
    parser.add_argument("--adapter", help="checkpoint dir to evaluate: a LoRA adapter or a full (scratch) model "
                                          "(default: evaluation.adapter)")
    parser.add_argument("--baseline", action="store_true",
                        help="evaluate the base model the LoRA adapter was trained from, with no adapter "
                             "(not available for the scratch student, which has no base)")
    parser.add_argument("--dataset", help="rows to evaluate, d_05 or d_04 shaped JSONL (default: evaluation.dataset)")
    parser.add_argument("--schemas", dest="final_schemas", metavar="FILE",
                        help="d_02 schemas file the dataset refers to (default: evaluation.final_schemas)")
    parser.add_argument("--split", choices=SPLITS, help="evaluate only rows of this split (default: every row)")
    parser.add_argument("--max-samples", type=int,
                        help="evaluate at most this many rows, a seeded shuffle first; -1 = all "
                             "(default: evaluation.max_samples, null = all)")
    parser.add_argument("--sample-seed", type=int, help="seed of that shuffle and of sampling (default: "
                                                        "evaluation.sample_seed)")
    parser.add_argument("--include-invalid", action=argparse.BooleanOptionalAction,
                        help="also evaluate rows whose gold AST does not validate (default: "
                             "evaluation.include_invalid)")
    # Outputs and resume
    parser.add_argument("--out-dir", help="where evaluation_summary.json (and by default the results) go "
                                          "(default: the folder of --eval-results, else evaluation.out_dir)")
    parser.add_argument("--eval-results", help=f"per-row results JSONL (default: <out_dir>/{RESULTS_NAME})")
    parser.add_argument("--checkpoint-path", help="progress JSON of a long run (default: next to the results, "
                                                  "<results>.checkpoint.json)")
    parser.add_argument("--checkpoint-every", type=int, help="flush + fsync results and update the checkpoint "
                                                             "every N rows (default: evaluation.checkpoint_every)")
    parser.add_argument("--resume", action=argparse.BooleanOptionalAction,
                        help="skip rows already in the results file when it was made by the same checkpoint "
                             "(weights fingerprint), decoding settings and rows, else start over and say why; "
                             "--no-resume always starts over, which also judges rows whose verdict is 'error' "
                             "again (default: evaluation.resume)")
    # Generation
    parser.add_argument("--constrained", action=argparse.BooleanOptionalAction,
                        help="decode with the row's JSON Schema as a grammar (xgrammar) (default: "
                             "evaluation.constrained)")
    parser.add_argument("--max-new-tokens", type=int, help="token budget per output; an output that reaches it is "
                                                           "'truncated' (default: evaluation.max_new_tokens)")
    parser.add_argument("--temperature", type=float, help="sampling temperature, 0 = greedy (default: "
                                                          "evaluation.temperature)")
    parser.add_argument("--top-p", type=float, help="nucleus sampling mass when temperature > 0, 1.0 = off "
                                                    "(default: evaluation.top_p)")
    parser.add_argument("--batch-size", type=int, help="prompts generated together (default: evaluation.batch_size)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    # Teacher (judge)
    parser.add_argument("--teacher-model", help="judge model name (default: evaluation.teacher_model, then "
                                                "LLM_MODEL, then .llmrc, then dataset_generation.teacher_model; "
                                                "the built-in grammar teacher needs none)")
    parser.add_argument("--teacher-retries", type=int, help="retries per failed teacher call, -1 = retry forever "
                                                            "(default: evaluation.teacher_retries)")
    parser.add_argument("--teacher-retry-wait", type=float, help="seconds before the first retry, doubling after "
                                                                 "(default: evaluation.teacher_retry_wait)")
    return parser


def settings_from(args: argparse.Namespace, config: dict) -> EvalSettings:
    values = resolve(args, config, "evaluation", CONFIG_KEYS)
    if not values["adapter"]:
        raise UserError("no checkpoint to evaluate: pass --adapter DIR or set evaluation.adapter in the config")
    if values["max_samples"] is not None and values["max_samples"] < 0:
        values["max_samples"] = None
    for key in ("max_new_tokens", "batch_size"):
        if values[key] < 1:
            raise UserError(f"--{key.replace('_', '-')} must be >= 1, got {values[key]}")
    if values["temperature"] < 0 or not 0 < values["top_p"] <= 1:
        raise UserError("--temperature must be >= 0 and --top-p in (0, 1]")
    if args.out_dir:
        out_dir = args.out_dir
    elif args.eval_results:
        out_dir = str(Path(args.eval_results).parent)
    else:
        out_dir = pick(None, config, "evaluation", "out_dir")
    eval_results = args.eval_results or str(Path(out_dir) / RESULTS_NAME)
    checkpoint = args.checkpoint_path or str(Path(eval_results).with_suffix(".checkpoint.json"))
    # One rule with teachers.check, which tests this same model before a run (None: the built-in teacher).
    teacher_model = judge_teacher_model(args.teacher_model, config)
    return EvalSettings(**values, out_dir=out_dir, eval_results=eval_results, checkpoint_path=checkpoint,
                        split=args.split, baseline=args.baseline, teacher_model=teacher_model, device=args.device)


def main(args: argparse.Namespace) -> int:
    config = load_config(args.config)
    settings = settings_from(args, config)
    cli.print_settings("evaluate_student", {**vars(settings), "teacher_backend": config["teacher"]["backend"]})
    summary = run_evaluation(settings, config)
    print(format_table(summary))
    s = summary["speed"]
    print(f"speed: {s['samples_per_s']} samples/s, {s['ms_per_sample']} ms/sample (batch {s['batch_size']}, "
          f"{'constrained' if summary['constrained'] else 'free'} decoding)")
    if summary["overall"]["judge_error_rate"]:
        print(f"warning: the judge failed after its retries on a {summary['overall']['judge_error_rate']:.3f} "
              f"share of the rows (teacher_verdict 'error' in {settings.eval_results}); they count as not accepted "
              f"and are kept on resume: rerun with --no-resume to judge them again", file=sys.stderr)
    cli.print_outputs("evaluate_student", {"results": settings.eval_results, "summary": settings.summary_path,
                                           "checkpoint": settings.checkpoint_path})
    return 0


if __name__ == "__main__":
    sys.exit(cli.run(main, build_parser()))
