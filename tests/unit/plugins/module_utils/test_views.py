# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What vm_info reports of a domain or a tombstone (_views), and quota usage of views."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import libvirt  # noqa: F401 (the unit stage runs in the test bed's venv: no libvirt is a failure, not a skip)
import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _record

from views_support import by_name, described_fleet, owned


@pytest.fixture
def fleet(conn, define):
    """A host with: test (unmanaged, running), web01 (web, running 2 vCPU/1 GiB), web02 (web, soft-deleted),
    web03 (web, being deleted), db01 (data, stopped 4 vCPU/4 GiB)."""
    return described_fleet(conn, define)


# -- describe -------------------------------------------------------------------

def test_an_unmanaged_domain_is_reported_with_its_state_from_libvirt(fleet):
    test = by_name(fleet, 'test')
    assert test['managed'] is False
    assert test['vm_state'] == 'active'
    assert test['power_state'] == 'running'
    assert test['project'] is None
    assert (test['vcpus'], test['memory_mb']) == (2, 8192)
    assert test['disks'] == [{'target': 'vda', 'device': 'disk', 'type': 'file', 'path': '/guest/diskimage1',
                              'pool': None, 'volume': None, 'st_dev': None, 'st_ino': None}]


def test_a_soft_deleted_domain_is_reported_with_its_retention(fleet):
    web02 = by_name(fleet, 'web02')
    assert web02['managed'] is True
    assert web02['vm_state'] == 'soft_deleted'
    assert web02['power_state'] == 'shutoff'
    assert (web02['deleted_at'], web02['reclaim_at']) == ('2024-05-01T10:00:00Z', '2024-05-08T10:00:00Z')
    assert web02['anomalies'] == []


def test_a_domain_with_a_malformed_record_is_reported_in_error(conn):
    conn.lookupByName('test').setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                                          '<lifecycle version="1"><locked>yes</locked></lifecycle>',
                                          _record.PREFIX, _record.NAMESPACE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    view = _views.describe(hv.list_domains(conn)[0])
    assert view['vm_state'] == 'error'
    assert view['managed'] is False
    assert view['metadata_error'] == "domain test: lifecycle metadata field locked is 'yes', not true or false"


def test_a_soft_deleted_record_without_reclaim_at_is_reported_as_an_anomaly(conn):
    dom = hv.list_domains(conn)[0]
    hv.write_record(dom, owned('web', vm_state='soft_deleted', deleted_at='2024-05-01T10:00:00Z'))
    view = _views.describe(hv.list_domains(conn)[0])
    assert view['anomalies'] == ['reclaim_at is missing']


def test_a_tombstone_is_reported_as_deleted():
    view = _views.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'terminated_at': '2024-05-09T00:00:00Z',
                                      'volumes_pending': [{'id': 'v-1', 'delete_on_termination': True}]})
    assert view['vm_state'] == 'deleted'
    assert view['power_state'] == 'gone'
    assert view['terminated_at'] == '2024-05-09T00:00:00Z'
    assert view['volumes_pending'] == [{'id': 'v-1', 'delete_on_termination': True}]


# -- select by name -------------------------------------------------------------

def test_usage_counts_per_project_and_leaves_out_soft_deleted_and_deleting_domains(fleet):
    assert _views.usage(fleet) == {
        'web': {'instances': 1, 'cores': 2, 'ram_mb': 1024},
        'data': {'instances': 1, 'cores': 4, 'ram_mb': 4096},
    }


def test_usage_leaves_out_domains_without_a_project(fleet):
    assert 'None' not in _views.usage(fleet) and None not in _views.usage(fleet)


def test_usage_of_tombstones_is_nothing():
    assert _views.usage([_views.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'vcpus': 2})]) == {}


def test_usage_counts_nothing_for_sizes_that_are_not_counts():
    # Views from hand-edited tombstones or odd definitions: usage neither raises nor counts them negative.
    views = [{'project': 'web', 'vm_state': 'active', 'vcpus': vcpus, 'memory_mb': memory}
             for vcpus, memory in ((-4, -1024), ('lots', None), (True, 1.5), (2, 512))]
    assert _views.usage(views) == {'web': {'instances': 4, 'cores': 2, 'ram_mb': 512}}


def test_a_tombstone_with_sizes_that_are_not_counts_is_described_without_them():
    view = _views.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'vcpus': '-2', 'memory_mb': -5})
    assert (view['vcpus'], view['memory_mb']) == (None, None)
