#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Every test of the collection, on a fresh machine or an old one:
#   1. installs and starts what the tests need (libvirtd + QEMU, the test
#      guests' boot files, the Python environment, Cinder + RabbitMQ, a second
#      hypervisor reached over SSH, chromium and promtool for the report, a
#      redis-server for the fleet workflow's Redis fact cache),
#   2. runs the unit tests and ansible-test sanity on both ansible-core lines
#      the collection supports (2.16 on Python 3.11 in .venv, 2.21 on Python
#      3.13 in .venv-newest), ansible-lint's production profile, the Galaxy
#      import, the execution environment checks, the reclaim timer on a host
#      with a real systemd as PID 1 (a systemd-nspawn container built with
#      debootstrap, cached), the integration tests against the real
#      hypervisor and the real Cinder (on 2.16, AWX's ansible-runner among
#      them), and the reliability trials (fail points, libvirtd restarts,
#      Cinder outages, a state_dir that cannot be written),
#   3. stops Cinder again.
# The stages that use no hypervisor of the test bed (unit, newest, sanity, lint, galaxy, ee, systemd) run beside the
# hypervisor stages, which run one after the other; the first lane's output is printed after the second's
# (docs/testing.md). TEST_SERIAL=1 runs the two lanes one after the other.
# Usage: scripts/test.sh [unit|newest|sanity|lint|galaxy|ee|systemd|integration|security-newest|reliability|trial|
#                         races|trial-long]...
# The default is every stage but races and trial-long: the 3 x 20 race trials take ~6 min
# more (run them with "scripts/test.sh races", or all of it and the table in
# docs/reliability.md with tests/reliability/report.py); trial-long runs the
# randomized fleet trial for 1,000 steps on each of 5 seeds (hours; figures in
# docs/reliability.md).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
# The checks that use no hypervisor of the test bed, and the stages on its hypervisors (one at a time).
cpu_stages=(unit newest sanity lint galaxy ee systemd)
hv_stages=(integration security-newest reliability races trial trial-long)
all_stages=("${cpu_stages[@]}" "${hv_stages[@]}")
stages=("$@")
[ ${#stages[@]} -gt 0 ] || stages=(unit newest sanity lint galaxy ee systemd integration security-newest reliability trial)
for s in "${stages[@]}"; do
  case " ${all_stages[*]} " in
    *" $s "*) ;;
    *) echo "scripts/test.sh: no stage named '$s'; the stages are: ${all_stages[*]}. Nothing was run." >&2; exit 2 ;;
  esac
done
want() { local s; for s in "${stages[@]}"; do [ "$s" = "$1" ] && return 0; done; return 1; }
step() { printf '\n== %s (%s)\n' "$1" "$(date +%T)"; }

started=$(date +%s)
step "hypervisor: libvirtd + QEMU"
bash tests/testbed/hypervisor.sh up
step "python environment"
bash scripts/venv.sh
if want newest || want security-newest; then
  bash scripts/venv.sh newest
fi
export PATH=$root/.venv/bin:$PATH

# pytest exits 5 when it collected nothing: that is a failure here, not a pass. Every call has -rs: it prints
# every skipped test with its reason at the end of the stage, so a skip is never silent.
run_pytest() { python -m pytest "$@"; }

hv_wanted=false
for s in "${hv_stages[@]}"; do want "$s" && hv_wanted=true; done
if $hv_wanted; then
  # Everything the hypervisor stages need is installed and started before the two lanes below begin, so that no
  # two apt runs ever overlap.
  step "test guests, Cinder, second hypervisor"
  bash tests/testbed/build_guest.sh
  bash tests/testbed/cinder.sh up
  trap 'bash tests/testbed/cinder.sh down || true' EXIT
  [ ! -f tests/testbed/fleet.sh ] || bash tests/testbed/fleet.sh up
  # redis-server and community.general's redis cache plugin: the fleet workflow's Redis fact cache.
  bash tests/testbed/redis.sh up
  # Debian's chromium (the report page is opened in it) and promtool (checks the metrics files).
  bash tests/testbed/report_tools.sh
fi

# The checks that use no hypervisor: unit tests, sanity, lint, the Galaxy import, the execution environment, and the
# timer on the systemd host (whose libvirtd is its own, inside the container).
cpu_lane() {
  if want unit; then
    step "unit tests"
    run_pytest -q -rs -p no:cacheprovider tests/unit
  fi
  if want newest; then
    step "newest ansible-core line: unit tests (Python 3.13, .venv-newest)"
    .venv-newest/bin/python -m pytest -q -rs -p no:cacheprovider tests/unit
  fi
  if want sanity; then
    step "ansible-test sanity, oldest ansible-core line (2.16, Python 3.11)"
    bash tests/sanity.sh
  fi
  if want newest; then
    step "ansible-test sanity, newest ansible-core line (2.21, Python 3.13)"
    SANITY_LINE=newest bash tests/sanity.sh
  fi
  if want lint; then
    step "ansible-lint --profile production (the whole collection), changelog"
    ansible-lint --profile production
    antsibull-changelog lint
  fi
  if want galaxy; then
    step "galaxy-importer on the built tarball"
    bash tests/galaxy_import.sh
  fi
  if want ee; then
    step "execution environment: ansible-builder create, and what the build context asks for"
    run_pytest -q -rs -p no:cacheprovider tests/ee
  fi
  if want systemd; then
    # Builds the host's image on the first run (~4 min), boots it (~5 s); powered off again at the end.
    step "reclaim timer under a real systemd (tests/testbed/systemd_host.sh)"
    bash tests/testbed/systemd_host.sh up
    run_pytest -q -rs -p no:cacheprovider tests/systemd
  fi
}

# The stages on the test bed's hypervisors, one at a time (they share libvirtd and Cinder).
workers=${TEST_WORKERS:-2}
# two_at_a_time NAME PYTHON MARKS [PYTEST ARGS...]: tests/integration -m MARKS, two tests at a time. Every test has
# guests, a project and a state_dir of its own, but the modules see the whole hypervisor, as they must: a domain
# another test defines while a terminate reads the host is one whose disks it cannot know, so the terminate keeps
# the disk it would have deleted (rule 6). A test that fails beside another one therefore runs once more, alone;
# its verdict alone is the stage's, and every such test is named in the output.
two_at_a_time() {
  local name=$1 py=$2 marks=$3 rc
  shift 3
  local junit=$root/build/$name-junit.xml
  mkdir -p "$root/build"
  rm -f "$junit"
  set +e
  "$py" -m pytest -q -rs -p no:cacheprovider -n "$workers" --dist loadfile --junitxml "$junit" -m "$marks" "$@" \
    tests/integration
  rc=$?
  set -e
  [ "$rc" -ne 0 ] || return 0
  # Only failed tests are run again (pytest's 1); an interrupted run, an internal or usage error, or nothing
  # collected fails the stage as it is.
  [ "$rc" -eq 1 ] || return "$rc"
  local failed
  mapfile -t failed < <(python scripts/junit_failed.py "$junit")
  [ ${#failed[@]} -gt 0 ] || { echo "$name: pytest failed but $junit names no failed test" >&2; return 1; }
  printf '\n%s: %d test(s) failed beside another test; each runs again alone, and that run decides:\n' \
    "$name" "${#failed[@]}"
  printf '  %s\n' "${failed[@]}"
  "$py" -m pytest -q -rs -p no:cacheprovider "${failed[@]}"
}
hv_lane() {
  if want integration; then
    step "integration tests (real libvirtd, real QEMU guests, real Cinder)"
    # The fleet_rules scenarios of test_fleet_safety.py (rules 9-11, the restore onto another host) run with the rest.
    # Two at a time (pytest-xdist, a test file per worker), then the tests marked exclusive alone (docs/testing.md).
    # --durations: the 15 slowest tests, so that the stage's time (the longest of the run) is watched.
    two_at_a_time integration python 'not exclusive' --durations=15
    run_pytest -q -rs -p no:cacheprovider -m exclusive tests/integration
  fi
  if want security-newest; then
    # The security tests of the integration stage (pytest -m security: tenant strings never templated, secrets never
    # printed, clocks checked) once more on the newest ansible-core line, whose data tagging changes what is
    # templated; and the results whose keys that line reads itself (-m ansible_lines).
    step "security tests on the newest ansible-core line (2.21, Python 3.13, .venv-newest)"
    # On this line each of the fleet workflow's two tests runs with one fact cache, the first with jsonfile, the
    # second with Redis (on 2.16 each runs with both): every test and every cache plugin still runs on both lines,
    # and the stage saves two of its four longest runs (about 275 s).
    local wf=tests/integration/test_fleet_workflow.py
    two_at_a_time security-newest .venv-newest/bin/python '(security or ansible_lines) and not exclusive' \
      --deselect "$wf::test_each_cross_slice_scenario_holds_through_sliced_gather_an_unsliced_index_and_sliced_sweeps[redis]" \
      --deselect "$wf::test_a_sweep_slice_whose_slice_is_missing_foreign_of_another_run_or_stale_deletes_nothing_shared_and_says_why[jsonfile]"
    .venv-newest/bin/python -m pytest -q -rs -p no:cacheprovider tests/integration \
      -m '(security or ansible_lines) and exclusive'
  fi
  if want reliability; then
    # Restarts libvirtd (~3 s) and stops Cinder (~15 s) at its end: nothing else on the hypervisor may run meanwhile.
    step "reliability trials (fail points, daemon restarts, state_dir faults)"
    run_pytest -q -rs -p no:cacheprovider tests/reliability -m 'not slow_trials'
  fi
  if want races; then
    step "race trials (two playbooks at once, 3 x 20 trials)"
    run_pytest -q -rs -p no:cacheprovider tests/reliability -m slow_trials
  fi
  # The randomized fleet trial (tests/trial, issue 27): random operations and faults on hv1-hv3 with the safety rules
  # checked after every step. TRIAL_NO_LOCK: the stages above do not take the hypervisor lock either.
  if want trial; then
    # At most 40 steps, and none drawn after 240 s (a slower machine runs fewer): the final sweep and checks follow.
    step "randomized fleet trial, short (seed ${TRIAL_SEED:-27}, up to ${TRIAL_STEPS:-40} steps, ~5 min)"
    TRIAL_NO_LOCK=1 bash tests/trial/run.sh --seed "${TRIAL_SEED:-27}" --steps "${TRIAL_STEPS:-40}" --shrink 0 \
      --max-seconds "${TRIAL_SECONDS:-240}"
  fi
  if want trial-long; then
    for seed in 1 2 3 4 5; do
      step "randomized fleet trial, long (seed $seed, 1000 steps)"
      TRIAL_NO_LOCK=1 bash tests/trial/run.sh --seed "$seed" --steps 1000 --shrink 1800
    done
  fi
}

cpu_wanted=false
for s in "${cpu_stages[@]}"; do want "$s" && cpu_wanted=true; done
if $cpu_wanted && $hv_wanted && [ -z "${TEST_SERIAL:-}" ]; then
  # The two lanes at once: the hypervisor stages leave about a third of the two cores idle (guests booting, shutdown
  # timeouts, Cinder), and the checks of the other lane fill it. Its output is printed whole when both have ended;
  # TEST_SERIAL=1 runs them one after the other instead.
  mkdir -p build
  cpu_log=build/test-cpu-lane.log
  step "the checks without a hypervisor run beside the hypervisor stages (their output: $cpu_log, printed below)"
  # At a lower priority: the hypervisor lane is the run's critical path, the checks have time to spare beside it.
  (renice -n 10 -p "$BASHPID" >/dev/null; set -e; cpu_lane) > "$cpu_log" 2>&1 &
  cpu_pid=$!
  set +e
  (set -e; hv_lane)
  hv_rc=$?
  wait "$cpu_pid"
  cpu_rc=$?
  set -e
  step "the checks without a hypervisor (unit, sanity, lint, galaxy, ee, systemd): rc $cpu_rc"
  cat "$cpu_log"
  step "the checks without a hypervisor ended with rc $cpu_rc; the hypervisor stages with rc $hv_rc"
  if [ "$cpu_rc" -ne 0 ] || [ "$hv_rc" -ne 0 ]; then exit 1; fi
else
  cpu_lane
  hv_lane
fi
step "all tests passed in $(( $(date +%s) - started )) s"
