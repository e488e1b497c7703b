# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-domain locks, taken twice, and the removal of lock files nobody needs any more.

Per-domain locks are taken twice: first in the host-wide lock directory (the same whatever state_dir a
caller passes, so an AWX job and a timer pointing at different state_dirs still serialise on a domain),
then in the state_dir's locks/ (so callers of one state_dir from earlier versions serialise with us too).

Lock files may be removed by the retention sweep, under the lock; a lock taker that locked a file that
was removed meanwhile notices (its inode is no longer the path's) and takes the lock again.

A lock file names the libvirt connection (URI) of the domain it locks: one host lock directory serves
every connection of the host (qemu:///system, qemu:///session, test:///default), and a sweep knows only
the domains of its own connection, so it removes only the lock files that name that connection. A file
that names another connection, or none (written by an earlier version) in the host lock directory, is left
alone; in the state_dir's own locks/ a file that names none is removed as before, so a state_dir does not
keep the lock files of earlier versions for ever.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import fcntl
import json
import os
import time

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError, StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._files import write_all
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._layout import (
    check_dir, check_dir_stat, check_file_stat)
from ansible_collections.deferred.libvirt.plugins.module_utils._tombstone import is_uuid

# The host-wide lock directory (issue 12 #13). /run/lock is a tmpfs on most distributions: lock files
# need not survive a reboot, and a fresh boot starts with an empty directory.
HOST_LOCK_PARENTS = ('/run/lock', '/var/lock')
HOST_LOCK_NAME = 'deferred-libvirt'
# Another host lock directory for every run of a test suite (so its runs never touch the host's real one); a
# deployment leaves it unset: two callers serialise on a domain only while they share the directory.
HOST_LOCK_DIR_ENV = 'DEFERRED_LIBVIRT_HOST_LOCK_DIR'

# Seconds an operation waits for another one's per-domain lock (the lock_timeout option's default).
LOCK_TIMEOUT = 120
# The line of a lock file that names its connection; the first line is the pid of the last holder, as before.
CONNECTION_PREFIX = 'connection '
# A lock file is two short lines; more than this was not written by us.
MAX_LOCK_FILE_BYTES = 65536


class LockTimeout(DeferredError):
    """Another operation holds the domain's lock for longer than we wait."""


def platform_host_lock_dir():
    """The host-wide lock directory of the user running the module (root: /run/lock/deferred-libvirt)."""
    for parent in HOST_LOCK_PARENTS:
        if os.path.isdir(parent):
            break
    else:
        parent = HOST_LOCK_PARENTS[0]
    name = HOST_LOCK_NAME if os.geteuid() == 0 else '%s-%d' % (HOST_LOCK_NAME, os.geteuid())
    return os.path.join(os.path.realpath(parent), name)


def default_host_lock_dir():
    """The host lock directory a StateDir uses when its caller names none: HOST_LOCK_DIR_ENV when set, else the
    platform's."""
    override = os.environ.get(HOST_LOCK_DIR_ENV)
    if override:
        return os.path.abspath(override)
    return platform_host_lock_dir()


def prepare_host_lock_dir(path):
    """Create the host lock directory (0700) if needed, and refuse one we cannot trust."""
    try:
        os.mkdir(path, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise StateDirError('host lock directory %s cannot be created: %s' % (path, exc.strerror or exc))
    check_dir(path, 'host lock directory')


def lock_file_content(connection=None):
    """What a holder writes into a lock file: its pid, and the connection whose domain it locks."""
    text = '%d\n' % os.getpid()
    if connection is not None:
        text += '%s%s\n' % (CONNECTION_PREFIX, json.dumps(connection))
    return text.encode('utf-8')


def named_connection(fd):
    """The connection a lock file names, or None (none named: an earlier version's file, or one being rewritten)."""
    try:
        raw = os.pread(fd, MAX_LOCK_FILE_BYTES, 0)
    except OSError:
        return None
    for line in raw.decode('utf-8', 'replace').splitlines():
        if line.startswith(CONNECTION_PREFIX):
            try:
                value = json.loads(line[len(CONNECTION_PREFIX):])
            except ValueError:
                return None
            return value if isinstance(value, str) else None
    return None


def open_lock_file(directory, filename, create=True):
    """An fd on directory/filename, checked (ours, regular, one link); None when it does not exist and not create."""
    what = 'lock file'
    path = os.path.join(directory, filename)
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ELOOP or exc.errno == errno.ENOTDIR:
            raise StateDirError('lock directory %s is a symbolic link or not a directory; refusing to use it'
                                % directory)
        if exc.errno == errno.ENOENT and not create:
            return None
        raise StateDirError('lock directory %s cannot be opened: %s' % (directory, exc.strerror or exc))
    try:
        check_dir_stat(os.fstat(dfd), directory, 'lock directory')
        flags = os.O_RDWR | os.O_NOFOLLOW | (os.O_CREAT if create else 0)
        try:
            fd = os.open(filename, flags, 0o600, dir_fd=dfd)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateDirError('%s %s is a symbolic link; refusing to use it' % (what, path))
            if exc.errno == errno.ENOENT and not create:
                return None
            raise StateDirError('%s %s cannot be opened: %s' % (what, path, exc.strerror or exc))
        try:
            check_file_stat(os.fstat(fd), path, what)
        except StateDirError:
            os.close(fd)
            raise
        return fd, dfd
    except Exception:
        os.close(dfd)
        raise


def still_linked(fd, dfd, filename):
    """After flock: is the file we locked still the one at the path (the retention sweep may have removed it)?"""
    mine = os.fstat(fd)
    if mine.st_nlink == 0:
        return False
    try:
        there = os.stat(filename, dir_fd=dfd, follow_symlinks=False)
    except OSError:
        return False
    return (there.st_dev, there.st_ino) == (mine.st_dev, mine.st_ino)


@contextlib.contextmanager
def flock(directory, filename, deadline, timeout, label, wait=True, connection=None):
    """Hold an exclusive flock on directory/filename (created if needed) until the block ends; LockTimeout after
    ``deadline``. The holder writes its pid (and ``connection``) into the file."""
    while True:
        fd, dfd = open_lock_file(directory, filename)
        try:
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if not wait or time.monotonic() >= deadline:
                        raise LockTimeout('%s: another operation has held its lock for more than %ss (%s)'
                                          % (label, timeout, os.path.join(directory, filename)))
                    time.sleep(0.05)
            if not still_linked(fd, dfd, filename):
                continue  # removed (and maybe recreated) while we waited: lock the file that is there now
            os.ftruncate(fd, 0)
            write_all(fd, lock_file_content(connection))
            yield
            return
        finally:
            os.close(fd)
            os.close(dfd)


class Locks(object):
    """The per-domain locks of a StateDir: ``host_locks``, ``locks`` and ``connection`` are the StateDir's."""

    @contextlib.contextmanager
    def lock(self, uuid, timeout=LOCK_TIMEOUT, name=None):
        """Hold the per-domain lock (host-wide, then the state_dir's); LockTimeout naming the domain after ``timeout``."""
        if not is_uuid(uuid):
            raise StateDirError('refusing to lock %r: not a domain UUID' % (uuid,))
        deadline = time.monotonic() + timeout
        label = 'domain %s' % (name or uuid)
        filename = '%s.lock' % uuid
        with flock(self.host_locks, filename, deadline, timeout, label, connection=self.connection):
            with flock(self.locks, filename, deadline, timeout, label, connection=self.connection):
                yield

    def _prunable(self, directory, connection):
        """Whether this StateDir's sweep may remove a lock file of ``directory`` that names ``connection``."""
        if connection == self.connection:
            return True
        # An earlier version's file names no connection: in the host lock directory it may be another connection's
        # (it goes at the next boot); in the state_dir's own locks/ it is removed as before.
        return connection is None and directory == self.locks

    def remove_lock_files(self, keep, check_mode=False):
        """Remove the lock files of UUIDs not in ``keep`` that nobody holds (under their lock) and that name this
        StateDir's connection; returns the paths removed. In ``check_mode``, the paths that would be (held or not:
        check mode takes no lock), and nothing is removed."""
        removed = []
        for directory in (self.host_locks, self.locks):
            try:
                entries = os.listdir(directory)
            except OSError:
                continue
            for entry in sorted(entries):
                uuid = entry[:-5] if entry.endswith('.lock') else None
                if not is_uuid(uuid) or uuid in keep:
                    continue
                if self._remove_lock_file(directory, entry, check_mode):
                    removed.append(os.path.join(directory, entry))
        return removed

    def _remove_lock_file(self, directory, filename, check_mode=False):
        try:
            opened = open_lock_file(directory, filename, create=False)
        except StateDirError:
            return False  # not ours or not a plain file: left for the operator (the next lock() reports it)
        if opened is None:
            return False
        fd, dfd = opened
        try:
            if check_mode:
                return self._prunable(directory, named_connection(fd))
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # held: a run is using it
            if not still_linked(fd, dfd, filename):
                return False
            # Read under the flock: a holder rewrites the file only while it holds it.
            if not self._prunable(directory, named_connection(fd)):
                return False
            # Unlinked while we hold it: a run that opened it meanwhile sees its inode gone after its flock and retries.
            os.unlink(filename, dir_fd=dfd)
            return True
        finally:
            os.close(fd)
            os.close(dfd)
