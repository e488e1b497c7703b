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


def test_a_domain_reaching_a_file_through_its_backing_chain_is_a_user_of_that_file(tmp_path):
    # Rule 10 through chains: web's disk on hv2 is the backing file of db's overlay on hv3, under another path there.
    golden = tmp_path / 'golden.qcow2'
    golden.write_text(u'x')
    st = os.stat(str(golden))
    web_disk = {'target': 'vda', 'path': str(golden), 'pool': None, 'volume': None,
                'st_dev': st.st_dev, 'st_ino': st.st_ino}
    overlay = {'target': 'vda', 'path': '/srv/db.qcow2', 'pool': None, 'volume': None, 'st_dev': 1, 'st_ino': 2,
               'backing_chain': [{'path': '/mnt/images/golden.qcow2', 'format': 'qcow2',
                                  'st_dev': st.st_dev, 'st_ino': st.st_ino}]}
    views = {'hv2': [{'name': 'web', 'uuid': 'u-web', 'vm_state': 'soft_deleted', 'disks': [web_disk]}],
             'hv3': [{'name': 'db', 'uuid': 'u-db', 'vm_state': 'active', 'disks': [overlay]}]}
    hostvars = dict((h, {'r': {'instances': v}}) for h, v in views.items())
    view = _fleet.FleetView(fleet_index_for(fleet_index(hostvars, ['hv2', 'hv3'], result_var='r'), 'hv2'),
                            {'hostname': 'hv2'})

    [user] = view.disk_users(dict(web_disk), str(golden), 'u-web')

    assert (user['host'], user['name'], user['backing_of']) == ('hv3', 'db', '/srv/db.qcow2')
    assert _fleet.describe_user(user) == 'db on hv3 (backing file of its disk /srv/db.qcow2)'


def _copies_of_web(tmp_path, hv3_copy):
    """web's authoritative copy on hv2, soft-deleted and expired, and a second copy of the same UUID on hv3 (an
    offline migration's leftover, its record naming hv2) with ``hv3_copy``'s state; both open one shared file."""
    image = tmp_path / 'web.qcow2'
    image.write_text(u'x')
    st = os.stat(str(image))
    disk = {'target': 'vda', 'path': str(image), 'pool': None, 'volume': None, 'st_dev': st.st_dev, 'st_ino': st.st_ino}
    past = _record.format_time(_record.utcnow() - datetime.timedelta(hours=1))
    hv2 = {'hostname': 'hv2'}
    copy_ = {'name': 'web', 'uuid': 'u-web', 'managed': True, 'host': hv2, 'generation': 3,
             'disks': [dict(disk)]}
    views = {'hv2': [dict(copy_, vm_state='soft_deleted', power_state='shutoff', reclaim_at=past, generation=4)],
             'hv3': [dict(copy_, **hv3_copy)]}
    hostvars = dict((h, {'r': {'instances': v, 'host': {'hostname': h}}}) for h, v in views.items())
    index = fleet_index(hostvars, ['hv2', 'hv3'], result_var='r')
    view = _fleet.FleetView(fleet_index_for(index, 'hv2'), hv2)
    return view, disk, str(image)


@pytest.mark.parametrize('state', [
    {'vm_state': 'active', 'power_state': 'shutoff'},
    {'vm_state': 'active', 'power_state': 'running'},
    {'vm_state': 'soft_deleted', 'power_state': 'shutoff',
     'reclaim_at': _record.format_time(_record.utcnow() + datetime.timedelta(days=1))},
], ids=['defined-not-in-the-trash', 'running', 'in-the-trash-not-expired'])
def test_rule10_a_copy_of_the_same_domain_on_another_host_keeps_the_disks_it_references(tmp_path, state):
    # Found by the randomized trial (seed 3, step 14): the fleet sweep reclaimed the authoritative copy and deleted
    # the shared disk its stale copy on another host still opened, as a copy of the same UUID was never a user.
    view, disk, path = _copies_of_web(tmp_path, state)

    [user] = view.disk_users(dict(disk), path, 'u-web')

    assert (user['host'], user['name'], user['copy']['vm_state']) == ('hv3', 'web', state['vm_state'])
    assert _fleet.describe_user(user) == 'web on hv3 (a copy of this domain, %s)' % state['vm_state']


def test_rule9_a_copy_expired_in_the_trash_too_is_no_user_the_domain_is_reclaimed_once(tmp_path):
    past = _record.format_time(_record.utcnow() - datetime.timedelta(minutes=5))
    view, disk, path = _copies_of_web(tmp_path, {'vm_state': 'soft_deleted', 'power_state': 'shutoff',
                                                 'reclaim_at': past})

    assert view.disk_users(dict(disk), path, 'u-web') == []


def test_every_file_a_disk_opens_is_referenced_under_its_own_keys():
    disk = {'target': 'vda', 'path': '/srv/top.qcow2', 'st_dev': 1, 'st_ino': 2,
            'backing_chain': [{'path': '/srv/base.qcow2', 'format': 'qcow2', 'st_dev': 1, 'st_ino': 3}]}
    found = _fleet.disk_references('hv2', {'name': 'web'}, 'u-web', disk)
    assert [keys for keys, dummy in found] == [['path:/srv/top.qcow2', 'file:1:2'], ['path:/srv/base.qcow2', 'file:1:3']]
    assert [ref.get('backing_of') for dummy, ref in found] == [None, '/srv/top.qcow2']
    assert [ref['path'] for dummy, ref in found] == ['/srv/top.qcow2', '/srv/base.qcow2']


def test_a_pool_volume_is_keyed_by_the_file_it_resolves_to_as_well():
    disk = {'target': 'vda', 'path': None, 'pool': 'shared', 'volume': 'a.qcow2', 'file_path': '/srv/a.qcow2'}
    assert _fleet.disk_keys(disk) == ['path:/srv/a.qcow2', 'volume:shared/a.qcow2']


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


# -- hosts are told apart by host UUID and full hostname, never by a short name (issue 24, item 6) ----------------

DC1 = {'uuid': '11111111-1111-4111-8111-111111111111', 'hostname': 'hv1.dc1'}
DC2 = {'uuid': '22222222-2222-4222-8222-222222222222', 'hostname': 'hv1.dc2'}


def _soft_deleted(record_host):
    return {'name': 'web', 'uuid': 'u-web', 'managed': True, 'vm_state': 'soft_deleted', 'host': dict(record_host)}


def test_a_record_written_by_hv1_dc2_is_not_this_hosts_on_hv1_dc1():
    # The record check once cut both hostnames at the first dot: hv1.dc1 and hv1.dc2 were one host to it, and a copy
    # written on hv1.dc2 was reclaimed on hv1.dc1 as its own.
    view = _fleet.FleetView(None, DC1)
    stale = view.stale(_soft_deleted(DC2))
    assert stale is not None and 'hv1.dc2' in stale['reason']
    # Not even without UUIDs (a record written before hosts carried one).
    assert _fleet.FleetView(None, {'hostname': 'hv1.dc1'}).stale(_soft_deleted({'hostname': 'hv1.dc2'})) is not None
    # A short name in the record is no proof either: the record is kept, never reclaimed here.
    assert _fleet.FleetView(None, {'hostname': 'hv1.dc1'}).stale(_soft_deleted({'hostname': 'hv1'})) is not None


def test_a_record_of_this_host_is_its_own_by_uuid_or_by_full_hostname():
    assert _fleet.FleetView(None, DC1).stale(_soft_deleted(DC1)) is None
    # libvirt made up a new host UUID at its start: the full hostname still names this host.
    assert _fleet.FleetView(None, DC1).stale(_soft_deleted(dict(DC1, uuid=DC2['uuid']))) is None
    assert _fleet.FleetView(None, DC1).stale(_soft_deleted({'hostname': 'HV1.dc1'})) is None


def test_the_other_hypervisor_hv1_dc2_stays_foreign_to_hv1_dc1():
    # foreign_hosts once removed every short name of this host: hv1 (hv1.dc2's short name) went with it.
    view = _fleet.FleetView({'hypervisors': [DC1, DC2]}, DC1)
    foreign = view.foreign_hosts()
    assert 'hv1.dc2' in foreign and 'hv1.dc1' not in foreign


# -- a bound slice (rule 12) -------------------------------------------------------------------------------------

HV2 = {'uuid': '88dc30c7-1bec-456d-b194-7254d74f571d', 'hostname': 'hv2.fleet.example'}
HV3 = {'uuid': 'f578e1a5-63eb-4883-8148-5b0a1ca5f6e2', 'hostname': 'hv3.fleet.example'}


def _slice(hypervisor=None, host='hv3', built=None):
    hypervisor = hypervisor or HV3
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


# -- a required slice (fleet_required: the fleet workflow's sliced sweep) -----------------------------------------

def _record_naming(hostname):
    return {'uuid': 'c6a0e1d2-0000-4000-8000-000000000001', 'name': 'web', 'managed': True, 'vm_state': 'soft_deleted',
            'host': {'hostname': hostname, 'uuid': None}}


def test_a_required_slice_that_is_missing_foreign_stale_or_hand_made_makes_an_incomplete_view_saying_why():
    old = _slice(built=_record.utcnow() - datetime.timedelta(hours=2))
    cases = ((None, 'none was given'), (_slice(hypervisor=HV2, host='hv2'), 'was built for hv2'),
             (old, 'older than fleet_max_age 15m'), ({'stale': {}}, 'not a fleet slice built by fleet_index_for'))
    for given, why in cases:
        view = _fleet.view_for(given, dict(HV3), 15 * 60, required=True)
        assert view.given and not view.complete
        assert view.gaps_text().startswith('a fleet slice was required (fleet_required) but ') and why in view.gaps_text()
        assert not view.gaps_text().endswith('nothing was changed')
        # It knows no other host's disk users, so every disk another host could reach is kept (incomplete index) ...
        assert view.disk_users({'path': '/srv/shared.qcow2'}, '/srv/shared.qcow2', 'x') == []
        # ... every other host is foreign for Cinder, and a copy whose record names another host stays a stale copy.
        assert 'hv1.fleet.example' in view.foreign_hosts()
        stale = view.stale(_record_naming('hv1.fleet.example'))
        assert stale['authoritative'] == 'hv1.fleet.example' and 'fleet_required' in stale['reason']
        assert view.stale(_record_naming(HV3['hostname'])) is None


def test_without_fleet_required_a_bad_slice_is_still_refused_and_none_is_the_single_host_view():
    with pytest.raises(DeferredError, match='was built for hv2'):
        _fleet.view_for(_slice(hypervisor=HV2, host='hv2'), dict(HV3), 15 * 60)
    assert not _fleet.view_for(None, dict(HV3)).given
    fresh = _slice()
    view = _fleet.view_for(fresh, dict(HV3), 15 * 60, required=True)
    assert view.fleet is fresh and view.complete and view.unavailable is None


def test_a_slice_of_another_fleet_run_is_refused_or_with_fleet_required_treated_as_missing():
    part = dict(_slice(), run='41')
    with pytest.raises(DeferredError, match='is from fleet run 41 .*not this run 42; run the index job|not this run 42'):
        _fleet.check_slice(part, dict(HV3), run='42')
    view = _fleet.view_for(part, dict(HV3), required=True, run='42')
    assert not view.complete and 'is from fleet run 41' in view.gaps_text() and 'not this run 42' in view.gaps_text()
    assert _fleet.view_for(dict(part, run='42'), dict(HV3), required=True, run='42').complete
    assert _fleet.check_slice(part, dict(HV3)) is part  # no run asked for: none checked


# -- rules 10 and 12 for Cinder volumes: a copy of the domain elsewhere lists them too ------------------------------

def _held_view(hv3_views, hv2_views=None, missing=False):
    views = {'hv2': hv2_views if hv2_views is not None else [
        {'name': 'web', 'uuid': 'u-web', 'managed': True, 'vm_state': 'active', 'power_state': 'running',
         'host': {'hostname': 'hv2'}, 'generation': 4, 'disks': []}],
        'hv3': hv3_views}
    hostvars = dict((h, {'r': {'instances': v, 'host': {'hostname': h}}}) for h, v in views.items())
    hosts = ['hv2', 'hv3'] + (['hv4'] if missing else [])
    return _fleet.FleetView(fleet_index_for(fleet_index(hostvars, hosts, result_var='r'), 'hv2'), {'hostname': 'hv2'})


def test_rule10_the_volumes_of_a_domain_wait_while_a_copy_on_another_host_lists_them():
    # Found by the randomized trial (seed 2, step 98): the terminate of hv2's copy deleted the volume hv3's copy listed.
    view = _held_view([{'name': 'web', 'uuid': 'u-web', 'managed': True, 'vm_state': 'active', 'power_state': 'shutoff',
                        'host': {'hostname': 'hv2'}, 'generation': 3, 'disks': []}])
    assert view.volumes_held('u-web') == 'another copy of this domain lists them: web on hv3 (active)'
    assert view.volumes_held('U-WEB', gone=True) == view.volumes_held('u-web')


def test_the_volumes_of_a_domain_with_no_other_copy_do_not_wait():
    view = _held_view([{'name': 'db', 'uuid': 'u-db', 'managed': True, 'vm_state': 'active', 'power_state': 'running',
                        'host': {'hostname': 'hv3'}, 'generation': 1, 'disks': []}])
    assert view.volumes_held('u-web') is None


def test_a_terminated_domains_volumes_go_only_when_the_index_names_it_with_no_copy_left():
    tomb = {'name': 'old', 'uuid': 'u-old', 'vm_state': 'deleted', 'volumes_pending': [{'id': 'v1'}], 'disks': []}
    view = _held_view([], hv2_views=[tomb])
    assert view.volumes_held('u-old', gone=True) is None
    # A tombstone the index was not told of (an older vm_info, a record without it): it cannot vouch.
    assert 'does not name this terminated domain' in view.volumes_held('u-other', gone=True)
    copy_ = {'name': 'old', 'uuid': 'u-old', 'managed': True, 'vm_state': 'stopped', 'power_state': 'shutoff',
             'host': {'hostname': 'hv2'}, 'generation': 2, 'disks': []}
    assert _held_view([copy_], hv2_views=[tomb]).volumes_held('u-old', gone=True) == (
        'another copy of this domain lists them: old on hv3 (stopped)')


def test_rule12_the_volumes_wait_while_the_index_is_incomplete_or_cannot_be_used():
    view = _held_view([], missing=True)
    assert view.volumes_held('u-web') == ('the fleet index is incomplete (hv4 did not report): a copy of this domain '
                                          'on another host may list them')
    unusable = _fleet.FleetView(None, {'hostname': 'hv2'}, unavailable='no slice')
    assert 'no slice' in unusable.volumes_held('u-web')
    # A host of no fleet (no view at all): the single-host view, nothing waits.
    assert _fleet.FleetView(None, {'hostname': 'hv2'}).volumes_held('u-web') is None


def test_rule9_the_volumes_wait_for_no_copy_expired_in_the_trash_a_tie_or_a_stale_one():
    past = _record.format_time(_record.utcnow() - datetime.timedelta(minutes=5))
    copy_ = {'name': 'web', 'uuid': 'u-web', 'managed': True, 'vm_state': 'soft_deleted', 'power_state': 'shutoff',
             'reclaim_at': past, 'generation': 4, 'disks': []}
    view = _held_view([dict(copy_, host={'hostname': 'hv3'})], hv2_views=[dict(copy_, host={'hostname': 'hv2'})])
    assert 'u-web' in view.fleet['reclaim_here']
    assert view.volumes_held('u-web') is None
    # A stale copy expired in the trash (its record names hv2, as a copied definition's does): it loses its definition
    # only, in the same sweep, and keeps no volume; one still in its retention keeps them.
    stale = dict(copy_, host={'hostname': 'hv2'}, generation=3)
    assert _held_view([stale], hv2_views=[dict(copy_, host={'hostname': 'hv2'})]).volumes_held('u-web') is None
    later = _record.format_time(_record.utcnow() + datetime.timedelta(hours=1))
    assert 'web on hv3 (soft_deleted)' in _held_view(
        [dict(stale, reclaim_at=later)], hv2_views=[dict(copy_, host={'hostname': 'hv2'})]).volumes_held('u-web')
