# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the integration tests share: reading a module's result, and a task paused at a fail point."""

import os
import signal
import threading
import time
import uuid as uuidlib

# The lifecycle record's namespace, as `virsh metadata` shows it.
NS = 'urn:deferred-libvirt:lifecycle:1'
INFO = 'deferred.libvirt.vm_info'


def only(result):
    """The one per-domain result of a task that must not have failed."""
    assert not result.get('failed'), result
    [inst] = result['instances']
    return inst


def info(ansible, name):
    """vm_info's record of one domain."""
    return only(ansible.task(INFO, name=name))


class Paused(object):
    """Run a task in a thread with a fail point that pauses (SIGSTOP) the module at a named step."""

    def __init__(self, ansible, tmp_path, point, module, **args):
        self.pause_file = str(tmp_path / ('pause-%s' % uuidlib.uuid4().hex[:6]))
        self.result = None
        env = {'DEFERRED_LIBVIRT_FAILPOINT': point, 'DEFERRED_LIBVIRT_FAILPOINT_PAUSE': self.pause_file}
        self.thread = threading.Thread(target=self._run, args=(ansible, module, env, args))
        self.thread.start()
        deadline = time.monotonic() + 300
        while not (os.path.exists(self.pause_file) and open(self.pause_file).read().strip()):
            assert self.thread.is_alive(), 'the task ended before reaching fail point %s: %s' % (point, self.result)
            assert time.monotonic() < deadline, 'the task never reached fail point %s' % point
            time.sleep(0.1)
        self.pid = int(open(self.pause_file).read().split()[0])

    def _run(self, ansible, module, env, args):
        self.result = ansible.task(module, env=env, **args)

    def resume(self):
        os.kill(self.pid, signal.SIGCONT)
        self.thread.join(600)
        assert not self.thread.is_alive()
        return self.result
