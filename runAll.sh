#!/usr/bin/env bash
# The whole pipeline in one command: dataset -> SFT -> evaluation + report -> DPO alignment + its report.
#
#   ./runAll.sh --config config/offline.json --with-training --with-evals --with-alignment   # CPU, no network
#   ./runAll.sh --with-training --with-evals --with-alignment                                # Ollama + Gemma
#
# Flags:
#   --config F          config file (default config/defaults.json)
#   --name NAME         a named training: everything under outputs/NAME/ (its config: outputs/NAME/config.json;
#                       made from --config, else the training's own); see trainings.py
#   --schema F          with --name: train for the user's own JSON Schema F (repeat for several)
#   --teacher-model M   teacher for domain specs, dataset, evaluation and alignment (default: config, LLM_MODEL)
#   --with-training     run SFT training after the dataset
#   --with-evals        evaluate the student on d_05 and write the report
#   --with-alignment    evaluate on the pref rows; DPO and the failure-focused boost beside it, each evaluated;
#                       keep the better of SFT, DPO and boost on the val rows; alignment report
#   --with-export       export the student (merged, GGUF F16/Q8_0/Q4_K_M, Modelfiles) and check each GGUF
# After evaluation, the quality gate (scripts/check_quality.py, the `gate` section) checks the final student:
# exit 1 when a check fails, one line each. Every stage resumes what an interrupted run left; logs in outputs/logs/
# (outputs/NAME/logs/ for a named training).
source "$(dirname "$0")/scripts/runner_common.sh"

usage() { sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; }
named_training_args runAll.sh 1 "$@" || exit 2; set -- "${RUNNER_ARGS[@]+"${RUNNER_ARGS[@]}"}"

CONFIG="config/defaults.json"; TEACHER=(); WITH_TRAINING=0; WITH_EVALS=0; WITH_ALIGNMENT=0; WITH_EXPORT=0
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
    --teacher-model) TEACHER=(--teacher-model "${2:?--teacher-model needs a model id}"); shift 2 ;;
    --with-training) WITH_TRAINING=1; shift ;;
    --with-evals) WITH_EVALS=1; shift ;;
    --with-alignment) WITH_ALIGNMENT=1; shift ;;
    --with-export) WITH_EXPORT=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: runAll.sh: unknown flag '$1' (see ./runAll.sh --help)" >&2; exit 2 ;;
  esac
done
[ -f "$CONFIG" ] || { echo "error: runAll.sh: config file '$CONFIG' does not exist" >&2; exit 2; }

if [ "$WITH_EXPORT" = 1 ]; then export AST_DISTILL_EXTRAS=export; fi  # one sync for every stage
ensure_env
LOG_DIR="outputs/logs"; [ -z "$NAMED_TRAINING" ] || LOG_DIR="$(dirname "$CONFIG")/logs"  # a named training's own
LOG_DIR="${RUNALL_LOG_DIR:-$LOG_DIR}"; mkdir -p "$LOG_DIR"  # RUNALL_LOG_DIR: tests keep logs out of outputs/
START=$(date +%s)

# Runs one stage with its output both on screen and in outputs/logs/<name>.log; names the stage on failure.
run_stage() {
  local name="$1"; shift
  local log="$LOG_DIR/$name.log" t0; t0=$(date +%s)
  echo "=== [$name] $* (log: $log)"
  if ! "$@" 2>&1 | tee "$log"; then
    echo "error: stage '$name' failed after $(( $(date +%s) - t0 )) s; see $log; run ./runAll.sh again to resume" >&2
    exit 1
  fi
  echo "=== [$name] done in $(( $(date +%s) - t0 )) s"
}

# Teacher-needing stages stop here, in one line, when an LLM teacher is configured but not reachable.
uv run --frozen python -m ast_distill.teachers.check --config "$CONFIG" "${TEACHER[@]}" || exit 2

run_stage dataset ./runDatasetGeneration.sh --config "$CONFIG" "${TEACHER[@]}"
if [ "$WITH_TRAINING" = 1 ]; then run_stage training ./runTraining.sh --config "$CONFIG"; fi
if [ "$WITH_EVALS" = 1 ]; then run_stage evaluation ./runEvals.sh --config "$CONFIG" "${TEACHER[@]}"; fi
if [ "$WITH_ALIGNMENT" = 1 ]; then run_stage alignment ./runAlignment.sh --config "$CONFIG" "${TEACHER[@]}"; fi
if [ "$WITH_EVALS" = 1 ] || [ "$WITH_ALIGNMENT" = 1 ]; then
  # The quality gate judges the student this run ends with: the one alignment chose (SFT, DPO or boost).
  GATE=()
  if [ "$WITH_ALIGNMENT" = 1 ]; then
    ALIGNED="$(uv run --frozen python -m ast_distill.alignment.choice get eval_summary --config "$CONFIG")"
    if [ -n "$ALIGNED" ] && [ -f "$ALIGNED" ]; then GATE=(--eval-summary "$ALIGNED"); fi
  fi
  echo "=== [gate] scripts/check_quality.py (log: $LOG_DIR/gate.log)"
  set +e
  uv run --frozen python scripts/check_quality.py --config "$CONFIG" "${GATE[@]+"${GATE[@]}"}" 2>&1 | tee "$LOG_DIR/gate.log"
  GATE_RC=${PIPESTATUS[0]}
  set -e
  if [ "$GATE_RC" != 0 ]; then
    echo "error: runAll.sh: the quality gate failed (the checks above; run_health.json beside the report)" >&2
    exit "$GATE_RC"
  fi
fi
if [ "$WITH_EXPORT" = 1 ]; then run_stage export ./runExport.sh --config "$CONFIG"; fi
echo "=== runAll.sh finished in $(( $(date +%s) - START )) s; reports under $(config_value "$CONFIG" reporting out_dir)"
