# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tombstone store: pending and finished, the indexes, unreadable tombstones, the flat layout, history."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
from ansible_collections.deferred.libvirt.plugins.module_utils._tombstone import TombstoneError

UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f'
OTHER = '3c0a2d4e-1b7f-4a55-9e0c-8d2f6b1a9e77'

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


def _plant(state, filename, content, where=None):
    with open(os.path.join(where or state.pending, filename), 'w') as handle:
        handle.write(content if isinstance(content, str) else json.dumps(content))


def test_an_unreadable_tombstone_is_listed_as_such(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    _plant(state, UUID + '.json', '{"name": "web0')
    [entry] = state.tombstones_list()
    assert entry['uuid'] == UUID and entry['error'].startswith('tombstone %s is not valid JSON' % os.path.join(
        state.pending, UUID + '.json'))
    with pytest.raises(TombstoneError):
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
