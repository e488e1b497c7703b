# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_terminate against the test bed's real Cinder (tests/testbed/cinder.sh up): volumes attached the way Nova
attaches them, detached and deleted when the domain is terminated, and never forgotten when Cinder is down."""

import contextlib
import fcntl
import json
import os
import subprocess

import libvirt
import pytest
import yaml

import cinder_helpers as ch
from results import only

pytestmark = pytest.mark.cinder

TERMINATE = 'deferred.libvirt.vm_terminate'
CINDER_SH = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'testbed', 'cinder.sh')
CLOUD_ENV = {'OS_CLIENT_CONFIG_FILE': ch.CLOUDS_YAML}


@pytest.fixture
def ansible(ansible, cinder):
    """The Runner, with openstacksdk finding the test bed's clouds.yaml as an operator's environment would."""
    ansible.extra_env.update(CLOUD_ENV)
    return ansible


@contextlib.contextmanager
def cinder_stopped():
    """Stop Cinder for the block, holding cinder.sh's own lock so no other test's `cinder.sh up` restarts it
    meanwhile; start it again after."""
    down = subprocess.run(['bash', CINDER_SH, 'down'], capture_output=True, text=True, check=False)
    lock = open(os.path.join(os.path.dirname(ch.CLOUDS_YAML), '.cinder.lock'), 'a')
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        assert down.returncode == 0, 'cinder.sh down failed: %s' % down.stderr[-2000:]
        status = subprocess.run(['bash', CINDER_SH, 'status'], capture_output=True, text=True, check=False)
        assert 'api: not answering' in status.stdout, status.stdout
        yield
    finally:
        lock.close()
        up = subprocess.run(['bash', CINDER_SH, 'up'], capture_output=True, text=True, check=False)
        assert up.returncode == 0, 'cinder.sh up failed: %s' % up.stderr[-2000:]


def project_of(name):
    """A project of this test's own (its guest prefix), so host-wide sweeps can be scoped to it."""
    return name.rsplit('-', 1)[0]


def exists(conn, name):
    try:
        conn.lookupByName(name)
        return True
    except libvirt.libvirtError:
        return False


def guest_with_volumes(ansible, make_guest, volumes, cinder, *marks):
    """A domain with one Cinder volume per mark attached to its UUID, recorded with vm_attributes.

    A mark is 'delete' (delete_on_termination), 'keep', or 'unrecorded' (attached in Cinder only).
    """
    name, uuid = make_guest('a', start=False)
    ids, recorded = [], []
    for index, mark in enumerate(marks):
        vid = volumes('%s%d' % (mark, index))
        target = 'vd%s' % 'bcdefgh'[index]
        ch.attach_like_nova(vid, uuid, mountpoint='/dev/' + target, conn=cinder)
        if mark != 'unrecorded':
            recorded.append({'id': vid, 'target': target, 'delete_on_termination': mark == 'delete'})
        ids.append(vid)
    only(ansible.task('deferred.libvirt.vm_attributes', name=name, project=project_of(name), volumes=recorded))
    for vid in ids:
        assert ch.volume_status(vid, conn=cinder) == 'in-use'
    return name, uuid, ids


def test_volume_marked_delete_on_termination_is_deleted_and_the_other_left_available(
        ansible, make_guest, volumes, cinder, hypervisor):
    name, uuid, (doomed, kept) = guest_with_volumes(ansible, make_guest, volumes, cinder, 'delete', 'keep')
    inst = only(ansible.task(TERMINATE, name=name, cloud='testbed'))
    assert not exists(hypervisor, name)
    assert inst['volumes_deleted'] == [doomed]
    assert inst['volumes_kept'] == [kept]
    assert sorted(inst['volumes_detached']) == sorted([doomed, kept])
    assert inst['volumes_pending'] == []
    assert ch.volume_status(doomed, conn=cinder) is None
    assert ch.volume_status(kept, conn=cinder) == 'available'
    assert ch.attachments_for(uuid, conn=cinder) == []
    assert cinder.block_storage.get_volume(kept).attachments == []
    tomb = ansible.tombstone(uuid)
    assert tomb['status'] == 'terminated' and tomb['volumes_pending'] == []


def test_volume_attached_in_cinder_but_absent_from_the_record_is_detached_and_kept(
        ansible, make_guest, volumes, cinder):
    name, uuid, (stray,) = guest_with_volumes(ansible, make_guest, volumes, cinder, 'unrecorded')
    inst = only(ansible.task(TERMINATE, name=name, cloud='testbed'))
    assert inst['volumes_detached'] == [stray]
    assert inst['volumes_kept'] == [stray]
    assert inst['volumes_deleted'] == []
    assert ch.volume_status(stray, conn=cinder) == 'available'
    assert ch.attachments_for(uuid, conn=cinder) == []


def test_check_mode_lists_volumes_cinder_has_attached_and_changes_nothing(
        ansible, make_guest, volumes, cinder, hypervisor):
    name, uuid, (doomed, stray) = guest_with_volumes(ansible, make_guest, volumes, cinder, 'delete', 'unrecorded')
    result = ansible.task(TERMINATE, name=name, cloud='testbed', check=True)
    inst = only(result)
    assert inst['action'] == 'would_terminate'
    assert sorted(inst['volumes_detached']) == sorted([doomed, stray])
    assert inst['volumes_deleted'] == [doomed]
    assert inst['volumes_kept'] == [stray]
    assert exists(hypervisor, name)
    assert [ch.volume_status(v, conn=cinder) for v in (doomed, stray)] == ['in-use', 'in-use']
    assert len(ch.attachments_for(uuid, conn=cinder)) == 2


@pytest.mark.exclusive
def test_cinder_down_during_terminate_keeps_the_work_pending_until_cinder_is_back(
        ansible, make_guest, volumes, cinder, hypervisor, prefix):
    """One window with Cinder stopped (it stops it for everyone): two domains terminated while it is down; then
    a re-run of vm_terminate finishes the first and the vm_reclaim sweep the second."""
    first, first_uuid, (first_doomed, first_kept) = guest_with_volumes(
        ansible, make_guest, volumes, cinder, 'delete', 'keep')
    second, second_uuid = make_guest('b', start=False)
    second_doomed = volumes('second')
    ch.attach_like_nova(second_doomed, second_uuid, conn=cinder)
    only(ansible.task('deferred.libvirt.vm_attributes', name=second, project=project_of(second),
                      volumes=[{'id': second_doomed, 'delete_on_termination': True}]))

    with cinder_stopped():
        down = ansible.task(TERMINATE, name=[first, second], cloud='testbed', api_timeout=10)

    assert not down.get('failed'), down
    assert not exists(hypervisor, first) and not exists(hypervisor, second)
    by_name = dict((i['name'], i) for i in down['instances'])
    assert sorted(v['id'] for v in by_name[first]['volumes_pending']) == sorted([first_doomed, first_kept])
    assert [v['id'] for v in by_name[second]['volumes_pending']] == [second_doomed]
    assert by_name[first]['volumes_deleted'] == [] and by_name[first]['volumes_detached'] == []
    assert any(first in w and 'pending' in w for w in down['warnings'])
    tomb = ansible.tombstone(first_uuid)
    assert tomb['status'] == 'undefined' and tomb['terminated_at']
    assert sorted(v['id'] for v in tomb['volumes_pending']) == sorted([first_doomed, first_kept])
    [end] = [e for e in ansible.events(down['request_id'])
             if e['event_type'] == 'instance.delete.end' and e['domain'] == first]
    assert end['result'] == 'pending'
    # Nothing was deleted or detached while Cinder was away.
    for vid in (first_doomed, first_kept, second_doomed):
        assert ch.volume_status(vid, conn=cinder) == 'in-use'

    rerun = only(ansible.task(TERMINATE, name=first, cloud='testbed'))
    assert rerun['changed'] is True and rerun['action'] == 'pending_finished'
    assert rerun['volumes_deleted'] == [first_doomed] and rerun['volumes_kept'] == [first_kept]
    assert ch.volume_status(first_doomed, conn=cinder) is None
    assert ch.volume_status(first_kept, conn=cinder) == 'available'
    assert ansible.tombstone(first_uuid)['status'] == 'terminated'

    # Scoped to this test's project: the sweep must not touch other tests' domains on the shared hypervisor.
    sweep = ansible.task('deferred.libvirt.vm_reclaim', cloud='testbed', project=project_of(second))
    assert not sweep.get('failed'), sweep
    assert [f['uuid'] for f in sweep['finished_tombstones']] == [second_uuid]
    assert ch.volume_status(second_doomed, conn=cinder) is None
    assert ansible.tombstone(second_uuid)['volumes_pending'] == []
    # No volume leaked: only the one kept on purpose is left, detached.
    left = [v for v in cinder.block_storage.volumes(details=True) if (v.name or '').startswith(prefix)]
    assert [(v.id, v.status, v.attachments) for v in left] == [(first_kept, 'available', [])]


def test_cinder_secrets_never_show_in_results_tombstones_or_events(
        ansible, make_guest, volumes, cinder, state_dir):
    with open(ch.CLOUDS_YAML) as handle:
        cloud = yaml.safe_load(handle)['clouds']['testbed']
    token = cloud['auth']['token']
    name, uuid, dummy = guest_with_volumes(ansible, make_guest, volumes, cinder, 'delete', 'unrecorded')
    # The whole cloud as a dict in the task, as a job template might pass it; check mode first, then for real.
    checked = ansible.playbook([{'name': 'check', TERMINATE: {'name': name, 'cloud': cloud}, 'check_mode': True},
                                {'name': 'terminate', TERMINATE: {'name': name, 'cloud': cloud}}])
    assert checked.rc == 0, checked.stdout[-2000:]
    assert only(checked.task(1))['volumes_deleted']
    seen = [checked.stdout, checked.stderr]
    for root, dummy_dirs, files in os.walk(state_dir):
        for item in files:
            with open(os.path.join(root, item), errors='replace') as handle:
                seen.append(handle.read())
    assert any(uuid in text for text in seen[2:])  # the tombstone and events were read
    assert [text for text in seen if token in text] == []
    assert all(json.dumps(token) not in text for text in seen)
