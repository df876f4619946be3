#!/usr/bin/env bash
# Export of the student (scripts/export_student.py): merged model, GGUF F16 / Q8_0 / Q4_K_M, Ollama Modelfiles,
# each GGUF checked against the transformers student on d_05 rows.
#
#   ./runExport.sh --config config/offline-gemma.json
#   ./runExport.sh --checkpoint outputs/student_runs/gemma/checkpoint-final --verify-rows 20
#
# Flags: every flag of scripts/export_student.py (see its --help), forwarded; --name NAME = a named training
# (outputs/NAME/config.json, made by ./runAll.sh --name NAME --schema FILE).
# Set-up: installs the `export` extra (llama-cpp-python, compiled once from its source distribution: measured
# ~8 min on a 2-core AVX2 CPU, then cached by uv) and caches llama.cpp's GGUF converter from that same source
# distribution, so the export itself needs no network. A rerun with the same checkpoint and settings keeps
# the export folder; any change rebuilds it whole.
source "$(dirname "$0")/scripts/runner_common.sh"

usage() { sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; }
named_training_args runExport.sh 0 "$@" || exit 2; set -- "${RUNNER_ARGS[@]+"${RUNNER_ARGS[@]}"}"
for arg in "$@"; do
  case "$arg" in -h|--help) usage; exit 0 ;; esac
done
CONFIG="$(config_from_args "$@")"
[ -f "$CONFIG" ] || { echo "error: runExport.sh: config file '$CONFIG' does not exist" >&2; exit 2; }

AST_DISTILL_EXTRAS=export ensure_env
exec uv run --frozen python scripts/export_student.py "$@"
