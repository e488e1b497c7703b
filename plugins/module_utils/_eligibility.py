# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reclaim eligibility, decided in one place: whether a soft-deleted domain is due, kept, skipped (and why) or
resumed, from its vm_info view, the sweep's clock (rule 11 of docs/rules.md) and the fleet view (rule 9).

The sweep asks it of every domain's view, and each reclaim asks it again of the domain's fresh view under its
lock (rule 4 of docs/rules.md). Model layer: reads views and the record's times, changes nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ctypes
import ctypes.util
import os
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _views

# How far a deleted_at may lie ahead of this host's clock (the clock_tolerance option's default).
DEFAULT_CLOCK_TOLERANCE = 300


class Clock(object):
    """What the sweep trusts of its own clock (rule 11 of docs/rules.md): now, how far a deleted_at may lie ahead of it (another
    host's clock, or ours set back), and how long past its reclaim_at a record may plausibly be (beyond that our
    clock has probably jumped forward). ``max_overdue`` 0 turns that second check off."""

    def __init__(self, now, tolerance=DEFAULT_CLOCK_TOLERANCE, max_overdue=30 * 86400, stepped=None):
        self.now = now
        self.tolerance = tolerance
        self.max_overdue = max_overdue
        # Why this sweep's wall clock is not trusted to reclaim (check_clock()'s message), else None.
        self.stepped = stepped

    def plausible_overdue(self, interval):
        """How long past reclaim_at a sweep may plausibly come for a domain kept ``interval`` seconds: 24 of its
        retention intervals (but at least a day), and never more than max_overdue. None: the check is off."""
        if not self.max_overdue:
            return None
        return min(self.max_overdue, max(OVERDUE_INTERVALS * max(interval, 0), OVERDUE_FLOOR))


# A sweep later than this many retention intervals (or a day, whichever is longer) is taken for a clock jump.
OVERDUE_INTERVALS = 24
OVERDUE_FLOOR = 86400


def span(seconds):
    seconds = int(seconds)
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= size:
            return '%d%s' % (seconds // size, unit)
    return '%ds' % seconds


# What eligibility() says of a domain.
DUE, KEPT, RESUME, SKIP, OUT, UNDEFINE = 'due', 'kept', 'resume', 'skip', 'out', 'undefine'


def eligibility(view, clock, fleet_view=None):
    """(verdict, reason) for reclaiming the domain that ``view`` (vm_info's) describes, at ``now``.

    DUE: expired and safe to reclaim. KEPT: not expired yet. RESUME: an
    interrupted terminate or reclaim (task_state deleting) whose deletion was
    already decided: finished whatever its reclaim_at says (rule 7). SKIP:
    never reclaimed now, with why (rule 1 anomalies, protected, locked, another
    task). OUT: not in the trash at all.
    """
    if view.get('metadata_error'):
        return SKIP, ('its lifecycle record cannot be read (%s); never reclaimed until it is fixed'
                      % view['metadata_error'])
    if view.get('vm_state') != 'soft_deleted':
        return OUT, 'it is not soft-deleted'
    stale = fleet_view.stale(view) if fleet_view is not None else None
    if stale is not None:
        # Rule 9: never reclaimed. Only its definition may go, once every copy of the domain is in the trash, and
        # only past the same guards as any domain (vm_terminate's stale path applies them too).
        guarded = _guarded(view) or (_views.started_after_soft_delete(view) and _started_reason(view))
        if guarded:
            return SKIP, '%s; %s' % (stale['reason'], guarded)
        now = clock.now if isinstance(clock, Clock) else clock
        if fleet_view.undefine_only(view, stale, now) and view.get('task_state') is None and expired(view, clock):
            return UNDEFINE, stale['reason']
        if stale.get('tie') and view.get('task_state') is None and fleet_view.undefine_only(view, dict(stale, tie=False)):
            # A tie the fleet reclaims once: this copy's definition goes once every copy has expired.
            return KEPT, '%s; it waits until every copy has expired' % stale['reason']
        return SKIP, stale['reason']
    if view.get('anomalies'):
        return SKIP, ('its lifecycle record is incomplete (%s); never reclaimed until it is fixed'
                      % '; '.join(view['anomalies']))
    # Guards first, even for an interrupted reclaim: the sweep has no force, so a protected or locked domain is
    # left as it is (a terminate with force finishes it).
    guarded = _guarded(view)
    if guarded:
        return SKIP, guarded
    if view.get('task_state') == 'deleting':
        return RESUME, None
    if view.get('task_state') == 'moving':
        # Rule 4 across hosts: the move may already have defined it on its new host, or booted it there.
        return SKIP, ('it is being moved to another host (task_state moving); never reclaimed while the move holds it: '
                      'run the same move (playbooks/restore.yml with restore_host, or vm_restore move_from) again to '
                      'finish it or roll it back')
    if view.get('task_state') is not None:
        return SKIP, 'task %s is in progress or was interrupted; run that operation again' % view['task_state']
    if _views.started_after_soft_delete(view):
        # Never destroyed without warning: someone may be using it. It counts against quota while it runs.
        return SKIP, _started_reason(view)
    if not isinstance(clock, Clock):
        clock = Clock(clock)
    now = clock.now
    reclaim_at = time_or_none(view.get('reclaim_at'))
    if reclaim_at is None:
        # parse() and anomalies() already refuse this; a view from elsewhere must still not stop the sweep.
        return SKIP, 'its reclaim_at %r is not a time; never reclaimed until it is fixed' % (view.get('reclaim_at'),)
    deleted_at = time_or_none(view.get('deleted_at'))
    if deleted_at is None:
        return SKIP, 'its deleted_at %r is not a time; never reclaimed until it is fixed' % (view.get('deleted_at'),)
    ahead = (deleted_at - now).total_seconds()
    if ahead > clock.tolerance:
        return SKIP, ('its deleted_at %s lies %ds in the future of this host\'s clock (tolerance %ds): one of the '
                      'clocks is wrong; never reclaimed until they agree' % (view['deleted_at'], ahead, clock.tolerance))
    overdue = (now - reclaim_at).total_seconds()
    plausible = clock.plausible_overdue((reclaim_at - deleted_at).total_seconds())
    if plausible is not None and overdue > plausible:
        return SKIP, ('its reclaim_at %s passed %s ago, more than a sweep can plausibly be late for a retention of %s '
                      '(at most %s): this host\'s clock may have jumped forward; never reclaimed until the clock is '
                      'checked (then run vm_reclaim once with max_overdue 0)'
                      % (view['reclaim_at'], span(overdue), span((reclaim_at - deleted_at).total_seconds()),
                         span(plausible)))
    if reclaim_at <= now:
        if clock.stepped:
            return SKIP, clock.stepped
        waits = fleet_view.tie_waits(view, now) if fleet_view is not None else None
        if waits:
            return KEPT, waits  # rule 9: a tie is reclaimed once, when every copy has expired
        return DUE, None
    return KEPT, None


def _guarded(view):
    """Why the sweep (which has no force) leaves a domain alone whatever else holds: protected or locked; else None."""
    if view.get('protected'):
        return 'protected'
    if view.get('locked'):
        return 'locked%s' % (' (%s)' % view['lock_reason'] if view.get('lock_reason') else '')
    return None


def _started_reason(view):
    return ('it was started after its soft delete (power state %s); a running guest is not reclaimed: shut it down to '
            'leave it to the sweep, or restore it' % view['power_state'])


def time_or_none(text):
    try:
        return _record.parse_time(text)
    except ValueError:
        return None


def expired(view, clock):
    reclaim_at = time_or_none(view.get('reclaim_at'))
    now = clock.now if isinstance(clock, Clock) else clock
    if isinstance(clock, Clock) and clock.stepped:
        return False
    return reclaim_at is not None and reclaim_at <= now


# -- the wall clock checked against the boot clock (rule 11 of docs/rules.md, issue 24 item 5) ----------------------------------

BOOT_ID_PATH = '/proc/sys/kernel/random/boot_id'
# adjtimex(2)'s status bit: the kernel's clock is not synchronised (by NTP, chrony, systemd-timesyncd).
STA_UNSYNC = 0x0040


def boot_id():
    """This boot's id (the kernel's random boot_id), or None when it cannot be read."""
    try:
        with open(BOOT_ID_PATH) as handle:
            return handle.read().strip() or None
    except (IOError, OSError):
        return None


def boot_seconds():
    """Seconds since boot, suspend included (CLOCK_BOOTTIME: no one can set it), or None where there is none."""
    clock_id = getattr(time, 'CLOCK_BOOTTIME', None)
    if clock_id is None:
        return None
    return time.clock_gettime(clock_id)


class _Timex(ctypes.Structure):
    # struct timex of <sys/timex.h>: modes (int) then ten longs and a status int; the rest is room to spare.
    _fields_ = [('modes', ctypes.c_uint), ('offset', ctypes.c_long), ('freq', ctypes.c_long),
                ('maxerror', ctypes.c_long), ('esterror', ctypes.c_long), ('status', ctypes.c_int),
                ('rest', ctypes.c_long * 40)]


def time_synchronised():
    """(True/False, None) from the kernel's STA_UNSYNC flag (adjtimex with no change), or (None, why) when it cannot
    be read."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
        timex = _Timex()
        if libc.adjtimex(ctypes.byref(timex)) < 0:
            return None, 'adjtimex failed: %s' % os.strerror(ctypes.get_errno())
        return not (timex.status & STA_UNSYNC), None
    except (OSError, AttributeError) as exc:
        return None, 'adjtimex cannot be called: %s' % exc


def clock_sample(now):
    """What a sweep records of its clocks: the wall time, the boot clock and the boot id."""
    return {'wall': _record.format_time(now), 'boot_seconds': boot_seconds(), 'boot_id': boot_id()}


# What check_clock() says.
CLOCK_OK, CLOCK_FIRST, CLOCK_FORWARD, CLOCK_BACKWARD, CLOCK_REBOOT, CLOCK_UNSYNCED, CLOCK_UNKNOWN = (
    'ok', 'first', 'stepped_forward', 'stepped_back', 'rebooted', 'rebooted_unsynchronised', 'rebooted_unknown')


def check_clock(previous, current, tolerance, synchronised=None):
    """The wall clock of this sweep checked against the last one's (both clock_sample()s): a dict with ``state`` (one
    of the CLOCK_ names), ``step_seconds`` (wall advance minus boot-clock advance, within one boot), ``blocks`` (no
    domain is reclaimed in this sweep) and ``message``.

    Within one boot the boot clock cannot be set: a wall clock that advanced more than the boot clock by more than
    ``tolerance`` was stepped forward, and every reclaim_at it passed is suspect (blocks). Stepped back: reported only,
    a deleted_at in the future is already never reclaimed. Across a reboot there is nothing to compare: the kernel's
    synchronised flag decides (``synchronised``: (flag, why) of time_synchronised(), or None to read it); unsynchronised
    blocks, unreadable is reported and the overdue rule stays the only check.
    """
    out = {'state': CLOCK_OK, 'step_seconds': 0, 'blocks': False, 'message': None, 'previous': previous,
           'current': current}
    try:
        before = _record.parse_time(previous['wall'])
        before_boot = float(previous['boot_seconds'])
        before_id = previous['boot_id']
    except (TypeError, KeyError, ValueError):
        out['state'] = CLOCK_FIRST
        return out
    now = _record.parse_time(current['wall'])
    if current.get('boot_id') and current.get('boot_seconds') is not None and before_id == current['boot_id']:
        wall = (now - before).total_seconds()
        boot = current['boot_seconds'] - before_boot
        step = wall - boot
        out['step_seconds'] = int(round(step))
        if step > tolerance:
            out.update(state=CLOCK_FORWARD, blocks=True, message=(
                'the wall clock advanced %s since the last sweep (%s) but the boot clock only %s: it was stepped '
                '%s forward (tolerance %ds); nothing is reclaimed until the clock is checked (then run vm_reclaim '
                'once with max_overdue 0)' % (span(max(wall, 0)), previous['wall'], span(max(boot, 0)), span(step),
                                              tolerance)))
        elif step < -tolerance:
            out.update(state=CLOCK_BACKWARD, message=(
                'the wall clock was stepped %s back since the last sweep (%s): a domain soft-deleted in the lost '
                'time is reclaimed late, never early' % (span(-step), previous['wall'])))
        return out
    flag, why = synchronised if synchronised is not None else time_synchronised()
    if flag:
        out['state'] = CLOCK_REBOOT
    elif flag is None:
        out.update(state=CLOCK_UNKNOWN, message=(
            'the host rebooted since the last sweep and whether its clock is synchronised cannot be read (%s): only '
            'the overdue rule checks the clock' % why))
    else:
        out.update(state=CLOCK_UNSYNCED, blocks=True, message=(
            'the host rebooted since the last sweep and the kernel says its clock is not synchronised: nothing is '
            'reclaimed until it is (or run vm_reclaim once with max_overdue 0 once the clock is checked)'))
    return out
