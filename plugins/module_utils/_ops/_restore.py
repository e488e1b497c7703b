# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore: the batch quota check, then the libvirt driver's hard reboot, bounded by start_timeout, rolled back on
any failure (rule 2 of docs/rules.md). ``run`` is the whole of vm_restore; each restore is a ``RestorePlan`` that
engine.carry_out reports or carries out."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _pools
from ansible_collections.deferred.libvirt.plugins.module_utils import _power
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options_
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _selection
from ansible_collections.deferred.libvirt.plugins.module_utils import _states as states
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError, unchanged
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint
from ansible_collections.deferred.libvirt.plugins.module_utils._selection import SelectionError
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, RESUME
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _move

OPERATION = 'restore'
ARGUMENT_SPEC = options_.spec(options_.Selection, options_.Lifecycle, options_.Restore, options_.Fleet)


class RestoreOptions(object):
    def __init__(self, selection, own, force, fleet_opts=None):
        self.selection = selection
        self.fleet = fleet_opts.index if fleet_opts is not None else None
        self.fleet_max_age = fleet_opts.max_age if fleet_opts is not None else fleet.DEFAULT_MAX_AGE
        self.fleet_required = fleet_opts.required if fleet_opts is not None else False
        self.fleet_run = fleet_opts.run if fleet_opts is not None else None
        self.start_timeout = own.start_timeout
        self.hard_reboot = own.hard_reboot
        self.quota = own.quota
        self.usage = own.usage
        self.move_from = own.move_from
        self.move_to = own.move_to
        self.force = force


def options(params, no_log_values=None):
    """RestoreOptions from the task's options; DeferredError naming the option when one cannot be read."""
    return RestoreOptions(options_.Selection.read(params), options_.Restore.read(params),
                          options_.Lifecycle.read(params).force, options_.Fleet.read(params))


def run(ctx, opts):
    """vm_restore: the batch quota check before anything, then one restore per selected domain."""
    # Rule 9 (and 12): a slice for another host, or an old one, is refused before anything changes.
    # With fleet_required, such a slice (or none) gives the record's host the say instead, as an incomplete index.
    opts.fleet_view = fleet.view_for(opts.fleet, ctx.host, opts.fleet_max_age, opts.fleet_required,
                                     run=opts.fleet_run)
    if opts.move_to:
        return _move.mark(ctx, opts)  # the source's side of a move onto another host
    if opts.move_from:
        return _move.move_here(ctx, opts, restore)
    items = engine.snapshot(ctx)
    try:
        chosen = engine.select(items, opts.selection)
    except SelectionError as exc:
        refuse_gone(ctx, items, opts.selection, exc)
        raise
    extra = {}
    if opts.quota is not None:
        extra['quota'] = check_quota(ctx, opts, items, chosen)
    instances = engine.run_each(ctx, chosen, lambda item: restore(ctx, item.domain, opts))
    return engine.outcome(instances, 'vm_restore', **extra)


def refuse_gone(ctx, items, selection, exc):
    """A named domain that is no longer here because it was reclaimed or terminated: DeferredError (nothing changed)
    that says so, when, by which request and actor, and what was deleted and kept, with those as structured keys
    (``terminated``), instead of only "no domain named". Returns when no missing name has a tombstone here."""
    if selection.names is None:
        return
    live = [i.view for i in items]
    by_name, by_uuid = {}, {}
    for view in live:
        by_name.setdefault(view['name'], view)
        if view.get('uuid'):
            by_uuid.setdefault(view['uuid'].lower(), view)
    missing = [str(raw).strip() for raw in selection.names
               if _selection.resolve(str(raw).strip(), by_name, by_uuid) == (None, None)]
    if not missing:
        return
    try:
        state = ctx.state if ctx.state is not None else ctx.open_state(create=False)
    except DeferredError:
        return  # no state_dir to read: the selection's own message stands
    live_uuids = set(i.uuid for i in items)
    # Pending tombstones (work left, or Cinder never asked) and the finished ones these names name.

    def ours(t):
        if t.get('error') or t.get('uuid') in live_uuids or tombstones.foreign(t, ctx.host):
            return False
        return selection.project is None or t.get('project') == selection.project

    known = [t for t in state.tombstones_for(missing) if ours(t)]
    gone, told = [], []
    for key in missing:
        found = [t for t in known if t.get('name') == key or (t.get('uuid') or '') == key.lower()]
        if not found:
            continue
        # The latest of the domains that bore this name.
        tomb = max(found, key=lambda t: (t.get('terminated_at') or t.get('started_at') or ''))
        if tomb.get('uuid') in told:
            continue
        told.append(tomb.get('uuid'))
        gone.append((key, tomb))
    if not gone:
        return
    wanted = set(t.get('request_id') for dummy, t in gone)
    for dummy, tomb in gone:
        wanted.update(h.get('request_id') for h in tomb.get('history') or [] if isinstance(h, dict))
    actors = _actors(state, wanted - set([None]))
    stories = [tombstones.story(tomb, actors) for dummy, tomb in gone]
    problems = [s['msg'] for s in stories]
    rest = [k for k in missing if k not in set(key for key, dummy in gone)]
    if rest:
        try:
            _selection.select(live, names=rest, project=selection.project)
        except SelectionError as more:
            problems.append(str(more))
    raise unchanged(DeferredError('; '.join(problems), terminated=stories))


def _actors(state, request_ids):
    """request id -> actor, from the event journal (and its rotated files) for ``request_ids``."""
    actors = {}
    if not request_ids:
        return actors
    for event in state.read_events(rotated=True):
        rid = event.get('request_id')
        if rid in request_ids and rid not in actors and isinstance(event.get('actor'), str):
            actors[rid] = event['actor']
    return actors


def check_quota(ctx, opts, items, chosen):
    """The batch's quota figures; DeferredError (nothing changed) when the batch does not fit."""
    # Only domains that would really come back count against the quota.
    wanted = []
    for item in chosen:
        try:
            # A soft-deleted guest started by hand already counts in the usage: not asked for twice.
            if engine.decision(item.domain, OPERATION) != NOOP and not _views.counts_for_quota(item.view):
                wanted.append(item.view)
        except engine.OperationError:
            pass  # reported per domain by the restore itself
    usage = opts.usage if opts.usage is not None else _views.usage([i.view for i in items])
    request = quota.request_of(wanted)
    over = quota.check(opts.quota, usage, request)
    # Only the projects of this batch: the host (or fleet) may hold many others.
    figures = {'request': request, 'usage': quota.usage_of(usage, request), 'over': over}
    if over:
        raise quota.QuotaError('over quota, nothing was changed: %s' % quota.describe(over), quota=figures,
                               instances=[dict(name=i.domain.name, uuid=i.domain.uuid, changed=False, failed=True,
                                               msg='over quota') for i in chosen])
    return figures


class RestorePlan(engine.Plan):
    """What a restore of one domain will do, decided once: guards, START/RESUME/NOOP, the record after."""

    held = states.holds(OPERATION)
    event = 'restore'
    faults = 'restore'

    def __init__(self, ctx, domain, opts):
        self.domain = domain
        self.opts = opts
        engine.guard(domain, 'restore', ctx.project, opts.force, check_protected=False)
        self.decision = engine.decision(domain, OPERATION)
        self.before = copy.deepcopy(domain.record)
        self.before_view = _views.describe(domain)
        self.overrode = None
        if self.decision != NOOP:
            self.overrode = stale_copy_check(ctx, domain, self.before_view, opts)
        self.resumes_saved_memory = bool(domain.managed_save and not opts.hard_reboot)
        self.after_view = dict(self.before_view, vm_state=states.leaves(OPERATION), task_state=None, deleted_at=None,
                               reclaim_at=None, soft_delete_mode=None, power_state='running')

    def report(self):
        if self.decision == NOOP:
            return engine.result_for(self.domain, False, action='none', record=self.before_view, msg='already active')
        return engine.result_for(self.domain, True, before=self.before_view, after=self.after_view,
                                 action='would_restore', resumed_saved_memory=self.resumes_saved_memory,
                                 record=self.after_view, **self._overridden())

    def _overridden(self):
        """What the result says when force restored a stale copy (rule 9 overridden): the reason, and a warning."""
        if not self.overrode:
            return {}
        text = ('domain %s: force=true restores a stale copy, overriding rule 9 (%s); the other copy must not run at '
                'the same time as this one' % (self.domain.name, self.overrode['reason']))
        return {'overrode': self.overrode['reason'], 'authoritative': self.overrode.get('authoritative'),
                'warnings': [text]}

    def start_payload(self):
        return dict(deleted_at=self.before.get('deleted_at'), reclaim_at=self.before.get('reclaim_at'))

    def apply(self, ctx):
        domain = self.domain
        self.steps = hard_reboot(ctx, domain, self.opts, resumed=self.decision == RESUME)
        failpoint('restore.after_boot')
        record = copy.deepcopy(domain.record)
        record.update({'vm_state': states.leaves(OPERATION), 'task_state': None, 'deleted_at': None,
                       'reclaim_at': None, 'soft_delete_mode': None})
        record = _record.add_history(record, OPERATION, ctx.request_id, _record.format_time(_record.utcnow()),
                                     'success')
        self.after = ctx.fresh(domain)  # one read after the boot, for the compare-and-set and the result
        return record

    def roll_back(self, ctx, exc):
        """Rule 2 of docs/rules.md: back to soft_deleted, shut off, original deleted_at and reclaim_at, error in history.

        When that cannot be done it stays 'restoring' (a re-run finishes or rolls back, rule 7, and reclaim leaves
        it alone). Never soft_deleted and idle while the guest may still run.
        """
        before = self.before

        def record_for(current):
            _power.destroy(current.dom)
            current = ctx.fresh(current)
            record = copy.deepcopy(before)
            record.update({'vm_state': 'soft_deleted', 'task_state': None})
            if record.get('soft_delete_mode') == 'managed_save' and not current.managed_save:
                record['soft_delete_mode'] = 'shutdown'  # the saved memory was used up: the next restore boots fresh
            return current, _record.add_history(record, 'restore', ctx.request_id, _record.format_time(_record.utcnow()),
                                                'error', str(exc))

        not_rolled_back = engine.put_back(ctx, self.domain, record_for, 'restore', exc)
        if not_rolled_back:
            return engine.OperationError('domain %s: restore failed: %s; it could not be rolled back (%s) and stays '
                                         'soft-deleted with task_state restoring, which the reclaim sweep leaves alone: '
                                         'run vm_restore again to finish it' % (self.domain.name, exc, not_rolled_back))
        return engine.OperationError('domain %s: restore failed; it stays soft-deleted with deleted_at %s and '
                                     'reclaim_at %s: %s' % (self.domain.name, before.get('deleted_at'),
                                                            before.get('reclaim_at'), exc))

    def finish(self, ctx):
        failpoint('restore.after_record')
        ctx.event('instance.restore.end', self.domain, result='success', **self.steps)
        after_view = _views.describe(self.after)
        extra = dict(self.steps, **self._overridden())
        return engine.result_for(self.domain, True, before=self.before_view, after=after_view, action='restored',
                                 resumed=self.decision == RESUME, seconds=round(time.monotonic() - self.started, 2),
                                 record=after_view, **extra)


def stale_copy_check(ctx, domain, view, opts):
    """Rule 9 for a restore: a stale copy (its record names another host, or the fleet slice says another copy is
    authoritative or runs) is refused without force, saying why and where the other copy lives. With force it is
    restored, and the stale entry is returned so the result says what was overridden; None for an authoritative copy.
    """
    fleet_view = getattr(opts, 'fleet_view', None) or fleet.FleetView(getattr(opts, 'fleet', None), ctx.host)
    stale = fleet_view.stale(view)
    if stale is None:
        return None
    if not opts.force:
        raise engine.stale_copy_refused(
            domain, stale, 'restore', ': two copies of one domain must never run (they would write the same disks). '
            'Restore the authoritative copy on {where} instead, or force=true to restore this one anyway')
    return stale


def restore(ctx, domain, opts):
    """Restore one soft-deleted domain to running; returns its result dict or raises OperationError."""
    return engine.carry_out(ctx, domain, lambda current: RestorePlan(ctx, current, opts))


def hard_reboot(ctx, domain, opts, resumed=False):
    """Destroy if running, make networks/pools/disks ready, start, wait for running; returns what it did."""
    steps = {'networks_started': [], 'pools_started': [], 'resumed_saved_memory': False, 'boot_seconds': None}
    state = domain.power_state  # read under the lock just before
    if resumed and state == 'running':
        # An interrupted restore that had already booted the guest: only the record is left to write.
        return steps
    current = domain
    if state not in states.OFF_POWER_STATES:
        _power.destroy(domain.dom)
        current = ctx.fresh(domain)
    steps['networks_started'] = _pools.ensure_networks(ctx.conn, current)
    steps['pools_started'] = _pools.ensure_pools(ctx.conn, current)
    storage.check_disks(ctx.conn, current)
    storage.check_not_written_elsewhere(ctx.conn, current)
    steps['resumed_saved_memory'] = bool(current.managed_save and not opts.hard_reboot)
    failpoint('restore.before_boot')
    began = time.monotonic()
    try:
        _power.start(domain.dom, discard_saved=opts.hard_reboot)
    except hv.HypervisorError as exc:
        if storage.image_locked(exc):
            # What holds it is not a running domain of this host that writes to it (named before the start): most
            # likely a guest of another host on shared storage. Booting fresh would meet the same lock.
            raise hv.HypervisorError(
                "%s; another process holds a disk of %s (QEMU's image lock), such as a guest on another host that "
                'shares the storage; %sstop it, then restore again'
                % (exc, domain.name, 'the saved memory is kept: ' if steps['resumed_saved_memory'] else ''))
        if steps['resumed_saved_memory']:
            # libvirt keeps a saved image it cannot load; only the operator may decide to throw the memory away.
            raise hv.HypervisorError('%s; the saved memory could not be resumed: run vm_restore with hard_reboot=true '
                                     'to discard it and boot the guest fresh' % exc)
        raise
    try:
        _power.wait_running(domain.dom, opts.start_timeout)
    except hv.HypervisorError:
        _power.destroy(domain.dom)
        raise
    steps['boot_seconds'] = round(time.monotonic() - began, 2)
    return steps
