# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_fleet_state.py: the fleet fact and fleet_locate, on vm_info results as the module returns them.

Pure functions of registered results: a dict stands in for hostvars
(integration tests run them on a real two-host fleet, tests/integration/test_fleet.py).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_state import fleet_locate, fleet_state
from ansible_collections.deferred.libvirt.plugins.plugin_utils._quota import quota_check

NOW = '2024-05-01T12:00:00Z'


def view(name, project='web', vm_state='stopped', vcpus=1, memory_mb=128, reclaim_at=None, **more):
    item = {'name': name, 'uuid': 'uuid-%s' % name, 'project': project, 'vm_state': vm_state, 'task_state': None,
            'power_state': 'shutoff', 'vcpus': vcpus, 'memory_mb': memory_mb, 'deleted_at': None,
            'reclaim_at': reclaim_at, 'locked': False, 'protected': False, 'managed': True, 'anomalies': [],
            'metadata_error': None}
    if vm_state == 'soft_deleted':
        item['deleted_at'] = '2024-05-01T10:00:00Z'
    item.update(more)
    return item


def hostvars(**hosts):
    return dict((h, {'state_facts_vm_info': {'instances': views, 'failed': False}}) for h, views in hosts.items())


@pytest.fixture
def fleet():
    return fleet_state(hostvars(
        hv1=[view('a'), view('b', vm_state='soft_deleted', reclaim_at='2024-05-01T12:10:00Z')],
        hv2=[view('c', vcpus=2, memory_mb=256), view('d', vm_state='soft_deleted', reclaim_at='2024-05-01T11:00:00Z'),
             view('x', project='other')],
    ), ['hv1', 'hv2'], now=NOW)


def test_usage_counts_every_host_and_leaves_out_the_trash(fleet):
    assert fleet['usage'] == {'web': {'instances': 2, 'cores': 3, 'ram_mb': 384},
                              'other': {'instances': 1, 'cores': 1, 'ram_mb': 128}}
    assert fleet['hosts']['hv2']['vm_states'] == {'stopped': 2, 'soft_deleted': 1}
    assert fleet['projects']['web']['hosts'] == ['hv1', 'hv2'] and fleet['projects']['web']['instances'] == 4


def test_trash_is_sorted_by_expiry_with_host_and_time_left(fleet):
    assert [(t['host'], t['name'], t['expires_in'], t['expired']) for t in fleet['trash']] == [
        ('hv2', 'd', -3600, True), ('hv1', 'b', 600, False)]


def test_trash_lines_say_time_left_and_size_in_human_units_never_raw_seconds_or_none():
    fleet = fleet_state(hostvars(hv1=[
        view('b', vm_state='soft_deleted', reclaim_at='2024-05-07T11:57:50Z', user='alice', disk_bytes=3 << 30),
        view('d', vm_state='soft_deleted', reclaim_at='2024-05-01T10:00:00Z'),
        view('e', vm_state='soft_deleted', reclaim_at=None, anomalies=['reclaim_at is missing'])]), ['hv1'], now=NOW)
    trash = [line for line in fleet['lines'] if line.startswith('trash ')]
    assert trash == [
        'trash hv1/e (project web, user none): deleted_at 2024-05-01T10:00:00Z, no reclaim_at (never reclaimed until '
        'the record is fixed), unknown on disk [reclaim_at is missing]',
        'trash hv1/d (project web, user none): deleted_at 2024-05-01T10:00:00Z, reclaim_at 2024-05-01T10:00:00Z '
        '(overdue by 2h 0m), unknown on disk',
        'trash hv1/b (project web, user alice): deleted_at 2024-05-01T10:00:00Z, reclaim_at 2024-05-07T11:57:50Z '
        '(in 5d 23h), 3.0 GiB on disk']
    table = '\n'.join(fleet['table'])
    assert 'reclaim_at 2024-05-07T11:57:50Z (in 5d 23h)' in table and '(overdue by 2h 0m)' in table
    assert 'None' not in table and 'None' not in '\n'.join(fleet['lines'])


def test_host_that_did_not_report_is_missing(fleet):
    partial = fleet_state(dict(hostvars(hv1=[view('a')]), hv2={'state_facts_vm_info': {
        'failed': True, 'msg': 'cannot connect to the hypervisor at qemu:///system'}}), ['hv1', 'hv2', 'hv3'], now=NOW)
    assert partial['missing'] == {'hv2': 'cannot connect to the hypervisor at qemu:///system',
                                  'hv3': 'did not report'}
    with pytest.raises(AnsibleFilterError, match='the fleet state is incomplete.*hv2: cannot connect'):
        quota_check(partial, {}, ['a'])


def test_locate_finds_each_name_on_its_host(fleet):
    found = fleet_locate(fleet, 'a, uuid-d', 'web')
    assert found['by_host'] == {'hv1': ['uuid-a'], 'hv2': ['uuid-d']}


def test_locate_refuses_unknown_ambiguous_and_foreign_names():
    fleet = fleet_state(hostvars(hv1=[view('a'), view('x', project='other')], hv2=[view('a', uuid='uuid-a2')]),
                        ['hv1', 'hv2'], now=NOW)
    with pytest.raises(AnsibleFilterError) as err:
        fleet_locate(fleet, ['a', 'x', 'nope'], 'web')
    assert str(err.value) == (
        'no domain named nope on any host of the play (hv1, hv2); more than one domain named a (on hv1, hv2: '
        'name it by UUID); not in project web: x (project other); nothing was changed')


def test_a_domain_defined_on_two_hosts_is_found_where_the_index_says_its_authoritative_copy_is():
    # A migration without --undefinesource left a copy of 'a' (one UUID) on hv1; the index says hv2's is the one.
    fleet = fleet_state(hostvars(hv1=[view('a', vm_state='soft_deleted')], hv2=[view('a', vm_state='soft_deleted')]),
                        ['hv1', 'hv2'], now=NOW)
    index = {'domains': {'uuid-a': {'authoritative': 'hv2', 'why': 'its record names its own host'}}}
    for key in ('a', 'uuid-a'):
        assert fleet_locate(fleet, key, 'web', index)['by_host'] == {'hv2': ['uuid-a']}
    assert quota_check(fleet, {}, ['a'], 'web', index)['by_host'] == {'hv2': ['uuid-a']}
    with pytest.raises(AnsibleFilterError, match='copies of one domain, uuid-a, on hv1, hv2: pass the fleet index'):
        fleet_locate(fleet, 'a', 'web')
    tie = {'domains': {'uuid-a': {'authoritative': None, 'why': 'the copies tie at generation 3'}}}
    with pytest.raises(AnsibleFilterError, match=r'none is authoritative \(the copies tie at generation 3\): settle'):
        fleet_locate(fleet, 'uuid-a', 'web', tie)


def test_one_hypervisor_under_two_inventory_names_is_counted_once():
    same = {'uuid': '88dc30c7-1bec-456d-b194-7254d74f571d', 'hostname': 'hv1'}
    hv = dict((h, {'state_facts_vm_info': {'instances': [view('a', vcpus=2)], 'failed': False, 'hypervisor': same}})
              for h in ('hv1', 'hv1.example'))
    fleet = fleet_state(hv, ['hv1', 'hv1.example'], now=NOW)
    assert fleet['aliases'] == {'hv1.example': 'hv1'}
    assert fleet['usage'] == {'web': {'instances': 1, 'cores': 2, 'ram_mb': 128}}
    assert fleet_locate(fleet, 'a')['by_host'] == {'hv1': ['uuid-a']}
    assert 'host hv1.example: the same hypervisor as hv1; its domains are counted there' in fleet['lines']


def test_fleet_state_with_a_project_lists_only_its_domains_but_vm_info_keeps_them_all():
    hv = hostvars(hv2=[view('web', vm_state='soft_deleted'), view('db', project='other', vm_state='soft_deleted')],
                  hv3=[view('cache', vm_state='soft_deleted')])
    fleet = fleet_state(hv, ['hv2', 'hv3'], project='web')
    assert sorted(i['name'] for i in fleet['instances']) == ['cache', 'web']
    assert len(hv['hv2']['state_facts_vm_info']['instances']) == 2


def test_locate_takes_an_exact_uuid_over_another_domains_name_as_the_modules_do():
    # 'uuid-b' is b's UUID on hv2 and the name of another domain on hv1: the UUID wins, as on one host.
    fleet = fleet_state(hostvars(hv1=[view('uuid-b', uuid='uuid-other')], hv2=[view('b')]), ['hv1', 'hv2'], now=NOW)
    assert fleet_locate(fleet, 'uuid-b')['by_host'] == {'hv2': ['uuid-b']}


def test_locate_refuses_a_name_that_is_another_domains_uuid_in_other_letter_case():
    fleet = fleet_state(hostvars(hv1=[view('UUID-B', uuid='uuid-other')], hv2=[view('b')]), ['hv1', 'hv2'], now=NOW)
    with pytest.raises(AnsibleFilterError, match=r'UUID-B \(the name of one domain \(UUID uuid-other\) and the UUID of '
                                                 r'another \(named b\): name it by its exact UUID\)'):
        fleet_locate(fleet, 'UUID-B')
