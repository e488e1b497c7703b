#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
# The baseline of the scale benchmark: what an operator's shell loop over virsh
# does to read every domain's state and lifecycle record, and to sweep the
# expired ones. Usage: virsh_sweep.sh read|check|real PREFIX
#   read   per domain: virsh dominfo (state, persistence, managed save) and
#          virsh dumpxml --inactive (size, disks and the lifecycle metadata)
#   check  the same, and print the domains whose record is soft_deleted with
#          reclaim_at in the past
#   real   the same, and destroy + undefine those (only names with PREFIX)
set -euo pipefail
mode=$1 prefix=$2
uri=qemu:///system
now=$(date -u +%Y-%m-%dT%H:%M:%SZ)
n=0 due=0
while read -r dom; do
  [ -n "$dom" ] || continue
  n=$((n + 1))
  # Other users' domains may come and go while the loop runs.
  info=$(virsh -c "$uri" dominfo "$dom" 2>/dev/null) || continue
  xml=$(virsh -c "$uri" dumpxml --inactive "$dom" 2>/dev/null) || continue
  [ "$mode" = read ] && continue
  case $xml in *"<deferred:vm_state>soft_deleted</deferred:vm_state>"*) ;; *) continue ;; esac
  reclaim_at=${xml#*<deferred:reclaim_at>}
  reclaim_at=${reclaim_at%%</deferred:reclaim_at>*}
  [[ $reclaim_at < $now ]] || continue
  due=$((due + 1))
  [ "$mode" = real ] && [[ $dom == "$prefix"* ]] || continue
  case $info in *running*) virsh -c "$uri" destroy "$dom" >/dev/null ;; esac
  virsh -c "$uri" undefine "$dom" --managed-save --snapshots-metadata --nvram >/dev/null
done < <(virsh -c "$uri" list --all --name)
echo "domains=$n due=$due"
