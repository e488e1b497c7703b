# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One reclaim sweep of a host: terminate what has expired, finish pending Cinder work, report the rest.

The sweep's work is a list of small items, each with ``run(ctx)``: a
``Reclaim`` of an expired domain (the shared terminate work, ``_termination``),
a ``StaleUndefine`` of a stale copy's definition (rule 9), a ``LeftWork`` of a
tombstone whose Cinder work is pending.

Whether a domain may be reclaimed is decided in one place, ``eligible.eligibility``:
the sweep asks it of every domain's view, and each reclaim asks it again of
the domain's fresh view under its lock (rule 4 of docs/rules.md).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options_
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _retention as retention
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._locks import LockTimeout
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _termination as termination

# No name or query: a sweep looks at every domain of the host (of one project, with project).
ARGUMENT_SPEC = options_.spec(options_.Retention, options_.Reclaim, *termination.GROUPS)
# The sweep never passes a guard (locked and protected domains are skipped, rechecked under the lock), so it has
# no force option.
del ARGUMENT_SPEC['force']


def classify(items, clock, project=None, fleet_view=None):
    """Sort soft-deleted domains (engine.Selected items) into (due, kept, skipped, resumable[, undefine]) without
    touching anything.

    skipped and undefine items are (Selected, reason); the others Selected. due comes longest expired first.
    """
    due, kept, skipped, resumable, undefine = [], [], [], [], []
    for item in items:
        view = item.view
        if item.domain is None or (project is not None and view.get('project') != project):
            continue
        verdict, reason = eligible.eligibility(view, clock, fleet_view)
        if verdict == eligible.UNDEFINE:
            undefine.append((item, reason))
        elif verdict == eligible.SKIP:
            skipped.append((item, reason))
        elif verdict == eligible.RESUME:
            resumable.append(item)
        elif verdict == eligible.DUE:
            due.append(item)
        elif verdict == eligible.KEPT:
            kept.append(item)
    due.sort(key=lambda item: item.view['reclaim_at'])
    if fleet_view is not None:
        return due, kept, skipped, resumable, undefine
    return due, kept, skipped, resumable


def still_due(clock, fleet_view=None):
    """The precondition a reclaim checks under the domain's lock: eligible.eligibility() again, on the state of now."""
    def check(domain):
        verdict, reason = eligible.eligibility(_views.describe(domain), clock, fleet_view)
        if verdict in (eligible.DUE, eligible.RESUME):
            return
        if verdict == eligible.OUT:
            raise engine.Skip('domain %s is no longer soft-deleted (restored meanwhile); not reclaimed' % domain.name)
        if verdict == eligible.KEPT:
            raise engine.Skip('domain %s: reclaim_at %s has not passed; not reclaimed'
                              % (domain.name, (domain.record or {}).get('reclaim_at')))
        raise engine.Skip('domain %s: %s; not reclaimed' % (domain.name, reason))
    return check


class Reclaim(object):
    """Reclaim one expired domain: the shared terminate work, with an instance.reclaim event.

    A domain that no longer qualifies under its lock (restored meanwhile), or
    whose lock another operation holds past lock_timeout, is skipped, not
    failed: the next sweep looks at it again.
    """

    def __init__(self, item, opts, index, clock):
        self.item, self.opts, self.index, self.clock = item, opts, index, clock
        self.name, self.uuid = item.domain.name, item.domain.uuid

    def run(self, ctx):
        domain = self.item.domain
        # Between the sweep's snapshot and the domain's lock: where a restore can get in first (tests pause here).
        failpoint('reclaim.before_lock')
        try:
            result = termination.terminate(ctx, domain, self.opts.terminate, self.index, action='reclaim',
                                           precondition=still_due(self.clock, self.index.fleet), operation='reclaim')
        except (engine.Skip, LockTimeout) as exc:
            reason = str(exc)
            if isinstance(exc, LockTimeout):
                reason = '%s; not reclaimed in this sweep' % reason
            ctx.event('instance.reclaim', domain, result='skipped', reason=reason)
            return {'name': domain.name, 'uuid': domain.uuid, 'changed': False, 'action': 'skipped', 'reason': reason}
        if not ctx.check_mode and result.get('changed'):
            ctx.event('instance.reclaim', domain, result='pending' if result.get('volumes_pending') else 'success',
                      deleted_at=(domain.record or {}).get('deleted_at'),
                      reclaim_at=(domain.record or {}).get('reclaim_at'),
                      volumes_pending=[v['id'] for v in result.get('volumes_pending') or []])
        return result

    def summarize(self, ctx, result, report, views):
        if result.get('failed'):
            report.failed(result)
            ctx.event('instance.reclaim', self.item.domain, result='error', message=result['msg'])
        elif result.get('action') == 'skipped':
            report.skipped(result)
        elif result.get('changed'):
            view = views.get(self.uuid) or {}
            entry = dict((k, view.get(k)) for k in ('project', 'deleted_at', 'reclaim_at'))
            entry.update((k, result.get(k)) for k in ('name', 'uuid', 'volumes_deleted', 'volumes_detached',
                                                      'volumes_pending', 'disks_deleted', 'disks_kept'))
            report.reclaimed.append(entry)
            if result.get('disks_pending'):
                report.disks_pending.append({'name': result['name'], 'uuid': result.get('uuid'),
                                             'project': view.get('project'),
                                             'disks': [d.get('path') for d in result['disks_pending']],
                                             'reason': 'the fleet index is incomplete (%s)'
                                             % self.index.fleet.gaps_text()})


class StaleUndefine(object):
    """Rule 9 in the sweep: a stale copy of a domain whose every copy is in the trash loses its definition only; its
    disks, volumes and attachments are the authoritative copy's, reclaimed there."""

    def __init__(self, item, fleet_view, clock):
        self.item, self.fleet_view, self.clock = item, fleet_view, clock
        self.name, self.uuid = item.domain.name, item.domain.uuid

    def run(self, ctx):
        def plan_for(current):
            view = _views.describe(current)
            verdict, reason = eligible.eligibility(view, self.clock, self.fleet_view)
            if verdict != eligible.UNDEFINE:
                return NotStale(current, reason)
            return termination.StaleCopy(current, self.fleet_view.stale(view), 'reclaim')

        return engine.carry_out(ctx, self.item.domain, plan_for, when_gone=engine.already_gone)

    def summarize(self, ctx, result, report, views):
        if result.get('action') in ('undefined_stale_copy', 'would_undefine_stale_copy'):
            report.undefined.append({'name': result['name'], 'uuid': result.get('uuid'), 'reason': result.get('stale'),
                                     'authoritative': result.get('authoritative')})
        elif result.get('failed'):
            report.failed(result)
        elif result.get('action') == 'skipped':
            report.skipped(result)


class NotStale(engine.Plan):
    """A copy that is no longer a stale copy in the trash under its lock: left for the next sweep."""

    decision = engine.NOOP

    def __init__(self, domain, reason):
        self.domain, self.reason = domain, reason

    def report(self):
        return {'name': self.domain.name, 'uuid': self.domain.uuid, 'changed': False, 'action': 'skipped',
                'reason': self.reason or 'no longer a stale copy in the trash; left for the next sweep'}


class LeftWork(object):
    """A tombstone whose domain is gone with work left: disks kept while the fleet index was incomplete, Cinder work;
    finished (or reported, in check mode)."""

    def __init__(self, tomb, opts, foreign_hosts, index=None):
        self.tomb, self.opts, self.foreign_hosts, self.index = tomb, opts, foreign_hosts, index
        self.name, self.uuid = tomb.get('name'), tomb.get('uuid')

    def run(self, ctx):
        disks = None
        if self.tomb.get('disks_pending') and self.index is not None:
            disks = termination.settle_pending_disks(ctx, self.tomb, self.opts.terminate, self.index)
        if tombstones.waits_for_cinder(self.tomb, self.opts.terminate.cinder) or (
                disks is not None and tombstones.finished(dict(self.tomb, disks_pending=None))):
            result = {'name': self.name, 'uuid': self.uuid, 'changed': False, 'action': 'none'}
            if disks is not None and disks['changed']:
                # Cinder already settled (or not to be asked in this run): the tombstone moves on with its disks.
                result['action'] = 'would_finish_pending' if ctx.check_mode else 'pending_finished'
        else:
            hold = self.index.fleet.volumes_held(self.uuid, gone=True) if self.index is not None else None
            result = tombstones.finish_left_work(ctx, self.tomb, self.opts.terminate.cinder, self.foreign_hosts, hold)
        if disks is not None:
            result['changed'] = bool(result.get('changed') or disks['changed'])
            result.update((k, disks[k]) for k in ('disks_deleted', 'disks_kept', 'disks_pending', 'disks_gone'))
            if disks.get('disks_pending_reason'):
                result['disks_pending_reason'] = disks['disks_pending_reason']
            if not ctx.check_mode and disks['changed']:
                ctx.state.event('instance.delete.end', ctx.request_id, domain=self.name, uuid=self.uuid,
                                project=self.tomb.get('project'), action='pending_disks',
                                result='pending' if disks['disks_pending'] else 'success',
                                disks_deleted=disks['disks_deleted'],
                                disks_kept=[d.get('path') for d in disks['disks_kept']],
                                disks_pending=[d.get('path') for d in disks['disks_pending']])
        return result

    def summarize(self, ctx, result, report, views):
        if result.get('failed'):
            report.failed(result)
        elif result.get('action') == 'skipped':
            report.skipped(result)
        else:
            if result.get('disks_pending'):
                report.disks_pending.append({'name': result['name'], 'uuid': result.get('uuid'),
                                             'project': self.tomb.get('project'),
                                             'disks': [d.get('path') for d in result['disks_pending']],
                                             'reason': result.get('disks_pending_reason')})
            if result.get('disks_deleted'):
                report.disks_settled.append({'name': result['name'], 'uuid': result.get('uuid'),
                                             'disks_deleted': result['disks_deleted']})
            if not result.get('volumes_pending') and not result.get('disks_pending'):
                report.finished.append({'name': result['name'], 'uuid': result.get('uuid')})


class ReclaimOptions(object):
    def __init__(self, own, retention_opts, termination_opts):
        self.limit = own.limit
        self.project = own.project
        self.clock_tolerance = own.clock_tolerance
        self.max_overdue = own.max_overdue
        self.retention = retention_opts
        self.terminate = termination_opts


def options(params, no_log_values=None):
    """ReclaimOptions from the task's options; DeferredError naming the option when one cannot be read."""
    own = options_.Reclaim.read(params)
    return ReclaimOptions(own, options_.Retention.read(params), termination.read(params, no_log_values))


def run(ctx, opts):
    """vm_reclaim: one sweep of the host, with its summary."""
    limit = opts.limit
    began = time.monotonic()
    items = engine.snapshot(ctx)
    now = _record.utcnow()
    clock_check = check_clock(ctx, now, opts)
    clock = eligible.Clock(now, opts.clock_tolerance, opts.max_overdue,
                           stepped=clock_check['message'] if clock_check['blocks'] else None)
    project = ctx.project
    fleet_view = termination.fleet_view(ctx, opts.terminate)
    foreign_hosts = fleet_view.foreign_hosts()
    due, kept, skipped, resumable, stale_undefine = classify(items, clock, project, fleet_view)
    # Interrupted reclaims first (their disks may be half gone), then the longest expired.
    todo = resumable + due
    over_limit = []
    if limit is not None and len(todo) > limit:
        todo, over_limit = todo[:limit], todo[limit:]
    index = storage.Index(ctx.conn, [i.domain for i in items], fleet_view)
    tombs, waiting, bad_tombs, theirs = tombstones.for_sweep(ctx.state, set(i.uuid for i in items),
                                                             opts.terminate.cinder, project, ctx.host)
    work = [LeftWork(t, opts, foreign_hosts, index) for t in tombs] + [Reclaim(i, opts, index, clock) for i in todo] + \
        [StaleUndefine(i, fleet_view, clock) for i, dummy in stale_undefine]
    views = dict((i.uuid, i.view) for i in items)
    instances = engine.run_each(ctx, work, lambda item: item.run(ctx))
    report = summarize(ctx, work, instances, views, skipped, bad_tombs, over_limit, kept, now, limit)
    # The state_dir's own retention: finished tombstones, lock files of gone domains, the journal (docs/lifecycle.md).
    live = set(i.uuid for i in items)
    report['retention'] = retention.prune(ctx.state, live, opts.retention, project=project, check_mode=ctx.check_mode,
                                          request_id=ctx.request_id)
    ctx.warnings.extend('vm_reclaim: %s' % error for error in report['retention'].get('errors') or [])
    # Terminated without Cinder and never checked since: reported, finished by the first sweep that has Cinder.
    report['cinder_unchecked'] = [{'name': t.get('name'), 'uuid': t.get('uuid'), 'terminated_at': t.get('terminated_at')}
                                  for t in waiting]
    if waiting:
        ctx.warnings.append('vm_reclaim: %d terminated domain(s) wait for a run with Cinder options (cinder_unchecked) '
                            'and are never pruned until then; %s' % (len(waiting), tombstones.NO_CINDER_ADVICE))
    report['tombstones_of_other_hosts'] = left_to_their_hosts(ctx, theirs)
    # What the sweep knew of the fleet: an incomplete index (a host of the fleet did not report) keeps every disk
    # another host could reach, and the result says so, with the hosts that were missing.
    report['fleet'] = {'given': fleet_view.given, 'complete': fleet_view.complete, 'missing': fleet_view.missing,
                       'gaps': (fleet_view.fleet or {}).get('gaps') or [] if not fleet_view.complete else []}
    if fleet_view.given and not fleet_view.complete:
        ctx.warnings.append('vm_reclaim: the fleet index is incomplete (%s): disks another host could reach were kept '
                            'and stay pending in the tombstones until a sweep with a complete index'
                            % fleet_view.gaps_text())
    # When the sweep ran and how long it took: the reclaim role keeps them as the host's last sweep (report, metrics).
    report['clock'] = dict((k, clock_check[k]) for k in ('state', 'step_seconds', 'blocks', 'message'))
    report.update(started_at=_record.format_time(now), finished_at=_record.format_time(_record.utcnow()),
                  duration_seconds=round(time.monotonic() - began, 3))
    return engine.outcome(instances, 'vm_reclaim', **report)


def left_to_their_hosts(ctx, theirs):
    """Tombstones with work left that another host wrote (a state_dir shared by several hypervisors), as the result
    lists them: never touched here, each one's host finishes it (rule 5). One whose host has never run a sweep on
    this state_dir (it has no entry in clock.json) is also warned about: it may be this host under an earlier
    hostname whose libvirtd has since made up a new host UUID, and then nothing else would ever say that its volumes
    and disks wait."""
    try:
        swept = ctx.state.swept_hosts()
    except StateDirError as exc:
        ctx.warnings.append('vm_reclaim: %s; tombstones of other hosts are listed without checking their hosts' % exc)
        swept = None
    out = []
    for tomb in theirs:
        host = tomb.get('host') or {}
        out.append({'name': tomb.get('name'), 'uuid': tomb.get('uuid'), 'project': tomb.get('project'),
                    'terminated_at': tomb.get('terminated_at'), 'host': host.get('hostname'), 'host_uuid': host.get('uuid'),
                    'volumes_pending': len(tomb.get('volumes_pending') or []),
                    'disks_pending': len(tomb.get('disks_pending') or [])})
        key = (host.get('hostname') or host.get('uuid') or '').lower()
        if swept is not None and key not in swept:
            ctx.warnings.append(
                'vm_reclaim: the tombstone of %s (%s) names host %s (host UUID %s), which has never run a sweep on this '
                'state_dir: its volumes and disks wait for that host. If that is this host under an earlier hostname, '
                'this host finishes it once its libvirtd has that host UUID again (host_uuid in libvirtd.conf) or its '
                'hostname is that one again (docs/lifecycle.md, "A distinct hostname per hypervisor, and a host UUID that '
                'stays")'
                % (tomb.get('name'), tomb.get('uuid'), host.get('hostname') or '(no hostname)', host.get('uuid') or '?'))
    return out


def check_clock(ctx, now, opts):
    """Rule 11 against the boot clock: this sweep's clocks compared with the last sweep's (clock.json), recorded for
    the next one. A forward step (or a reboot onto an unsynchronised clock) blocks every reclaim of this sweep, and
    the last good sample is kept, so every sweep says so until the clock is fixed or an operator, having checked it,
    runs one sweep with max_overdue 0 (which takes the clock as it is). Said as a warning and a journal event."""
    sample = eligible.clock_sample(now)
    state = ctx.state
    key = ctx.host_key()
    try:
        previous = state.read_clock(key) if state is not None else None
    except Exception as exc:  # a clock file that cannot be read is said, never fatal: the overdue rule still holds
        ctx.warnings.append('vm_reclaim: %s; the wall clock is checked by the overdue rule alone' % exc)
        previous = None
    result = eligible.check_clock(previous, sample, opts.clock_tolerance)
    if result['blocks'] and not opts.max_overdue:
        # The operator checked the clock (max_overdue 0): taken as it is, said, and the new sample kept.
        result = dict(result, blocks=False, message='%s (accepted: max_overdue 0)' % result['message'])
    if result['message']:
        ctx.warnings.append('vm_reclaim: %s' % result['message'])
    if state is not None and not ctx.check_mode:
        if result['state'] != eligible.CLOCK_OK and result['state'] != eligible.CLOCK_FIRST:
            state.event('reclaim.clock', ctx.request_id, result=result['state'], step_seconds=result['step_seconds'],
                        blocks=result['blocks'], message=result['message'], previous=previous, current=sample)
        if not result['blocks']:
            state.write_clock(key, sample)
    return result


class _Report(object):
    """The sweep's lists, filled by each work item's ``summarize``."""

    def __init__(self):
        self.reclaimed, self.failed_domains, self.finished, self.pending, self.skipped_domains, self.undefined = \
            [], [], [], [], [], []
        # Tombstones whose disks are kept until a sweep with a complete fleet index; those it deleted in this sweep.
        self.disks_pending, self.disks_settled = [], []

    def failed(self, result):
        self.failed_domains.append({'name': result['name'], 'uuid': result.get('uuid'), 'msg': result['msg']})

    def skipped(self, result):
        self.skipped_domains.append({'name': result['name'], 'uuid': result.get('uuid'), 'reason': result.get('reason')})


def summarize(ctx, work, instances, views, skipped, bad_tombs, over_limit, kept, now, limit):
    """The sweep's report: reclaimed, failed_domains, skipped_domains, kept, pending, finished and their counts."""
    report = _Report()
    for item, result in zip(work, instances):
        result.setdefault('uuid', item.uuid)
        item.summarize(ctx, result, report, views)
        if result.get('volumes_pending'):
            report.pending.append({'name': result['name'], 'uuid': result.get('uuid'),
                                   'volumes': result['volumes_pending']})
    reclaimed, failed, finished, pending, skipped_out, undefined = (
        report.reclaimed, report.failed_domains, report.finished, report.pending, report.skipped_domains,
        report.undefined)
    for item, why in skipped:
        domain, view = item.domain, item.view
        skipped_out.append({'name': view['name'], 'uuid': view.get('uuid'), 'project': view.get('project'), 'reason': why})
        if view.get('metadata_error') or view.get('anomalies'):
            # Rule 1 of docs/rules.md: never reclaimed, always reported - in the result, as a warning and in the journal.
            ctx.warnings.append('vm_reclaim: %s skipped: %s' % (domain.name, why))
            ctx.event('instance.reclaim', domain, result='skipped', reason=why)
    skipped_out += [{'name': tomb.get('name'), 'uuid': tomb.get('uuid'), 'reason': 'tombstone: %s' % tomb['error']}
                    for tomb in bad_tombs]
    ctx.warnings.extend('vm_reclaim: tombstone %s cannot be read: %s' % (tomb.get('uuid'), tomb['error'])
                        for tomb in bad_tombs)
    skipped_out += [{'name': v['name'], 'uuid': v['uuid'], 'project': v.get('project'), 'reclaim_at': v.get('reclaim_at'),
                     'reason': 'over this run\'s limit of %d; left for the next sweep' % limit}
                    for v in (i.view for i in over_limit)]
    kept = sorted((i.view for i in kept), key=lambda view: view['reclaim_at'])
    kept_out = [{'name': v['name'], 'uuid': v['uuid'], 'project': v.get('project'), 'deleted_at': v.get('deleted_at'),
                 'reclaim_at': v['reclaim_at'],
                 'expires_in': int((_record.parse_time(v['reclaim_at']) - now).total_seconds())} for v in kept]
    # (kept holds only views whose reclaim_at eligible.eligibility() read as a time, so parse_time cannot fail here.)
    summary = dict(reclaimed=len(reclaimed), failed=len(failed), skipped=len(skipped_out), kept=len(kept_out),
                   pending=len(pending), finished=len(finished), disks_pending=len(report.disks_pending))
    # Stale copies whose definition alone was removed (rule 9): not reclaimed, so not counted as such.
    # finished_tombstones is the list; ``finished`` repeats it for ansible-core 2.16-2.18, where it was the only name
    # (2.19 and later take a result's ``finished`` as the async flag and register a bool in its place).
    return dict(reclaimed=reclaimed, failed_domains=failed, skipped_domains=skipped_out, kept=kept_out,
                pending=pending, finished_tombstones=finished, finished=finished, stale_undefined=undefined, summary=summary,
                disks_pending=report.disks_pending, disks_settled=report.disks_settled)
