#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Builds the disk-less test guest once: Debian's cloud kernel plus two tiny
# busybox initramfs images, one that powers off on the ACPI power button and
# one that ignores it. Skipped when the files are already there.
set -euo pipefail

BASE=${DEFERRED_TESTBED_DIR:-/var/lib/deferred-libvirt-testbed}
OUT=$BASE/guest
BUSYBOX=/bin/busybox
READY_LINE=DEFERRED-GUEST-READY

log() { echo "build_guest: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

if [[ ${1:-} != --force && -s $OUT/vmlinuz && -s $OUT/initrd-acpi.img && -s $OUT/initrd-noacpi.img ]]; then
  exit 0
fi

for tool in cpio gzip dpkg-deb; do
  command -v "$tool" >/dev/null || die "$tool is missing (run tests/testbed/hypervisor.sh first)"
done
[[ -x $BUSYBOX ]] || die "$BUSYBOX is missing (install busybox-static)"
file_is_static() { ! ldd "$1" >/dev/null 2>&1; }
file_is_static "$BUSYBOX" || die "$BUSYBOX is not static (install busybox-static)"

WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

# --- kernel -----------------------------------------------------------------
kernel_pkg() {
  apt-cache depends linux-image-cloud-amd64 2>/dev/null |
    awk '$1=="Depends:" && $2 ~ /^linux-image-/ {print $2; exit}'
}
pkg=$(kernel_pkg)
if [[ -z $pkg ]]; then
  apt-get update -qq
  pkg=$(kernel_pkg)
fi
[[ -n $pkg ]] || die "cannot resolve linux-image-cloud-amd64"
log "downloading $pkg (unpacked only, never installed)"
# The download lands in a root-only temp dir, which apt's sandbox user cannot write.
(cd "$WORK" && apt-get -qq -o APT::Sandbox::User=root download "$pkg")
dpkg-deb -x "$WORK"/"$pkg"_*.deb "$WORK/kernel"
kver=${pkg#linux-image-}
moddir=$WORK/kernel/lib/modules/$kver

find_module() {
  local m
  m=$(find "$moddir" -name "$1.ko" -o -name "$1.ko.xz" -o -name "$1.ko.zst" -o -name "$1.ko.gz" | head -n1)
  [[ -n $m ]] || die "module $1 not found under $moddir"
  # busybox insmod takes plain .ko files only.
  case $m in
    *.xz) xz -dc "$m" ;;
    *.zst) zstd -dcq "$m" ;;
    *.gz) gzip -dc "$m" ;;
    *) cat "$m" ;;
  esac
}

# --- initramfs ----------------------------------------------------------------
make_root() {
  local root=$1 acpi=$2 applet
  mkdir -p "$root"/{bin,sbin,dev,proc,sys,etc,tmp,lib/modules}
  cp "$BUSYBOX" "$root/bin/busybox"
  for applet in $("$BUSYBOX" --list); do
    [[ $applet == busybox ]] || ln -sf busybox "$root/bin/$applet"
  done
  ln -sf ../bin/busybox "$root/sbin/init"
  find_module evdev >"$root/lib/modules/evdev.ko"
  if [[ $acpi == yes ]]; then
    find_module button >"$root/lib/modules/button.ko"
    # busybox acpid maps the power button key to PWRF/00000080 and runs
    # /etc/acpi/<event>; button/power is the /proc/acpi/event spelling.
    mkdir -p "$root/etc/acpi/PWRF" "$root/etc/acpi/button"
    cat >"$root/etc/acpi/PWRF/00000080" <<'EOF'
#!/bin/sh
echo "DEFERRED-GUEST-POWEROFF $0" >/dev/ttyS0
exec poweroff -f
EOF
    chmod 755 "$root/etc/acpi/PWRF/00000080"
    cp -p "$root/etc/acpi/PWRF/00000080" "$root/etc/acpi/button/power"
  fi

  cat >"$root/init" <<EOF
#!/bin/sh
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/ttyS0 2>&1
insmod /lib/modules/evdev.ko
ACPI=$acpi
if [ "\$ACPI" = yes ]; then
  insmod /lib/modules/button.ko
  # acpid opens the event devices once at start: wait for the button's.
  i=0
  while :; do
    dev=
    for d in /sys/class/input/input*; do
      if grep -q "Power Button" "\$d/name" 2>/dev/null; then
        for e in "\$d"/event*; do
          [ -c "/dev/input/\${e##*/}" ] && dev=/dev/input/\${e##*/}
        done
      fi
    done
    [ -n "\$dev" ] && break
    i=\$((i + 1))
    [ \$i -ge 200 ] && { echo "DEFERRED-GUEST-NO-POWER-BUTTON"; break; }
    sleep 0.05
  done
  # -d logs each event (e.g. PWRF/00000080) to the serial console.
  acpid -d -c /etc/acpi &
fi
echo "$READY_LINE"
while :; do
  read up idle </proc/uptime
  echo "uptime \$up"
  sleep 1
done
EOF
  chmod 755 "$root/init"
}

build_initrd() {
  local name=$1 acpi=$2 root=$WORK/root-$1
  make_root "$root" "$acpi"
  (cd "$root" && find . | LC_ALL=C sort | cpio -o -H newc --quiet -R 0:0 | gzip -9) >"$WORK/$name.img"
}

build_initrd initrd-acpi yes
build_initrd initrd-noacpi no

mkdir -p "$OUT"
cp "$WORK/kernel/boot/vmlinuz-$kver" "$OUT/vmlinuz.tmp"
for n in initrd-acpi initrd-noacpi; do
  cp "$WORK/$n.img" "$OUT/$n.img.tmp"
done
# Kernel last, so a half-written set is never taken as complete.
mv "$OUT/initrd-acpi.img.tmp" "$OUT/initrd-acpi.img"
mv "$OUT/initrd-noacpi.img.tmp" "$OUT/initrd-noacpi.img"
echo "$kver" >"$OUT/kernel-version"
mv "$OUT/vmlinuz.tmp" "$OUT/vmlinuz"
log "built $OUT ($kver)"
ls -l "$OUT" >&2
