# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_reclaim's retention options on libvirt's test:///default, run as Ansible runs it (ad hoc)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

URI = 'test:///default'
GONE = '0a1b2c3d-0000-4000-8000-00000000beef'


@pytest.mark.parametrize('option,value,words', [
    ('tombstone_retention', '-3d', 'tombstone_retention: '),
    ('journal_rotate_size', 'lots', 'journal_rotate_size: '),
    ('journal_rotate_age', 'soon', 'journal_rotate_age: '),
    ('journal_retention', True, 'journal_retention: '),
])
def test_a_retention_option_that_cannot_be_read_fails_naming_it_and_changes_nothing(run_module, tmp_path, option,
                                                                                    value, words):
    state = str(tmp_path / 'state')
    run = run_module('vm_reclaim', {'uri': URI, 'state_dir': state, option: value})
    assert run.failed, run.stdout
    assert run.msg.startswith(words) and run.msg.endswith('nothing was changed'), run.msg
    assert not os.path.exists(state)


def test_the_sweep_removes_an_expired_finished_tombstone_and_says_so(run_module, tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone({'name': 'old', 'uuid': GONE, 'project': 'web', 'status': 'terminated',
                           'cinder_checked': True, 'volumes_pending': [], 'terminated_at': '2020-01-01T00:00:00Z',
                           'finished_at': '2020-01-01T00:00:00Z'})
    dry = run_module('vm_reclaim', {'uri': URI, 'state_dir': state.path}, check=True)
    assert [t['uuid'] for t in dry.result['retention']['tombstones_removed']] == [GONE]
    assert state.read_tombstone(GONE) is not None
    run = run_module('vm_reclaim', {'uri': URI, 'state_dir': state.path, 'tombstone_retention': '30d'})
    assert not run.failed, run.stdout
    assert [t['name'] for t in run.result['retention']['tombstones_removed']] == ['old']
    assert state.read_tombstone(GONE) is None
    assert [e['event_type'] for e in state.read_events()] == ['instance.purge']
