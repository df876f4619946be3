#!/usr/bin/env bash
# Dataset generation, stages 1-4: domain specs -> schemas -> (request, AST) rows -> training corpus + test set.
#
#   ./runDatasetGeneration.sh --config config/offline.json                 # built-in teacher, no network
#   ./runDatasetGeneration.sh --teacher-model gpt-oss:120b                  # Ollama teacher (config/defaults.json)
#
# Flags:
#   --config F          config file (default config/defaults.json)
#   --name NAME         a named training: everything under outputs/NAME/ (its config: outputs/NAME/config.json;
#                       made by ./runAll.sh --name NAME --schema FILE, or from --config when given)
#   --teacher-model M   LLM teacher for domain specs and rows (default: dataset_generation.teacher_model, LLM_MODEL)
# Writes outputs/d_01..d_05 (paths from the config) and indented copies under outputs/pretty/.
# A rerun resumes: stage 1 keeps the specs made with the same settings (so the schema ids stay), stage 3 the
# rows already in its output; pass nothing special to continue an interrupted run.
source "$(dirname "$0")/scripts/runner_common.sh"

usage() { sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; }
named_training_args runDatasetGeneration.sh 0 "$@" || exit 2; set -- "${RUNNER_ARGS[@]+"${RUNNER_ARGS[@]}"}"

CONFIG="config/defaults.json"; TEACHER=()
while [ $# -gt 0 ]; do
  case "$1" in
    --config) CONFIG="${2:?--config needs a file}"; shift 2 ;;
    --teacher-model) TEACHER=(--teacher-model "${2:?--teacher-model needs a model id}"); shift 2 ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: runDatasetGeneration.sh: unknown flag '$1' (see ./runDatasetGeneration.sh --help)" >&2; exit 2 ;;
  esac
done
[ -f "$CONFIG" ] || { echo "error: runDatasetGeneration.sh: config file '$CONFIG' does not exist" >&2; exit 2; }

ensure_env
START=$(date +%s)
# An LLM teacher that does not answer (or lacks the model that generates) stops here, in one line.
uv run --frozen python -m ast_distill.teachers.check --config "$CONFIG" --role generate "${TEACHER[@]}" || exit 2
uv run --frozen scripts/generate_domain_specs.py --config "$CONFIG" "${TEACHER[@]}"
uv run --frozen scripts/build_schemas.py --config "$CONFIG"
uv run --frozen scripts/generate_dataset.py --config "$CONFIG" "${TEACHER[@]}"
uv run --frozen scripts/build_training_corpus.py --config "$CONFIG"
echo "=== runDatasetGeneration.sh finished in $(( $(date +%s) - START )) s"
