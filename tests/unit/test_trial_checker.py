# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/trial/trial.py: the randomized fleet trial's checker finds each violation it claims to check, from snapshots
of what libvirt and the files showed, and lets the allowed cases pass (a checker that never fires proves nothing)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os
import random
import shlex
import sys
import time
import types

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'trial'))

import trial  # noqa: E402

NOW = datetime.datetime.now(datetime.timezone.utc)


class FakeFleet(object):
    def __init__(self, tmp_path):
        self.hosts = ['hv2', 'hv3']
        self.prefix = 'tr-'
        self.state_main = dict((h, str(tmp_path / h)) for h in self.hosts)


def stamp(seconds):
    return (NOW + datetime.timedelta(seconds=seconds)).strftime('%Y-%m-%dT%H:%M:%SZ')


def copy(files, vm_state='active', active=False, reclaim_in=None, task_state=None, name='tr-g0'):
    record = {'vm_state': vm_state, 'task_state': task_state, 'volumes': []}
    if reclaim_in is not None:
        record['reclaim_at'] = stamp(reclaim_in)
    return {'name': name, 'active': active, 'record': record, 'files': list(files)}


def snap(copies):
    return {'time': NOW, 'copies': copies}


@pytest.fixture
def checker(tmp_path):
    return trial.Trial(FakeFleet(tmp_path), 'p', random.Random(0), 0)


@pytest.fixture
def disk(tmp_path):
    path = tmp_path / 'disk.qcow2'
    path.write_bytes(b'x')
    return str(path)


SWEEP = {'op': 'sweep', 'variant': 'fleet'}


def test_a_missing_disk_of_a_live_domain_is_a_files_violation(checker, tmp_path):
    gone = str(tmp_path / 'gone.qcow2')
    state = snap({('hv2', 'u1'): copy([gone])})

    with pytest.raises(trial.Violation) as raised:
        checker.check(state, state, SWEEP, 0)

    assert raised.value.invariant == 'files'


def test_a_missing_backing_file_counts_as_a_missing_file_of_the_overlay(checker, disk, tmp_path):
    base = str(tmp_path / 'base.qcow2')
    checker.backing[disk] = base
    state = snap({('hv2', 'u1'): copy([disk])})

    with pytest.raises(trial.Violation) as raised:
        checker.check(state, state, SWEEP, 0)

    assert raised.value.invariant == 'files' and base in str(raised.value)


def test_the_missing_disk_of_an_expired_soft_deleted_sole_user_is_allowed_but_not_with_another_user(checker, tmp_path):
    gone = str(tmp_path / 'gone.qcow2')
    alone = snap({('hv2', 'u1'): copy([gone], 'soft_deleted', reclaim_in=-10)})
    checker.check(alone, alone, SWEEP, 0)

    shared = snap({('hv2', 'u1'): copy([gone], 'soft_deleted', reclaim_in=-10),
                   ('hv3', 'u1'): copy([gone], 'soft_deleted', reclaim_in=-10)})
    with pytest.raises(trial.Violation) as raised:
        checker.check(shared, shared, SWEEP, 0)
    assert raised.value.invariant == 'files'


def test_a_tpm_state_gone_while_its_host_defines_the_domain_is_a_files_violation_once_it_was_made(
        checker, disk, tmp_path):
    tpm = tmp_path / 'swtpm' / 'u1'

    def with_tpm(there, *args, **kw):
        item = copy([disk], *args, **kw)
        item.update(tpm=str(tpm), tpm_there=there)
        return item

    never_started = snap({('hv2', 'u1'): with_tpm(False)})
    checker.check(never_started, never_started, SWEEP, 0)  # libvirt makes it at the first start: nothing to lose yet
    made = snap({('hv2', 'u1'): with_tpm(True)})
    checker.check(made, made, SWEEP, 0)
    expired = snap({('hv2', 'u1'): with_tpm(False, 'soft_deleted', reclaim_in=-10)})
    checker.check(made, expired, SWEEP, 0)  # a sweep under way may take it with the domain
    checker.check(made, made, SWEEP, 0)

    gone = snap({('hv2', 'u1'): with_tpm(False)})
    with pytest.raises(trial.Violation) as raised:
        checker.check(made, gone, SWEEP, 0)
    assert raised.value.invariant == 'files' and 'TPM state' in str(raised.value) and str(tpm) in str(raised.value)

    # Moved to hv3 and never started there: nothing made there yet, whatever hv2 had.
    elsewhere = snap({('hv3', 'u1'): with_tpm(False)})
    checker.check(elsewhere, elsewhere, SWEEP, 0)


def test_two_running_copies_of_one_uuid_are_a_violation(checker, disk):
    state = snap({('hv2', 'u1'): copy([disk], active=True), ('hv3', 'u1'): copy([disk], active=True)})

    with pytest.raises(trial.Violation) as raised:
        checker.check(state, state, SWEEP, 0)

    assert raised.value.invariant == 'one_running'


def test_a_live_copy_gone_after_a_sweep_is_a_restored_violation(checker, disk):
    before = snap({('hv2', 'u1'): copy([disk], 'active')})

    with pytest.raises(trial.Violation) as raised:
        checker.check(before, snap({}), SWEEP, 0)

    assert raised.value.invariant == 'restored'


def test_a_soft_deleted_copy_gone_before_its_reclaim_at_is_reclaimed_early(checker, disk):
    before = snap({('hv2', 'u1'): copy([disk], 'soft_deleted', reclaim_in=3600)})

    with pytest.raises(trial.Violation) as raised:
        checker.check(before, snap({}), SWEEP, 0)

    assert raised.value.invariant == 'not_early'


def test_an_expired_copy_reclaimed_with_a_tombstone_passes_and_without_one_is_a_violation(checker, disk, tmp_path):
    before = snap({('hv2', 'u1'): copy([disk], 'soft_deleted', reclaim_in=-5)})
    with pytest.raises(trial.Violation) as raised:
        checker.check(before, snap({}), SWEEP, 0)
    assert raised.value.invariant == 'converges'

    tombstones = tmp_path / 'hv3' / 'tombstones' / 'finished'
    tombstones.mkdir(parents=True)
    (tombstones / 'u1.json').write_text('{}')
    checker.check(before, snap({}), SWEEP, 0)
    assert 'u1' in checker.terminated


def test_a_running_copy_whose_record_says_soft_deleted_and_idle_is_half_restored(checker, disk):
    state = snap({('hv2', 'u1'): copy([disk], 'soft_deleted', active=True, reclaim_in=60)})

    with pytest.raises(trial.Violation) as raised:
        checker.check(state, state, SWEEP, 0)

    assert raised.value.invariant == 'restored'


def test_an_interrupted_operation_that_leaves_its_task_state_has_not_converged(checker, disk):
    checker.guests[0] = {'name': 'tr-g0', 'uuid': 'u1', 'disk': disk, 'volumes': []}
    state = snap({('hv2', 'u1'): copy([disk], 'soft_deleted', reclaim_in=60, task_state='restoring')})

    with pytest.raises(trial.Violation) as raised:
        checker.check_converged({'op': 'restore', 'g': 0, 'host': 'hv2'}, state)

    assert raised.value.invariant == 'converges'


def test_shrinking_keeps_only_the_operations_that_reproduce_the_violation():
    ops = [{'op': 'create', 'g': i} for i in range(12)]

    def reproduces(candidate, deadline):  # the violation needs ops 3 and 8, in that order
        return [o['g'] for o in candidate if o['g'] in (3, 8)] == [3, 8]

    minimal, finished = trial.ddmin(ops, reproduces, float('inf'))

    assert finished and [o['g'] for o in minimal] == [3, 8]


def test_shrinking_stops_at_its_deadline_with_the_list_it_has():
    ops = [{'op': 'create', 'g': i} for i in range(6)]

    minimal, finished = trial.ddmin(ops, lambda candidate, deadline: True, 0)

    assert not finished and minimal == ops


def test_the_shrink_budget_holds_within_a_candidate_whose_replay_it_stops(monkeypatch):
    """A replay of hundreds of steps takes most of an hour: the shrink hands its deadline to each replay, and a replay
    the deadline stopped is no answer, so shrinking ends there with the list it had (never the unproven candidate)."""
    ops = [{'op': 'create', 'g': i} for i in range(8)]
    given = []

    def replay(args, ops=None, collections=None, workdir=None, quiet=False, ops_file=None, deadline=None):
        given.append(deadline)
        # Stopped by the deadline: every step ran but the last ones; no violation seen in the part that ran.
        return len(ops) - 3, None, ops[:-3], types.SimpleNamespace(stopped='5 of 8 steps: its time limit passed')
    monkeypatch.setattr(trial, 'run_trial', replay)
    began = time.monotonic()

    minimal, finished = trial.shrink(types.SimpleNamespace(), ops, None, None, 600, 'files')

    assert (minimal, finished) == (ops, False)
    assert len(given) == 1 and began + 600 <= given[0] <= time.monotonic() + 600


def test_every_fault_the_draw_makes_is_one_the_runner_knows_and_each_kind_is_drawn(tmp_path):
    # 3,000 draws over a fleet with guests in every state: each fault names a fail point of its operation (a pause for
    # an outage), and every kind of fault and every sweep variant is drawn, so no branch of the runner goes unused.
    fleet = FakeFleet(tmp_path)
    fleet.hosts = ['hv1', 'hv2', 'hv3']
    t = trial.Trial(fleet, 'p', random.Random(5), 1.0)
    t.guests = dict((i, {'name': 'tr-g%d' % i, 'uuid': 'u%d' % i, 'disk': '/x', 'volumes': []}) for i in range(4))
    copies = {('hv1', 'u0'): copy([], name='tr-g0', active=True), ('hv2', 'u1'): copy([], name='tr-g1', active=True),
              ('hv3', 'u2'): copy([], name='tr-g2', vm_state='soft_deleted', reclaim_in=5),
              ('hv2', 'u3'): copy([], name='tr-g3', vm_state='soft_deleted', reclaim_in=5)}
    kinds, variants, migrations, killed_sweeps, restarted_sweeps = set(), set(), set(), set(), set()
    live_pairs = set()
    for dummy in range(3000):
        op = t.draw(snap(copies))
        fault = op.get('fault') or {}
        kinds.update(k for k in fault if k != 'at')
        variants.add(op.get('variant'))
        if op['op'] == 'migrate':
            migrations.add('live' if op['live'] else 'offline')
            if op['live']:
                live_pairs.add((op['host'], op['target']))
        if 'kill' in fault:
            assert fault['kill'] in trial.FAILPOINTS[op['op']]
            if op['op'] == 'sweep':
                killed_sweeps.add((op['variant'], op['host'] if op['variant'] == 'limit' else None))
        if 'libvirtd_restart' in fault:
            assert fault['at'] in trial.FAILPOINTS[op['op']]
            if op['op'] == 'sweep':
                # One module pauses at the fail point: never in two overlapping runs, where both would.
                assert op['variant'] != 'overlap'
                restarted_sweeps.add((op['variant'], fault['libvirtd_restart']))
                if op['variant'] in ('limit', 'adhoc'):
                    assert fault['libvirtd_restart'] == op['host']
            else:
                assert fault['libvirtd_restart'] == (op['target'] if op['op'] == 'move' else op['host'])
        if 'cinder_down' in fault:
            assert fault['at'] in trial.CINDER_POINTS[op['op']]
            assert op['op'] != 'soft_delete' or op['interval'] == 0
    assert kinds == set(['kill', 'clock', 'ssh_refused', 'state_dir_full', 'libvirtd_restart', 'cinder_down'])
    assert variants >= set(['fleet', 'limit', 'adhoc', 'overlap', 'timer'])
    assert migrations == set(['live', 'offline'])
    # A live migration takes a guest from the host it runs on (g0 on hv1, g1 on hv2) to any other: onto and off
    # hv1, this machine's libvirtd, too.
    assert live_pairs == set([('hv1', 'hv2'), ('hv1', 'hv3'), ('hv2', 'hv1'), ('hv2', 'hv3')])
    # Kills and libvirtd restarts reach the modules of every host in every playbook sweep and in the timer's script.
    assert killed_sweeps == set([('adhoc', None), ('fleet', None), ('overlap', None), ('timer', None),
                                 ('limit', 'hv1'), ('limit', 'hv2'), ('limit', 'hv3')])
    assert restarted_sweeps == set((variant, host) for variant in ('adhoc', 'fleet', 'limit', 'timer')
                                   for host in ('hv1', 'hv2', 'hv3'))


def test_a_sweeps_kill_reaches_every_host_and_a_pause_only_the_restarted_one(tmp_path):
    fleet = FakeFleet(tmp_path)
    fleet.hosts = ['hv1', 'hv2', 'hv3']
    t = trial.Trial(fleet, 'p', random.Random(0), 0)

    kill = t.sweep_env({'op': 'sweep', 'variant': 'fleet', 'fault': {'kill': 'terminate.after_disks'}})
    pause = t.sweep_env({'op': 'sweep', 'variant': 'timer', 'fault': {'libvirtd_restart': 'hv3',
                                                                      'at': 'reclaim.before_lock'}})

    assert kill == dict((h, {'DEFERRED_LIBVIRT_FAILPOINT': 'terminate.after_disks'}) for h in fleet.hosts)
    assert pause == {'hv3': {'DEFERRED_LIBVIRT_FAILPOINT': 'reclaim.before_lock',
                             'DEFERRED_LIBVIRT_FAILPOINT_PAUSE': t.pause_file}}
    assert t.sweep_env({'op': 'sweep', 'variant': 'fleet'}) == {}


def test_the_fault_environment_reaches_a_remote_host_through_ssh_on_a_master_of_its_own(tmp_path):
    # SSH passes SetEnv only when it opens the master connection: a run with a fault uses a control path of its own,
    # and hv1 (the local connection) gets it from ansible-playbook's environment instead.
    fleet = object.__new__(trial.Fleet)
    fleet.hosts = ['hv1', 'hv2', 'hv3']
    fleet.vars = dict((h, {'ansible_connection': 'local' if h == 'hv1' else 'ssh'}) for h in fleet.hosts)
    fleet.cloud, fleet.workdir = 'c', str(tmp_path)
    env = {'DEFERRED_LIBVIRT_FAILPOINT': 'terminate.after_disks', 'DEFERRED_LIBVIRT_FAILPOINT_PAUSE': '/srv/p'}

    with open(fleet.inventory(None, {'hv1': env, 'hv2': env})) as handle:
        hosts = json.load(handle)['all']['children']['hypervisors']['hosts']
    with open(fleet.inventory()) as handle:
        plain = json.load(handle)['all']['children']['hypervisors']['hosts']

    args = shlex.split(hosts['hv2']['ansible_ssh_extra_args'])
    assert args[:2] == ['-o', 'SetEnv=DEFERRED_LIBVIRT_FAILPOINT=terminate.after_disks '
                              'DEFERRED_LIBVIRT_FAILPOINT_PAUSE=/srv/p']
    assert args[2] == '-o' and args[3].startswith('ControlPath=/tmp/dl-trial-') and args[3].endswith('-%C')
    assert 'ansible_ssh_extra_args' not in hosts['hv1'] and 'ansible_ssh_extra_args' not in hosts['hv3']
    assert not any('ansible_ssh_extra_args' in v for v in plain.values())


def test_a_settled_violation_says_what_every_hosts_tombstone_holds(tmp_path):
    # The clean-up removes the tombstones after the run: the violation's message is the only record of them.
    fleet = FakeFleet(tmp_path)
    pending = tmp_path / 'hv2' / 'tombstones' / 'pending'
    pending.mkdir(parents=True)
    (pending / 'u1.json').write_text(json.dumps({'uuid': 'u1', 'volumes_pending': [{'id': 'v1'}],
                                                 'volumes_held': 'the fleet index is incomplete'}))
    finished = tmp_path / 'hv3' / 'tombstones' / 'finished'
    finished.mkdir(parents=True)
    (finished / 'u1.json').write_text('{not json')

    text = trial.tombstones_text(fleet, 'u1')

    assert text.startswith('hv2 pending {"volumes_pending": [{"id": "v1"}], "volumes_held": "the fleet index is')
    assert 'hv3 finished unreadable' in text
    assert trial.tombstones_text(fleet, 'u2') == 'none'


def test_a_step_line_keeps_what_failed_and_why_of_a_long_message():
    """Seed 3's step 154 said only "restore failed; it stays soft-deleted ... and reclai": the reason, QEMU's
    "Failed to get "write" lock" on a disk a running guest held, was cut off. The line keeps both ends now."""
    msg = ('vm_restore failed for 1 of 1 domain(s): tr3-61db-g25: domain tr3-61db-g25: restore failed; it stays '
           'soft-deleted with deleted_at 2026-12-07T16:52:43Z and reclaim_at 2026-12-07T16:52:46Z: internal error: '
           'qemu unexpectedly closed the monitor:\n Failed to get "write" lock\nIs another process using the image '
           '[/srv/shared-images/tr3-61db-g23.qcow2]?')
    line = trial.one_line(msg)
    assert '\n' not in line and len(line) <= 250
    assert line.startswith('vm_restore failed for 1 of 1 domain(s): tr3-61db-g25')
    assert line.endswith('Is another process using the image [/srv/shared-images/tr3-61db-g23.qcow2]?')
    assert trial.one_line('refused:  already\ndefined on hv3') == 'refused: already defined on hv3'


@pytest.mark.parametrize('source, target, how', [
    ('hv1', 'hv2', ['virsh', '-c', 'qemu:///system', 'migrate', '--live', '--unsafe', '--persistent', 'tr-g0',
                    'qemu+unix:///system?socket=/hv2/libvirt-sock', '--migrateuri', 'tcp://127.0.0.2']),
    ('hv3', 'hv1', ['virsh', '-c', 'qemu+unix:///system?socket=/hv3/libvirt-sock', 'migrate', '--live', '--unsafe',
                    '--persistent', 'tr-g0', 'qemu:///system', '--migrateuri', 'tcp://127.0.0.1']),
    ('hv2', 'hv3', ['ssh', '-F', trial.SSH_CONFIG, 'hv2',
                    'virsh migrate --live --unsafe --persistent tr-g0 qemu+ssh://hv3/system']),
])
def test_a_live_migration_onto_or_off_hv1_is_driven_from_this_machine_with_both_uris(
        tmp_path, monkeypatch, source, target, how):
    # hv1 is this machine's libvirtd, which no sshd of the fleet fronts: virsh runs here with both hosts' URIs and
    # names the loopback address the target's QEMU listens on; between hv2 and hv3 virsh runs on the source.
    fleet = FakeFleet(tmp_path)
    fleet.hosts = ['hv1', 'hv2', 'hv3']
    fleet.uri = {'hv1': 'qemu:///system', 'hv2': 'qemu+unix:///system?socket=/hv2/libvirt-sock',
                 'hv3': 'qemu+unix:///system?socket=/hv3/libvirt-sock'}
    fleet.migration_address = {'hv1': '127.0.0.1', 'hv2': '127.0.0.2', 'hv3': '127.0.0.3'}
    t = trial.Trial(fleet, 'p', random.Random(0), 0)
    t.guests = {0: {'name': 'tr-g0', 'uuid': 'u0', 'disk': '/x', 'volumes': []}}
    ran = []
    monkeypatch.setattr(trial.subprocess, 'run', lambda command, **kw: ran.append(command) or types.SimpleNamespace(
        returncode=0, stdout='', stderr=''))
    other = types.SimpleNamespace(listAllDomains=lambda: [])
    dom = types.SimpleNamespace(UUIDString=lambda: 'u0')
    said = t.live_migrate({'g': 0, 'host': source, 'target': target, 'undefine_source': False}, dom, other)
    assert ran == [how]
    assert said == 'live-migrated to %s (source definition kept)' % target
