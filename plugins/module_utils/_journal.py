# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's state directory: per-domain locks, the event journal and tombstones.

Layout of ``state_dir`` (0700, owned by the user running the modules; a directory that is group- or
world-writable or owned by someone else is refused):
  events.jsonl                 the event journal: JSON lines, each appended whole under locks/journal.lock
  events-<UTC stamp>.jsonl     rotated journal files (same format), removed after the journal retention
  locks/<uuid>.lock            flock() files of the state_dir's per-domain locks
  locks/journal.lock           serialises journal appends with its rotation
  tombstones/pending/<uuid>.json    tombstones with work left (not undefined yet, or Cinder work pending):
                                    the only ones an operation reads
  tombstones/finished/<uuid>.json   tombstones whose terminate is complete, kept for the tombstone retention
  tombstones/history/<uuid>.<stamp>.json  earlier tombstones of a UUID that was terminated again
  tombstones/by-day/<YYYY-MM-DD>/<uuid>[.<stamp>]  empty markers: which finished tombstones finished on that day,
                                    so the retention sweep reads only the days past the retention
  tombstones/names/<sha256(name)[:32]>/<uuid>  empty markers: finished tombstones by domain name
  tombstones/tmp/              temporary files of writes in progress (renamed into place when whole)
  tombstones/<uuid>.json       the flat layout of earlier versions: still read, moved into the layout above
                               by the first run that can write

Per-domain locks are taken twice: first in the host-wide lock directory (HOST_LOCK_DIR, the same
whatever state_dir a caller passes, so an AWX job and a timer pointing at different state_dirs still
serialise on a domain), then in the state_dir's locks/ (so callers of one state_dir from earlier
versions serialise with us too). Lock files may be removed by the retention sweep, under the lock;
a lock taker that locked a file that was removed meanwhile notices (its inode is no longer the
path's) and takes the lock again.

Nothing read back from disk is trusted: directories and files must be ours, not links, not
writable by others; a tombstone must be a JSON object whose uuid is a UUID equal to its file
name and whose fields have the types this collection writes. Anything else is reported, never used.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import contextlib
import datetime
import errno
import fcntl
import hashlib
import json
import os
import re
import socket
import stat
import time

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError, StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._record import format_time, parse_time, utcnow
from ansible_collections.deferred.libvirt.plugins.module_utils._tombstone import (
    TombstoneError, finished as is_finished, is_uuid, validate_tombstone)

# The host-wide lock directory (issue 12 #13). /run/lock is a tmpfs on most distributions: lock files
# need not survive a reboot, and a fresh boot starts with an empty directory.
HOST_LOCK_PARENTS = ('/run/lock', '/var/lock')
HOST_LOCK_NAME = 'deferred-libvirt'
JOURNAL = 'events.jsonl'
ROTATED = re.compile(r'^events-(\d{8}T\d{6}Z)(?:-(\d+))?\.jsonl$')
HISTORY_RE = re.compile(r'^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{8}T\d{6}Z(?:-\d+)?)$')
# A tombstone is a few KiB; anything much bigger was not written by us.
MAX_TOMBSTONE_BYTES = 4 * 1024 * 1024
# Temporary files older than this are leftovers of a killed run (the sweep removes them).
STALE_TEMP_SECONDS = 3600


# Seconds an operation waits for another one's per-domain lock (the lock_timeout option's default).
LOCK_TIMEOUT = 120


class LockTimeout(DeferredError):
    """Another operation holds the domain's lock for longer than we wait."""


def default_host_lock_dir():
    """The host-wide lock directory of the user running the module (root: /run/lock/deferred-libvirt)."""
    for parent in HOST_LOCK_PARENTS:
        if os.path.isdir(parent):
            break
    else:
        parent = HOST_LOCK_PARENTS[0]
    name = HOST_LOCK_NAME if os.geteuid() == 0 else '%s-%d' % (HOST_LOCK_NAME, os.geteuid())
    return os.path.join(os.path.realpath(parent), name)


def _mode_problem(st):
    bits = st.st_mode & 0o022
    if bits:
        who = 'group- and world' if bits == 0o022 else 'group' if bits & 0o020 else 'world'
        return 'is %s-writable (mode %04o)' % (who, stat.S_IMODE(st.st_mode))
    return None


def _check_dir_stat(st, path, what):
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError('%s %s is a symbolic link; refusing to use it' % (what, path))
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError('%s %s is not a directory' % (what, path))
    if st.st_uid != os.geteuid():
        raise StateDirError('%s %s is owned by uid %d, not by the user running the module (uid %d)'
                            % (what, path, st.st_uid, os.geteuid()))
    problem = _mode_problem(st)
    if problem:
        raise StateDirError('%s %s %s: anyone who can write there can plant files the module trusts; make it '
                            'private (chmod 0700 %s)' % (what, path, problem, path))


def _check_dir(path, what):
    _check_dir_stat(os.lstat(path), path, what)


def _check_file_stat(st, path, what):
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError('%s %s is a symbolic link; refusing to use it' % (what, path))
    if not stat.S_ISREG(st.st_mode):
        raise StateDirError('%s %s is not a regular file' % (what, path))
    if st.st_uid != os.geteuid():
        raise StateDirError('%s %s is owned by uid %d, not by the user running the module (uid %d)'
                            % (what, path, st.st_uid, os.geteuid()))
    if st.st_nlink > 1:
        # A hard link planted here would make us write into (or truncate) a file elsewhere.
        raise StateDirError('%s %s has %d hard links; refusing to write through it' % (what, path, st.st_nlink))
    problem = _mode_problem(st)
    if problem:
        raise StateDirError('%s %s %s; make it private (chmod 0600 %s)' % (what, path, problem, path))


def _check_file(path, what):
    """A file we append to or lock must be ours and real: a link could make us write (or lock) elsewhere."""
    _check_file_stat(os.lstat(path), path, what)


def write_all(fd, data):
    """Write every byte of ``data`` or raise OSError: a short write is carried on, a write of nothing fails."""
    view = memoryview(data)
    done = 0
    while done < len(view):
        written = os.write(fd, view[done:])
        if not written:
            raise OSError(errno.ENOSPC, 'short write: %d of %d bytes written' % (done, len(view)))
        done += written
    return done


def _fsync_dir(path):
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _temp_name(final):
    return '.%s.%s.tmp' % (final, binascii.hexlify(os.urandom(6)).decode())


def _name_key(name):
    return hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:32]


def _stamp(text):
    """A file-name stamp (20261201T135927Z) for a UTC ISO time, or now."""
    try:
        value = parse_time(text) if text else utcnow()
    except (ValueError, OverflowError, TypeError):
        value = utcnow()
    return value.strftime('%Y%m%dT%H%M%SZ')


# -- the state dir ------------------------------------------------------------------------------------------------------

class StateDir(object):
    """A checked state directory. Creating one checks that it can be written before anything changes."""

    def __init__(self, path, create=True, host_lock_dir=None):
        self.path = os.path.abspath(path)
        self.locks = os.path.join(self.path, 'locks')
        self.host_locks = host_lock_dir or default_host_lock_dir()
        self.tombstones = os.path.join(self.path, 'tombstones')
        self.pending = os.path.join(self.tombstones, 'pending')
        self.finished = os.path.join(self.tombstones, 'finished')
        self.history = os.path.join(self.tombstones, 'history')
        self.by_day = os.path.join(self.tombstones, 'by-day')
        self.names = os.path.join(self.tombstones, 'names')
        self.temp = os.path.join(self.tombstones, 'tmp')
        self.events = os.path.join(self.path, JOURNAL)
        self.journal_lock = os.path.join(self.locks, 'journal.lock')
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
        _check_dir(self.path, 'state_dir')
        for sub in self._subdirs():
            if os.path.lexists(sub):
                _check_dir(sub, 'state_dir')
        if os.path.lexists(self.events):
            _check_file(self.events, 'event journal')

    def _prepare(self):
        try:
            if not os.path.lexists(self.path):
                os.makedirs(self.path, 0o700)
            _check_dir(self.path, 'state_dir')
            for sub in self._subdirs():
                if not os.path.lexists(sub):
                    os.mkdir(sub, 0o700)
                _check_dir(sub, 'state_dir')
            self._prepare_host_locks()
            # Checked now, before any domain changes, not at the first event of an operation.
            if os.path.lexists(self.events):
                _check_file(self.events, 'event journal')
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
        path = self.host_locks
        try:
            os.mkdir(path, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise StateDirError('host lock directory %s cannot be created: %s' % (path, exc.strerror or exc))
        _check_dir(path, 'host lock directory')

    # -- locks -------------------------------------------------------------

    def _open_lock_file(self, directory, filename, create=True):
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
            _check_dir_stat(os.fstat(dfd), directory, 'lock directory')
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
                _check_file_stat(os.fstat(fd), path, what)
            except StateDirError:
                os.close(fd)
                raise
            return fd, dfd
        except Exception:
            os.close(dfd)
            raise

    @staticmethod
    def _still_linked(fd, dfd, filename):
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
    def _flock(self, directory, filename, deadline, timeout, label, wait=True):
        while True:
            fd, dfd = self._open_lock_file(directory, filename)
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
                if not self._still_linked(fd, dfd, filename):
                    continue  # removed (and maybe recreated) while we waited: lock the file that is there now
                os.ftruncate(fd, 0)
                write_all(fd, ('%d\n' % os.getpid()).encode())
                yield
                return
            finally:
                os.close(fd)
                os.close(dfd)

    @contextlib.contextmanager
    def lock(self, uuid, timeout=LOCK_TIMEOUT, name=None):
        """Hold the per-domain lock (host-wide, then the state_dir's); LockTimeout naming the domain after ``timeout``."""
        if not is_uuid(uuid):
            raise StateDirError('refusing to lock %r: not a domain UUID' % (uuid,))
        deadline = time.monotonic() + timeout
        label = 'domain %s' % (name or uuid)
        filename = '%s.lock' % uuid
        with self._flock(self.host_locks, filename, deadline, timeout, label):
            with self._flock(self.locks, filename, deadline, timeout, label):
                yield

    def remove_lock_files(self, keep):
        """Remove the lock files of UUIDs not in ``keep`` that nobody holds (under their lock); returns the paths removed."""
        removed = []
        for directory in (self.host_locks, self.locks):
            try:
                entries = os.listdir(directory)
            except OSError:
                continue
            for entry in entries:
                uuid = entry[:-5] if entry.endswith('.lock') else None
                if not is_uuid(uuid) or uuid in keep:
                    continue
                if self._remove_lock_file(directory, entry):
                    removed.append(os.path.join(directory, entry))
        return removed

    def _remove_lock_file(self, directory, filename):
        try:
            opened = self._open_lock_file(directory, filename, create=False)
        except StateDirError:
            return False  # not ours or not a plain file: left for the operator (the next lock() reports it)
        if opened is None:
            return False
        fd, dfd = opened
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                return False  # held: a run is using it
            if not self._still_linked(fd, dfd, filename):
                return False
            # Unlinked while we hold it: a run that opened it meanwhile sees its inode gone after its flock and retries.
            os.unlink(filename, dir_fd=dfd)
            return True
        finally:
            os.close(fd)
            os.close(dfd)

    # -- events ------------------------------------------------------------

    @contextlib.contextmanager
    def _journal_locked(self, timeout=60.0):
        deadline = time.monotonic() + timeout
        with self._flock(self.locks, 'journal.lock', deadline, timeout, 'event journal %s' % self.events):
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
                    _check_file_stat(os.fstat(fd), self.events, 'event journal')
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

        Rotation is a rename under the journal lock, which every append holds while it writes: no line is
        lost or split, and a line appended by an earlier version (without the lock) lands whole in one file or
        the other.
        """
        now = now or utcnow()
        out = {'rotated': None, 'removed': []}
        try:
            st = os.lstat(self.events)
        except OSError:
            st = None
        due = None
        if st is not None and st.st_size > 0:
            if max_size is not None and st.st_size > max_size:
                due = 'size %d bytes > %d' % (st.st_size, max_size)
            elif max_age is not None:
                first = self._first_time()
                if first is None or (now - first).total_seconds() >= max_age:
                    due = 'first event older than %ds' % max_age
        if due:
            target = self._rotated_name(now)
            out['rotated'], out['reason'] = target, due
            if not check_mode:
                try:
                    with self._journal_locked():
                        _check_file(self.events, 'event journal')
                        os.rename(self.events, target)
                        _fsync_dir(self.path)
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

    def _rotated_name(self, now):
        stamp = now.strftime('%Y%m%dT%H%M%SZ')
        candidate = os.path.join(self.path, 'events-%s.jsonl' % stamp)
        n = 0
        while os.path.lexists(candidate):
            n += 1
            candidate = os.path.join(self.path, 'events-%s-%d.jsonl' % (stamp, n))
        return candidate

    # -- tombstones: reading -------------------------------------------------

    def _read_json(self, path, file_uuid):
        """A validated tombstone from ``path``; None if absent; TombstoneError if it is not trustworthy."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return None
            if exc.errno == errno.ELOOP:
                raise TombstoneError('tombstone %s is a symbolic link; refusing to read it' % path)
            raise TombstoneError('tombstone %s cannot be read: %s' % (path, exc.strerror or exc))
        with os.fdopen(fd, 'rb') as handle:
            st = os.fstat(handle.fileno())
            if not stat.S_ISREG(st.st_mode):
                raise TombstoneError('tombstone %s is not a regular file' % path)
            if st.st_uid != os.geteuid():
                raise TombstoneError('tombstone %s is owned by uid %d, not by the user running the module (uid %d)'
                                     % (path, st.st_uid, os.geteuid()))
            if st.st_size > MAX_TOMBSTONE_BYTES:
                raise TombstoneError('tombstone %s is %d bytes, more than a tombstone can be' % (path, st.st_size))
            raw = handle.read(MAX_TOMBSTONE_BYTES + 1)
        try:
            data = json.loads(raw.decode('utf-8'))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TombstoneError('tombstone %s is not valid JSON (%s)' % (path, str(exc)[:100]))
        validate_tombstone(data, file_uuid, path)
        data['_mtime'] = st.st_mtime_ns
        return data

    @staticmethod
    def _clean(tomb):
        if tomb is not None:
            tomb.pop('_mtime', None)
        return tomb

    def _current(self, uuid):
        """(tombstone, where) of the current tombstone of ``uuid``: where is 'pending', 'finished' or 'flat'."""
        found = []
        for where, directory in (('pending', self.pending), ('finished', self.finished), ('flat', self.tombstones)):
            tomb = self._read_json(os.path.join(directory, '%s.json' % uuid), uuid)
            if tomb is not None:
                found.append((tomb, where))
        if not found:
            return None, None
        # Two copies only after a run was killed between writing one and removing the other (or an earlier version
        # wrote the flat one): the newest write wins.
        found.sort(key=lambda pair: (pair[0].get('revision') or 0, pair[0]['_mtime'], pair[1] == 'finished'))
        tomb, where = found[-1]
        return tomb, where

    def read_tombstone(self, uuid):
        """The current tombstone of ``uuid`` (validated), or None; TombstoneError when the one on disk is not trustworthy."""
        if not is_uuid(uuid):
            raise TombstoneError('refusing to read a tombstone for %r: not a domain UUID' % (uuid,))
        return self._clean(self._current(uuid)[0])

    def _list_dir(self, directory):
        """(uuid, path) of the *.json files in ``directory``; unreadable or foreign names as (None, path)."""
        try:
            entries = os.listdir(directory)
        except OSError:
            return []
        found = []
        for entry in sorted(entries):
            if entry.endswith('.json') and not entry.startswith('.'):
                stem = entry[:-5]
                found.append((stem if is_uuid(stem) else None, os.path.join(directory, entry)))
        return found

    def _error_entry(self, uuid, path, exc):
        return {'uuid': uuid, 'name': None, 'file': path, 'error': str(exc)}

    def _read_listed(self, entries):
        out = []
        for uuid, path in entries:
            if uuid is None:
                out.append(self._error_entry(None, path, 'tombstone %s: its file name is not a domain UUID' % path))
                continue
            try:
                tomb = self._read_json(path, uuid)
            except TombstoneError as exc:
                out.append(self._error_entry(uuid, path, exc))
                continue
            if tomb is not None:
                out.append(tomb)
        return out

    def pending_tombstones(self):
        """Every tombstone with work left (and every one that cannot be read), never the finished ones.

        The cost is that of the pending and flat (not yet migrated) tombstones, whatever the number of finished ones.
        """
        out, seen = [], set()
        flat = self._read_listed(self._list_dir(self.tombstones))
        for tomb in self._read_listed(self._list_dir(self.pending)) + flat:
            uuid = tomb.get('uuid')
            if tomb.get('error'):
                out.append(tomb)
                continue
            if uuid in seen:
                continue
            seen.add(uuid)
            current, dummy = self._current(uuid)
            if current is not None and not is_finished(current):
                out.append(self._clean(current))
        return out

    def find_tombstones(self, key):
        """The current tombstones whose UUID or domain name is ``key`` (pending or finished), in O(1) of the rest."""
        key = str(key).strip()
        found = {}
        if is_uuid(key.lower()):
            try:
                tomb = self.read_tombstone(key.lower())
            except TombstoneError as exc:
                tomb = self._error_entry(key.lower(), self.finished, exc)
            if tomb is not None:
                found[tomb['uuid']] = tomb
        directory = os.path.join(self.names, _name_key(key))
        try:
            uuids = os.listdir(directory)
        except OSError:
            uuids = []
        for uuid in sorted(uuids):
            if not is_uuid(uuid) or uuid in found:
                continue
            try:
                tomb = self.read_tombstone(uuid)
            except TombstoneError:
                continue
            if tomb is not None and tomb.get('name') == key:
                found[uuid] = tomb
        return list(found.values())

    def tombstones_for(self, names=None):
        """What an operation needs: every pending tombstone, and the finished ones named in ``names`` (names or UUIDs)."""
        out = self.pending_tombstones()
        seen = set(t.get('uuid') for t in out if t.get('uuid'))
        for key in names or []:
            for tomb in self.find_tombstones(key):
                if tomb.get('uuid') not in seen:
                    seen.add(tomb.get('uuid'))
                    out.append(tomb)
        return out

    def tombstones_list(self, include_history=False):
        """Every current tombstone (pending and finished; with ``include_history`` the earlier ones too). O(all): for
        vm_info include_deleted, which shows them all."""
        out = self.pending_tombstones()
        seen = set(t.get('uuid') for t in out if not t.get('error'))
        for tomb in self._read_listed(self._list_dir(self.finished)):
            uuid = tomb.get('uuid')
            if tomb.get('error'):
                out.append(tomb)
            elif uuid not in seen:
                seen.add(uuid)
                out.append(self._clean(tomb))
        if include_history:
            for entry in sorted(os.listdir(self.history)) if os.path.isdir(self.history) else []:
                match = HISTORY_RE.match(entry[:-5]) if entry.endswith('.json') else None
                if match:
                    try:
                        tomb = self._read_json(os.path.join(self.history, entry), match.group(1))
                    except TombstoneError as exc:
                        out.append(self._error_entry(match.group(1), os.path.join(self.history, entry), exc))
                        continue
                    if tomb is not None:
                        out.append(dict(self._clean(tomb), history_of=match.group(1)))
        return out

    def tombstone_history(self, uuid):
        """The earlier tombstones of ``uuid`` (a UUID terminated more than once), oldest first."""
        if not is_uuid(uuid):
            return []
        out = []
        try:
            entries = sorted(os.listdir(self.history))
        except OSError:
            return []
        for entry in entries:
            match = HISTORY_RE.match(entry[:-5]) if entry.endswith('.json') else None
            if match and match.group(1) == uuid:
                tomb = self._read_json(os.path.join(self.history, entry), uuid)
                if tomb is not None:
                    out.append(self._clean(tomb))
        return out

    # -- tombstones: writing -------------------------------------------------

    def _write_file(self, directory, filename, data):
        """Write ``data`` to directory/filename atomically: a private temp file in tombstones/tmp/ (O_EXCL|O_NOFOLLOW, a
        name nobody can guess), every byte written and checked, fsync, rename, fsync of the directory."""
        tmp = os.path.join(self.temp, _temp_name(filename))
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            try:
                write_all(fd, data)
                if os.fstat(fd).st_size != len(data):
                    raise OSError(errno.EIO, 'wrote %d bytes, the file has %d' % (len(data), os.fstat(fd).st_size))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(tmp, os.path.join(directory, filename))
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
        _fsync_dir(directory)

    def _marker(self, directory, filename):
        """Create an empty marker file (retrying when a sweep removed its empty directory meanwhile)."""
        for dummy in range(5):
            try:
                os.mkdir(directory, 0o700)
            except OSError as exc:
                if exc.errno != errno.EEXIST:
                    raise
            try:
                fd = os.open(os.path.join(directory, filename), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                             0o600)
                os.close(fd)
                return
            except OSError as exc:
                if exc.errno == errno.EEXIST:
                    return
                if exc.errno != errno.ENOENT:
                    raise

    @staticmethod
    def _unlink(path):
        try:
            os.unlink(path)
            return True
        except OSError as exc:
            if exc.errno != errno.ENOENT:
                raise
            return False

    def write_tombstone(self, tombstone):
        """Write the current tombstone of its UUID, whole or not at all; called under the domain's lock.

        Sets ``revision`` (one more than before) and, when it becomes finished, ``finished_at``, in place.
        A finished tombstone goes to finished/ (and is indexed by day and name), any other to pending/.
        """
        uuid = tombstone.get('uuid')
        if not is_uuid(uuid):
            raise StateDirError('refusing to write a tombstone for %r: not a domain UUID' % (uuid,))
        finished = is_finished(tombstone)
        if finished and not tombstone.get('finished_at'):
            tombstone['finished_at'] = format_time(utcnow())
        tombstone['revision'] = (tombstone.get('revision') or 0) + 1
        directory = self.finished if finished else self.pending
        path = os.path.join(directory, '%s.json' % uuid)
        try:
            data = json.dumps(tombstone, sort_keys=True, indent=1).encode('utf-8')
            if finished:
                # Index first: a crash leaves an index entry without a file (harmless), never a file without one.
                self._marker(os.path.join(self.by_day, self._day(tombstone)), uuid)
                if isinstance(tombstone.get('name'), str):
                    self._marker(os.path.join(self.names, _name_key(tombstone['name'])), uuid)
            self._write_file(directory, '%s.json' % uuid, data)
            other = self.pending if finished else self.finished
            for stale in (os.path.join(other, '%s.json' % uuid), os.path.join(self.tombstones, '%s.json' % uuid)):
                if self._unlink(stale):
                    _fsync_dir(os.path.dirname(stale))
        except OSError as exc:
            raise StateDirError('cannot write the tombstone %s: %s' % (path, exc.strerror or exc))
        return tombstone

    @staticmethod
    def _day(tomb):
        try:
            return parse_time(tomb.get('finished_at') or tomb.get('terminated_at')).strftime('%Y-%m-%d')
        except (ValueError, OverflowError, TypeError, AttributeError):
            return utcnow().strftime('%Y-%m-%d')

    def archive_tombstone(self, uuid):
        """Move the current tombstone of ``uuid`` into history/ (the UUID is being terminated again); returns it or None.

        Called under the domain's lock, before the new tombstone of the reused UUID is written.
        """
        tomb, where = self._current(uuid)
        if tomb is None:
            return None
        tomb = self._clean(tomb)
        stamp = _stamp(tomb.get('terminated_at') or tomb.get('started_at'))
        base = '%s.%s' % (uuid, stamp)
        n = 0
        while os.path.lexists(os.path.join(self.history, base + '.json')):
            n += 1
            base = '%s.%s-%d' % (uuid, stamp, n)
        src = os.path.join({'pending': self.pending, 'finished': self.finished, 'flat': self.tombstones}[where],
                           '%s.json' % uuid)
        try:
            if is_finished(tomb):
                self._marker(os.path.join(self.by_day, self._day(tomb)), base)
            os.rename(src, os.path.join(self.history, base + '.json'))
            _fsync_dir(self.history)
            self._unlink(os.path.join(self.by_day, self._day(tomb), uuid))
        except OSError as exc:
            raise StateDirError('cannot move the tombstone %s into %s: %s' % (src, self.history, exc.strerror or exc))
        return tomb

    def remove_finished(self, marker, day):
        """Remove one finished tombstone (current ``<uuid>`` or history ``<uuid>.<stamp>``) and its index entries."""
        if HISTORY_RE.match(marker):
            path = os.path.join(self.history, marker + '.json')
        else:
            path = os.path.join(self.finished, marker + '.json')
        uuid = marker.split('.', 1)[0]
        try:
            tomb = self._read_json(path, uuid)
        except TombstoneError:
            tomb = None
        try:
            if self._unlink(path):
                _fsync_dir(os.path.dirname(path))
            if tomb is not None and '.' not in marker and isinstance(tomb.get('name'), str):
                self._unlink(os.path.join(self.names, _name_key(tomb['name']), uuid))
                try:
                    os.rmdir(os.path.join(self.names, _name_key(tomb['name'])))
                except OSError:
                    pass
            self._unlink(os.path.join(self.by_day, day, marker))
        except OSError as exc:
            raise StateDirError('cannot remove the tombstone %s: %s' % (path, exc.strerror or exc))

    def finished_days(self):
        """The days (YYYY-MM-DD) that have finished tombstones, oldest first."""
        try:
            entries = os.listdir(self.by_day)
        except OSError:
            return []
        return sorted(e for e in entries if re.match(r'^\d{4}-\d{2}-\d{2}$', e))

    def finished_on(self, day):
        """Markers (``<uuid>`` or ``<uuid>.<stamp>``) of the tombstones that finished on ``day``."""
        try:
            entries = os.listdir(os.path.join(self.by_day, day))
        except OSError:
            return []
        return sorted(e for e in entries if is_uuid(e) or HISTORY_RE.match(e))

    def read_marked(self, marker):
        """The finished tombstone a by-day marker names, or None (gone, not finished, or unreadable)."""
        if HISTORY_RE.match(marker):
            path, uuid = os.path.join(self.history, marker + '.json'), marker.split('.', 1)[0]
            try:
                return self._clean(self._read_json(path, uuid))
            except TombstoneError:
                return None
        try:
            tomb, where = self._current(marker)
        except TombstoneError:
            return None
        return self._clean(tomb) if where == 'finished' else None

    def remove_empty_day(self, day):
        try:
            os.rmdir(os.path.join(self.by_day, day))
        except OSError:
            pass

    def remove_stale_temp_files(self, now_seconds=None):
        """Remove temporary files a killed run left (older than an hour); returns their paths."""
        now_seconds = now_seconds or time.time()
        removed = []
        # Only tombstones/tmp/ (and the flat directory of earlier versions): never a listing of the finished ones.
        for directory in (self.temp, self.tombstones):
            try:
                entries = os.listdir(directory)
            except OSError:
                continue
            for entry in entries:
                if entry.startswith('.') and entry.endswith('.tmp'):
                    path = os.path.join(directory, entry)
                    try:
                        st = os.lstat(path)
                        if now_seconds - st.st_mtime > STALE_TEMP_SECONDS and not stat.S_ISDIR(st.st_mode):
                            os.unlink(path)
                            removed.append(path)
                    except OSError:
                        pass
        return removed

    def _migrate_flat(self):
        """Move tombstones of the flat layout (earlier versions) into pending/ or finished/, each under its lock."""
        for uuid, path in self._list_dir(self.tombstones):
            if uuid is None:
                continue
            try:
                with self.lock(uuid, timeout=0):
                    tomb, where = self._current(uuid)
                    if tomb is not None and where == 'flat':
                        tomb = self._clean(tomb)
                        if is_finished(tomb) and not tomb.get('finished_at'):
                            tomb['finished_at'] = tomb.get('terminated_at')
                        self.write_tombstone(tomb)
            except (LockTimeout, StateDirError):
                continue  # in use or unreadable: read in place, reported, migrated by a later run


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
