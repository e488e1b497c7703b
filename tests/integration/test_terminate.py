# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_terminate on the real hypervisor, as an operator runs it (no Cinder here: see test_terminate_cinder.py)."""

import os
import re
import subprocess
import xml.etree.ElementTree as ET

import libvirt
import pytest

import guests
from results import NS, only

TERMINATE = 'deferred.libvirt.vm_terminate'
IMAGES = '/var/lib/libvirt/images'
SAVE_DIR = '/var/lib/libvirt/qemu/save'
ATTRS = 'deferred.libvirt.vm_attributes'


def exists(conn, name):
    try:
        conn.lookupByName(name)
        return True
    except libvirt.libvirtError:
        return False


def virsh_names():
    out = subprocess.run(['virsh', '-c', 'qemu:///system', 'list', '--all', '--name'],
                         check=True, capture_output=True, text=True).stdout
    return set(line.strip() for line in out.splitlines() if line.strip())


def set_record_field(conn, name, field, value):
    """Edit one field of the lifecycle record by hand, as an operator with virsh metadata would."""
    dom = conn.lookupByName(name)
    root = ET.fromstring(dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NS, libvirt.VIR_DOMAIN_AFFECT_CONFIG))
    for child in root:
        child.tag = child.tag.split('}', 1)[-1]
    root.tag = root.tag.split('}', 1)[-1]
    root.find(field).text = value
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG | (libvirt.VIR_DOMAIN_AFFECT_LIVE if dom.isActive() else 0)
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, ET.tostring(root, encoding='unicode'), 'deferred', NS, flags)


@pytest.fixture
def pool_volumes(hypervisor, prefix):
    """Names for volumes in the default pool; any left behind is deleted afterwards."""
    names = []

    def name(suffix):
        names.append(prefix + suffix)
        return names[-1]
    yield name
    pool = hypervisor.storagePoolLookupByName('default')
    pool.refresh(0)
    for vol_name in names:
        try:
            pool.storageVolLookupByName(vol_name).delete(0)
        except libvirt.libvirtError:
            pass


# -- every state terminates ---------------------------------------------------------------------------------------

def test_running_guest_is_destroyed_and_undefined(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a')
    inst = only(ansible.task(TERMINATE, name=name))
    assert inst['changed'] is True and inst['action'] == 'terminated'
    assert inst['clean_shutdown'] is False
    assert name not in virsh_names()
    assert not exists(hypervisor, name)


def test_soft_deleted_guest_terminates(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', start=False)
    only(ansible.task('deferred.libvirt.vm_soft_delete', name=name, shutdown_timeout=0))
    info = only(ansible.task('deferred.libvirt.vm_info', name=name))
    assert info['vm_state'] == 'soft_deleted'
    inst = only(ansible.task(TERMINATE, name=name))
    assert inst['action'] == 'terminated'
    assert not exists(hypervisor, name)


def test_paused_guest_terminates(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a')
    hypervisor.lookupByName(name).suspend()
    assert only(ansible.task('deferred.libvirt.vm_info', name=name))['vm_state'] == 'paused'
    inst = only(ansible.task(TERMINATE, name=name))
    assert inst['action'] == 'terminated'
    assert not exists(hypervisor, name)


def test_guest_stuck_in_restoring_terminates(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', start=False)
    only(ansible.task('deferred.libvirt.vm_soft_delete', name=name, shutdown_timeout=0))
    set_record_field(hypervisor, name, 'task_state', 'restoring')
    assert only(ansible.task('deferred.libvirt.vm_info', name=name))['task_state'] == 'restoring'
    result = ansible.task(TERMINATE, name=name)
    assert only(result)['action'] == 'terminated'
    assert not exists(hypervisor, name)
    [start] = [e for e in ansible.events(result['request_id']) if e['event_type'] == 'instance.delete.start']
    assert start['payload']['previous_task_state'] == 'restoring'


def test_soft_delete_with_reclaim_interval_zero_terminates(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', start=False)
    result = ansible.task('deferred.libvirt.vm_soft_delete', name=name, reclaim_interval=0, allow_terminate=True)
    inst = only(result)
    assert inst['action'] == 'terminated'
    assert not exists(hypervisor, name)
    assert ansible.tombstone(uuid)['terminated_at']


def attributes_then(ansible, attrs, module, **args):
    """vm_attributes with ``attrs``, then ``module`` with ``args``, in one play (one ansible-playbook run); returns
    the second task's result."""
    changed, result = ansible.tasks((ATTRS, attrs), (module, args))
    only(changed)
    return result


# -- guards ---------------------------------------------------------------------------------------------------------

def test_protected_guest_is_refused_and_left_alone(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', start=False)
    result = attributes_then(ansible, dict(name=name, protected=True), TERMINATE, name=name)
    assert result['failed'] is True
    assert 'protected' in result['msg'] and name in result['msg']
    assert exists(hypervisor, name)
    assert ansible.tombstone(uuid) is None


def test_locked_guest_is_refused_without_force(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', start=False)
    result = attributes_then(ansible, dict(name=name, locked=True, lock_reason='legal hold'), TERMINATE, name=name)
    assert result['failed'] is True
    assert 'locked (legal hold)' in result['msg'] and 'force' in result['msg']
    assert exists(hypervisor, name)


def test_locked_guest_terminates_with_force(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', start=False)
    inst = only(attributes_then(ansible, dict(name=name, locked=True), TERMINATE, name=name, force=True))
    assert inst['action'] == 'terminated'
    assert not exists(hypervisor, name)


def test_guest_of_another_project_is_refused(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', start=False)
    result = attributes_then(ansible, dict(name=name, project='web'), TERMINATE, name=name, project='db')
    assert result['failed'] is True
    assert 'not in project db' in result['msg'] and name in result['msg']
    assert exists(hypervisor, name)


# -- idempotence, check mode, journal -----------------------------------------------------------------------------

def test_second_run_reports_already_terminated_and_changes_nothing(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', start=False)
    only(ansible.task(TERMINATE, name=name))
    tomb_before = ansible.tombstone(uuid)
    events_before = len(ansible.events())
    again = ansible.task(TERMINATE, name=name)
    inst = only(again)
    assert again['changed'] is False and inst['changed'] is False
    assert 'already terminated' in inst['msg']
    assert ansible.tombstone(uuid) == tomb_before
    assert len(ansible.events()) == events_before


def test_check_mode_lists_what_would_go_and_changes_nothing(ansible, make_guest, hypervisor, scratch):
    owned = guests.make_disk(scratch(IMAGES, 'owned.qcow2'))
    foreign = guests.make_disk(scratch('/var/tmp', 'foreign.qcow2'))
    name, uuid = make_guest('a', start=False, disks=[{'path': owned, 'target': 'vdb'},
                                                     {'path': foreign, 'target': 'vdc'}])
    only(ansible.task('deferred.libvirt.vm_attributes', name=name, volumes=[
        {'id': '11111111-2222-3333-4444-555555555555', 'delete_on_termination': True},
        {'id': '66666666-7777-8888-9999-000000000000'}]))
    result = ansible.task(TERMINATE, name=name, check=True)
    inst = only(result)
    assert result['changed'] is True
    assert inst['action'] == 'would_terminate'
    assert inst['would_destroy'] is False
    assert inst['disks_deleted'] == [owned]
    assert [(k['path'], 'outside the instance directories' in k['reason']) for k in inst['disks_kept']] == \
        [(foreign, True)]
    # No cloud given: a real run could settle no volume and would leave them pending, so check mode says that, not
    # "deleted" and "detached" (issue 25: check mode says what the real run does).
    assert inst['volumes_deleted'] == [] and inst['volumes_detached'] == []
    assert '11111111-2222-3333-4444-555555555555' in [v['id'] for v in inst['volumes_pending']]
    assert exists(hypervisor, name)
    assert os.path.exists(owned) and os.path.exists(foreign)
    assert ansible.tombstone(uuid) is None
    assert ansible.events(result['request_id']) == []
    assert only(ansible.task('deferred.libvirt.vm_info', name=name))['task_state'] is None


def test_terminate_writes_delete_start_and_end_events(ansible, make_guest):
    name, uuid = make_guest('a', start=False)
    result = attributes_then(ansible, dict(name=name, project='web'), TERMINATE, name=name)
    only(result)
    events = ansible.events(result['request_id'])
    assert [e['event_type'] for e in events] == ['instance.delete.start', 'instance.delete.end']
    assert all(e['domain'] == name and e['uuid'] == uuid and e['project'] == 'web' for e in events)
    assert events[-1]['result'] == 'success'


def test_tombstone_holds_name_uuid_project_and_terminated_at(ansible, make_guest):
    name, uuid = make_guest('a', start=False)
    result = attributes_then(ansible, dict(name=name, project='web', user='alice'), TERMINATE, name=name)
    only(result)
    tomb = ansible.tombstone(uuid)
    assert (tomb['name'], tomb['uuid'], tomb['project'], tomb['user']) == (name, uuid, 'web', 'alice')
    assert re.match(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$', tomb['terminated_at'])
    assert tomb['volumes_pending'] == []
    assert tomb['status'] == 'terminated'
    assert tomb['request_id'] == result['request_id']


def test_terminated_guest_is_listed_by_vm_info_include_deleted(ansible, make_guest):
    name, uuid = make_guest('a', start=False)
    only(ansible.task(TERMINATE, name=name))
    info = ansible.task('deferred.libvirt.vm_info', name=name, include_deleted=True)
    inst = only(info)
    assert inst['vm_state'] == 'deleted' and inst['uuid'] == uuid


# -- undefine flags: managed save, snapshot metadata, NVRAM ----------------------------------------------------------

def test_managed_save_image_is_removed_with_the_domain(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a')
    hypervisor.lookupByName(name).managedSave(0)
    image = os.path.join(SAVE_DIR, '%s.save' % name)
    assert os.path.exists(image)
    inst = only(ansible.task(TERMINATE, name=name))
    assert 'VIR_DOMAIN_UNDEFINE_MANAGED_SAVE' in inst['undefine_flags']
    assert name not in virsh_names()
    assert not os.path.exists(image)


def test_snapshot_metadata_is_removed_with_the_domain(ansible, make_guest, hypervisor, scratch):
    disk = guests.make_disk(scratch(IMAGES, 'snap.qcow2'))
    name, uuid = make_guest('a', start=False, disks=[{'path': disk, 'target': 'vdb'}])
    dom = hypervisor.lookupByName(name)
    # A real internal snapshot of the shut-off qcow2 disk, and one redefined from XML (metadata only).
    dom.snapshotCreateXML('<domainsnapshot><name>s1</name></domainsnapshot>', 0)
    xml = dom.snapshotLookupByName('s1').getXMLDesc(0).replace('<name>s1</name>', '<name>s2</name>', 1)
    dom.snapshotCreateXML(xml, libvirt.VIR_DOMAIN_SNAPSHOT_CREATE_REDEFINE)
    assert sorted(dom.snapshotListNames(0)) == ['s1', 's2']
    inst = only(ansible.task(TERMINATE, name=name))
    assert 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA' in inst['undefine_flags']
    assert name not in virsh_names()
    assert not os.path.exists(disk)
    assert not os.path.exists('/var/lib/libvirt/qemu/snapshot/%s' % name) or \
        os.listdir('/var/lib/libvirt/qemu/snapshot/%s' % name) == []


def test_uefi_nvram_file_is_removed_with_the_domain(ansible, hypervisor, prefix):
    name = prefix + 'uefi'
    dom = guests.define_guest(hypervisor, name, nvram=True, start=True, wait_ready=False)
    nvram = guests.nvram_path(name)
    assert os.path.exists(nvram)  # libvirt copies the template when the domain first starts
    uuid = dom.UUIDString()
    inst = only(ansible.task(TERMINATE, name=name))
    assert 'VIR_DOMAIN_UNDEFINE_NVRAM' in inst['undefine_flags']
    assert name not in virsh_names()
    assert not os.path.exists(nvram)
    assert ansible.tombstone(uuid)['undefine_flags'] == inst['undefine_flags']


# -- local disks: only what the domain owns is deleted (rule 6) -----------------------------------------------

def test_pool_volume_and_file_under_images_dir_are_deleted(ansible, make_guest, hypervisor, scratch, pool_volumes):
    vol_name = pool_volumes('vol.qcow2')
    vol_path = guests.make_pool_volume(hypervisor, name=vol_name).path()
    image = guests.make_disk(scratch(IMAGES, 'file.qcow2'))
    name, uuid = make_guest('a', start=False, disks=[
        {'type': 'volume', 'pool': 'default', 'volume': vol_name, 'target': 'vdb'},
        {'path': image, 'target': 'vdc'}])
    inst = only(ansible.task(TERMINATE, name=name))
    assert sorted(inst['disks_deleted']) == sorted([vol_path, image])
    assert inst['disks_kept'] == []
    assert not os.path.exists(vol_path) and not os.path.exists(image)
    pool = hypervisor.storagePoolLookupByName('default')
    pool.refresh(0)
    assert vol_name not in pool.listVolumes()


def _kept(inst, path):
    [item] = [k for k in inst['disks_kept'] if k['path'] == path]
    return item


def test_disk_outside_the_instance_dirs_is_kept_and_reported(ansible, make_guest, scratch):
    foreign = guests.make_disk(scratch('/var/tmp', 'elsewhere.qcow2'))
    name, uuid = make_guest('a', start=False, disks=[{'path': foreign, 'target': 'vdb'}])
    inst = only(ansible.task(TERMINATE, name=name))
    assert os.path.exists(foreign)
    assert inst['disks_deleted'] == []
    assert 'outside the instance directories' in _kept(inst, foreign)['reason']
    assert ansible.tombstone(uuid)['disks_kept'] == inst['disks_kept']


def test_symlink_in_images_dir_pointing_outside_is_kept(ansible, make_guest, scratch):
    target = guests.make_disk(scratch('/var/tmp', 'target.qcow2'))
    link = scratch(IMAGES, 'link.qcow2')
    os.symlink(target, link)
    name, uuid = make_guest('a', start=False, disks=[{'path': link, 'target': 'vdb'}])
    inst = only(ansible.task(TERMINATE, name=name))
    assert os.path.exists(target) and os.path.islink(link)
    reason = _kept(inst, link)['reason']
    assert target in reason and 'outside the instance directories' in reason


def test_dotdot_path_escaping_images_dir_is_kept(ansible, make_guest, scratch):
    target = guests.make_disk(scratch('/var/tmp', 'escaped.qcow2'))
    sneaky = IMAGES + '/../../../../var/tmp/' + os.path.basename(target)
    name, uuid = make_guest('a', start=False, disks=[{'path': sneaky, 'target': 'vdb'}])
    inst = only(ansible.task(TERMINATE, name=name))
    assert os.path.exists(target)
    assert 'outside the instance directories' in _kept(inst, sneaky)['reason']


def test_disk_shared_with_another_domain_is_kept(ansible, make_guest, hypervisor, scratch):
    shared = guests.make_disk(scratch(IMAGES, 'shared.qcow2'))
    name, uuid = make_guest('a', start=False, disks=[{'path': shared, 'target': 'vdb'}])
    other, dummy = make_guest('b', start=False, disks=[{'path': shared, 'target': 'vdb'}])
    inst = only(ansible.task(TERMINATE, name=name))
    assert os.path.exists(shared)
    assert exists(hypervisor, other)
    assert _kept(inst, shared)['reason'] == 'shared with domain(s) %s' % other


def test_backing_file_of_another_domains_disk_is_kept(ansible, make_guest, scratch):
    base = guests.make_disk(scratch(IMAGES, 'base.qcow2'))
    overlay = guests.make_disk(scratch(IMAGES, 'overlay.qcow2'), size=None, backing=base)
    name, uuid = make_guest('a', start=False, disks=[{'path': base, 'target': 'vdb'}])
    other, dummy = make_guest('b', start=False, disks=[{'path': overlay, 'target': 'vdb'}])
    inst = only(ansible.task(TERMINATE, name=name))
    assert os.path.exists(base)
    assert _kept(inst, base)['reason'] == 'backing file of a disk of domain(s) %s' % other


# -- interrupted runs (rule 7) --------------------------------------------------------------------------------

def test_terminate_killed_after_deleting_disks_is_finished_by_running_it_again(
        ansible, make_guest, hypervisor, scratch):
    image = guests.make_disk(scratch(IMAGES, 'disk.qcow2'))
    name, uuid = make_guest('a', start=False, disks=[{'path': image, 'target': 'vdb'}])
    killed = ansible.task(TERMINATE, name=name, env={'DEFERRED_LIBVIRT_FAILPOINT': 'terminate.after_disks'})
    assert killed['failed'] is True
    assert not os.path.exists(image)
    assert only(ansible.task('deferred.libvirt.vm_info', name=name))['task_state'] == 'deleting'
    assert ansible.tombstone(uuid)['status'] == 'deleting'
    inst = only(ansible.task(TERMINATE, name=name))
    assert inst['action'] == 'terminated'
    assert not exists(hypervisor, name)
    assert ansible.tombstone(uuid)['status'] == 'terminated'
    assert ansible.tombstone(uuid)['disks_deleted'] == [image]
