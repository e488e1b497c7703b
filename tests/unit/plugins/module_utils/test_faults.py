# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fail points (_faults.py): off unless asked; a named step kills (SIGKILL) or pauses (SIGSTOP) its process, once.

Each case runs a child Python that imports the collection and reaches a fail
point, as a module run by the reliability suite does; every wait is bounded.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import signal
import subprocess
import sys
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _faults as faults

CHILD = '''
import sys
sys.path.insert(0, sys.argv[1])
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint
failpoint(sys.argv[2])
failpoint(sys.argv[2])
print('went on')
'''
TIMEOUT = 30


def child_env(failpoint=None, pause=None):
    env = dict((k, v) for k, v in os.environ.items() if k not in (faults.FAILPOINT_ENV, faults.FAILPOINT_PAUSE_ENV))
    if failpoint is not None:
        env[faults.FAILPOINT_ENV] = failpoint
    if pause is not None:
        env[faults.FAILPOINT_PAUSE_ENV] = pause
    return env


def reach(collections_path, step, **env):
    """Run a child that reaches ``step`` twice; its CompletedProcess."""
    return subprocess.run([sys.executable, '-c', CHILD, collections_path, step], env=child_env(**env),
                          capture_output=True, text=True, timeout=TIMEOUT, check=False)


def wait_until(predicate, what):
    deadline = time.monotonic() + TIMEOUT
    while not predicate():
        assert time.monotonic() < deadline, 'gave up waiting for %s' % what
        time.sleep(0.02)


def stopped(pid):
    with open('/proc/%d/stat' % pid) as handle:
        return handle.read().rsplit(')', 1)[1].split()[0] in ('T', 't')


def test_without_the_env_var_a_fail_point_does_nothing(collections_path):
    done = reach(collections_path, 'terminate.after_undefine')
    assert (done.returncode, done.stdout) == (0, 'went on\n'), done.stderr


def test_the_named_step_kills_the_process_with_sigkill(collections_path):
    done = reach(collections_path, 'terminate.after_undefine', failpoint='terminate.after_undefine')
    assert done.returncode == -signal.SIGKILL and done.stdout == ''


def test_a_step_named_without_its_operation_fires_too(collections_path):
    done = reach(collections_path, 'terminate.after_undefine', failpoint='after_undefine')
    assert done.returncode == -signal.SIGKILL


def test_another_step_is_not_killed(collections_path):
    done = reach(collections_path, 'terminate.after_undefine', failpoint='terminate.after_cinder')
    assert (done.returncode, done.stdout) == (0, 'went on\n'), done.stderr
    done = reach(collections_path, 'restore.after_undefine', failpoint='terminate.after_undefine')
    assert (done.returncode, done.stdout) == (0, 'went on\n'), done.stderr


def pause_at(collections_path, tmp_path, step):
    """A child stopped at ``step`` with the pause env var set: (process, pause file)."""
    pause = tmp_path / 'paused'
    # pipe: the child prints one line ('went on') or a traceback
    proc = subprocess.Popen([sys.executable, '-c', CHILD, collections_path, step],
                            env=child_env(failpoint=step, pause=str(pause)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        wait_until(lambda: pause.exists() and pause.read_text().endswith('\n'), 'the pid in the pause file')
        wait_until(lambda: stopped(proc.pid), 'the child to stop')
    except BaseException:
        proc.kill()
        proc.communicate(timeout=TIMEOUT)
        raise
    return proc, pause


def test_with_the_pause_env_var_it_writes_its_pid_and_stops_then_goes_on_once_after_sigcont(collections_path, tmp_path):
    proc, pause = pause_at(collections_path, tmp_path, 'reclaim.before_undefine')
    assert pause.read_text() == '%d reclaim.before_undefine\n' % proc.pid
    os.kill(proc.pid, signal.SIGCONT)
    # The second time the step is reached it does not stop again: a fail point fires once per run.
    out, err = proc.communicate(timeout=TIMEOUT)
    assert (proc.returncode, out) == (0, 'went on\n'), err


def test_a_paused_process_can_be_killed_where_it_stopped(collections_path, tmp_path):
    proc, dummy = pause_at(collections_path, tmp_path, 'soft_delete.after_shutdown')
    os.kill(proc.pid, signal.SIGKILL)
    out, dummy = proc.communicate(timeout=TIMEOUT)
    assert proc.returncode == -signal.SIGKILL and out == ''


def test_in_this_process_without_the_env_var_a_fail_point_returns(monkeypatch):
    monkeypatch.delenv(faults.FAILPOINT_ENV, raising=False)
    assert faults.failpoint('terminate.after_undefine') is None
