# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's state directory: per-domain locks, the event journal and tombstones.

Layout of ``state_dir`` (0700, owned by the user running the modules):
  events.jsonl         append-only JSON lines, one per event, fsync'd
  locks/<uuid>.lock    flock() files serialising operations on one domain
  tombstones/<uuid>.json  what is left of a terminated domain, with pending volume work
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import fcntl
import json
import os
import socket
import stat
import time

from ansible_collections.deferred.libvirt.plugins.module_utils._record import format_time, utcnow
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError


# Seconds an operation waits for another one's per-domain lock (the lock_timeout option's default).
LOCK_TIMEOUT = 120


class StateDirError(DeferredError):
    """The state directory cannot be used safely; nothing was changed."""


class LockTimeout(DeferredError):
    """Another operation holds the domain's lock for longer than we wait."""


def _check_dir(path, what):
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError('%s %s is a symbolic link; refusing to use it' % (what, path))
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError('%s %s is not a directory' % (what, path))
    if st.st_uid != os.geteuid():
        raise StateDirError('%s %s is owned by uid %d, not by the user running the module (uid %d)'
                            % (what, path, st.st_uid, os.geteuid()))


def _check_file(path, what):
    """A file we append to or lock must be ours and real: a link could make us write (or lock) elsewhere."""
    st = os.lstat(path)
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError('%s %s is a symbolic link; refusing to use it' % (what, path))
    if not stat.S_ISREG(st.st_mode):
        raise StateDirError('%s %s is not a regular file' % (what, path))
    if st.st_uid != os.geteuid():
        raise StateDirError('%s %s is owned by uid %d, not by the user running the module (uid %d)'
                            % (what, path, st.st_uid, os.geteuid()))


class StateDir(object):
    """A checked state directory. Creating one checks that it can be written before anything changes."""

    def __init__(self, path, create=True):
        self.path = os.path.abspath(path)
        self.locks = os.path.join(self.path, 'locks')
        self.tombstones = os.path.join(self.path, 'tombstones')
        self.events = os.path.join(self.path, 'events.jsonl')
        if create:
            self._prepare()

    def _prepare(self):
        try:
            if not os.path.lexists(self.path):
                os.makedirs(self.path, 0o700)
            _check_dir(self.path, 'state_dir')
            for sub in (self.locks, self.tombstones):
                if not os.path.lexists(sub):
                    os.mkdir(sub, 0o700)
                _check_dir(sub, 'state_dir')
            # Checked now, before any domain changes, not at the first event of an operation.
            if os.path.lexists(self.events):
                _check_file(self.events, 'event journal')
            # Prove we can write (and that the disk is not full) before touching any domain.
            probe = os.path.join(self.path, '.write-check-%d' % os.getpid())
            fd = os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                os.write(fd, b'x' * 4096)
                os.fsync(fd)
            finally:
                os.close(fd)
                os.unlink(probe)
        except StateDirError:
            raise
        except OSError as exc:
            raise StateDirError('state_dir %s cannot be used: %s' % (self.path, os.strerror(exc.errno) if exc.errno else exc))

    # -- locks -------------------------------------------------------------

    @contextlib.contextmanager
    def lock(self, uuid, timeout=LOCK_TIMEOUT, name=None):
        """Hold the per-domain lock; raise LockTimeout naming the domain after ``timeout`` seconds."""
        path = os.path.join(self.locks, '%s.lock' % uuid)
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateDirError('lock file %s is a symbolic link; refusing to use it' % path)
            raise StateDirError('lock file %s cannot be opened: %s' % (path, exc.strerror or exc))
        owner = os.fstat(fd).st_uid
        if owner != os.geteuid():
            os.close(fd)
            raise StateDirError('lock file %s is owned by uid %d, not by the user running the module (uid %d)'
                                % (path, owner, os.geteuid()))
        try:
            deadline = time.monotonic() + timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except OSError as exc:
                    if exc.errno not in (errno.EAGAIN, errno.EACCES):
                        raise
                    if time.monotonic() >= deadline:
                        raise LockTimeout('domain %s: another operation has held its lock for more than %ss (%s)'
                                          % (name or uuid, timeout, path))
                    time.sleep(0.1)
            os.ftruncate(fd, 0)
            os.write(fd, ('%d\n' % os.getpid()).encode())
            yield
        finally:
            os.close(fd)

    # -- events ------------------------------------------------------------

    def event(self, event_type, request_id, domain=None, uuid=None, project=None, result=None, **payload):
        """Append one event, flushed and fsync'd; returns the event written."""
        item = {
            'timestamp': format_time(utcnow()),
            'event_type': event_type,
            'request_id': request_id,
            'actor': actor(),
            'os_user': os_user(),
            'host': socket.gethostname(),
            'domain': domain,
            'uuid': uuid,
            'project': project,
            'result': result,
        }
        if payload:
            item['payload'] = payload
        line = (json.dumps(item, sort_keys=True) + '\n').encode('utf-8')
        try:
            fd = os.open(self.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, line)
                os.fsync(fd)
            finally:
                os.close(fd)
        except OSError as exc:
            raise StateDirError('cannot write the event journal %s: %s' % (self.events, exc.strerror or exc))
        return item

    def read_events(self, request_id=None):
        if not os.path.exists(self.events):
            return []
        with open(self.events) as handle:
            items = [json.loads(line) for line in handle if line.strip()]
        return [i for i in items if request_id is None or i.get('request_id') == request_id]

    # -- tombstones --------------------------------------------------------

    def _tomb_path(self, uuid):
        return os.path.join(self.tombstones, '%s.json' % uuid)

    def write_tombstone(self, tombstone):
        """Write atomically (temp file, fsync, rename, fsync dir)."""
        path = self._tomb_path(tombstone['uuid'])
        tmp = path + '.tmp'
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, json.dumps(tombstone, sort_keys=True, indent=1).encode('utf-8'))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, path)
            dfd = os.open(self.tombstones, os.O_RDONLY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError as exc:
            raise StateDirError('cannot write the tombstone %s: %s' % (path, exc.strerror or exc))
        return tombstone

    def read_tombstone(self, uuid):
        path = self._tomb_path(uuid)
        if not os.path.exists(path):
            return None
        with open(path) as handle:
            return json.load(handle)

    def tombstones_list(self):
        if not os.path.isdir(self.tombstones):
            return []
        found = []
        for entry in sorted(os.listdir(self.tombstones)):
            if entry.endswith('.json'):
                try:
                    with open(os.path.join(self.tombstones, entry)) as handle:
                        found.append(json.load(handle))
                except (OSError, ValueError):
                    found.append({'uuid': entry[:-5], 'error': 'unreadable tombstone'})
        return found


def actor():
    """Who runs the operation: the OS user, and the AWX/Tower user when a job template passes one."""
    try:
        import pwd
        user = pwd.getpwuid(os.geteuid()).pw_name
    except (ImportError, KeyError):
        user = str(os.geteuid())
    return os.environ.get('DEFERRED_LIBVIRT_ACTOR') or user


def os_user():
    """The user name of the real uid running the module, whatever actor the caller claims."""
    try:
        import pwd
        return pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        return str(os.getuid())
