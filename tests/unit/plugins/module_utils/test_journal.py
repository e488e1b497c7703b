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


def mode(path):
    return stat.S_IMODE(os.lstat(str(path)).st_mode)


# -- the directory ----------------------------------------------------------------

def test_state_dir_is_created_private(tmp_path):
    state = StateDir(str(tmp_path / 'var' / 'deferred-libvirt'))
    assert mode(state.path) == 0o700
    assert mode(state.locks) == 0o700
    assert mode(state.tombstones) == 0o700


def test_state_dir_files_are_private(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.event('instance.soft_delete.start', 'req-1', domain='web01', uuid=UUID)
    with state.lock(UUID, name='web01'):
        pass
    state.write_tombstone({'name': 'web01', 'uuid': UUID})
    assert mode(state.events) == 0o600
    assert mode(os.path.join(state.locks, UUID + '.lock')) == 0o600
    assert mode(os.path.join(state.tombstones, UUID + '.json')) == 0o600


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
    with StateDir(sys.argv[1]).lock(sys.argv[3], name='web01'):
        print('held', flush=True)
        sys.stdin.read()
''')


@pytest.fixture
def lock_holder(tmp_path, collections_path):
    """Another process holding the lock of UUID until the test lets it go."""
    script = tmp_path / 'holder.py'
    script.write_text(HOLDER)
    state = str(tmp_path / 'state')
    StateDir(state)
    proc = subprocess.Popen([sys.executable, str(script), state, collections_path, UUID],
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
    with StateDir(state).lock('another-uuid', timeout=0.3, name='web02'):
        pass


def test_a_lock_is_released_when_the_block_ends(tmp_path, collections_path):
    state = StateDir(str(tmp_path / 'state'))
    with state.lock(UUID, name='web01'):
        pass
    script = tmp_path / 'taker.py'
    script.write_text(textwrap.dedent('''
        import sys
        sys.path.insert(0, sys.argv[2])
        from ansible_collections.deferred.libvirt.plugins.module_utils._journal import StateDir
        with StateDir(sys.argv[1]).lock(sys.argv[3], timeout=0.5):
            print('taken')
    '''))
    out = subprocess.run([sys.executable, str(script), state.path, collections_path, UUID],
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


# -- tombstones ---------------------------------------------------------------------

TOMBSTONE = {
    'name': 'web01', 'uuid': UUID, 'project': 'web', 'terminated_at': '2024-05-09T00:00:00Z',
    'volumes_pending': [{'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'delete_on_termination': True,
                         'error': 'Cinder is not configured for this run (no cloud or auth)'}],
}


def test_a_tombstone_reads_back_as_written(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone(TOMBSTONE)
    assert state.read_tombstone(UUID) == TOMBSTONE
    assert state.tombstones_list() == [TOMBSTONE]


def test_a_tombstone_write_leaves_no_temporary_file(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone(TOMBSTONE)
    assert os.listdir(state.tombstones) == [UUID + '.json']


def test_a_tombstone_is_replaced_whole_or_not_at_all(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone(TOMBSTONE)

    def crash(*_args):
        raise OSError(28, 'No space left on device')

    monkeypatch.setattr(_journal.os, 'rename', crash)
    with pytest.raises(StateDirError) as err:
        state.write_tombstone(dict(TOMBSTONE, volumes_pending=[]))
    monkeypatch.undo()
    assert str(err.value) == 'cannot write the tombstone %s: No space left on device' % os.path.join(
        state.tombstones, UUID + '.json')
    assert state.read_tombstone(UUID) == TOMBSTONE


def test_an_unreadable_tombstone_is_listed_as_such(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    with open(os.path.join(state.tombstones, 'broken-uuid.json'), 'w') as handle:
        handle.write('{"name": "web0')
    assert state.tombstones_list() == [{'uuid': 'broken-uuid', 'error': 'unreadable tombstone'}]
