# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The state_dir's own retention, applied once per reclaim sweep: finished tombstones, lock files, the journal.

- A finished tombstone (undefined, every Cinder action done) is kept for ``tombstone_retention`` after it
  finished, then removed, with an ``instance.purge`` event. A tombstone with work left is never removed.
  The sweep reads only the days past the retention (tombstones/by-day/), so its cost does not grow with
  the number of tombstones kept.
- Lock files of domains that no longer exist and have no pending tombstone are removed, each under its
  lock and only when nobody holds it (a run about to take it notices and takes the new file), and only
  those that name the sweep's own connection: a domain of another connection is not in ``live_uuids``.
- events.jsonl is rotated (moved to a free events-<UTC stamp>[-N].jsonl under the journal lock, never over an
  existing file, so concurrent sweeps of one state_dir lose no rotated journal) when it is bigger than
  ``journal_rotate_size`` or its first event is older than ``journal_rotate_age``; rotated files older than
  ``journal_retention`` are removed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os
import re
import time

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import DurationError, parse_duration
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._files import STALE_TEMP_SECONDS
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._locks import LockTimeout
from ansible_collections.deferred.libvirt.plugins.module_utils._tombstone import finished as is_finished
from ansible_collections.deferred.libvirt.plugins.module_utils._record import parse_time, utcnow

# The options vm_reclaim (and the reclaim role) take; null switches that part of the retention off.
RETENTION_ARGS = dict(
    tombstone_retention=dict(type='raw', default='90d'),
    journal_rotate_size=dict(type='raw', default='64M'),
    journal_rotate_age=dict(type='raw', default='30d'),
    journal_retention=dict(type='raw', default='365d'),
)
SIZE_UNITS = {'': 1, 'k': 1024, 'm': 1024 ** 2, 'g': 1024 ** 3, 't': 1024 ** 4}
_SIZE = re.compile(r'^(\d+)\s*([kmgt]?)(?:i?b)?$')


class RetentionError(DeferredError, ValueError):
    """An option of the retention that cannot be read; the message names it."""


def parse_size(value, name='size'):
    """Bytes from an int or a string such as 512K, 64M, 1G (powers of 1024); None stays None."""
    if value is None:
        return None
    if isinstance(value, bool):
        raise RetentionError('%s: %r is not a size (use bytes or a string such as 512K, 64M, 1G)' % (name, value))
    if isinstance(value, int):
        if value < 0:
            raise RetentionError('%s: %r is negative; a size must be zero or more' % (name, value))
        return value
    match = _SIZE.match(str(value).strip().lower())
    if not match:
        raise RetentionError('%s: %r is not a size (use bytes or a string such as 512K, 64M, 1G)' % (name, value))
    return int(match.group(1)) * SIZE_UNITS[match.group(2)]


class RetentionOptions(object):
    """Seconds and bytes; None for "never"."""

    def __init__(self, tombstone_retention=90 * 86400, journal_rotate_size=64 * 1024 ** 2,
                 journal_rotate_age=30 * 86400, journal_retention=365 * 86400):
        self.tombstone_retention = tombstone_retention
        self.journal_rotate_size = journal_rotate_size
        self.journal_rotate_age = journal_rotate_age
        self.journal_retention = journal_retention

    @classmethod
    def from_params(cls, params):
        """From a module's parameters (RETENTION_ARGS); RetentionError naming the option on bad input."""
        def duration(option):
            raw = params.get(option)
            if raw is None or (isinstance(raw, str) and raw.strip().lower() in ('', 'none', 'null', 'never')):
                return None
            try:
                return parse_duration(raw, option)
            except DurationError as exc:
                raise RetentionError(str(exc))
        size = params.get('journal_rotate_size')
        if isinstance(size, str) and size.strip().lower() in ('', 'none', 'null', 'never'):
            size = None
        return cls(tombstone_retention=duration('tombstone_retention'),
                   journal_rotate_size=parse_size(size, 'journal_rotate_size'),
                   journal_rotate_age=duration('journal_rotate_age'),
                   journal_retention=duration('journal_retention'))


def _finished_time(tomb):
    try:
        return parse_time(tomb.get('finished_at') or tomb.get('terminated_at'))
    except (ValueError, OverflowError, TypeError, AttributeError):
        return None


def prune(state, live_uuids, retention, now=None, project=None, check_mode=False, request_id=None):
    """Apply the retention to ``state`` (a StateDir); returns what was (in check mode: would be) removed.

    ``live_uuids``: every domain defined on the hypervisor now (their lock files are kept).
    ``project``: only that project's tombstones are removed (lock files and the journal are the host's).
    Nothing here raises for one item: what could not be done is listed in ``errors``.
    """
    now = now or utcnow()
    out = {'tombstones_removed': [], 'locks_removed': [], 'journal_rotated': None, 'journal_removed': [],
           'temp_files_removed': [], 'errors': []}
    if retention.tombstone_retention is not None:
        _prune_tombstones(state, retention.tombstone_retention, now, project, check_mode, request_id, out)
    keep = set(live_uuids)
    keep.update(t.get('uuid') for t in state.pending_tombstones() if t.get('uuid'))
    # Only lock files that name the StateDir's connection: the host lock directory is shared by every connection.
    out['locks_removed'] = state.remove_lock_files(keep, check_mode=check_mode)
    if not check_mode:
        out['temp_files_removed'] = state.remove_stale_temp_files()
    try:
        rotated = state.rotate_journal(retention.journal_rotate_size, retention.journal_rotate_age,
                                       retention.journal_retention, now=now, check_mode=check_mode)
        out['journal_rotated'], out['journal_removed'] = rotated['rotated'], rotated['removed']
    except StateDirError as exc:
        out['errors'].append(str(exc))
    return out


def _prune_tombstones(state, seconds, now, project, check_mode, request_id, out):
    cutoff = now - datetime.timedelta(seconds=seconds)
    last_day = cutoff.strftime('%Y-%m-%d')
    for day in state.finished_days():
        if day > last_day:
            break  # days are sorted: every later one is within the retention
        left = 0
        for marker in state.finished_on(day):
            tomb = state.read_marked(marker)
            if tomb is None:
                left += 1
                continue  # not finished (any more), unreadable or a stale index entry: never removed from here
            if project is not None and tomb.get('project') != project:
                left += 1
                continue
            finished = _finished_time(tomb)
            if finished is None or finished > cutoff or not is_finished(tomb):
                left += 1
                continue
            entry = {'name': tomb.get('name'), 'uuid': tomb.get('uuid'), 'project': tomb.get('project'),
                     'terminated_at': tomb.get('terminated_at'), 'finished_at': tomb.get('finished_at')}
            if '.' in marker:
                entry['history'] = True
            if check_mode:
                out['tombstones_removed'].append(entry)
                continue
            try:
                with state.lock(tomb['uuid'], timeout=0, name=tomb.get('name')):
                    again = state.read_marked(marker)
                    if again is None or not is_finished(again):
                        left += 1
                        continue
                    # Journaled first: a removal is never unaccounted for (a crash before the unlink repeats it).
                    state.event('instance.purge', request_id, domain=again.get('name'), uuid=again.get('uuid'),
                                project=again.get('project'), result='success',
                                terminated_at=again.get('terminated_at'), finished_at=again.get('finished_at'),
                                tombstone_retention=seconds, history='.' in marker)
                    state.remove_finished(marker, day)
                out['tombstones_removed'].append(entry)
            except LockTimeout:
                left += 1  # in use right now: the next sweep
            except StateDirError as exc:
                left += 1
                out['errors'].append(str(exc))
        if not check_mode:
            _drop_stale_markers(state, day)
            if day < last_day and not state.finished_on(day):
                state.remove_empty_day(day)


def _drop_stale_markers(state, day):
    """Index entries whose tombstone file is gone (a crash between the unlink and the marker's removal)."""
    for marker in state.finished_on(day):
        path = os.path.join(state.history if '.' in marker else state.finished, marker + '.json')
        mark = os.path.join(state.by_day, day, marker)
        try:
            # A young marker may be one a writer has just made for the file it is about to rename into place.
            if not os.path.lexists(path) and time.time() - os.lstat(mark).st_mtime > STALE_TEMP_SECONDS:
                os.unlink(mark)
        except OSError:
            pass
