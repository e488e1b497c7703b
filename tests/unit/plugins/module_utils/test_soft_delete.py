# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_soft_delete's operation (_ops/_soft_delete.py) on test:///default: shutdown, reclaim_at, no-op, check mode.

Run through a plain Context (ops_support.py); a reclaim_interval of 0 terminates at once,
and a terminated domain named with an interval is refused.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate

from ops_support import only, record_of, run


def test_soft_delete_shuts_the_guest_down_and_fixes_reclaim_at(conn, define, tmp_path):
    define('web01', running=True)
    instance = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='2d')[0])
    record = record_of(conn, 'web01')
    assert (instance['action'], record['vm_state'], record['task_state']) == ('soft_deleted', 'soft_deleted', None)
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_SHUTOFF
    gap = _record.parse_time(record['reclaim_at']) - _record.parse_time(record['deleted_at'])
    assert gap == datetime.timedelta(days=2)


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
    instance = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval=0, shutdown_timeout=5)[0])
    assert instance['action'] == 'terminated'
    assert 'web01' not in [d.name() for d in conn.listAllDomains(0)]
