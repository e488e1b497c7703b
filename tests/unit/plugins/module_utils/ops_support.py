# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers the operation tests share: an operation's run() on test:///default through a plain Context, and records.

Each operation's tests (test_soft_delete.py, test_restore.py, test_terminate.py,
test_reclaim.py, test_attributes.py, test_info.py) run it with no Ansible, no
root and no libvirtd. The behaviour against real QEMU guests is tested in
tests/integration; here the decisions are: what each operation does to the
record, the journal and the tombstones, and that check mode reports exactly
the decision the real run carries out.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir


def context(conn, tmp_path, check_mode=False, **params):
    state = StateDir(str(tmp_path / 'state'), create=not check_mode)
    params.setdefault('instance_dirs', [str(tmp_path / 'images')])
    return engine.Context(conn, uri='test:///default', state=state, check_mode=check_mode, project=params.get('project'),
                          lock_timeout=5, params=params)


def run(operation, conn, tmp_path, check_mode=False, **params):
    ctx = context(conn, tmp_path, check_mode=check_mode, **params)
    return operation.run(ctx, operation.options(ctx.params)), ctx


def only(outcome):
    [instance] = outcome['instances']
    assert not instance.get('failed'), instance
    return instance


def record_of(conn, name):
    return hv.refresh(conn, conn.lookupByName(name)).record


def soft_deleted_record(reclaim_at, project='web', **extra):
    """A soft-deleted record written by hand, as a sweep long after the soft delete finds it."""
    record = _record.empty()
    record.update(vm_state='soft_deleted', project=project, soft_delete_mode='shutdown',
                  deleted_at=_record.format_time(min(reclaim_at, NOW) - datetime.timedelta(days=1)),
                  reclaim_at=_record.format_time(reclaim_at), **extra)
    return record


def put(conn, name, record):
    hv.write_record(hv.refresh(conn, conn.lookupByName(name)), record)


NOW = _record.utcnow()
PAST = NOW - datetime.timedelta(hours=1)
FUTURE = NOW + datetime.timedelta(days=2)


def set_text(conn, name, text):
    """A record as a hand edit leaves it, written straight into the definition."""
    conn.lookupByName(name).setMetadata(hv.libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, _record.PREFIX, _record.NAMESPACE,
                                        hv.libvirt.VIR_DOMAIN_AFFECT_CONFIG)
