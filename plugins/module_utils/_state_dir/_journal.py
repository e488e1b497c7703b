# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The event journal (events.jsonl) and its rotation, and who an event names (actor, os_user).

Every event is one JSON line, appended whole under locks/journal.lock and fsynced. Rotation moves the
journal under that same lock to a name no other file has (link + unlink, never a rename over a file), so no
line is lost, split or overwritten; rotated files (events-<UTC stamp>[-N].jsonl) are read by the same tools
and removed after the journal retention.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import contextlib
import errno
import datetime
import json
import os
import socket
import time

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._record import format_time, parse_time, utcnow
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._files import fsync_dir, write_all
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._layout import (
    JOURNAL_LOCK, ROTATED, check_file, check_file_stat)
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._locks import LockTimeout, flock


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


class Journal(object):
    """The event journal of a StateDir: ``path``, ``locks`` and ``events`` are the StateDir's."""

    @contextlib.contextmanager
    def _journal_locked(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        with flock(self.locks, JOURNAL_LOCK, deadline, timeout, 'event journal %s' % self.events):
            yield

    def event(self, event_type, request_id, domain=None, uuid=None, project=None, result=None, **payload):
        """Append one event line, whole or not at all, and fsync it; returns the event written."""
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
            with self._journal_locked():
                fd = os.open(self.events, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, 0o600)
                try:
                    check_file_stat(os.fstat(fd), self.events, 'event journal')
                    start = os.fstat(fd).st_size
                    try:
                        write_all(fd, line)
                    except OSError:
                        # Under the journal lock nobody else appends: cut our partial line off again.
                        try:
                            os.ftruncate(fd, start)
                        except OSError:
                            pass
                        raise
                except BaseException:
                    os.close(fd)
                    raise
            # fsync outside the lock: it flushes this file whatever its name is by then.
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        except LockTimeout as exc:
            raise StateDirError('cannot write the event journal %s: %s' % (self.events, exc))
        except OSError as exc:
            raise StateDirError('cannot write the event journal %s: %s' % (self.events, exc.strerror or exc))
        return item

    def journal_files(self):
        """The rotated journal files, oldest first, then the current one (paths that exist)."""
        found = []
        try:
            entries = os.listdir(self.path)
        except OSError:
            return []
        for entry in entries:
            match = ROTATED.match(entry)
            if match:
                found.append((match.group(1), int(match.group(2) or 0), entry))
        paths = [os.path.join(self.path, e) for dummy, dummy2, e in sorted(found)]
        if os.path.exists(self.events):
            paths.append(self.events)
        return paths

    def read_events(self, request_id=None, rotated=False):
        """Events of the journal (and of its rotated files with ``rotated``); lines that are not JSON objects are skipped."""
        paths = self.journal_files() if rotated else ([self.events] if os.path.exists(self.events) else [])
        items = []
        for path in paths:
            try:
                fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
            except OSError:
                continue
            with os.fdopen(fd, 'rb') as handle:
                for raw in handle:
                    if not raw.endswith(b'\n'):
                        continue  # a line still being written
                    try:
                        item = json.loads(raw.decode('utf-8'))
                    except ValueError:
                        continue
                    if isinstance(item, dict) and (request_id is None or item.get('request_id') == request_id):
                        items.append(item)
        return items

    def rotate_journal(self, max_size=None, max_age=None, retention=None, now=None, check_mode=False):
        """Rotate events.jsonl when bigger than ``max_size`` bytes or its first line older than ``max_age`` seconds;
        remove rotated files older than ``retention`` seconds. Returns {'rotated': path or None, 'removed': [paths]}.

        Whether it is due, its rotated name and the move all happen under the journal lock, which every append
        holds while it writes: no line is lost or split. The move is link() to a free name plus unlink(), never a
        rename over an existing file, so a rotated journal is never replaced, even by two sweeps of one
        state_dir in the same second (a counter suffix, events-<stamp>-N.jsonl, keeps the names apart).
        """
        now = now or utcnow()
        out = {'rotated': None, 'removed': []}
        if check_mode:
            due = self._rotation_due(max_size, max_age, now)
            if due:
                out['rotated'], out['reason'] = self._rotated_name(now), due
        else:
            try:
                with self._journal_locked():
                    # Decided and named under the lock: a sweep that rotated the journal first leaves this one
                    # a fresh (or no) journal, and two rotations in one second get two names.
                    due = self._rotation_due(max_size, max_age, now)
                    if due:
                        check_file(self.events, 'event journal')
                        out['rotated'], out['reason'] = self._link_rotated(now), due
                        os.unlink(self.events)
                        fsync_dir(self.path)
            except (OSError, LockTimeout) as exc:
                raise StateDirError('cannot rotate the event journal %s: %s' % (self.events, getattr(exc, 'strerror', None) or exc))
        if retention is not None:
            cutoff = now - datetime.timedelta(seconds=retention)
            for path in self.journal_files():
                match = ROTATED.match(os.path.basename(path))
                if not match:
                    continue
                closed = datetime.datetime.strptime(match.group(1), '%Y%m%dT%H%M%SZ').replace(tzinfo=datetime.timezone.utc)
                if closed < cutoff:
                    out['removed'].append(path)
                    if not check_mode:
                        try:
                            os.unlink(path)
                        except OSError as exc:
                            raise StateDirError('cannot remove the rotated journal %s: %s' % (path, exc.strerror or exc))
        return out

    def _first_time(self):
        try:
            fd = os.open(self.events, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            return None
        with os.fdopen(fd, 'rb') as handle:
            line = handle.readline(65536)
        try:
            return parse_time(json.loads(line.decode('utf-8'))['timestamp'])
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
            return None

    def _rotation_due(self, max_size, max_age, now):
        """Why events.jsonl is due for rotation, or None (also when it is missing or empty)."""
        try:
            st = os.lstat(self.events)
        except OSError:
            return None
        if st.st_size == 0:
            return None
        if max_size is not None and st.st_size > max_size:
            return 'size %d bytes > %d' % (st.st_size, max_size)
        if max_age is not None:
            first = self._first_time()
            if first is None or (now - first).total_seconds() >= max_age:
                return 'first event older than %ds' % max_age
        return None

    def _candidates(self, now):
        stamp = now.strftime('%Y%m%dT%H%M%SZ')
        yield os.path.join(self.path, 'events-%s.jsonl' % stamp)
        n = 0
        while True:
            n += 1
            yield os.path.join(self.path, 'events-%s-%d.jsonl' % (stamp, n))

    def _rotated_name(self, now):
        """The first free rotated name (what a rotation would pick now; check mode reports it)."""
        for candidate in self._candidates(now):
            if not os.path.lexists(candidate):
                return candidate

    def _link_rotated(self, now):
        """Give events.jsonl its rotated name with link(), which never replaces an existing file; returns the name.

        Called under the journal lock; a name taken by anyone (another sweep, an earlier version that renamed
        outside the lock, a file copied in) is skipped for the next counter suffix.
        """
        for candidate in self._candidates(now):
            try:
                os.link(self.events, candidate)
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    continue
                raise
            return candidate
