# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""libvirtd restarted in the middle of a soft delete and of a restore; Cinder stopped during terminate and reclaim.

The module is paused (SIGSTOP) at a named step with DEFERRED_LIBVIRT_FAILPOINT
and DEFERRED_LIBVIRT_FAILPOINT_PAUSE, the daemon is taken away under it, and
the module goes on (SIGCONT) against the broken connection: it must end with
a clear error (or a success) and leave nothing that a re-run cannot finish.

These tests restart the shared libvirtd (SIGTERM, then ``hypervisor.sh up``:
QEMU guests keep running, every open connection breaks) or stop the shared
Cinder for a few seconds, so they are marked ``restarts_daemon`` and run
after every other reliability test.
"""

import xml.etree.ElementTree as ET

import pytest

import support
import trials

pytestmark = pytest.mark.restarts_daemon


def _task(module, **args):
    return [{'name': module, module: args}]


def test_libvirtd_restarted_during_the_shutdown_wait_of_a_soft_delete(ansible, make_guest, hypervisor, state_dir,
                                                                      project, tmp_path):
    with trials.case('daemons', 'libvirtd restarted while vm_soft_delete waits for an ACPI shutdown the guest ignores',
                     order=10) as case:
        name, uuid = make_guest('a', kind='bios')
        support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(project=project))
        args = dict(name=name, project=project, shutdown_timeout=8, shutdown_retry_interval=1)
        run, pid = support.run_paused(ansible, _task('deferred.libvirt.vm_soft_delete', **args),
                                      'soft_delete.shutdown_retry', str(tmp_path))
        # The module goes on while libvirtd is away: it fails, and its roll-back waits for libvirtd to come back.
        outage = support.restart_libvirtd(pause=1, meanwhile=lambda: support.resume(pid))
        [inst] = run.wait().task(0)['instances']
        case.details.update(outage_seconds=round(outage, 1), first_run=inst.get('msg'))
        assert inst['failed'], inst
        assert name in inst['msg'] and 'soft delete failed and was rolled back' in inst['msg'], inst
        # Rolled back: the guest survived the restart and runs, not soft-deleted, no task left.
        support.assert_consistent(hypervisor, state_dir, uuid, 'active')
        assert support.read_record(hypervisor, uuid)['record']['history'][-1]['result'] == 'error'

        rerun = ansible.task('deferred.libvirt.vm_soft_delete', **args)
        assert not rerun.get('failed'), rerun
        support.assert_consistent(hypervisor, state_dir, uuid, 'soft_deleted')
        case.outcome = 'libvirtd away %.1f s; first run: clear error, rolled back once libvirtd answered (guest ' \
                       'running, no task_state): "%s"; re-run: soft_deleted' % (outage, _gist(inst['msg'], name))


def test_libvirtd_restarted_during_a_restore(ansible, make_guest, hypervisor, state_dir, project, tmp_path):
    with trials.case('daemons', 'libvirtd restarted in the middle of vm_restore (before the boot)', order=20) as case:
        name, uuid = make_guest('a', kind='bios', start=False)
        support.set_record(hypervisor.lookupByUUIDString(uuid), support.soft_deleted_record(project, reclaim_in=86400))
        before = support.read_record(hypervisor, uuid)['record']
        args = dict(name=name, project=project, start_timeout=60)
        run, pid = support.run_paused(ansible, _task('deferred.libvirt.vm_restore', **args), 'restore.before_boot',
                                      str(tmp_path))
        outage = support.restart_libvirtd(pause=1, meanwhile=lambda: support.resume(pid))
        [inst] = run.wait().task(0)['instances']
        case.details.update(outage_seconds=round(outage, 1), first_run=inst.get('msg'))
        assert inst['failed'], inst
        assert name in inst['msg'] and 'restore failed; it stays soft-deleted' in inst['msg'], inst
        # Rule 2: never active-but-broken; soft-deleted with its original dates, shut off, no task left.
        support.assert_consistent(hypervisor, state_dir, uuid, 'soft_deleted')
        after = support.read_record(hypervisor, uuid)['record']
        assert (after['deleted_at'], after['reclaim_at']) == (before['deleted_at'], before['reclaim_at'])

        rerun = ansible.task('deferred.libvirt.vm_restore', **args)
        assert not rerun.get('failed'), rerun
        support.assert_consistent(hypervisor, state_dir, uuid, 'active')
        case.outcome = 'libvirtd away %.1f s; first run: clear error, rolled back (soft_deleted, original dates, ' \
                       'shut off): "%s"; re-run: active and running' % (outage, _gist(inst['msg'], name))


def _gist(msg, name):
    return msg.replace(name, '<name>')


def _guest_with_volumes(make_guest, hypervisor, cinder, project, soft_deleted=False):
    name, uuid = make_guest('a', kind='bios', start=not soft_deleted)
    keep, drop = cinder.volume(name + '-keep'), cinder.volume(name + '-drop')
    cinder.attach(keep, uuid)
    cinder.attach(drop, uuid)
    # terminate.after_detach is reached by the volume to delete, between its detach and its delete.
    volumes = [{'id': drop, 'target': 'vdd', 'delete_on_termination': True}, {'id': keep, 'target': 'vde'}]
    dom = hypervisor.lookupByUUIDString(uuid)
    if soft_deleted:
        support.set_record(dom, support.soft_deleted_record(project, reclaim_in=-5, volumes=volumes))
    else:
        support.set_record(dom, support.record_xml(project=project, volumes=volumes))
    return name, uuid, keep, drop


def _cinder_outage(run, pid):
    """Cinder stopped under the paused module, the module resumed and finished, Cinder started again."""
    down = support.cinder_down()
    try:
        support.resume(pid)
        result = run.wait().task(0)
    finally:
        up = support.cinder_up()
    return result, down, up


def _finished_after_outage(ansible, hypervisor, state_dir, cinder, project, uuid, keep, drop):
    sweep = ansible.task('deferred.libvirt.vm_reclaim', env=support.cinder_env(), project=project, cloud=support.CLOUD)
    assert not sweep.get('failed'), sweep
    assert [f['uuid'] for f in sweep['finished_tombstones']] == [uuid], sweep
    support.assert_consistent(hypervisor, state_dir, uuid, 'deleted')
    assert cinder.wait_state(drop, ('deleted',)) == 'deleted'
    assert cinder.state(keep) == 'available'
    assert cinder.attachments(uuid) == []
    ends = [e for e in support.events(state_dir, sweep['request_id']) if e['event_type'] == 'instance.delete.end']
    assert [e['result'] for e in ends] == ['success'], ends
    return sweep


def _pending_after_outage(hypervisor, state_dir, uuid, keep, drop, inst, keep_may_be_done=False):
    """Rule 5: the domain is gone all the same, and no volume is forgotten: each is pending with Cinder's error, or
    done as it should be. ``keep_may_be_done``: the volumes of a domain are settled at once, so by the time the
    volume to delete paused between its detach and its delete, the one only to detach may already be done."""
    assert support.read_record(hypervisor, uuid) is None
    tomb = support.tombstone(state_dir, uuid)
    pending = dict((v['id'], v) for v in tomb['volumes_pending'])
    done = dict((v['id'], v) for v in tomb.get('volumes_done') or [])
    assert sorted(set(pending) | set(done)) == sorted([keep, drop]) and not set(pending) & set(done), tomb
    assert drop in pending and all(v.get('error') for v in pending.values()), tomb
    if keep_may_be_done and keep in done:
        assert done[keep]['detached'] and done[keep]['kept'] and not done[keep]['deleted'], done[keep]
    else:
        assert keep in pending, tomb
    assert sorted(v['id'] for v in inst['volumes_pending']) == sorted(pending), inst
    return tomb


@pytest.mark.cinder
@pytest.mark.parametrize('point', ['terminate.after_undefine', 'terminate.after_detach'])
def test_cinder_stopped_during_terminate_leaves_the_work_pending_until_it_is_back(
        ansible, make_guest, hypervisor, state_dir, cinder, project, tmp_path, point):
    when = 'before the volume work' if point == 'terminate.after_undefine' else 'between detach and delete'
    with trials.case('daemons', 'Cinder stopped during vm_terminate (%s), then vm_reclaim once it is back' % when,
                     order=30) as case:
        name, uuid, keep, drop = _guest_with_volumes(make_guest, hypervisor, cinder, project)
        run, pid = support.run_paused(
            ansible, _task('deferred.libvirt.vm_terminate', name=name, project=project, cloud=support.CLOUD),
            point, str(tmp_path), env=support.cinder_env())
        result, down, up = _cinder_outage(run, pid)
        assert not result.get('failed'), result
        [inst] = result['instances']
        assert inst['action'] == 'terminated' and inst['warnings'], inst
        tomb = _pending_after_outage(hypervisor, state_dir, uuid, keep, drop, inst,
                                     keep_may_be_done=point == 'terminate.after_detach')
        _finished_after_outage(ansible, hypervisor, state_dir, cinder, project, uuid, keep, drop)
        case.details.update(cinder_down_seconds=round(down, 1), cinder_up_seconds=round(up, 1))
        case.outcome = 'domain terminated, %s pending in the tombstone with the error, a warning; Cinder back after ' \
                       '%.0f s: next vm_reclaim deleted one, left the other available' % (
                           'both volumes' if len(tomb['volumes_pending']) == 2 else
                           'the volume to delete (the other was already detached)', down + up)


@pytest.mark.cinder
def test_cinder_stopped_during_reclaim_leaves_the_work_pending_until_the_next_sweep(
        ansible, make_guest, hypervisor, state_dir, cinder, project, tmp_path):
    with trials.case('daemons', 'Cinder stopped during vm_reclaim, then the next sweep', order=40) as case:
        name, uuid, keep, drop = _guest_with_volumes(make_guest, hypervisor, cinder, project, soft_deleted=True)
        run, pid = support.run_paused(
            ansible, _task('deferred.libvirt.vm_reclaim', project=project, cloud=support.CLOUD),
            'terminate.after_undefine', str(tmp_path), env=support.cinder_env())
        result, down, up = _cinder_outage(run, pid)
        assert not result.get('failed'), result
        assert [r['uuid'] for r in result['reclaimed']] == [uuid], result
        assert [p['uuid'] for p in result['pending']] == [uuid], result
        _pending_after_outage(hypervisor, state_dir, uuid, keep, drop, result['instances'][0])
        _finished_after_outage(ansible, hypervisor, state_dir, cinder, project, uuid, keep, drop)
        case.details.update(cinder_down_seconds=round(down, 1), cinder_up_seconds=round(up, 1))
        case.outcome = 'domain reclaimed, volumes pending in the tombstone and in the sweep\'s pending list; ' \
                       'Cinder back after %.0f s: next sweep finished them, nothing leaked' % (down + up)


def _host_uuid(hypervisor):
    return ET.fromstring(hypervisor.getCapabilities()).findtext('host/uuid')


@pytest.mark.cinder
def test_work_a_terminate_left_is_finished_by_the_same_host_after_libvirtd_made_up_a_new_host_uuid(
        ansible, make_guest, hypervisor, state_dir, cinder, project):
    """Rule 5: a terminate with Cinder away leaves its volumes in the tombstone; libvirtd restarts and, on a machine
    without an SMBIOS UUID, makes up a new host UUID; the host's own next sweep still finishes them. (The sweeps once
    took such a tombstone for another host's and left it forever: the volume of a terminated domain stayed attached,
    seed 1 of the randomized trial.)"""
    with trials.case('daemons', 'vm_terminate with Cinder stopped, libvirtd restarted with a new host UUID, then '
                     'vm_reclaim', order=50) as case:
        name, uuid, keep, drop = _guest_with_volumes(make_guest, hypervisor, cinder, project)
        down = support.cinder_down()
        try:
            result = ansible.task('deferred.libvirt.vm_terminate', env=support.cinder_env(), name=name, project=project,
                                  cloud=support.CLOUD, api_timeout=10)
        finally:
            up = support.cinder_up()
        [inst] = result['instances']
        assert not result.get('failed') and inst['action'] == 'terminated', result
        _pending_after_outage(hypervisor, state_dir, uuid, keep, drop, inst)

        before = _host_uuid(hypervisor)
        support.restart_libvirtd()
        after = _host_uuid(hypervisor)
        # What this test is about: the test bed's hv1 has no SMBIOS UUID and no host_uuid in libvirtd.conf.
        assert before and after and before != after, 'libvirtd kept its host UUID %s across the restart: this test ' \
            'needs a libvirtd that makes up a new one (no SMBIOS UUID, no host_uuid in libvirtd.conf)' % before

        # Still this host's terminated domain: vm_info finds it by name, with the volumes it waits for.
        [seen] = ansible.task('deferred.libvirt.vm_info', name=name, project=project, include_deleted=True)['instances']
        assert seen['uuid'] == uuid and seen['vm_state'] == 'deleted', seen
        assert sorted(v['id'] for v in seen['volumes_pending']) == sorted([keep, drop]), seen
        _finished_after_outage(ansible, hypervisor, state_dir, cinder, project, uuid, keep, drop)
        case.details.update(cinder_down_seconds=round(down, 1), cinder_up_seconds=round(up, 1),
                            host_uuid_before=before, host_uuid_after=after)
        case.outcome = 'domain terminated with both volumes pending; libvirtd came back as host UUID %s (was %s); ' \
                       'the next vm_reclaim of the host finished the tombstone: one volume deleted, the other ' \
                       'available, nothing attached' % (after, before)
