# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The event journal: whole JSON lines, the actor, short writes, rotation while others append."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat
import subprocess
import sys
import textwrap
import time

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f'
OTHER = '3c0a2d4e-1b7f-4a55-9e0c-8d2f6b1a9e77'


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


# -- events -------------------------------------------------------------------------

def test_events_are_appended_as_json_lines_with_nova_names(tmp_path, monkeypatch):
    monkeypatch.setenv('DEFERRED_LIBVIRT_ACTOR', 'awx:alice')
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.soft_delete.start', 'req-1', domain='web01', uuid=UUID, project='web')
    state.event('instance.shutdown.start', 'req-1', domain='web01', uuid=UUID, project='web')
    state.event('instance.shutdown.end', 'req-1', domain='web01', uuid=UUID, project='web', result='success',
                clean_shutdown=True)
    state.event('instance.soft_delete.end', 'req-1', domain='web01', uuid=UUID, project='web', result='success')
    with open(state.events) as handle:
        lines = [json.loads(line) for line in handle]
    assert [e['event_type'] for e in lines] == ['instance.soft_delete.start', 'instance.shutdown.start',
                                                'instance.shutdown.end', 'instance.soft_delete.end']
    end = lines[-1]
    assert end['request_id'] == 'req-1'
    assert end['actor'] == 'awx:alice'
    assert (end['domain'], end['uuid'], end['project'], end['result']) == ('web01', UUID, 'web', 'success')
    assert end['timestamp'].endswith('Z')
    assert lines[2]['payload'] == {'clean_shutdown': True}


def test_an_event_that_cannot_be_written_is_a_state_dir_error(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    os.mkdir(state.events)  # a directory where the journal file should be
    with pytest.raises(StateDirError) as err:
        state.event('instance.reclaim', 'req-1', domain='web01')
    assert str(err.value).startswith('cannot write the event journal %s: ' % state.events)


def test_events_of_one_request_can_be_read_back(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.restore.start', 'req-1', domain='web01')
    state.event('instance.delete.start', 'req-2', domain='web02')
    state.event('instance.restore.end', 'req-1', domain='web01', result='success')
    assert [e['event_type'] for e in state.read_events('req-1')] == ['instance.restore.start', 'instance.restore.end']


def test_the_actor_defaults_to_the_os_user(tmp_path, monkeypatch):
    monkeypatch.delenv('DEFERRED_LIBVIRT_ACTOR', raising=False)
    state = StateDir(str(tmp_path / 'state'))
    event = state.event('instance.reclaim', 'req-1', domain='web01')
    import pwd
    assert event['actor'] == pwd.getpwuid(os.geteuid()).pw_name


# -- issue 12 #12: a journal line is written whole or the operation fails ----------------------------------------------

def _short_writes(monkeypatch, then_fail=True):
    real = os.write
    calls = []

    def write(fd, data):
        calls.append(len(data))
        if len(calls) == 1 and len(data) > 1:
            return real(fd, bytes(data[:len(data) // 2]))
        if then_fail:
            raise OSError(28, 'No space left on device')
        return real(fd, data)
    monkeypatch.setattr(os, 'write', write)
    return calls


def test_a_journal_line_is_written_whole_or_the_operation_fails(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.soft_delete.start', 'req-1', domain='web01')
    before = open(state.events, 'rb').read()
    with state.lock(UUID, timeout=1):
        pass  # the lock file's pid is written with os.write too: take it before the writes go short
    _short_writes(monkeypatch)
    with pytest.raises(StateDirError) as err:
        state.event('instance.soft_delete.end', 'req-1', domain='web01', result='success')
    monkeypatch.undo()
    assert 'No space left on device' in str(err.value)
    assert open(state.events, 'rb').read() == before
    state.event('instance.reclaim', 'req-2')
    assert [e['event_type'] for e in state.read_events()] == ['instance.soft_delete.start', 'instance.reclaim']


def test_a_short_journal_write_is_carried_on_to_the_whole_line(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    with state.lock(UUID, timeout=1):
        pass
    calls = _short_writes(monkeypatch, then_fail=False)
    state.event('instance.reclaim', 'req-1', domain='web01')
    monkeypatch.undo()
    assert len(calls) >= 2
    assert [e['domain'] for e in state.read_events()] == ['web01']


def test_reading_the_journal_skips_a_line_being_written_and_lines_that_are_not_events(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.reclaim', 'req-1')
    with open(state.events, 'ab') as handle:
        handle.write(b'not json\n[1, 2]\n{"event_type": "instance.rest')
    assert [e['event_type'] for e in state.read_events()] == ['instance.reclaim']


# -- journal rotation -------------------------------------------------------------------------------------------------

def _now(text='2026-12-01T12:00:00Z'):
    from ansible_collections.deferred.libvirt.plugins.module_utils._record import parse_time
    return parse_time(text)


def test_the_journal_is_rotated_by_size_into_a_file_the_same_tools_read(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    for n in range(5):
        state.event('instance.update', 'req-%d' % n)
    assert state.rotate_journal(max_size=10 ** 6, now=_now())['rotated'] is None
    out = state.rotate_journal(max_size=100, now=_now())
    assert out['rotated'] == os.path.join(state.path, 'events-20261201T120000Z.jsonl')
    assert not os.path.exists(state.events)
    assert mode(out['rotated']) == 0o600
    state.event('instance.update', 'req-5')
    assert [e['request_id'] for e in state.read_events(rotated=True)] == ['req-%d' % n for n in range(6)]
    assert [e['request_id'] for e in state.read_events()] == ['req-5']
    with open(out['rotated']) as handle:
        assert [json.loads(line)['request_id'] for line in handle] == ['req-%d' % n for n in range(5)]
    again = state.rotate_journal(max_size=1, now=_now())
    assert again['rotated'] == os.path.join(state.path, 'events-20261201T120000Z-1.jsonl')
    assert [os.path.basename(p) for p in state.journal_files()] == [
        'events-20261201T120000Z.jsonl', 'events-20261201T120000Z-1.jsonl']


def test_the_journal_is_rotated_by_the_age_of_its_first_event(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.update', 'req-1')
    first = state.read_events()[0]['timestamp']
    assert state.rotate_journal(max_age=3600, now=_now(first))['rotated'] is None
    later = _now(first) + __import__('datetime').timedelta(seconds=3600)
    assert state.rotate_journal(max_age=3600, now=later)['rotated']


def test_rotated_journal_files_past_the_retention_are_removed(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    for stamp in ('20250101T000000Z', '20261101T000000Z'):
        with open(os.path.join(state.path, 'events-%s.jsonl' % stamp), 'w') as handle:
            handle.write('{}\n')
    out = state.rotate_journal(retention=90 * 86400, now=_now(), check_mode=True)
    assert [os.path.basename(p) for p in out['removed']] == ['events-20250101T000000Z.jsonl']
    assert len(state.journal_files()) == 2
    state.rotate_journal(retention=90 * 86400, now=_now())
    assert [os.path.basename(p) for p in state.journal_files()] == ['events-20261101T000000Z.jsonl']


APPENDER = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[2])
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
    import os
    state = StateDir(sys.argv[1], host_lock_dir=sys.argv[4])
    # At least COUNT events, then on until the test has rotated the journal often enough (its stop file).
    n = 0
    while n < int(sys.argv[5]) or not os.path.exists(sys.argv[6]):
        state.event('instance.update', sys.argv[3], domain='d-%d' % n, padding='x' * (n % 700))
        n += 1
    print(n)
''')


def test_the_journal_rotated_while_two_processes_append_loses_and_splits_no_line(
        tmp_path, collections_path, host_lock_dir):
    state = StateDir(str(tmp_path / 'state'))
    script = tmp_path / 'append.py'
    script.write_text(APPENDER)
    count, stop = 400, tmp_path / 'stop'
    # pipe: each writer prints one number, its count of appends, at its end
    procs = [subprocess.Popen([sys.executable, str(script), state.path, collections_path, 'req-%s' % who, host_lock_dir,
                               str(count), str(stop)], stdout=subprocess.PIPE) for who in ('a', 'b')]
    import datetime
    # The writers go on until the journal has been rotated under them three times (however fast or loaded the
    # machine), or a minute has passed.
    rotations, tick, deadline = 0, _now(), time.monotonic() + 60
    while any(p.poll() is None for p in procs):
        tick += datetime.timedelta(seconds=1)
        if state.rotate_journal(max_size=1, now=tick)['rotated']:
            rotations += 1
        if rotations >= 3 or time.monotonic() > deadline:
            stop.touch()
    written = dict(('req-%s' % who, int(p.communicate()[0])) for who, p in zip(('a', 'b'), procs))
    assert [p.returncode for p in procs] == [0, 0]
    assert rotations >= 3, 'the journal was rotated %d times in a minute of appends' % rotations
    lines = []
    for path in state.journal_files():
        with open(path, 'rb') as handle:
            lines += handle.read().split(b'\n')[:-1]
    events = [json.loads(line) for line in lines]  # every line whole
    for who, n_written in written.items():
        assert n_written >= count
        assert [e['domain'] for e in events if e['request_id'] == who] == ['d-%d' % n for n in range(n_written)]


SWEEPER = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[2])
    from ansible_collections.deferred.libvirt.plugins.module_utils._record import parse_time
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
    state = StateDir(sys.argv[1], host_lock_dir=sys.argv[4])
    now = parse_time('2026-12-01T12:00:00Z')  # every sweep in the same second
    for n in range(int(sys.argv[5])):
        state.event('instance.update', sys.argv[3], domain='d-%d' % n)
        state.rotate_journal(max_size=1, now=now)
''')


def test_sweeps_rotating_one_state_dir_in_the_same_second_never_overwrite_a_rotated_journal(
        tmp_path, collections_path, host_lock_dir):
    """Issue 24 item 4: the rotated name was picked outside the journal lock and os.rename replaced an existing
    file, so two sweeps of one shared state_dir in the same second lost every earlier event."""
    state = StateDir(str(tmp_path / 'state'))
    script = tmp_path / 'sweep.py'
    script.write_text(SWEEPER)
    count, sweepers = 150, ('a', 'b', 'c', 'd')
    # pipe: each writer prints one number, its count of appends, at its end
    procs = [subprocess.Popen([sys.executable, str(script), state.path, collections_path, 'req-%s' % who, host_lock_dir,
                               str(count)]) for who in sweepers]
    assert [p.wait() for p in procs] == [0] * len(sweepers)
    files = state.journal_files()
    assert len(files) > 1
    assert all(os.path.basename(p).startswith('events-20261201T120000Z') for p in files if p != state.events)
    events = []
    for path in files:
        with open(path, 'rb') as handle:
            events += [json.loads(line) for line in handle.read().split(b'\n')[:-1]]
    for who in sweepers:
        assert [e['domain'] for e in events if e['request_id'] == 'req-%s' % who] == ['d-%d' % n for n in range(count)]


def test_a_rotation_never_replaces_a_rotated_journal_that_already_has_its_name(tmp_path):
    """A rotated file made by another sweep (or an earlier version) under the name this rotation would pick is kept."""
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.update', 'req-new')
    taken = os.path.join(state.path, 'events-20261201T120000Z.jsonl')
    with open(taken, 'w') as handle:
        handle.write(json.dumps({'request_id': 'req-old'}) + '\n')
    out = state.rotate_journal(max_size=1, now=_now())
    assert out['rotated'] == os.path.join(state.path, 'events-20261201T120000Z-1.jsonl')
    assert [e['request_id'] for e in state.read_events(rotated=True)] == ['req-old', 'req-new']
