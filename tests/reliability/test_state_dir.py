# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A state_dir that cannot be written: every operation refuses before it changes any domain.

The full and read-only cases use a tiny tmpfs mounted for the test (the
test bed runs as root, where permission bits do not stop a write). The test
bed can always mount one: where mount is refused those cases fail, they are
never skipped.
"""

import errno
import os
import subprocess

import pytest

import support
import trials

OPERATIONS = ('deferred.libvirt.vm_soft_delete', 'deferred.libvirt.vm_restore', 'deferred.libvirt.vm_terminate')


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs of this test; yields its path and is unmounted afterwards."""
    path = str(tmp_path / 'fs')
    os.mkdir(path)
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', path],
                             capture_output=True, text=True, check=False)
    if mounted.returncode != 0:
        pytest.fail('cannot mount a tmpfs, which the test bed (root) always can: %s' % mounted.stderr.strip(),
                    pytrace=False)
    yield path
    subprocess.run(['umount', '-l', path], capture_output=True, check=False)


def fill(path):
    """Write into ``path`` until the file system is full (unbuffered, so nothing is left to flush)."""
    for n, size in enumerate((65536, 4096, 512, 64, 1)):
        fd = os.open(os.path.join(path, 'filler-%d' % n), os.O_WRONLY | os.O_CREAT, 0o600)
        try:
            while True:
                os.write(fd, b'\0' * size)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
        finally:
            os.close(fd)


def free(path):
    for entry in os.listdir(path):
        if entry.startswith('filler-'):
            os.unlink(os.path.join(path, entry))


@pytest.fixture
def three_domains(make_guest, hypervisor, images, project):
    """One per operation: a running guest to soft delete, a soft-deleted one to restore, one with a disk to terminate."""
    sd_name, sd_uuid = make_guest('sd', kind='bios')
    support.set_record(hypervisor.lookupByUUIDString(sd_uuid), support.record_xml(project=project))
    rs_name, rs_uuid = make_guest('rs', kind='bios', start=False)
    support.set_record(hypervisor.lookupByUUIDString(rs_uuid), support.soft_deleted_record(project, reclaim_in=86400))
    disk = images.file('disk')
    tm_name, tm_uuid = make_guest('tm', kind='bios', start=False, disks=[{'path': disk, 'target': 'vdb'}])
    support.set_record(hypervisor.lookupByUUIDString(tm_uuid), support.record_xml(project=project))
    return {'names': (sd_name, rs_name, tm_name), 'uuids': (sd_uuid, rs_uuid, tm_uuid), 'disk': disk}


def _definitions(hypervisor, uuids):
    import libvirt
    return [(hypervisor.lookupByUUIDString(u).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE),
             hypervisor.lookupByUUIDString(u).state()[0]) for u in uuids]


def _all_refuse(ansible, hypervisor, three_domains, project, bad_state_dir, reason):
    """Each operation fails naming the state_dir and why; no domain definition, power state or disk changed."""
    before = _definitions(hypervisor, three_domains['uuids'])
    tasks = [{'name': module, module: dict(name=name, project=project, state_dir=bad_state_dir),
              'ignore_errors': True} for module, name in zip(OPERATIONS, three_domains['names'])]
    results = ansible.playbook(tasks).tasks()
    for module, result in zip(OPERATIONS, results):
        assert result.get('failed'), (module, result)
        assert bad_state_dir in result['msg'] and reason in result['msg'], (module, result['msg'])
        assert 'nothing was changed' in result['msg'], (module, result['msg'])
    assert _definitions(hypervisor, three_domains['uuids']) == before
    assert os.path.exists(three_domains['disk'])
    return results[0]['msg'].replace(bad_state_dir, '<state_dir>')


def test_a_file_where_the_state_dir_should_be_is_refused(ansible, hypervisor, three_domains, project, tmp_path):
    with trials.case('state_dir', 'state_dir is a regular file (soft delete, restore, terminate)', order=10) as case:
        path = str(tmp_path / 'not-a-dir')
        with open(path, 'w') as handle:
            handle.write('x')
        msg = _all_refuse(ansible, hypervisor, three_domains, project, path, 'is not a directory')
        case.outcome = 'all 3 refused, no domain changed: "%s"' % msg


def test_a_full_state_dir_is_refused(ansible, hypervisor, three_domains, project, tiny_fs):
    with trials.case('state_dir', 'state_dir on a full file system (soft delete, restore, terminate)', order=20) as case:
        state = os.path.join(tiny_fs, 'state')
        os.mkdir(state, 0o700)
        fill(tiny_fs)
        msg = _all_refuse(ansible, hypervisor, three_domains, project, state, 'No space left on device')
        case.outcome = 'all 3 refused, no domain changed: "%s"' % msg


def test_a_read_only_state_dir_is_refused(ansible, hypervisor, three_domains, project, tiny_fs):
    with trials.case('state_dir', 'state_dir on a read-only file system (soft delete, restore, terminate)',
                     order=30) as case:
        state = os.path.join(tiny_fs, 'state')
        os.mkdir(state, 0o700)
        subprocess.run(['mount', '-o', 'remount,ro', tiny_fs], check=True)
        msg = _all_refuse(ansible, hypervisor, three_domains, project, state, 'Read-only file system')
        case.outcome = 'all 3 refused, no domain changed: "%s"' % msg


def test_a_state_dir_that_cannot_be_created_is_refused(ansible, hypervisor, three_domains, project, tiny_fs):
    with trials.case('state_dir', 'state_dir missing, its parent read-only (soft delete, restore, terminate)',
                     order=40) as case:
        subprocess.run(['mount', '-o', 'remount,ro', tiny_fs], check=True)
        state = os.path.join(tiny_fs, 'state')
        msg = _all_refuse(ansible, hypervisor, three_domains, project, state, 'Read-only file system')
        case.outcome = 'all 3 refused, no domain changed: "%s"' % msg


def pad_journal_to_a_page(state):
    """Append one padding line so events.jsonl ends on a 4 KiB page: its next line then needs a new block.

    A full file system still takes lines into the page events.jsonl already
    has; without this, "full" would not fail at a fixed step.
    """
    path = os.path.join(state, 'events.jsonl')
    size = os.path.getsize(path)
    room = 4096 - size % 4096
    if room < 80:
        room += 4096
    line = '{"event_type": "test.padding", "uuid": null, "request_id": null, "pad": "%s"}\n'
    line = line % ('x' * (room - len(line % '')))
    with open(path, 'a') as handle:
        handle.write(line)
    assert os.path.getsize(path) % 4096 == 0


def test_state_dir_filling_up_during_a_soft_delete_rolls_it_back(ansible, make_guest, hypervisor, project, tiny_fs,
                                                                 tmp_path):
    with trials.case('state_dir', 'state_dir fills up in the middle of vm_soft_delete, then space is freed',
                     order=50) as case:
        state = os.path.join(tiny_fs, 'state')
        name, uuid = make_guest('a', kind='bios')
        support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(project=project))
        args = dict(name=name, project=project, state_dir=state, shutdown_timeout=3, shutdown_retry_interval=1)
        run, pid = support.run_paused(ansible, [{'name': 'sd', 'deferred.libvirt.vm_soft_delete': args}],
                                      'soft_delete.after_start', str(tmp_path))
        pad_journal_to_a_page(state)
        fill(tiny_fs)
        support.resume(pid)
        [inst] = run.wait().task(0)['instances']
        assert inst['failed'] and name in inst['msg'] and 'No space left on device' in inst['msg'], inst
        assert 'rolled back' in inst['msg'] and 'events.jsonl' in inst['msg'], inst
        support.assert_consistent(hypervisor, state, uuid, 'active')
        free(tiny_fs)
        rerun = ansible.task('deferred.libvirt.vm_soft_delete', **args)
        assert not rerun.get('failed'), rerun
        support.assert_consistent(hypervisor, state, uuid, 'soft_deleted')
        case.outcome = 'failed, rolled back (guest running, no task_state): "%s"; after freeing space the re-run ' \
                       'soft-deleted it' % inst['msg'].replace(name, '<name>').replace(state, '<state_dir>')


def test_state_dir_filling_up_during_a_terminate_never_loses_the_tombstone(ansible, make_guest, hypervisor, images,
                                                                           project, tiny_fs, tmp_path):
    with trials.case('state_dir', 'state_dir fills up in the middle of vm_terminate, then space is freed',
                     order=60) as case:
        state = os.path.join(tiny_fs, 'state')
        disk = images.file('disk')
        name, uuid = make_guest('a', kind='bios', disks=[{'path': disk, 'target': 'vdb'}])
        support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(project=project))
        args = dict(name=name, project=project, state_dir=state)
        run, pid = support.run_paused(ansible, [{'name': 'tm', 'deferred.libvirt.vm_terminate': args}],
                                      'terminate.after_destroy', str(tmp_path))
        fill(tiny_fs)
        support.resume(pid)
        result = run.wait().task(0)
        assert 'instances' in result, result
        [inst] = result['instances']
        assert inst['failed'] and 'No space left on device' in inst['msg'], inst
        # The tombstone could not be updated, so the domain was not undefined: never gone without a tombstone.
        left = support.read_record(hypervisor, uuid)
        assert left is not None and left['record']['task_state'] == 'deleting', left
        free(tiny_fs)
        rerun = ansible.task('deferred.libvirt.vm_terminate', **args)
        assert not rerun.get('failed'), rerun
        support.assert_consistent(hypervisor, state, uuid, 'deleted')
        assert not os.path.exists(disk)
        case.outcome = 'failed before undefine: "%s"; domain still defined (task_state deleting); after freeing ' \
                       'space the re-run terminated it' % inst['msg'].replace(name, '<name>').replace(state, '<state_dir>')
