# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet index (rules 9 and 10) on vm_info results as the module returns them.

A pure function of registered results: a dict stands in for hostvars. The scenarios are the ones a fleet
produces: a migration with --persistent and no --undefinesource, a definition copied by hand from a dead host,
a restore on the new host, a live migration, a disk two hosts use.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet
from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_index import fleet_index, fleet_index_for

UUID = '6f1c3c8e-7a4e-4a53-9d6e-3f4b2c1d0a11'
IDS = {'hv2': {'uuid': '88dc30c7-1bec-456d-b194-7254d74f571d', 'hostname': 'hv2'},
       'hv3': {'uuid': 'f578e1a5-63eb-4883-8148-5b0a1ca5f6e2', 'hostname': 'hv3'},
       'hv4': {'uuid': '0b6c1f0e-8a4e-4f57-9d0e-4c3b8f2a9e11', 'hostname': 'hv4'}}
SHARED = '/srv/shared-images/web.qcow2'


def copy_(name='web', uuid=UUID, vm_state='soft_deleted', power_state='shutoff', generation=3, written_by='hv2',
          disks=(SHARED,), **more):
    item = {'name': name, 'uuid': uuid, 'managed': True, 'vm_state': vm_state, 'task_state': None,
            'power_state': power_state, 'generation': generation,
            'host': dict(IDS[written_by]) if written_by else None,
            'disks': [{'target': 'vd%s' % chr(ord('a') + i), 'device': 'disk', 'type': 'file', 'path': p,
                       'pool': None, 'volume': None} for i, p in enumerate(disks)]}
    item.update(more)
    return item


def hostvars(with_identity=True, **hosts):
    out = {}
    for host, views in hosts.items():
        result = {'instances': views, 'failed': False}
        if with_identity:
            result['hypervisor'] = dict(IDS[host])
        out[host] = {'state_facts_vm_info': result}
    return out


def index_of(**hosts):
    return fleet_index(hostvars(**hosts), sorted(hosts))


def test_the_copy_left_behind_by_a_migration_without_undefinesource_is_stale_on_the_new_host():
    # virsh migrate --offline --persistent hv2 -> hv3: the record (written on hv2) travels unchanged.
    index = index_of(hv2=[copy_()], hv3=[copy_()])
    assert index['domains'][UUID]['authoritative'] == 'hv2'
    stale = index['hosts']['hv3']['stale'][UUID]
    assert stale['authoritative'] == 'hv2'
    assert [o['host'] for o in stale['others']] == ['hv2']
    assert 'hv2/web' in stale['reason']
    assert index['hosts']['hv2']['stale'] == {}


def test_after_a_restore_on_the_new_host_the_old_copy_is_the_stale_one():
    # Restored on hv3: its record now names hv3, one generation on, and it runs.
    restored = copy_(vm_state='active', power_state='running', generation=4, written_by='hv3')
    index = index_of(hv2=[copy_()], hv3=[restored])
    assert index['domains'][UUID]['authoritative'] == 'hv3'
    assert UUID in index['hosts']['hv2']['stale']
    assert index['hosts']['hv3']['stale'] == {}
    assert any(line.startswith('STALE hv2/web') for line in index['lines'])


def test_a_running_copy_wins_even_over_a_newer_record_naming_its_own_host():
    index = index_of(hv2=[copy_(generation=9)], hv3=[copy_(vm_state='active', power_state='running', generation=2)])
    assert index['domains'][UUID]['authoritative'] == 'hv3'
    assert index['domains'][UUID]['why'] == 'it runs'


def test_when_both_records_name_their_own_host_the_newest_generation_wins():
    index = index_of(hv2=[copy_(generation=3)], hv3=[copy_(generation=5, written_by='hv3')])
    assert index['domains'][UUID]['authoritative'] == 'hv3'
    assert UUID in index['hosts']['hv2']['stale']


def test_two_running_copies_are_a_conflict_and_neither_is_authoritative():
    index = index_of(hv2=[copy_(power_state='running', vm_state='active')],
                     hv3=[copy_(power_state='running', vm_state='active', written_by='hv3')])
    assert index['domains'][UUID]['authoritative'] is None
    assert set(index['hosts']['hv2']['stale']) == set(index['hosts']['hv3']['stale']) == set([UUID])
    assert index['conflicts'][0]['hosts'] == ['hv2', 'hv3']


def test_a_tie_of_copies_all_in_the_trash_is_reclaimed_once_by_the_lowest_inventory_name():
    # Rule 9's last sentence. Both records name their own host at the same generation; both copies are soft-deleted
    # and shut off: skipping both for ever helps nobody. hv2 (the lowest inventory name) reclaims, hv3 undefines.
    index = index_of(hv2=[copy_()], hv3=[copy_(written_by='hv3')])
    assert index['domains'][UUID]['authoritative'] == 'hv2'
    assert index['conflicts'] == []
    here = fleet_index_for(index, 'hv2')
    assert here['stale'] == {} and list(here['reclaim_here']) == [UUID]
    assert [o['host'] for o in here['reclaim_here'][UUID]['others']] == ['hv3']
    there = fleet_index_for(index, 'hv3')
    assert there['reclaim_here'] == {}
    stale = there['stale'][UUID]
    assert stale['tie'] is True and stale['authoritative'] == 'hv2'
    assert stale['reason'].startswith('tied copy: its record names its own host and the copies tie at generation 3')
    assert 'the fleet reclaims it once, on hv2 (the lowest inventory name)' in stale['reason']
    # Records written before hosts were named tie the same way.
    assert index_of(hv2=[copy_(written_by=None)], hv3=[copy_(written_by=None)])['domains'][UUID]['authoritative'] == 'hv2'


@pytest.mark.parametrize('hv3_copy', [
    copy_(written_by='hv3', vm_state='active'),                       # one copy is not in the trash
    copy_(written_by='hv3', task_state='restoring'),                  # one copy is being restored
])
def test_any_other_tie_is_skipped_with_the_exact_command_that_resolves_it(hv3_copy):
    index = index_of(hv2=[copy_()], hv3=[hv3_copy])
    assert index['domains'][UUID]['authoritative'] is None
    [conflict] = index['conflicts']
    command = ("ansible hv3 -m ansible.builtin.shell -a 'virsh -c qemu:///system undefine %s --keep-nvram --keep-tpm'"
               % UUID)
    assert conflict['resolve'] == ("an operator must choose the copy to keep; to keep hv2's, remove the other "
                                   "definitions only: %s" % command)
    for host in ('hv2', 'hv3'):
        reason = index['hosts'][host]['stale'][UUID]['reason']
        assert reason.startswith('no authoritative copy (') and reason.endswith(command)
    assert any(line.startswith('CONFLICT %s on hv2, hv3' % UUID) and command in line for line in index['lines'])


def test_the_command_for_two_running_copies_stops_one_first_on_the_uri_the_inventory_gives():
    hv = hostvars(hv2=[copy_(power_state='running', vm_state='active')],
                  hv3=[copy_(power_state='running', vm_state='active', written_by='hv3')])
    hv['hv3']['deferred_libvirt_uri'] = 'qemu+ssh://hv3/system'
    index = fleet_index(hv, ['hv2', 'hv3'])
    assert index['conflicts'][0]['resolve'].endswith(
        "ansible hv3 -m ansible.builtin.shell -a 'virsh -c qemu+ssh://hv3/system destroy %s; "
        "virsh -c qemu+ssh://hv3/system undefine %s --keep-nvram --keep-tpm'" % (UUID, UUID))


def test_a_single_copy_moved_with_undefinesource_is_authoritative():
    index = index_of(hv2=[], hv3=[copy_()])
    assert index['domains'][UUID]['authoritative'] == 'hv3'
    assert index['stale'] == []


def test_a_single_copy_whose_record_names_a_host_outside_the_play_is_stale():
    index = fleet_index(hostvars(hv3=[copy_()]), ['hv3'])
    assert index['domains'][UUID]['authoritative'] is None
    assert 'hv2, which is no host of this play' in index['hosts']['hv3']['stale'][UUID]['reason']


def test_without_a_hypervisor_identity_the_record_host_is_matched_by_inventory_name():
    index = fleet_index(hostvars(with_identity=False, hv2=[copy_()], hv3=[copy_()]), ['hv2', 'hv3'])
    assert index['domains'][UUID]['authoritative'] == 'hv2'


def test_identities_given_by_the_play_are_used_when_vm_info_carries_none():
    hv = hostvars(with_identity=False, hv2=[copy_()], hv3=[copy_()])
    index = fleet_index(hv, ['hv2', 'hv3'], identities={'hv2': IDS['hv3'], 'hv3': IDS['hv2']})
    # The identities say the inventory names are swapped: the record (written by hv2's daemon) names inventory hv3.
    assert index['domains'][UUID]['authoritative'] == 'hv3'


def test_a_disk_two_hosts_reference_is_shared_and_each_host_sees_the_other():
    other = '0b0e5b7f-1d9a-4f36-8a0f-6c2b9f1e2d33'
    db = copy_(name='db', uuid=other, vm_state='active', written_by='hv3', disks=(SHARED, '/var/lib/db.qcow2'))
    index = index_of(hv2=[copy_(vm_state='active')], hv3=[db])
    assert [d['disk'] for d in index['shared_disks']] == ['path:' + SHARED]
    assert [(r['host'], r['name']) for r in index['hosts']['hv2']['shared_disks']['path:' + SHARED]] == [('hv3', 'db')]
    assert [(r['host'], r['name']) for r in index['hosts']['hv3']['shared_disks']['path:' + SHARED]] == [('hv2', 'web')]
    assert 'path:/var/lib/db.qcow2' not in index['hosts']['hv3']['shared_disks']


def test_the_same_file_under_two_paths_is_one_disk_when_vm_info_reports_device_and_inode():
    a = copy_(vm_state='active', disks=('/mnt/a/web.qcow2',))
    b = copy_(name='db', uuid='0b0e5b7f-1d9a-4f36-8a0f-6c2b9f1e2d33', vm_state='active', written_by='hv3',
              disks=('/srv/a/web.qcow2',))
    a['disks'][0].update(st_dev=64768, st_ino=1234)
    b['disks'][0].update(st_dev=64768, st_ino=1234)
    index = index_of(hv2=[a], hv3=[b])
    assert [d['disk'] for d in index['shared_disks']] == ['file:64768:1234']


def test_pool_volumes_are_indexed_by_pool_and_volume():
    a = copy_(vm_state='active', disks=())
    a['disks'] = [{'target': 'vda', 'type': 'volume', 'path': None, 'pool': 'shared', 'volume': 'web.qcow2'}]
    b = copy_(name='db', uuid='0b0e5b7f-1d9a-4f36-8a0f-6c2b9f1e2d33', vm_state='active', written_by='hv3', disks=())
    b['disks'] = [dict(a['disks'][0])]
    index = index_of(hv2=[a], hv3=[b])
    assert [d['disk'] for d in index['shared_disks']] == ['volume:shared/web.qcow2']


GOLDEN = '/srv/shared-images/golden.qcow2'


def test_a_backing_file_of_another_hosts_overlay_is_shared_with_the_domain_whose_disk_it_is():
    # Rule 10 through a chain: the golden image is web's disk on hv2 and the backing file of db's overlay on hv3.
    web = copy_(disks=(GOLDEN,))
    web['disks'][0].update(st_dev=64768, st_ino=77)
    db = copy_(name='db', uuid='0b0e5b7f-1d9a-4f36-8a0f-6c2b9f1e2d33', vm_state='active', written_by='hv3',
               disks=('/srv/shared-images/db.qcow2',))
    db['disks'][0]['backing_chain'] = [{'path': GOLDEN, 'format': 'qcow2', 'st_dev': 64768, 'st_ino': 77}]

    index = index_of(hv2=[web], hv3=[db])

    assert sorted(d['disk'] for d in index['shared_disks']) == ['file:64768:77', 'path:' + GOLDEN]
    for key in ('path:' + GOLDEN, 'file:64768:77'):
        [ref] = index['hosts']['hv2']['shared_disks'][key]
        assert (ref['host'], ref['name'], ref['path'], ref['backing_of']) == (
            'hv3', 'db', GOLDEN, '/srv/shared-images/db.qcow2')
        [mine] = index['hosts']['hv3']['shared_disks'][key]
        assert (mine['host'], mine['name'], mine.get('backing_of')) == ('hv2', 'web', None)
    # The overlay itself is db's alone.
    assert 'path:/srv/shared-images/db.qcow2' not in index['hosts']['hv3']['shared_disks']
    assert 'shared disk path:%s: hv2/web, hv3/db (backing file)' % GOLDEN in index['lines']


def test_two_overlays_on_one_golden_image_share_only_the_golden_image():
    overlays = []
    for host, name, uuid in (('hv2', 'web', UUID), ('hv3', 'db', '0b0e5b7f-1d9a-4f36-8a0f-6c2b9f1e2d33')):
        view = copy_(name=name, uuid=uuid, vm_state='active', written_by=host, disks=('/srv/%s.qcow2' % name,))
        view['disks'][0]['backing_chain'] = [{'path': GOLDEN, 'format': 'qcow2', 'st_dev': None, 'st_ino': None}]
        overlays.append(view)

    index = index_of(hv2=[overlays[0]], hv3=[overlays[1]])

    assert [d['disk'] for d in index['shared_disks']] == ['path:' + GOLDEN]
    assert [r['name'] for r in index['hosts']['hv2']['shared_disks']['path:' + GOLDEN]] == ['db']


def test_a_chain_a_host_could_not_read_is_listed_and_printed():
    db = copy_(name='db', vm_state='active', disks=('/srv/shared-images/db.qcow2',))
    db['disks'][0].update(backing_chain=[], backing_chain_error="backing name 'json:{' cannot be parsed")
    index = index_of(hv2=[db])
    assert index['chain_errors'] == [{'host': 'hv2', 'name': 'db', 'uuid': UUID, 'target': 'vda',
                                      'error': "backing name 'json:{' cannot be parsed"}]
    assert ("UNREADABLE CHAIN hv2/db disk vda: backing name 'json:{' cannot be parsed: the files it reaches behind "
            "the disk are not indexed") in index['lines']


def test_an_unreadable_chain_makes_the_index_incomplete_for_every_host_saying_why():
    # What the chain reaches behind hv2's disk is unknown: another host's terminate must not delete a file it may be
    # (rule 10 through chains). Like a host that did not report, it keeps storage another host could reach for now.
    db = copy_(name='db', vm_state='active', disks=('/srv/shared-images/db.qcow2',))
    db['disks'][0].update(backing_chain=[], backing_chain_error="backing name 'json:{' cannot be parsed")
    web = copy_(name='web', uuid='0b0e5b7f-1d9a-4f36-8a0f-6c2b9f1e2d33', vm_state='soft_deleted', written_by='hv3',
                disks=('/srv/shared-images/web.qcow2',))
    index = index_of(hv2=[db], hv3=[web])
    assert index['complete'] is False and index['missing'] == {}
    assert index['unreadable'] == {'hv2': ["the backing chain of db's disk vda cannot be read (backing name 'json:{' "
                                           "cannot be parsed)"]}
    part = fleet_index_for(index, 'hv3')
    assert part['complete'] is False and part['missing'] == []
    assert part['gaps'] == ["hv2: the backing chain of db's disk vda cannot be read (backing name 'json:{' cannot be "
                            "parsed)"]
    view = _fleet.FleetView(part, part['hypervisor'])
    assert not view.complete and view.gaps_text() == part['gaps'][0]


def test_the_two_copies_of_one_domain_sharing_their_disk_are_listed_as_sharing_it():
    index = index_of(hv2=[copy_()], hv3=[copy_()])
    refs = index['hosts']['hv2']['shared_disks']['path:' + SHARED]
    assert [(r['host'], r['uuid']) for r in refs] == [('hv3', UUID)]


def test_tombstones_hold_no_definition_and_no_disk():
    index = index_of(hv2=[copy_(vm_state='deleted', power_state='gone')], hv3=[copy_()])
    assert index['domains'][UUID]['copies'][0]['host'] == 'hv3'
    assert index['shared_disks'] == []


def test_a_host_that_did_not_report_makes_the_index_incomplete():
    hv = hostvars(hv2=[copy_()])
    hv['hv3'] = {'state_facts_vm_info': {'failed': True, 'msg': 'cannot connect to the hypervisor'}}
    index = fleet_index(hv, ['hv2', 'hv3'])
    assert index['complete'] is False
    assert index['missing'] == {'hv3': 'cannot connect to the hypervisor'}
    assert fleet_index_for(index, 'hv2')['complete'] is False
    assert any('DID NOT REPORT' in line for line in index['lines'])


def test_one_hosts_slice_carries_only_what_an_operation_there_needs():
    index = index_of(hv2=[copy_()], hv3=[copy_()])
    part = fleet_index_for(index, 'hv3')
    assert sorted(part) == ['built_at', 'complete', 'elsewhere', 'fleet', 'fleet_hosts', 'gaps', 'host', 'hypervisor',
                            'hypervisors', 'missing', 'reclaim_here', 'shared_disks', 'stale']
    assert part['hypervisor'] == IDS['hv3'] and list(part['stale']) == [UUID]
    # Only the UUIDs with a copy on another host: where those copies are (their volumes wait while one is left).
    assert [(c['host'], c['vm_state']) for c in part['elsewhere'][UUID]] == [('hv2', 'soft_deleted')]


def test_a_slice_stays_the_same_size_whatever_the_size_of_the_fleet():
    # Every slice once listed every host of the fleet and every reporting hypervisor: 306 KB each at 3,000 hosts.
    def sized(count):
        hv = {}
        for n in range(count):
            name = 'h%05d' % n
            hv[name] = {'state_facts_vm_info': {'failed': False, 'hypervisor': {'uuid': '%032x' % n, 'hostname': name},
                                                'instances': [copy_(name='d%05d' % n, uuid='%032x' % (n + 1 << 64),
                                                                    written_by=None, disks=('/p/%d.qcow2' % n,))]}}
        index = fleet_index(hv, sorted(hv))
        return index, fleet_index_for(index, 'h00000')
    small_index, small = sized(10)
    big_index, big = sized(1000)
    assert len(json.dumps(big)) - len(json.dumps(small)) == len('1000') - len('10')  # only the count's digits
    assert big['hypervisors'] == [] and big['fleet'] is None
    assert big['fleet_hosts']['count'] == 1000 and small['fleet_hosts']['count'] == 10
    assert big['fleet_hosts']['digest'] != small['fleet_hosts']['digest']
    assert big['fleet_hosts'] == big_index['fleet_hosts']  # computed once, when the index is built


def test_a_slice_names_the_hypervisors_holding_other_copies_of_its_domains_and_users_of_its_disks():
    # Rule 10 for Cinder: the host of the authoritative copy, whose sweep may detach a volume, knows the stale
    # copy's host (an attachment held there is kept), and the stale copy's host knows the authoritative one.
    index = index_of(hv2=[copy_()], hv3=[copy_()], hv4=[copy_(name='other', uuid='6' * 32, written_by='hv4',
                                                              disks=('/other.qcow2',))])
    assert [h['host'] for h in fleet_index_for(index, 'hv2')['hypervisors']] == ['hv3']
    assert [h['host'] for h in fleet_index_for(index, 'hv3')['hypervisors']] == ['hv2']
    assert fleet_index_for(index, 'hv4')['hypervisors'] == []
    view = _fleet.FleetView(fleet_index_for(index, 'hv2'), IDS['hv2'])
    assert 'hv3' in view.foreign_hosts() and 'hv2' not in view.foreign_hosts()
    shared = index_of(hv2=[copy_(disks=('/shared.qcow2',))],
                      hv4=[copy_(name='other', uuid='6' * 32, written_by='hv4', disks=('/shared.qcow2',))])
    assert [h['host'] for h in fleet_index_for(shared, 'hv2')['hypervisors']] == ['hv4']


def test_a_slice_is_bound_to_its_host_the_fleet_and_when_the_index_was_built():
    # Rule 12: a module can tell a slice built for another host, or long ago, from its own.
    hv = hostvars(hv2=[copy_()])
    hv['hv3'] = {'state_facts_vm_info': {'failed': True, 'msg': 'unreachable'}}
    index = fleet_index(hv, ['hv2', 'hv3'])
    part = fleet_index_for(index, 'hv2')
    assert part['host'] == 'hv2' and part['hypervisor'] == IDS['hv2']
    assert part['fleet'] is None  # no declared group known to the index: the hosts it was built from, by count and digest
    assert part['fleet_hosts'] == _fleet.fleet_hosts(['hv3', 'hv2'])
    assert part['built_at'] == index['built_at'] and part['built_at'].endswith('Z')
    index['fleet'] = 'hypervisors'
    assert fleet_index_for(index, 'hv2')['fleet'] == 'hypervisors'


def test_a_slice_for_a_host_outside_the_index_says_why():
    index = index_of(hv2=[copy_()])
    with pytest.raises(AnsibleFilterError, match='hv9 is not in the fleet index'):
        fleet_index_for(index, 'hv9')
    with pytest.raises(AnsibleFilterError, match='build it with deferred.libvirt.fleet_index'):
        fleet_index_for({}, 'hv2')


def test_an_index_of_64_hosts_holds_every_domain_once():
    # 64 hosts x 50 domains, each host sharing one disk with the next: every domain indexed once.
    hosts = {}
    for h in range(64):
        views = []
        for d in range(50):
            views.append({'name': 'd%d' % d, 'uuid': '%08x-0000-4000-8000-%012x' % (h, d), 'managed': True,
                          'vm_state': 'active', 'power_state': 'shutoff', 'generation': 1,
                          'host': {'uuid': None, 'hostname': 'h%d' % h},
                          'disks': [{'path': '/srv/shared/%d.qcow2' % ((h + d) % 3200), 'target': 'vda'}]})
        hosts['h%d' % h] = {'state_facts_vm_info': {'instances': views, 'failed': False}}
    index = fleet_index(hosts, sorted(hosts))
    assert len(index['domains']) == 3200 and index['stale'] == []


def test_one_hypervisor_under_two_inventory_names_is_indexed_once():
    # The same libvirtd listed twice (by name and by address, or in two groups): same host UUID, hostname, domains.
    hv = {'hv2': {'state_facts_vm_info': {'instances': [copy_()], 'failed': False, 'hypervisor': dict(IDS['hv2'])}},
          'hv2.example': {'state_facts_vm_info': {'instances': [copy_()], 'failed': False,
                                                  'hypervisor': dict(IDS['hv2'])}}}
    index = fleet_index(hv, ['hv2', 'hv2.example'])
    assert index['aliases'] == {'hv2.example': 'hv2'}
    # One copy, authoritative, not stale; its disk is shared with nobody.
    assert [c['host'] for c in index['domains'][UUID]['copies']] == ['hv2']
    assert (index['stale'], index['conflicts'], index['shared_disks']) == ([], [], [])
    assert fleet_index_for(index, 'hv2.example')['stale'] == {}
    assert any('hv2.example is the same hypervisor as hv2' in line for line in index['lines'])


def test_one_identity_with_other_domains_is_two_hosts_and_their_tie_keeps_both():
    # Two hypervisors cloned with one host_uuid and hostname: not the same daemon, as their domains differ.
    other = '0b0e5b7f-1d9a-4f36-8a0f-6c2b9f1e2d33'
    hv = {'a': {'state_facts_vm_info': {'instances': [copy_(written_by=None)], 'failed': False,
                                        'hypervisor': dict(IDS['hv2'])}},
          'b': {'state_facts_vm_info': {'instances': [copy_(written_by=None), copy_(name='db', uuid=other)],
                                        'failed': False, 'hypervisor': dict(IDS['hv2'])}}}
    index = fleet_index(hv, ['a', 'b'])
    assert index['aliases'] == {}
    assert index['domains'][UUID]['authoritative'] is None
    assert UUID in index['hosts']['a']['stale'] and UUID in index['hosts']['b']['stale']


def test_an_image_attached_to_thousands_of_domains_is_shared_with_a_bounded_slice_per_host():
    # An installer ISO on shared storage, attached to every domain of 100 hosts (5,000 references).
    iso = {'target': 'sda', 'device': 'cdrom', 'type': 'file', 'path': '/srv/iso/installer.iso', 'pool': None,
           'volume': None, 'st_dev': 64768, 'st_ino': 77}
    hosts = {}
    for h in range(100):
        views = [{'name': 'd%d' % d, 'uuid': '%08x-0000-4000-8000-%012x' % (h, d), 'managed': True, 'vm_state': 'active',
                  'power_state': 'running', 'generation': 1, 'host': {'uuid': None, 'hostname': 'h%d' % h},
                  'disks': [dict(iso)]} for d in range(50)]
        hosts['h%d' % h] = {'state_facts_vm_info': {'instances': views, 'failed': False}}
    index = fleet_index(hosts, sorted(hosts))
    [item] = [d for d in index['shared_disks'] if d['disk'] == 'path:/srv/iso/installer.iso']
    assert len(item['references']) == 5000
    for host in ('h0', 'h99'):
        users = index['hosts'][host]['shared_disks']['path:/srv/iso/installer.iso']
        assert 1 <= len(users) <= 12
    [line] = [line for line in index['lines'] if line.startswith('shared disk path:/srv/iso/installer.iso')]
    assert line.endswith('and 4990 more')


def test_a_bounded_slice_still_names_another_domain_when_many_copies_of_one_come_first():
    # 20 hosts hold a copy of one domain (one UUID) and one host another domain, all on one disk: the copies must not
    # crowd the other domain out of the slice, or a terminate there would take the disk for unused.
    views = dict(('h%02d' % h, [copy_(written_by=None)]) for h in range(20))
    hv = dict((h, {'state_facts_vm_info': {'instances': v, 'failed': False}}) for h, v in views.items())
    other = copy_(name='db', uuid='0b0e5b7f-1d9a-4f36-8a0f-6c2b9f1e2d33', written_by=None)
    hv['z99'] = {'state_facts_vm_info': {'instances': [other], 'failed': False}}
    index = fleet_index(hv, sorted(hv))
    users = index['hosts']['h00']['shared_disks']['path:' + SHARED]
    assert other['uuid'] in [u['uuid'] for u in users]
    assert len(users) <= 12


def test_a_record_written_on_hv1_dc2_does_not_name_hv1_dc1():
    # Issue 24, item 6: the index cut hostnames at the first dot, so hv1.dc1 held "its own" copy of a domain whose
    # record hv1.dc2 wrote, and both copies named their own host.
    ids = {'a': {'uuid': '11111111-1111-4111-8111-111111111111', 'hostname': 'hv1.dc1'},
           'b': {'uuid': '22222222-2222-4222-8222-222222222222', 'hostname': 'hv1.dc2'}}
    item = copy_(written_by=None, host=dict(ids['b']))
    hv = {'a': {'state_facts_vm_info': {'instances': [item], 'failed': False, 'hypervisor': dict(ids['a'])}},
          'b': {'state_facts_vm_info': {'instances': [], 'failed': False, 'hypervisor': dict(ids['b'])}}}
    index = fleet_index(hv, ['a', 'b'])
    copy_a = index['domains'][UUID]['copies'][0]
    assert copy_a['names_own_host'] is False and copy_a['record_host_in_play'] == 'b'
    # Without identities the inventory name is matched whole: hv1 is not hv1.dc2.
    hv = {'hv1': {'state_facts_vm_info': {'instances': [copy_(written_by=None, host={'hostname': 'hv1.dc2'})],
                                          'failed': False}}}
    index = fleet_index(hv, ['hv1'])
    assert UUID in index['hosts']['hv1']['stale']
