#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Real libvirtd + QEMU (TCG) for integration tests, on a Debian 12 machine
# without systemd as PID 1. Usage: hypervisor.sh [up|down|status|restart-libvirtd]
set -euo pipefail

URI=qemu:///system
POOL_DIR=/var/lib/libvirt/images
TEST_NET=deferred-test
START_TIMEOUT=${HYPERVISOR_START_TIMEOUT:-60}

# libvirt-daemon-system is left out on purpose: it depends on systemd.
PACKAGES=(
  libvirt-daemon libvirt-daemon-driver-qemu qemu-system-x86 qemu-utils
  libvirt-clients libvirt-dev pkg-config busybox-static cpio ovmf
  # libvirt's network driver adds iptables rules even for an isolated
  # network with no <ip>; without the binary net-start fails.
  iptables
  # The clock tests run a sweep whose clock has jumped forward (LD_PRELOAD libfaketime).
  faketime
  # Guests with an emulated TPM (libvirt's <tpm><backend type='emulator'/>) and its state on the host.
  swtpm swtpm-tools
)

log() { echo "hypervisor: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

pid_alive() {
  local f=$1 pid
  [[ -s $f ]] || return 1
  pid=$(<"$f")
  [[ -n $pid ]] && kill -0 "$pid" 2>/dev/null
}

virsh_ok() { virsh -c "$URI" version >/dev/null 2>&1; }

# shellcheck source=tests/testbed/debs.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debs.sh"
install_packages() { install_debs "${PACKAGES[@]}"; }

# What libvirt-daemon-system's maintainer scripts would do.
setup_system() {
  getent group libvirt-qemu >/dev/null || groupadd --system libvirt-qemu
  getent group libvirt >/dev/null || groupadd --system libvirt
  # The QEMU driver looks this user up at start even when qemu.conf says root.
  getent passwd libvirt-qemu >/dev/null ||
    useradd --system --gid libvirt-qemu --home-dir /var/lib/libvirt \
      --no-create-home --shell /usr/sbin/nologin libvirt-qemu
  mkdir -p /var/log/libvirt/qemu /var/lib/libvirt/qemu "$POOL_DIR" \
    /var/cache/libvirt/qemu /etc/libvirt/qemu /run/libvirt
  local conf=/etc/libvirt/qemu.conf
  # swtpm as QEMU, root: left out, libvirtd runs it as tss when that user existed at its start (swtpm's package
  # makes it) and as root otherwise, and a TPM state or swtpm_localca's lock made by one fails the other.
  if ! grep -qx 'user = "root"' "$conf" 2>/dev/null ||
     ! grep -qx 'group = "root"' "$conf" 2>/dev/null ||
     ! grep -qx 'swtpm_user = "root"' "$conf" 2>/dev/null ||
     ! grep -qx 'swtpm_group = "root"' "$conf" 2>/dev/null; then
    [[ -f $conf ]] && sed -i -E '/^(user|group|swtpm_user|swtpm_group)[[:space:]]*=/d' "$conf"
    printf 'user = "root"\ngroup = "root"\nswtpm_user = "root"\nswtpm_group = "root"\n' >>"$conf"
  fi
}

start_daemons() {
  pid_alive /run/virtlogd.pid || { log "starting virtlogd"; virtlogd -d; }
  if ! pid_alive /run/libvirtd.pid; then
    log "starting libvirtd"
    libvirtd -d
  fi
  local started=$SECONDS deadline=$((SECONDS + START_TIMEOUT))
  until virsh_ok; do
    ((SECONDS < deadline)) ||
      die "libvirtd did not answer on $URI within ${START_TIMEOUT}s (see /var/log/libvirt/ and 'libvirtd -v' run by hand)"
    # The daemonised child writes the pidfile a moment after fork.
    if ((SECONDS > started + 3)) && ! pid_alive /run/libvirtd.pid; then
      die "libvirtd exited during start (run 'libvirtd -v' by hand to see why)"
    fi
    sleep 0.2
  done
}

ensure_pool() {
  local state
  state=$(virsh -c "$URI" pool-info default 2>/dev/null | awk '$1=="State:"{print $2}') || true
  if [[ -z $state ]]; then
    virsh -c "$URI" pool-define-as default dir --target "$POOL_DIR" >/dev/null
    state=inactive
  fi
  if [[ $state != running ]]; then
    virsh -c "$URI" pool-start default >/dev/null
  fi
  virsh -c "$URI" pool-autostart default >/dev/null 2>&1 || true
}

# Isolated network with no <ip>: a bridge only, so no dnsmasq or firewall.
# Left defined and inactive; the tests start and stop it.
ensure_network() {
  virsh -c "$URI" net-info "$TEST_NET" >/dev/null 2>&1 && return 0
  local xml
  xml=$(mktemp)
  cat >"$xml" <<EOF
<network>
  <name>$TEST_NET</name>
  <bridge name='virbr-deftest' stp='off' delay='0'/>
</network>
EOF
  virsh -c "$URI" net-define "$xml" >/dev/null
  rm -f "$xml"
}

cmd_up() {
  install_packages
  setup_system
  start_daemons
  ensure_pool
  ensure_network
}

stop_pidfile() {
  local name=$1 f=/run/$1.pid pid i
  if ! pid_alive "$f"; then
    log "$name not running"
    return 0
  fi
  pid=$(<"$f")
  kill "$pid"
  for ((i = 0; i < 100; i++)); do
    kill -0 "$pid" 2>/dev/null || { log "$name stopped"; return 0; }
    sleep 0.1
  done
  die "$name (pid $pid) did not stop within 10s"
}

cmd_down() {
  stop_pidfile libvirtd
  stop_pidfile virtlogd
}

cmd_status() {
  local rc=0 d
  for d in virtlogd libvirtd; do
    if pid_alive "/run/$d.pid"; then
      echo "$d: running (pid $(<"/run/$d.pid"))"
    else
      echo "$d: stopped"
      rc=1
    fi
  done
  if virsh_ok; then
    echo "$URI: answering"
    virsh -c "$URI" pool-list --all | sed -n '3,$p' | sed '/^$/d;s/^/pool:/'
    virsh -c "$URI" net-list --all | sed -n '3,$p' | sed '/^$/d;s/^/network:/'
  else
    echo "$URI: not answering"
    rc=1
  fi
  return $rc
}

case ${1:-up} in
  up) cmd_up ;;
  restart-libvirtd) stop_pidfile libvirtd; start_daemons ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 [up|down|status|restart-libvirtd]" >&2; exit 2 ;;
esac
