# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One reclaim sweep of a host: terminate what has expired, finish pending Cinder work, report the rest.

Whether a domain may be reclaimed is decided in one place, ``eligibility``:
the sweep asks it of every domain's view, and each reclaim asks it again of
the domain's fresh view under its lock (spec rule 4).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _retention as retention
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils import _terminate as term
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import parse_duration
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._locks import LockTimeout

DEFAULT_CLOCK_TOLERANCE = 300
DEFAULT_MAX_OVERDUE = '30d'
ARGS = dict(
    project=dict(type='str'),
    limit=dict(type='int'),
    clock_tolerance=dict(type='raw', default=DEFAULT_CLOCK_TOLERANCE),
    max_overdue=dict(type='raw', default=DEFAULT_MAX_OVERDUE),
)


class Clock(object):
    """What the sweep trusts of its own clock (spec rule 11): now, how far a deleted_at may lie ahead of it (another
    host's clock, or ours set back), and how long past its reclaim_at a record may plausibly be (beyond that our
    clock has probably jumped forward). ``max_overdue`` 0 turns that second check off."""

    def __init__(self, now, tolerance=DEFAULT_CLOCK_TOLERANCE, max_overdue=30 * 86400):
        self.now = now
        self.tolerance = tolerance
        self.max_overdue = max_overdue

    def plausible_overdue(self, interval):
        """How long past reclaim_at a sweep may plausibly come for a domain kept ``interval`` seconds: 24 of its
        retention intervals (but at least a day), and never more than max_overdue. None: the check is off."""
        if not self.max_overdue:
            return None
        return min(self.max_overdue, max(OVERDUE_INTERVALS * max(interval, 0), OVERDUE_FLOOR))


# A sweep later than this many retention intervals (or a day, whichever is longer) is taken for a clock jump.
OVERDUE_INTERVALS = 24
OVERDUE_FLOOR = 86400


def _span(seconds):
    seconds = int(seconds)
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= size:
            return '%d%s' % (seconds // size, unit)
    return '%ds' % seconds


# No name or query: a sweep looks at every domain of the host (of one project, with project).
ARGUMENT_SPEC = lc.spec(lc.LIFECYCLE_ARGS, storage.ARGS, cinder.ARGS, fleet.ARGS, retention.RETENTION_ARGS, ARGS)

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
        # Rule 9: never reclaimed. Only its definition may go, once every copy of the domain is in the trash.
        if fleet_view.undefine_only(view, stale) and view.get('task_state') is None and _expired(view, clock):
            return UNDEFINE, stale['reason']
        return SKIP, stale['reason']
    if view.get('anomalies'):
        return SKIP, ('its lifecycle record is incomplete (%s); never reclaimed until it is fixed'
                      % '; '.join(view['anomalies']))
    # Guards first, even for an interrupted reclaim: the sweep has no force, so a protected or locked domain is
    # left as it is (a terminate with force finishes it).
    if view.get('protected'):
        return SKIP, 'protected'
    if view.get('locked'):
        return SKIP, 'locked%s' % (' (%s)' % view['lock_reason'] if view.get('lock_reason') else '')
    if view.get('task_state') == 'deleting':
        return RESUME, None
    if view.get('task_state') is not None:
        return SKIP, 'task %s is in progress or was interrupted; run that operation again' % view['task_state']
    if _views.started_after_soft_delete(view):
        # Never destroyed without warning: someone may be using it. It counts against quota while it runs.
        return SKIP, ('it was started after its soft delete (power state %s); a running guest is not reclaimed: shut it '
                      'down to leave it to the sweep, or restore it' % view['power_state'])
    if not isinstance(clock, Clock):
        clock = Clock(clock)
    now = clock.now
    reclaim_at = _time_or_none(view.get('reclaim_at'))
    if reclaim_at is None:
        # parse() and anomalies() already refuse this; a view from elsewhere must still not stop the sweep.
        return SKIP, 'its reclaim_at %r is not a time; never reclaimed until it is fixed' % (view.get('reclaim_at'),)
    deleted_at = _time_or_none(view.get('deleted_at'))
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
                      % (view['reclaim_at'], _span(overdue), _span((reclaim_at - deleted_at).total_seconds()),
                         _span(plausible)))
    if reclaim_at <= now:
        return DUE, None
    return KEPT, None


def _time_or_none(text):
    try:
        return _record.parse_time(text)
    except ValueError:
        return None


def _expired(view, clock):
    reclaim_at = _time_or_none(view.get('reclaim_at'))
    now = clock.now if isinstance(clock, Clock) else clock
    return reclaim_at is not None and reclaim_at <= now


def classify(pairs, clock, project=None, fleet_view=None):
    """Sort soft-deleted domains into (due, kept, skipped, resumable) without touching anything.

    skipped items are (domain, view, reason); the others (domain, view). due
    comes longest expired first.
    """
    due, kept, skipped, resumable, undefine = [], [], [], [], []
    for domain, view in pairs:
        if domain is None or (project is not None and view.get('project') != project):
            continue
        verdict, reason = eligibility(view, clock, fleet_view)
        if verdict == UNDEFINE:
            undefine.append((domain, view, reason))
        elif verdict == SKIP:
            skipped.append((domain, view, reason))
        elif verdict == RESUME:
            resumable.append((domain, view))
        elif verdict == DUE:
            due.append((domain, view))
        elif verdict == KEPT:
            kept.append((domain, view))
    due.sort(key=lambda pair: pair[1]['reclaim_at'])
    if fleet_view is not None:
        return due, kept, skipped, resumable, undefine
    return due, kept, skipped, resumable


def still_due(clock, fleet_view=None):
    """The precondition a reclaim checks under the domain's lock: eligibility() again, on the state of now."""
    def check(domain):
        verdict, reason = eligibility(_views.describe(domain), clock, fleet_view)
        if verdict in (DUE, RESUME):
            return
        if verdict == OUT:
            raise lc.Skip('domain %s is no longer soft-deleted (restored meanwhile); not reclaimed' % domain.name)
        if verdict == KEPT:
            raise lc.Skip('domain %s: reclaim_at %s has not passed; not reclaimed'
                          % (domain.name, (domain.record or {}).get('reclaim_at')))
        raise lc.Skip('domain %s: %s; not reclaimed' % (domain.name, reason))
    return check


def reclaim_one(ctx, domain, opts, index, clock):
    """Terminate one expired domain through the same path as vm_terminate, with an instance.reclaim event.

    A domain that no longer qualifies under its lock (restored meanwhile), or
    whose lock another operation holds past lock_timeout, is skipped, not
    failed: the next sweep looks at it again.
    """
    # Between the sweep's snapshot and the domain's lock: where a restore can get in first (tests pause here).
    lc.failpoint('reclaim.before_lock')
    try:
        result = term.terminate(ctx, domain, opts, index, action='reclaim', precondition=still_due(clock, index.fleet),
                                operation='reclaim')
    except (lc.Skip, LockTimeout) as exc:
        reason = str(exc)
        if isinstance(exc, LockTimeout):
            reason = '%s; not reclaimed in this sweep' % reason
        ctx.event('instance.reclaim', domain, result='skipped', reason=reason)
        return {'name': domain.name, 'uuid': domain.uuid, 'changed': False, 'action': 'skipped', 'reason': reason}
    if not ctx.check_mode and result.get('changed'):
        ctx.event('instance.reclaim', domain, result='pending' if result.get('volumes_pending') else 'success',
                  deleted_at=(domain.record or {}).get('deleted_at'), reclaim_at=(domain.record or {}).get('reclaim_at'),
                  volumes_pending=[v['id'] for v in result.get('volumes_pending') or []])
    return result


def undefine_stale_copy(ctx, domain, fleet_view, clock):
    """Rule 9 in the sweep: a stale copy of a domain whose every copy is in the trash loses its definition only; its
    disks, volumes and attachments are the authoritative copy's, reclaimed there."""
    with ctx.lock(domain):
        current = hv.refresh(ctx.conn, domain.dom)
        if current is None:
            return lc.result_for(domain, False, action='none', msg='already gone')
        view = _views.describe(current)
        verdict, reason = eligibility(view, clock, fleet_view)
        if verdict != UNDEFINE:
            return {'name': domain.name, 'uuid': domain.uuid, 'changed': False, 'action': 'skipped',
                    'reason': reason or 'no longer a stale copy in the trash; left for the next sweep'}
        stale = fleet_view.stale(view)
        return term.undefine_stale(ctx, current, stale, 'reclaim', stale.get('authoritative'))


def options(params, no_log_values=None):
    limit = params.get('limit')
    if limit is not None and limit < 0:
        raise DeferredError('limit must be 0 or more, got %d; nothing was changed' % limit)
    opts = term.options(params, no_log_values)
    opts.clock_tolerance = parse_duration(lc.param(params, 'clock_tolerance', DEFAULT_CLOCK_TOLERANCE), 'clock_tolerance')
    opts.max_overdue = parse_duration(lc.param(params, 'max_overdue', DEFAULT_MAX_OVERDUE), 'max_overdue')
    try:
        opts.retention = retention.RetentionOptions.from_params(params)
    except retention.RetentionError as exc:
        raise DeferredError('%s; nothing was changed' % exc)
    return opts


def run(ctx, opts):
    """vm_reclaim: one sweep of the host, with its summary."""
    limit = ctx.params.get('limit')
    began = time.monotonic()
    pairs = lc.snapshot(ctx)
    now = _record.utcnow()
    clock = Clock(now, opts.clock_tolerance, opts.max_overdue)
    project = ctx.project
    fleet_view = term.fleet_view(ctx, opts)
    due, kept, skipped, resumable, stale_undefine = classify(pairs, clock, project, fleet_view)
    # Interrupted reclaims first (their disks may be half gone), then the longest expired.
    todo = resumable + due
    over_limit = []
    if limit is not None and len(todo) > limit:
        todo, over_limit = todo[:limit], todo[limit:]
    index = storage.Index(ctx.conn, [d for d, dummy in pairs], fleet_view)
    tombs, waiting, bad_tombs = tombstones.for_sweep(ctx.state, set(v['uuid'] for dummy, v in pairs), opts.cinder, project,
                                                     ctx.host)

    def work(item):
        kind, payload = item
        if kind == 'domain':
            return reclaim_one(ctx, payload, opts, index, clock)
        if kind == 'stale':
            return undefine_stale_copy(ctx, payload, fleet_view, clock)
        return tombstones.finish_pending(ctx, payload, opts.cinder)

    items = [('tombstone', t) for t in tombs] + [('domain', d) for d, dummy in todo] + \
        [('stale', d) for d, dummy, dummy2 in stale_undefine]
    views = dict((v['uuid'], v) for dummy, v in pairs)
    instances = lc.run_each(ctx, items, work,
                            label=lambda item: item[1].get('name') if item[0] == 'tombstone' else item[1].name)
    report = summarize(ctx, items, instances, views, skipped, bad_tombs, over_limit, kept, now, limit)
    # The state_dir's own retention: finished tombstones, lock files of gone domains, the journal (docs/lifecycle.md).
    live = set(v['uuid'] for dummy, v in pairs)
    report['retention'] = retention.prune(ctx.state, live, opts.retention, project=project, check_mode=ctx.check_mode,
                                          request_id=ctx.request_id)
    ctx.warnings.extend('vm_reclaim: %s' % error for error in report['retention'].get('errors') or [])
    # Terminated without Cinder and never checked since: reported, finished by the first sweep that has Cinder.
    report['cinder_unchecked'] = [{'name': t.get('name'), 'uuid': t.get('uuid'), 'terminated_at': t.get('terminated_at')}
                                  for t in waiting]
    # When the sweep ran and how long it took: the reclaim role keeps them as the host's last sweep (report, metrics).
    report.update(started_at=_record.format_time(now), finished_at=_record.format_time(_record.utcnow()),
                  duration_seconds=round(time.monotonic() - began, 3))
    return lc.outcome(instances, 'vm_reclaim', **report)


def summarize(ctx, items, instances, views, skipped, bad_tombs, over_limit, kept, now, limit):
    """The sweep's report: reclaimed, failed_domains, skipped_domains, kept, pending, finished and their counts."""
    reclaimed, failed, finished, pending, skipped_out, undefined = [], [], [], [], [], []
    for (kind, payload), result in zip(items, instances):
        result.setdefault('uuid', payload.get('uuid') if kind == 'tombstone' else payload.uuid)
        if kind == 'stale' and result.get('action') in ('undefined_stale_copy', 'would_undefine_stale_copy'):
            undefined.append({'name': result['name'], 'uuid': result.get('uuid'), 'reason': result.get('stale'),
                              'authoritative': result.get('authoritative')})
            continue
        if result.get('failed'):
            failed.append({'name': result['name'], 'uuid': result.get('uuid'), 'msg': result['msg']})
            if kind == 'domain':
                ctx.event('instance.reclaim', payload, result='error', message=result['msg'])
        elif result.get('action') == 'skipped':
            skipped_out.append({'name': result['name'], 'uuid': result.get('uuid'), 'reason': result.get('reason')})
        elif kind == 'domain' and result.get('changed'):
            view = views.get(payload.uuid) or {}
            entry = dict((k, view.get(k)) for k in ('project', 'deleted_at', 'reclaim_at'))
            entry.update((k, result.get(k)) for k in ('name', 'uuid', 'volumes_deleted', 'volumes_detached',
                                                      'volumes_pending', 'disks_deleted', 'disks_kept'))
            reclaimed.append(entry)
        elif kind == 'tombstone' and not result.get('volumes_pending'):
            finished.append({'name': result['name'], 'uuid': result.get('uuid')})
        if result.get('volumes_pending'):
            pending.append({'name': result['name'], 'uuid': result.get('uuid'), 'volumes': result['volumes_pending']})
    for domain, view, why in skipped:
        skipped_out.append({'name': view['name'], 'uuid': view.get('uuid'), 'project': view.get('project'), 'reason': why})
        if view.get('metadata_error') or view.get('anomalies'):
            # Spec rule 1: never reclaimed, always reported - in the result, as a warning and in the journal.
            ctx.warnings.append('vm_reclaim: %s skipped: %s' % (domain.name, why))
            ctx.event('instance.reclaim', domain, result='skipped', reason=why)
    skipped_out += [{'name': tomb.get('name'), 'uuid': tomb.get('uuid'), 'reason': 'tombstone: %s' % tomb['error']}
                    for tomb in bad_tombs]
    ctx.warnings.extend('vm_reclaim: tombstone %s cannot be read: %s' % (tomb.get('uuid'), tomb['error'])
                        for tomb in bad_tombs)
    skipped_out += [{'name': v['name'], 'uuid': v['uuid'], 'project': v.get('project'), 'reclaim_at': v.get('reclaim_at'),
                     'reason': 'over this run\'s limit of %d; left for the next sweep' % limit} for dummy, v in over_limit]
    kept = sorted(kept, key=lambda pair: pair[1]['reclaim_at'])
    kept_out = [{'name': v['name'], 'uuid': v['uuid'], 'project': v.get('project'), 'deleted_at': v.get('deleted_at'),
                 'reclaim_at': v['reclaim_at'],
                 'expires_in': int((_record.parse_time(v['reclaim_at']) - now).total_seconds())} for dummy, v in kept]
    # (kept holds only views whose reclaim_at eligibility() read as a time, so parse_time cannot fail here.)
    summary = dict(reclaimed=len(reclaimed), failed=len(failed), skipped=len(skipped_out), kept=len(kept_out),
                   pending=len(pending), finished=len(finished))
    # Stale copies whose definition alone was removed (rule 9): not reclaimed, so not counted as such.
    return dict(reclaimed=reclaimed, failed_domains=failed, skipped_domains=skipped_out, kept=kept_out,
                pending=pending, finished=finished, stale_undefined=undefined, summary=summary)
