#!/usr/bin/env bash
# Creates .venv beside the checkout (if missing) and installs bert_tf into it.
# Usage: scripts/setup_venv.sh [EXTRAS]   e.g. scripts/setup_venv.sh interop,test
set -euo pipefail
cd "$(dirname "$0")/.."
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
if [ -n "${1:-}" ]; then
  .venv/bin/python -m pip install -q -e ".[$1]"
else
  .venv/bin/python -m pip install -q -e .
fi
