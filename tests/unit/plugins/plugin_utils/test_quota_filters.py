# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_quota.py: quota_check over the fleet fact, and the quota lock's file name.

(Named apart from module_utils' test_quota.py: pytest needs every test file name once.)
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_state import fleet_state
from ansible_collections.deferred.libvirt.plugins.plugin_utils._quota import quota_check, quota_lock_name

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


def test_quota_refuses_a_batch_over_the_limit_with_fleet_usage(fleet):
    result = quota_check(fleet, {'web': {'instances': 3, 'cores': -1}}, ['b', 'd'], 'web')
    assert result['fits'] is False
    assert result['over'] == [{'project': 'web', 'resource': 'instances', 'limit': 3, 'usage': 2, 'request': 2}]
    assert result['message'] == ('project web is over quota for instances: limit 3, usage 2, request 2; '
                                 'nothing was changed')


def test_quota_allows_a_batch_that_fits_and_plans_it_per_host(fleet):
    result = quota_check(fleet, {'default': {'instances': 4, 'cores': 5, 'ram_mb': 640}}, ['b', 'd', 'a'])
    assert result['fits'] is True
    assert result['by_host'] == {'hv1': ['uuid-b'], 'hv2': ['uuid-d']}
    assert [n['name'] for n in result['noop']] == ['a']
    assert result['request'] == {'web': {'instances': 2, 'cores': 2, 'ram_mb': 256}}
    assert result['limits'] == {'web': {'instances': 4, 'cores': 5, 'ram_mb': 640}}


def test_quota_refuses_invalid_limits(fleet):
    with pytest.raises(AnsibleFilterError, match='quota for project web: unknown resource cpus'):
        quota_check(fleet, {'web': {'cpus': 2}}, ['b'])


def test_lock_names_are_readable_and_never_shared():
    assert quota_lock_name('web').startswith('quota-web-') and quota_lock_name('web').endswith('.lock')
    assert quota_lock_name('a/b') != quota_lock_name('a_b')
    assert '/' not in quota_lock_name('../../etc')
    assert quota_lock_name(None) == quota_lock_name('none')
