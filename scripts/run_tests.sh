#!/usr/bin/env bash
# Sets up .venv with the test and interop extras, then runs the test suite.
# Extra arguments go to pytest (e.g. `-m slow` for the end-to-end tests).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup_venv.sh interop,test
export TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest "$@"
