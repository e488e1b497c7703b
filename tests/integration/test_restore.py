# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_restore on the real hypervisor with real QEMU guests, as an operator runs it.

Every guest is soft-deleted first with vm_soft_delete. Guests that need not
run before the restore are defined shut off (soft-deleting them needs no
shutdown), so only the restore boots them. The guests print a ready line
and then ``uptime <s>`` every second on their console log: a fresh boot
shows a new ready line, a resume from managed save shows none and carries
the uptime on.
"""

import datetime
import os
import re
import shutil
import subprocess
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET

import libvirt
import pytest

import guests
from results import info, only

RESTORE = 'deferred.libvirt.vm_restore'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
INFO = 'deferred.libvirt.vm_info'
ATTRS = 'deferred.libvirt.vm_attributes'
RECLAIM = 'deferred.libvirt.vm_reclaim'
FAILPOINT = 'DEFERRED_LIBVIRT_FAILPOINT'
SHUTOFF = libvirt.VIR_DOMAIN_SHUTOFF
RUNNING = libvirt.VIR_DOMAIN_RUNNING
UPTIME = re.compile(r'^uptime (\d+(?:\.\d+)?)\s*$', re.M)
# Generous: several colleagues boot TCG guests on the same two cores.
BOOT_TIMEOUT = 180
SAVE_DIR = '/var/lib/libvirt/qemu/save'  # where libvirt's QEMU driver keeps managed-save images


# -- helpers ---------------------------------------------------------------------------------------------


def power(conn, name):
    return conn.lookupByName(name).state()[0]


def set_attributes(ansible, name, **attrs):
    result = ansible.task(ATTRS, name=name, **attrs)
    assert not result.get('failed'), result


def attributes_then_read(ansible, name, **attrs):
    """vm_attributes on ``name``, then its record, in one play; returns the record."""
    changed, read = ansible.tasks((ATTRS, dict(attrs, name=name)), (INFO, {'name': name}))
    assert not changed.get('failed'), changed
    return only(read)


def only_failed(result):
    """The message of the one per-domain result of a task that failed."""
    assert result['failed'] is True, result
    [inst] = result['instances']
    assert inst['failed'] is True, inst
    return inst['msg']


def new_project():
    """A project of this test alone, so quota usage counts only its guests."""
    return 'p%s' % uuidlib.uuid4().hex[:10]


def soft_deleted(ansible, name, project, **args):
    """Give ``name`` (a name or a list) an owner and soft delete it, then read it, in one play; returns its record
    (a list of them for a list)."""
    owned, result, read = ansible.tasks((ATTRS, {'name': name, 'project': project}),
                                        (SOFT_DELETE, dict(args, name=name)), (INFO, {'name': name}))
    assert not owned.get('failed'), owned
    assert not result.get('failed'), result
    for inst in result['instances']:
        assert inst['action'] == 'soft_deleted', inst
    assert not read.get('failed'), read
    records = {r['name']: r for r in read['instances']}
    names = name if isinstance(name, list) else [name]
    assert sorted(records) == sorted(names), read
    assert all(records[n]['vm_state'] == 'soft_deleted' for n in names), read
    return [records[n] for n in name] if isinstance(name, list) else records[name]


def restore_and_read(ansible, name, check=False, diff=False, env=None, **args):
    """vm_restore of ``name``, then vm_info of it, in one play (the read runs whether the restore failed or not);
    returns (the restore's result, the record after it)."""
    result, read = ansible.tasks((RESTORE, dict(args, name=name)), (INFO, {'name': name}),
                                 check=check, diff=diff, env=env)
    return result, only(read)


def restore_events(ansible, uuid, request_id=None):
    return [e for e in ansible.events(request_id) if e['uuid'] == uuid and e['event_type'].startswith('instance.restore')]


def console(name):
    with open(guests.console_log(name), errors='replace') as handle:
        return handle.read()


def uptimes(name):
    return [float(v) for v in UPTIME.findall(console(name))]


def wait_for(what, check, timeout=BOOT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError('%s not seen within %ds' % (what, timeout))
        time.sleep(0.5)


def wait_uptime_at_least(name, seconds):
    """Wait until the guest has printed an uptime of at least ``seconds``; returns the last one."""
    return wait_for('uptime %s of %s' % (seconds, name),
                    lambda: (guests.uptime_seen(name) or 0) >= seconds and guests.uptime_seen(name))


def assert_still_soft_deleted(ansible, hypervisor, name, before, after=None):
    """Rule 2: soft_deleted, idle, shut off, with the original deleted_at and reclaim_at (``after``: the record
    read after the operation, or now)."""
    after = after or info(ansible, name)
    assert (after['vm_state'], after['task_state'], after['power_state']) == ('soft_deleted', None, 'shutoff')
    assert (after['deleted_at'], after['reclaim_at']) == (before['deleted_at'], before['reclaim_at'])
    assert after['anomalies'] == []
    assert power(hypervisor, name) == SHUTOFF
    return after


def assert_untouched(ansible, hypervisor, name, before, request_id, after=None):
    """Nothing changed: the same record (``after``: read after the operation, or now) and power state, and no
    restore journalled by this request."""
    after = after or info(ansible, name)
    for field in ('vm_state', 'task_state', 'deleted_at', 'reclaim_at', 'history', 'locked', 'project',
                  'managed_save', 'power_state'):
        assert after[field] == before[field], field
    assert power(hypervisor, name) == (RUNNING if before['power_state'] == 'running' else SHUTOFF)
    assert ansible.events(request_id) == []


def assert_restored(ansible, hypervisor, name, result, record=None):
    """The restore went through: the record (read after it, or now) says active and running, and so does libvirt."""
    inst = only(result)
    assert inst['changed'] is True and inst['action'] == 'restored'
    record = record or info(ansible, name)
    assert (record['vm_state'], record['task_state'], record['power_state']) == ('active', None, 'running')
    assert (record['deleted_at'], record['reclaim_at'], record['soft_delete_mode']) == (None, None, None)
    last = record['history'][-1]
    assert (last['action'], last['result'], last['request_id']) == ('restore', 'success', result['request_id'])
    assert power(hypervisor, name) == RUNNING
    return inst, record


def assert_failed_restore_is_recorded(ansible, name, uuid, result, before, *words, record=None):
    """The task failed naming the domain and the cause; the error is in the history (of ``record``, read after
    the restore, or now) and the journal."""
    assert result['failed'] is True
    [inst] = result['instances']
    assert inst['failed'] is True and inst['changed'] is False
    for word in (name,) + words:
        assert word in inst['msg'], (word, inst['msg'])
    assert before['deleted_at'] in inst['msg'] and before['reclaim_at'] in inst['msg']
    record = record or info(ansible, name)
    last = record['history'][-1]
    assert (last['action'], last['result'], last['request_id']) == ('restore', 'error', result['request_id'])
    for word in words:
        assert word in last['message']
    events = restore_events(ansible, uuid, result['request_id'])
    assert [(e['event_type'], e['result']) for e in events] == [
        ('instance.restore.start', None), ('instance.restore.end', 'error')]
    return record


def assert_not_reclaimed_early(ansible, hypervisor, name, project, reclaim_at):
    """A real sweep of the project leaves the domain alone: its reclaim_at, still in the future, decides."""
    sweep = ansible.task(RECLAIM, project=project)
    assert not sweep.get('failed'), sweep
    assert sweep['reclaimed'] == []
    [kept] = [k for k in sweep['kept'] if k['name'] == name]
    assert kept['reclaim_at'] == reclaim_at and kept['expires_in'] > 6 * 86400
    assert hypervisor.lookupByName(name).isPersistent()


def define_network(conn, name):
    """An isolated network with no <ip> (no dnsmasq needed), defined but not started."""
    bridge = 'dlr%s' % uuidlib.uuid4().hex[:8]
    return conn.networkDefineXML("<network><name>%s</name><bridge name='%s' stp='off'/></network>" % (name, bridge))


@pytest.fixture
def private_network(hypervisor, prefix):
    """A network of this test alone, so no other test can start or stop it under us."""
    net = define_network(hypervisor, prefix + 'net')
    yield net.name()
    guests.destroy_all(hypervisor, prefix)  # guests first: they use it
    try:
        if net.isActive():
            net.destroy()
    finally:
        net.undefine()


@pytest.fixture
def private_pool(hypervisor, prefix, tmp_path):
    """A directory pool of this test alone with one qcow2 volume, left inactive; yields (pool name, volume name)."""
    path = tmp_path / 'pool'
    path.mkdir()
    pool = hypervisor.storagePoolDefineXML(
        "<pool type='dir'><name>%spool</name><target><path>%s</path></target></pool>" % (prefix, path), 0)
    pool.create(0)
    guests.make_pool_volume(hypervisor, pool=pool.name(), name='data.qcow2')
    pool.destroy()
    yield pool.name(), 'data.qcow2'
    guests.destroy_all(hypervisor, prefix)
    try:
        if pool.isActive():
            pool.destroy()
    finally:
        pool.undefine()


# -- the restore -----------------------------------------------------------------------------------------


def test_soft_deleted_acpi_guest_boots_again_and_is_active(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', kind='acpi')
    project = new_project()
    before = soft_deleted(ansible, name, project)
    assert before['soft_delete_mode'] == 'shutdown'
    result, after = restore_and_read(ansible, name, project=project)
    inst, record = assert_restored(ansible, hypervisor, name, result, after)
    assert inst['resumed_saved_memory'] is False and inst['resumed'] is False
    assert inst['boot_seconds'] is not None
    # The guest really came up: its (truncated-on-start) console shows a fresh boot.
    guests.wait_ready(name, timeout=BOOT_TIMEOUT)
    events = restore_events(ansible, uuid, result['request_id'])
    assert [(e['event_type'], e['result']) for e in events] == [
        ('instance.restore.start', None), ('instance.restore.end', 'success')]
    assert events[0]['payload']['deleted_at'] == before['deleted_at']
    assert events[0]['payload']['reclaim_at'] == before['reclaim_at']
    assert all((e['domain'], e['project']) == (name, project) and e['actor'] for e in events)
    assert [h['action'] for h in record['history']] == ['soft_delete', 'restore']


def test_managed_save_guest_resumes_where_it_was(ansible, make_guest, hypervisor):
    name, dummy = make_guest('m', kind='acpi')
    project = new_project()
    wait_uptime_at_least(name, 3)
    before = soft_deleted(ansible, name, project, mode='managed_save')
    assert before['soft_delete_mode'] == 'managed_save' and before['managed_save'] is True
    last_before_save = guests.uptime_seen(name)

    inst, record = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))
    assert inst['resumed_saved_memory'] is True
    assert record['managed_save'] is False
    # The resumed guest prints uptimes that carry on from before the save, and no ready line: it did not boot.
    wait_for('uptime after resume', lambda: uptimes(name))
    assert uptimes(name)[0] >= last_before_save
    assert guests.READY_LINE not in console(name)


def test_managed_save_guest_boots_fresh_with_hard_reboot(ansible, make_guest, hypervisor):
    name, dummy = make_guest('h', kind='acpi')
    project = new_project()
    first = wait_for('first uptime', lambda: uptimes(name))[0]
    # Far enough past boot that a fresh boot's uptimes cannot reach it as soon as the guest is ready.
    last_before_save = wait_uptime_at_least(name, first + 15)
    soft_deleted(ansible, name, project, mode='managed_save')

    inst, record = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name, hard_reboot=True))
    assert inst['resumed_saved_memory'] is False
    assert record['managed_save'] is False
    guests.wait_ready(name, timeout=BOOT_TIMEOUT)
    fresh = wait_for('uptime after reboot', lambda: uptimes(name))
    assert fresh[0] < last_before_save


def test_unloadable_saved_memory_fails_safely_and_hard_reboot_recovers(ansible, make_guest, hypervisor):
    name, uuid = make_guest('x', kind='acpi')
    project = new_project()
    before = soft_deleted(ansible, name, project, mode='managed_save')
    image = os.path.join(SAVE_DIR, '%s.save' % name)
    # Half the image is gone (a full disk during the save, say): QEMU cannot load it and libvirt keeps it.
    with open(image, 'r+b') as handle:
        handle.truncate(os.path.getsize(image) // 2)

    result, after = restore_and_read(ansible, name)
    assert_failed_restore_is_recorded(ansible, name, uuid, result, before, 'saved memory', 'hard_reboot=true',
                                      record=after)
    assert_still_soft_deleted(ansible, hypervisor, name, before, after)
    assert after['managed_save'] is True and after['soft_delete_mode'] == 'managed_save'

    inst, dummy = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name, hard_reboot=True))
    assert inst['resumed_saved_memory'] is False
    guests.wait_ready(name, timeout=BOOT_TIMEOUT)


def hold_image(path):
    """A process outside this libvirtd that holds ``path`` open for writing under QEMU's image lock (qemu-io, waiting
    for commands), as a guest on another host that shares the storage does; returns it once the lock is held."""
    holder = subprocess.Popen(['qemu-io', '-f', 'qcow2', path], stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    wait_for('the write lock of %s' % path, lambda: subprocess.run(
        ['qemu-img', 'info', path], capture_output=True, text=True, check=False).returncode != 0, timeout=30)
    return holder


def test_saved_memory_is_kept_when_a_process_outside_libvirt_holds_a_disk_and_the_message_names_the_lock(
        ansible, make_guest, hypervisor, tmp_path):
    """The trial (seed 5, step 603): a guest soft-deleted with managed save whose disk a QEMU of another host held
    could not resume, on QEMU's image lock, and the restore told the operator to throw the saved memory away with
    hard_reboot=true, which would lose it and meet the same lock. The message names the lock and says the memory is
    kept; the memory is still there, and the guest resumes once the holder lets go."""
    data = guests.make_disk(str(tmp_path / 'data.qcow2'))
    name, uuid = make_guest('k', kind='acpi', disks=[{'path': data, 'target': 'vdb'}])
    project = new_project()
    before = soft_deleted(ansible, name, project, mode='managed_save')
    holder = hold_image(data)
    try:
        result, after = restore_and_read(ansible, name)
        # In the message and in the history: the lock, and that the memory stays.
        assert_failed_restore_is_recorded(ansible, name, uuid, result, before, 'another process holds a disk of %s '
                                          "(QEMU's image lock" % name, 'the saved memory is kept', record=after)
        assert 'hard_reboot=true' not in only_failed(result)
        assert_still_soft_deleted(ansible, hypervisor, name, before, after)
        assert after['managed_save'] is True
        assert hypervisor.lookupByName(name).hasManagedSaveImage(0) == 1
    finally:
        holder.stdin.close()
        holder.wait(timeout=30)

    inst, dummy = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))
    assert inst['resumed_saved_memory'] is True


# -- quota -----------------------------------------------------------------------------------------------


def test_over_quota_fails_naming_project_resource_limit_usage_and_request(ansible, make_guest, hypervisor):
    project = new_project()
    running_one, dummy = make_guest('k', start=False)  # a stopped guest still holds quota, as in Nova
    set_attributes(ansible, running_one, project=project)
    name, dummy = make_guest('q', start=False)
    before = soft_deleted(ansible, name, project)
    result, after = restore_and_read(ansible, name, quota={project: {'instances': 1, 'cores': -1}})
    assert result['failed'] is True
    assert 'over quota' in result['msg'] and 'nothing was changed' in result['msg']
    assert 'project %s is over quota for instances: limit 1, usage 1, request 1' % project in result['msg']
    assert result['quota']['over'] == [
        {'project': project, 'resource': 'instances', 'limit': 1, 'usage': 1, 'request': 1}]
    assert_untouched(ansible, hypervisor, name, before, result['request_id'], after)


def test_batch_that_fits_one_at_a_time_but_not_together_is_refused(ansible, make_guest, hypervisor):
    project = new_project()
    one, dummy = make_guest('1', start=False)
    two, dummy = make_guest('2', start=False)
    before = soft_deleted(ansible, [one, two], project)
    quota = {'default': {'instances': 1}, 'other': {'instances': -1}}
    for name in (one, two):
        alone = ansible.task(RESTORE, name=name, quota=quota, check=True)
        assert only(alone)['action'] == 'would_restore'
    result = ansible.task(RESTORE, name=[one, two], quota=quota)
    assert result['failed'] is True
    assert 'project %s is over quota for instances: limit 1, usage 0, request 2' % project in result['msg']
    assert all(i['failed'] and not i['changed'] for i in result['instances'])
    for name, record in zip((one, two), before):
        assert_untouched(ansible, hypervisor, name, record, result['request_id'])


def test_restore_within_quota_to_the_limit_is_allowed(ansible, make_guest, hypervisor):
    project = new_project()
    name, dummy = make_guest('w', start=False)
    soft_deleted(ansible, name, project)
    # The guest has 1 vCPU and 128 MiB: exactly the limit.
    result, after = restore_and_read(ansible, name, quota={project: {'instances': 1, 'cores': 1, 'ram_mb': 128}})
    assert_restored(ansible, hypervisor, name, result, after)
    assert result['quota']['over'] == []
    assert result['quota']['request'] == {project: {'instances': 1, 'cores': 1, 'ram_mb': 128}}


def test_fleet_usage_passed_in_counts_instead_of_this_hosts(ansible, make_guest, hypervisor):
    project = new_project()
    name, dummy = make_guest('u', start=False)
    before = soft_deleted(ansible, name, project)
    quota = {project: {'instances': 3}}
    # Nothing of the project runs on this host, but the fleet already has 3.
    refused, after = restore_and_read(ansible, name, quota=quota,
                                      usage={project: {'instances': 3, 'cores': 3, 'ram_mb': 384}})
    assert refused['failed'] is True
    assert 'limit 3, usage 3, request 1' in refused['msg']
    assert_untouched(ansible, hypervisor, name, before, refused['request_id'], after)
    # Without it, this host's usage (none) is what counts.
    fits = ansible.task(RESTORE, name=name, quota=quota, check=True)
    assert only(fits)['action'] == 'would_restore'
    assert fits['quota']['usage'] == {project: {'instances': 0, 'cores': 0, 'ram_mb': 0}}


# -- missing disks, networks, pools, kernels -------------------------------------------------------------


@pytest.mark.parametrize('missing', ['disk', 'backing'])
def test_missing_disk_or_backing_file_fails_and_keeps_it_soft_deleted(ansible, make_guest, hypervisor, tmp_path,
                                                                      missing):
    base = guests.make_disk(str(tmp_path / 'base.qcow2'))
    overlay = guests.make_disk(str(tmp_path / 'overlay.qcow2'), backing=base, size=None)
    name, uuid = make_guest(missing[0], start=False, disks=[{'path': overlay, 'target': 'vdb'}])
    project = new_project()
    before = soft_deleted(ansible, name, project)
    gone = overlay if missing == 'disk' else base
    os.unlink(gone)

    result, after = restore_and_read(ansible, name)
    # The message names the disk and, for the backing file, the file qemu-img could not open.
    assert_failed_restore_is_recorded(ansible, name, uuid, result, before, 'vdb', gone, record=after)
    assert_still_soft_deleted(ansible, hypervisor, name, before, after)
    assert_not_reclaimed_early(ansible, hypervisor, name, project, before['reclaim_at'])


def test_inactive_network_is_started_and_the_restore_succeeds(ansible, make_guest, hypervisor, private_network):
    name, dummy = make_guest('n', start=False, interfaces=[private_network])
    soft_deleted(ansible, name, new_project())
    assert not hypervisor.networkLookupByName(private_network).isActive()
    inst, dummy = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))
    assert inst['networks_started'] == [private_network]
    assert hypervisor.networkLookupByName(private_network).isActive()
    guests.wait_ready(name, timeout=BOOT_TIMEOUT)


def test_inactive_storage_pool_is_started_and_the_restore_succeeds(ansible, make_guest, hypervisor, private_pool):
    pool, volume = private_pool
    name, dummy = make_guest('p', start=False, disks=[{'type': 'volume', 'pool': pool, 'volume': volume,
                                                       'target': 'vdb'}])
    soft_deleted(ansible, name, new_project())
    assert not hypervisor.storagePoolLookupByName(pool).isActive()
    inst, dummy = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))
    assert inst['pools_started'] == [pool]
    assert hypervisor.storagePoolLookupByName(pool).isActive()
    guests.wait_ready(name, timeout=BOOT_TIMEOUT)


def test_a_volume_made_behind_a_running_pools_back_is_found_at_restore(ansible, make_guest, hypervisor, private_pool):
    """Shared storage: another host (here qemu-img, outside libvirt) made the volume while this host's pool ran. A
    running pool is refreshed only when it does not list a volume the domain names; this one must be."""
    pool, dummy = private_pool
    target = hypervisor.storagePoolLookupByName(pool)
    target.create(0)
    directory = ET.fromstring(target.XMLDesc(0)).findtext('target/path')
    guests.make_disk(os.path.join(directory, 'late.qcow2'))
    assert 'late.qcow2' not in target.listVolumes()  # libvirt has not seen it
    name, dummy = make_guest('late', start=False, disks=[{'type': 'volume', 'pool': pool, 'volume': 'late.qcow2',
                                                          'target': 'vdb'}])
    soft_deleted(ansible, name, new_project())
    inst, dummy = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))
    assert inst['pools_started'] == []
    assert 'late.qcow2' in target.listVolumes()
    guests.wait_ready(name, timeout=BOOT_TIMEOUT)


def test_guest_whose_kernel_was_removed_fails_and_keeps_it_soft_deleted(ansible, make_guest, hypervisor, tmp_path):
    kernel = str(tmp_path / 'vmlinuz')
    shutil.copy(os.path.join(guests.GUEST_DIR, 'vmlinuz'), kernel)
    name, uuid = make_guest('k', kernel=kernel)  # it booted from its own kernel copy
    project = new_project()
    before = soft_deleted(ansible, name, project)
    os.unlink(kernel)

    result, after = restore_and_read(ansible, name)
    assert_failed_restore_is_recorded(ansible, name, uuid, result, before, kernel, record=after)
    assert_still_soft_deleted(ansible, hypervisor, name, before, after)
    assert_not_reclaimed_early(ansible, hypervisor, name, project, before['reclaim_at'])


def test_guest_that_qemu_cannot_start_is_shut_off_and_kept_soft_deleted(ansible, make_guest, hypervisor, tmp_path):
    kernel = str(tmp_path / 'vmlinuz')
    shutil.copy(os.path.join(guests.GUEST_DIR, 'vmlinuz'), kernel)
    name, uuid = make_guest('c', start=False, kernel=kernel)
    project = new_project()
    before = soft_deleted(ansible, name, project)
    # The file is there (the pre-start checks pass) but is no kernel: QEMU refuses to start the guest.
    with open(kernel, 'wb') as handle:
        handle.write(b'not a kernel\n' * 64)

    result, after = restore_and_read(ansible, name)
    assert_failed_restore_is_recorded(ansible, name, uuid, result, before, 'start failed', record=after)
    assert_still_soft_deleted(ansible, hypervisor, name, before, after)
    assert_not_reclaimed_early(ansible, hypervisor, name, project, before['reclaim_at'])


def test_a_disk_a_running_domain_writes_to_is_refused_naming_that_domain_until_it_stops(
        ansible, make_guest, hypervisor, tmp_path):
    """Two guests with one disk (the trial's "share" guests): QEMU refuses to boot the second on its image lock and
    names only the file. The restore names the running domain that holds it, changes nothing, and goes through once
    that domain is stopped."""
    data = guests.make_disk(str(tmp_path / 'data.qcow2'))
    holder, holder_uuid = make_guest('h', disks=[{'path': data, 'target': 'vdb'}])
    name, uuid = make_guest('s', start=False, disks=[{'path': data, 'target': 'vdb'}])
    project = new_project()
    before = soft_deleted(ansible, name, project)

    result, after = restore_and_read(ansible, name)
    assert_failed_restore_is_recorded(ansible, name, uuid, result, before, record=after)
    message = only_failed(result)
    assert ('disk vdb (%s) is in use: running domain %s (uuid %s) writes to it' % (data, holder, holder_uuid)
            in message), message
    assert_still_soft_deleted(ansible, hypervisor, name, before, after)
    assert power(hypervisor, holder) == RUNNING

    hypervisor.lookupByName(holder).destroy()
    assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))


# -- guards and states -----------------------------------------------------------------------------------


def test_locked_domain_is_refused_and_stays_soft_deleted(ansible, make_guest, hypervisor):
    name, dummy = make_guest('l', start=False)
    soft_deleted(ansible, name, new_project())
    before = attributes_then_read(ansible, name, locked=True, lock_reason='INC-7')
    result, after = restore_and_read(ansible, name)
    assert result['failed'] is True
    [inst] = result['instances']
    for word in (name, 'locked', 'INC-7', 'force'):
        assert word in inst['msg']
    assert_untouched(ansible, hypervisor, name, before, result['request_id'], after)


def test_locked_domain_is_restored_with_force(ansible, make_guest, hypervisor):
    name, dummy = make_guest('f', start=False)
    soft_deleted(ansible, name, new_project())
    set_attributes(ansible, name, locked=True)
    dummy, record = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name, force=True))
    assert record['locked'] is True


def test_domain_of_another_project_is_refused(ansible, make_guest, hypervisor):
    name, dummy = make_guest('w', start=False)
    owner = new_project()
    before = soft_deleted(ansible, name, owner)
    result, after = restore_and_read(ansible, name, project='someone-else')
    assert result['failed'] is True
    for word in (name, owner, 'someone-else'):
        assert word in result['msg']
    assert_untouched(ansible, hypervisor, name, before, result['request_id'], after)


def test_active_guest_is_left_alone(ansible, make_guest, hypervisor):
    name, uuid = make_guest('r', kind='acpi')
    before = attributes_then_read(ansible, name, project=new_project())
    dom_id = hypervisor.lookupByName(name).ID()
    result, after = restore_and_read(ansible, name)
    inst = only(result)
    assert result['changed'] is False and inst['changed'] is False and inst['action'] == 'none'
    assert hypervisor.lookupByName(name).ID() == dom_id  # not rebooted
    assert_untouched(ansible, hypervisor, name, before, result['request_id'], after)


def test_stopped_domain_never_soft_deleted_is_an_invalid_state_error(ansible, make_guest, hypervisor):
    name, dummy = make_guest('s', start=False)
    before = attributes_then_read(ansible, name, project=new_project())
    result, after = restore_and_read(ansible, name)
    assert result['failed'] is True
    [inst] = result['instances']
    for word in (name, 'stopped', 'soft_deleted', 'not allowed'):
        assert word in inst['msg']
    assert_untouched(ansible, hypervisor, name, before, result['request_id'], after)


def test_check_mode_reports_the_restore_and_changes_nothing(ansible, make_guest, hypervisor):
    name, dummy = make_guest('c', start=False)
    before = soft_deleted(ansible, name, new_project())
    result, after = restore_and_read(ansible, name, check=True)
    inst = only(result)
    assert result['changed'] is True and inst['changed'] is True and inst['action'] == 'would_restore'
    assert inst['record']['vm_state'] == 'active' and inst['record']['deleted_at'] is None
    assert_untouched(ansible, hypervisor, name, before, result['request_id'], after)


def test_diff_shows_the_record_before_and_after(ansible, make_guest, hypervisor):
    name, dummy = make_guest('d', start=False)
    before = soft_deleted(ansible, name, new_project())
    result, after = restore_and_read(ansible, name, diff=True)
    assert_restored(ansible, hypervisor, name, result, after)
    [diff] = result['diff']
    assert diff['before_header'] == name
    assert (diff['before']['vm_state'], diff['after']['vm_state']) == ('soft_deleted', 'active')
    assert diff['before']['deleted_at'] == before['deleted_at'] and diff['after']['deleted_at'] is None
    assert diff['before']['reclaim_at'] == before['reclaim_at'] and diff['after']['reclaim_at'] is None
    assert (diff['before']['power_state'], diff['after']['power_state']) == ('shutoff', 'running')


def test_second_run_changes_nothing(ansible, make_guest, hypervisor):
    name, dummy = make_guest('i', start=False)
    soft_deleted(ansible, name, new_project())
    dummy, record = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))
    dom_id = hypervisor.lookupByName(name).ID()
    again, after = restore_and_read(ansible, name)
    inst = only(again)
    assert again['changed'] is False and inst['action'] == 'none'
    assert hypervisor.lookupByName(name).ID() == dom_id
    assert after['history'] == record['history']
    assert ansible.events(again['request_id']) == []


# -- interrupted restores (rule 7) ------------------------------------------------------------------


def test_restore_killed_after_marking_restoring_is_finished_by_a_rerun(ansible, make_guest, hypervisor):
    name, uuid = make_guest('k', start=False)
    project = new_project()
    before = soft_deleted(ansible, name, project)
    killed = ansible.task(RESTORE, name=name, env={FAILPOINT: 'restore.after_start'})
    assert killed['failed'] is True
    stuck = info(ansible, name)
    assert (stuck['vm_state'], stuck['task_state'], stuck['power_state']) == ('soft_deleted', 'restoring', 'shutoff')
    assert (stuck['deleted_at'], stuck['reclaim_at']) == (before['deleted_at'], before['reclaim_at'])
    # Meanwhile the sweep leaves it alone.
    sweep = ansible.task(RECLAIM, project=project, check=True)
    assert [s['name'] for s in sweep['skipped_domains']] == [name]

    inst, record = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))
    assert inst['resumed'] is True and inst['boot_seconds'] is not None
    guests.wait_ready(name, timeout=BOOT_TIMEOUT)
    assert [h['action'] for h in record['history']] == ['soft_delete', 'restore']
    assert [e['event_type'] for e in restore_events(ansible, uuid)] == [
        'instance.restore.start', 'instance.restore.end']


def test_restore_killed_after_the_boot_is_finished_without_a_second_boot(ansible, make_guest, hypervisor):
    name, uuid = make_guest('b', start=False)
    soft_deleted(ansible, name, new_project())
    killed = ansible.task(RESTORE, name=name, env={FAILPOINT: 'restore.after_boot'})
    assert killed['failed'] is True
    stuck = info(ansible, name)
    assert (stuck['vm_state'], stuck['task_state'], stuck['power_state']) == ('soft_deleted', 'restoring', 'running')
    guests.wait_ready(name, timeout=BOOT_TIMEOUT)
    dom_id = hypervisor.lookupByName(name).ID()
    # The ready line comes before the first uptime line: wait for that one, the boot's own first uptime.
    booted = wait_for('first uptime', lambda: uptimes(name))

    inst, dummy = assert_restored(ansible, hypervisor, name, *restore_and_read(ansible, name))
    assert inst['resumed'] is True and inst['boot_seconds'] is None
    # The same QEMU process (its console log is truncated by a new one) and still the one boot.
    assert hypervisor.lookupByName(name).ID() == dom_id
    wait_for('uptime after the rerun', lambda: (uptimes(name) or [0])[-1] > booted[-1])
    assert console(name).count(guests.READY_LINE) == 1
    assert uptimes(name)[0] == booted[0]


# -- issue 25 item 6: "where did my VM go?" ---------------------------------------------------------------------------

def test_restore_of_a_reclaimed_domain_says_when_by_which_request_and_actor_and_what_was_deleted(
        ansible, make_guest, hypervisor, scratch):
    """vm_restore after a reclaim said only "no domain named X on this hypervisor", while the tombstone knows it was
    reclaimed, when, by which request, and what went with it. Now it says so, with nothing changed."""
    disk = guests.make_disk(scratch('/var/lib/libvirt/images', 'data.qcow2'))
    name, uuid = make_guest('r', start=False, disks=[{'path': disk, 'target': 'vdb'}])
    project = new_project()
    set_attributes(ansible, name, project=project)
    deleted = ansible.task(SOFT_DELETE, name=name, reclaim_interval='1s', env={'DEFERRED_LIBVIRT_ACTOR': 'alice'})
    assert only(deleted)['action'] == 'soft_deleted', deleted
    reclaim_at = datetime.datetime.strptime(only(deleted)['reclaim_at'], '%Y-%m-%dT%H:%M:%SZ').replace(
        tzinfo=datetime.timezone.utc)
    time.sleep(max(0.0, (reclaim_at - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1.1)
    sweep = ansible.task(RECLAIM, project=project, env={'DEFERRED_LIBVIRT_ACTOR': 'reclaim-timer'})
    assert [r['name'] for r in sweep['reclaimed']] == [name], sweep
    assert not os.path.exists(disk)

    result = ansible.task(RESTORE, name=name, project=project)

    assert result['failed'] is True
    msg = result['msg']
    assert 'no domain named' not in msg, msg
    assert msg.startswith('domain %s (uuid %s, project %s) was reclaimed at ' % (name, uuid, project)), msg
    assert 'by request %s (actor reclaim-timer) and cannot be restored' % sweep['request_id'] in msg, msg
    assert 'soft-deleted at %s by request %s (actor alice)' % (only(deleted)['deleted_at'], deleted['request_id']) in msg
    assert 'deleted: disk(s) %s' % disk in msg and msg.endswith('; nothing was changed'), msg
    [gone] = result['terminated']
    assert (gone['name'], gone['how'], gone['request_id'], gone['actor']) == (name, 'reclaimed', sweep['request_id'],
                                                                              'reclaim-timer')
    assert gone['disks_deleted'] == [disk] and gone['soft_delete_actor'] == 'alice'
    assert ansible.events(result['request_id']) == []
