#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite plus the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check voiceclone_core tests benchmarks scripts
.venv/bin/python -m pytest "$@"
