#!/usr/bin/env bash
# Learning from the SFT student's mistakes after SFT, two ways side by side, in six resumable steps:
#   1. evaluate the SFT student on the pref rows of d_04 (free decoding, so mistakes show; the teacher judges)
#   2. DPO: chosen/rejected pairs from the teacher's verdicts (scripts/build_alignment_pairs.py), DPO on them
#      (scripts/train_alignment_dpo.py, going on from the newest checkpoint-N), then the DPO run's sweep
#   3. boost (when boost.enabled): new teacher rows aimed at the failures (scripts/build_boost_rows.py), a short
#      SFT from the same checkpoint on train + those rows (scripts/train_boost.py), then the boost run's sweep
#   4. evaluate the DPO and the boosted student on the same d_05 rows as the SFT evaluation, into
#      <evaluation.out_dir>-dpo and <evaluation.out_dir>-boost
#   5. choose the student the stage ends with: SFT, DPO or boost, by their sweeps' val figures (never test rows)
#      -> aligned.json beside the pairs (the gate in runAll.sh and the export default use it)
#   6. write alignment_report.md (SFT vs DPO vs boost) with scripts/report_training.py
#
#   ./runAlignment.sh --config config/offline.json        # built-in teacher, scratch student, CPU
#   ./runAlignment.sh --adapter outputs/student_runs/gemma3-270m/checkpoint-final --teacher-model gpt-oss:120b
#
# Flags:
#   --config F          config file (default config/defaults.json); every path comes from it
#   --name NAME         a named training: everything under outputs/NAME/ (its config: outputs/NAME/config.json;
#                       made by ./runAll.sh --name NAME --schema FILE, or from --config when given)
#   --adapter DIR       the SFT checkpoint to align, or its run dir = its selected checkpoint (checkpoint-best,
#                       else checkpoint-final) (default: alignment.adapter)
#   --teacher-model M   the judging teacher (default: evaluation.teacher_model, then LLM_MODEL, then .llmrc)
#   --no-resume         start over: the evaluations below drop their old results, the boost rows are written
#                       again, DPO and the boost train from scratch, even over a complete checkpoint-final (old
#                       checkpoint-N dirs are not deleted)
#   anything else is forwarded to every scripts/evaluate_student.py run (see its --help), e.g. --max-new-tokens
# Otherwise a complete checkpoint-final of DPO or of the boost is kept (delete it to train again), training goes
# on from the newest checkpoint-N, and each evaluation resumes results made by the same weights and settings.
# The SFT student's d_05 evaluation (runEvals.sh's) is run here only when its summary is missing.
# TRAIN_PROCESSES=N (environment) trains DPO and the boost in N data-parallel processes under torchrun.
source "$(dirname "$0")/scripts/runner_common.sh"

usage() { sed -n '2,31p' "$0" | sed 's/^# \{0,1\}//'; }
named_training_args runAlignment.sh 0 "$@" || exit 2; set -- "${RUNNER_ARGS[@]+"${RUNNER_ARGS[@]}"}"

CONFIG="config/defaults.json"; ADAPTER=""; TEACHER=(); NO_RESUME=0; FORWARD=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
    --config=*) CONFIG="${1#--config=}"; shift ;;
    --adapter) ADAPTER="${2:?--adapter needs a checkpoint dir}"; shift 2 ;;
    --adapter=*) ADAPTER="${1#--adapter=}"; shift ;;
    --teacher-model) TEACHER=(--teacher-model "${2:?--teacher-model needs a model id}"); shift 2 ;;
    --teacher-model=*) TEACHER=(--teacher-model "${1#--teacher-model=}"); shift ;;
    --no-resume) NO_RESUME=1; shift ;;
    --dataset|--dataset=*|--split|--split=*|--out-dir|--out-dir=*|--eval-results|--eval-results=*|\
    --checkpoint-path|--checkpoint-path=*)
      echo "error: runAlignment.sh: $1 is chosen by the runner (from the config's alignment and evaluation paths)" >&2
      exit 2 ;;
    -h|--help) usage; exit 0 ;;
    *) FORWARD+=("$1"); shift ;;
  esac
done
[ -f "$CONFIG" ] || { echo "error: runAlignment.sh: config file '$CONFIG' does not exist" >&2; exit 2; }

ensure_env
# A bad forwarded flag stops here, in one line, before any step runs.
check_forwarded_flags runAlignment.sh scripts/evaluate_student.py "${FORWARD[@]+"${FORWARD[@]}"}" || exit 2
EVAL_FLAGS=("${TEACHER[@]+"${TEACHER[@]}"}" "${FORWARD[@]+"${FORWARD[@]}"}")
if [ "$NO_RESUME" = 1 ]; then EVAL_FLAGS+=(--no-resume); fi

# Every path from the config (one python call).
mapfile -t CFG < <(uv run --frozen python -c "import sys; from ast_distill.config import load_config; \
c = load_config(sys.argv[1]); a, e = c['alignment'], c['evaluation']; \
print('\n'.join('' if v is None else str(v) for v in (a['adapter'], a['eval_results'], a['pairs_out'], \
a['output_dir'], a['pref_max_samples'], c['training']['training_corpus'], e['out_dir'], \
c['boost']['enabled'], c['boost']['output_dir'])))" "$CONFIG")
[ ${#CFG[@]} -eq 9 ] || { echo "error: runAlignment.sh: could not read the paths of $CONFIG" >&2; exit 2; }
[ -n "$ADAPTER" ] || ADAPTER="${CFG[0]}"
PREF_RESULTS="${CFG[1]}"; PAIRS="${CFG[2]}"; DPO_DIR="${CFG[3]}"; PREF_MAX="${CFG[4]:--1}"
CORPUS="${CFG[5]}"; SFT_EVAL_DIR="${CFG[6]}"; DPO_EVAL_DIR="${SFT_EVAL_DIR%/}-dpo"
BOOST="${CFG[7]}"; BOOST_DIR="${CFG[8]}"; BOOST_EVAL_DIR="${SFT_EVAL_DIR%/}-boost"

[ -e "$ADAPTER" ] || { echo "error: runAlignment.sh: SFT checkpoint '$ADAPTER' does not exist; run ./runTraining.sh --config $CONFIG first (or pass --adapter DIR)" >&2; exit 2; }
# A run dir means its selected checkpoint: every step below uses that one checkpoint.
ADAPTER="$(checkpoint_to_use runAlignment.sh "$ADAPTER" "$CONFIG")" || exit 2
[ -f "$CORPUS" ] || { echo "error: runAlignment.sh: training corpus '$CORPUS' does not exist; run ./runDatasetGeneration.sh --config $CONFIG first" >&2; exit 2; }

# An LLM teacher that does not answer stops the stage here, in one line.
uv run --frozen python -m ast_distill.teachers.check --config "$CONFIG" "${TEACHER[@]+"${TEACHER[@]}"}" || exit 2
PY=(uv run --frozen)
training_launcher runAlignment.sh || exit 2

echo "=== [alignment 1/6] SFT student on the pref rows (free decoding, teacher verdicts) -> $PREF_RESULTS"
"${PY[@]}" scripts/evaluate_student.py --config "$CONFIG" --adapter "$ADAPTER" --dataset "$CORPUS" --split pref \
  --no-constrained --max-samples "$PREF_MAX" --eval-results "$PREF_RESULTS" --out-dir "$(dirname "$PREF_RESULTS")" \
  "${EVAL_FLAGS[@]+"${EVAL_FLAGS[@]}"}"

echo "=== [alignment 2/6] DPO pairs -> $PAIRS"
"${PY[@]}" scripts/build_alignment_pairs.py --config "$CONFIG" --eval-results "$PREF_RESULTS" --out "$PAIRS" \
  --adapter "$ADAPTER"
# Trains one run (DPO or boost) on from $ADAPTER unless its checkpoint-final is complete: fresh with --no-resume,
# else going on from its newest checkpoint-N. Usage: train_run LABEL RUN_DIR SCRIPT FLAGS...
train_run() {
  local label="$1" dir="$2" gone; shift 2
  # A run made from other weights than the SFT student has now (SFT was trained again) is of another lineage.
  if gone="$(uv run --frozen python -m ast_distill.runs stale "$dir" "$ADAPTER")"; then
    echo "=== [alignment] $dir was trained on from other weights than $ADAPTER holds now: deleted its $gone; training $label again"
  fi
  if [ "$NO_RESUME" = 0 ] && final_complete "$dir"; then
    echo "=== [alignment] $dir/checkpoint-final is already complete; kept (delete it or pass --no-resume to train $label again)"
  elif [ "$NO_RESUME" = 1 ]; then
    echo "=== [alignment] $label -> $dir (from scratch: --no-resume)"
    "${TRAIN_LAUNCH[@]}" "$@"
  else
    local latest; latest="$(latest_checkpoint "$dir")"
    echo "=== [alignment] $label -> $dir${latest:+ (resuming from $latest)}"
    "${TRAIN_LAUNCH[@]}" "$@" --resume-from-checkpoint auto
  fi
  # A new checkpoint needs no --no-resume below: its evaluations resume only results of the same weights.
  sweep_run "$CONFIG" "$dir" "${TEACHER[@]+"${TEACHER[@]}"}"
}

DPO_STUDENT=""
if [ ! -s "$PAIRS" ]; then
  echo "=== alignment: no DPO pairs (the teacher rejected no student output that differs from its own AST): no DPO"
else
  train_run DPO "$DPO_DIR" scripts/train_alignment_dpo.py --config "$CONFIG" --pairs "$PAIRS" --adapter "$ADAPTER" \
    --output-dir "$DPO_DIR"
  DPO_STUDENT="$(selected_checkpoint "$DPO_DIR")"
fi

BOOST_STUDENT=""
if [ "$BOOST" = "True" ]; then
  echo "=== [alignment 3/6] boost rows aimed at the failures of step 1"
  BOOST_ROWS=(--config "$CONFIG" "${TEACHER[@]+"${TEACHER[@]}"}")
  if [ "$NO_RESUME" = 1 ]; then BOOST_ROWS+=(--no-resume); fi
  "${PY[@]}" scripts/build_boost_rows.py "${BOOST_ROWS[@]}"
  train_run boost "$BOOST_DIR" scripts/train_boost.py --config "$CONFIG" --start-from "$ADAPTER"
  BOOST_STUDENT="$(selected_checkpoint "$BOOST_DIR")"
fi

# The SFT side of the comparison: its d_05 evaluation, run here only when it is missing.
if [ ! -f "$SFT_EVAL_DIR/evaluation_summary.json" ]; then
  echo "=== [alignment 4/6] SFT student on d_05 (no evaluation found in $SFT_EVAL_DIR)"
  "${PY[@]}" scripts/evaluate_student.py --config "$CONFIG" --adapter "$ADAPTER" --out-dir "$SFT_EVAL_DIR" \
    "${EVAL_FLAGS[@]+"${EVAL_FLAGS[@]}"}"
fi
if [ -n "$DPO_STUDENT" ]; then
  echo "=== [alignment 4/6] DPO student on the same d_05 rows -> $DPO_EVAL_DIR"
  "${PY[@]}" scripts/evaluate_student.py --config "$CONFIG" --adapter "$DPO_STUDENT" --out-dir "$DPO_EVAL_DIR" \
    "${EVAL_FLAGS[@]+"${EVAL_FLAGS[@]}"}"
fi
if [ -n "$BOOST_STUDENT" ]; then
  echo "=== [alignment 4/6] boosted student on the same d_05 rows -> $BOOST_EVAL_DIR"
  "${PY[@]}" scripts/evaluate_student.py --config "$CONFIG" --adapter "$BOOST_STUDENT" --out-dir "$BOOST_EVAL_DIR" \
    "${EVAL_FLAGS[@]+"${EVAL_FLAGS[@]}"}"
fi

echo "=== [alignment 5/6] the student alignment ends with"
"${PY[@]}" python -m ast_distill.alignment.choice choose --config "$CONFIG"

echo "=== [alignment 6/6] alignment report"
REPORT=(--eval-summary "$SFT_EVAL_DIR/evaluation_summary.json")
if [ -n "$DPO_STUDENT" ]; then
  REPORT+=(--dpo-eval-summary "$DPO_EVAL_DIR/evaluation_summary.json"
           --dpo-training-metrics "$DPO_DIR/training_metrics.jsonl")
fi
if [ -n "$BOOST_STUDENT" ]; then
  REPORT+=(--boost-eval-summary "$BOOST_EVAL_DIR/evaluation_summary.json"
           --boost-training-metrics "$BOOST_DIR/training_metrics.jsonl")
fi
SFT_METRICS="$(dirname "$ADAPTER")/training_metrics.jsonl"
if [ -f "$SFT_METRICS" ]; then REPORT+=(--training-metrics "$SFT_METRICS"); fi
# the untuned base's evaluation, when runEvals.sh made one, keeps its column in report.md's versions table
BASE_SUMMARY="$(baseline_eval_dir "$SFT_EVAL_DIR")/evaluation_summary.json"
if [ -f "$BASE_SUMMARY" ]; then REPORT+=(--baseline-summary "$BASE_SUMMARY"); fi
"${PY[@]}" scripts/report_training.py --config "$CONFIG" "${REPORT[@]}"
echo "=== alignment done: DPO ${DPO_STUDENT:-not trained}, boost ${BOOST_STUDENT:-not trained}; the aligned student: $("${PY[@]}" python -m ast_distill.alignment.choice get checkpoint --config "$CONFIG")"
