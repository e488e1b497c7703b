# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rules 5 and 6 against an attacker and a careless operator (issue review): each test is one defect class, on the
real hypervisor (and the real Cinder where volumes are involved)."""

import json
import os
import subprocess
import time

import libvirt
import pytest

import cinder_helpers as ch
import guests
from results import Paused, only

TERMINATE = 'deferred.libvirt.vm_terminate'
RECLAIM = 'deferred.libvirt.vm_reclaim'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
ATTRS = 'deferred.libvirt.vm_attributes'
RESTORE = 'deferred.libvirt.vm_restore'
IMAGES = '/var/lib/libvirt/images'
CLOUD_ENV = {'OS_CLIENT_CONFIG_FILE': ch.CLOUDS_YAML}


def exists(conn, name):
    try:
        conn.lookupByName(name)
        return True
    except libvirt.libvirtError:
        return False


def kept_reason(inst, path):
    [item] = [k for k in inst['disks_kept'] if k['path'] == path]
    return item['reason']


# -- rule 5: no Cinder volume is ever forgotten ------------------------------------------------------------------

def test_a_reused_uuid_settles_the_new_domains_volumes_and_keeps_the_old_tombstone_as_history(
        ansible, make_guest, hypervisor, volumes, cinder):
    ansible.extra_env.update(CLOUD_ENV)
    name, uuid = make_guest('a', start=False)
    xml = hypervisor.lookupByName(name).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    first = volumes('first')
    ch.attach_like_nova(first, uuid, mountpoint='/dev/vdb', conn=cinder)
    only(ansible.task(ATTRS, name=name, project='old',
                      volumes=[{'id': first, 'target': 'vdb', 'delete_on_termination': True}]))
    only(ansible.task(TERMINATE, name=name, cloud='testbed'))
    assert ch.volume_status(first, conn=cinder) is None

    # The same definition comes back (a template with a fixed <uuid>, a restore from backup), with a new volume.
    hypervisor.defineXML(xml.replace('<name>%s</name>' % name, '<name>%s</name>' % (name + 'x')))
    second = volumes('second')
    ch.attach_like_nova(second, uuid, mountpoint='/dev/vdc', conn=cinder)
    only(ansible.task(ATTRS, name=name + 'x', project='new', force=True,
                      volumes=[{'id': second, 'target': 'vdc', 'delete_on_termination': True}]))
    inst = only(ansible.task(TERMINATE, name=name + 'x', cloud='testbed'))

    assert inst['action'] == 'terminated' and inst['volumes_deleted'] == [second]
    assert ch.volume_status(second, conn=cinder) is None
    tomb = ansible.tombstone(uuid)
    assert (tomb['name'], tomb['project']) == (name + 'x', 'new')
    assert [(p['name'], p['project']) for p in tomb['previous']] == [(name, 'old')]


def test_a_terminate_without_cinder_options_is_checked_by_the_next_sweep_that_has_cinder(
        ansible, make_guest, hypervisor, volumes, cinder):
    name, uuid = make_guest('a', start=False)
    stray = volumes('stray')
    ch.attach_like_nova(stray, uuid, mountpoint='/dev/vdb', conn=cinder)  # attached in Cinder, not in the record
    only(ansible.task(ATTRS, name=name, project='web'))

    inst = only(ansible.task(TERMINATE, name=name))  # the README's ad hoc command: no cloud
    assert inst['action'] == 'terminated' and not exists(hypervisor, name)
    assert ansible.tombstone(uuid)['cinder_checked'] is False
    assert ch.volume_status(stray, conn=cinder) == 'in-use'

    sweep = ansible.task(RECLAIM, project='web', env=CLOUD_ENV, cloud='testbed')
    assert not sweep.get('failed'), sweep
    assert [f['uuid'] for f in sweep['finished_tombstones']] == [uuid]
    assert ch.volume_status(stray, conn=cinder) == 'available'
    assert ansible.tombstone(uuid)['cinder_checked'] is True


# -- rule 6: only storage the domain owns ------------------------------------------------------------------------

def test_a_disk_reached_through_a_bind_mount_is_not_deleted(ansible, make_guest, scratch):
    real_dir = scratch(IMAGES, 'real')
    bound = scratch('/var/lib/libvirt', 'bound')
    os.makedirs(real_dir)
    os.makedirs(bound)
    subprocess.run(['mount', '--bind', real_dir, bound], check=True)
    try:
        disk = guests.make_disk(os.path.join(real_dir, 'disk.qcow2'))
        name, dummy = make_guest('a', start=False, disks=[{'path': disk, 'target': 'vdb'}])
        other, dummy = make_guest('b', start=False, disks=[{'path': os.path.join(bound, 'disk.qcow2'), 'target': 'vdb'}])
        inst = only(ansible.task(TERMINATE, name=name))
        assert inst['disks_deleted'] == [] and os.path.exists(disk)
        assert kept_reason(inst, disk) == 'shared with domain(s) %s' % other
    finally:
        subprocess.run(['umount', bound], check=True)


def test_a_disk_of_a_domain_whose_pool_is_inactive_still_counts_as_used(ansible, make_guest, hypervisor, prefix):
    pool_dir = os.path.join(IMAGES, prefix + 'pool')
    os.makedirs(pool_dir)
    pool = hypervisor.storagePoolDefineXML("<pool type='dir'><name>%spool</name><target><path>%s</path></target>"
                                           "</pool>" % (prefix, pool_dir), 0)
    try:
        pool.create(0)
        vol = guests.make_pool_volume(hypervisor, pool=pool.name(), name='data.qcow2')
        path = vol.path()
        name, dummy = make_guest('a', start=False, disks=[{'path': path, 'target': 'vdb'}])
        volume_disk = {'type': 'volume', 'pool': pool.name(), 'volume': 'data.qcow2', 'target': 'vdb'}
        other, dummy = make_guest('b', start=False, disks=[volume_disk])
        pool.destroy()  # the other domain's disk cannot be looked up through its pool any more
        inst = only(ansible.task(TERMINATE, name=name))
        assert inst['disks_deleted'] == [] and os.path.exists(path)
        assert 'shared with domain(s) %s' % other in kept_reason(inst, path)
    finally:
        guests.destroy_all(hypervisor, prefix)
        if pool.isActive():
            pool.destroy()
        pool.undefine()
        subprocess.run(['rm', '-rf', pool_dir], check=True)


def test_a_disk_hot_plugged_into_a_running_domain_without_config_is_not_deleted(
        ansible, make_guest, hypervisor, scratch):
    disk = guests.make_disk(scratch(IMAGES, 'hot.qcow2'))
    name, dummy = make_guest('a', start=False, disks=[{'path': disk, 'target': 'vdb'}])
    other, dummy = make_guest('b', kind='noacpi')
    hypervisor.lookupByName(other).attachDeviceFlags(
        "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/>"
        "<target dev='vdc' bus='virtio'/></disk>" % disk, libvirt.VIR_DOMAIN_AFFECT_LIVE)
    inst = only(ansible.task(TERMINATE, name=name))
    assert inst['disks_deleted'] == [] and os.path.exists(disk)
    assert kept_reason(inst, disk) == 'shared with domain(s) %s' % other


def test_a_relative_backing_file_is_resolved_as_qemu_resolves_it(ansible, make_guest, scratch):
    base = guests.make_disk(scratch(IMAGES, 'base.qcow2'))
    elsewhere = scratch('/var/tmp', 'elsewhere')
    os.makedirs(elsewhere)
    top = os.path.join(elsewhere, 'top.qcow2')
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-u', '-b', os.path.basename(base), '-F', 'qcow2',
                    top, '16M'], check=True)
    link = scratch(IMAGES, 'top-link.qcow2')
    os.symlink(top, link)  # QEMU opens the link's name: the relative base is beside the link, not beside top
    name, dummy = make_guest('a', start=False, disks=[{'path': base, 'target': 'vdb'}])
    other, dummy = make_guest('b', start=False, disks=[{'path': link, 'target': 'vdb'}])
    inst = only(ansible.task(TERMINATE, name=name))
    assert inst['disks_deleted'] == [] and os.path.exists(base)
    assert kept_reason(inst, base) == 'backing file of a disk of domain(s) %s' % other


def test_a_backing_chain_through_a_json_name_protects_the_file_it_opens(ansible, make_guest, scratch):
    base = guests.make_disk(scratch(IMAGES, 'jbase.qcow2'))
    top = scratch(IMAGES, 'jtop.qcow2')
    spec = 'json:' + json.dumps({'driver': 'qcow2', 'file': {'driver': 'file', 'filename': base}})
    subprocess.run(['qemu-img', 'create', '-q', '-f', 'qcow2', '-u', '-b', spec, '-F', 'qcow2', top, '16M'], check=True)
    name, dummy = make_guest('a', start=False, disks=[{'path': base, 'target': 'vdb'}])
    other, dummy = make_guest('b', start=False, disks=[{'path': top, 'target': 'vdb'}])
    inst = only(ansible.task(TERMINATE, name=name))
    assert os.path.exists(base) and inst['disks_deleted'] == []
    assert kept_reason(inst, base) == 'backing file of a disk of domain(s) %s' % other


def test_a_disk_replaced_between_the_check_and_the_delete_is_not_deleted(ansible, make_guest, scratch, tmp_path):
    disk = guests.make_disk(scratch(IMAGES, 'swap.qcow2'))
    name, dummy = make_guest('a', start=False, disks=[{'path': disk, 'target': 'vdb'}])
    paused = Paused(ansible, tmp_path, 'terminate.after_destroy', TERMINATE, name=name)
    # Classified as this domain's own disk; now another file is put in its place.
    precious = guests.make_disk(scratch(IMAGES, 'precious.qcow2'))
    os.rename(precious, disk)
    result = paused.resume()
    assert result['failed']
    [inst] = result['instances']
    assert inst['changed'] is True and inst['disks_deleted'] == []
    assert 'no longer the file that was checked' in inst['msg']
    assert os.path.exists(disk)


def test_a_disk_that_could_not_be_deleted_is_never_reported_deleted(ansible, make_guest, hypervisor, prefix):
    path = guests.make_pool_volume(hypervisor, name=prefix + 'stuck.qcow2').path()
    name, uuid = make_guest('a', start=False, disks=[{'path': path, 'target': 'vdb'}])
    subprocess.run(['chattr', '+i', path], check=True)
    try:
        result = ansible.task(TERMINATE, name=name)
    finally:
        subprocess.run(['chattr', '-i', path], check=True)
    assert result['failed']
    [inst] = result['instances']
    assert inst['changed'] is True and inst['disks_deleted'] == []
    assert path in inst['msg'] and os.path.exists(path)
    assert path not in (ansible.tombstone(uuid) or {}).get('disks_deleted', [])
    assert only(ansible.task('deferred.libvirt.vm_info', name=name))['task_state'] == 'deleting'
    again = only(ansible.task(TERMINATE, name=name))
    assert again['disks_deleted'] == [path] and not os.path.exists(path)


@pytest.mark.parametrize('directory', ['/', '/var', '/var/lib/libvirt', '/usr'])
def test_instance_dirs_that_would_make_everything_owned_are_refused(ansible, make_guest, hypervisor, directory):
    name, dummy = make_guest('a', start=False)
    result = ansible.task(TERMINATE, name=name, instance_dirs=[directory])
    assert result['failed'] and 'is a system directory' in result['msg'] and directory in result['msg']
    assert 'nothing was changed' in result['msg']
    assert exists(hypervisor, name)


# -- surprising states and the truth in results -------------------------------------------------------------------

def test_a_soft_deleted_guest_started_by_hand_is_skipped_by_the_sweep_and_counts_against_quota(
        ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', kind='noacpi')
    only(ansible.task(ATTRS, name=name, project='hand'))
    only(ansible.task(SOFT_DELETE, name=name, reclaim_interval='1s', shutdown_timeout=0))
    hypervisor.lookupByName(name).create()  # someone starts it again by hand
    time.sleep(1.5)

    sweep = ansible.task(RECLAIM, project='hand')
    assert not sweep.get('failed'), sweep
    assert sweep['reclaimed'] == []
    [skipped] = sweep['skipped_domains']
    assert skipped['name'] == name and 'started after its soft delete' in skipped['reason']
    assert hypervisor.lookupByName(name).isActive()
    usage = ansible.task('deferred.libvirt.vm_info', project='hand')['usage']
    assert usage['hand']['instances'] == 1


def test_terminate_of_a_running_guest_writes_the_shutdown_events_inside_the_delete(ansible, make_guest):
    name, dummy = make_guest('a', kind='noacpi')
    result = ansible.task(TERMINATE, name=name)
    only(result)
    assert [e['event_type'] for e in ansible.events(result['request_id'])] == [
        'instance.delete.start', 'instance.shutdown.start', 'instance.shutdown.end', 'instance.delete.end']


def test_a_terminate_that_failed_after_destroying_the_guest_says_changed(ansible, make_guest, hypervisor, scratch):
    disk = guests.make_disk(scratch(IMAGES, 'imm.qcow2'))
    name, dummy = make_guest('a', kind='noacpi', disks=[{'path': disk, 'target': 'vdb'}])
    subprocess.run(['chattr', '+i', disk], check=True)
    try:
        result = ansible.task(TERMINATE, name=name)
    finally:
        subprocess.run(['chattr', '-i', disk], check=True)
    assert result['failed'] and result['changed'] is True
    assert result['instances'][0]['changed'] is True
    assert not hypervisor.lookupByName(name).isActive()


@pytest.mark.parametrize('module', [TERMINATE, RECLAIM, SOFT_DELETE, RESTORE])
def test_parallel_below_one_is_refused_everywhere(ansible, make_guest, hypervisor, module):
    name, dummy = make_guest('a', start=False)
    args = {'parallel': 0}
    if module != RECLAIM:
        args['name'] = name
    result = ansible.task(module, **args)
    assert result['failed'] and result['msg'].startswith('parallel must be 1 or more, got 0')
    assert exists(hypervisor, name)
