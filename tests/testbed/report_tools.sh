#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# What the report tests need on top of the hypervisor: Debian's chromium (the
# real browser the report page is opened in, headless) and promtool from
# Debian's prometheus package (checks the metrics files). Idempotent.
#
# promtool is unpacked from the package, never installed: installing
# prometheus adds a system user, twelve JavaScript packages for its web UI and
# a server that its init script starts on 0.0.0.0:9090 where no policy-rc.d
# stops it. The tests need the one static binary.
set -euo pipefail

BASE=${DEFERRED_TESTBED_DIR:-/var/lib/deferred-libvirt-testbed}
TOOLS=$BASE/tools
PROMTOOL=$TOOLS/promtool

log() { echo "report_tools: $*" >&2; }
die() { log "ERROR: $*"; exit 1; }

export DEBIAN_FRONTEND=noninteractive
updated=
apt_update() { [[ -n $updated ]] || { apt-get update -qq; updated=1; }; }

if ! dpkg-query -W -f='${Status}' chromium 2>/dev/null | grep -q 'ok installed'; then
  log "installing chromium (--no-install-recommends)"
  apt_update
  apt-get install -y -qq --no-install-recommends chromium >/dev/null
fi
command -v chromium >/dev/null || die "chromium is not on PATH after installing it"

if [[ ! -x $PROMTOOL ]]; then
  work=$(mktemp -d)
  trap 'rm -rf "$work"' EXIT
  apt-cache show prometheus >/dev/null 2>&1 || apt_update
  log "downloading prometheus (promtool unpacked only, never installed)"
  # The download lands in a root-only temp dir, which apt's sandbox user cannot write.
  (cd "$work" && apt-get -qq -o APT::Sandbox::User=root download prometheus)
  dpkg-deb -x "$work"/prometheus_*.deb "$work/pkg"
  mkdir -p "$TOOLS"
  install -m 0755 "$work/pkg/usr/bin/promtool" "$PROMTOOL.tmp"
  mv "$PROMTOOL.tmp" "$PROMTOOL"
fi
"$PROMTOOL" --version >/dev/null 2>&1 || die "$PROMTOOL does not run"
log "chromium $(chromium --version 2>/dev/null | awk '{print $2}'), $("$PROMTOOL" --version 2>&1 | head -n1)"
