#!/usr/bin/env bash
# Evaluation of the SFT student on the test set (d_05), then the Markdown + plots report.
#
#   ./runEvals.sh --config config/offline.json                      # scratch student, built-in teacher
#   ./runEvals.sh --adapter outputs/student_runs/gemma3-270m/checkpoint-final --teacher-model gpt-oss:120b
#   ./runEvals.sh --config config/defaults.dev.json --teacher-model gpt-oss:20b --max-samples 20
#
# Flags:
#   --config F          config file (default config/defaults.json)
#   --name NAME         a named training: everything under outputs/NAME/ (its config: outputs/NAME/config.json;
#                       made by ./runAll.sh --name NAME --schema FILE, or from --config when given)
#   --adapter DIR       checkpoint to evaluate, or a run dir = its selected checkpoint (checkpoint-best from the
#                       sweep, else checkpoint-final) (default: evaluation.adapter)
#   --teacher-model M   judge model (default: evaluation.teacher_model, LLM_MODEL, .llmrc, then
#                       dataset_generation.teacher_model; the built-in grammar teacher needs none)
#   --out-dir D         evaluation folder (default: evaluation.out_dir)
#   --no-baseline       skip the untuned base model's evaluation (a LoRA adapter's base, constrained)
#   anything else is forwarded to every scripts/evaluate_student.py run (see its --help)
# Runs: constrained decoding into <out_dir>, free decoding into <out_dir>/unconstrained, the untuned base
# model of a LoRA adapter (constrained, same rows) into <out_dir>-base, and, when the DPO run in
# <alignment.output_dir> (the boost run in <boost.output_dir>) finished, its selected checkpoint into
# <out_dir>-dpo (<out_dir>-boost); then scripts/report_training.py (report.md, and alignment_report.md when a DPO
# or boost evaluation exists).
# Every evaluation resumes by row id from what an interrupted run wrote (pass --no-resume to start over).
source "$(dirname "$0")/scripts/runner_common.sh"

usage() { sed -n '2,24p' "$0" | sed 's/^# \{0,1\}//'; }
named_training_args runEvals.sh 0 "$@" || exit 2; set -- "${RUNNER_ARGS[@]+"${RUNNER_ARGS[@]}"}"

CONFIG="config/defaults.json"; ADAPTER=""; OUT_DIR=""; TEACHER=(); FORWARD=(); BASELINE=1
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
    --config=*) CONFIG="${1#--config=}"; shift ;;
    --adapter) ADAPTER="${2:?--adapter needs a checkpoint dir}"; shift 2 ;;
    --adapter=*) ADAPTER="${1#--adapter=}"; shift ;;
    --out-dir) OUT_DIR="${2:?--out-dir needs a folder}"; shift 2 ;;
    --out-dir=*) OUT_DIR="${1#--out-dir=}"; shift ;;
    --teacher-model) TEACHER=(--teacher-model "${2:?--teacher-model needs a model id}"); shift 2 ;;
    --teacher-model=*) TEACHER=(--teacher-model "${1#--teacher-model=}"); shift ;;
    --eval-results|--eval-results=*|--checkpoint-path|--checkpoint-path=*)
      echo "error: runEvals.sh: $1 is chosen by the runner (one folder per run); pass --out-dir instead" >&2
      exit 2 ;;
    --no-baseline) BASELINE=0; shift ;;
    -h|--help) usage; exit 0 ;;
    *) FORWARD+=("$1"); shift ;;
  esac
done
[ -f "$CONFIG" ] || { echo "error: runEvals.sh: config file '$CONFIG' does not exist" >&2; exit 2; }

ensure_env
[ -n "$ADAPTER" ] || ADAPTER="$(config_value "$CONFIG" evaluation adapter)"
[ -n "$ADAPTER" ] || { echo "error: runEvals.sh: no checkpoint to evaluate: pass --adapter DIR or set" \
  "evaluation.adapter in $CONFIG" >&2; exit 2; }
ADAPTER="$(checkpoint_to_use runEvals.sh "$ADAPTER" "$CONFIG")" || exit 2
[ -n "$OUT_DIR" ] || OUT_DIR="$(config_value "$CONFIG" evaluation out_dir)"
OUT_DIR="${OUT_DIR%/}"
DPO_DIR="$(config_value "$CONFIG" alignment output_dir)"; BOOST_DIR="$(config_value "$CONFIG" boost output_dir)"
DPO_STUDENT=""; BOOST_STUDENT=""
if [ -d "$DPO_DIR" ]; then DPO_STUDENT="$(selected_checkpoint "$DPO_DIR")"; fi
if [ -d "$BOOST_DIR" ]; then BOOST_STUDENT="$(selected_checkpoint "$BOOST_DIR")"; fi

# An LLM judge that does not answer stops here, in one line, before any generation.
CHECK=("${TEACHER[@]+"${TEACHER[@]}"}")
EVAL_TEACHER="$(config_value "$CONFIG" evaluation teacher_model)"
if [ ${#CHECK[@]} -eq 0 ] && [ -n "$EVAL_TEACHER" ]; then CHECK=(--teacher-model "$EVAL_TEACHER"); fi
uv run --frozen python -m ast_distill.teachers.check --config "$CONFIG" "${CHECK[@]+"${CHECK[@]}"}" || exit 2

evaluate() {  # evaluate ADAPTER OUT_DIR [flags...]
  local adapter="$1" out="$2"; shift 2
  echo "== runEvals: $adapter -> $out $*"
  uv run --frozen scripts/evaluate_student.py --config "$CONFIG" --adapter "$adapter" --out-dir "$out" \
    "${TEACHER[@]+"${TEACHER[@]}"}" "${FORWARD[@]+"${FORWARD[@]}"}" "$@"
}

evaluate "$ADAPTER" "$OUT_DIR" --constrained
evaluate "$ADAPTER" "$OUT_DIR/unconstrained" --no-constrained

REPORT=(--config "$CONFIG" --eval-summary "$OUT_DIR/evaluation_summary.json"
        --eval-results "$OUT_DIR/evaluation_results.jsonl"
        --unconstrained-summary "$OUT_DIR/unconstrained/evaluation_summary.json")
# The SFT run's metrics sit beside its checkpoint-final (the report's own default is training.output_dir).
if [ -f "$(dirname "$ADAPTER")/training_metrics.jsonl" ]; then
  REPORT+=(--training-metrics "$(dirname "$ADAPTER")/training_metrics.jsonl")
fi
# The base model the adapter was trained from, on the same rows: what fine-tuning added (a model trained in
# full, the scratch student, has no base to compare with).
if [ "$BASELINE" = 1 ] && [ -f "$ADAPTER/adapter_config.json" ]; then
  evaluate "$ADAPTER" "$(baseline_eval_dir "$OUT_DIR")" --baseline --constrained
  REPORT+=(--baseline-summary "$(baseline_eval_dir "$OUT_DIR")/evaluation_summary.json")
fi
if [ -n "$DPO_STUDENT" ]; then
  evaluate "$DPO_STUDENT" "$OUT_DIR-dpo" --constrained
  REPORT+=(--dpo-eval-summary "$OUT_DIR-dpo/evaluation_summary.json"
           --dpo-training-metrics "$DPO_DIR/training_metrics.jsonl")
fi
if [ -n "$BOOST_STUDENT" ]; then
  evaluate "$BOOST_STUDENT" "$OUT_DIR-boost" --constrained
  REPORT+=(--boost-eval-summary "$OUT_DIR-boost/evaluation_summary.json"
           --boost-training-metrics "$BOOST_DIR/training_metrics.jsonl")
fi

if [ -f scripts/report_training.py ]; then
  uv run --frozen scripts/report_training.py "${REPORT[@]}"
else
  echo "== runEvals: scripts/report_training.py is not there; skipping the report"
fi
echo "== runEvals: done; evaluations under $OUT_DIR"
