# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Terminate (force delete): destroy, delete owned disks, tombstone, undefine, then settle Cinder volumes.

``run`` is the whole of vm_terminate. One terminate decides once (``Plan``:
guards, state, which disks it owns and which it keeps) and then either
reports that plan (check mode) or carries it out. The tombstone is written
before anything is destroyed (``_tombstone``), and only storage the domain
owns is deleted (``_storage``, spec rule 6). vm_reclaim and vm_soft_delete
with reclaim_interval 0 terminate through the same ``terminate``.
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
from ansible_collections.deferred.libvirt.plugins.module_utils import _states as states
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import parse_duration

DEFAULT_RETRY_INTERVAL = 10
ARGS = dict(
    shutdown_timeout=dict(type='raw'),
    shutdown_retry_interval=dict(type='raw', default=DEFAULT_RETRY_INTERVAL),
)


def spec_with_storage(own):
    """The argument spec of a module that may terminate: selection, lifecycle, storage, Cinder and fleet options, and
    its own."""
    return lc.spec(lc.SELECTION_ARGS, lc.LIFECYCLE_ARGS, storage.ARGS, cinder.ARGS, fleet.ARGS, own)


ARGUMENT_SPEC = spec_with_storage(ARGS)


class TerminateOptions(object):
    def __init__(self, instance_dirs=None, shutdown_timeout=None, shutdown_retry_interval=DEFAULT_RETRY_INTERVAL,
                 force=False, cinder_opts=None, fleet_view=None):
        self.fleet = fleet_view  # the fleet option as given (fleet_index_for's output), or None
        self.instance_dirs = storage.instance_dirs(instance_dirs)
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_retry_interval = shutdown_retry_interval
        self.force = force
        self.cinder = cinder_opts or cinder.Options()


def options(params, no_log_values=None):
    """TerminateOptions from the task's options; DeferredError naming the option when one cannot be read."""
    return TerminateOptions(
        instance_dirs=params.get('instance_dirs'),
        shutdown_timeout=parse_duration(params.get('shutdown_timeout'), 'shutdown_timeout'),
        shutdown_retry_interval=parse_duration(lc.param(params, 'shutdown_retry_interval', DEFAULT_RETRY_INTERVAL),
                                               'shutdown_retry_interval', allow_zero=False),
        force=bool(params.get('force')), fleet_view=params.get('fleet'),
        cinder_opts=cinder.Options(params, parse_duration(lc.param(params, 'volume_wait_timeout', cinder.DEFAULT_WAIT),
                                                          'volume_wait_timeout', allow_zero=False), no_log_values))


def fleet_view(ctx, opts):
    """The run's FleetView (rules 9 and 10); also tells Cinder settling which hypervisors' attachments are not ours."""
    view = fleet.FleetView(opts.fleet, ctx.host)
    ctx.fleet_foreign_hosts = view.foreign_hosts()
    return view


def run(ctx, opts):
    """vm_terminate: terminate every selected domain; a named terminated domain is a no-op or finishes its pending work."""
    pairs = lc.snapshot(ctx)
    index = storage.Index(ctx.conn, [d for d, dummy in pairs], fleet_view(ctx, opts))
    # Names of terminated domains select their tombstone, so a re-run is a no-op (or finishes pending work).
    pairs, tombs = tombstones.join(ctx.state, pairs, ctx.host, names=ctx.params.get('name'))
    chosen = lc.select_from_task(ctx, pairs)

    def work(item):
        domain, view = item
        if domain is None:
            return tombstones.named(ctx, tombs[view['uuid']], opts.cinder)
        return terminate(ctx, domain, opts, index)

    return lc.outcome(lc.run_each(ctx, chosen, work, label=lambda item: item[1]['name']), 'vm_terminate')


def stale_copy(ctx, domain, opts, stale, action):
    """Rule 9: a stale copy is refused without force; with force only this definition is undefined (no disk, volume or
    attachment is touched: they belong to the authoritative copy)."""
    where = stale.get('authoritative') or 'another host'
    if not opts.force:
        raise lc.OperationError('domain %s is a %s; %s refuses it (force=true only undefines this definition: no disk, '
                                'volume or attachment is touched)' % (domain.name, stale['reason'], action))
    lc.guard(domain, action, ctx.project, force=True)
    return undefine_stale(ctx, domain, stale, action, where)


def undefine_stale(ctx, domain, stale, action, where):
    """Undefine a stale copy's definition only (after destroying it should it run, which a stale copy should not)."""
    before_view = _views.describe(domain)
    if ctx.check_mode:
        return lc.result_for(domain, True, before=before_view, after={}, action='would_undefine_stale_copy',
                             stale=stale['reason'], authoritative=where, disks_deleted=[], disks_kept=[])
    ctx.event('instance.delete.start', domain, action='%s (stale copy)' % action, stale=stale['reason'])
    hv.destroy(domain.dom)
    flags = hv.undefine(ctx.fresh(domain))
    ctx.event('instance.delete.end', domain, result='success', action='undefined_stale_copy', authoritative=where)
    return lc.result_for(domain, True, before=before_view, after={}, action='undefined_stale_copy', stale=stale['reason'],
                         authoritative=where, undefine_flags=flags, disks_deleted=[], disks_kept=[],
                         volumes_detached=[], volumes_deleted=[], volumes_pending=[])


class Plan(object):
    """What a terminate of one domain will do, decided once: guards, state, the disks it deletes and keeps."""

    def __init__(self, ctx, domain, opts, index, action, operation, precondition=None):
        if precondition:
            precondition(domain)
        self.domain = domain
        self.record = lc.guard(domain, action, ctx.project, opts.force)
        # A live domain is terminated whatever its record says (even a stray vm_state deleted): no NOOP here.
        lc.decision(domain, operation)
        self.before_view = _views.describe(domain)
        self.owned, self.kept = storage.classify_disks(ctx.conn, domain, opts.instance_dirs, index)
        self.flags = hv.undefine_flags(domain)[1]

    def check_mode_result(self, opts):
        """The plan, reported, with what Cinder would be asked to do (read only)."""
        vols, warnings = tombstones.would_settle(self.domain.uuid, self.record.get('volumes') or [], opts.cinder)
        return lc.result_for(self.domain, True, before=self.before_view, after={}, action='would_terminate',
                             would_destroy=self.domain.power_state not in ('shutoff',),
                             disks_deleted=[o['real_path'] for o in self.owned], disks_kept=self.kept,
                             volumes_detached=[v['id'] for v in vols],
                             volumes_deleted=[v['id'] for v in vols if v.get('delete_on_termination')],
                             volumes_kept=[v['id'] for v in vols if not v.get('delete_on_termination')],
                             undefine_flags=self.flags, warnings=warnings)


def power_off(ctx, domain, opts):
    """Destroy (or, with a shutdown_timeout, shut down cleanly first), between shutdown events as Nova's delete writes them."""
    state = domain.power_state  # read under the lock just before
    if state in ('shutoff', 'gone'):  # nothing to power off, so no shutdown events
        return {'clean_shutdown': bool(opts.shutdown_timeout), 'attempts': 0, 'seconds': 0.0, 'was': state}
    ctx.event('instance.shutdown.start', domain, power_state=state, shutdown_timeout=opts.shutdown_timeout or 0)
    if opts.shutdown_timeout:
        stopped = hv.clean_shutdown(domain.dom, opts.shutdown_timeout, opts.shutdown_retry_interval, state=state)
    else:
        began = time.monotonic()
        hv.destroy(domain.dom)
        stopped = {'clean_shutdown': False, 'attempts': 0, 'seconds': round(time.monotonic() - began, 2), 'was': state}
    ctx.event('instance.shutdown.end', domain, result='success', clean_shutdown=stopped['clean_shutdown'],
              attempts=stopped.get('attempts'), seconds=stopped.get('seconds'))
    return stopped


def terminate(ctx, domain, opts, index, action='terminate', precondition=None, operation='terminate'):
    """Terminate one domain; returns its result dict. ``precondition(domain)`` may raise Skip under the lock."""
    started = time.monotonic()
    if ctx.check_mode:
        current = hv.refresh(ctx.conn, domain.dom)
        if current is None:
            return lc.result_for(domain, False, action='none', msg='already gone')
        stale = index.fleet.stale(_views.describe(current))
        if stale is not None:
            return stale_copy(ctx, current, opts, stale, action)
        return Plan(ctx, current, opts, index, action, operation, precondition).check_mode_result(opts)
    with ctx.lock(domain):
        current = hv.refresh(ctx.conn, domain.dom)
        if current is None:
            return lc.result_for(domain, False, action='none', msg='already gone')
        domain = current
        stale = index.fleet.stale(_views.describe(domain))
        if stale is not None:
            return stale_copy(ctx, domain, opts, stale, action)
        plan = Plan(ctx, domain, opts, index, action, operation, precondition)
        previous_task = plan.record.get('task_state')
        ctx.compare_and_set(domain, (previous_task,), {'task_state': states.holds(operation)}, current=domain)
        ctx.event('instance.delete.start', domain, action=action, previous_task_state=previous_task)
        lc.failpoint('terminate.after_start')
        irreversible = False
        deleted = []
        try:
            tomb = tombstones.for_terminate(ctx, domain, plan.record)
            tomb['status'] = 'deleting'
            ctx.state.write_tombstone(tomb)
            lc.failpoint('terminate.after_tombstone')
            stopped = power_off(ctx, domain, opts)
            irreversible = irreversible or stopped.get('was') not in ('shutoff', 'gone')
            lc.failpoint('terminate.after_destroy')
            domain = ctx.fresh(domain)
            for item in plan.owned:
                irreversible = True  # even a delete that fails half-way may have removed something
                storage.delete_disk(ctx.conn, item, opts.instance_dirs)
                deleted.append(item['real_path'])
            tomb.update(disks_deleted=sorted(set(tomb.get('disks_deleted', []) + deleted)), disks_kept=plan.kept)
            ctx.state.write_tombstone(tomb)
            lc.failpoint('terminate.after_disks')
            flags = hv.undefine(domain)
            tomb.update(status='undefined', terminated_at=_record.format_time(_record.utcnow()), undefine_flags=flags)
            tomb = _record.add_history(tomb, action, ctx.request_id, tomb.get('started_at'), 'success')
            ctx.state.write_tombstone(tomb)
            lc.failpoint('terminate.after_undefine')
        except Exception as exc:
            # The record keeps task_state=deleting (and the tombstone what was done): running the module again
            # finishes the job (spec rule 7).
            try:
                ctx.event('instance.delete.end', domain, result='error', action=action, message=str(exc))
            except Exception:
                pass  # a full or read-only state_dir must not hide the error itself
            # changed: true once the guest was powered off or a disk deleted: the operator must not read "nothing
            # happened" from a failed result.
            raise lc.OperationError('domain %s: terminate failed: %s; it is left in task_state deleting, run '
                                    'vm_terminate again to finish it' % (domain.name, exc), changed=irreversible,
                                    disks_deleted=deleted)
    # The domain is gone; Cinder may take a while and must not hold the domain's lock.
    began = time.monotonic()
    cinder_result = tombstones.settle(ctx, tomb, opts.cinder)
    cinder_result['cinder_seconds'] = round(time.monotonic() - began, 3)
    warnings = []
    if tomb['volumes_pending']:
        warnings.append('domain %s is terminated but Cinder work is pending for volume(s) %s; the next vm_reclaim '
                        'finishes it' % (domain.name, ', '.join(v['id'] for v in tomb['volumes_pending'])))
    ctx.event('instance.delete.end', domain, result='pending' if tomb['volumes_pending'] else 'success',
              action=action, disks_deleted=deleted, disks_kept=[k['path'] for k in plan.kept],
              volumes_pending=[v['id'] for v in tomb['volumes_pending']])
    return lc.result_for(domain, True, before=plan.before_view, after={}, action='terminated',
                         clean_shutdown=stopped.get('clean_shutdown'), disks_deleted=deleted, disks_kept=plan.kept,
                         undefine_flags=flags, seconds=round(time.monotonic() - started, 2),
                         warnings=warnings, **cinder_result)
