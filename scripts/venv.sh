#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Create (or refresh) the project's Python environment in .venv from
# requirements-test.txt. Quick when nothing changed: a stamp holds the hash
# of the requirement files. libvirt-python compiles against the system's
# libvirt, so tests/testbed/hypervisor.sh (which installs libvirt-dev) runs first.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv=$root/.venv
python=${PYTHON:-python3.11}
command -v "$python" >/dev/null || python=python3
stamp=$venv/.requirements.sha256
want=$(cat "$root/requirements.txt" "$root/requirements-test.txt" | sha256sum | cut -d' ' -f1)

if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
echo "== python environment: $venv"
[ -x "$venv/bin/python" ] || "$python" -m venv "$venv"
"$venv/bin/pip" install --quiet --upgrade pip
"$venv/bin/pip" install --quiet -r "$root/requirements-test.txt"
echo "$want" > "$stamp"
