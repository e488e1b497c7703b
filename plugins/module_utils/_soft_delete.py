# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Soft delete: clean shutdown (or managed save), then soft_deleted with a fixed reclaim_at.

``run`` is the whole of vm_soft_delete: the selection (terminated domains can
be named, for a re-run with reclaim_interval 0), the route to terminate for
reclaim_interval 0 (Nova's reclaim_instance_interval=0), and one soft delete
per domain. Each soft delete decides once (``plan``) and then either reports
that plan (check mode) or carries it out.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import datetime
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _states as states
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils import _terminate as term
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import parse_duration
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, RESUME

DEFAULT_RECLAIM_INTERVAL = 7 * 86400
DEFAULT_SHUTDOWN_TIMEOUT = 60
DEFAULT_RETRY_INTERVAL = 10
OPERATION = 'soft_delete'
# The module's own options; the connection, selection, lifecycle, storage and Cinder groups come from their files.
ARGS = dict(
    reclaim_interval=dict(type='raw', default='7d'),
    shutdown_timeout=dict(type='raw'),
    shutdown_retry_interval=dict(type='raw', default=DEFAULT_RETRY_INTERVAL),
    mode=dict(type='str', default='shutdown', choices=list(_record.SOFT_DELETE_MODES)),
)
ARGUMENT_SPEC = term.spec_with_storage(ARGS)
# Power states in which a managed save keeps the guest's memory.
SAVABLE = ('running', 'blocked', 'paused', 'pmsuspended')


class SoftDeleteOptions(object):
    def __init__(self, reclaim_interval=DEFAULT_RECLAIM_INTERVAL, shutdown_timeout=None,
                 shutdown_retry_interval=DEFAULT_RETRY_INTERVAL, mode='shutdown', force=False, terminate=None):
        self.reclaim_interval = reclaim_interval
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_retry_interval = shutdown_retry_interval
        self.mode = mode
        self.force = force
        # For reclaim_interval 0: the terminate that replaces the soft delete.
        self.terminate = terminate or term.TerminateOptions()


def options(params, no_log_values=None):
    """SoftDeleteOptions from the task's options; DeferredError naming the option when one cannot be read."""
    return SoftDeleteOptions(
        reclaim_interval=parse_duration(lc.param(params, 'reclaim_interval', DEFAULT_RECLAIM_INTERVAL), 'reclaim_interval'),
        shutdown_timeout=parse_duration(params.get('shutdown_timeout'), 'shutdown_timeout'),
        shutdown_retry_interval=parse_duration(lc.param(params, 'shutdown_retry_interval', DEFAULT_RETRY_INTERVAL),
                                               'shutdown_retry_interval',
                                               allow_zero=False),
        mode=params.get('mode') or 'shutdown', force=bool(params.get('force')),
        terminate=term.options(dict(params, shutdown_timeout=None), no_log_values))


def effective_interval(record, opts):
    """The domain's own reclaim_interval wins over the module's."""
    own = record.get('reclaim_interval')
    return own if own is not None else opts.reclaim_interval


def effective_timeout(record, opts):
    """An explicit shutdown_timeout on the task wins, then the domain's own, then the default."""
    if opts.shutdown_timeout is not None:
        return opts.shutdown_timeout
    own = record.get('shutdown_timeout')
    return own if own is not None else DEFAULT_SHUTDOWN_TIMEOUT


def run(ctx, opts):
    """vm_soft_delete: one soft delete (or, with reclaim_interval 0, a terminate) per selected domain."""
    pairs = lc.snapshot(ctx)
    index = storage.Index(ctx.conn, [d for d, dummy in pairs], fleet.FleetView(None, ctx.host))
    tombs = {}
    if ctx.params.get('name') is not None:
        # A terminated domain named again is reported, not "unknown": a re-run with reclaim_interval 0 is a no-op.
        pairs, tombs = tombstones.join(ctx.state, pairs, ctx.host, names=ctx.params.get('name'))
    chosen = lc.select_from_task(ctx, pairs)

    def work(item):
        domain, view = item
        if domain is None:
            tomb = tombs[view['uuid']]
            if opts.reclaim_interval != 0:
                raise lc.OperationError('domain %s was terminated at %s; only a domain that still exists can be '
                                        'soft-deleted' % (tomb.get('name'), tomb.get('terminated_at') or 'an earlier run'))
            return tombstones.named(ctx, tomb, opts.terminate.cinder)
        record = domain.record if not domain.metadata_error else None
        if record is not None and record.get('vm_state') == 'soft_deleted' and not record.get('task_state'):
            return soft_delete(ctx, domain, opts)  # already in the trash: rule 3, whatever the interval
        if domain.metadata_error is None and effective_interval(record or {}, opts) == 0:
            # Nova's reclaim_instance_interval=0: delete at once, after the same clean shutdown.
            per_domain = copy.copy(opts.terminate)
            per_domain.shutdown_timeout = effective_timeout(record or {}, opts)
            per_domain.shutdown_retry_interval = opts.shutdown_retry_interval
            return term.terminate(ctx, domain, per_domain, index, action='soft delete with reclaim_interval 0')
        return soft_delete(ctx, domain, opts)

    return lc.outcome(lc.run_each(ctx, chosen, work, label=lambda item: item[1]['name']), 'vm_soft_delete')


class Plan(object):
    """What a soft delete of one domain will do, decided once from its state of now."""

    def __init__(self, ctx, domain, opts):
        self.domain = domain
        self.before = copy.deepcopy(domain.record or _record.empty())
        lc.guard(domain, 'soft delete', ctx.project, opts.force)
        self.decision = lc.decision(domain, OPERATION)
        self.before_view = _views.describe(domain)
        self.timeout = effective_timeout(self.before, opts)
        if self.decision == RESUME:
            self.mode = self.before.get('soft_delete_mode') or opts.mode
            self.deleted_at, self.reclaim_at = self.before.get('deleted_at'), self.before.get('reclaim_at')
        elif self.decision == NOOP:
            self.mode = self.before.get('soft_delete_mode')
            self.deleted_at, self.reclaim_at = self.before.get('deleted_at'), self.before.get('reclaim_at')
        else:
            self.mode = opts.mode
            now = _record.utcnow()
            self.deleted_at = _record.format_time(now)
            self.reclaim_at = _record.format_time(now + datetime.timedelta(seconds=effective_interval(self.before, opts)))
        # What the record will say: a guest that is already off has no memory to save.
        saves = self.mode == 'managed_save' and domain.power_state in SAVABLE
        self.expected_mode = 'managed_save' if saves or domain.managed_save else 'shutdown'
        self.after_view = dict(self.before_view, vm_state=states.leaves(OPERATION), task_state=None,
                               deleted_at=self.deleted_at, reclaim_at=self.reclaim_at,
                               soft_delete_mode=self.expected_mode, power_state='shutoff',
                               managed_save=self.before_view['managed_save'] or saves)

    def noop_result(self):
        return lc.result_for(self.domain, False, action='none', deleted_at=self.deleted_at, reclaim_at=self.reclaim_at,
                             record=self.before_view, msg='already soft-deleted; deleted_at and reclaim_at kept')

    def check_mode_result(self):
        """The plan, reported: what a real run would do, with nothing changed."""
        if self.decision == NOOP:
            return self.noop_result()
        return lc.result_for(self.domain, True, before=self.before_view, after=self.after_view,
                             action='would_soft_delete', deleted_at=self.deleted_at, reclaim_at=self.reclaim_at,
                             mode=self.expected_mode, shutdown_timeout=self.timeout, record=self.after_view)


def soft_delete(ctx, domain, opts):
    """Soft delete one domain; returns its result dict, raises OperationError on refusal or failure."""
    started = time.monotonic()
    if ctx.check_mode:
        return Plan(ctx, ctx.fresh(domain), opts).check_mode_result()
    with ctx.lock(domain):
        domain = ctx.fresh(domain)
        plan = Plan(ctx, domain, opts)
        if plan.decision == NOOP:
            return plan.noop_result()
        if plan.decision == RESUME:
            lc.failpoint('soft_delete.resumed')
        else:
            ctx.compare_and_set(domain, (None,), {
                'task_state': states.holds(OPERATION), 'deleted_at': plan.deleted_at, 'reclaim_at': plan.reclaim_at,
                'soft_delete_mode': plan.mode,
            }, current=domain)  # read just above, under this lock
            ctx.event('instance.soft_delete.start', domain, reclaim_at=plan.reclaim_at, mode=plan.mode)
            lc.failpoint('soft_delete.after_start')
        try:
            stopped = stop_guest(ctx, domain, plan.mode, plan.timeout, opts.shutdown_retry_interval)
            lc.failpoint('soft_delete.after_shutdown')
            # One read after the shutdown, for the compare-and-set and for what was done, not what was asked (a
            # guest that was already off has no saved memory).
            after = ctx.fresh(domain)
            mode = 'managed_save' if stopped.get('managed_save') or after.managed_save else 'shutdown'
            record = copy.deepcopy(domain.record)
            record.update({'vm_state': states.leaves(OPERATION), 'task_state': None, 'soft_delete_mode': mode})
            record = _record.add_history(record, OPERATION, ctx.request_id, plan.deleted_at, 'success')
            ctx.compare_and_set(domain, (states.holds(OPERATION),), record, current=after)
        except Exception as exc:
            not_rolled_back = _roll_back(ctx, domain, plan.before, plan.deleted_at, exc)
            if not_rolled_back:
                raise lc.OperationError('domain %s: soft delete failed: %s; it could not be rolled back (%s) and stays in '
                                        'task_state soft_deleting: run vm_soft_delete again to finish it'
                                        % (domain.name, exc, not_rolled_back))
            raise lc.OperationError('domain %s: soft delete failed and was rolled back: %s' % (domain.name, exc))
        lc.failpoint('soft_delete.after_record')
        ctx.event('instance.soft_delete.end', domain, result='success', reclaim_at=plan.reclaim_at, mode=mode,
                  clean_shutdown=stopped.get('clean_shutdown'))
        after_view = _views.describe(after)  # the read after the shutdown, with the record just written
        return lc.result_for(domain, True, before=plan.before_view, after=after_view, action='soft_deleted',
                             resumed=plan.decision == RESUME, deleted_at=plan.deleted_at, reclaim_at=plan.reclaim_at,
                             mode=mode, clean_shutdown=stopped.get('clean_shutdown'),
                             shutdown_attempts=stopped.get('attempts'), shutdown_sent_at=stopped.get('sent_at') or [],
                             shutdown_timeout=plan.timeout, shutdown_seconds=stopped.get('seconds'),
                             seconds=round(time.monotonic() - started, 2), record=after_view)


def stop_guest(ctx, domain, mode, timeout, retry_interval):
    """Managed save, or the clean shutdown with retries and the destroy fallback; with shutdown events."""
    state = domain.power_state  # read under the lock just before
    ctx.event('instance.shutdown.start', domain, power_state=state, mode=mode, shutdown_timeout=timeout)
    lc.failpoint('soft_delete.before_shutdown')
    if mode == 'managed_save' and state in SAVABLE:
        began = time.monotonic()
        hv.managed_save(domain.dom)
        stopped = {'clean_shutdown': True, 'attempts': 0, 'seconds': round(time.monotonic() - began, 2), 'was': state,
                   'managed_save': True}
    else:
        attempts = []
        stopped = hv.clean_shutdown(domain.dom, timeout, retry_interval,
                                    on_attempt=lambda n, at: _attempted(attempts, n, at), state=state)
        stopped['sent_at'] = attempts
    ctx.event('instance.shutdown.end', domain, result='success', clean_shutdown=stopped['clean_shutdown'],
              attempts=stopped['attempts'], seconds=stopped['seconds'], sent_at=stopped.get('sent_at'))
    return stopped


def _attempted(attempts, number, at):
    attempts.append(at)
    if number == 2:
        lc.failpoint('soft_delete.shutdown_retry')  # killed while waiting, after the first ACPI shutdown


def _roll_back(ctx, domain, before, deleted_at, exc):
    """Put the record back as it was (not soft-deleted), with the failure in its history.

    Returns None when rolled back, else why not (the record still says soft_deleting: a re-run finishes the job).
    """
    try:
        current = ctx.fresh_or_reconnect(domain)  # libvirtd may have been restarted under us
        record = copy.deepcopy(before)
        record.update(task_state=None, deleted_at=None, reclaim_at=None, soft_delete_mode=None)
        record = _record.add_history(record, OPERATION, ctx.request_id, deleted_at, 'error', str(exc))
        ctx.save(current, record)
    except Exception as err:
        return str(err) or err.__class__.__name__
    try:
        ctx.event('instance.soft_delete.end', domain, result='error', message=str(exc))
    except Exception:
        pass  # the record is rolled back; a full state_dir must not hide that
    return None
