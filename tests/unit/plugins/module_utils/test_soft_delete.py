# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_soft_delete's operation (_ops/_soft_delete.py) on test:///default: shutdown, reclaim_at, no-op, check mode.

Run through a plain Context (ops_support.py); a reclaim_interval of 0 terminates at once, only with
allow_terminate (without it the whole batch is refused before anything is shut down), and a terminated domain
named with an interval is refused.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate

from ops_support import context, only, put, record_of, run, set_text


def test_soft_delete_shuts_the_guest_down_and_fixes_reclaim_at(conn, define, tmp_path):
    define('web01', running=True)
    instance = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='2d')[0])
    record = record_of(conn, 'web01')
    assert (instance['action'], record['vm_state'], record['task_state']) == ('soft_deleted', 'soft_deleted', None)
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_SHUTOFF
    gap = _record.parse_time(record['reclaim_at']) - _record.parse_time(record['deleted_at'])
    assert gap == datetime.timedelta(days=2)


def test_a_copy_whose_record_names_another_host_is_refused_without_force_and_nothing_changes(conn, define, tmp_path):
    # Rule 9, found by the randomized trial (seed 1, step 73): a running domain on hv1 was copied to hv2 by an offline
    # migration (its record names hv1). A soft delete of hv2's copy rewrote its record to name hv2, so hv2's next
    # terminate took that copy for the authoritative one and deleted the Cinder volume hv1's running copy uses. A soft
    # delete refuses such a copy, as terminate and restore do; force soft-deletes it anyway.
    define('web01', running=True)
    record = dict(_record.empty(), project='web', generation=3, host={'uuid': None, 'hostname': 'hv9'})
    set_text(conn, 'web01', _record.serialize(record))
    before = record_of(conn, 'web01')
    outcome, dummy = run(soft_delete, conn, tmp_path, name=['web01'])
    [instance] = outcome['instances']
    assert instance['failed'], instance
    assert 'stale copy: its record names host hv9' in instance['msg'] and 'soft delete refuses it' in instance['msg']
    assert 'force=true' in instance['msg']
    assert record_of(conn, 'web01') == before
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING
    forced = only(run(soft_delete, conn, tmp_path, name=['web01'], force=True)[0])
    assert forced['action'] == 'soft_deleted'


def test_a_copy_the_fleet_slice_calls_stale_is_refused_without_force_though_its_record_names_this_host(
        conn, define, tmp_path):
    # The same refusal at the fleet's scopes (the playbooks, --limit, an AWX slice): there the host's slice of the
    # fleet index decides, not the record. A copy whose record names this host is still stale when the index found the
    # authoritative copy on hv3.
    define('web01', running=True)
    put(conn, 'web01', dict(_record.empty(), project='web'))
    domain = hv.refresh(conn, conn.lookupByName('web01'))
    stale = {'reason': 'stale copy: the authoritative copy is hv3/web01', 'authoritative': 'hv3',
             'others': [{'host': 'hv3', 'name': 'web01'}]}
    view = fleet.FleetView({'stale': {domain.uuid: stale}, 'complete': True, 'hypervisors': [{'hostname': 'hv3'}]},
                           {'hostname': 'hv2'})
    ctx = context(conn, tmp_path)
    before = record_of(conn, 'web01')
    with pytest.raises(DeferredError, match='stale copy: the authoritative copy is hv3/web01; soft delete refuses it'):
        soft_delete.soft_delete(ctx, domain, soft_delete.options(ctx.params), view)
    assert record_of(conn, 'web01') == before
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING


def test_soft_delete_records_who_did_it_in_the_history(conn, define, tmp_path, monkeypatch):
    monkeypatch.setenv('DEFERRED_LIBVIRT_ACTOR', 'alice@awx')
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'])
    last = record_of(conn, 'web01')['history'][-1]
    assert (last['action'], last['result'], last['actor']) == ('soft_delete', 'success', 'alice@awx')


def test_soft_delete_again_is_a_noop_that_keeps_deleted_at(conn, define, tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='2d')
    first = record_of(conn, 'web01')
    again = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='9d')[0])
    assert (again['changed'], again['action']) == (False, 'none')
    assert record_of(conn, 'web01')['deleted_at'] == first['deleted_at']
    assert record_of(conn, 'web01')['reclaim_at'] == first['reclaim_at']


def test_soft_delete_check_mode_reports_the_decision_the_real_run_carries_out(conn, define, tmp_path):
    define('web01', running=True)
    xml_before = conn.lookupByName('web01').XMLDesc(0)
    would = only(run(soft_delete, conn, tmp_path, check_mode=True, name=['web01'], reclaim_interval='3d')[0])
    assert conn.lookupByName('web01').XMLDesc(0) == xml_before
    assert not os.path.exists(str(tmp_path / 'state'))
    did = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='3d')[0])
    assert would['action'] == 'would_soft_delete' and did['action'] == 'soft_deleted'
    for key in ('vm_state', 'task_state', 'soft_delete_mode', 'power_state', 'managed_save', 'project'):
        assert would['record'][key] == did['record'][key], key
    assert would['mode'] == did['mode'] and would['shutdown_timeout'] == did['shutdown_timeout']


def test_soft_delete_of_a_terminated_domain_with_an_interval_is_refused(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    [instance] = run(soft_delete, conn, tmp_path, name=['web01'])[0]['instances']
    assert instance['failed'] and 'was terminated at' in instance['msg']


def test_soft_delete_with_reclaim_interval_zero_terminates(conn, define, tmp_path):
    define('web01', running=True)
    instance = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval=0, shutdown_timeout=5,
                        allow_terminate=True)[0])
    assert instance['action'] == 'terminated'
    assert 'web01' not in [d.name() for d in conn.listAllDomains(0)]
    assert any('TERMINATED' in w and 'cannot be restored' in w for w in instance['warnings']), instance['warnings']


def _journal(tmp_path):
    path = tmp_path / 'state' / 'events.jsonl'
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


@pytest.mark.parametrize('interval', [0, '0', '0s', '0m', '0d'])
def test_interval_zero_without_allow_terminate_is_refused_and_nothing_is_shut_down(conn, define, tmp_path, interval):
    define('web01', running=True)
    with pytest.raises(DeferredError) as err:
        run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval=interval, shutdown_timeout=5)
    msg = str(err.value)
    assert 'web01' in msg and 'terminates at once' in msg and 'allow_terminate: true' in msg, msg
    assert 'nothing was changed (no domain was shut down)' in msg, msg
    assert err.value.result['refused'] == ['web01']
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING
    assert (record_of(conn, 'web01') or {}).get('vm_state') != 'soft_deleted'
    assert _journal(tmp_path) == [] and not list((tmp_path / 'state').rglob('*.json'))


def test_a_domains_own_reclaim_interval_of_zero_refuses_the_whole_batch_without_allow_terminate(conn, define, tmp_path):
    define('web01', running=True)
    define('web02', running=True)
    record = _record.empty()
    record.update(reclaim_interval=0)
    put(conn, 'web01', record)
    with pytest.raises(DeferredError) as err:
        run(soft_delete, conn, tmp_path, name=['web01', 'web02'], shutdown_timeout=5)
    msg = str(err.value)
    assert "web01 (its own reclaim_interval, set with vm_attributes, is 0)" in msg, msg
    assert 'web02' not in msg and err.value.result['refused'] == ['web01']
    # Nothing of the batch changed: web02, whose interval is the default, is not soft-deleted either.
    for name in ('web01', 'web02'):
        assert conn.lookupByName(name).state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING
        assert (record_of(conn, name) or {}).get('vm_state') != 'soft_deleted'


def test_check_mode_of_interval_zero_is_refused_without_allow_terminate_and_would_terminate_with_it(
        conn, define, tmp_path):
    define('web01', running=True)
    with pytest.raises(DeferredError, match='allow_terminate: true'):
        run(soft_delete, conn, tmp_path, check_mode=True, name=['web01'], reclaim_interval='0s')
    would = only(run(soft_delete, conn, tmp_path, check_mode=True, name=['web01'], reclaim_interval='0s',
                     allow_terminate=True)[0])
    assert (would['changed'], would['action']) == (True, 'would_terminate')
    assert any('would be TERMINATED' in w for w in would['warnings']), would['warnings']
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING
    assert not os.path.exists(str(tmp_path / 'state'))


def test_an_already_soft_deleted_domain_with_interval_zero_stays_in_the_trash_without_allow_terminate(conn, define,
                                                                                                      tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='2d')
    again = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval=0)[0])
    assert (again['changed'], again['action']) == (False, 'none')
    assert record_of(conn, 'web01')['vm_state'] == 'soft_deleted'


def test_module_warns_that_interval_zero_terminated(conn, define, run_in_process, tmp_path):
    define('web01', running=True)
    result = run_in_process('vm_soft_delete', {'uri': 'test:///default', 'state_dir': str(tmp_path / 'state'),
                                               'name': 'web01', 'reclaim_interval': 0, 'shutdown_timeout': 0,
                                               'allow_terminate': True, 'instance_dirs': [str(tmp_path / 'images')]})
    [instance] = result['instances']
    assert instance['action'] == 'terminated', result
    # The module warns with each instance's warnings (ansible-core 2.19 and later give them as structured summaries;
    # a warning already given in this process may be left out of the task's list there).
    assert any('web01 was TERMINATED' in w for w in instance['warnings']), instance
    said = [w if isinstance(w, str) else w.get('event', {}).get('msg', '') for w in result.get('warnings') or []]
    assert not said or any('web01 was TERMINATED' in w for w in said), said
    refused = run_in_process('vm_soft_delete', {'uri': 'test:///default', 'state_dir': str(tmp_path / 'state'),
                                                'name': 'test', 'reclaim_interval': '0s'})
    assert refused['failed'] is True and refused['refused'] == ['test']
    assert 'nothing was changed' in refused['msg'] and refused.get('changed') is not True
