# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How every module selects domains (_selection): names, UUIDs, queries, projects."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# Imported, never used: the unit stage runs in the test bed's venv, where no libvirt is a failure, not a skip.
import libvirt  # noqa: F401  # pylint: disable=unused-import
import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _selection
from ansible_collections.deferred.libvirt.plugins.module_utils._selection import SelectionError

from views_support import by_name, described_fleet, names


@pytest.fixture
def fleet(conn, define):
    """A host with: test (unmanaged, running), web01 (web, running 2 vCPU/1 GiB), web02 (web, soft-deleted),
    web03 (web, being deleted), db01 (data, stopped 4 vCPU/4 GiB)."""
    return described_fleet(conn, define)


# -- describe -------------------------------------------------------------------

def test_select_by_name(fleet):
    assert names(_selection.select(fleet, names=['web01'])) == ['web01']


def test_select_by_uuid_in_any_case(fleet):
    uuid = by_name(fleet, 'db01')['uuid']
    assert names(_selection.select(fleet, names=[uuid])) == ['db01']
    assert names(_selection.select(fleet, names=[uuid.upper()])) == ['db01']


def test_a_uuid_selects_its_domain_over_a_domain_named_like_that_uuid(conn, define):
    victim = define('db01').UUIDString()
    define(victim)  # a domain whose name is db01's UUID
    views = [_views.describe(d) for d in hv.list_domains(conn)]
    [chosen] = _selection.select(views, names=[victim])
    assert (chosen['name'], chosen['uuid']) == ('db01', victim)


def test_a_key_that_is_one_domains_name_and_another_domains_uuid_is_refused_as_ambiguous(conn, define):
    victim = define('db01').UUIDString()
    impostor = define(victim.upper()).UUIDString()  # named like db01's UUID, in capitals
    views = [_views.describe(d) for d in hv.list_domains(conn)]
    with pytest.raises(SelectionError) as err:
        _selection.select(views, names=['db01', victim.upper()])
    assert str(err.value) == ('ambiguous: %s is the name of one domain (UUID %s) and the UUID of another (named db01); '
                              'name the domain by its exact UUID instead' % (victim.upper(), impostor))


def test_select_a_list_keeps_the_order_named_and_drops_repeats(fleet):
    uuid = by_name(fleet, 'web01')['uuid']
    assert names(_selection.select(fleet, names=['db01', 'web01', uuid, 'db01'])) == ['db01', 'web01']


def test_names_are_case_sensitive_like_libvirt(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, names=['WEB01'])
    assert str(err.value) == 'no domain named WEB01 on this hypervisor'


def test_unknown_names_are_an_error_listing_them(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, names=['web01', 'nope', 'gone'])
    assert str(err.value) == 'no domain named nope, gone on this hypervisor'


def test_a_long_list_of_unknown_names_is_shortened(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, names=['ghost%02d' % n for n in range(15)])
    assert str(err.value).endswith('ghost09, and 5 more on this hypervisor')


def test_an_empty_name_list_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, names=[])
    assert str(err.value) == 'name is an empty list: name at least one domain, or use query'


def test_no_name_and_no_query_selects_every_domain(fleet):
    assert sorted(names(_selection.select(fleet))) == ['db01', 'test', 'web01', 'web02', 'web03']


# -- project scoping --------------------------------------------------------------

def test_project_limits_the_selection(fleet):
    assert sorted(names(_selection.select(fleet, project='web'))) == ['web01', 'web02', 'web03']


def test_naming_a_domain_of_another_project_is_an_error_not_a_skip(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, names=['web01', 'db01'], project='web')
    assert str(err.value) == 'not in project web: db01 (project data)'


def test_naming_an_unowned_domain_within_a_project_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, names=['test'], project='web')
    assert str(err.value) == 'not in project web: test (project none)'


def test_a_query_cannot_reach_another_project(fleet):
    assert _selection.select(fleet, query="[?project=='data']", project='web') == []


def test_a_query_naming_a_domain_of_another_project_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, query="['db01']", project='web')
    assert 'which is not a domain record, name or UUID (project scope applies)' in str(err.value)


# -- select by query --------------------------------------------------------------

def test_a_query_filters_the_records(fleet):
    assert sorted(names(_selection.select(fleet, query="[?vm_state=='soft_deleted']"))) == ['web02', 'web03']


def test_a_query_may_give_names(fleet):
    assert names(_selection.select(fleet, query="[?project=='data'].name")) == ['db01']


def test_a_query_may_give_uuids(fleet):
    uuid = by_name(fleet, 'web01')['uuid']
    assert names(_selection.select(fleet, query="[?name=='web01'].uuid")) == ['web01']
    assert _selection.select(fleet, query="[?name=='web01'].uuid")[0]['uuid'] == uuid


def test_a_query_matching_nothing_selects_nothing(fleet):
    assert _selection.select(fleet, query="[?vm_state=='paused']") == []


def test_a_query_giving_null_selects_nothing(fleet):
    assert _selection.select(fleet, query='no_such_key') == []


def test_an_invalid_jmespath_query_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, query="[?vm_state==]")
    assert str(err.value).startswith("query '[?vm_state==]' is not a valid JMESPath expression: ")


def test_a_query_giving_things_that_are_not_domains_is_an_error(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, query='[].vcpus')
    assert str(err.value).startswith("query '[].vcpus' gives ")
    assert 'which is not a domain record, name or UUID' in str(err.value)


# -- usage ------------------------------------------------------------------------


def test_unknown_and_foreign_names_are_reported_together(fleet):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, names=['nope', 'db01'], project='web')
    assert str(err.value) == 'no domain named nope on this hypervisor; not in project web: db01 (project data)'


@pytest.mark.parametrize('query, kind', [('length(@)', 'int'), ('[0].name', 'str'), ('`true`', 'bool')])
def test_a_query_that_gives_no_list_is_an_error(fleet, query, kind):
    with pytest.raises(SelectionError) as err:
        _selection.select(fleet, query=query)
    assert str(err.value) == 'query %r gives %s, not a list of domains' % (query, kind)
