#!/usr/bin/env bash
# Runs the test suite: installs uv (pip) when missing, syncs the locked environment, runs pytest.
#   ./runTests.sh                     every test, the slow end-to-end ones included (what CI runs)
#   ./runTests.sh -m "not slow"       the fast tests only (a few minutes on 2 cores)
#   ./runTests.sh tests/test_dsl.py   any pytest arguments
source "$(dirname "$0")/scripts/runner_common.sh"
AST_DISTILL_EXTRAS=export ensure_env  # the export tests load GGUFs with llama.cpp
export CUDA_VISIBLE_DEVICES="${CUDA_VISIBLE_DEVICES-}"  # tests are CPU-only and hermetic
if [ $# -eq 0 ]; then
  set -- -m "slow or not slow"
fi
exec uv run --frozen pytest "$@"
