# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module process killed (SIGKILL) at every step boundary of soft delete, restore, terminate and reclaim.

Each trial: a real domain, the module run through ansible-playbook with
DEFERRED_LIBVIRT_FAILPOINT=<point> so it dies at that step as it would when an
SSH connection drops or an AWX job is cancelled, then one re-run without the
fail point. After the kill, no domain may be gone without a tombstone; after
the re-run the domain is consistent (no task_state left, the expected
vm_state, or gone with a finished tombstone), no disk or volume it owned is
left behind or leaked, and the journal shows the killed run's start event
without an end, followed by the re-run's events.
"""

import os

import pytest

import support
import trials

KILLED_RC = 'MODULE FAILURE'


def _killed(result):
    """The task failed because its module process died, not because the module reported an error."""
    assert result.get('failed'), result
    text = '%s %s %s' % (result.get('msg'), result.get('module_stderr'), result.get('rc'))
    assert 'MODULE FAILURE' in text or '-9' in text or 'Killed' in text, result
    return result


def _start_events(state_dir, uuid, event_type):
    return [e for e in support.events(state_dir) if e['uuid'] == uuid and e['event_type'] == event_type]


def _journal_tells(state_dir, uuid, operation, rerun, rerun_ends=True):
    """The killed run left <operation>.start without .end; the re-run's events follow it."""
    starts = _start_events(state_dir, uuid, 'instance.%s.start' % operation)
    assert starts, 'no instance.%s.start in the journal' % operation
    killed = starts[0]['request_id']
    killed_types = [e['event_type'] for e in support.events(state_dir, killed)]
    assert 'instance.%s.end' % operation not in killed_types, killed_types
    rerun_types = [e['event_type'] for e in support.events(state_dir, rerun['request_id'])]
    if rerun_ends:
        assert 'instance.%s.end' % operation in rerun_types, rerun_types
        ends = [e for e in support.events(state_dir, rerun['request_id'])
                if e['event_type'] == 'instance.%s.end' % operation]
        assert ends[-1]['result'] in ('success',), ends[-1]
    everything = support.events(state_dir)
    later = [i for i, e in enumerate(everything) if e['request_id'] == rerun['request_id']]
    assert all(i > everything.index(starts[0]) for i in later), 'the re-run events come before the killed start'
    return killed_types, rerun_types


def _short(types):
    return '+'.join(t.replace('instance.', '') for t in types) or 'nothing'


# -- soft delete -------------------------------------------------------------------------------------------------------

SD_START = ['instance.soft_delete.start']
SD_WAITING = SD_START + ['instance.shutdown.start']
SD_STOPPED = SD_WAITING + ['instance.shutdown.end']
# point -> (guest kind (bios ignores ACPI), power state and vm_state right after the kill, the killed run's events)
SOFT_DELETE_POINTS = [
    ('soft_delete.after_start', 'acpi', 'running', None, SD_START),
    ('soft_delete.before_shutdown', 'acpi', 'running', None, SD_WAITING),
    ('soft_delete.shutdown_retry', 'bios', 'running', None, SD_WAITING),
    ('soft_delete.after_shutdown', 'acpi', 'shutoff', None, SD_STOPPED),
    ('soft_delete.after_record', 'acpi', 'shutoff', 'soft_deleted', SD_STOPPED),
]


@pytest.mark.parametrize('point,kind,power_after_kill,vm_state_after_kill,killed_events', SOFT_DELETE_POINTS,
                         ids=[p[0] for p in SOFT_DELETE_POINTS])
def test_soft_delete_killed_at_each_step_is_finished_by_one_rerun(ansible, make_guest, hypervisor, state_dir, project,
                                                                  point, kind, power_after_kill, vm_state_after_kill,
                                                                  killed_events):
    with trials.case('faults', 'vm_soft_delete killed at %s, then re-run' % point, order=10) as case:
        name, uuid = make_guest('a', kind=kind)
        support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(project=project))
        args = dict(name=name, project=project, shutdown_timeout=4 if kind == 'bios' else 60,
                    shutdown_retry_interval=1, reclaim_interval='1d')

        _killed(ansible.task('deferred.libvirt.vm_soft_delete', env={support.FAILPOINT: point}, **args))
        after_kill = support.read_record(hypervisor, uuid)
        assert after_kill is not None
        assert after_kill['power_state'] == power_after_kill, after_kill
        record = after_kill['record']
        if vm_state_after_kill:
            assert record.get('vm_state') == vm_state_after_kill and not record.get('task_state'), record
        else:
            assert record.get('task_state') == 'soft_deleting', record
        [start] = _start_events(state_dir, uuid, 'instance.soft_delete.start')

        rerun = ansible.task('deferred.libvirt.vm_soft_delete', **args)
        assert not rerun.get('failed'), rerun
        support.assert_consistent(hypervisor, state_dir, uuid, 'soft_deleted')
        final = support.read_record(hypervisor, uuid)['record']
        # The retention clock is the one fixed by the killed run, not reset by the re-run (rule 3).
        assert final['reclaim_at'] == start['payload']['reclaim_at'], (final, start)
        killed_types, rerun_types = _journal_tells(state_dir, uuid, 'soft_delete', {'request_id': rerun['request_id']},
                                                   rerun_ends=vm_state_after_kill is None)
        assert killed_types == killed_events, killed_types
        [inst] = rerun['instances']
        case.outcome = 'after the kill: %s, task_state %s, journal %s; re-run: action %s, soft_deleted, ' \
                       'reclaim_at of the killed run kept' % (power_after_kill, record.get('task_state'),
                                                              _short(killed_types), inst.get('action'))


def test_soft_delete_killed_again_while_resuming_is_finished_by_a_third_run(
        ansible, make_guest, hypervisor, state_dir, project):
    with trials.case('faults', 'vm_soft_delete killed at after_start, re-run killed at soft_delete.resumed, '
                     'then re-run', order=11) as case:
        name, uuid = make_guest('a', kind='acpi')
        support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(project=project))
        args = dict(name=name, project=project, shutdown_timeout=60, shutdown_retry_interval=1)
        _killed(ansible.task('deferred.libvirt.vm_soft_delete', env={support.FAILPOINT: 'soft_delete.after_start'},
                             **args))
        _killed(ansible.task('deferred.libvirt.vm_soft_delete', env={support.FAILPOINT: 'soft_delete.resumed'},
                             **args))
        assert support.read_record(hypervisor, uuid)['record']['task_state'] == 'soft_deleting'
        rerun = ansible.task('deferred.libvirt.vm_soft_delete', **args)
        assert not rerun.get('failed'), rerun
        assert rerun['instances'][0]['resumed'] is True
        support.assert_consistent(hypervisor, state_dir, uuid, 'soft_deleted')
        [start] = _start_events(state_dir, uuid, 'instance.soft_delete.start')
        assert support.read_record(hypervisor, uuid)['record']['reclaim_at'] == start['payload']['reclaim_at']
        case.outcome = 'two kills, third run resumed it: soft_deleted, reclaim_at of the first run kept'


# -- restore -----------------------------------------------------------------------------------------------------------

# point -> (power state right after the kill, task_state right after the kill)
RESTORE_POINTS = [
    ('restore.after_start', 'shutoff', 'restoring'),
    ('restore.before_boot', 'shutoff', 'restoring'),
    ('restore.after_boot', 'running', 'restoring'),
    ('restore.after_record', 'running', None),
]


@pytest.mark.parametrize('point,power_after_kill,task_after_kill', RESTORE_POINTS, ids=[p[0] for p in RESTORE_POINTS])
def test_restore_killed_at_each_step_is_finished_by_one_rerun(ansible, make_guest, hypervisor, state_dir, project,
                                                              point, power_after_kill, task_after_kill):
    with trials.case('faults', 'vm_restore killed at %s, then re-run' % point, order=20) as case:
        name, uuid = make_guest('a', kind='bios', start=False)
        support.set_record(hypervisor.lookupByUUIDString(uuid), support.soft_deleted_record(project, reclaim_in=86400))
        args = dict(name=name, project=project, start_timeout=60)

        _killed(ansible.task('deferred.libvirt.vm_restore', env={support.FAILPOINT: point}, **args))
        after_kill = support.read_record(hypervisor, uuid)
        assert after_kill['power_state'] == power_after_kill, after_kill
        assert after_kill['record'].get('task_state') == task_after_kill, after_kill
        if task_after_kill:
            # Interrupted, it is still soft-deleted with its dates: never active-but-broken (rule 2).
            assert after_kill['record']['vm_state'] == 'soft_deleted' and after_kill['record']['reclaim_at']
        booted_as = after_kill['id'] if power_after_kill == 'running' else None

        rerun = ansible.task('deferred.libvirt.vm_restore', **args)
        assert not rerun.get('failed'), rerun
        support.assert_consistent(hypervisor, state_dir, uuid, 'active')
        if booted_as is not None:
            # The re-run finished the record; it did not boot the guest a second time.
            assert support.read_record(hypervisor, uuid)['id'] == booted_as
        _journal_tells(state_dir, uuid, 'restore', {'request_id': rerun['request_id']},
                       rerun_ends=task_after_kill is not None)
        case.outcome = 'after the kill: %s, task_state %s (still soft_deleted with its dates)' % (
            power_after_kill, task_after_kill) if task_after_kill else 'after the kill: %s, active' % power_after_kill
        case.outcome += '; re-run: action %s, active and running%s' % (
            rerun['instances'][0].get('action'), ', not booted a second time' if booted_as is not None else '')


# -- terminate and reclaim ---------------------------------------------------------------------------------------------

TERMINATE_POINTS = [
    'terminate.after_start',
    'terminate.after_tombstone',
    'terminate.after_destroy',
    'terminate.after_disks',
    'terminate.after_undefine',
    'terminate.after_detach',
    'terminate.after_cinder',
]


def _doomed_guest(make_guest, hypervisor, images, cinder, project, soft_deleted=False):
    """A running guest with a file disk and a pool volume it owns and two Cinder volumes, one delete_on_termination."""
    disk = images.file('disk')
    vol_path = images.volume('vol')
    name, uuid = make_guest('a', kind='bios', start=not soft_deleted,
                            disks=[{'path': disk, 'target': 'vdb'},
                                   {'type': 'volume', 'pool': 'default', 'volume': os.path.basename(vol_path),
                                    'target': 'vdc'}])
    keep, drop = cinder.volume(name + '-keep'), cinder.volume(name + '-drop')
    cinder.attach(keep, uuid)
    cinder.attach(drop, uuid)
    # The volume to delete first, so terminate.after_detach falls between its detach and its delete.
    volumes = [{'id': drop, 'target': 'vdd', 'delete_on_termination': True},
               {'id': keep, 'target': 'vde', 'delete_on_termination': False}]
    dom = hypervisor.lookupByUUIDString(uuid)
    if soft_deleted:
        support.set_record(dom, support.soft_deleted_record(project, reclaim_in=-5, volumes=volumes))
    else:
        support.set_record(dom, support.record_xml(project=project, volumes=volumes))
    return name, uuid, [disk, vol_path], keep, drop


def _nothing_left(hypervisor, state_dir, cinder, uuid, paths, keep, drop):
    support.assert_consistent(hypervisor, state_dir, uuid, 'deleted')
    assert [p for p in paths if os.path.exists(p)] == [], 'owned disks left behind'
    assert cinder.state(keep) == 'available', cinder.state(keep)
    assert cinder.wait_state(drop, ('deleted',)) == 'deleted'
    assert cinder.attachments(uuid) == []
    tomb = support.tombstone(state_dir, uuid)
    assert tomb['volumes_pending'] == [], tomb['volumes_pending']


def _gone_means_tombstone(hypervisor, state_dir, uuid):
    """Right after a kill: if the domain is gone, its tombstone is there, listing every volume still to handle."""
    if support.read_record(hypervisor, uuid) is None:
        tomb = support.tombstone(state_dir, uuid)
        assert tomb is not None, 'domain gone without a tombstone'
        return tomb
    return None


@pytest.mark.cinder
@pytest.mark.parametrize('point', TERMINATE_POINTS)
def test_terminate_killed_at_each_step_is_finished_by_one_rerun(ansible, make_guest, hypervisor, images, cinder,
                                                                state_dir, project, point):
    with trials.case('faults', 'vm_terminate (2 disks, 2 Cinder volumes) killed at %s, then re-run' % point,
                     order=30) as case:
        name, uuid, paths, keep, drop = _doomed_guest(make_guest, hypervisor, images, cinder, project)
        args = dict(name=name, project=project, cloud=support.CLOUD)

        _killed(ansible.task('deferred.libvirt.vm_terminate', env=dict(support.cinder_env(),
                                                                       **{support.FAILPOINT: point}), **args))
        tomb = _gone_means_tombstone(hypervisor, state_dir, uuid)
        if tomb is not None:
            pending = sorted(v['id'] for v in tomb['volumes_pending'])
            assert pending == sorted([keep, drop]), 'a volume is missing from the tombstone: %s' % tomb
        else:
            assert support.read_record(hypervisor, uuid)['record']['task_state'] == 'deleting'

        rerun = ansible.task('deferred.libvirt.vm_terminate', env=support.cinder_env(), **args)
        assert not rerun.get('failed'), rerun
        _nothing_left(hypervisor, state_dir, cinder, uuid, paths, keep, drop)
        _journal_tells(state_dir, uuid, 'delete', {'request_id': rerun['request_id']}, rerun_ends=True)
        case.outcome = 'after the kill: %s; re-run: action %s, gone, tombstone terminated, both disks deleted, ' \
                       'delete_on_termination volume deleted, the other available' % (
                           'domain gone, tombstone lists both volumes' if tomb else 'domain defined, task_state deleting',
                           rerun['instances'][0].get('action'))


@pytest.mark.cinder
@pytest.mark.parametrize('point', ['terminate.after_destroy', 'terminate.after_undefine', 'terminate.after_detach'])
def test_reclaim_killed_mid_terminate_is_finished_by_the_next_sweep(ansible, make_guest, hypervisor, images, cinder,
                                                                    state_dir, project, point):
    with trials.case('faults', 'vm_reclaim killed at %s, then the next sweep' % point, order=40) as case:
        name, uuid, paths, keep, drop = _doomed_guest(make_guest, hypervisor, images, cinder, project,
                                                      soft_deleted=True)
        args = dict(project=project, cloud=support.CLOUD)
        _killed(ansible.task('deferred.libvirt.vm_reclaim', env=dict(support.cinder_env(),
                                                                     **{support.FAILPOINT: point}), **args))
        _gone_means_tombstone(hypervisor, state_dir, uuid)
        sweep = ansible.task('deferred.libvirt.vm_reclaim', env=support.cinder_env(), **args)
        assert not sweep.get('failed'), sweep
        assert [r['uuid'] for r in sweep['reclaimed']] + [f['uuid'] for f in sweep['finished']] == [uuid], sweep
        _nothing_left(hypervisor, state_dir, cinder, uuid, paths, keep, drop)
        _journal_tells(state_dir, uuid, 'delete', {'request_id': sweep['request_id']}, rerun_ends=True)
        case.outcome = 'next sweep %s: gone, tombstone terminated, disks deleted, no volume leaked' % (
            'reclaimed it' if sweep['reclaimed'] else 'finished its pending Cinder work')
