# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The per-domain locks: host-wide then the state_dir's, taken again after a removal, lock files of gone domains."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import stat
import subprocess
import sys
import textwrap

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._locks import LockTimeout
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f'
OTHER = '3c0a2d4e-1b7f-4a55-9e0c-8d2f6b1a9e77'


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


# -- locks --------------------------------------------------------------------------

HOLDER = textwrap.dedent('''
    import sys, time
    sys.path.insert(0, sys.argv[2])
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
    with StateDir(sys.argv[1], host_lock_dir=sys.argv[4]).lock(sys.argv[3], name='web01'):
        print('held', flush=True)
        sys.stdin.read()
''')


@pytest.fixture
def lock_holder(tmp_path, collections_path, host_lock_dir):
    """Another process holding the lock of UUID until the test lets it go."""
    script = tmp_path / 'holder.py'
    script.write_text(HOLDER)
    state = str(tmp_path / 'state')
    StateDir(state)
    # pipe: the holder prints one line ('held'), read here as it runs
    proc = subprocess.Popen([sys.executable, str(script), state, collections_path, UUID, host_lock_dir],
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


def test_a_lock_is_released_when_the_block_ends(tmp_path, collections_path, host_lock_dir):
    state = StateDir(str(tmp_path / 'state'))
    with state.lock(UUID, name='web01'):
        pass
    script = tmp_path / 'taker.py'
    script.write_text(textwrap.dedent('''
        import sys
        sys.path.insert(0, sys.argv[2])
        from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
        with StateDir(sys.argv[1], host_lock_dir=sys.argv[4]).lock(sys.argv[3], timeout=0.5):
            print('taken')
    '''))
    out = subprocess.run([sys.executable, str(script), state.path, collections_path, UUID, host_lock_dir],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == 'taken'


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


# -- a lock file names its connection: one host lock directory, several connections ------------------------------------

def _lock_files(directory):
    return sorted(e for e in os.listdir(directory) if e.endswith('.lock') and e != 'journal.lock')


def test_a_lock_file_names_the_connection_that_took_it(tmp_path):
    state = StateDir(str(tmp_path / 'state'), connection='qemu:///system')
    with state.lock(UUID, timeout=1):
        pass
    for directory in (state.host_locks, state.locks):
        with open(os.path.join(directory, UUID + '.lock')) as handle:
            assert handle.read() == '%d\nconnection "qemu:///system"\n' % os.getpid()


def test_a_sweep_removes_only_the_lock_files_of_its_own_connection(tmp_path, host_lock_dir):
    system = StateDir(str(tmp_path / 'system'), connection='qemu:///system')
    test = StateDir(str(tmp_path / 'test'), connection='test:///default')
    assert system.host_locks == test.host_locks == host_lock_dir
    with system.lock(UUID, timeout=1):
        pass
    with test.lock(OTHER, timeout=1):
        pass
    # The test connection knows none of the system's domains: its sweep must not take their lock files for gone ones.
    mine = [os.path.join(host_lock_dir, OTHER + '.lock'), os.path.join(test.locks, OTHER + '.lock')]
    assert test.remove_lock_files(keep=set(), check_mode=True) == mine
    assert test.remove_lock_files(keep=set()) == mine
    assert _lock_files(host_lock_dir) == [UUID + '.lock']
    assert _lock_files(system.locks) == [UUID + '.lock']
    assert system.remove_lock_files(keep=set()) == [os.path.join(host_lock_dir, UUID + '.lock'),
                                                    os.path.join(system.locks, UUID + '.lock')]


def test_an_earlier_versions_lock_file_is_left_in_the_host_lock_dir_and_removed_from_the_state_dir(
        tmp_path, host_lock_dir):
    state = StateDir(str(tmp_path / 'state'), connection='test:///default')
    for directory in (host_lock_dir, state.locks):
        with open(os.path.join(directory, UUID + '.lock'), 'w') as handle:
            handle.write('1\n')  # what earlier versions wrote: a pid, no connection
    assert state.remove_lock_files(keep=set()) == [os.path.join(state.locks, UUID + '.lock')]
    assert _lock_files(host_lock_dir) == [UUID + '.lock']
    # The next lock names the connection: from then on its sweep removes the file when the domain is gone.
    with state.lock(UUID, timeout=1):
        pass
    assert state.remove_lock_files(keep=set()) == [os.path.join(host_lock_dir, UUID + '.lock'),
                                                   os.path.join(state.locks, UUID + '.lock')]


def test_check_mode_lists_a_lock_file_but_neither_locks_nor_removes_it(tmp_path):
    state = StateDir(str(tmp_path / 'state'), connection='test:///default')
    with state.lock(UUID, timeout=1):
        pass
    with open(os.path.join(state.locks, UUID + '.lock')) as handle:
        before = handle.read()
    with state.lock(UUID, timeout=1):
        assert state.remove_lock_files(keep=set(), check_mode=True) == [
            os.path.join(state.host_locks, UUID + '.lock'), os.path.join(state.locks, UUID + '.lock')]
    with open(os.path.join(state.locks, UUID + '.lock')) as handle:
        assert handle.read() == before


def test_a_state_dir_takes_its_host_lock_dir_from_its_caller(tmp_path, host_lock_dir):
    elsewhere = str(tmp_path / 'elsewhere')
    state = StateDir(str(tmp_path / 'state'), host_lock_dir=elsewhere)
    with state.lock(UUID, timeout=1):
        pass
    assert _lock_files(elsewhere) == [UUID + '.lock']
    assert not os.path.exists(host_lock_dir)
    assert mode(elsewhere) == 0o700
