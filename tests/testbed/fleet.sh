#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# A fleet on this machine: further, independent hypervisors (hv2, hv3), each reached over SSH, sharing one
# images directory, able to migrate guests between them. For the fleet tests (quota across hosts, the reclaim
# playbook over several hosts, stale copies after a migration, shared disks).
#
#   fleet.sh [up [HOST]]   set them (or one) up and start them (idempotent, quick when up)
#   fleet.sh down [HOST]   stop a host's (default: every host's) sshd, libvirtd and virtlogd
#   fleet.sh status        say what runs; exit 0 only when everything does
#   fleet.sh restart-libvirtd HOST
#                          stop a host's libvirtd alone and start it again (its QEMU guests keep running and the
#                          new daemon takes them back), as an operator's `systemctl restart libvirtd` does
#
# Each host HV is a private mount namespace AND a private UTS namespace (its hostname is HV) in which
# /etc/libvirt, /var/lib/libvirt, /run/libvirt, /var/cache/libvirt, /var/log/libvirt and
# /var/lib/deferred-libvirt are its own directories (bind mounts of $FLEET_DIR/HV/*), /etc/hosts and
# /etc/ssh/ssh_config its own files, and $SHARED_DIR (default /srv/shared-images) the one shared directory
# ($FLEET_SHARED, bind-mounted at the same path in every host and in the main namespace, as an NFS export
# would be). In it run its own virtlogd, libvirtd (with its own host_uuid, so libvirt tells the hosts apart and
# accepts a migration between them) and an sshd on 127.0.0.1:PORT (hv2 2222, hv3 2223), so a playbook reaching it
# over SSH uses the default uri and state_dir, exactly as on a real host. Inside, `ssh hv3` and
# qemu+ssh://hv3/system reach the other host by name.
#
# A real network filesystem too: $NETFS_DIR (default /srv/netfs-images) is an sshfs (FUSE) mount, in every host's
# namespace and in the main one (hv1), of $NETFS_EXPORT exported by hv2's sshd (sftp), as an NFS export would be
# mounted on every hypervisor. This kernel has no NFS client or server; FUSE works. Each namespace has its own
# mount (private propagation: a FUSE mount made in one namespace is not seen in another), so the same file has a
# different st_dev on each host, and /proc/self/mountinfo says fuse.sshfs (statfs only says "fuseblk").
#
# From the main namespace a host's daemon answers on
#   qemu+unix:///system?socket=$FLEET_DIR/HV/run/libvirt-sock
# and $FLEET_DIR/fleet-hosts.json says how to reach every host (the tests read it; fleet.json has the same).
# It also installs what the reclaim_timer tests need on this control node: cron, and
# systemd-analyze (the systemd package, installed but never booted).
# Needs root on Debian 12; no systemd (the daemons are started here).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
FLEET_DIR=${FLEET_DIR:-/var/lib/deferred-libvirt-testbed/fleet}
FLEET_SSH_PORT=${FLEET_SSH_PORT:-2222}
FLEET_SHARED=${FLEET_SHARED:-$(dirname "$FLEET_DIR")/shared}
SHARED_DIR=${FLEET_SHARED_DIR:-/srv/shared-images}
# The network filesystem: exported by hv2's sshd, mounted with sshfs at NETFS_DIR everywhere.
NETFS_EXPORT=${FLEET_NETFS_EXPORT:-$(dirname "$FLEET_DIR")/netfs}
NETFS_DIR=${FLEET_NETFS_DIR:-/srv/netfs-images}
NETFS_SERVER=hv2
# name:ssh port:first migration port:loopback address. hv2 keeps the port and files it always had (tests reach it
# as before). Each host has a loopback address of its own for migrations: libvirt refuses 127.0.0.1 as a
# migration_address ("the address of the local machine"), and the name in a migration URI must lead to the host.
HOSTS=("hv2:$FLEET_SSH_PORT:49152:127.0.0.2" "hv3:$((FLEET_SSH_PORT + 1)):49168:127.0.0.3")
KEY=$FLEET_DIR/id_ed25519
KNOWN_HOSTS=$FLEET_DIR/known_hosts
# Every host's key. known_hosts has them too, but fleet.sh of before hv3 rewrote it with hv2's alone.
KNOWN_ALL=$FLEET_DIR/fleet_known_hosts
SSH_CONFIG=$FLEET_DIR/ssh_config
START_TIMEOUT=${FLEET_START_TIMEOUT:-90}

log() { echo "fleet: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# select HOST: set the per-host variables.
select_host() {
  local item
  H=""
  for item in "${HOSTS[@]}"; do
    IFS=: read -r name port mig addr <<<"$item"
    [[ $name == "$1" ]] || continue
    H=$name
    PORT=$port
    MIG_PORT=$mig
    ADDR=$addr
  done
  [[ -n $H ]] || die "no fleet host named $1 (hosts: ${HOSTS[*]%%:*})"
  D=$FLEET_DIR/$H
  if [[ $H == hv2 ]]; then
    # Where hv2 always kept them.
    HOLDER_PID=$FLEET_DIR/namespace.pid
    SSHD_PID=$FLEET_DIR/sshd.pid
    SSHD_CONFIG=$FLEET_DIR/sshd_config
    HOST_KEY=$FLEET_DIR/ssh_host_ed25519_key
  else
    HOLDER_PID=$D/namespace.pid
    SSHD_PID=$D/sshd.pid
    SSHD_CONFIG=$D/sshd_config
    HOST_KEY=$D/ssh_host_ed25519_key
  fi
  SOCKET=$D/run/libvirt-sock
  URI_OUTSIDE="qemu+unix:///system?socket=$SOCKET"
  # directory (or file) inside the namespace -> its private copy
  MOUNTS=(
    "/etc/libvirt:$D/etc"
    "/var/lib/libvirt:$D/lib"
    "/run/libvirt:$D/run"
    "/var/cache/libvirt:$D/cache"
    "/var/log/libvirt:$D/log"
    "/var/lib/deferred-libvirt:$D/state"
    "/etc/hosts:$D/hosts"
    "/etc/ssh/ssh_config:$SSH_CONFIG"
    "$SHARED_DIR:$FLEET_SHARED"
  )
}
HOST_NAMES=()
for _item in "${HOSTS[@]}"; do HOST_NAMES+=("${_item%%:*}"); done

PACKAGES=(
  openssh-server openssh-client util-linux
  # For the reclaim_timer tests on this control node: cron runs the sweep for real, and systemd-analyze verifies
  # the units. The systemd package installs without becoming the init (systemd-sysv would, and is not needed).
  cron systemd
  # For the fleet tests: a clock stepped forward for one process (libfaketime), as a wrong RTC or an NTP step would.
  faketime
  # The network filesystem shared by the hosts (FUSE: this kernel has no NFS).
  sshfs
)

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
in_ns() { nsenter --mount --uts --target "$(holder)" -- "$@"; }
virsh_h() { virsh -c "$URI_OUTSIDE" "$@"; }

# shellcheck source=tests/testbed/debs.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debs.sh"
install_packages() { install_debs "${PACKAGES[@]}"; }

# put FILE: write stdin to FILE when it differs, in place (a file bind-mounted into a namespace must keep its
# inode: a new one would leave the namespace with the deleted old file).
put() {
  local text
  text=$(cat)$'\n'
  [[ -f $1 && $(cat "$1")$'\n' == "$text" ]] && return 0
  printf '%s' "$text" >"$1"
}

# Files every host shares: the client key, known host keys, the ssh client config, the shared directory.
write_common() {
  mkdir -p "$FLEET_DIR" "$FLEET_SHARED"
  chmod 0755 "$FLEET_DIR" "$FLEET_SHARED"
  [[ -f $KEY ]] || ssh-keygen -q -t ed25519 -N '' -C deferred-libvirt-fleet -f "$KEY"
  install -m 0600 "$KEY.pub" "$FLEET_DIR/authorized_keys"
  local name known="" config=""
  for name in "${HOST_NAMES[@]}"; do
    select_host "$name"
    mkdir -p "$D"
    [[ -f $HOST_KEY ]] || ssh-keygen -q -t ed25519 -N '' -C "deferred-libvirt-fleet-$H" -f "$HOST_KEY"
    known+=$(printf '[127.0.0.1]:%s %s' "$PORT" "$(cut -d' ' -f1,2 "$HOST_KEY.pub")")$'\n'
    config+=$(printf 'Host %s\n  HostName 127.0.0.1\n  Port %s' "$H" "$PORT")$'\n'
  done
  printf '%s' "$known" | put "$KNOWN_HOSTS"
  printf '%s' "$known" | put "$KNOWN_ALL"
  put "$SSH_CONFIG" <<EOF
# ssh client config of every fleet test host (bind-mounted at /etc/ssh/ssh_config in each): the others by name.
${config}
Host *
  User root
  IdentityFile $KEY
  UserKnownHostsFile $KNOWN_ALL
  StrictHostKeyChecking yes
  BatchMode yes
  ConnectTimeout 10
EOF
  # The shared directory at the same path on the control node (hv1) too, as an NFS mount would be.
  mkdir -p "$SHARED_DIR"
  if [[ $(findmnt -n -o SOURCE --target "$SHARED_DIR" 2>/dev/null || true) != *"[$FLEET_SHARED]" ]]; then
    mount --bind "$FLEET_SHARED" "$SHARED_DIR"
  fi
}

host_uuid() {
  [[ -s $D/host_uuid ]] || cat /proc/sys/kernel/random/uuid >"$D/host_uuid"
  cat "$D/host_uuid"
}

write_files() {
  local pair dir
  for pair in "${MOUNTS[@]}"; do
    dir=${pair#*:}
    [[ $dir == "$D/hosts" || $dir == "$SSH_CONFIG" ]] && continue
    mkdir -p "$dir"
    # The mount point must exist in the main namespace too (an empty directory, private by default).
    if [[ ! -e ${pair%%:*} ]]; then
      mkdir -p "${pair%%:*}"
      chmod 0700 "${pair%%:*}"
    fi
  done
  mkdir -p "$D/etc/qemu" "$D/lib/qemu" "$D/lib/images" "$D/cache/qemu" "$D/log/qemu"
  chmod 0700 "$D/state"
  cat >"$D/etc/qemu.conf" <<EOF
# $H of the fleet test bed: QEMU runs as root, as on the main test hypervisor.
user = "root"
group = "root"
# swtpm (guests with an emulated TPM) as root too, whenever this daemon started (see hypervisor.sh).
swtpm_user = "root"
swtpm_group = "root"
# All daemons share the machine's cgroup tree; the fleet hosts stay out of it so their
# machine names can never collide with the main daemon's.
cgroup_controllers = [ ]
# Incoming live migrations listen on this host's own loopback address only, on ports no other host of the fleet uses.
migration_address = "$ADDR"
migration_port_min = $MIG_PORT
migration_port_max = $((MIG_PORT + 15))
EOF
  cat >"$D/etc/libvirtd.conf" <<EOF
# $H of the fleet test bed: local unix socket only, and a host UUID of its own (libvirt refuses a migration
# between two daemons with the same hostname and host UUID).
host_uuid = "$(host_uuid)"
EOF
  : >"$D/etc/virtlogd.conf"
  put "$D/hosts" <<EOF
# /etc/hosts of $H (fleet test bed): every host of the fleet is on loopback.
127.0.0.1 localhost
::1 localhost ip6-localhost ip6-loopback
$(for item in "${HOSTS[@]}"; do IFS=: read -r name _ _ addr <<<"$item"; printf '%s %s\n' "$addr" "$name"; done)
EOF
  put "$SSHD_CONFIG" <<EOF
# sshd of $H (fleet test bed): loopback only, key only, root allowed.
# A client may set the fail point variables (tests/trial: a module of this host killed or paused at a named step).
AcceptEnv DEFERRED_LIBVIRT_FAILPOINT DEFERRED_LIBVIRT_FAILPOINT_PAUSE
Port $PORT
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

# Processes of an earlier fleet host whose files are gone (the test bed directory was removed while it ran):
# every process in a mount namespace of ours that is no current host's. All of them were started by this script
# and its daemons, and an orphaned sshd would keep its port.
stop_orphans() {
  local main pid ns found=() name
  main=$(readlink /proc/self/ns/mnt)
  declare -A current=() orphan=()
  for name in "${HOST_NAMES[@]}"; do
    select_host "$name"
    if pid=$(holder); then current[$(readlink "/proc/$pid/ns/mnt")]=1; fi
  done
  for pid in $(pgrep -f '^(libvirtd|virtlogd) -d (-p|--pid-file) /run/libvirt/(libvirtd|virtlogd)[.]pid$' || true) \
             $(pgrep -f "sshd -f $FLEET_DIR/" || true); do
    ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || continue
    [[ $ns == "$main" || -n ${current[$ns]:-} ]] && continue
    orphan[$ns]=1
  done
  ((${#orphan[@]})) || return 0
  for pid in /proc/[0-9]*; do
    pid=${pid#/proc/}
    ns=$(readlink "/proc/$pid/ns/mnt" 2>/dev/null) || continue
    [[ -n ${orphan[$ns]:-} ]] && found+=("$pid")
  done
  ((${#found[@]})) || return 0
  log "stopping ${#found[@]} process(es) of an earlier fleet host whose files were removed: ${found[*]}"
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

# A host made before hosts had their own hostname (one UTS namespace with the machine) is made again, once.
needs_new_namespace() {
  local pid
  pid=$(holder) || return 1
  [[ $(readlink "/proc/$pid/ns/uts") == "$(readlink /proc/self/ns/uts)" ]]
}

ensure_namespace() {
  if needs_new_namespace; then
    log "$H shares the machine's hostname: making it again with a UTS namespace of its own (guests stay defined)"
    stop_host
  fi
  if ! holder >/dev/null; then
    log "creating $H's mount and UTS namespaces"
    # unshare execs sleep in place: its pid is the namespaces' anchor.
    setsid unshare --mount --uts --propagation private sleep infinity </dev/null >/dev/null 2>&1 8>&- &
    echo $! >"$HOLDER_PID"
    local i
    for ((i = 0; i < 50; i++)); do
      if holder >/dev/null && [[ $(readlink "/proc/$(holder)/ns/uts") != "$(readlink /proc/self/ns/uts)" ]]; then
        break
      fi
      sleep 0.1
    done
    holder >/dev/null || die "the namespace holder of $H did not start"
  fi
  # Never name the machine itself: only a namespace of its own gets the host's name.
  [[ $(readlink "/proc/$(holder)/ns/uts") != "$(readlink /proc/self/ns/uts)" ]] ||
    die "$H has no UTS namespace of its own; not setting its hostname"
  [[ $(in_ns hostname) == "$H" ]] || in_ns hostname "$H"
}

ensure_mounts() {
  local pair target source current
  for pair in "${MOUNTS[@]}"; do
    target=${pair%%:*}
    source=${pair#*:}
    current=$(in_ns findmnt -n -o SOURCE --target "$target" 2>/dev/null || true)
    # A bind mount shows as DEVICE[/path]: ours when it ends with [$source].
    if [[ $current != *"[$source]" ]]; then
      # A bind of an earlier copy of ours (a file replaced since): take it away first.
      [[ $current != *"[$source"* ]] || in_ns umount "$target"
      in_ns mount --bind "$source" "$target"
    fi
  done
}

# The host UUID the running daemon reports (empty when it does not answer).
running_host_uuid() {
  virsh_h capabilities 2>/dev/null | sed -n 's:^ *<uuid>\(.*\)</uuid>.*:\1:p' | head -1
}

start_daemons() {
  local pid
  # A daemon started before the host had its own host_uuid (or hostname) restarts once to take it.
  if pid=$(pid_in "$D/run/libvirtd.pid" libvirtd) && [[ $(running_host_uuid) != "$(host_uuid)" ]]; then
    log "restarting $H's libvirtd to take its own host_uuid"
    stop_pid "$H's libvirtd" "$pid"
  fi
  # Long options: fleet.sh of before the second host took every libvirtd started with -p in a namespace
  # other than hv2's for an orphan.
  if ! pid_in "$D/run/virtlogd.pid" virtlogd >/dev/null; then
    log "starting $H's virtlogd"
    in_ns virtlogd -d --pid-file /run/libvirt/virtlogd.pid 8>&-
  fi
  if ! pid_in "$D/run/libvirtd.pid" libvirtd >/dev/null; then
    log "starting $H's libvirtd (the first start probes QEMU, ~10 s)"
    in_ns libvirtd -d --pid-file /run/libvirt/libvirtd.pid 8>&-
  fi
  local deadline=$((SECONDS + START_TIMEOUT))
  until virsh_h version >/dev/null 2>&1; do
    ((SECONDS < deadline)) || die "$H's libvirtd did not answer on $URI_OUTSIDE within ${START_TIMEOUT}s (see $D/log)"
    sleep 0.2
  done
}

ensure_pool() {
  local state
  state=$(virsh_h pool-info default 2>/dev/null | awk '$1=="State:"{print $2}') || true
  if [[ -z $state ]]; then
    # The pool's path as the host sees it.
    virsh_h pool-define-as default dir --target /var/lib/libvirt/images >/dev/null
    state=inactive
  fi
  [[ $state == running ]] || virsh_h pool-start default >/dev/null
  virsh_h pool-autostart default >/dev/null 2>&1 || true
}

ssh_ok() {
  ssh -q -i "$KEY" -p "$PORT" -o BatchMode=yes -o ConnectTimeout=5 \
    -o UserKnownHostsFile="$KNOWN_ALL" -o StrictHostKeyChecking=yes root@127.0.0.1 \
    virsh -c qemu:///system uri >/dev/null 2>&1
}

start_sshd() {
  local pid
  if ! pid=$(pid_in "$SSHD_PID" sshd); then
    log "starting $H's sshd on 127.0.0.1:$PORT"
    mkdir -p /run/sshd
    chmod 0755 /run/sshd
    in_ns /usr/sbin/sshd -f "$SSHD_CONFIG" 8>&-
  elif [[ $SSHD_CONFIG -nt $SSHD_PID ]]; then
    # Its configuration changed since it started (put rewrites it only then): sshd reads it again on SIGHUP and
    # rewrites its pid file; open sessions go on.
    log "reloading $H's sshd: its configuration changed"
    kill -HUP "$pid"
    sleep 0.5
  fi
  local deadline=$((SECONDS + 30))
  until ssh_ok; do
    ((SECONDS < deadline)) || die "ssh to $H (root@127.0.0.1:$PORT) does not work: try ssh -v -i $KEY -p $PORT root@127.0.0.1"
    sleep 0.2
  done
}

describe_host() {
  local known=$KNOWN_ALL
  [[ $H != hv2 ]] || known=$KNOWN_HOSTS  # as hv2 was always described
  cat <<EOF
  "$H": {
    "ansible_host": "127.0.0.1",
    "ansible_port": $PORT,
    "ansible_user": "root",
    "ansible_ssh_private_key_file": "$KEY",
    "ansible_ssh_common_args": "-o UserKnownHostsFile=$known -o StrictHostKeyChecking=yes",
    "uri": "qemu:///system",
    "hostname": "$H",
    "host_uuid": "$(host_uuid)",
    "holder_pid": $(holder || echo null),
    "shared_dir": "$SHARED_DIR",
    "netfs_dir": "$NETFS_DIR",
    "netfs_export_from_main_namespace": "$NETFS_EXPORT",
    "uri_from_main_namespace": "$URI_OUTSIDE",
    "migration_address": "$ADDR",
    "images_from_main_namespace": "$D/lib/images",
    "state_dir_from_main_namespace": "$D/state"
  }
EOF
}

write_description() {
  local name sep="" text="{"$'\n'
  for name in "${HOST_NAMES[@]}"; do
    select_host "$name"
    text+=$sep$(describe_host)
    sep=$',\n'
  done
  text+=$'\n}\n'
  # fleet-hosts.json is written by this script only; fleet.json is where the tests used to look.
  printf '%s' "$text" >"$FLEET_DIR/fleet-hosts.json.new" && mv "$FLEET_DIR/fleet-hosts.json.new" "$FLEET_DIR/fleet-hosts.json"
  printf '%s' "$text" >"$FLEET_DIR/fleet.json.new" && mv "$FLEET_DIR/fleet.json.new" "$FLEET_DIR/fleet.json"
}

# -- the network filesystem (sshfs) ---------------------------------------------------------------------------------

# netfs_type PID: the fstype of what is mounted at NETFS_DIR in PID's mount namespace (empty when nothing is). Read
# from mountinfo, never by a stat: a mount whose server is gone could hang it.
netfs_type() {
  awk -v dir="$NETFS_DIR" '$5 == dir { for (i = 7; i <= NF; i++) if ($i == "-") { t = $(i + 1); break } } END { print t }' \
    "/proc/$1/mountinfo" 2>/dev/null
}

# netfs_run PID CMD...: CMD in PID's mount namespace (the main one for our own pid).
netfs_run() {
  local pid=$1
  shift
  if [[ $pid == "$$" ]]; then "$@"; else nsenter --mount --target "$pid" -- "$@"; fi
}

netfs_umount() {
  [[ -n $(netfs_type "$1") ]] || return 0
  netfs_run "$1" umount "$NETFS_DIR" 2>/dev/null || netfs_run "$1" umount -l "$NETFS_DIR"
}

# netfs_mount PID WHERE: mount the export at NETFS_DIR in PID's namespace, unless an answering sshfs is there.
netfs_mount() {
  local pid=$1 where=$2 server_port
  if [[ $(netfs_type "$pid") == fuse.sshfs ]] && netfs_run "$pid" timeout 10 stat -t "$NETFS_DIR" >/dev/null 2>&1; then
    return 0
  fi
  netfs_umount "$pid"  # a dead one (its server restarted) or something else in the way
  server_port=$(select_host "$NETFS_SERVER"; echo "$PORT")
  log "mounting the network filesystem (sshfs) at $NETFS_DIR on $where"
  netfs_run "$pid" mkdir -p "$NETFS_DIR"
  # allow_other + default_permissions: libvirtd and QEMU (root here) use it as any local directory. dir_cache=no:
  # another host's create or delete shows within the kernel's 1 s entry timeout (sshfs's own cache keeps it 20 s).
  # reconnect: a restarted server sshd is reached again. The daemon must not inherit the fleet lock (8>&-).
  netfs_run "$pid" sshfs -o "allow_other,default_permissions,reconnect,dir_cache=no,ServerAliveInterval=5" \
    -o "ServerAliveCountMax=3,port=$server_port,IdentityFile=$KEY,UserKnownHostsFile=$KNOWN_ALL" \
    -o "StrictHostKeyChecking=yes,BatchMode=yes" "root@127.0.0.1:$NETFS_EXPORT" "$NETFS_DIR" 8>&- ||
    die "sshfs of $NETFS_EXPORT at $NETFS_DIR on $where failed"
  [[ $(netfs_type "$pid") == fuse.sshfs ]] || die "$NETFS_DIR on $where is not a fuse.sshfs mount after mounting it"
}

# netfs_pids: "PID:WHERE" of every namespace the network filesystem is mounted in: the main one (hv1), each host's.
netfs_pids() {
  local name pid
  echo "$$:hv1"
  for name in "${HOST_NAMES[@]}"; do
    select_host "$name"
    if pid=$(holder); then echo "$pid:$H"; fi
  done
}

ensure_netfs() {
  local item probe name
  mkdir -p "$NETFS_EXPORT"
  chmod 0755 "$NETFS_EXPORT"
  for item in $(netfs_pids); do netfs_mount "${item%%:*}" "${item#*:}"; done
  # One file, one path, every host: a file made on the server side is seen at NETFS_DIR everywhere.
  probe=.probe-$$-$RANDOM
  : >"$NETFS_EXPORT/$probe"
  for item in $(netfs_pids); do
    netfs_run "${item%%:*}" timeout 10 test -e "$NETFS_DIR/$probe" ||
      { rm -f "$NETFS_EXPORT/$probe"; die "${item#*:} does not see $NETFS_DIR/$probe"; }
  done
  rm -f "$NETFS_EXPORT/$probe"
}

netfs_status() {
  local item rc=0
  for item in $(netfs_pids); do
    if [[ $(netfs_type "${item%%:*}") == fuse.sshfs ]] &&
       netfs_run "${item%%:*}" timeout 10 stat -t "$NETFS_DIR" >/dev/null 2>&1; then
      echo "${item#*:} network filesystem: $NETFS_DIR mounted (fuse.sshfs)"
    else
      echo "${item#*:} network filesystem: $NETFS_DIR not mounted"
      rc=1
    fi
  done
  return $rc
}

up_host() {
  select_host "$1"
  write_files
  ensure_namespace
  ensure_mounts
  start_daemons
  ensure_pool
  start_sshd
}

cmd_up() {
  bash "$HERE/hypervisor.sh" up 8>&-  # the packages (and the main hypervisor) the hosts need
  install_packages
  write_common
  stop_orphans
  local name
  for name in "${@:-${HOST_NAMES[@]}}"; do up_host "$name"; done
  # The export's server must run for any host to mount it.
  if [[ $# -gt 0 ]] && ! (select_host "$NETFS_SERVER"; holder >/dev/null && ssh_ok); then up_host "$NETFS_SERVER"; fi
  ensure_netfs
  write_description
  log "up: ${HOST_NAMES[*]} (ssh -F $SSH_CONFIG HOST; libvirt qemu+unix:///system?socket=$FLEET_DIR/HOST/run/libvirt-sock)"
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

stop_host() {
  local pid
  # Before the namespace goes: its sshfs would keep it alive. The server's export goes from every host with it.
  if pid=$(holder); then netfs_umount "$pid"; fi
  if [[ $H == "$NETFS_SERVER" ]]; then
    local item
    for item in $(netfs_pids); do netfs_umount "${item%%:*}"; done
    select_host "$NETFS_SERVER"
  fi
  if pid=$(pid_in "$SSHD_PID" sshd); then stop_pid "$H's sshd" "$pid"; fi
  if pid=$(pid_in "$D/run/libvirtd.pid" libvirtd); then stop_pid "$H's libvirtd" "$pid"; fi
  if pid=$(pid_in "$D/run/virtlogd.pid" virtlogd); then stop_pid "$H's virtlogd" "$pid"; fi
  if pid=$(holder); then stop_pid "$H's namespace holder" "$pid"; fi
  return 0
}

cmd_down() {
  local name
  for name in "${@:-${HOST_NAMES[@]}}"; do
    select_host "$name"
    stop_host
  done
  [[ $# -gt 0 ]] || netfs_umount $$
}

cmd_status() {
  local rc=0 pid name item what file comm
  for name in "${HOST_NAMES[@]}"; do
    select_host "$name"
    for item in "sshd:$SSHD_PID:sshd" "libvirtd:$D/run/libvirtd.pid:libvirtd" "virtlogd:$D/run/virtlogd.pid:virtlogd" \
                "namespace:$HOLDER_PID:sleep"; do
      IFS=: read -r what file comm <<<"$item"
      if pid=$(pid_in "$file" "$comm"); then echo "$H $what: running (pid $pid)"; else echo "$H $what: stopped"; rc=1; fi
    done
    if holder >/dev/null && [[ $(in_ns hostname) == "$H" ]]; then echo "$H hostname: $H"; else echo "$H hostname: not its own"; rc=1; fi
    if ssh_ok; then echo "$H over ssh: answering"; else echo "$H over ssh: not answering"; rc=1; fi
  done
  netfs_status || rc=1
  return $rc
}

# One fleet.sh at a time (the tests and scripts/test.sh may both bring it up). The daemons it starts must not
# inherit the lock (8>&- on each), or it would stay held for as long as they run.
mkdir -p "$(dirname "$FLEET_DIR")"
exec 8>>"$(dirname "$FLEET_DIR")/.fleet.lock"
flock 8

cmd_restart_libvirtd() {
  local pid
  [[ $# -eq 1 ]] || die "usage: $0 restart-libvirtd HOST"
  select_host "$1"
  holder >/dev/null || die "$H is not up (fleet.sh up $H)"
  if pid=$(pid_in "$D/run/libvirtd.pid" libvirtd); then stop_pid "$H's libvirtd" "$pid"; fi
  start_daemons
}

case ${1:-up} in
  up) shift || true; cmd_up "$@" ;;
  down) shift; cmd_down "$@" ;;
  status) cmd_status ;;
  restart-libvirtd) shift; cmd_restart_libvirtd "$@" ;;
  *) echo "usage: $0 [up|down [HOST]|status|restart-libvirtd HOST]" >&2; exit 2 ;;
esac
