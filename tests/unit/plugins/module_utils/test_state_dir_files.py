# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checked reads and atomic writes: never through a planted link, whole or not at all, short writes carried on."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f'
OTHER = '3c0a2d4e-1b7f-4a55-9e0c-8d2f6b1a9e77'

TOMBSTONE = {
    'name': 'web01', 'uuid': UUID, 'project': 'web', 'terminated_at': '2024-05-09T00:00:00Z',
    'volumes_pending': [{'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'delete_on_termination': True,
                         'error': 'Cinder is not configured for this run (no cloud or auth)'}],
}
FINISHED = {'name': 'web02', 'uuid': OTHER, 'project': 'web', 'status': 'terminated', 'cinder_checked': True,
            'terminated_at': '2026-11-30T10:00:00Z', 'volumes_pending': []}


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


def test_a_link_planted_at_a_tombstone_temp_name_is_never_written_through(tmp_path, monkeypatch):
    state = StateDir(str(tmp_path / 'state'))
    canary = tmp_path / 'canary'
    canary.write_text('precious\n')
    # The name earlier versions used, and the name this one would use if an attacker could guess its random part.
    os.link(str(canary), os.path.join(state.pending, UUID + '.json.tmp'))
    state.write_tombstone(dict(TOMBSTONE))
    assert canary.read_text() == 'precious\n'
    monkeypatch.setattr(os, 'urandom', lambda n: b'\x02' * n)
    os.symlink(str(canary), os.path.join(state.temp, '.%s.json.%s.tmp' % (UUID, '02' * 6)))
    with pytest.raises(StateDirError):
        state.write_tombstone(dict(TOMBSTONE))
    assert canary.read_text() == 'precious\n'
    assert state.read_tombstone(UUID)['name'] == 'web01'


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

    monkeypatch.setattr(os, 'rename', crash)
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


# -- the helpers themselves ---------------------------------------------------------------------------------------------

def test_write_all_fails_on_a_write_of_nothing(tmp_path, monkeypatch):
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _files
    fd = os.open(str(tmp_path / 'f'), os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        monkeypatch.setattr(os, 'write', lambda fd, data: 0)
        with pytest.raises(OSError) as err:
            _files.write_all(fd, b'abc')
        monkeypatch.undo()
    finally:
        os.close(fd)
    assert 'short write: 0 of 3 bytes written' in str(err.value)


def test_a_checked_read_refuses_a_link_and_a_file_too_big(tmp_path):
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _files
    (tmp_path / 'small').write_bytes(b'{}')
    (tmp_path / 'big').write_bytes(b'x' * 11)
    (tmp_path / 'link').symlink_to(tmp_path / 'small')
    raw, st = _files.read_checked(str(tmp_path / 'small'), 'tombstone', 10, StateDirError)
    assert raw == b'{}' and st.st_size == 2
    assert _files.read_checked(str(tmp_path / 'absent'), 'tombstone', 10, StateDirError) == (None, None)
    with pytest.raises(StateDirError, match='is a symbolic link; refusing to read it'):
        _files.read_checked(str(tmp_path / 'link'), 'tombstone', 10, StateDirError)
    with pytest.raises(StateDirError, match='is 11 bytes, more than a tombstone can be'):
        _files.read_checked(str(tmp_path / 'big'), 'tombstone', 10, StateDirError)


def test_stale_temporary_files_go_and_young_ones_stay(tmp_path):
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _files
    for name in ('.old.json.0a.tmp', '.young.json.0b.tmp', 'kept.json'):
        (tmp_path / name).write_text('x')
    now = os.lstat(str(tmp_path / 'kept.json')).st_mtime
    os.utime(str(tmp_path / '.old.json.0a.tmp'), (now - 2 * _files.STALE_TEMP_SECONDS,) * 2)
    assert _files.remove_stale_temp_files([str(tmp_path)], now) == [str(tmp_path / '.old.json.0a.tmp')]
    assert sorted(os.listdir(str(tmp_path))) == ['.young.json.0b.tmp', 'kept.json']
