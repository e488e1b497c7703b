# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What vm_info reports and how every module selects domains: names, UUIDs, queries, projects; quota usage."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import libvirt  # noqa: F401 (the unit stage runs in the test bed's venv: no libvirt is a failure, not a skip)
import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _inventory as inv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._inventory import SelectionError


def owned(project, **fields):
    record = _record.empty()
    record['project'] = project
    record.update(fields)
    return record


@pytest.fixture
def fleet(conn, define):
    """A host with: test (unmanaged, running), web01 (web, running 2 vCPU/1 GiB), web02 (web, soft-deleted),
    web03 (web, being deleted), db01 (data, stopped 4 vCPU/4 GiB)."""
    define('web01', running=True, vcpus=2, memory_mib=1024)
    define('web02', vcpus=1, memory_mib=512)
    define('web03', vcpus=1, memory_mib=512)
    define('db01', vcpus=4, memory_mib=4096)
    records = {
        'web01': owned('web', vm_state='active'),
        'web02': owned('web', vm_state='soft_deleted', deleted_at='2024-05-01T10:00:00Z',
                       reclaim_at='2024-05-08T10:00:00Z'),
        'web03': owned('web', vm_state='soft_deleted', task_state='deleting', deleted_at='2024-05-01T10:00:00Z',
                       reclaim_at='2024-05-02T10:00:00Z'),
        'db01': owned('data', vm_state='stopped'),
    }
    domains = dict((d.name, d) for d in hv.list_domains(conn))
    for name, record in records.items():
        hv.write_record(domains[name], record)
    return [inv.describe(d) for d in hv.list_domains(conn)]


def names(views):
    return [v['name'] for v in views]


def by_name(views, name):
    return [v for v in views if v['name'] == name][0]


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
    view = inv.describe(hv.list_domains(conn)[0])
    assert view['vm_state'] == 'error'
    assert view['managed'] is False
    assert view['metadata_error'] == "domain test: lifecycle metadata field locked is 'yes', not true or false"


def test_a_soft_deleted_record_without_reclaim_at_is_reported_as_an_anomaly(conn):
    dom = hv.list_domains(conn)[0]
    hv.write_record(dom, owned('web', vm_state='soft_deleted', deleted_at='2024-05-01T10:00:00Z'))
    view = inv.describe(hv.list_domains(conn)[0])
    assert view['anomalies'] == ['reclaim_at is missing']


def test_a_tombstone_is_reported_as_deleted():
    view = inv.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'terminated_at': '2024-05-09T00:00:00Z',
                                   'volumes_pending': [{'id': 'v-1', 'delete_on_termination': True}]})
    assert view['vm_state'] == 'deleted'
    assert view['power_state'] == 'gone'
    assert view['terminated_at'] == '2024-05-09T00:00:00Z'
    assert view['volumes_pending'] == [{'id': 'v-1', 'delete_on_termination': True}]


# -- select by name -------------------------------------------------------------

def test_select_by_name(fleet):
    assert names(inv.select(fleet, names=['web01'])) == ['web01']


def test_select_by_uuid_in_any_case(fleet):
    uuid = by_name(fleet, 'db01')['uuid']
    assert names(inv.select(fleet, names=[uuid])) == ['db01']
    assert names(inv.select(fleet, names=[uuid.upper()])) == ['db01']


def test_a_uuid_selects_its_domain_over_a_domain_named_like_that_uuid(conn, define):
    victim = define('db01').UUIDString()
    define(victim)  # a domain whose name is db01's UUID
    views = [inv.describe(d) for d in hv.list_domains(conn)]
    [chosen] = inv.select(views, names=[victim])
    assert (chosen['name'], chosen['uuid']) == ('db01', victim)


def test_a_key_that_is_one_domains_name_and_another_domains_uuid_is_refused_as_ambiguous(conn, define):
    victim = define('db01').UUIDString()
    impostor = define(victim.upper()).UUIDString()  # named like db01's UUID, in capitals
    views = [inv.describe(d) for d in hv.list_domains(conn)]
    with pytest.raises(SelectionError) as err:
        inv.select(views, names=['db01', victim.upper()])
    assert str(err.value) == ('ambiguous: %s is the name of one domain (UUID %s) and the UUID of another (named db01); '
                              'name the domain by its exact UUID instead' % (victim.upper(), impostor))


def test_select_a_list_keeps_the_order_named_and_drops_repeats(fleet):
    uuid = by_name(fleet, 'web01')['uuid']
    assert names(inv.select(fleet, names=['db01', 'web01', uuid, 'db01'])) == ['db01', 'web01']


def test_names_are_case_sensitive_like_libvirt(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, names=['WEB01'])
    assert str(err.value) == 'no domain named WEB01 on this hypervisor'


def test_unknown_names_are_an_error_listing_them(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, names=['web01', 'nope', 'gone'])
    assert str(err.value) == 'no domain named nope, gone on this hypervisor'


def test_a_long_list_of_unknown_names_is_shortened(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, names=['ghost%02d' % n for n in range(15)])
    assert str(err.value).endswith('ghost09, and 5 more on this hypervisor')


def test_an_empty_name_list_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, names=[])
    assert str(err.value) == 'name is an empty list: name at least one domain, or use query'


def test_no_name_and_no_query_selects_every_domain(fleet):
    assert sorted(names(inv.select(fleet))) == ['db01', 'test', 'web01', 'web02', 'web03']


# -- project scoping --------------------------------------------------------------

def test_project_limits_the_selection(fleet):
    assert sorted(names(inv.select(fleet, project='web'))) == ['web01', 'web02', 'web03']


def test_naming_a_domain_of_another_project_is_an_error_not_a_skip(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, names=['web01', 'db01'], project='web')
    assert str(err.value) == 'not in project web: db01 (project data)'


def test_naming_an_unowned_domain_within_a_project_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, names=['test'], project='web')
    assert str(err.value) == 'not in project web: test (project none)'


def test_unknown_and_foreign_names_are_reported_together(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, names=['nope', 'db01'], project='web')
    assert str(err.value) == 'no domain named nope on this hypervisor; not in project web: db01 (project data)'


def test_a_query_cannot_reach_another_project(fleet):
    assert inv.select(fleet, query="[?project=='data']", project='web') == []


def test_a_query_naming_a_domain_of_another_project_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, query="['db01']", project='web')
    assert 'which is not a domain record, name or UUID (project scope applies)' in str(err.value)


# -- select by query --------------------------------------------------------------

def test_a_query_filters_the_records(fleet):
    assert sorted(names(inv.select(fleet, query="[?vm_state=='soft_deleted']"))) == ['web02', 'web03']


def test_a_query_may_give_names(fleet):
    assert names(inv.select(fleet, query="[?project=='data'].name")) == ['db01']


def test_a_query_may_give_uuids(fleet):
    uuid = by_name(fleet, 'web01')['uuid']
    assert names(inv.select(fleet, query="[?name=='web01'].uuid")) == ['web01']
    assert inv.select(fleet, query="[?name=='web01'].uuid")[0]['uuid'] == uuid


def test_a_query_matching_nothing_selects_nothing(fleet):
    assert inv.select(fleet, query="[?vm_state=='paused']") == []


def test_a_query_giving_null_selects_nothing(fleet):
    assert inv.select(fleet, query='no_such_key') == []


def test_an_invalid_jmespath_query_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, query="[?vm_state==]")
    assert str(err.value).startswith("query '[?vm_state==]' is not a valid JMESPath expression: ")


@pytest.mark.parametrize('query, kind', [('length(@)', 'int'), ('[0].name', 'str'), ('`true`', 'bool')])
def test_a_query_that_gives_no_list_is_an_error(fleet, query, kind):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, query=query)
    assert str(err.value) == 'query %r gives %s, not a list of domains' % (query, kind)


def test_a_query_giving_things_that_are_not_domains_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        inv.select(fleet, query='[].vcpus')
    assert str(err.value).startswith("query '[].vcpus' gives ")
    assert 'which is not a domain record, name or UUID' in str(err.value)


# -- usage ------------------------------------------------------------------------

def test_usage_counts_per_project_and_leaves_out_soft_deleted_and_deleting_domains(fleet):
    assert inv.usage(fleet) == {
        'web': {'instances': 1, 'cores': 2, 'ram_mb': 1024},
        'data': {'instances': 1, 'cores': 4, 'ram_mb': 4096},
    }


def test_usage_leaves_out_domains_without_a_project(fleet):
    assert 'None' not in inv.usage(fleet) and None not in inv.usage(fleet)


def test_usage_of_tombstones_is_nothing():
    assert inv.usage([inv.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'vcpus': 2})]) == {}


def test_usage_counts_nothing_for_sizes_that_are_not_counts():
    # Views from hand-edited tombstones or odd definitions: usage neither raises nor counts them negative.
    views = [{'project': 'web', 'vm_state': 'active', 'vcpus': vcpus, 'memory_mb': memory}
             for vcpus, memory in ((-4, -1024), ('lots', None), (True, 1.5), (2, 512))]
    assert inv.usage(views) == {'web': {'instances': 4, 'cores': 2, 'ram_mb': 512}}


def test_a_tombstone_with_sizes_that_are_not_counts_is_described_without_them():
    view = inv.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'vcpus': '-2', 'memory_mb': -5})
    assert (view['vcpus'], view['memory_mb']) == (None, None)
