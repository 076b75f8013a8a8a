#!/usr/bin/env bash
# Idempotent set-up of the newest Home Assistant test harness for tests_ha: a Debian forky chroot (Python 3.14, which
# bookworm lacks) with espeak-ng, mosquitto and a venv of tests_ha/requirements-newest.txt. Built once (2-3 min),
# then only brought up to date; --rebuild builds it anew. Needs root. See scripts/ha-newest-lib.sh for where it lives
# and how it is mounted.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
# shellcheck source=scripts/ha-newest-lib.sh
source scripts/ha-newest-lib.sh
ha_need_root "$@"

SUITE=forky # HA >= 2026.3 needs Python >= 3.14.2: forky has it, trixie has 3.13
MIRROR=${HA_NEWEST_MIRROR:-$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null)}
MIRROR=${MIRROR:-http://deb.debian.org/debian}
APT_PACKAGES="python3.14 python3.14-venv ca-certificates espeak-ng mosquitto"
t0=$SECONDS
step() { echo "[setup-ha-newest $((SECONDS - t0)) s] $*"; }

ha_lock
trap ha_cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# apt on the host, waiting while another apt (scripts/setup.sh, run beside this) holds its locks.
host_apt_install() {
  local out
  for _ in $(seq 60); do
    if out=$({ apt-get install -y -qq "$@" || { apt-get update -qq && apt-get install -y -qq "$@"; }; } 2>&1); then
      return 0
    fi
    grep -q "Could not get lock\|Unable to acquire\|Unable to lock" <<<"$out" || break
    sleep 10
  done
  echo "$out" >&2
  return 1
}

# 1. The base system (debootstrap), once. A half-built one (an interrupted run) is thrown away, and so is a built one
# with --rebuild.
if [ "${1:-}" = --rebuild ]; then rm -f "$HA_BASE/debootstrap.done"; fi
if [ ! -f "$HA_BASE/debootstrap.done" ]; then
  if [ -e "$HA_CHROOT" ]; then
    ha_cleanup
    ha_safe_rm "$HA_CHROOT"
  fi
  command -v debootstrap >/dev/null || DEBIAN_FRONTEND=noninteractive host_apt_install debootstrap
  step "debootstrap $SUITE from $MIRROR"
  # bookworm's debootstrap has no script for forky: sid's fits testing and unstable alike.
  debootstrap --variant=minbase "$SUITE" "$HA_CHROOT" "$MIRROR" /usr/share/debootstrap/scripts/sid >/dev/null
  touch "$HA_BASE/debootstrap.done"
fi

ha_mount_base
# The mirror may be a dated snapshot whose Release file is past its Valid-Until.
echo 'Acquire::Check-Valid-Until "false";' >"$HA_CHROOT/etc/apt/apt.conf.d/99voiceclone-no-valid-until"
# Packages must not start services in the chroot (mosquitto is started by the tests that need it).
printf '#!/bin/sh\nexit 101\n' >"$HA_CHROOT/usr/sbin/policy-rc.d"
chmod +x "$HA_CHROOT/usr/sbin/policy-rc.d"
# PyPI may be reached through a TLS-inspecting proxy: the host's extra CA certificates and pip settings.
mkdir -p "$HA_CHROOT/usr/local/share/ca-certificates"
for crt in /usr/local/share/ca-certificates/*.crt; do
  [ -f "$crt" ] && cp "$crt" "$HA_CHROOT/usr/local/share/ca-certificates/"
done
if [ -f /etc/pip.conf ]; then cp /etc/pip.conf "$HA_CHROOT/etc/pip.conf"; fi

# 2. Debian packages in the chroot (again when the list changes).
stamp_apt=$HA_CHROOT/etc/voiceclone-apt-packages
if [ "$(cat "$stamp_apt" 2>/dev/null)" != "$APT_PACKAGES" ]; then
  step "apt-get install $APT_PACKAGES"
  # (dpkg --configure -a: finishes what an interrupted run left half-installed)
  ha_in_chroot -- sh -c "dpkg --configure -a && apt-get update -qq &&
    apt-get install -y -qq --no-install-recommends $APT_PACKAGES" >/dev/null
  echo "$APT_PACKAGES" >"$stamp_apt"
fi
ha_in_chroot -- update-ca-certificates >/dev/null

# 3. The harness venv (made anew when the requirements change, so it holds exactly them).
stamp_venv=$HA_CHROOT$HA_VENV/.voiceclone-requirements.txt
if ! cmp -s "$HA_REQUIREMENTS" "$stamp_venv"; then
  step "venv $HA_VENV: $HA_REQUIREMENTS"
  ha_safe_rm "$HA_CHROOT$HA_VENV"
  cp "$HA_REQUIREMENTS" "$HA_CHROOT/tmp/requirements-newest.txt"
  ha_in_chroot -- python3.14 -m venv "$HA_VENV"
  ha_in_chroot -- "$HA_VENV/bin/pip" install -q -r /tmp/requirements-newest.txt
  cp "$HA_REQUIREMENTS" "$stamp_venv"
fi

versions=$(ha_in_chroot -- "$HA_VENV/bin/python" -c '
import importlib.metadata as m, platform
from homeassistant.const import __version__ as ha
wyoming = m.version("wyoming")
print(f"Python {platform.python_version()}, Home Assistant {ha}, wyoming {wyoming}")')
step "ready: $versions"
