# shellcheck shell=bash
# Sourced by setup-ha-newest.sh and test-ha-newest.sh (with ROOT set to the checkout): the Debian forky chroot in
# which tests_ha runs on the newest Home Assistant (Python 3.14), its mounts, and running commands inside it.
#
# The chroot lives outside the checkout (HA_NEWEST_DIR, default /var/cache/voiceclone/ha-newest): tests/ walk the
# whole checkout (tests/test_addon.py: rglob("config.yaml")), which must not meet a Debian tree or its mounts.
#
# Safety: while tests run, the host's root is mounted READ-ONLY at <chroot>/host (the server runs there, on the
# checkout's .venv); the only writable host folder reachable through the chroot is the scratch folder
# ($ROOT/var/ha-newest). Nothing under the chroot is ever deleted while anything is mounted below it.

# shellcheck disable=SC2034 # used by the scripts that source this file
HA_BASE=${HA_NEWEST_DIR:-/var/cache/voiceclone/ha-newest}
HA_CHROOT=$HA_BASE/chroot
HA_VENV=/opt/ha-newest/venv # inside the chroot
HA_SCRATCH=$ROOT/var/ha-newest
HA_REQUIREMENTS=tests_ha/requirements-newest.txt

# Re-run the calling script as root (chroot and mount need it).
ha_need_root() {
  if [ "$(id -u)" != 0 ]; then
    exec sudo --preserve-env=HA_NEWEST_DIR,HA_NEWEST_MIRROR bash "$ROOT/scripts/${0##*/}" "$@"
  fi
}

# One user of the chroot at a time (a second checkout waits).
ha_lock() {
  mkdir -p "$HA_BASE"
  exec 9>"$HA_BASE/lock"
  if ! flock -n 9; then
    echo "waiting for another user of $HA_CHROOT to finish..." >&2
    flock 9
  fi
}

# Mount points under the chroot, deepest first.
ha_mounts() {
  findmnt -rn -o TARGET | awk -v p="$HA_CHROOT/" 'index($0, p) == 1' | sort -r
}

# Processes whose root is inside the chroot (started by this script: the chroot is locked).
ha_kill_leftovers() {
  local p r pids=()
  for p in /proc/[0-9]*; do
    r=$(readlink "$p/root" 2>/dev/null) || continue
    if [ "$r" = "$HA_CHROOT" ] || [[ $r == "$HA_CHROOT"/* ]]; then pids+=("${p#/proc/}"); fi
  done
  ((${#pids[@]})) || return 0
  echo "stopping leftover processes in the chroot: ${pids[*]}" >&2
  kill -TERM "${pids[@]}" 2>/dev/null || true
  sleep 2
  kill -KILL "${pids[@]}" 2>/dev/null || true
}

# Unmount everything under the chroot; fails loudly if anything stays mounted.
ha_umount_all() {
  local m _
  for _ in 1 2 3; do
    [ -n "$(ha_mounts)" ] || return 0
    while read -r m; do umount "$m" 2>/dev/null || true; done < <(ha_mounts)
  done
  # Still busy: detach lazily (no longer reachable through the chroot's paths either way).
  while read -r m; do umount -l "$m" || true; done < <(ha_mounts)
  if [ -n "$(ha_mounts)" ]; then
    echo "still mounted under $HA_CHROOT:" >&2
    ha_mounts >&2
    return 1
  fi
}

# The EXIT trap of both scripts.
ha_cleanup() {
  ha_kill_leftovers
  ha_umount_all
}

# Delete a folder of the chroot (or the chroot), never while anything is mounted in it or below it.
ha_safe_rm() {
  local inside
  inside=$(findmnt -rn -o TARGET | awk -v d="$1" '$0 == d || index($0, d "/") == 1')
  if [ -n "$inside" ]; then
    echo "refusing to delete $1: mounted below it: $inside" >&2
    return 1
  fi
  rm -rf --one-file-system -- "$1"
}

# What apt, pip and the tests need inside: a fresh proc, a private devpts, a tmpfs /dev/shm.
# (/dev holds the device nodes that debootstrap made; nothing of the host's /dev is mounted.)
ha_mount_base() {
  local c=$HA_CHROOT
  mountpoint -q "$c/proc" || mount -t proc proc "$c/proc"
  mkdir -p "$c/dev/pts" "$c/dev/shm"
  mountpoint -q "$c/dev/pts" || mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts "$c/dev/pts"
  [ -e "$c/dev/ptmx" ] || ln -s pts/ptmx "$c/dev/ptmx"
  mountpoint -q "$c/dev/shm" || mount -t tmpfs -o mode=1777,size=512m tmpfs "$c/dev/shm"
  cp /etc/resolv.conf "$c/etc/resolv.conf"
}

# For the tests, also:
#   <chroot>$ROOT          the checkout, read-only, at the same path (the harness imports it, the server runs in it)
#   <chroot>$HA_SCRATCH    the scratch folder, writable, at the same path (pytest's basetemp, voice data, TMPDIR)
#   <chroot>/host          the host's root, read-only and non-recursive, with its own proc, sysfs (ro), the
#                          chroot's /dev, the checkout (ro) and the scratch folder (writable): the server's world
ha_bind() { # ha_bind SRC DEST [ro]: a private bind mount, read-only with "ro", unless DEST is mounted already
  mountpoint -q "$2" && return 0
  mount --bind "$1" "$2"
  mount --make-private "$2"
  if [ "${3:-rw}" = ro ]; then mount -o remount,bind,ro "$2"; fi
}

ha_mount_test() {
  local c=$HA_CHROOT
  ha_mount_base
  mkdir -p "$c$ROOT" "$c/host" "$HA_SCRATCH"
  ha_bind "$ROOT" "$c$ROOT" ro
  ha_bind "$HA_SCRATCH" "$c$HA_SCRATCH"
  ha_bind / "$c/host" ro
  mountpoint -q "$c/host/proc" || mount -t proc proc "$c/host/proc"
  mountpoint -q "$c/host/sys" || mount -t sysfs -o ro sysfs "$c/host/sys"
  if ! mountpoint -q "$c/host/dev"; then
    mount --rbind "$c/dev" "$c/host/dev"
    mount --make-rprivate "$c/host/dev"
  fi
  ha_bind "$ROOT" "$c/host$ROOT" ro # the checkout may be a mount of its own
  ha_bind "$HA_SCRATCH" "$c/host$HA_SCRATCH"
}

# Run a command line in the chroot with a clean environment (the host's PIP_* and the like point at host folders);
# extra VAR=value assignments may precede it: ha_in_chroot [VAR=value...] -- command...
ha_in_chroot() {
  local vars=()
  while [ "$1" != -- ]; do
    vars+=("$1")
    shift
  done
  shift
  chroot "$HA_CHROOT" /usr/bin/env -i HOME=/root LANG=C.UTF-8 \
    PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    DEBIAN_FRONTEND=noninteractive PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_DEFAULT_TIMEOUT=180 "${vars[@]}" "$@"
}
