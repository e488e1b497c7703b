# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore onto another host, serialised with the source host (issue 23, rules 4, 7 and 12): hv2 -> hv3 over
the shared directory, on the real fleet test bed.

The move runs on the target (vm_restore move_from over qemu+ssh, as playbooks/restore.yml runs it); fail points
(``DEFERRED_LIBVIRT_FAILPOINT``, set in the task's environment, so it reaches the module on hv3) pause or kill it
between its steps while the source sweeps. What is asserted is what an operator sees: where the guest runs, which
host still defines it, its disk, its record.
"""

import json
import os
import signal
import time

import pytest

from fleet_support import ANSIBLE_PLAYBOOK, SHARED_DIR, run_playbook, task_on, wait_past
from together import Started
import test_fleet_safety as base
from test_fleet_safety import BOOT_TIMEOUT, RESTORE, disk, ok, owned, record_on, running, soft_delete, sweep

# The fleet test bed's fixtures: fleet, hv2, hv3 and project from conftest.py, the rest as test_fleet_safety.py
# defines them.
shared, cloud, inventory = base.shared, base.cloud, base.inventory

MOVE_FROM_HV2 = 'qemu+ssh://hv2/system'


def move_play(names, project, failpoint=None, pause_file=None):
    """The target's step of a move, as a play on hv3 (the fail point in the task's environment reaches hv3)."""
    environment = {}
    if failpoint:
        environment['DEFERRED_LIBVIRT_FAILPOINT'] = failpoint
    if pause_file:
        environment['DEFERRED_LIBVIRT_FAILPOINT_PAUSE'] = pause_file
    return [{'hosts': 'hv3', 'gather_facts': False, 'environment': environment,
             'module_defaults': {'group/deferred.libvirt.all': {
                 'uri': "{{ deferred_libvirt_uri }}", 'state_dir': "{{ deferred_libvirt_state_dir }}"}},
             'tasks': [{'name': 'move', RESTORE: {
                 'name': names, 'project': project, 'move_from': MOVE_FROM_HV2, 'start_timeout': BOOT_TIMEOUT}}]}]


def play_file(ansible, play, tag):
    path = os.path.join(ansible.state_dir + '-plays', 'move-%s.json' % tag)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        json.dump(play, handle)
    return path


def wait_for_pause(path, proc, timeout=240):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if os.path.exists(path) and os.path.getsize(path):
            with open(path) as handle:
                pid, step = handle.read().split()
            return int(pid), step
        if proc.poll() is not None:
            raise AssertionError('the move ended before its fail point: %s' % proc.output()[0][-3000:])
        time.sleep(0.2)
    raise AssertionError('the move never reached its fail point')


def the_move(result):
    return result.task(0, 'hv3')


@pytest.mark.fleet_rules
def test_a_move_paused_after_its_define_while_the_source_sweeps_ends_running_on_one_host_with_its_disks(
        ansible, inventory, hv2, hv3, shared, project, prefix):
    """Rule 4 across hosts: the domain is expired on hv2 and being moved to hv3; a whole-fleet sweep between the
    target's define and the source's undefine reclaims nothing; the move then finishes with the guest on hv3."""
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    wait_past(soft_delete(ansible, inventory, 'hv2', name, project, '2s')['reclaim_at'])
    pause_file = os.path.join(SHARED_DIR, prefix + 'pause')
    cmd = [ANSIBLE_PLAYBOOK, '-i', inventory,
           play_file(ansible, move_play([name], project, 'move.after_define', pause_file), prefix)]
    mover = Started(cmd, env=ansible.env())
    try:
        pid, step = wait_for_pause(pause_file, mover)
        assert step == 'move.after_define'
        assert hv2.exists(name) and hv3.exists(name)
        assert record_on(ansible, inventory, 'hv2', name)['task_state'] == 'moving'

        result, summary = sweep(ansible, inventory, project)

        assert result.rc == 0, result.stdout[-3000:]
        assert summary['reclaimed'] == [] or all(r.get('uuid') != uuid for r in summary['reclaimed']), summary
        assert os.path.exists(path) and hv2.exists(name)
    finally:
        try:
            os.kill(pid, signal.SIGCONT)
        except (NameError, OSError):
            mover.kill()
    out, err = mover.communicate(timeout=600)
    assert mover.returncode == 0, out[-3000:]
    assert not hv2.exists(name) and running(hv3, name) and os.path.exists(path)
    record = record_on(ansible, inventory, 'hv3', name)
    assert (record['uuid'], record['vm_state'], record['task_state'], record['host']['hostname']) == (
        uuid, 'active', None, 'hv3')


@pytest.mark.fleet_rules
def test_a_failed_move_leaves_the_domain_startable_on_one_host_and_the_others_still_move(
        ansible, inventory, hv2, hv3, shared, project):
    """hv3 cannot define ``a`` (an unrelated domain there has its name): ``a`` stays soft-deleted and idle on hv2
    alone, and ``b`` of the same task still moves and runs on hv3."""
    a, a_uuid = hv2.make('a', start=False, disks=[disk(shared('a'))])
    b, b_uuid = hv2.make('b', start=False, disks=[disk(shared('b'))])
    for name in (a, b):
        owned(ansible, inventory, 'hv2', name, project)
        soft_delete(ansible, inventory, 'hv2', name, project)
    blocker, blocker_uuid = hv3.make('a', start=False)  # same name as a, another domain

    result = run_playbook(ansible, move_play([a, b], project), inventory)

    move = the_move(result)
    assert move['failed'], move
    by_name = dict((i['name'], i) for i in move['instances'])
    assert by_name[a]['failed'] and 'rolled back' in by_name[a]['msg'] and 'hv2' in by_name[a]['msg'], by_name[a]
    assert not by_name[b]['failed'] and running(hv3, b) and not hv2.exists(b)
    left = record_on(ansible, inventory, 'hv2', a)
    assert (left['uuid'], left['vm_state'], left['task_state']) == (a_uuid, 'soft_deleted', None)
    assert hv3.conn.lookupByName(a).UUIDString() == blocker_uuid  # the unrelated domain, untouched
    # Startable on hv2 only: restoring it there works.
    ok(task_on(ansible, inventory, 'hv2', RESTORE, name=a, project=project, start_timeout=BOOT_TIMEOUT))
    assert running(hv2, a)


@pytest.mark.fleet_rules
def test_a_move_killed_after_the_source_undefine_is_finished_by_running_it_again(ansible, inventory, hv2, hv3, shared,
                                                                                 project):
    """Rule 7: killed between its steps, the move leaves the domain in task_state moving on hv3 alone, which no
    sweep reclaims; the same task run again finishes it."""
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    soft_delete(ansible, inventory, 'hv2', name, project)

    killed = run_playbook(ansible, move_play([name], project, 'move.after_source_undefined'), inventory)

    assert the_move(killed).get('failed') or the_move(killed).get('unreachable')
    assert not hv2.exists(name) and hv3.exists(name) and not running(hv3, name)
    assert record_on(ansible, inventory, 'hv3', name)['task_state'] == 'moving'

    again = run_playbook(ansible, move_play([name], project), inventory)

    move = the_move(again)
    assert not move.get('failed'), move
    [instance] = move['instances']
    assert instance['move_resumed'] and instance['action'] == 'restored'
    assert not hv2.exists(name) and running(hv3, name) and os.path.exists(path)
    assert record_on(ansible, inventory, 'hv3', name)['vm_state'] == 'active'
