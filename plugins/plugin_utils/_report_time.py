# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Times and time spans as the trash report and the sweep records read and print them, and the error for bad input.

The report, the sweep record and the metrics all parse the hypervisors' UTC
ISO 8601 times, turn a warning window into seconds and print a span as an
operator reads it; one copy of each here keeps the page, the lines and the
metrics saying the same thing. ReportError is what every report filter turns
into AnsibleFilterError.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import datetime

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils import _duration
from ansible_collections.deferred.libvirt.plugins.module_utils import _record


class ReportError(DeferredError, ValueError):
    """Input the report cannot use; the message says which and why."""


# -- time --------------------------------------------------------------------------------------------------------

def now_of(now=None):
    if now is None:
        return _record.utcnow()
    if isinstance(now, datetime.datetime):
        return now.astimezone(datetime.timezone.utc)
    try:
        return _record.parse_time(str(now))
    except ValueError:
        raise ReportError('now: %r is not a UTC ISO 8601 time' % (now,))


def parse_time(text):
    if not text:
        return None
    try:
        return _record.parse_time(str(text))
    except (ValueError, TypeError, AttributeError):
        return None


def epoch(text):
    """Unix seconds of an ISO 8601 time, None when unreadable."""
    value = parse_time(text)
    return None if value is None else calendar.timegm(value.utctimetuple())


def window_seconds(value, name='warning_window'):
    if value in (None, '', 0, '0'):
        return 0
    try:
        return _duration.parse_duration(value, name)
    except _duration.DurationError as exc:
        raise ReportError(str(exc))


def human(seconds):
    """A time span as an operator reads it: 2d 3h, 4h 10m, 5m, 40s."""
    if seconds is None:
        return 'unknown'
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return '%dd %dh' % (days, hours)
    if hours:
        return '%dh %dm' % (hours, minutes)
    if minutes:
        return '%dm' % minutes
    return '%ds' % secs


def time_left(seconds):
    if seconds is None:
        return 'never (no readable reclaim_at)'
    if seconds <= 0:
        return 'overdue by %s: next sweep' % human(seconds)
    return human(seconds)


def when(seconds):
    """How long until a reclaim_at, in words: "in 6d 0h", "overdue by 2h 0m", or why there is none."""
    if seconds is None:
        return 'no readable reclaim_at (never reclaimed until the record is fixed)'
    if seconds <= 0:
        return 'overdue by %s' % human(seconds)
    return 'in %s' % human(seconds)


def human_bytes(value):
    """A size as an operator reads it: 0 B, 512 KiB, 3.2 GiB; "unknown" when not known."""
    if value is None or isinstance(value, bool) or not isinstance(value, int):
        return 'unknown'
    size, unit = float(value), 'B'
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'):
        if abs(size) < 1024 or unit == 'PiB':
            break
        size /= 1024
    return '%d %s' % (size, unit) if unit == 'B' or size >= 100 else '%.1f %s' % (size, unit)


def expiry_order(item):
    """Soonest reclaim_at first, then by host and name: the order every list of the trash is printed in."""
    return (item.get('reclaim_at') or '', item.get('host') or '', item.get('name') or '')
