#!/usr/bin/env bash
# Set up (idempotent) and run the whole test suite plus the linter.
set -euo pipefail
cd "$(dirname "$0")/.."
# tests_ha runs twice: on the oldest Home Assistant we support (.venv-ha) and on the newest harness (Python 3.14 in a
# Debian chroot, scripts/setup-ha-newest.sh), whose set-up runs in the background beside the main set-up.
# SKIP_NEWEST_HA=1 skips the newest (not VOICECLONE_*: the server takes those as settings and refuses unknown ones).
newest_pid=""
stop_newest_setup() {
  if [ -n "$newest_pid" ]; then
    kill -TERM -- "-$newest_pid" 2>/dev/null || true # its own process group: debootstrap, apt, pip go too
    wait "$newest_pid" || true                          # its EXIT trap unmounts
  fi
}
if [ "${SKIP_NEWEST_HA:-0}" != 1 ]; then
  mkdir -p var
  setsid --wait bash scripts/setup-ha-newest.sh >var/setup-ha-newest.log 2>&1 &
  newest_pid=$!
  trap stop_newest_setup EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
fi
bash scripts/setup.sh
.venv/bin/ruff check voiceclone_core tests benchmarks scripts custom_components tests_ha
.venv/bin/ruff format --check voiceclone_core tests benchmarks scripts custom_components tests_ha
.venv/bin/python -m pytest "$@"
# The Home Assistant integration, inside Home Assistant's own test harness, against a real server process.
.venv-ha/bin/python -m pytest -c tests_ha/pytest.ini tests_ha -q -p no:sugar
if [ -n "$newest_pid" ]; then
  pid=$newest_pid
  newest_pid=""
  if ! wait "$pid"; then
    echo "setting up the newest Home Assistant harness failed (var/setup-ha-newest.log):" >&2
    tail -n 30 var/setup-ha-newest.log >&2
    exit 1
  fi
  cat var/setup-ha-newest.log
  bash scripts/test-ha-newest.sh
fi
