#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Every test of the collection, on a fresh machine or an old one:
#   1. installs and starts what the tests need (libvirtd + QEMU, the test
#      guests' boot files, the Python environment, Cinder + RabbitMQ, a second
#      hypervisor reached over SSH, chromium and promtool for the report),
#   2. runs the unit tests, ansible-test sanity, ansible-lint, the
#      integration tests against the real hypervisor and the real Cinder, and
#      the reliability trials (fail points, libvirtd restarts, Cinder outages,
#      a state_dir that cannot be written),
#   3. stops Cinder again.
# Usage: scripts/test.sh [unit|sanity|lint|integration|reliability|races]...
# The default is every stage but races: the 3 x 20 race trials take ~6 min
# more (run them with "scripts/test.sh races", or all of it and the table in
# docs/reliability.md with tests/reliability/report.py).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(unit sanity lint integration reliability)
want() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

started=$(date +%s)
step "hypervisor: libvirtd + QEMU"
bash tests/testbed/hypervisor.sh up
step "python environment"
bash scripts/venv.sh
export PATH=$root/.venv/bin:$PATH

# pytest exits 5 when it collected nothing: that is a failure here, not a pass. Every call has -rs: it prints
# every skipped test with its reason at the end of the stage, so a skip is never silent.
run_pytest() { python -m pytest "$@"; }

if want unit; then
  step "unit tests"
  run_pytest -q -rs tests/unit
fi
if want sanity; then
  step "ansible-test sanity"
  bash tests/sanity.sh
fi
if want lint; then
  step "ansible-lint (roles and playbooks)"
  ansible-lint roles playbooks
fi
if want integration || want reliability || want races; then
  step "test guests, Cinder, second hypervisor"
  bash tests/testbed/build_guest.sh
  bash tests/testbed/cinder.sh up
  trap 'bash tests/testbed/cinder.sh down || true' EXIT
  [ ! -f tests/testbed/fleet.sh ] || bash tests/testbed/fleet.sh up
  # Debian's chromium (the report page is opened in it) and promtool (checks the metrics files).
  bash tests/testbed/report_tools.sh
fi
if want integration; then
  step "integration tests (real libvirtd, real QEMU guests, real Cinder)"
  # The fleet_rules scenarios of test_fleet_safety.py (rules 9-11, the restore onto another host) run with the rest.
  run_pytest -q -rs -p no:cacheprovider tests/integration
fi
if want reliability; then
  # Restarts libvirtd (~3 s) and stops Cinder (~15 s) at its end: nothing else may run meanwhile.
  step "reliability trials (fail points, daemon restarts, state_dir faults)"
  run_pytest -q -rs -p no:cacheprovider tests/reliability -m 'not slow_trials'
fi
if want races; then
  step "race trials (two playbooks at once, 3 x 20 trials)"
  run_pytest -q -rs -p no:cacheprovider tests/reliability -m slow_trials
fi
step "all tests passed in $(( $(date +%s) - started )) s"
