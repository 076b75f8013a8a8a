#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite plus the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check voiceclone_core tests benchmarks scripts custom_components tests_ha
.venv/bin/ruff format --check voiceclone_core tests benchmarks scripts custom_components tests_ha
.venv/bin/python -m pytest "$@"
# The Home Assistant integration, inside Home Assistant's own test harness, against a real server process.
.venv-ha/bin/python -m pytest -c tests_ha/pytest.ini tests_ha -q -p no:sugar
