#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The randomized fleet trial (issue 27) on the real test bed: hv1 (this machine's libvirtd), hv2 and hv3
# (tests/testbed/fleet.sh), the shared images directory and the test bed's Cinder.
#   bash tests/trial/run.sh --seed N --steps M [--hosts 2|3] [--fault-rate F] [--shrink SECONDS] [--replay OPS.json]
#                           [--max-seconds S]
# Exits 0 when the last line is "N steps, 0 violations". It takes the hypervisor lock (hv-run, when the machine
# has it) for the whole run: others wait, so keep M small while developing.
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
python=${TRIAL_PYTHON:-$root/.venv/bin/python}
# Up when there is no fleet, or one whose description is older than the hosts' migration addresses in it.
grep -qs '"migration_address"' /var/lib/deferred-libvirt-testbed/fleet/fleet-hosts.json || bash "$root/tests/testbed/fleet.sh" up
bash "$root/tests/testbed/cinder.sh" status >/dev/null || { echo "trial: the test bed's Cinder is not running (tests/testbed/cinder.sh up)" >&2; exit 2; }
lock=()
if [ -z "${TRIAL_NO_LOCK:-}" ] && command -v hv-run >/dev/null; then lock=(hv-run); fi
exec "${lock[@]}" "$python" "$root/tests/trial/trial.py" "$@"
