# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The state_dir's retention: finished tombstones after tombstone_retention, lock files of gone domains, the journal."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _retention as rt
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
from ansible_collections.deferred.libvirt.plugins.module_utils._record import parse_time

NOW = parse_time('2026-12-01T12:00:00Z')
DAY = 86400


@pytest.fixture
def state(tmp_path):
    return StateDir(str(tmp_path / 'state'))


def uid(n):
    return '%08x-0000-4000-8000-%012x' % (n, n)


def ago(days):
    return (NOW - datetime.timedelta(days=days)).strftime('%Y-%m-%dT%H:%M:%SZ')


def finished(state, n, days_ago, project='web', name=None):
    tomb = {'name': name or 'vm-%d' % n, 'uuid': uid(n), 'project': project, 'status': 'terminated',
            'cinder_checked': True, 'volumes_pending': [], 'terminated_at': ago(days_ago), 'finished_at': ago(days_ago)}
    return state.write_tombstone(tomb)


def pending(state, n, days_ago):
    tomb = {'name': 'vm-%d' % n, 'uuid': uid(n), 'project': 'web', 'status': 'undefined', 'cinder_checked': False,
            'terminated_at': ago(days_ago), 'volumes_pending': [{'id': 'vol-%d' % n, 'delete_on_termination': True}]}
    return state.write_tombstone(tomb)


OPTS = rt.RetentionOptions(tombstone_retention=90 * DAY, journal_rotate_size=None, journal_rotate_age=None,
                           journal_retention=None)


# -- options ------------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('value,expected', [(0, 0), (4096, 4096), ('512K', 524288), ('64M', 64 * 1024 ** 2),
                                            ('1g', 1024 ** 3), ('10MiB', 10 * 1024 ** 2), (None, None)])
def test_sizes_read_as_operators_write_them(value, expected):
    assert rt.parse_size(value, 'journal_rotate_size') == expected


@pytest.mark.parametrize('value', ['-1', 'lots', '1.5M', True, -5])
def test_a_size_that_cannot_be_read_names_the_option(value):
    with pytest.raises(rt.RetentionError) as err:
        rt.parse_size(value, 'journal_rotate_size')
    assert str(err.value).startswith('journal_rotate_size: ')


def test_options_come_from_the_module_parameters_and_null_means_never():
    opts = rt.RetentionOptions.from_params({'tombstone_retention': '30d', 'journal_rotate_size': '1M',
                                            'journal_rotate_age': None, 'journal_retention': 'never'})
    assert (opts.tombstone_retention, opts.journal_rotate_size, opts.journal_rotate_age, opts.journal_retention) == (
        30 * DAY, 1024 ** 2, None, None)
    with pytest.raises(rt.RetentionError) as err:
        rt.RetentionOptions.from_params(dict(tombstone_retention='-3d'))
    assert str(err.value).startswith('tombstone_retention: ')


# -- tombstones ---------------------------------------------------------------------------------------------------------

def test_finished_tombstones_older_than_the_retention_are_removed_and_journaled(state):
    finished(state, 1, 200)
    finished(state, 2, 91)
    finished(state, 3, 89)
    out = rt.prune(state, set(), OPTS, now=NOW, request_id='req-sweep')
    assert sorted(t['name'] for t in out['tombstones_removed']) == ['vm-1', 'vm-2']
    assert [t['name'] for t in state.tombstones_list()] == ['vm-3']
    purges = [e for e in state.read_events() if e['event_type'] == 'instance.purge']
    assert sorted((e['domain'], e['uuid'], e['request_id']) for e in purges) == [
        ('vm-1', uid(1), 'req-sweep'), ('vm-2', uid(2), 'req-sweep')]
    assert purges[0]['payload']['tombstone_retention'] == 90 * DAY
    assert state.find_tombstones('vm-1') == [] and state.read_tombstone(uid(1)) is None
    # The emptied days are gone from the index; the day still holding vm-3 stays.
    assert state.finished_days() == [ago(89)[:10]]


def test_a_tombstone_with_work_left_is_never_removed_whatever_its_age(state):
    pending(state, 1, 4000)
    out = rt.prune(state, set(), rt.RetentionOptions(tombstone_retention=0), now=NOW)
    assert out['tombstones_removed'] == []
    assert [t['uuid'] for t in state.pending_tombstones()] == [uid(1)]


def test_retention_counts_from_when_the_tombstone_finished(state):
    tomb = pending(state, 1, 400)
    tomb.update(status='terminated', cinder_checked=True, volumes_pending=[], finished_at=ago(10))
    state.write_tombstone(tomb)
    assert rt.prune(state, set(), OPTS, now=NOW)['tombstones_removed'] == []


def test_check_mode_lists_what_would_go_and_removes_nothing(state):
    finished(state, 1, 200)
    before = state.tombstones_list()
    out = rt.prune(state, set(), OPTS, now=NOW, check_mode=True)
    assert [t['uuid'] for t in out['tombstones_removed']] == [uid(1)]
    assert state.tombstones_list() == before
    assert state.read_events() == []


def test_a_project_sweep_removes_only_that_projects_tombstones(state):
    finished(state, 1, 200, project='web')
    finished(state, 2, 200, project='db')
    out = rt.prune(state, set(), OPTS, now=NOW, project='db')
    assert [t['uuid'] for t in out['tombstones_removed']] == [uid(2)]
    assert [t['uuid'] for t in state.tombstones_list()] == [uid(1)]


def test_a_tombstone_whose_lock_is_held_is_left_for_the_next_sweep(state):
    finished(state, 1, 200)
    with state.lock(uid(1), timeout=1):
        out = rt.prune(state, set(), OPTS, now=NOW)
    assert out['tombstones_removed'] == [] and state.read_tombstone(uid(1)) is not None
    assert [t['uuid'] for t in rt.prune(state, set(), OPTS, now=NOW)['tombstones_removed']] == [uid(1)]


def test_earlier_tombstones_of_a_reused_uuid_expire_too(state):
    finished(state, 1, 200, name='first')
    state.archive_tombstone(uid(1))
    finished(state, 1, 5, name='second')
    out = rt.prune(state, set(), OPTS, now=NOW)
    assert [(t['name'], t.get('history')) for t in out['tombstones_removed']] == [('first', True)]
    assert state.tombstone_history(uid(1)) == [] and state.read_tombstone(uid(1))['name'] == 'second'


def test_the_sweep_reads_only_the_days_past_the_retention(state, monkeypatch):
    for n in range(300):
        finished(state, n, 10 + n % 30)  # all within the retention, over 30 days
    finished(state, 1000, 120)
    reads = []
    real = StateDir._read_json
    monkeypatch.setattr(StateDir, '_read_json', lambda self, path, u: reads.append(path) or real(self, path, u))
    out = rt.prune(state, set(), OPTS, now=NOW)
    assert [t['uuid'] for t in out['tombstones_removed']] == [uid(1000)]
    assert len(reads) < 10, reads


# -- lock files ---------------------------------------------------------------------------------------------------------

def test_lock_files_of_gone_domains_without_pending_work_are_removed(state):
    for n in (1, 2, 3, 4):
        with state.lock(uid(n), timeout=1):
            pass
    pending(state, 3, 1)
    with state.lock(uid(4), timeout=1):
        out = rt.prune(state, {uid(1)}, OPTS, now=NOW)
    assert sorted(out['locks_removed']) == sorted(os.path.join(d, uid(2) + '.lock')
                                                  for d in (state.host_locks, state.locks))
    kept = sorted(e for e in os.listdir(state.locks) if e != 'journal.lock')
    assert kept == sorted('%s.lock' % uid(n) for n in (1, 3, 4))


def test_check_mode_removes_no_lock_file(state):
    with state.lock(uid(2), timeout=1):
        pass
    out = rt.prune(state, set(), OPTS, now=NOW, check_mode=True)
    assert len(out['locks_removed']) == 2
    assert os.path.exists(os.path.join(state.locks, uid(2) + '.lock'))


# -- the journal --------------------------------------------------------------------------------------------------------

def test_the_sweep_rotates_the_journal_and_drops_old_rotated_files(state):
    state.event('instance.update', 'req-1')
    with open(os.path.join(state.path, 'events-20250101T000000Z.jsonl'), 'w') as handle:
        handle.write('{}\n')
    out = rt.prune(state, set(), rt.RetentionOptions(tombstone_retention=None, journal_rotate_size=1,
                                                     journal_rotate_age=None, journal_retention=365 * DAY), now=NOW)
    assert out['journal_rotated'] == os.path.join(state.path, 'events-20261201T120000Z.jsonl')
    assert out['journal_removed'] == [os.path.join(state.path, 'events-20250101T000000Z.jsonl')]
    assert [os.path.basename(p) for p in state.journal_files()] == ['events-20261201T120000Z.jsonl']


def test_stale_temporary_files_of_a_killed_run_are_removed(state):
    path = os.path.join(state.temp, '.%s.json.0123456789ab.tmp' % uid(1))
    with open(path, 'w') as handle:
        handle.write('{"na')
    os.utime(path, (1, 1))
    fresh = os.path.join(state.temp, '.%s.json.ba9876543210.tmp' % uid(2))
    with open(fresh, 'w'):
        pass
    out = rt.prune(state, set(), OPTS, now=NOW)
    assert out['temp_files_removed'] == [path] and os.path.exists(fresh)


def test_a_sweep_leaves_the_lock_files_of_another_connection_in_the_shared_host_lock_dir(tmp_path, host_lock_dir):
    # One host lock directory, two connections (and here one state_dir): a sweep knows only its own domains.
    system = StateDir(str(tmp_path / 'shared'), connection='qemu:///system')
    test = StateDir(str(tmp_path / 'shared'), connection='test:///default')
    for n in (1, 2):
        with system.lock(uid(n), timeout=1):
            pass
    with test.lock(uid(3), timeout=1):
        pass
    dry = rt.prune(test, set(), OPTS, now=NOW, check_mode=True)
    out = rt.prune(test, set(), OPTS, now=NOW)
    expected = sorted(os.path.join(d, uid(3) + '.lock') for d in (host_lock_dir, test.locks))
    assert sorted(dry['locks_removed']) == expected
    assert sorted(out['locks_removed']) == expected
    assert sorted(os.listdir(host_lock_dir)) == sorted('%s.lock' % uid(n) for n in (1, 2))
    out = rt.prune(system, {uid(1)}, OPTS, now=NOW)
    assert sorted(out['locks_removed']) == sorted(os.path.join(d, uid(2) + '.lock') for d in (host_lock_dir, system.locks))
