# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Races: two ansible-playbook processes started at the same moment against the same domain, 20 trials each.

Nothing is mocked or slowed down: both runs are real playbooks against the
real libvirtd, started together (in a random order, a few milliseconds
apart), so whichever takes the domain's lock first wins. Each trial must end
in exactly one of the outcomes the spec allows; the tally of which one won
goes into docs/reliability.md. Set DEFERRED_RELIABILITY_TRIALS to run more
or fewer.
"""

import collections
import os
import random

import pytest

import guests
import support
import trials

pytestmark = pytest.mark.slow_trials

TRIALS = int(os.environ.get('DEFERRED_RELIABILITY_TRIALS', '20'))


def _together(ansible, first, second, env=None):
    """Start both task lists as two ansible-playbook processes now, in a random order; returns both results."""
    runs = [(0, first), (1, second)]
    random.shuffle(runs)
    started = dict((i, support.Background(ansible, tasks, env=env)) for i, tasks in runs)
    return started[0].wait().task(0), started[1].wait().task(0)


def _one(result, uuid):
    found = [i for i in result.get('instances') or [] if i.get('uuid') == uuid]
    return found[0] if found else None


def _after(events, uuid, first_type, first_result, later_prefix):
    """Whether any event of ``later_prefix`` for ``uuid`` comes after a ``first_type`` event with ``first_result``."""
    mine = [e for e in events if e['uuid'] == uuid]
    marks = [i for i, e in enumerate(mine) if e['event_type'] == first_type and e.get('result') == first_result]
    return bool(marks) and any(e['event_type'].startswith(later_prefix) for e in mine[marks[0] + 1:])


def _cleanup(hypervisor, name):
    guests.destroy_all(hypervisor, name)


def test_restore_racing_reclaim_at_reclaim_at(ansible, make_guest, hypervisor, state_dir, project):
    tally = collections.Counter()
    with trials.case('races', 'vm_restore against vm_reclaim on a domain at its reclaim_at', trials=TRIALS,
                     order=10) as case:
        for n in range(TRIALS):
            name, uuid = make_guest('r%02d' % n, kind='bios', start=False)
            # reclaim_at is now: by the time either run reads it, it has passed.
            support.set_record(hypervisor.lookupByUUIDString(uuid), support.soft_deleted_record(project, reclaim_in=0))
            restore, sweep = _together(
                ansible,
                [{'name': 'restore', 'deferred.libvirt.vm_restore': dict(name=name, project=project, start_timeout=60),
                  'ignore_errors': True}],
                [{'name': 'reclaim', 'deferred.libvirt.vm_reclaim': dict(project=project)}])
            assert not sweep.get('failed'), sweep
            restored = _one(restore, uuid)
            reclaimed = uuid in [r['uuid'] for r in sweep['reclaimed']]
            restore_ok = restored is not None and not restored.get('failed') and restored.get('action') == 'restored'
            final = support.read_record(hypervisor, uuid)
            journal = support.events(state_dir)
            # Rule 4: a restored domain is never reclaimed afterwards.
            assert not _after(journal, uuid, 'instance.restore.end', 'success', 'instance.delete'), journal
            if restore_ok and not reclaimed:
                support.assert_consistent(hypervisor, state_dir, uuid, 'active')
                skipped = [s for s in sweep['skipped_domains'] if s['uuid'] == uuid]
                tally['restored; the sweep ' + ('skipped it' if skipped else 'never saw it due')] += 1
            elif reclaimed and not restore_ok:
                support.assert_consistent(hypervisor, state_dir, uuid, 'deleted')
                msg = restore.get('msg') or ''
                assert restore.get('failed') and name in msg, restore
                tally['reclaimed; the restore failed: %s' % _reason(msg, name)] += 1
            else:
                raise AssertionError('trial %d: not exactly one outcome: restore %s, reclaimed %s, domain %s'
                                     % (n, restored, reclaimed, final))
            _cleanup(hypervisor, name)
        case.details['tally'] = dict(tally)
        case.outcome = _outcome(tally)


def test_two_soft_deletes_of_the_same_domain(ansible, make_guest, hypervisor, state_dir, project):
    tally = collections.Counter()
    with trials.case('races', 'two vm_soft_delete runs of the same running domain', trials=TRIALS, order=20) as case:
        for n in range(TRIALS):
            name, uuid = make_guest('s%02d' % n, kind='bios')
            support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(project=project))
            task = [{'name': 'soft delete', 'ignore_errors': True, 'deferred.libvirt.vm_soft_delete': dict(
                name=name, project=project, shutdown_timeout=1, shutdown_retry_interval=1, reclaim_interval='1d')}]
            one, two = _together(ansible, task, task)
            results = [_one(one, uuid), _one(two, uuid)]
            assert all(r is not None and not r.get('failed') for r in results), results
            actions = sorted(r['action'] for r in results)
            # Exactly one did it; the other found it soft-deleted and kept its deleted_at (rule 3).
            assert actions == ['none', 'soft_deleted'], results
            winner = [r for r in results if r['action'] == 'soft_deleted'][0]
            loser = [r for r in results if r['action'] == 'none'][0]
            support.assert_consistent(hypervisor, state_dir, uuid, 'soft_deleted')
            record = support.read_record(hypervisor, uuid)['record']
            assert record['deleted_at'] == winner['deleted_at'] == loser['deleted_at'], (record, results)
            types = [e['event_type'] for e in support.events(state_dir) if e['uuid'] == uuid]
            assert types.count('instance.soft_delete.start') == 1 and types.count('instance.soft_delete.end') == 1
            tally['one soft-deleted it, the other was a no-op keeping deleted_at'] += 1
            _cleanup(hypervisor, name)
        case.details['tally'] = dict(tally)
        case.outcome = _outcome(tally)


def test_terminate_racing_restore(ansible, make_guest, hypervisor, state_dir, project):
    tally = collections.Counter()
    with trials.case('races', 'vm_terminate against vm_restore on a soft-deleted domain', trials=TRIALS,
                     order=30) as case:
        for n in range(TRIALS):
            name, uuid = make_guest('t%02d' % n, kind='bios', start=False)
            support.set_record(hypervisor.lookupByUUIDString(uuid), support.soft_deleted_record(project, reclaim_in=3600))
            restore, terminate = _together(
                ansible,
                [{'name': 'restore', 'deferred.libvirt.vm_restore': dict(name=name, project=project, start_timeout=60),
                  'ignore_errors': True}],
                [{'name': 'terminate', 'deferred.libvirt.vm_terminate': dict(name=name, project=project)}])
            assert not terminate.get('failed'), terminate
            assert _one(terminate, uuid)['action'] == 'terminated', terminate
            # Force delete always wins in the end: gone, with a finished tombstone, whatever the order.
            support.assert_consistent(hypervisor, state_dir, uuid, 'deleted')
            restored = _one(restore, uuid)
            journal = support.events(state_dir)
            assert not _after(journal, uuid, 'instance.delete.start', None, 'instance.restore'), journal
            if restored is not None and not restored.get('failed'):
                assert restored['action'] == 'restored', restored
                assert _after(journal, uuid, 'instance.restore.end', 'success', 'instance.delete.start'), journal
                tally['restored, then terminated'] += 1
            else:
                msg = restore.get('msg') or ''
                assert restore.get('failed') and name in msg, restore
                tally['terminated; the restore failed: %s' % _reason(msg, name)] += 1
            _cleanup(hypervisor, name)
        case.details['tally'] = dict(tally)
        case.outcome = _outcome(tally)


def _reason(msg, name):
    """The gist of a refusal, without the names and ids that differ between trials."""
    text = msg.replace(name, '<name>')
    for marker in ('no domain named', 'disappeared while the operation waited', 'is no longer soft-deleted',
                   'not allowed from vm_state', 'task deleting is in progress', 'task_state is'):
        if marker in text:
            return '"%s"' % marker
    return '"%s"' % text[:120]


def _outcome(tally):
    return '; '.join('%d x %s' % (count, what) for what, count in tally.most_common())
