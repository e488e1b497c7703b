#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Create (or refresh) one of the project's Python environments. Quick when
# nothing changed: a stamp holds the hash of the requirement files.
#
#   scripts/venv.sh           .venv: Python 3.11, requirements-test.txt (the oldest ansible-core line, 2.16):
#                             every stage runs here
#   scripts/venv.sh newest    .venv-newest: Python 3.13, requirements-newest.txt (the newest line, 2.21):
#                             unit tests and ansible-test sanity run here too
#
# libvirt-python compiles against the system's libvirt, so tests/testbed/hypervisor.sh
# (which installs libvirt-dev and pkg-config) runs first.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
line=${1:-oldest}
# find_python VERSION: that Python from pyenv's versions, else from PATH.
find_python() {
  local found
  for found in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$1".*/bin/"python$1"; do
    [ -x "$found" ] && { echo "$found"; return 0; }
  done
  if found=$(command -v "python$1"); then echo "$found"; return 0; fi
  echo "python$1 not found (on PATH or under pyenv's versions)" >&2
  return 1
}
case $line in
  oldest) venv=$root/.venv; reqs=$root/requirements-test.txt; python=${PYTHON:-$(find_python 3.11)} ;;
  newest) venv=$root/.venv-newest; reqs=$root/requirements-newest.txt; python=${PYTHON_NEWEST:-$(find_python 3.13)} ;;
  *) echo "usage: $0 [oldest|newest]" >&2; exit 2 ;;
esac
stamp=$venv/.requirements.sha256
want=$(cat "$root/requirements.txt" "$reqs" | sha256sum | cut -d' ' -f1)

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "== python environment: $venv ($line ansible-core line, $("$python" --version))"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r "$reqs"
echo "$want" > "$stamp"
