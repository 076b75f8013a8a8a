#!/usr/bin/env bash
# Run tests_ha on the newest Home Assistant harness (scripts/setup-ha-newest.sh: Python 3.14 in a Debian forky chroot),
# with the VoiceClone server on the host's .venv (Python 3.11) as beside a real Home Assistant. Needs root. Extra
# arguments go to pytest; the exit status is pytest's. Everything is unmounted on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/ha-newest-lib.sh
source scripts/ha-newest-lib.sh
ha_need_root "$@"

if [ ! -f "$HA_CHROOT$HA_VENV/.voiceclone-requirements.txt" ]; then
  echo "the newest-HA harness is not built: run scripts/setup-ha-newest.sh" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ]; then
  echo ".venv missing: run scripts/setup.sh" >&2
  exit 1
fi

ha_lock
trap ha_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
rm -rf "$HA_SCRATCH/tmp" # the host side of the scratch folder: never a mount point
mkdir -p "$HA_SCRATCH/tmp"
ha_mount_test

# The server's interpreter as tests_ha/conftest.py runs it (VOICECLONE_SERVER_PYTHON): the checkout's .venv, run in
# the host's root; exec all the way down, so the PID the harness terminates is the server's own.
server_python=$HA_SCRATCH/server-python
cat >"$server_python" <<EOF
#!/bin/sh
exec /usr/sbin/chroot /host /bin/sh -c 'cd "\$1" 2>/dev/null || cd /; shift; exec "\$0" "\$@"' \\
  "$ROOT/.venv/bin/python" "\$PWD" "\$@"
EOF
chmod +x "$server_python"

status=0
# shellcheck disable=SC2016 # $1 and $@ are the inner shell's
ha_in_chroot TMPDIR="$HA_SCRATCH/tmp" PYTHONDONTWRITEBYTECODE=1 VOICECLONE_SERVER_PYTHON="$server_python" -- \
  sh -c 'cd "$1" && shift && exec "$@"' sh "$ROOT" \
  "$HA_VENV/bin/python" -m pytest -c tests_ha/pytest.ini tests_ha -q -p no:sugar -p no:cacheprovider \
  --basetemp="$HA_SCRATCH/pytest" --timeout=300 "$@" || status=$?
exit "$status"
