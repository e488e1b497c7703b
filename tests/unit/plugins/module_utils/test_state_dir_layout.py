# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The state_dir's layout as documented, and the trust checks every directory and file of it passes."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _layout
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))


def test_the_layout_documents_every_directory_a_state_dir_has_and_what_the_roles_write_there(tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    doc = _layout.__doc__
    for path in [state.events] + list(state._subdirs()):
        assert os.path.relpath(path, state.path) + ('/' if os.path.isdir(path) else '') in doc, path
    # The reclaim role keeps the last sweep there; the layout names it although no module reads it.
    with open(os.path.join(ROOT, 'roles', 'reclaim', 'tasks', 'sweep.yml')) as handle:
        assert '/%s' % _layout.LAST_SWEEP in handle.read()
    assert _layout.LAST_SWEEP in doc


@pytest.mark.parametrize('bits,words', [
    (0o700, None), (0o755, None),
    (0o770, 'is group-writable (mode 0770)'),
    (0o702, 'is world-writable (mode 0702)'),
    (0o777, 'is group- and world-writable (mode 0777)'),
])
def test_the_mode_problem_names_who_can_write(tmp_path, bits, words):
    path = tmp_path / 'd'
    path.mkdir()
    os.chmod(str(path), bits)
    assert _layout.mode_problem(os.lstat(str(path))) == words


def test_a_directory_check_refuses_a_link_a_file_and_a_writable_directory(tmp_path):
    (tmp_path / 'dir').mkdir(mode=0o700)
    _layout.check_dir(str(tmp_path / 'dir'), 'state_dir')
    (tmp_path / 'link').symlink_to(tmp_path / 'dir')
    (tmp_path / 'file').write_text('x')
    with pytest.raises(StateDirError, match='is a symbolic link; refusing to use it'):
        _layout.check_dir(str(tmp_path / 'link'), 'state_dir')
    with pytest.raises(StateDirError, match='is not a directory'):
        _layout.check_dir(str(tmp_path / 'file'), 'state_dir')
    os.chmod(str(tmp_path / 'dir'), 0o770)
    with pytest.raises(StateDirError, match=r'chmod 0700'):
        _layout.check_dir(str(tmp_path / 'dir'), 'state_dir')


def test_a_file_check_refuses_a_hard_linked_or_writable_file(tmp_path):
    path = tmp_path / 'events.jsonl'
    path.write_text('')
    os.chmod(str(path), 0o600)
    _layout.check_file(str(path), 'event journal')
    os.link(str(path), str(tmp_path / 'elsewhere'))
    with pytest.raises(StateDirError, match='has 2 hard links'):
        _layout.check_file(str(path), 'event journal')
    os.unlink(str(tmp_path / 'elsewhere'))
    os.chmod(str(path), 0o620)
    with pytest.raises(StateDirError, match=r'is group-writable \(mode 0620\); make it private \(chmod 0600'):
        _layout.check_file(str(path), 'event journal')
