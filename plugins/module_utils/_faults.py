# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fail points: named steps where the tests kill or pause a module (fault injection), importable from every layer.

Off unless ``DEFERRED_LIBVIRT_FAILPOINT`` names a step; each step fires once per run.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import signal
import threading

FAILPOINT_ENV = 'DEFERRED_LIBVIRT_FAILPOINT'
# With this set to a file path, a fail point writes its pid there and stops (SIGSTOP) instead of dying, so a test
# can break something (a daemon, the state_dir) at that exact step and then let the module go on with SIGCONT.
FAILPOINT_PAUSE_ENV = 'DEFERRED_LIBVIRT_FAILPOINT_PAUSE'

_FIRED = set()
_FIRED_LOCK = threading.Lock()


def failpoint(name):
    """Kill (or pause) this process at a named step when the tests ask for it (fault injection; off unless the env var is set).

    It fires the first time the step is reached in a run only: steps inside concurrent work (the volumes of one domain
    are settled at once) would otherwise pause the process again after the test resumed it.
    """
    wanted = os.environ.get(FAILPOINT_ENV)
    if wanted and wanted in (name, name.split('.', 1)[-1]):
        with _FIRED_LOCK:
            if name in _FIRED:
                return
            _FIRED.add(name)
        pause_file = os.environ.get(FAILPOINT_PAUSE_ENV)
        if pause_file:
            with open(pause_file, 'w') as handle:
                handle.write('%d %s\n' % (os.getpid(), name))
            os.kill(os.getpid(), signal.SIGSTOP)
            return
        os.kill(os.getpid(), signal.SIGKILL)
