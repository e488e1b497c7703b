# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# Sourced by the test bed scripts; needs their log function.
# shellcheck shell=bash

# install_debs PACKAGE...: install, in one apt run, those of the Debian packages that are not installed yet.
install_debs() {
  local missing=() p
  for p in "$@"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || missing+=("$p")
  done
  ((${#missing[@]})) || return 0
  log "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  # Waits for another apt run to end (scripts/test.sh's two lanes, or an unattended upgrade) instead of failing.
  apt-get -o DPkg::Lock::Timeout=600 update -qq
  apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}
