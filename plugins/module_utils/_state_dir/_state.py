# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""StateDir: a checked state directory, composed of its locks, its event journal and its tombstone store.

Creating one checks (or creates) the directory and everything in it, and proves it can be written, before
any domain changes; opening one without ``create`` (check mode, vm_info) changes nothing and reads only
from a directory it can trust. Its layout is ``_layout``'s docstring.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import errno
import os
import stat
import time

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _locks
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._clock import ClockFile
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._files import (
    make_dir, remove_stale_temp_files, write_all)
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._journal import Journal
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._layout import (
    BY_DAY, FINISHED, HISTORY, JOURNAL, JOURNAL_LOCK, LOCKS, NAMES, PENDING, TEMP, TOMBSTONES, check_dir, check_file_stat)
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._membership import FleetMembership
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._store import Store

# How long a journal with two links (a sweep's rotation between its link() and unlink()) is waited out, in seconds.
ROTATION_WAIT = 2.0


class StateDir(_locks.Locks, Journal, Store, ClockFile, FleetMembership):
    """A checked state directory. Creating one checks that it can be written before anything changes.

    ``host_lock_dir``: the host-wide lock directory (None: ``_locks.default_host_lock_dir()``).
    ``connection``: the libvirt connection (URI) whose domains this run locks; its lock files name it, and
    its retention sweep removes only lock files that name it (None: an earlier version's files, which name none).
    """

    def __init__(self, path, create=True, host_lock_dir=None, connection=None):
        self.path = os.path.abspath(path)
        self.locks = os.path.join(self.path, LOCKS)
        # Looked up on the module at each call, so a test suite can point every StateDir at a directory of its own.
        self.host_locks = host_lock_dir or _locks.default_host_lock_dir()
        self.connection = connection
        self.tombstones = os.path.join(self.path, TOMBSTONES)
        self.pending = os.path.join(self.tombstones, PENDING)
        self.finished = os.path.join(self.tombstones, FINISHED)
        self.history = os.path.join(self.tombstones, HISTORY)
        self.by_day = os.path.join(self.tombstones, BY_DAY)
        self.names = os.path.join(self.tombstones, NAMES)
        self.temp = os.path.join(self.tombstones, TEMP)
        self.events = os.path.join(self.path, JOURNAL)
        self.journal_lock = os.path.join(self.locks, JOURNAL_LOCK)
        if create:
            self._prepare()
        elif os.path.lexists(self.path):
            # Read-only runs (check mode, vm_info) read what is there, but only from a directory they can trust.
            try:
                self._check_tree()
            except OSError as exc:
                raise StateDirError('state_dir %s cannot be read: %s' % (self.path, exc.strerror or exc))

    def _subdirs(self):
        return (self.locks, self.tombstones, self.pending, self.finished, self.history, self.by_day, self.names,
                self.temp)

    def _check_tree(self):
        check_dir(self.path, 'state_dir')
        for sub in self._subdirs():
            if os.path.lexists(sub):
                check_dir(sub, 'state_dir')
        self._check_journal()

    def _check_journal(self):
        """The event journal, if there is one. Another sweep of a shared state_dir may rotate it away between the
        look and the check: then there is none, and the next append creates (and checks) it again. A rotation links
        the journal to its rotated name and then unlinks it, so for a moment it has two links: that is waited out
        (up to ROTATION_WAIT seconds); a hard link that stays is refused."""
        deadline = time.monotonic() + ROTATION_WAIT
        while True:
            try:
                st = os.lstat(self.events)
            except OSError as exc:
                if exc.errno != errno.ENOENT:
                    raise
                return
            if st.st_nlink > 1 and stat.S_ISREG(st.st_mode) and time.monotonic() < deadline:
                time.sleep(0.02)
                continue
            check_file_stat(st, self.events, 'event journal')
            return

    def _prepare(self):
        try:
            # Another run may make any of these at the same moment: one that exists already is checked like ours.
            if not os.path.lexists(self.path):
                os.makedirs(self.path, 0o700, exist_ok=True)
            check_dir(self.path, 'state_dir')
            for sub in self._subdirs():
                if not os.path.lexists(sub):
                    make_dir(sub)
                check_dir(sub, 'state_dir')
            self._prepare_host_locks()
            # Checked now, before any domain changes, not at the first event of an operation.
            self._check_journal()
            # Prove we can write (and that the disk is not full) before touching any domain. O_EXCL|O_NOFOLLOW and a
            # name nobody can guess: a link planted in advance is never followed.
            probe = os.path.join(self.path, '.write-check-%d-%s' % (os.getpid(), binascii.hexlify(os.urandom(6)).decode()))
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                write_all(fd, b'x' * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except StateDirError:
            raise
        except OSError as exc:
            raise StateDirError('state_dir %s cannot be used: %s' % (self.path, os.strerror(exc.errno) if exc.errno else exc))
        self._migrate_flat()

    def _prepare_host_locks(self):
        _locks.prepare_host_lock_dir(self.host_locks)

    def remove_stale_temp_files(self, now_seconds=None):
        """Remove temporary files a killed run left (older than an hour); returns their paths."""
        # Only tombstones/tmp/ (and the flat directory of earlier versions): never a listing of the finished ones.
        return remove_stale_temp_files((self.temp, self.tombstones), now_seconds or time.time())
