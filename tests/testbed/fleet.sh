#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# A second, independent hypervisor on this machine, reached over SSH, for the
# fleet tests (quota across hosts, the reclaim playbook over several hosts).
#
#   fleet.sh [up]    set it up and start it (idempotent, quick when up)
#   fleet.sh down    stop its sshd, libvirtd and virtlogd
#   fleet.sh status  say what runs; exit 0 only when everything does
#
# "hv2" is a private mount namespace in which /etc/libvirt, /var/lib/libvirt,
# /run/libvirt, /var/cache/libvirt, /var/log/libvirt and /var/lib/deferred-libvirt
# are its own directories (bind mounts of $FLEET_DIR/hv2/*). In it run its own
# virtlogd, libvirtd (qemu:///system as seen from inside, with its own default
# pool) and an sshd on 127.0.0.1:$FLEET_SSH_PORT, so a playbook reaching it over
# SSH uses the default uri and state_dir, exactly as on a real second host.
# Root's qemu:///session is no second daemon here: libvirt answers it from
# the system daemon.
#
# From the main namespace the daemon answers on
#   qemu+unix:///system?socket=$FLEET_DIR/hv2/run/libvirt-sock
# and $FLEET_DIR/fleet.json says how to reach it (the tests read it).
# It also installs what the reclaim_timer tests need on this control node: cron, and
# systemd-analyze (the systemd package, installed but never booted).
# Needs root on Debian 12; no systemd (the daemons are started here).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FLEET_DIR=${FLEET_DIR:-/var/lib/deferred-libvirt-testbed/fleet}
FLEET_SSH_PORT=${FLEET_SSH_PORT:-2222}
HV2=$FLEET_DIR/hv2
HOLDER_PID=$FLEET_DIR/namespace.pid
SSHD_PID=$FLEET_DIR/sshd.pid
SSHD_CONFIG=$FLEET_DIR/sshd_config
KEY=$FLEET_DIR/id_ed25519
HOST_KEY=$FLEET_DIR/ssh_host_ed25519_key
KNOWN_HOSTS=$FLEET_DIR/known_hosts
SOCKET=$HV2/run/libvirt-sock
URI_OUTSIDE="qemu+unix:///system?socket=$SOCKET"
START_TIMEOUT=${FLEET_START_TIMEOUT:-90}
# directory inside the namespace -> its private copy
MOUNTS=(
  "/etc/libvirt:$HV2/etc"
  "/var/lib/libvirt:$HV2/lib"
  "/run/libvirt:$HV2/run"
  "/var/cache/libvirt:$HV2/cache"
  "/var/log/libvirt:$HV2/log"
  "/var/lib/deferred-libvirt:$HV2/state"
)
PACKAGES=(
  openssh-server openssh-client util-linux
  # For the reclaim_timer tests on this control node: cron runs the sweep for real, and systemd-analyze verifies
  # the units. The systemd package installs without becoming the init (systemd-sysv would, and is not needed).
  cron systemd
)

log() { echo "fleet: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# running PID: alive and not a zombie.
running() {
  local state
  [[ -n ${1:-} ]] || return 1
  kill -0 "$1" 2>/dev/null || return 1
  state=$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) || return 1
  [[ $state != Z && $state != X ]]
}

# pid_in FILE COMM: the pid in FILE if that process runs COMM (a recycled pid is not ours).
pid_in() {
  local pid
  [[ -s $1 ]] || return 1
  pid=$(<"$1")
  running "$pid" || return 1
  [[ $(cat "/proc/$pid/comm" 2>/dev/null) == "$2" ]] || return 1
  echo "$pid"
}

holder() { pid_in "$HOLDER_PID" sleep; }
in_ns() { nsenter --mount --target "$(holder)" -- "$@"; }
virsh2() { virsh -c "$URI_OUTSIDE" "$@"; }

install_packages() {
  local missing=() p
  for p in "${PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

write_files() {
  mkdir -p "$FLEET_DIR"
  chmod 0755 "$FLEET_DIR"
  local pair dir
  for pair in "${MOUNTS[@]}"; do
    dir=${pair#*:}
    mkdir -p "$dir"
    # The mount point must exist in the main namespace too (an empty directory, private by default).
    if [[ ! -d ${pair%%:*} ]]; then
      mkdir -p "${pair%%:*}"
      chmod 0700 "${pair%%:*}"
    fi
  done
  mkdir -p "$HV2/etc/qemu" "$HV2/lib/qemu" "$HV2/lib/images" "$HV2/cache/qemu" "$HV2/log/qemu"
  chmod 0700 "$HV2/state"
  cat >"$HV2/etc/qemu.conf" <<'EOF'
# hv2 of the fleet test bed: QEMU runs as root, as on the main test hypervisor.
user = "root"
group = "root"
# Both daemons share the machine's cgroup tree; hv2 stays out of it so its
# machine names can never collide with the main daemon's.
cgroup_controllers = [ ]
EOF
  cat >"$HV2/etc/libvirtd.conf" <<'EOF'
# hv2 of the fleet test bed: defaults, local unix socket only.
EOF
  : >"$HV2/etc/virtlogd.conf"
  [[ -f $KEY ]] || ssh-keygen -q -t ed25519 -N '' -C deferred-libvirt-fleet -f "$KEY"
  [[ -f $HOST_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C deferred-libvirt-fleet-hv2 -f "$HOST_KEY"
  install -m 0600 "$KEY.pub" "$FLEET_DIR/authorized_keys"
  printf '[127.0.0.1]:%s %s\n' "$FLEET_SSH_PORT" "$(cut -d' ' -f1,2 "$HOST_KEY.pub")" >"$KNOWN_HOSTS"
  cat >"$SSHD_CONFIG" <<EOF
# sshd of hv2 (fleet test bed): loopback only, key only, root allowed.
Port $FLEET_SSH_PORT
ListenAddress 127.0.0.1
HostKey $HOST_KEY
PidFile $SSHD_PID
AuthorizedKeysFile $FLEET_DIR/authorized_keys
PermitRootLogin prohibit-password
PubkeyAuthentication yes
PasswordAuthentication no
KbdInteractiveAuthentication no
UsePAM no
MaxStartups 50:30:100
MaxSessions 50
Subsystem sftp /usr/lib/openssh/sftp-server
EOF
}

# Processes of an earlier hv2 whose files are gone (the test bed directory was removed while it ran): every
# process in a mount namespace of ours other than the current one. All of them were started by this script and
# its daemons, and the orphaned sshd would keep the port.
stop_orphans() {
  local current="" main pid ns found=()
  main=$(readlink /proc/self/ns/mnt)
  if pid=$(holder); then current=$(readlink "/proc/$pid/ns/mnt"); fi
  declare -A orphan=()
  for pid in $(pgrep -f '^(libvirtd|virtlogd) -d -p /run/libvirt/(libvirtd|virtlogd)[.]pid$' || true) \
             $(pgrep -f "sshd -f $SSHD_CONFIG" || true); do
    ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || continue
    [[ $ns == "$main" || $ns == "$current" ]] && continue
    orphan[$ns]=1
  done
  ((${#orphan[@]})) || return 0
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || continue
    [[ -n ${orphan[$ns]:-} ]] && found+=("$pid")
  done
  ((${#found[@]})) || return 0
  log "stopping ${#found[@]} process(es) of an earlier hv2 whose files were removed: ${found[*]}"
  kill "${found[@]}" 2>/dev/null || true
  local i
  for ((i = 0; i < 100; i++)); do
    local alive=0
    for pid in "${found[@]}"; do running "$pid" && alive=1; done
    ((alive)) || return 0
    sleep 0.1
  done
  kill -KILL "${found[@]}" 2>/dev/null || true
}

ensure_namespace() {
  if holder >/dev/null; then
    return 0
  fi
  log "creating hv2's mount namespace"
  # unshare execs sleep in place: its pid is the namespace's anchor.
  setsid unshare --mount --propagation private sleep infinity </dev/null >/dev/null 2>&1 8>&- &
  echo $! >"$HOLDER_PID"
  local i
  for ((i = 0; i < 50; i++)); do
    if holder >/dev/null && [[ $(readlink "/proc/$(holder)/ns/mnt") != $(readlink /proc/self/ns/mnt) ]]; then
      break
    fi
    sleep 0.1
  done
  holder >/dev/null || die "the namespace holder did not start"
}

ensure_mounts() {
  local pair target source current
  for pair in "${MOUNTS[@]}"; do
    target=${pair%%:*}
    source=${pair#*:}
    current=$(in_ns findmnt -n -o SOURCE --target "$target" 2>/dev/null || true)
    # A bind mount shows as DEVICE[/path]: ours when it ends with [$source].
    if [[ $current != *"[$source]" ]]; then
      in_ns mount --bind "$source" "$target"
    fi
  done
}

start_daemons() {
  if ! pid_in "$HV2/run/virtlogd.pid" virtlogd >/dev/null; then
    log "starting hv2's virtlogd"
    in_ns virtlogd -d -p /run/libvirt/virtlogd.pid 8>&-
  fi
  if ! pid_in "$HV2/run/libvirtd.pid" libvirtd >/dev/null; then
    log "starting hv2's libvirtd (the first start probes QEMU, ~10 s)"
    in_ns libvirtd -d -p /run/libvirt/libvirtd.pid 8>&-
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until virsh2 version >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "hv2's libvirtd did not answer on $URI_OUTSIDE within ${START_TIMEOUT}s (see $HV2/log)"
    sleep 0.2
  done
}

ensure_pool() {
  local state
  state=$(virsh2 pool-info default 2>/dev/null | awk '$1=="State:"{print $2}') || true
  if [[ -z $state ]]; then
    # The pool's path as hv2 sees it.
    virsh2 pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
    state=inactive
  fi
  [[ $state == running ]] || virsh2 pool-start default >/dev/null
  virsh2 pool-autostart default >/dev/null 2>&1 || true
}

ssh_ok() {
  ssh -q -i "$KEY" -p "$FLEET_SSH_PORT" -o BatchMode=yes -o ConnectTimeout=5 \
    -o UserKnownHostsFile="$KNOWN_HOSTS" -o StrictHostKeyChecking=yes root@127.0.0.1 \
    virsh -c qemu:///system uri >/dev/null 2>&1
}

start_sshd() {
  if ! pid_in "$SSHD_PID" sshd >/dev/null; then
    log "starting hv2's sshd on 127.0.0.1:$FLEET_SSH_PORT"
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
    in_ns /usr/sbin/sshd -f "$SSHD_CONFIG" 8>&-
  fi
  local deadline=$((SECONDS + 30))
  until ssh_ok; do
    ((SECONDS < deadline)) || die "ssh to hv2 (root@127.0.0.1:$FLEET_SSH_PORT) does not work: try ssh -v -i $KEY -p $FLEET_SSH_PORT root@127.0.0.1"
    sleep 0.2
  done
}

write_description() {
  cat >"$FLEET_DIR/fleet.json" <<EOF
{
  "hv2": {
    "ansible_host": "127.0.0.1",
    "ansible_port": $FLEET_SSH_PORT,
    "ansible_user": "root",
    "ansible_ssh_private_key_file": "$KEY",
    "ansible_ssh_common_args": "-o UserKnownHostsFile=$KNOWN_HOSTS -o StrictHostKeyChecking=yes",
    "uri": "qemu:///system",
    "uri_from_main_namespace": "$URI_OUTSIDE",
    "images_from_main_namespace": "$HV2/lib/images",
    "state_dir_from_main_namespace": "$HV2/state"
  }
}
EOF
}

cmd_up() {
  bash "$HERE/hypervisor.sh" up 8>&-  # the packages (and the main hypervisor) hv2 needs
  install_packages
  write_files
  stop_orphans
  ensure_namespace
  ensure_mounts
  start_daemons
  ensure_pool
  start_sshd
  write_description
  log "hv2 is up: ssh -i $KEY -p $FLEET_SSH_PORT root@127.0.0.1, libvirt $URI_OUTSIDE"
}

stop_pid() {
  local what=$1 pid=$2 i
  kill "$pid" 2>/dev/null || return 0
  for ((i = 0; i < 100; i++)); do
    running "$pid" || { log "$what stopped"; return 0; }
    sleep 0.1
  done
  die "$what (pid $pid) did not stop within 10s"
}

cmd_down() {
  local pid
  if pid=$(pid_in "$SSHD_PID" sshd); then stop_pid "hv2's sshd" "$pid"; fi
  if pid=$(pid_in "$HV2/run/libvirtd.pid" libvirtd); then stop_pid "hv2's libvirtd" "$pid"; fi
  if pid=$(pid_in "$HV2/run/virtlogd.pid" virtlogd); then stop_pid "hv2's virtlogd" "$pid"; fi
  if pid=$(holder); then stop_pid "hv2's namespace holder" "$pid"; fi
  return 0
}

cmd_status() {
  local rc=0 pid
  for item in "sshd:$SSHD_PID:sshd" "libvirtd:$HV2/run/libvirtd.pid:libvirtd" "virtlogd:$HV2/run/virtlogd.pid:virtlogd" \
              "namespace:$HOLDER_PID:sleep"; do
    IFS=: read -r what file comm <<<"$item"
    if pid=$(pid_in "$file" "$comm"); then echo "hv2 $what: running (pid $pid)"; else echo "hv2 $what: stopped"; rc=1; fi
  done
  if ssh_ok; then echo "hv2 over ssh: answering"; else echo "hv2 over ssh: not answering"; rc=1; fi
  return $rc
}

# One fleet.sh at a time (the tests and scripts/test.sh may both bring it up). The daemons it starts must not
# inherit the lock (8>&- on each), or it would stay held for as long as they run.
mkdir -p "$(dirname "$FLEET_DIR")"
exec 8>>"$(dirname "$FLEET_DIR")/.fleet.lock"
flock 8

case ${1:-up} in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  *) echo "usage: $0 [up|down|status]" >&2; exit 2 ;;
esac
