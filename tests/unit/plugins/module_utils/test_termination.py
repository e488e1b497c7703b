# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The shared terminate work (_ops/_termination) on test:///default: stale copies, its options, terminated items."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _termination as termination


def context(conn, tmp_path, check_mode=False):
    return engine.Context(conn, uri='test:///default', state=StateDir(str(tmp_path / 'state'), create=True),
                          check_mode=check_mode, lock_timeout=5)


def stale_setup(conn, define, tmp_path, force):
    define('web01')
    dom = hv.refresh(conn, conn.lookupByName('web01'))
    hv.write_record(dom, dict(_record.empty(), project='web'))
    domain = hv.refresh(conn, conn.lookupByName('web01'))
    stale = {'reason': 'stale copy: the authoritative copy is hv3/web01', 'authoritative': 'hv3', 'others': []}
    view = fleet.FleetView({'stale': {domain.uuid: stale}, 'complete': True, 'hypervisors': [{'hostname': 'hv3'}]},
                           {'hostname': 'hv2'})
    index = storage.Index(conn, hv.list_domains(conn), view)
    opts = termination.read({'instance_dirs': [str(tmp_path)], 'force': force})
    return domain, index, opts


def test_a_stale_copy_is_refused_without_force(conn, define, tmp_path):
    domain, index, opts = stale_setup(conn, define, tmp_path, force=False)
    with pytest.raises(engine.OperationError, match='refuses it'):
        termination.terminate(context(conn, tmp_path), domain, opts, index)
    assert 'web01' in [d.name() for d in conn.listAllDomains(0)]


def test_a_stale_copy_with_force_loses_its_definition_only(conn, define, tmp_path):
    domain, index, opts = stale_setup(conn, define, tmp_path, force=True)
    would = termination.terminate(context(conn, tmp_path, check_mode=True), domain, opts, index)
    assert would['action'] == 'would_undefine_stale_copy'
    did = termination.terminate(context(conn, tmp_path), domain, opts, index)
    assert (did['action'], did['authoritative'], did['disks_deleted']) == ('undefined_stale_copy', 'hv3', [])
    assert 'web01' not in [d.name() for d in conn.listAllDomains(0)]
    assert set(index.fleet.foreign_hosts()) == set(['hv3'])


def test_a_forced_undefine_of_a_copy_no_other_copy_was_seen_of_leaves_a_tombstone_of_what_it_left(
        conn, define, tmp_path):
    # Rule 7 (every terminated domain has a tombstone), found by the randomized trial (seed 1, step 28): a domain
    # moved by an offline migration keeps a record naming its old host. Without a fleet view that is all vm_terminate
    # sees, so force undefines it as a stale copy (rule 9: no disk or volume touched) when it is in fact the only copy.
    # The definition is gone; its tombstone says so and lists the disks and volumes left behind, and the result warns.
    define('web01')
    dom = hv.refresh(conn, conn.lookupByName('web01'))
    volumes = [{'id': '6f1e2d3c-0000-4000-8000-00000000a001', 'delete_on_termination': True}]
    hv.write_record(dom, dict(_record.empty(), project='web', volumes=volumes))
    domain = hv.refresh(conn, conn.lookupByName('web01'))
    # The record names the host it was written on; this host is another one (the domain came here without it).
    old_host = domain.record['host']['hostname']
    index = storage.Index(conn, hv.list_domains(conn), fleet.FleetView(None, {'hostname': old_host + '-new'}))
    ctx = context(conn, tmp_path)
    did = termination.terminate(ctx, domain, termination.read({'instance_dirs': [str(tmp_path)], 'force': True}),
                                index)
    assert (did['action'], did['authoritative']) == ('undefined_stale_copy', old_host)
    assert 'web01' not in [d.name() for d in conn.listAllDomains(0)]
    [warning] = did['warnings']
    assert 'no other copy of web01 was seen' in warning and old_host in warning and volumes[0]['id'] in warning, warning
    tomb = ctx.state.read_tombstone(domain.uuid)
    assert tomb['status'] == 'terminated' and tomb['stale_copy']['authoritative'] == old_host
    assert tomb['volumes_pending'] == [] and [v['id'] for v in tomb['volumes']] == [volumes[0]['id']]
    assert [d['path'] for d in tomb['disks_kept']] == [d['path'] for d in domain.disks()]
    # Finished: no sweep asks Cinder about it or detaches anything (the volumes are the other copy's, if there is one).
    [item] = termination.with_terminated(ctx, [], names=['web01'])
    assert item.tombstone['uuid'] == domain.uuid
    from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
    assert tombstones.finished(tomb)


def test_a_forced_undefine_of_a_stale_copy_whose_other_copy_the_fleet_saw_writes_no_tombstone(
        conn, define, tmp_path):
    # The domain lives on in the copy the fleet index saw: a tombstone here would call a living domain terminated.
    domain, index, opts = stale_setup(conn, define, tmp_path, force=True)
    index.fleet._stale[domain.uuid]['others'] = [{'host': 'hv3', 'name': 'web01'}]
    ctx = context(conn, tmp_path)
    did = termination.terminate(ctx, domain, opts, index)
    assert did['action'] == 'undefined_stale_copy' and not did.get('warnings')
    assert ctx.state.read_tombstone(domain.uuid) is None


def test_a_soft_delete_at_interval_zero_stops_the_guest_with_its_own_timeout():
    opts = termination.read({'shutdown_timeout': None})
    mine = opts.with_shutdown(30, 5)
    assert (mine.shutdown_timeout, mine.shutdown_retry_interval) == (30, 5)
    assert opts.shutdown_timeout is None and mine.cinder is opts.cinder


def test_terminated_domains_join_the_selection_as_tombstones(conn, define, tmp_path):
    define('web01')
    ctx = context(conn, tmp_path)
    termination.terminate(ctx, hv.refresh(conn, conn.lookupByName('web01')), termination.read({}),
                          storage.Index(conn, hv.list_domains(conn)))
    items = termination.with_terminated(ctx, engine.snapshot(ctx), names=['web01'])
    [gone] = [i for i in items if i.name == 'web01']
    assert gone.domain is None and gone.tombstone['status'] == 'terminated' and gone.view['vm_state'] == 'deleted'


def test_the_hosts_a_domain_lived_on_before_are_its_own_for_cinder_attachments():
    # Rule 5 after a move: an attachment naming the domain's earlier host is its own, not another hypervisor's.
    from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
    from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
    tomb = {'record_host': {'uuid': None, 'hostname': 'hv1.fleet.example'},
            'history': [{'action': 'soft_delete', 'message': 'from qemu+ssh://hv9/system'},
                        {'action': 'move', 'message': 'from qemu+ssh://root@hv2:2222/system'},
                        {'action': 'move', 'message': 'from qemu+tcp://hv4.fleet.example/system?x=1'},
                        {'action': 'move', 'message': None}]}
    assert tombstones.earlier_hosts(tomb) == ['hv1.fleet.example', 'hv2', 'hv4.fleet.example']
    assert tombstones.earlier_hosts({'history': None, 'record_host': None}) == []
    foreign = set(['hv1', 'hv1.fleet.example', 'hv2', 'hv3', 'hv4', 'hv9'])
    others = cinder.OtherHypervisors(foreign)
    assert set(others.without(tombstones.earlier_hosts(tomb))) == set(['hv3', 'hv9'])
    assert set(others.without([])) == foreign


def test_a_terminate_keeps_the_host_the_record_named_in_the_tombstone(conn, define, tmp_path):
    from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
    define('web01')
    domain = hv.refresh(conn, conn.lookupByName('web01'))
    record = dict(_record.empty(), project='web', host={'uuid': None, 'hostname': 'hv2'})
    tomb = tombstones.initial(context(conn, tmp_path), domain, record)
    assert tomb['record_host'] == {'uuid': None, 'hostname': 'hv2'}
    assert tombstones.validate_tombstone(tomb, domain.uuid, 'x') is tomb
