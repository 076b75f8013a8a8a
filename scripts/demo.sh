#!/usr/bin/env bash
# Set up (idempotent) and show cloning end to end on the embedded engine (CPU, nothing downloaded).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/python -m scripts.demo "$@"
