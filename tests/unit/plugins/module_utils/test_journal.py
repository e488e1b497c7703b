# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's state_dir: refusing unsafe directories, per-domain locks, the event journal and tombstones."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import shutil
import stat
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _journal
from ansible_collections.deferred.libvirt.plugins.module_utils._journal import LockTimeout, StateDir, StateDirError

UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f'
OTHER = '3c0a2d4e-1b7f-4a55-9e0c-8d2f6b1a9e77'


@pytest.fixture(autouse=True)
def host_locks(tmp_path, monkeypatch):
    """Every StateDir of these tests uses a host-wide lock directory of its own, not the real /run/lock one."""
    path = str(tmp_path / 'host-locks')
    monkeypatch.setattr(_journal, 'default_host_lock_dir', lambda: path)
    return path


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


# -- the directory ----------------------------------------------------------------

def test_state_dir_is_created_private(tmp_path):
    state = StateDir(str(tmp_path / 'var' / 'deferred-libvirt'))
    assert mode(state.path) == 0o700
    assert mode(state.locks) == 0o700
    assert mode(state.tombstones) == 0o700
    for sub in (state.pending, state.finished, state.history, state.by_day, state.names, state.temp):
        assert mode(sub) == 0o700, sub


def test_state_dir_files_are_private(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.soft_delete.start', 'req-1', domain='web01', uuid=UUID)
    with state.lock(UUID, name='web01'):
        pass
    state.write_tombstone({'name': 'web01', 'uuid': UUID})
    assert mode(state.events) == 0o600
    assert mode(os.path.join(state.locks, UUID + '.lock')) == 0o600
    assert mode(os.path.join(state.host_locks, UUID + '.lock')) == 0o600
    assert mode(os.path.join(state.pending, UUID + '.json')) == 0o600
    assert mode(state.host_locks) == 0o700


def test_state_dir_leaves_no_write_probe_behind(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    assert sorted(os.listdir(state.path)) == ['locks', 'tombstones']


def test_an_existing_state_dir_is_used_as_it_is(tmp_path):
    first = StateDir(str(tmp_path / 'state'))
    first.event('instance.reclaim', 'req-1', domain='web01')
    second = StateDir(str(tmp_path / 'state'))
    assert [e['event_type'] for e in second.read_events()] == ['instance.reclaim']


def test_a_symlinked_state_dir_is_refused(tmp_path):
    real = tmp_path / 'real'
    real.mkdir(mode=0o700)
    link = tmp_path / 'state'
    link.symlink_to(real)
    with pytest.raises(StateDirError) as err:
        StateDir(str(link))
    assert str(err.value) == 'state_dir %s is a symbolic link; refusing to use it' % link
    assert os.listdir(str(real)) == []


def test_a_symlinked_locks_dir_is_refused(tmp_path):
    state = tmp_path / 'state'
    state.mkdir(mode=0o700)
    (tmp_path / 'elsewhere').mkdir()
    (state / 'locks').symlink_to(tmp_path / 'elsewhere')
    with pytest.raises(StateDirError) as err:
        StateDir(str(state))
    assert 'is a symbolic link' in str(err.value)


def test_a_state_dir_owned_by_another_user_is_refused(tmp_path):
    # The test bed runs as root (docs/testing.md): without root this cannot be tried, which is a failure, not a skip.
    assert os.geteuid() == 0, 'giving a directory to another uid needs root, as the test bed runs'
    state = tmp_path / 'state'
    state.mkdir(mode=0o700)
    os.chown(str(state), 4242, 4242)
    with pytest.raises(StateDirError) as err:
        StateDir(str(state))
    assert str(err.value) == ('state_dir %s is owned by uid 4242, not by the user running the module (uid 0)' % state)
    assert os.listdir(str(state)) == []


def test_a_file_where_the_state_dir_should_be_is_refused(tmp_path):
    (tmp_path / 'state').write_text('not a directory')
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'))
    assert str(err.value) == 'state_dir %s is not a directory' % (tmp_path / 'state')


def test_a_state_dir_under_a_file_is_refused(tmp_path):
    (tmp_path / 'file').write_text('x')
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'file' / 'state'))
    assert str(err.value) == 'state_dir %s cannot be used: Not a directory' % (tmp_path / 'file' / 'state')


READONLY_PROBE = textwrap.dedent('''
    import sys
    sys.path.insert(0, sys.argv[2])
    from ansible_collections.deferred.libvirt.plugins.module_utils._journal import StateDir, StateDirError
    try:
        StateDir(sys.argv[1])
    except StateDirError as exc:
        print(exc)
        sys.exit(3)
''')


def test_a_read_only_state_dir_is_refused(tmp_path, collections_path):
    state = tmp_path / 'state'
    state.mkdir(mode=0o700)
    if os.geteuid() != 0:
        state.chmod(0o500)
        try:
            with pytest.raises(StateDirError) as err:
                StateDir(str(state))
        finally:
            state.chmod(0o700)
        assert str(err.value) == 'state_dir %s cannot be used: Permission denied' % state
        return
    # Root writes through any mode: mount a read-only tmpfs there, in a mount namespace of its own
    # so nothing outlives the check.
    unshare, mount = shutil.which('unshare'), shutil.which('mount')
    if not unshare or not mount:
        pytest.fail('as root a read-only directory needs a read-only mount: unshare/mount not installed', pytrace=False)
    script = tmp_path / 'probe.py'
    script.write_text(READONLY_PROBE)
    proc = subprocess.run([unshare, '--mount', '--propagation', 'private', 'sh', '-c',
                           'mount -t tmpfs -o ro,size=1m,mode=0700 deferred-ro "$1" || exit 99; shift; exec "$@"', 'sh',
                           str(state), sys.executable, str(script), str(state), collections_path],
                          capture_output=True, text=True, timeout=60, check=False)
    if proc.returncode == 99:
        pytest.fail('as root a read-only directory needs a read-only mount, not permitted here: %s' % proc.stderr.strip(),
                    pytrace=False)
    assert proc.returncode == 3, proc.stdout + proc.stderr
    assert proc.stdout.strip() == 'state_dir %s cannot be used: Read-only file system' % state


def test_opening_without_create_changes_nothing(tmp_path):
    state = StateDir(str(tmp_path / 'state'), create=False)
    assert not os.path.exists(state.path)
    assert state.read_events() == []
    assert state.tombstones_list() == []
    assert state.read_tombstone(UUID) is None


# -- locks --------------------------------------------------------------------------

HOLDER = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from ansible_collections.deferred.libvirt.plugins.module_utils._journal import StateDir
    with StateDir(sys.argv[1], host_lock_dir=sys.argv[4]).lock(sys.argv[3], name='web01'):
        print('held', flush=True)
        sys.stdin.read()
''')


@pytest.fixture
def lock_holder(tmp_path, collections_path, host_locks):
    """Another process holding the lock of UUID until the test lets it go."""
    script = tmp_path / 'holder.py'
    script.write_text(HOLDER)
    state = str(tmp_path / 'state')
    StateDir(state)
    proc = subprocess.Popen([sys.executable, str(script), state, collections_path, UUID, host_locks],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout.readline().strip() == 'held'
        yield state, proc
    finally:
        if proc.poll() is None:
            proc.stdin.close()
            proc.wait(timeout=10)


def test_a_lock_held_by_another_process_times_out_naming_the_domain(lock_holder):
    state, _proc = lock_holder
    with pytest.raises(LockTimeout) as err:
        with StateDir(state).lock(UUID, timeout=0.3, name='web01'):
            pytest.fail('took a lock another process holds')
    assert str(err.value).startswith('domain web01: another operation has held its lock for more than 0.3s')


def test_a_lock_is_taken_once_the_other_process_lets_go(lock_holder):
    state, proc = lock_holder
    proc.stdin.close()
    proc.wait(timeout=10)
    with StateDir(state).lock(UUID, timeout=2, name='web01'):
        pass


def test_locks_of_different_domains_do_not_block_each_other(lock_holder):
    state, _proc = lock_holder
    with StateDir(state).lock(OTHER, timeout=0.3, name='web02'):
        pass


def test_a_lock_is_released_when_the_block_ends(tmp_path, collections_path, host_locks):
    state = StateDir(str(tmp_path / 'state'))
    with state.lock(UUID, name='web01'):
        pass
    script = tmp_path / 'taker.py'
    script.write_text(textwrap.dedent('''
        import sys
        sys.path.insert(0, sys.argv[2])
        from ansible_collections.deferred.libvirt.plugins.module_utils._journal import StateDir
        with StateDir(sys.argv[1], host_lock_dir=sys.argv[4]).lock(sys.argv[3], timeout=0.5):
            print('taken')
    '''))
    out = subprocess.run([sys.executable, str(script), state.path, collections_path, UUID, host_locks],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == 'taken'


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


# -- issue 12 #10: directories others can write to are refused ------------------------------------------------------------

@pytest.mark.parametrize('sub,bits,word', [
    ('', 0o770, 'group-writable (mode 0770)'),
    ('', 0o707, 'world-writable (mode 0707)'),
    ('', 0o1777, 'group- and world-writable (mode 1777)'),
    ('locks', 0o730, 'group-writable (mode 0730)'),
    ('tombstones', 0o703, 'world-writable (mode 0703)'),
    ('tombstones/pending', 0o777, 'group- and world-writable (mode 0777)'),
])
def test_a_state_dir_others_can_write_to_is_refused_naming_path_and_mode(tmp_path, sub, bits, word):
    StateDir(str(tmp_path / 'state'))
    path = os.path.join(str(tmp_path / 'state'), sub) if sub else str(tmp_path / 'state')
    os.chmod(path, bits)
    before = sorted(os.listdir(str(tmp_path / 'state')))
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'))
    assert ('%s is %s' % (path.rstrip('/'), word)) in str(err.value), str(err.value)
    assert 'chmod 0700 %s' % path.rstrip('/') in str(err.value)
    assert sorted(os.listdir(str(tmp_path / 'state'))) == before


def test_a_world_writable_state_dir_is_refused_by_read_only_runs_too(tmp_path):
    StateDir(str(tmp_path / 'state'))
    os.chmod(str(tmp_path / 'state'), 0o777)
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'), create=False)
    assert 'world-writable (mode 0777)' in str(err.value)


def test_a_host_lock_dir_others_can_write_to_is_refused(tmp_path, host_locks):
    os.mkdir(host_locks, 0o700)
    os.chmod(host_locks, 0o777)
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'))
    assert str(err.value).startswith('host lock directory %s is group- and world-writable (mode 0777)' % host_locks)


def test_a_symlinked_host_lock_dir_is_refused(tmp_path, host_locks):
    (tmp_path / 'elsewhere').mkdir(mode=0o700)
    os.symlink(str(tmp_path / 'elsewhere'), host_locks)
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'))
    assert 'host lock directory %s is a symbolic link' % host_locks in str(err.value)


def test_a_journal_others_can_write_to_is_refused(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.reclaim', 'req-1')
    os.chmod(state.events, 0o622)
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'))
    assert 'event journal %s is group- and world-writable (mode 0622)' % state.events in str(err.value)


# -- issue 12 #11: probe and temporary files never follow a planted link ----------------------------------------------

def test_a_link_planted_at_the_write_probe_is_never_followed(tmp_path, monkeypatch):
    StateDir(str(tmp_path / 'state'))
    canary = tmp_path / 'canary'
    canary.write_text('precious\n')
    monkeypatch.setattr(_journal.os, 'urandom', lambda n: b'\x01' * n)
    probe = tmp_path / 'state' / ('.write-check-%d-%s' % (os.getpid(), '01' * 6))
    os.symlink(str(canary), str(probe))
    with pytest.raises(StateDirError):
        StateDir(str(tmp_path / 'state'))
    assert canary.read_text() == 'precious\n'
    os.unlink(str(probe))
    os.link(str(canary), str(probe))  # a hard link: O_TRUNC without O_EXCL would empty the canary
    with pytest.raises(StateDirError):
        StateDir(str(tmp_path / 'state'))
    assert canary.read_text() == 'precious\n'


def test_a_link_planted_at_a_tombstone_temp_name_is_never_written_through(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    canary = tmp_path / 'canary'
    canary.write_text('precious\n')
    # The name earlier versions used, and the name this one would use if an attacker could guess its random part.
    os.link(str(canary), os.path.join(state.pending, UUID + '.json.tmp'))
    state.write_tombstone(dict(TOMBSTONE))
    assert canary.read_text() == 'precious\n'
    monkeypatch.setattr(_journal.os, 'urandom', lambda n: b'\x02' * n)
    os.symlink(str(canary), os.path.join(state.temp, '.%s.json.%s.tmp' % (UUID, '02' * 6)))
    with pytest.raises(StateDirError):
        state.write_tombstone(dict(TOMBSTONE))
    assert canary.read_text() == 'precious\n'
    assert state.read_tombstone(UUID)['name'] == 'web01'


def test_a_hard_linked_lock_file_is_refused(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    canary = tmp_path / 'canary'
    canary.write_text('precious\n')
    os.link(str(canary), os.path.join(state.locks, UUID + '.lock'))
    with pytest.raises(StateDirError) as err:
        with state.lock(UUID, timeout=1):
            pytest.fail('locked through a hard link')
    assert 'has 2 hard links' in str(err.value)
    assert canary.read_text() == 'precious\n'


@pytest.mark.parametrize('bad', ['../../etc/passwd', 'web01', '', None, UUID.upper() + '/'])
def test_nothing_but_a_uuid_becomes_a_lock_or_tombstone_path(tmp_path, bad):
    state = StateDir(str(tmp_path / 'state'))
    with pytest.raises(StateDirError):
        with state.lock(bad, timeout=1):
            pass
    with pytest.raises(StateDirError):
        state.write_tombstone({'name': 'web01', 'uuid': bad})
    with pytest.raises(StateDirError):
        state.read_tombstone(bad)
    assert sorted(os.listdir(state.tombstones)) == ['by-day', 'finished', 'history', 'names', 'pending', 'tmp']


# -- issue 12 #13: the per-domain lock does not depend on the state_dir ------------------------------------------------

def test_callers_with_different_state_dirs_serialise_on_one_domain(lock_holder, tmp_path):
    dummy_state, _proc = lock_holder
    other = StateDir(str(tmp_path / 'another-state-dir'))
    with pytest.raises(LockTimeout) as err:
        with other.lock(UUID, timeout=0.3, name='web01'):
            pytest.fail('two state_dirs let two operations hold one domain')
    assert str(err.value).startswith('domain web01: another operation has held its lock')
    assert other.host_locks in str(err.value)


def test_a_lock_file_removed_while_a_run_waits_for_it_is_taken_again(tmp_path):
    import fcntl
    import threading
    state = StateDir(str(tmp_path / 'state'))
    path = os.path.join(state.host_locks, UUID + '.lock')
    holder = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    fcntl.flock(holder, fcntl.LOCK_EX)
    got = {}

    def waiter():
        with state.lock(UUID, timeout=10, name='web01'):
            got['inode'] = os.stat(path).st_ino
            got['probe'] = _try_flock(path)
    thread = threading.Thread(target=waiter)
    thread.start()
    import time
    time.sleep(0.3)  # the waiter has opened the old file and polls its flock
    old_inode = os.fstat(holder).st_ino
    os.unlink(path)  # what the retention sweep does, under the lock
    os.close(holder)
    thread.join(10)
    assert got, 'the waiter never took the lock'
    # It holds the file at the path now, not the removed one: a third run is kept out.
    assert got['probe'] is False
    assert os.path.exists(path) and (got['inode'] != old_inode or os.stat(path).st_ino == got['inode'])


def _try_flock(path):
    import fcntl
    fd = os.open(path, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except OSError:
        return False
    finally:
        os.close(fd)


def test_lock_files_of_gone_domains_are_removed_unless_held_or_kept(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    gone, live, held = UUID, OTHER, 'aaaaaaaa-bbbb-4ccc-8ddd-eeeeeeeeeeee'
    for uuid in (gone, live, held):
        with state.lock(uuid, timeout=1):
            pass
    with open(os.path.join(state.locks, 'not-a-uuid.lock'), 'w'):
        pass
    state.event('instance.reclaim', 'req-1')
    with state.lock(held, timeout=1):
        removed = state.remove_lock_files(keep={live})
    assert sorted(removed) == sorted([os.path.join(state.host_locks, gone + '.lock'),
                                      os.path.join(state.locks, gone + '.lock')])
    assert sorted(os.listdir(state.locks)) == sorted(['%s.lock' % live, '%s.lock' % held, 'journal.lock',
                                                      'not-a-uuid.lock'])
    assert sorted(os.listdir(state.host_locks)) == sorted(['%s.lock' % live, '%s.lock' % held])


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
    monkeypatch.setattr(_journal.os, 'write', write)
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
    from ansible_collections.deferred.libvirt.plugins.module_utils._journal import StateDir
    state = StateDir(sys.argv[1], host_lock_dir=sys.argv[4])
    for n in range(int(sys.argv[5])):
        state.event('instance.update', sys.argv[3], domain='d-%d' % n, padding='x' * (n % 700))
''')


def test_the_journal_rotated_while_two_processes_append_loses_and_splits_no_line(
        tmp_path, collections_path, host_locks):
    state = StateDir(str(tmp_path / 'state'))
    script = tmp_path / 'append.py'
    script.write_text(APPENDER)
    count = 400
    procs = [subprocess.Popen([sys.executable, str(script), state.path, collections_path, 'req-%s' % who, host_locks,
                               str(count)]) for who in ('a', 'b')]
    import datetime
    rotations, tick = 0, _now()
    while any(p.poll() is None for p in procs):
        tick += datetime.timedelta(seconds=1)
        if state.rotate_journal(max_size=1, now=tick)['rotated']:
            rotations += 1
    assert [p.wait() for p in procs] == [0, 0]
    assert rotations >= 2
    lines = []
    for path in state.journal_files():
        with open(path, 'rb') as handle:
            lines += handle.read().split(b'\n')[:-1]
    events = [json.loads(line) for line in lines]  # every line whole
    for who in ('a', 'b'):
        assert [e['domain'] for e in events if e['request_id'] == 'req-%s' % who] == ['d-%d' % n for n in range(count)]


# -- tombstones ---------------------------------------------------------------------------------------------------------

TOMBSTONE = {
    'name': 'web01', 'uuid': UUID, 'project': 'web', 'terminated_at': '2024-05-09T00:00:00Z',
    'volumes_pending': [{'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'delete_on_termination': True,
                         'error': 'Cinder is not configured for this run (no cloud or auth)'}],
}
FINISHED = {'name': 'web02', 'uuid': OTHER, 'project': 'web', 'status': 'terminated', 'cinder_checked': True,
            'terminated_at': '2026-11-30T10:00:00Z', 'volumes_pending': []}


def test_a_tombstone_reads_back_as_written(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    tomb = dict(TOMBSTONE)
    state.write_tombstone(tomb)
    assert tomb['revision'] == 1
    assert state.read_tombstone(UUID) == tomb
    assert state.tombstones_list() == [tomb]
    assert state.pending_tombstones() == [tomb]


def test_a_tombstone_with_work_left_is_pending_and_a_finished_one_is_indexed(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone(dict(TOMBSTONE))
    done = dict(FINISHED)
    state.write_tombstone(done)
    assert os.listdir(state.pending) == [UUID + '.json']
    assert os.listdir(state.finished) == [OTHER + '.json']
    assert done['finished_at']
    day = done['finished_at'][:10]
    assert state.finished_days() == [day] and state.finished_on(day) == [OTHER]
    assert [t['uuid'] for t in state.pending_tombstones()] == [UUID]
    assert sorted(t['uuid'] for t in state.tombstones_list()) == sorted([UUID, OTHER])


def test_a_tombstone_that_finishes_moves_out_of_pending(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    tomb = dict(TOMBSTONE, uuid=OTHER)
    state.write_tombstone(tomb)
    tomb.update(status='terminated', cinder_checked=True, volumes_pending=[])
    state.write_tombstone(tomb)
    assert os.listdir(state.pending) == [] and os.listdir(state.finished) == [OTHER + '.json']
    assert state.read_tombstone(OTHER)['revision'] == 2
    assert state.pending_tombstones() == []


def test_finished_tombstones_are_found_by_name_or_uuid_without_reading_the_others(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    for n in range(200):
        uid = '%08x-0000-4000-8000-%012x' % (n, n)
        state.write_tombstone(dict(FINISHED, uuid=uid, name='old-%d' % n))
    state.write_tombstone(dict(TOMBSTONE))
    reads = []
    real = StateDir._read_json
    monkeypatch.setattr(StateDir, '_read_json', lambda self, path, uid: reads.append(path) or real(self, path, uid))
    assert [t['uuid'] for t in state.pending_tombstones()] == [UUID]
    assert [t['name'] for t in state.find_tombstones('old-7')] == ['old-7']
    assert [t['name'] for t in state.find_tombstones('00000009-0000-4000-8000-000000000009')] == ['old-9']
    assert state.find_tombstones('nobody') == []
    got = state.tombstones_for(['old-3', 'web01'])
    assert sorted(t['name'] for t in got) == ['old-3', 'web01']
    assert len(reads) < 30, reads


def test_a_tombstone_write_leaves_no_temporary_file(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone(dict(TOMBSTONE))
    assert os.listdir(state.pending) == [UUID + '.json']


def test_a_tombstone_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone(dict(TOMBSTONE))
    good = state.read_tombstone(UUID)

    def crash(*_args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(_journal.os, 'rename', crash)
    with pytest.raises(StateDirError) as err:
        state.write_tombstone(dict(good, volumes_pending=[]))
    monkeypatch.undo()
    assert str(err.value) == 'cannot write the tombstone %s: No space left on device' % os.path.join(
        state.pending, UUID + '.json')
    assert state.read_tombstone(UUID) == good
    assert os.listdir(state.pending) == [UUID + '.json']


def test_a_truncated_tombstone_never_replaces_a_good_one(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone(dict(TOMBSTONE))
    good = state.read_tombstone(UUID)
    _short_writes(monkeypatch)
    with pytest.raises(StateDirError) as err:
        state.write_tombstone(dict(good, volumes_pending=[], status='undefined'))
    monkeypatch.undo()
    assert 'No space left on device' in str(err.value)
    assert state.read_tombstone(UUID) == good
    assert os.listdir(state.pending) == [UUID + '.json']


def test_a_short_tombstone_write_is_carried_on_to_the_whole_file(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    _short_writes(monkeypatch, then_fail=False)
    state.write_tombstone(dict(TOMBSTONE))
    monkeypatch.undo()
    assert state.read_tombstone(UUID)['volumes_pending'] == TOMBSTONE['volumes_pending']


def _plant(state, filename, content, where=None):
    with open(os.path.join(where or state.pending, filename), 'w') as handle:
        handle.write(content if isinstance(content, str) else json.dumps(content))


def test_an_unreadable_tombstone_is_listed_as_such(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    _plant(state, UUID + '.json', '{"name": "web0')
    [entry] = state.tombstones_list()
    assert entry['uuid'] == UUID and entry['error'].startswith('tombstone %s is not valid JSON' % os.path.join(
        state.pending, UUID + '.json'))
    with pytest.raises(_journal.TombstoneError):
        state.read_tombstone(UUID)


@pytest.mark.parametrize('content,words', [
    (dict(TOMBSTONE, uuid=OTHER), 'uuid %s does not match its file name' % OTHER),
    (dict(TOMBSTONE, uuid='../../etc'), 'uuid "../../etc" is not a UUID'),
    ([TOMBSTONE], 'is not a JSON object'),
    (dict(TOMBSTONE, vcpus=10 ** 30), 'field vcpus'),
    (dict(TOMBSTONE, vcpus=True), 'field vcpus'),
    (dict(TOMBSTONE, terminated_at='0001-01-01T00:00:00+05:00'), 'field terminated_at'),
    (dict(TOMBSTONE, volumes_pending=[{'id': '../../v'}]), 'field volumes_pending'),
    (dict(TOMBSTONE, volumes_pending='all'), 'field volumes_pending'),
    (dict(TOMBSTONE, status='gone'), 'field status'),
    (dict(TOMBSTONE, name=42), 'field name'),
])
def test_a_tombstone_that_is_not_what_we_write_is_reported_never_used(tmp_path, content, words):
    state = StateDir(str(tmp_path / 'state'))
    _plant(state, UUID + '.json', content)
    [entry] = state.pending_tombstones()
    assert entry['uuid'] == UUID and words in entry['error'], entry
    assert set(entry) == {'uuid', 'name', 'file', 'error'}


def test_a_tombstone_whose_file_name_is_not_a_uuid_is_reported_without_a_uuid(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    _plant(state, 'broken-uuid.json', dict(TOMBSTONE))
    [entry] = state.tombstones_list()
    assert entry['uuid'] is None and 'file name is not a domain UUID' in entry['error']


def test_a_symlinked_tombstone_is_never_read(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    secret = tmp_path / 'secret.json'
    secret.write_text(json.dumps(dict(TOMBSTONE, project='read-through-a-link')))
    os.symlink(str(secret), os.path.join(state.finished, UUID + '.json'))
    [entry] = state.tombstones_list()
    assert 'is a symbolic link' in entry['error'] and 'read-through-a-link' not in json.dumps(entry)


def test_the_flat_layout_of_earlier_versions_is_read_and_moved_on_the_first_write(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    _plant(state, UUID + '.json', TOMBSTONE, where=state.tombstones)
    _plant(state, OTHER + '.json', FINISHED, where=state.tombstones)
    readonly = StateDir(state.path, create=False)
    assert [t['uuid'] for t in readonly.pending_tombstones()] == [UUID]
    assert readonly.read_tombstone(OTHER)['name'] == 'web02'
    StateDir(state.path)
    assert sorted(os.listdir(state.tombstones)) == ['by-day', 'finished', 'history', 'names', 'pending', 'tmp']
    assert os.listdir(state.pending) == [UUID + '.json'] and os.listdir(state.finished) == [OTHER + '.json']
    assert state.read_tombstone(OTHER)['finished_at'] == FINISHED['terminated_at']
    assert state.finished_on('2026-11-30') == [OTHER]
    assert [t['name'] for t in state.find_tombstones('web02')] == ['web02']


def test_a_reused_uuid_keeps_the_earlier_tombstone_as_history(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone(dict(FINISHED, name='first'))
    archived = state.archive_tombstone(OTHER)
    assert archived['name'] == 'first'
    assert state.read_tombstone(OTHER) is None
    state.write_tombstone(dict(FINISHED, name='second', terminated_at='2026-12-01T10:00:00Z'))
    assert [t['name'] for t in state.tombstone_history(OTHER)] == ['first']
    assert state.read_tombstone(OTHER)['name'] == 'second'
    listed = state.tombstones_list(include_history=True)
    assert sorted((t['name'], t.get('history_of')) for t in listed) == [('first', OTHER), ('second', None)]
    assert sorted(os.listdir(state.history)) == ['%s.20261130T100000Z.json' % OTHER]
