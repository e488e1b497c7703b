#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# Import the built collection tarball with galaxy-importer, the validator Galaxy runs on every upload, with every
# check it can run without a container engine; fails on any error or warning it prints.
#
#   check_required_tags  one tag from Galaxy's list of categories (galaxy.yml tags)
#   check_changelog      changelogs/changelog.yaml or CHANGELOG.rst
#   run_ansible_doc      the docs of every module and plugin, as Galaxy shows them
#   run_ansible_lint     ansible-lint on the collection, as Galaxy runs it
#   run_flake8           flake8 on every plugin file (Galaxy's selection: E, F, W, max line length 160)
# Not run: run_ansible_test (ansible-test sanity inside a container: Docker/Podman or OpenShift only; tests/sanity.sh
# runs the same sanity tests without one, on both ansible-core lines) and require_v1_or_greater (the collection is
# 0.x on purpose).
# Also checked: the tarball holds the licence text (COPYING) and the changelog.
#
# Galaxy refuses a collection whose galaxy.yml has no repository key, and ours has none until the collection has a
# public address (a placeholder would send users nowhere). Until then the import is of a copy whose galaxy.yml names
# $DEFERRED_LIBVIRT_REPOSITORY (default: the collection's page on Galaxy), and the script says so; once galaxy.yml has
# the key, the tarball is imported as built.
#
# Runs with the tools of the environment it is started from (scripts/test.sh puts .venv/bin first on PATH).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
out=$root/build/galaxy-import
rm -rf "$out"
mkdir -p "$out"
src=$root
if ! grep -q '^repository:' "$root/galaxy.yml"; then
  repository=${DEFERRED_LIBVIRT_REPOSITORY:-https://galaxy.ansible.com/ui/repo/published/deferred/libvirt/}
  echo "NOTE: galaxy.yml has no repository key, which Galaxy requires: importing a copy with repository: $repository"
  src=$out/src
  mkdir -p "$src"
  (cd "$root" && git ls-files -z --cached --others --exclude-standard | xargs -0 cp --parents -t "$src" 2>/dev/null) \
    || cp -a "$root/." "$src/"
  printf 'repository: %s\n' "$repository" >> "$src/galaxy.yml"
fi
ansible-galaxy collection build "$src" --output-path "$out" --force >/dev/null
tarballs=("$out"/deferred-libvirt-*.tar.gz)
tarball=${tarballs[0]}

for member in COPYING CHANGELOG.rst changelogs/changelog.yaml meta/execution-environment.yml bindep.txt requirements.txt; do
  tar -tzf "$tarball" "$member" >/dev/null 2>&1 || { echo "FAIL: $member is not in $(basename "$tarball")" >&2; exit 1; }
done

cat > "$out/galaxy-importer.cfg" <<'CFG'
[galaxy-importer]
check_required_tags = True
check_changelog = True
run_ansible_doc = True
run_ansible_lint = True
offline_ansible_lint = True
run_flake8 = True
run_ansible_test = False
require_v1_or_greater = False
log_level_main = INFO
CFG
mkdir -p "$out/tmp"
rc=0
(cd "$out" && GALAXY_IMPORTER_CONFIG=$out/galaxy-importer.cfg GALAXY_IMPORTER_TMP_ROOT_DIR=$out/tmp \
  python -m galaxy_importer.main "$tarball") > "$out/import.log" 2>&1 || rc=$?
findings=$(grep -E '^(WARNING|ERROR)' "$out/import.log" || true)
if [ "$rc" -ne 0 ] || [ -n "$findings" ]; then
  cat "$out/import.log" >&2
  echo "FAIL: galaxy-importer exit status $rc, $(printf '%s' "$findings" | grep -c . || true) error(s)/warning(s):" >&2
  printf '%s\n' "$findings" >&2
  exit 1
fi
grep -E '^(Importing with|Linting collection via|Importer processing)' "$out/import.log"
echo "galaxy-importer: $(grep -c '^Loading ' "$out/import.log") content items, no error, no warning"
