# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""module_utils/_fleet.py: the one definition of the fleet index's format, read by the filters and the modules.

Each function here is the only place its rule is written: a change shows up on both sides of the wire at once.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils._states import OFF_POWER_STATES, RUNNING_POWER_STATES
from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_index import fleet_index, fleet_index_for


def test_disk_keys_name_the_path_the_pool_volume_and_the_file():
    disk = {'path': '/srv/a.qcow2', 'pool': 'shared', 'volume': 'a.qcow2', 'st_dev': 64768, 'st_ino': 12}
    assert _fleet.disk_keys(disk) == ['path:/srv/a.qcow2', 'volume:shared/a.qcow2', 'file:64768:12']
    assert _fleet.disk_keys({'path': None, 'pool': None, 'volume': None}) == []


def test_disk_keys_add_the_resolved_path_once_and_the_file_as_it_is_now():
    disk = {'path': '/srv/a.qcow2', 'st_dev': 1, 'st_ino': 2}
    assert _fleet.disk_keys(disk, '/srv/a.qcow2') == ['path:/srv/a.qcow2', 'file:1:2']
    assert _fleet.disk_keys(disk, '/mnt/a.qcow2', (3, 4)) == ['path:/srv/a.qcow2', 'path:/mnt/a.qcow2', 'file:3:4']


def test_a_disk_the_index_shares_is_found_by_the_host_under_the_same_key(tmp_path):
    # The index (control node) and FleetView (hypervisor) key the disk with one function: a reference always matches.
    image = tmp_path / 'web.qcow2'
    image.write_text(u'x')
    st = os.stat(str(image))
    disk = {'target': 'vda', 'path': '/elsewhere/web.qcow2', 'pool': None, 'volume': None,
            'st_dev': st.st_dev, 'st_ino': st.st_ino}
    views = {'hv2': [{'name': 'web', 'uuid': 'u-web', 'vm_state': 'active', 'disks': [dict(disk)]}],
             'hv3': [{'name': 'db', 'uuid': 'u-db', 'vm_state': 'active', 'disks': [dict(disk, path=str(image))]}]}
    hostvars = dict((h, {'r': {'instances': v}}) for h, v in views.items())
    part = fleet_index_for(fleet_index(hostvars, ['hv2', 'hv3'], result_var='r'), 'hv3')
    assert sorted(part) == sorted(_fleet.SLICE_KEYS)
    view = _fleet.FleetView(part, {'hostname': 'hv3'})
    users = view.disk_users({'path': str(image), 'pool': None, 'volume': None}, str(image), 'u-db')
    assert [(u['host'], u['name']) for u in users] == [('hv2', 'web')]


def test_a_host_reported_when_its_result_holds_the_key_and_did_not_fail():
    ok = {'instances': [], 'failed': False}
    assert _fleet.reported(ok) == (ok, None)
    assert _fleet.reported(None) == (None, 'did not report')
    assert _fleet.reported({}) == (None, 'did not report')
    assert _fleet.reported({'failed': True, 'msg': 'cannot connect'}) == (None, 'cannot connect')
    assert _fleet.reported({'unreachable': True}) == (None, 'unreachable')
    assert _fleet.reported({'unreachable': True, 'msg': 'ssh: refused', 'instances': []}) == (None, 'ssh: refused')
    assert _fleet.reported({'failed': True, 'instances': []}) == (None, 'did not report')


def test_a_sweep_with_a_failed_domain_still_ran_but_an_unreachable_one_did_not():
    failed = {'failed': True, 'msg': '1 failed', 'summary': {}}
    assert _fleet.reported(failed, key='summary', failed_counts=True) == (failed, None)
    assert _fleet.reported({'changed': False}, key='summary', absent='did not run') == (None, 'did not run')
    assert _fleet.reported({'unreachable': True, 'summary': {}}, key='summary', failed_counts=True) == (None, 'unreachable')


def test_a_copy_runs_in_the_power_states_that_states_names():
    assert all(_fleet.runs({'power_state': s}) for s in RUNNING_POWER_STATES)
    assert not any(_fleet.runs({'power_state': s}) for s in OFF_POWER_STATES + ('crashed', None))


def test_a_stale_copy_keeps_only_what_the_sweep_reads_of_the_others():
    others = [{'host': 'hv3', 'name': 'web', 'vm_state': 'soft_deleted', 'power_state': 'shutoff', 'generation': 2,
               'reclaim_at': '2024-01-01T00:00:00Z', 'record_host': {'hostname': 'hv3'}, 'names_own_host': True}]
    stale = _fleet.stale_copy('why', 'hv3', others, None, host='hv2', name='web', uuid='u1')
    assert stale == {'host': 'hv2', 'name': 'web', 'uuid': 'u1', 'reason': 'why', 'authoritative': 'hv3',
                     'others': [dict((k, others[0][k]) for k in _fleet.OTHER_KEYS)], 'record_host': None}
    assert _fleet.FleetView({'stale': {'U1': stale}}, {}).undefine_only({'uuid': 'u1', 'vm_state': 'soft_deleted'}, stale)
    running = _fleet.stale_copy('why', 'hv3', [dict(others[0], power_state='paused')], None)
    assert not _fleet.FleetView(None, {}).undefine_only({'vm_state': 'soft_deleted'}, running)


# -- a bound slice (spec rule 12) -------------------------------------------------------------------------------------

HV2 = {'uuid': '88dc30c7-1bec-456d-b194-7254d74f571d', 'hostname': 'hv2.fleet.example'}
HV3 = {'uuid': 'f578e1a5-63eb-4883-8148-5b0a1ca5f6e2', 'hostname': 'hv3.fleet.example'}


def _slice(hypervisor=HV3, host='hv3', built=None):
    built = built or _record.utcnow()
    return _fleet.make_slice(host, _fleet.host_entry(dict(hypervisor)), {}, [HV2, HV3], fleet='hypervisors',
                             built_at=_record.format_time(built))


def test_a_fresh_slice_for_this_host_is_taken():
    part = _slice()
    assert _fleet.check_slice(part, dict(HV3)) is part
    # libvirt made up a new host UUID at its restart: the full hostname still names this host.
    assert _fleet.check_slice(part, dict(HV3, uuid='0b3c0b55-0000-4000-8000-000000000001')) is part
    assert _fleet.check_slice(None, HV3) is None  # no fleet view: the record's own host decides


def test_a_slice_built_for_another_hypervisor_is_refused_naming_both():
    with pytest.raises(DeferredError) as refused:
        _fleet.check_slice(_slice(), dict(HV2))
    msg = str(refused.value)
    assert msg.startswith('the fleet slice was built for hv3 (hostname hv3.fleet.example, host UUID f578e1a5')
    assert 'not this host hv2.fleet.example (hostname hv2.fleet.example, host UUID 88dc30c7' in msg
    assert msg.endswith('nothing was changed')
    # Never by a short name: hv3 of another domain is another host.
    with pytest.raises(DeferredError, match='was built for hv3'):
        _fleet.check_slice(_slice(), {'uuid': HV3['uuid'], 'hostname': 'hv3.other.example'})


def test_a_slice_older_than_fleet_max_age_is_refused_saying_when_it_was_built():
    old = _record.utcnow() - datetime.timedelta(minutes=22)
    part = _slice(built=old)
    with pytest.raises(DeferredError) as refused:
        _fleet.check_slice(part, HV3, 15 * 60)
    msg = str(refused.value)
    assert 'the fleet slice of group hypervisors was built at %s, 22m ago, older than fleet_max_age 15m' % (
        part['built_at']) in msg
    assert 'rebuild the index' in msg and msg.endswith('nothing was changed')
    assert _fleet.check_slice(part, HV3, 30 * 60) is part
    assert _fleet.check_slice(part, HV3, 0) is part  # 0: no age limit
    ahead = _slice(built=_record.utcnow() + datetime.timedelta(hours=1))
    with pytest.raises(DeferredError, match='in the future of this host'):
        _fleet.check_slice(ahead, HV3, 0)


def test_a_dict_not_built_by_fleet_index_for_is_refused():
    for hand_made in ({'stale': {}, 'complete': True}, dict(_slice(), built_at=None), 'hv3'):
        with pytest.raises(DeferredError, match='not a fleet slice built by fleet_index_for'):
            _fleet.check_slice(hand_made, HV3)
