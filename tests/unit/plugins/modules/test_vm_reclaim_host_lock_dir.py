# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The unit suite never touches the host's real lock directory, which the host's real runs share; a Context carries
the host lock directory of the StateDir it opens."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _locks
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

URI = 'test:///default'
GONE = '0a1b2c3d-0000-4000-8000-00000000beef'


def _spy(monkeypatch, real_dir):
    """Every path under ``real_dir`` that os.open, mkdir, unlink, rmdir, rename, listdir or lstat is given."""
    touched = []
    prefix = real_dir.rstrip('/') + '/'

    def watch(name):
        original = getattr(os, name)

        def call(*args, **kwargs):
            for arg in args[:2]:
                if isinstance(arg, str) and (arg == real_dir or arg.startswith(prefix)):
                    touched.append((name, arg))
            return original(*args, **kwargs)
        monkeypatch.setattr(os, name, call)
    for name in ('open', 'mkdir', 'unlink', 'rmdir', 'rename', 'listdir', 'lstat'):
        watch(name)
    return touched


def test_a_sweep_in_the_unit_suite_creates_and_removes_nothing_in_the_real_host_lock_dir(run_in_process, tmp_path,
                                                                                         host_lock_dir, monkeypatch):
    real = _locks.platform_host_lock_dir()
    assert not host_lock_dir.startswith(real)
    state = StateDir(str(tmp_path / 'state'))
    # An expired finished tombstone: the sweep purges it under its domain's lock, then prunes that lock file.
    state.write_tombstone({'name': 'old', 'uuid': GONE, 'project': 'web', 'status': 'terminated',
                           'cinder_checked': True, 'volumes_pending': [], 'terminated_at': '2020-01-01T00:00:00Z',
                           'finished_at': '2020-01-01T00:00:00Z'})
    touched = _spy(monkeypatch, real)
    result = run_in_process('vm_reclaim', {'uri': URI, 'state_dir': state.path, 'tombstone_retention': '30d'})
    monkeypatch.undo()
    assert not result.get('failed'), result
    assert [t['uuid'] for t in result['retention']['tombstones_removed']] == [GONE]
    # The sweep did lock and prune, in the test's own host lock directory, and never looked at the real one.
    assert os.path.join(host_lock_dir, GONE + '.lock') in result['retention']['locks_removed']
    assert touched == []


def test_a_context_opens_its_state_dir_with_its_host_lock_dir_and_connection(conn, tmp_path):
    elsewhere = str(tmp_path / 'elsewhere')
    ctx = engine.Context(conn, uri=URI, params={'state_dir': str(tmp_path / 'state')}, host_lock_dir=elsewhere)
    state = ctx.open_state(create=True)
    assert state.host_locks == elsewhere and state.connection == URI
    with state.lock(GONE, timeout=1):
        pass
    assert os.listdir(elsewhere) == [GONE + '.lock']
