#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# A test host with a real systemd as PID 1, for the reclaim timer's tests:
# a Debian 12 root built with debootstrap from the Debian mirror this
# machine's apt uses, booted with `systemd-nspawn --boot` in its own network
# namespace (loopback only: nothing in it can reach anything else).
#
#   systemd_host.sh [up]   boot it (build the image first if it is not cached);
#                          installs the collection from this checkout into it
#   systemd_host.sh down   power it off and throw away everything it changed
#   systemd_host.sh stop   power it off, keep its disk (the next up boots it again:
#                          a reboot with the machine off in between)
#   systemd_host.sh status say whether it runs; exit 0 only when it does
#   systemd_host.sh exec CMD...   run CMD in it as root (what the tests do)
#   systemd_host.sh build  (re)build the cached image
#
# The image (cached in $BASE/image, rebuilt only when this script or the
# requirements change) holds systemd, python3, ansible-core and jmespath in a
# venv next to Debian's python3-libvirt, libvirt-daemon-system with the QEMU
# driver, the collection, an inventory of the host itself
# (/etc/deferred-libvirt/hypervisors.yml) and three shut-off domains carrying
# soft-deleted records made by the collection's own modules at build time:
# seed-expired-1 and seed-expired-2 (due) and seed-unexpired (due in ten years).
# Each boot runs on an overlay over the image, so `down` + `up` starts from that
# state again. The host is reached with nsenter into its namespaces (no network,
# no ssh): `systemd_host.sh exec systemctl list-timers`.
set -euo pipefail

BASE=${DEFERRED_TESTBED_DIR:-/var/lib/deferred-libvirt-testbed}/systemd-host
IMAGE=$BASE/image
RUN=$BASE/run
MERGED=$RUN/root
HOSTNAME_IN=deferred-systemd
SUITE=bookworm
BOOT_TIMEOUT=${SYSTEMD_HOST_BOOT_TIMEOUT:-90}
VENV=/opt/deferred-libvirt/venv
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)

# Packages of the image. libpam-systemd provides the logind that polkitd
# (a dependency of libvirt-daemon-system) needs; debootstrap does not pick it.
IMAGE_PACKAGES=systemd,systemd-sysv,dbus,libpam-systemd,python3,python3-venv,python3-libvirt,libvirt-daemon-system,libvirt-daemon-driver-qemu,libvirt-clients,qemu-system-x86,procps
HOST_PACKAGES=(debootstrap systemd-container)

log() { echo "systemd_host: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# What the cached image depends on: how it is built and the Python requirements.
recipe_hash() {
  { echo "$SUITE $IMAGE_PACKAGES $VENV"; declare -f configure_image seed_domains; cat "$ROOT/requirements.txt"; } |
    sha256sum | cut -d' ' -f1
}

# shellcheck source=tests/testbed/debs.sh
source "$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/debs.sh"
install_host_packages() { install_debs "${HOST_PACKAGES[@]}"; }

# The Debian mirror this machine's apt uses for $SUITE main (never another host).
apt_mirror() {
  local f uri
  for f in /etc/apt/sources.list.d/*.sources; do
    [[ -f $f ]] || continue
    uri=$(awk -v suite="$SUITE" '
      /^[[:space:]]*$/ { if (u != "" && s ~ ("(^| )" suite "( |$)") && t ~ /deb( |$)/) { print u; exit } u = s = t = ""; next }
      $1 == "URIs:" { u = $2 } $1 == "Suites:" { $1 = ""; s = $0 } $1 == "Types:" { $1 = ""; t = $0 }
      END { if (u != "" && s ~ ("(^| )" suite "( |$)")) print u }' "$f" | head -n1)
    [[ -n $uri ]] && { echo "$uri"; return 0; }
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [[ -f $f ]] || continue
    uri=$(awk -v suite="$SUITE" '$1 == "deb" && $0 !~ /\[.*\]/ && $3 == suite { print $2; exit }
                                 $1 == "deb" && $3 == suite { for (i = 2; i <= NF; i++) if ($i ~ /^[a-z]+:\/\//) { print $i; exit } }' "$f")
    [[ -n $uri ]] && { echo "$uri"; return 0; }
  done
  return 1
}

# A copy of this checkout without its venv, git data and build output, for ansible-galaxy to build.
copy_checkout() {
  local dest=$1
  rm -rf "$dest"
  mkdir -p "$dest"
  tar -C "$ROOT" --exclude=./.git --exclude=./.venv --exclude=./build --exclude=./tests/output \
    --exclude='*.tar.gz' --exclude=__pycache__ -cf - . | tar -C "$dest" -xf -
}

# Build the collection from $src_in (a path inside the root $1) and install it system-wide there.
# $2 is how to run a command in that root.
install_collection() {
  local root=$1 runner=$2
  # /var/tmp: systemd-nspawn mounts a tmpfs over the host's /tmp.
  local src=$root/var/tmp/deferred-libvirt-src sum
  copy_checkout "$src"
  sum=$(cd "$src" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum | sha256sum | cut -d' ' -f1)
  # Unchanged since the last install: a sweep running at boot keeps its files.
  if [[ -f $root/opt/deferred-libvirt/source.sha256 && $(<"$root/opt/deferred-libvirt/source.sha256") == "$sum" ]]; then
    rm -rf "$src"
    return 0
  fi
  $runner sh -c "cd /var/tmp && rm -f deferred-libvirt-*.tar.gz /opt/deferred-libvirt/deferred-libvirt-*.tar.gz &&
    $VENV/bin/ansible-galaxy collection build deferred-libvirt-src --output-path /var/tmp --force >/dev/null &&
    $VENV/bin/ansible-galaxy collection install deferred-libvirt-*.tar.gz -p /usr/share/ansible/collections --force >/dev/null &&
    mkdir -p /opt/deferred-libvirt && mv deferred-libvirt-*.tar.gz /opt/deferred-libvirt/ &&
    rm -rf deferred-libvirt-src && echo $sum >/opt/deferred-libvirt/source.sha256"
}

in_chroot() { chroot "$IMAGE.tmp" env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 "$@"; }

configure_image() {
  local root=$1
  echo "$HOSTNAME_IN" >"$root/etc/hostname"
  printf '127.0.0.1 localhost\n127.0.1.1 %s\n::1 localhost\n' "$HOSTNAME_IN" >"$root/etc/hosts"
  # One machine id for the image: the journal of every boot is in one place.
  rm -f "$root/etc/machine-id"
  in_chroot systemd-machine-id-setup >/dev/null
  mkdir -p "$root/var/log/journal"
  # QEMU as root, as on the test bed's hypervisor; no default NAT network (it would need dnsmasq).
  grep -qx 'user = "root"' "$root/etc/libvirt/qemu.conf" ||
    printf 'user = "root"\ngroup = "root"\n' >>"$root/etc/libvirt/qemu.conf"
  rm -f "$root/etc/libvirt/qemu/networks/autostart/default.xml"
  # A container has no SMBIOS UUID of its own, so libvirt would make up a host UUID at every start, and every record
  # would name a host that is gone (rule 9 then keeps the domains as stale copies). A real host keeps its UUID; so
  # does this one: libvirt takes it from the image's machine id.
  grep -qx 'host_uuid_source = "machine-id"' "$root/etc/libvirt/libvirtd.conf" ||
    printf 'host_uuid_source = "machine-id"\n' >>"$root/etc/libvirt/libvirtd.conf"
  in_chroot systemctl enable libvirtd.service >/dev/null 2>&1
  # A getty on the console is of no use to the tests.
  in_chroot systemctl mask console-getty.service >/dev/null 2>&1
  local bad
  # shellcheck disable=SC2016 # dpkg-query's format, not the shell's
  bad=$(in_chroot dpkg-query -W -f='${db:Status-Abbrev} ${Package}\n' | awk '$1 != "ii" {print $2}')
  [[ -z $bad ]] || die "packages left unconfigured in the image: $bad"

  # ansible-core and jmespath as requirements.txt pins them; libvirt from Debian (system site packages).
  local reqs
  reqs=$(grep -E '^(ansible-core|jmespath)' "$ROOT/requirements.txt")
  # shellcheck disable=SC2116,SC2086 # one line
  log "installing into the image: $(echo $reqs)"
  # Wheels fetched by this machine's pip (its index and CA settings), installed offline in the image.
  local pip=$ROOT/.venv/bin/pip
  [[ -x $pip ]] || pip="python3 -m pip"
  rm -rf "$root/var/tmp/wheels"
  # shellcheck disable=SC2086
  $pip download --quiet --dest "$root/var/tmp/wheels" --only-binary=:all: --implementation cp \
    --python-version "$(in_chroot python3 -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    --platform manylinux2014_x86_64 --platform manylinux_2_28_x86_64 --platform any $reqs \
    >"$BASE/pip-download.log" 2>&1 || die "downloading the wheels failed (see $BASE/pip-download.log)"
  in_chroot python3 -m venv --system-site-packages "$VENV"
  # shellcheck disable=SC2086
  in_chroot "$VENV/bin/pip" install --quiet --disable-pip-version-check --no-index --find-links /var/tmp/wheels $reqs
  rm -rf "$root/var/tmp/wheels"
  for tool in ansible ansible-playbook ansible-galaxy; do
    ln -sf "$VENV/bin/$tool" "$root/usr/local/bin/$tool"
  done
  in_chroot "$VENV/bin/python" -c 'import ansible, jmespath, libvirt'

  # Modules run on the host itself: no need to copy each one to a file first.
  mkdir -p "$root/etc/ansible"
  printf '[defaults]\nnocolor = True\n\n[connection]\npipelining = True\n' >"$root/etc/ansible/ansible.cfg"

  # The inventory of the host itself, as an operator's control node that is its own hypervisor.
  mkdir -p "$root/etc/deferred-libvirt"
  cat >"$root/etc/deferred-libvirt/hypervisors.yml" <<EOF
hypervisors:
  hosts:
    $HOSTNAME_IN:
      ansible_connection: local
      ansible_python_interpreter: $VENV/bin/python
EOF
  install_collection "$root" in_chroot
}

# The seed: three shut-off domains soft-deleted by the collection's own modules.
seed_domains() {
  local xml n
  for n in seed-expired-1 seed-expired-2 seed-unexpired; do
    xml="<domain type='qemu'><name>$n</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>
<os><type arch='x86_64'>hvm</type></os><features><acpi/></features></domain>"
    host_exec sh -c "printf '%s' \"\$1\" >/var/tmp/$n.xml && virsh -q -c qemu:///system define /var/tmp/$n.xml >/dev/null && rm /var/tmp/$n.xml" _ "$xml"
  done
  cat >"$BOOTED/var/tmp/seed.yml" <<'EOF'
- name: Soft-delete the seed domains (two due now, one in ten years)
  hosts: hypervisors
  gather_facts: false
  tasks:
    - name: Give them an owner
      deferred.libvirt.vm_attributes:
        name: [seed-expired-1, seed-expired-2, seed-unexpired]
        project: seed
    - name: Soft delete, due at once
      deferred.libvirt.vm_soft_delete:
        name: [seed-expired-1, seed-expired-2]
        reclaim_interval: 1s
    - name: Soft delete, due in ten years
      deferred.libvirt.vm_soft_delete:
        name: seed-unexpired
        reclaim_interval: 3650d
EOF
  host_exec ansible-playbook -i /etc/deferred-libvirt/hypervisors.yml /var/tmp/seed.yml >"$BASE/seed.log" 2>&1 ||
    die "seeding the domains failed (see $BASE/seed.log)"
  rm -f "$BOOTED/var/tmp/seed.yml"
}

cmd_build() {
  install_host_packages
  local mirror started=$SECONDS
  mirror=$(apt_mirror) || die "cannot find the Debian mirror for $SUITE in /etc/apt/sources.list*"
  cmd_down_quiet
  rm -rf "$IMAGE"
  mkdir -p "$BASE"
  # SYSTEMD_HOST_KEEP_BOOTSTRAP=1 (for working on this script): reuse a finished debootstrap tree.
  if [[ ${SYSTEMD_HOST_KEEP_BOOTSTRAP:-} == 1 && -f $IMAGE.tmp/.debootstrap-done ]]; then
    log "reusing the debootstrap tree $IMAGE.tmp"
  else
    rm -rf "$IMAGE.tmp"
    log "debootstrap $SUITE from $mirror (a few minutes)"
    debootstrap --variant=minbase --include="$IMAGE_PACKAGES" "$SUITE" "$IMAGE.tmp" "$mirror" \
      >"$BASE/debootstrap.log" 2>&1 || die "debootstrap failed (see $BASE/debootstrap.log)"
    touch "$IMAGE.tmp/.debootstrap-done"
  fi
  mount --bind /proc "$IMAGE.tmp/proc"
  mount --bind /dev "$IMAGE.tmp/dev"
  trap 'umount "$IMAGE.tmp/proc" "$IMAGE.tmp/dev" 2>/dev/null || true' EXIT
  configure_image "$IMAGE.tmp"
  umount "$IMAGE.tmp/proc" "$IMAGE.tmp/dev"
  trap - EXIT
  in_chroot apt-get clean
  rm -rf "$IMAGE.tmp/var/lib/apt/lists/"* "$IMAGE.tmp/debootstrap" "$IMAGE.tmp/root/.cache" "$IMAGE.tmp/.debootstrap-done"
  mv "$IMAGE.tmp" "$IMAGE"
  # First boot: the seed domains are made on the running host, then kept in the image.
  boot "$IMAGE"
  seed_domains
  poweroff_host
  recipe_hash >"$BASE/image.sha256"
  log "image built in $((SECONDS - started)) s ($(du -sh "$IMAGE" | cut -f1))"
}

image_ok() { [[ -d $IMAGE && -f $BASE/image.sha256 && $(<"$BASE/image.sha256") == "$(recipe_hash)" ]]; }

nspawn_pid() {
  local pid
  [[ -s $RUN/nspawn.pid ]] || return 1
  pid=$(<"$RUN/nspawn.pid")
  kill -0 "$pid" 2>/dev/null && [[ $(cat "/proc/$pid/comm" 2>/dev/null) == systemd-nspawn ]] || return 1
  echo "$pid"
}

# The host's PID 1 (systemd) as this machine sees it: the descendant of nspawn whose pid in its namespace is 1.
leader_pid() {
  local top p
  top=$(nspawn_pid) || return 1
  for p in $(pgrep -x systemd); do
    if awk '$1 == "NSpid:" && $NF == 1 { found = 1 } END { exit !found }' "/proc/$p/status" 2>/dev/null &&
       descends_from "$p" "$top"; then
      echo "$p"
      return 0
    fi
  done
  return 1
}

descends_from() {
  local p=$1 ancestor=$2
  while [[ -n $p && $p != 0 && $p != 1 ]]; do
    [[ $p == "$ancestor" ]] && return 0
    p=$(awk '{ sub(/^.*\) /, ""); print $2 }' "/proc/$p/stat" 2>/dev/null) || return 1
  done
  return 1
}

host_exec() {
  local leader
  leader=$(leader_pid) || die "the systemd host is not running (systemd_host.sh up)"
  nsenter -t "$leader" -m -u -i -n -p -C -r -w \
    env -i PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb "$@"
}

# Boot the root directory $1 and wait until systemd says the boot is finished.
boot() {
  local dir=$1 deadline leader state
  BOOTED=$dir
  mkdir -p "$RUN"
  log "booting $dir"
  # setsid + closed descriptors: the host outlives whoever started it and holds none of its locks.
  # adjtimex allowed: nspawn's default seccomp filter refuses it even read-only, where a real host lets every process
  # read whether its kernel's clock is synchronised (the reclaim timer and vm_reclaim do, after a reboot).
  setsid systemd-nspawn --boot --keep-unit --register=no --private-network --machine="$HOSTNAME_IN" \
    --system-call-filter='adjtimex clock_adjtime' \
    --console=read-only -D "$dir" </dev/null >"$RUN/console.log" 2>&1 9>&- &
  echo $! >"$RUN/nspawn.pid"
  deadline=$((SECONDS + BOOT_TIMEOUT))
  until leader=$(leader_pid) && state=$(host_exec systemctl is-system-running 2>/dev/null; true) &&
        [[ $state == running || $state == degraded ]]; do
    # Alive, not yet "is it nspawn": just after the start the process may still be setsid, before its exec.
    kill -0 "$(<"$RUN/nspawn.pid")" 2>/dev/null || die "systemd-nspawn exited during boot (see $RUN/console.log)"
    ((SECONDS < deadline)) || die "the systemd host did not finish booting in ${BOOT_TIMEOUT}s (state: ${state:-none}; see $RUN/console.log)"
    sleep 0.3
  done
  [[ $state == running ]] || log "booted, but degraded: $(host_exec systemctl --failed --plain --no-legend | tr '\n' ' ')"
  host_exec systemctl start libvirtd.service
  log "up (PID 1 is pid $leader here)"
}

poweroff_host() {
  local pid i
  pid=$(nspawn_pid) || return 0
  host_exec systemctl poweroff --no-block >/dev/null 2>&1 || true
  for ((i = 0; i < 300; i++)); do
    kill -0 "$pid" 2>/dev/null || { rm -f "$RUN/nspawn.pid"; return 0; }
    sleep 0.1
  done
  log "powering off took more than 30 s: killing systemd-nspawn"
  kill "$pid" 2>/dev/null || true
  sleep 1
  rm -f "$RUN/nspawn.pid"
}

mount_overlay() {
  mountpoint -q "$MERGED" && return 0
  mkdir -p "$RUN/upper" "$RUN/work" "$MERGED"
  mount -t overlay overlay -o "lowerdir=$IMAGE,upperdir=$RUN/upper,workdir=$RUN/work" "$MERGED"
}

cmd_up() {
  if nspawn_pid >/dev/null && leader_pid >/dev/null; then
    return 0
  fi
  install_host_packages
  image_ok || cmd_build
  local started=$SECONDS
  mount_overlay
  boot "$MERGED"
  install_collection "$MERGED" host_exec
  log "booted and the collection installed in $((SECONDS - started)) s"
}

cmd_stop() { poweroff_host; }

cmd_down_quiet() {
  poweroff_host
  if mountpoint -q "$MERGED" 2>/dev/null; then umount "$MERGED"; fi
  rm -rf "$RUN/upper" "$RUN/work"
}

cmd_down() { cmd_down_quiet; log "down"; }

cmd_status() {
  local leader
  if ! image_ok; then echo "image: not built (or out of date)"; else echo "image: $IMAGE"; fi
  if leader=$(leader_pid); then
    echo "host: running (nspawn pid $(nspawn_pid), PID 1 is $leader here): $(host_exec systemctl is-system-running || true)"
  else
    echo "host: not running"
    return 1
  fi
}

case ${1:-up} in
  up) cmd_up ;;
  down) cmd_down ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  build) cmd_build ;;
  exec) shift; host_exec "$@" ;;
  *) echo "usage: $0 [up|down|stop|status|build|exec CMD...]" >&2; exit 2 ;;
esac
