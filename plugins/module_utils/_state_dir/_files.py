# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Checked reads and atomic writes of the state_dir's files.

A write is whole or not at all: every byte is written and checked (a short write is carried on, a write of
nothing fails), a file that replaces another is written to a private temporary file and renamed into place,
and the directory is fsynced. A read never follows a link and takes only a regular file of ours, of a
bounded size.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import binascii
import errno
import json
import os
import stat

# Temporary files older than this are leftovers of a killed run (the sweep removes them).
STALE_TEMP_SECONDS = 3600


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


def fsync_dir(path):
    """Make a rename or unlink in ``path`` durable (the directory's entries, not only the file's data)."""
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def temp_name(final):
    """A hidden temporary name for ``final`` that nobody can guess (so no link can be planted there in advance)."""
    return '.%s.%s.tmp' % (final, binascii.hexlify(os.urandom(6)).decode())


def write_atomic(temp_dir, directory, filename, data):
    """Write ``data`` to directory/filename atomically: a private temp file in ``temp_dir`` (O_EXCL|O_NOFOLLOW, a
    name nobody can guess), every byte written and checked, fsync, rename, fsync of the directory."""
    tmp = os.path.join(temp_dir, temp_name(filename))
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
    fsync_dir(directory)


def make_dir(path):
    """Make the private directory ``path``; one that another run made meanwhile is no error (the caller checks it)."""
    try:
        os.mkdir(path, 0o700)
    except OSError as exc:
        if exc.errno != errno.EEXIST:
            raise


def make_marker(directory, filename):
    """Create an empty marker file (retrying when a sweep removed its empty directory meanwhile)."""
    for dummy in range(5):
        make_dir(directory)
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


def unlink_if_there(path):
    """Remove ``path``; False when it was already gone (another run, or a crash, got there first)."""
    try:
        os.unlink(path)
        return True
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise
        return False


def read_checked(path, what, max_bytes, error):
    """(bytes, stat) of ``path``, or (None, None) when it does not exist; ``error`` (an exception class) when it
    is a link, not a regular file, not ours or bigger than ``max_bytes``: such a file is reported, never used."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return None, None
        if exc.errno == errno.ELOOP:
            raise error('%s %s is a symbolic link; refusing to read it' % (what, path))
        raise error('%s %s cannot be read: %s' % (what, path, exc.strerror or exc))
    with os.fdopen(fd, 'rb') as handle:
        st = os.fstat(handle.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise error('%s %s is not a regular file' % (what, path))
        if st.st_uid != os.geteuid():
            raise error('%s %s is owned by uid %d, not by the user running the module (uid %d)'
                        % (what, path, st.st_uid, os.geteuid()))
        if st.st_size > max_bytes:
            raise error('%s %s is %d bytes, more than a %s can be' % (what, path, st.st_size, what))
        raw = handle.read(max_bytes + 1)
    return raw, st


def remove_stale_temp_files(directories, now_seconds):
    """Remove the temporary files (``.<name>.<random>.tmp``) older than STALE_TEMP_SECONDS in ``directories``: a
    killed run's leftovers. Returns their paths; one that cannot be removed is left for the next sweep."""
    removed = []
    for directory in directories:
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


def read_host_entries(directory, filename, what, max_bytes, error):
    """The JSON object of a state_dir file kept per host (clock.json, fleet.json): {host key: entry}, {} when there is
    none. A link, a file not ours, too big or not JSON raises ``error`` naming ``what``: reported, never used."""
    path = os.path.join(directory, filename)
    raw, dummy = read_checked(path, what, max_bytes, error)
    if raw is None:
        return {}
    try:
        data = json.loads(raw.decode('utf-8'))
    except ValueError as exc:
        raise error('%s %s is not JSON: %s' % (what, path, exc))
    return data if isinstance(data, dict) else {}
