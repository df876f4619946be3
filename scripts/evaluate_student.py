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
  uv run scripts/evaluate_student.py --config config/offline-gemma.json \
      --gguf outputs/student_runs/gemma-dpo/export/student-q4_k_m.gguf --out-dir outputs/student_runs/gguf-eval
  uv run scripts/evaluate_student.py --dataset outputs/d_04_training_corpus.jsonl --split pref \
      --eval-results outputs/student_runs/alignment/pref_eval/evaluation_results.jsonl
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ast_distill import cli
from ast_distill.config import flag_settings, judge_teacher_model, load_config
from ast_distill.errors import UserError
from ast_distill.evaluation import RESULTS_NAME, EvalSettings, format_table, progress_path, run_evaluation
from ast_distill.records import SPLITS
from ast_distill.settings import EvaluationSettings, check_ranges


def build_parser() -> argparse.ArgumentParser:
    parser = cli.stage_parser(__doc__)
    parser.add_argument("--baseline", action="store_true",
                        help="evaluate the base model the LoRA adapter was trained from, with no adapter "
                             "(not available for the scratch student, which has no base)")
    parser.add_argument("--split", choices=SPLITS, help="evaluate only rows of this split (default: every row)")
    parser.add_argument("--eval-results", help=f"per-row results JSONL (default: <out_dir>/{RESULTS_NAME})")
    parser.add_argument("--checkpoint-path", help="progress JSON of a long run (default: next to the results, "
                                                  "<results>.checkpoint.json)")
    parser.add_argument("--device", help="cuda, mps or cpu (default: the best available)")
    parser.add_argument("--gguf", help="decode this GGUF of an export folder (scripts/export_student.py) with "
                                       "llama.cpp and its JSON-Schema grammar, one row at a time, instead of the "
                                       "checkpoint with transformers + xgrammar; --adapter still names the student")
    cli.add_settings_flags(parser, EvaluationSettings,  # every key of the evaluation section
                           notes={"out_dir": "when --eval-results is given and this is not, its folder"})
    return parser


def settings_from(args: argparse.Namespace, config: dict) -> EvalSettings:
    values = flag_settings(args, config, "evaluation")
    del values["out_dir"], values["teacher_model"]  # resolved below
    if args.gguf:
        if args.baseline:
            raise UserError("--gguf and --baseline exclude each other: a GGUF is the exported student, not its base")
        values["adapter"] = values["adapter"] or args.gguf  # the summary names what was evaluated
    if not values["adapter"]:
        raise UserError("no checkpoint to evaluate: pass --adapter DIR or set evaluation.adapter in the config")
    if values["max_samples"] is not None and values["max_samples"] < 0:
        values["max_samples"] = None
    check_ranges(EvaluationSettings, values)
    if args.out_dir:
        out_dir = args.out_dir
    elif args.eval_results:
        out_dir = str(Path(args.eval_results).parent)
    else:
        out_dir = config["evaluation"]["out_dir"]
    eval_results = args.eval_results or str(Path(out_dir) / RESULTS_NAME)
    checkpoint = args.checkpoint_path or progress_path(eval_results)
    # One rule with teachers.check, which tests this same model before a run (None: the built-in teacher).
    teacher_model = judge_teacher_model(args.teacher_model, config)
    return EvalSettings(**values, out_dir=out_dir, eval_results=eval_results, checkpoint_path=checkpoint,
                        split=args.split, baseline=args.baseline, teacher_model=teacher_model, device=args.device,
                        gguf=args.gguf)


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
