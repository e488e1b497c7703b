# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Commands started in the background whose output goes to files, never to a pipe.

A pipe holds 64 KiB. A command that prints more than that before anybody reads the pipe stops in write() until
somebody does: a test that first waits for that command, or for another command started beside it, waits forever.
ansible-playbook with the JSON callback prints everything at the end, and how much depends on how many domains the
hosts hold: the two racing restores of test_fleet_safety.py printed 60 KB alone and hung 600 s beside another test
whose domains made it more. So whatever runs beside the test writes into a temporary file, read once it has ended.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import subprocess
import tempfile


class Started(object):
    """subprocess.Popen's face (poll, wait, kill, communicate, returncode, pid) over output kept in files."""

    def __init__(self, cmd, env=None, merge=False, cwd=None):
        self.cmd = cmd
        self._out = tempfile.TemporaryFile()
        self._err = self._out if merge else tempfile.TemporaryFile()
        self.proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=self._out,
                                     stderr=self._err)
        self.pid = self.proc.pid

    @property
    def returncode(self):
        return self.proc.returncode

    def poll(self):
        return self.proc.poll()

    def kill(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait()

    def wait(self, timeout=None):
        self.communicate(timeout)
        return self.proc.returncode

    def output(self):
        """(stdout, stderr) as printed so far; call it once the command has ended (else its writes move on)."""
        texts = []
        for handle in (self._out, self._err):
            handle.seek(0)
            texts.append(handle.read().decode('utf-8', 'replace'))
        return texts[0], (texts[1] if self._err is not self._out else '')

    def communicate(self, timeout=None):
        """Wait for the command and return (stdout, stderr); after ``timeout`` seconds kill it and fail the test
        with the command and the end of what it printed, so that a hang shows where it stood."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            out, err = self.output()
            raise AssertionError('still running after %s s, killed: %s\nstdout (end): %s\nstderr (end): %s'
                                 % (timeout, ' '.join(str(c) for c in self.cmd)[:500], out[-4000:], err[-2000:]))
        return self.output()
