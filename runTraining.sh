#!/usr/bin/env bash
# SFT training of the student (scripts/train_student.py), resuming from the newest checkpoint.
#
#   ./runTraining.sh --config config/offline.json            # scratch student on a CPU, no network
#   ./runTraining.sh                                          # Gemma 3 270M + LoRA (Unsloth on CUDA)
#   ./runTraining.sh --config config/offline.json --max-steps 50 --output-dir /tmp/sft
#   ./runTraining.sh --force                                  # train again even if checkpoint-final exists
#
# Flags:
#   --config F   config file (default config/defaults.json)
#   --name NAME  a named training: everything under outputs/NAME/ (its config: outputs/NAME/config.json, made by
#                ./runAll.sh --name NAME --schema FILE, or from --config when given)
#   --force      train again, from scratch, even when <output_dir>/checkpoint-final is complete
#                (old checkpoint-N dirs are not deleted: remove them for a clean run dir)
#   anything else is forwarded to scripts/train_student.py (see its --help)
# TRAIN_PROCESSES=N (environment) trains in N data-parallel processes under torchrun (one per GPU; README: scale-out).
# When <output_dir> holds checkpoint-N dirs, training goes on from the newest (--resume-from-checkpoint auto);
# delete them to start over. A run trained on another corpus than the one there now (the dataset was made
# again) is deleted first (its checkpoints and sweep) and trained again. Then, when sweep.enabled is true, the
# checkpoint sweep (scripts/select_checkpoint.py) scores every kept checkpoint on the val rows and copies the best
# to <output_dir>/checkpoint-best.
source "$(dirname "$0")/scripts/runner_common.sh"

usage() { sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; }
named_training_args runTraining.sh 0 "$@" || exit 2; set -- "${RUNNER_ARGS[@]+"${RUNNER_ARGS[@]}"}"

FORCE=0; FORWARD=()
for arg in "$@"; do
  case "$arg" in
    --force) FORCE=1 ;;
    -h|--help) usage; exit 0 ;;
    *) FORWARD+=("$arg") ;;
  esac
done

CONFIG="$(config_from_args "${FORWARD[@]+"${FORWARD[@]}"}")"
[ -f "$CONFIG" ] || { echo "error: runTraining.sh: config file '$CONFIG' does not exist" >&2; exit 2; }
HAS_CONFIG=0
for arg in "${FORWARD[@]+"${FORWARD[@]}"}"; do
  case "$arg" in --config|--config=*) HAS_CONFIG=1 ;; esac
done
[ "$HAS_CONFIG" = 1 ] || FORWARD=(--config "$CONFIG" "${FORWARD[@]+"${FORWARD[@]}"}")

ensure_env
training_launcher runTraining.sh || exit 2

# The output dir and the corpus: a flag wins over the config.
OUTPUT_DIR="$(flag_value --output-dir "${FORWARD[@]}")"
[ -n "$OUTPUT_DIR" ] || OUTPUT_DIR="$(config_value "$CONFIG" training output_dir)"
CORPUS="$(flag_value --training-corpus "${FORWARD[@]}")"
[ -n "$CORPUS" ] || CORPUS="$(config_value "$CONFIG" training training_corpus)"

# A run trained on other rows than the corpus holds now (the dataset was made again) is of another lineage.
if GONE="$(uv run --frozen python -m ast_distill.runs stale "$OUTPUT_DIR" --corpus "$CORPUS")"; then
  echo "== training: $OUTPUT_DIR was trained on other rows than $CORPUS holds now: deleted its $GONE; training again"
fi

FINAL="$OUTPUT_DIR/checkpoint-final"
if [ "$FORCE" = 0 ] && final_complete "$OUTPUT_DIR"; then
  echo "== training: $FINAL is already complete; nothing to train (pass --force to train again)"
else
  RESUME=(--resume-from-checkpoint auto)
  for arg in "${FORWARD[@]}"; do
    case "$arg" in --resume-from-checkpoint|--resume-from-checkpoint=*) RESUME=() ;; esac
  done
  if [ "$FORCE" = 1 ] && [ ${#RESUME[@]} -gt 0 ]; then
    RESUME=()  # --force: a fresh run, whatever checkpoints are there
  fi
  LATEST="$(latest_checkpoint "$OUTPUT_DIR")"
  if [ ${#RESUME[@]} -gt 0 ] && [ -n "$LATEST" ]; then echo "== training: resuming from $LATEST"; fi
  "${TRAIN_LAUNCH[@]}" scripts/train_student.py "${FORWARD[@]}" "${RESUME[@]+"${RESUME[@]}"}"
fi
# The sweep resumes what it already scored, so on a finished run it only re-reads its evaluations.
sweep_run "$CONFIG" "$OUTPUT_DIR"
