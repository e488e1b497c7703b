# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One guarded path (issue 23 item 5): every path that undefines or destroys (soft delete with reclaim_interval 0,
terminate, the sweep's stale-copy undefine) gets the fleet view (rule 10) and the guards, checked again under the
domain's lock on the state of now. On libvirt's test:///default driver."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import libvirt
import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate

from ops_support import NOW, PAST, context, put, record_of, run, soft_deleted_record


def disk_device(path):
    return "<disk type='file' device='disk'><source file='%s'/><target dev='vdb'/></disk>" % path


def shared_slice(path):
    """This host's slice of a complete index in which a domain on hv3 uses ``path`` too."""
    other = '11111111-2222-3333-4444-555555555555'
    ref = fleet.disk_reference('hv3', {'name': 'other'}, other, {'target': 'vda', 'path': path})
    # Bound to this host as fleet_index_for binds a slice (test:///default answers with this machine's hostname).
    me = hv.host_identity(libvirt.open('test:///default'))
    entry = dict(fleet.host_entry(me), shared_disks={'path:%s' % path: [ref]})
    return fleet.make_slice('hv2', entry, {}, [me, {'hostname': 'hv3'}], fleet='hypervisors',
                            built_at=_record.format_time(_record.utcnow()))


@pytest.mark.parametrize('operation, params', [
    (soft_delete, dict(reclaim_interval=0, shutdown_timeout=5, allow_terminate=True)),
    (terminate, {}),
], ids=['soft-delete-interval-0', 'terminate'])
def test_a_disk_the_slice_marks_shared_is_kept_by_every_path_that_deletes(conn, define, tmp_path, operation, params):
    images = tmp_path / 'images'
    images.mkdir()
    path = str(images / 'web01.qcow2')
    with open(path, 'w') as handle:
        handle.write('disk')
    define('web01', devices=disk_device(path))
    outcome, dummy = run(operation, conn, tmp_path, name=['web01'], fleet=shared_slice(path), **params)
    [instance] = outcome['instances']
    assert not instance['failed'] and instance['action'] == 'terminated', instance
    assert os.path.exists(path), 'a disk another host uses was deleted'
    assert [k['path'] for k in instance['disks_kept']] == [path] and instance['disks_deleted'] == []


def stale_in_the_trash(conn, define):
    """web01 here is a stale copy (hv3's is authoritative), every copy soft-deleted and expired: the sweep may
    undefine this definition, and the fleet view that says so."""
    define('web01')
    put(conn, 'web01', soft_deleted_record(PAST))
    uuid = conn.lookupByName('web01').UUIDString()
    other = {'host': 'hv3', 'name': 'web01', 'vm_state': 'soft_deleted', 'power_state': 'shutoff', 'generation': 9}
    stale = fleet.stale_copy('stale copy: the authoritative copy is on hv3', 'hv3', [other], {'hostname': 'hv3'})
    view = fleet.FleetView({'host': 'hv2', 'hypervisor': {'hostname': 'hv2'}, 'complete': True, 'missing': [],
                            'stale': {uuid: stale}, 'shared_disks': {}, 'hypervisors': [{'hostname': 'hv3'}]},
                           {'hostname': 'hv2'})
    return uuid, view


@pytest.mark.parametrize('after_the_index', [
    dict(locked=True, lock_reason='legal hold'),
    dict(protected=True),
], ids=['locked', 'protected'])
def test_a_stale_copy_guarded_after_the_index_was_built_is_not_undefined_by_the_sweep(
        conn, define, tmp_path, after_the_index):
    uuid, view = stale_in_the_trash(conn, define)
    ctx = context(conn, tmp_path)
    clock = eligible.Clock(NOW)
    items = engine.snapshot(ctx)
    dummy, dummy, dummy, dummy, undefine = reclaim.classify(items, clock, None, view)
    [(item, reason)] = undefine
    put(conn, 'web01', dict(record_of(conn, 'web01'), **after_the_index))  # between the index and the lock

    result = reclaim.StaleUndefine(item, view, clock).run(ctx)

    assert result['action'] == 'skipped' and not result['changed'], result
    assert list(after_the_index)[0] in result['reason']
    assert 'web01' in [d.name() for d in conn.listAllDomains(0)]


def test_a_stale_copy_started_after_the_index_was_built_is_not_undefined_by_the_sweep(conn, define, tmp_path):
    uuid, view = stale_in_the_trash(conn, define)
    ctx = context(conn, tmp_path)
    clock = eligible.Clock(NOW)
    [(item, reason)] = reclaim.classify(engine.snapshot(ctx), clock, None, view)[4]
    conn.lookupByName('web01').create()  # someone started it meanwhile

    result = reclaim.StaleUndefine(item, view, clock).run(ctx)

    assert result['action'] == 'skipped' and 'started after its soft delete' in result['reason'], result
    assert conn.lookupByName('web01').isActive()


def test_a_stale_copy_being_moved_is_not_undefined_by_the_sweep(conn, define, tmp_path):
    uuid, view = stale_in_the_trash(conn, define)
    ctx = context(conn, tmp_path)
    clock = eligible.Clock(NOW)
    [(item, reason)] = reclaim.classify(engine.snapshot(ctx), clock, None, view)[4]
    put(conn, 'web01', dict(record_of(conn, 'web01'), task_state='moving'))

    result = reclaim.StaleUndefine(item, view, clock).run(ctx)

    assert result['action'] == 'skipped', result
    assert 'web01' in [d.name() for d in conn.listAllDomains(0)]
