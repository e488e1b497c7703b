# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_info and vm_attributes on the real hypervisor, as an operator runs them."""

import os
import subprocess

import libvirt
import pytest

import guests
from results import NS, info, only

INFO = 'deferred.libvirt.vm_info'
IMAGES = '/var/lib/libvirt/images'
ATTRS = 'deferred.libvirt.vm_attributes'
BOGUS = '<lifecycle version="1"><vm_state>bogus</vm_state></lifecycle>'
BOGUS_READ_BACK = '<lifecycle version="1">\n  <vm_state>bogus</vm_state>\n</lifecycle>'


def virsh_metadata(name, *args):
    return subprocess.run(['virsh', '-c', 'qemu:///system', 'metadata', name, '--uri', NS, '--config'] + list(args),
                          check=True, capture_output=True, text=True).stdout


def write_bogus_record(name):
    """A hand-written record with a vm_state that does not exist, as an operator could write it."""
    virsh_metadata(name, '--key', 'deferred', '--set', BOGUS)


def read_record(name):
    return virsh_metadata(name).strip()


def set_attributes(ansible, name, **attrs):
    result = ansible.task(ATTRS, name=name, **attrs)
    assert not result.get('failed'), result


def owners_then_info(ansible, owners, **args):
    """vm_attributes giving each domain of ``owners`` (name: project) its project, then vm_info with ``args``, in
    one play; returns vm_info's result."""
    results = ansible.tasks(*[(ATTRS, {'name': name, 'project': project}) for name, project in owners.items()],
                            (INFO, args))
    assert not any(r.get('failed') for r in results[:-1]), results
    return results[-1]


def test_vm_info_reports_a_running_guest_as_an_unmanaged_active_domain(ansible, make_guest):
    name, uuid = make_guest('a')
    result = ansible.task('deferred.libvirt.vm_info', name=name)
    assert not result.get('failed'), result
    [inst] = result['instances']
    assert inst['uuid'] == uuid
    assert inst['managed'] is False
    assert inst['vm_state'] == 'active'
    assert inst['power_state'] == 'running'
    assert inst['memory_mb'] == 128 and inst['vcpus'] == 1


def test_vm_attributes_then_vm_info_shows_owner_and_guards(ansible, make_guest):
    name, dummy = make_guest('a', start=False)
    changed = ansible.task('deferred.libvirt.vm_attributes', name=name, project='web', user='alice',
                           locked=True, lock_reason='audit', reclaim_interval='3d')
    assert changed['changed'] is True, changed
    again = ansible.task('deferred.libvirt.vm_attributes', name=name, project='web', user='alice',
                         locked=True, lock_reason='audit', reclaim_interval='3d')
    assert again['changed'] is False
    rc, info = ansible.adhoc('deferred.libvirt.vm_info', 'name=%s project=web' % name)
    assert rc == 0
    [inst] = info['instances']
    assert (inst['project'], inst['user'], inst['locked'], inst['lock_reason'], inst['reclaim_interval']) == \
        ('web', 'alice', True, 'audit', 3 * 86400)
    assert inst['vm_state'] == 'stopped' and inst['managed'] is True
    assert info['usage'] == {'web': {'instances': 1, 'cores': 1, 'ram_mb': 128}}


def test_unlocking_clears_the_lock_reason(ansible, make_guest):
    name, dummy = make_guest('l', start=False)
    # Clearing a guard needs force (issue 12, item 17).
    locked, unlocked, read = ansible.tasks((ATTRS, {'name': name, 'locked': True, 'lock_reason': 'INC-42'}),
                                           (ATTRS, {'name': name, 'locked': False, 'force': True}),
                                           (INFO, {'name': name}))
    assert not locked.get('failed') and not unlocked.get('failed'), (locked, unlocked)
    [inst] = read['instances']
    assert (inst['locked'], inst['lock_reason']) == (False, None)


# -- selection -------------------------------------------------------------------------------------


def test_query_selects_domains_by_record_fields(ansible, make_guest, prefix):
    web, dummy = make_guest('web', start=False)
    db, dummy = make_guest('db', start=False)
    result = owners_then_info(ansible, {web: 'web', db: 'db'},
                              query="[?starts_with(name, '%s') && project=='db']" % prefix)
    assert not result.get('failed'), result
    assert [i['name'] for i in result['instances']] == [db]


def test_project_limits_the_selection_and_its_usage(ansible, make_guest, prefix):
    web, dummy = make_guest('web', start=False)
    db, dummy = make_guest('db', start=False)
    result = owners_then_info(ansible, {web: prefix + 'web', db: prefix + 'db'}, project=prefix + 'web')
    assert not result.get('failed'), result
    assert [i['name'] for i in result['instances']] == [web]
    assert result['usage'] == {prefix + 'web': {'instances': 1, 'cores': 1, 'ram_mb': 128}}
    facts = result['ansible_facts']
    assert [i['name'] for i in facts['deferred_libvirt_instances']] == [web]


def test_project_scopes_a_query(ansible, make_guest, prefix):
    web, dummy = make_guest('web', start=False)
    db, dummy = make_guest('db', start=False)
    result = owners_then_info(ansible, {web: prefix + 'web', db: prefix + 'db'}, project=prefix + 'db',
                              query="[?power_state=='shutoff']")
    assert not result.get('failed'), result
    assert [i['name'] for i in result['instances']] == [db]


def test_adhoc_vm_info_selects_by_uuid(ansible, make_guest):
    name, uuid = make_guest('u', start=False)
    rc, result = ansible.adhoc(INFO, 'name=%s' % uuid.upper())
    assert rc == 0, result
    assert [(i['name'], i['uuid']) for i in result['instances']] == [(name, uuid)]


def test_include_deleted_shows_the_tombstone_of_a_terminated_domain(ansible, make_guest):
    name, uuid = make_guest('t', start=False)
    owned, terminated, gone, deleted, usage = ansible.tasks(
        (ATTRS, {'name': name, 'project': 'web'}), ('deferred.libvirt.vm_terminate', {'name': name}),
        (INFO, {'name': name}), (INFO, {'name': name, 'include_deleted': True}),
        (INFO, {'project': 'web', 'include_deleted': True, 'name': name}))
    assert not owned.get('failed') and not terminated.get('failed'), (owned, terminated)
    assert gone['failed'] is True and name in gone['msg']
    [inst] = deleted['instances']
    assert (inst['name'], inst['uuid'], inst['vm_state'], inst['project']) == (name, uuid, 'deleted', 'web')
    assert inst['terminated_at']
    # Tombstones use no quota.
    assert usage['usage'] == {}


# -- bad input: a clear error, nothing changed -------------------------------------------------------


def test_unknown_domain_is_an_error_and_nothing_is_changed(ansible, make_guest, prefix):
    name, uuid = make_guest('a', start=False)
    missing = prefix + 'missing'
    result, read = ansible.tasks((ATTRS, {'name': [name, missing], 'project': 'web'}), (INFO, {'name': name}))
    assert result['failed'] is True
    assert missing in result['msg'] and 'nothing was changed' in result['msg']
    assert only(read)['managed'] is False
    assert ansible.events() == []
    rc, adhoc = ansible.adhoc(INFO, 'name=%s' % missing)
    assert rc != 0 and adhoc['failed'] is True and missing in adhoc['msg']


def test_domain_of_another_project_is_an_error_naming_it(ansible, make_guest):
    name, dummy = make_guest('a', start=False)
    result = owners_then_info(ansible, {name: 'alpha'}, name=name, project='beta')
    assert result['failed'] is True
    assert name in result['msg'] and 'alpha' in result['msg'] and 'beta' in result['msg']


def test_invalid_jmespath_query_is_an_error(ansible):
    result = ansible.task(INFO, query="[?vm_state=='active'")
    assert result['failed'] is True
    assert 'not a valid JMESPath expression' in result['msg']


def test_a_query_that_gives_no_domain_records_is_answered_as_it_is_and_a_changing_module_refuses_it(ansible):
    # vm_info changes nothing: an aggregate over the records comes back in query_result (issue 25); a module that
    # changes domains still takes only records, names or UUIDs.
    result, refused = ansible.tasks((INFO, {'query': 'length(@)'}),
                                    ('deferred.libvirt.vm_soft_delete', {'query': 'length(@)'}))
    assert not result.get('failed') and isinstance(result['query_result'], int) and result['instances'] == [], result
    assert refused['failed'] is True and 'not a list of domains' in refused['msg']


def test_malformed_metadata_is_reported_with_vm_state_error(ansible, make_guest):
    name, dummy = make_guest('m', start=False)
    write_bogus_record(name)
    inst = info(ansible, name)
    assert inst['vm_state'] == 'error'
    assert name in inst['metadata_error'] and 'bogus' in inst['metadata_error']


@pytest.mark.parametrize('module, args', [
    (ATTRS, {'project': 'web'}),
    ('deferred.libvirt.vm_soft_delete', {}),
])
def test_operations_refuse_a_domain_with_malformed_metadata(ansible, make_guest, module, args):
    name, dummy = make_guest('m', start=False)
    write_bogus_record(name)
    result = ansible.task(module, name=name, **args)
    assert result['failed'] is True
    assert name in result['msg'] and 'bogus' in result['msg'] and 'nothing was changed' in result['msg']
    assert read_record(name) == BOGUS_READ_BACK
    assert ansible.events() == []


def test_unreachable_uri_is_a_clear_error(ansible):
    uri = 'qemu:///system?socket=/nonexistent/libvirt-sock'
    result = ansible.playbook([{'deferred.libvirt.vm_info': {'uri': uri}}]).task(0)
    assert result['failed'] is True
    assert 'cannot connect to the hypervisor at %s' % uri in result['msg']
    assert 'Traceback' not in result.get('module_stderr', '')


def test_invalid_duration_in_vm_attributes_changes_nothing(ansible, make_guest):
    name, dummy = make_guest('d', start=False)
    owned, before, result, after = ansible.tasks((ATTRS, {'name': name, 'project': 'web', 'reclaim_interval': '3d'}),
                                                 (INFO, {'name': name}),
                                                 (ATTRS, {'name': name, 'reclaim_interval': 'a week'}),
                                                 (INFO, {'name': name}))
    assert not owned.get('failed'), owned
    assert result['failed'] is True
    assert 'reclaim_interval' in result['msg'] and "'a week'" in result['msg']
    assert only(after)['reclaim_interval'] == only(before)['reclaim_interval'] == 3 * 86400


def test_unknown_option_is_refused(ansible):
    result = ansible.task(INFO, nmae='web01')
    assert result['failed'] is True
    assert 'nmae' in result['msg'] and 'Unsupported parameters' in result['msg']


def test_vm_info_reports_the_space_each_disk_takes_and_the_domains_total(
        ansible, make_guest, hypervisor, scratch, prefix):
    # A sparse qcow2 of 1 GiB virtual size, a raw file holding 4 MiB of 64, and a volume of the default pool: each
    # counts what it holds on the host, not its virtual size.
    qcow = guests.make_disk(scratch(IMAGES, 'sparse.qcow2'), size='1G')
    raw = scratch(IMAGES, 'data.raw')
    with open(raw, 'wb') as handle:
        handle.write(os.urandom(4 << 20))
        handle.truncate(64 << 20)
    pool = hypervisor.storagePoolLookupByName('default')
    vol = guests.make_pool_volume(hypervisor, name=prefix + 'vol.qcow2')
    try:
        name, dummy = make_guest('a', start=False, disks=[
            {'path': qcow, 'target': 'vdb'}, {'path': raw, 'target': 'vdc', 'format': 'raw'},
            {'type': 'volume', 'pool': 'default', 'volume': vol.name(), 'target': 'vdd'}])
        result = ansible.task(INFO, name=name)
        assert not result.get('failed'), result
        [inst] = result['instances']
        disks = dict((d['target'], d) for d in inst['disks'])
        on_disk = dict((t, os.stat(p).st_blocks * 512) for t, p in (('vdb', qcow), ('vdc', raw), ('vdd', vol.path())))
        assert dict((t, disks[t]['allocated_bytes']) for t in on_disk) == on_disk
        assert on_disk['vdb'] < 1 << 20 and (4 << 20) <= on_disk['vdc'] < (64 << 20)
        assert inst['disk_bytes'] == sum(on_disk.values())
    finally:
        pool.refresh(0)
        try:
            pool.storageVolLookupByName(prefix + 'vol.qcow2').delete(0)
        except libvirt.libvirtError:
            pass


def test_vm_info_fields_and_a_projecting_query_from_the_shell(ansible, make_guest):
    name, uuid = make_guest('a', start=False)
    project = 'p' + uuid[:8]
    set_attributes(ansible, name, project=project, user='alice')
    rc, shown = ansible.adhoc(INFO, 'project=%s fields=name,project,user,reclaim_at' % project)
    assert rc == 0, shown
    assert shown['instances'] == [{'name': name, 'project': project, 'user': 'alice', 'reclaim_at': None}]
    rc, pairs = ansible.adhoc(INFO, 'project=%s query="[].[name, vm_state]"' % project)
    assert rc == 0, pairs
    assert pairs['query_result'] == [[name, 'stopped']] and pairs['instances'] == []
    rc, bad = ansible.adhoc(INFO, 'project=%s fields=name,size' % project)
    assert rc != 0 and bad['msg'].startswith("fields: unknown field(s) 'size'; the fields are ")
