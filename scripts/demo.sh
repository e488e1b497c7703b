#!/usr/bin/env bash
# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
#
# The whole lifecycle on a local hypervisor that this command sets up:
# libvirtd + QEMU, two small guests, both soft-deleted, one restored, the
# other reclaimed after a short retention; the state printed before and after.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
bash tests/testbed/hypervisor.sh up
bash tests/testbed/build_guest.sh
bash scripts/venv.sh
export PATH=$root/.venv/bin:$PATH

# Install the collection the way a user does: build it, install the tarball.
build=$root/build/demo
rm -rf "$build" && mkdir -p "$build"
ansible-galaxy collection build "$root" --output-path "$build" --force >/dev/null
ansible-galaxy collection install "$build"/deferred-libvirt-*.tar.gz -p "$build/collections" --force >/dev/null
export ANSIBLE_COLLECTIONS_PATH=$build/collections
export ANSIBLE_PYTHON_INTERPRETER=$root/.venv/bin/python
export ANSIBLE_LOCALHOST_WARNING=False ANSIBLE_INVENTORY_UNPARSED_WARNING=False

# Two fresh guests that honour ACPI, as a tenant would have them.
python - <<'PY'
import sys
sys.path.insert(0, 'tests/testbed')
import guests
conn = guests.connect()
guests.destroy_all(conn, 'demo-')
for name in ('demo-web', 'demo-db'):
    guests.define_guest(conn, name, kind='acpi')
    print('guest %s is running' % name)
PY
ansible-playbook -i localhost, -c local playbooks/demo.yml "$@"
