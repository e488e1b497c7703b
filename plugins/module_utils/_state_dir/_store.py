# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tombstone store: where tombstones are kept, found, archived and removed (their schema is ``_tombstone``).

A tombstone with work left lives in tombstones/pending/ (the only ones an operation reads), a finished one
in tombstones/finished/, indexed by the day it finished (so the retention sweep reads only the days past
the retention) and by domain name (so a lookup by name reads only that name's); the earlier tombstones of
a UUID terminated again live in tombstones/history/. Tombstones of the flat layout of earlier versions are
still read, and moved into this layout by the first run that can write.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import json
import os

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._record import format_time, parse_time, utcnow
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._files import (
    fsync_dir, make_marker, read_checked, unlink_if_there, write_atomic)
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._layout import DAY_RE, HISTORY_RE
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._locks import LockTimeout
from ansible_collections.deferred.libvirt.plugins.module_utils._tombstone import (
    TombstoneError, finished as is_finished, is_uuid, validate_tombstone)

# A tombstone is a few KiB; anything much bigger was not written by us.
MAX_TOMBSTONE_BYTES = 4 * 1024 * 1024


def name_key(name):
    """The names/ index directory of a domain name (hashed: a name may hold any character)."""
    return hashlib.sha256(name.encode('utf-8', 'surrogateescape')).hexdigest()[:32]


def stamp(text):
    """A file-name stamp (20261201T135927Z) for a UTC ISO time, or now."""
    try:
        value = parse_time(text) if text else utcnow()
    except (ValueError, OverflowError, TypeError):
        value = utcnow()
    return value.strftime('%Y%m%dT%H%M%SZ')


def finished_day(tomb):
    """The by-day index entry of a finished tombstone: the day it finished (or was terminated), or today."""
    try:
        return parse_time(tomb.get('finished_at') or tomb.get('terminated_at')).strftime('%Y-%m-%d')
    except (ValueError, OverflowError, TypeError, AttributeError):
        return utcnow().strftime('%Y-%m-%d')


def clean(tomb):
    """A tombstone without the store's own bookkeeping (the file's mtime, which orders two copies)."""
    if tomb is not None:
        tomb.pop('_mtime', None)
    return tomb


def error_entry(uuid, path, exc):
    """What a listing shows for a tombstone that cannot be used: where it is and why, never its content."""
    return {'uuid': uuid, 'name': None, 'file': path, 'error': str(exc)}


def list_json(directory):
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


class Store(object):
    """The tombstones of a StateDir: ``tombstones``, ``pending``, ``finished``, ``history``, ``by_day``, ``names``
    and ``temp`` are the StateDir's directories; ``lock`` is its per-domain lock."""

    # -- reading -----------------------------------------------------------------------------------------------------

    def _read_json(self, path, file_uuid):
        """A validated tombstone from ``path``; None if absent; TombstoneError if it is not trustworthy."""
        raw, st = read_checked(path, 'tombstone', MAX_TOMBSTONE_BYTES, TombstoneError)
        if raw is None:
            return None
        try:
            data = json.loads(raw.decode('utf-8'))
        except (ValueError, UnicodeDecodeError) as exc:
            raise TombstoneError('tombstone %s is not valid JSON (%s)' % (path, str(exc)[:100]))
        validate_tombstone(data, file_uuid, path)
        data['_mtime'] = st.st_mtime_ns
        return data

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
        return clean(self._current(uuid)[0])

    def _read_listed(self, entries):
        out = []
        for uuid, path in entries:
            if uuid is None:
                out.append(error_entry(None, path, 'tombstone %s: its file name is not a domain UUID' % path))
                continue
            try:
                tomb = self._read_json(path, uuid)
            except TombstoneError as exc:
                out.append(error_entry(uuid, path, exc))
                continue
            if tomb is not None:
                out.append(tomb)
        return out

    def pending_tombstones(self):
        """Every tombstone with work left (and every one that cannot be read), never the finished ones.

        The cost is that of the pending and flat (not yet migrated) tombstones, whatever the number of finished ones.
        """
        out, seen = [], set()
        flat = self._read_listed(list_json(self.tombstones))
        for tomb in self._read_listed(list_json(self.pending)) + flat:
            uuid = tomb.get('uuid')
            if tomb.get('error'):
                out.append(tomb)
                continue
            if uuid in seen:
                continue
            seen.add(uuid)
            current, dummy = self._current(uuid)
            if current is not None and not is_finished(current):
                out.append(clean(current))
        return out

    def find_tombstones(self, key):
        """The current tombstones whose UUID or domain name is ``key`` (pending or finished), in O(1) of the rest."""
        key = str(key).strip()
        found = {}
        if is_uuid(key.lower()):
            try:
                tomb = self.read_tombstone(key.lower())
            except TombstoneError as exc:
                tomb = error_entry(key.lower(), self.finished, exc)
            if tomb is not None:
                found[tomb['uuid']] = tomb
        directory = os.path.join(self.names, name_key(key))
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
        for tomb in self._read_listed(list_json(self.finished)):
            uuid = tomb.get('uuid')
            if tomb.get('error'):
                out.append(tomb)
            elif uuid not in seen:
                seen.add(uuid)
                out.append(clean(tomb))
        if include_history:
            for entry in sorted(os.listdir(self.history)) if os.path.isdir(self.history) else []:
                match = HISTORY_RE.match(entry[:-5]) if entry.endswith('.json') else None
                if match:
                    try:
                        tomb = self._read_json(os.path.join(self.history, entry), match.group(1))
                    except TombstoneError as exc:
                        out.append(error_entry(match.group(1), os.path.join(self.history, entry), exc))
                        continue
                    if tomb is not None:
                        out.append(dict(clean(tomb), history_of=match.group(1)))
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
                    out.append(clean(tomb))
        return out

    # -- writing -----------------------------------------------------------------------------------------------------

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
                make_marker(os.path.join(self.by_day, finished_day(tombstone)), uuid)
                if isinstance(tombstone.get('name'), str):
                    make_marker(os.path.join(self.names, name_key(tombstone['name'])), uuid)
            write_atomic(self.temp, directory, '%s.json' % uuid, data)
            other = self.pending if finished else self.finished
            for stale in (os.path.join(other, '%s.json' % uuid), os.path.join(self.tombstones, '%s.json' % uuid)):
                if unlink_if_there(stale):
                    fsync_dir(os.path.dirname(stale))
        except OSError as exc:
            raise StateDirError('cannot write the tombstone %s: %s' % (path, exc.strerror or exc))
        return tombstone

    def archive_tombstone(self, uuid):
        """Move the current tombstone of ``uuid`` into history/ (the UUID is being terminated again); returns it or None.

        Called under the domain's lock, before the new tombstone of the reused UUID is written.
        """
        tomb, where = self._current(uuid)
        if tomb is None:
            return None
        tomb = clean(tomb)
        when = stamp(tomb.get('terminated_at') or tomb.get('started_at'))
        base = '%s.%s' % (uuid, when)
        n = 0
        while os.path.lexists(os.path.join(self.history, base + '.json')):
            n += 1
            base = '%s.%s-%d' % (uuid, when, n)
        src = os.path.join({'pending': self.pending, 'finished': self.finished, 'flat': self.tombstones}[where],
                           '%s.json' % uuid)
        try:
            if is_finished(tomb):
                make_marker(os.path.join(self.by_day, finished_day(tomb)), base)
            os.rename(src, os.path.join(self.history, base + '.json'))
            fsync_dir(self.history)
            unlink_if_there(os.path.join(self.by_day, finished_day(tomb), uuid))
        except OSError as exc:
            raise StateDirError('cannot move the tombstone %s into %s: %s' % (src, self.history, exc.strerror or exc))
        return tomb

    # -- the finished ones, for the retention sweep ------------------------------------------------------------------

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
            if unlink_if_there(path):
                fsync_dir(os.path.dirname(path))
            if tomb is not None and '.' not in marker and isinstance(tomb.get('name'), str):
                unlink_if_there(os.path.join(self.names, name_key(tomb['name']), uuid))
                try:
                    os.rmdir(os.path.join(self.names, name_key(tomb['name'])))
                except OSError:
                    pass
            unlink_if_there(os.path.join(self.by_day, day, marker))
        except OSError as exc:
            raise StateDirError('cannot remove the tombstone %s: %s' % (path, exc.strerror or exc))

    def finished_days(self):
        """The days (YYYY-MM-DD) that have finished tombstones, oldest first."""
        try:
            entries = os.listdir(self.by_day)
        except OSError:
            return []
        return sorted(e for e in entries if DAY_RE.match(e))

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
                return clean(self._read_json(path, uuid))
            except TombstoneError:
                return None
        try:
            tomb, where = self._current(marker)
        except TombstoneError:
            return None
        return clean(tomb) if where == 'finished' else None

    def remove_empty_day(self, day):
        try:
            os.rmdir(os.path.join(self.by_day, day))
        except OSError:
            pass

    # -- the flat layout of earlier versions -------------------------------------------------------------------------

    def _migrate_flat(self):
        """Move tombstones of the flat layout (earlier versions) into pending/ or finished/, each under its lock."""
        for uuid, path in list_json(self.tombstones):
            if uuid is None:
                continue
            try:
                with self.lock(uuid, timeout=0):
                    tomb, where = self._current(uuid)
                    if tomb is not None and where == 'flat':
                        tomb = clean(tomb)
                        if is_finished(tomb) and not tomb.get('finished_at'):
                            tomb['finished_at'] = tomb.get('terminated_at')
                        self.write_tombstone(tomb)
            except (LockTimeout, StateDirError):
                continue  # in use or unreadable: read in place, reported, migrated by a later run
