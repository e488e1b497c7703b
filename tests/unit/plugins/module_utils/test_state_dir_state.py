# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""StateDir: creating and checking a state_dir, and refusing one that is not safe to use."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import shutil
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
    from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
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


def test_a_host_lock_dir_others_can_write_to_is_refused(tmp_path, host_lock_dir):
    os.mkdir(host_lock_dir, 0o700)
    os.chmod(host_lock_dir, 0o777)
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'))
    assert str(err.value).startswith('host lock directory %s is group- and world-writable (mode 0777)' % host_lock_dir)


def test_a_symlinked_host_lock_dir_is_refused(tmp_path, host_lock_dir):
    (tmp_path / 'elsewhere').mkdir(mode=0o700)
    os.symlink(str(tmp_path / 'elsewhere'), host_lock_dir)
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'))
    assert 'host lock directory %s is a symbolic link' % host_lock_dir in str(err.value)


def test_a_journal_others_can_write_to_is_refused(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.reclaim', 'req-1')
    os.chmod(state.events, 0o622)
    with pytest.raises(StateDirError) as err:
        StateDir(str(tmp_path / 'state'))
    assert 'event journal %s is group- and world-writable (mode 0622)' % state.events in str(err.value)


# -- issue 12 #11: the write probe never follows a planted link ----------------------------------------------------

def test_a_link_planted_at_the_write_probe_is_never_followed(tmp_path, monkeypatch):
    StateDir(str(tmp_path / 'state'))
    canary = tmp_path / 'canary'
    canary.write_text('precious\n')
    monkeypatch.setattr(os, 'urandom', lambda n: b'\x01' * n)
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


def test_a_journal_another_sweep_rotates_away_while_this_one_opens_the_state_dir_is_no_error(tmp_path, monkeypatch):
    """The journal seen, then gone before its check (a sweep of a shared state_dir rotated it: link, unlink): the
    state_dir opens, and the next event makes a new journal. It failed with "cannot be used: No such file or
    directory" (found by test_state_dir_journal.py's concurrent sweepers)."""
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _state
    path = str(tmp_path / 'state')
    StateDir(path).event('first', 'req-1')
    real = _state.os.lstat

    def rotated_meanwhile(target, *args, **kwargs):
        if str(target).endswith('events.jsonl') and os.path.exists(target):
            os.unlink(target)
        return real(target, *args, **kwargs)

    monkeypatch.setattr(_state.os, 'lstat', rotated_meanwhile)
    state = StateDir(path)
    monkeypatch.setattr(_state.os, 'lstat', real)
    state.event('second', 'req-2')
    with open(os.path.join(path, 'events.jsonl')) as handle:
        assert '"req-2"' in handle.read()


# -- several runs at once ---------------------------------------------------------------

OPENER = textwrap.dedent('''
    import os, sys, time
    sys.path.insert(0, sys.argv[2])
    from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
    start = float(sys.argv[4])
    while time.time() < start:
        pass
    try:
        StateDir(sys.argv[1], host_lock_dir=sys.argv[3])
    except StateDirError as exc:
        print(exc)
''')


def test_runs_that_open_a_new_state_dir_at_the_same_moment_all_use_it(tmp_path, collections_path, host_lock_dir):
    """Invariant: a state_dir is usable by every run that opens it, however many open it at once. Two modules
    started together on a state_dir nobody had used both saw a part missing, one made it first, and the other failed
    with "cannot be used: File exists" (found by the integration test of a journal rotated under two writers).
    Rounds of four processes released at one instant on a new path."""
    script = tmp_path / 'open.py'
    script.write_text(OPENER)
    failures = []
    for round_ in range(12):
        path = str(tmp_path / ('state-%d' % round_) / 'deep')
        start = '%.3f' % (time.time() + 0.4)
        # pipe: each prints one line at most (its error)
        procs = [subprocess.Popen([sys.executable, str(script), path, collections_path, host_lock_dir, start],
                                  stdout=subprocess.PIPE, universal_newlines=True) for dummy in range(4)]
        failures += [out.strip() for out in (p.communicate()[0] for p in procs) if out.strip()]
        assert [p.returncode for p in procs] == [0] * 4
        assert mode(path) == 0o700
    assert failures == []


def test_a_journal_a_sweep_is_rotating_is_waited_for_not_refused(tmp_path, monkeypatch):
    """Invariant: a run opening a state_dir while another run's sweep rotates its journal (link to the rotated name,
    then unlink: two links for a moment) opens it. A hard link that stays is still refused (see the next test)."""
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _state
    path = str(tmp_path / 'state')
    first = StateDir(path)
    first.event('first', 'req-1')
    rotated = os.path.join(path, 'events-20261201T120000Z.jsonl')
    os.link(first.events, rotated)  # the sweep's link(), its unlink() still to come
    real_sleep = _state.time.sleep
    slept = []

    def sweep_finishes(seconds):
        slept.append(seconds)
        if os.path.exists(first.events):
            os.unlink(first.events)  # the sweep's unlink()
        real_sleep(seconds)

    monkeypatch.setattr(_state.time, 'sleep', sweep_finishes)
    StateDir(path)
    assert slept, 'the two links were not seen'


def test_a_hard_link_to_the_journal_that_stays_is_refused(tmp_path):
    path = str(tmp_path / 'state')
    first = StateDir(path)
    first.event('first', 'req-1')
    os.link(first.events, str(tmp_path / 'elsewhere.jsonl'))
    with pytest.raises(StateDirError, match='event journal .* has 2 hard links'):
        StateDir(path)
    with pytest.raises(StateDirError, match='event journal .* has 2 hard links'):
        StateDir(path, create=False)
