# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Soft delete: clean shutdown (or managed save), then soft_deleted with a fixed reclaim_at.

``run`` is the whole of vm_soft_delete: the selection (terminated domains can
be named, for a re-run with reclaim_interval 0), the route to the shared
terminate work for reclaim_interval 0 (Nova's reclaim_instance_interval=0),
and one soft delete per domain, carried out by engine.carry_out from a
``SoftDeletePlan``. An effective reclaim_interval of 0 destroys the domain
for good: without ``allow_terminate`` the whole batch is refused before
anything is shut down (``refuse_unconfirmed_terminates``), and with it each
result warns that the domain was terminated, not soft-deleted.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import datetime
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _errors as errors
from ansible_collections.deferred.libvirt.plugins.module_utils import _power
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options_
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _states as states
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._journal import actor
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _termination as termination
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, RESUME, SAVABLE_POWER_STATES

OPERATION = 'soft_delete'
ARGUMENT_SPEC = options_.spec(options_.Selection, options_.Shutdown, options_.SoftDelete, *termination.GROUPS)
# Kept for callers of the old constants: the options file owns them.
DEFAULT_RECLAIM_INTERVAL = options_.DEFAULT_RECLAIM_INTERVAL
DEFAULT_SHUTDOWN_TIMEOUT = options_.DEFAULT_SHUTDOWN_TIMEOUT


class SoftDeleteOptions(object):
    def __init__(self, selection, own, shutdown, force, termination_opts):
        self.selection = selection
        self.reclaim_interval = own.reclaim_interval
        self.mode = own.mode
        self.allow_terminate = own.allow_terminate
        self.shutdown_timeout = shutdown.timeout
        self.shutdown_retry_interval = shutdown.retry_interval
        self.force = force
        # For reclaim_interval 0: the terminate that replaces the soft delete.
        self.terminate = termination_opts


def options(params, no_log_values=None):
    """SoftDeleteOptions from the task's options; DeferredError naming the option when one cannot be read."""
    return SoftDeleteOptions(options_.Selection.read(params), options_.SoftDelete.read(params),
                             options_.Shutdown.read(params), options_.Lifecycle.read(params).force,
                             termination.read(params, no_log_values))


def effective_interval(record, opts):
    """The domain's own reclaim_interval wins over the module's."""
    own = record.get('reclaim_interval')
    return own if own is not None else opts.reclaim_interval


def effective_timeout(record, opts):
    """An explicit shutdown_timeout on the task wins, then the domain's own, then the default."""
    if opts.shutdown_timeout is not None:
        return opts.shutdown_timeout
    own = record.get('shutdown_timeout')
    return own if own is not None else options_.DEFAULT_SHUTDOWN_TIMEOUT


def terminates(domain, opts):
    """Whether soft-deleting the live ``domain`` terminates it: an effective reclaim_interval of 0 (the domain's
    own, else the task's), unless it is already in the trash (rule 3: it stays there, whatever the interval)."""
    if domain is None or domain.metadata_error is not None:
        return False
    record = domain.record or {}
    if record.get('vm_state') == 'soft_deleted' and not record.get('task_state'):
        return False
    return effective_interval(record, opts) == 0


def refuse_unconfirmed_terminates(chosen, opts):
    """DeferredError (nothing changed) naming every domain of the batch an interval of 0 would terminate, unless
    allow_terminate confirms it: a soft delete that destroys a domain for good is never a silent default."""
    if opts.allow_terminate:
        return
    doomed = [item.domain for item in chosen if terminates(item.domain, opts)]
    if not doomed:
        return
    named = []
    for domain in doomed:
        own = (domain.record or {}).get('reclaim_interval')
        named.append('%s (its own reclaim_interval, set with vm_attributes, is 0)' % domain.name if own == 0
                     else domain.name)
    raise errors.DeferredError(
        'reclaim_interval 0 terminates at once: domain(s) %s would be destroyed with their disks and volumes, not '
        'soft-deleted, and could not be restored; pass allow_terminate: true to terminate them now, or a '
        'reclaim_interval above 0 to keep them recoverable; nothing was changed (no domain was shut down)'
        % ', '.join(named), refused=[d.name for d in doomed])


def _say_terminated(result):
    """The loud part of a soft delete that terminated: a warning and a message (the action says it too)."""
    if result.get('action') == 'terminated':
        said = ('domain %s was TERMINATED, not soft-deleted: reclaim_interval 0 with allow_terminate destroyed it at '
                'once and deleted its disks; it cannot be restored' % result.get('name'))
    elif result.get('action') == 'would_terminate':
        said = ('domain %s would be TERMINATED, not soft-deleted: reclaim_interval 0 with allow_terminate destroys it '
                'at once and deletes its disks; it could not be restored' % result.get('name'))
    else:
        return result
    result['warnings'] = [said] + list(result.get('warnings') or [])
    result['msg'] = '; '.join(m for m in (said, result.get('msg')) if m)
    return result


def run(ctx, opts):
    """vm_soft_delete: one soft delete (or, with reclaim_interval 0 and allow_terminate, a terminate) per selected
    domain."""
    items = engine.snapshot(ctx)
    fleet_view = termination.fleet_view(ctx, opts.terminate)
    index = storage.Index(ctx.conn, [i.domain for i in items], fleet_view)
    if opts.selection.names is not None:
        # A terminated domain named again is reported, not "unknown": a re-run with reclaim_interval 0 is a no-op.
        items = termination.with_terminated(ctx, items, names=opts.selection.names)
    chosen = engine.select(items, opts.selection)
    refuse_unconfirmed_terminates(chosen, opts)

    def work(item):
        domain = item.domain
        if domain is None:
            tomb = item.tombstone
            if opts.reclaim_interval != 0:
                raise engine.OperationError('domain %s was terminated at %s; only a domain that still exists can be '
                                            'soft-deleted' % (tomb.get('name'), tomb.get('terminated_at') or 'an earlier run'))
            return termination.answer_for_terminated(ctx, tomb, opts.terminate, fleet_view)
        record = domain.record if not domain.metadata_error else None
        if record is not None and record.get('vm_state') == 'soft_deleted' and not record.get('task_state'):
            return soft_delete(ctx, domain, opts, fleet_view)  # already in the trash: rule 3, whatever the interval
        if domain.metadata_error is None and effective_interval(record or {}, opts) == 0:
            # Nova's reclaim_instance_interval=0: delete at once, after the same clean shutdown.
            if not opts.allow_terminate:
                # Checked for the batch before anything; a record changed since says so here.
                raise engine.OperationError('domain %s: reclaim_interval 0 terminates at once and allow_terminate is '
                                            'not given; it was not shut down' % domain.name)
            per_domain = opts.terminate.with_shutdown(effective_timeout(record or {}, opts), opts.shutdown_retry_interval)
            return _say_terminated(termination.terminate(ctx, domain, per_domain, index,
                                                         action='soft delete with reclaim_interval 0'))
        return soft_delete(ctx, domain, opts, fleet_view)

    return engine.outcome(engine.run_each(ctx, chosen, work), 'vm_soft_delete')


class SoftDeletePlan(engine.Plan):
    """What a soft delete of one domain will do, decided once from its state of now."""

    held = states.holds(OPERATION)
    event = 'soft_delete'
    faults = 'soft_delete'
    resume_fault = 'soft_delete.resumed'

    def __init__(self, ctx, domain, opts, fleet_view=None):
        self.domain = domain
        self.opts = opts
        self.before = copy.deepcopy(domain.record or _record.empty())
        engine.guard(domain, 'soft delete', ctx.project, opts.force)
        self.decision = engine.decision(domain, OPERATION)
        self.before_view = _views.describe(domain)
        if self.decision != NOOP:
            refuse_stale_copy(domain, self.before_view, opts, fleet_view or fleet.FleetView(None, ctx.host))
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
        saves = self.mode == 'managed_save' and domain.power_state in SAVABLE_POWER_STATES
        self.expected_mode = 'managed_save' if saves or domain.managed_save else 'shutdown'
        self.after_view = dict(self.before_view, vm_state=states.leaves(OPERATION), task_state=None,
                               deleted_at=self.deleted_at, reclaim_at=self.reclaim_at,
                               soft_delete_mode=self.expected_mode, power_state='shutoff',
                               managed_save=self.before_view['managed_save'] or saves)

    def report(self):
        """The plan, reported: what a real run would do, with nothing changed."""
        if self.decision == NOOP:
            return engine.result_for(self.domain, False, action='none', deleted_at=self.deleted_at,
                                     reclaim_at=self.reclaim_at, record=self.before_view,
                                     msg='already soft-deleted; deleted_at and reclaim_at kept')
        return engine.result_for(self.domain, True, before=self.before_view, after=self.after_view,
                                 action='would_soft_delete', deleted_at=self.deleted_at, reclaim_at=self.reclaim_at,
                                 mode=self.expected_mode, shutdown_timeout=self.timeout, record=self.after_view)

    def start_updates(self):
        return {'task_state': self.held, 'deleted_at': self.deleted_at, 'reclaim_at': self.reclaim_at,
                'soft_delete_mode': self.mode}

    def start_payload(self):
        return dict(reclaim_at=self.reclaim_at, mode=self.mode)

    def apply(self, ctx):
        domain = self.domain
        self.stopped = stop_guest(ctx, domain, self.mode, self.timeout, self.opts.shutdown_retry_interval)
        failpoint('soft_delete.after_shutdown')
        # One read after the shutdown, for the compare-and-set (a writer without this host's lock, an ad hoc
        # move_from, may have changed the record meanwhile) and for what was done, not what was asked (a guest
        # that was already off has no saved memory). Only the record is read: the power state and the saved
        # memory are what the stop itself established.
        self.after = ctx.fresh_stopped(domain, bool(domain.managed_save or self.stopped.get('managed_save')))
        self.mode = 'managed_save' if self.stopped.get('managed_save') or self.after.managed_save else 'shutdown'
        record = copy.deepcopy(domain.record)
        record.update({'vm_state': states.leaves(OPERATION), 'task_state': None, 'soft_delete_mode': self.mode})
        return _record.add_history(record, OPERATION, ctx.request_id, self.deleted_at, 'success', actor=actor())

    def roll_back(self, ctx, exc):
        """Put the record back as it was (not soft-deleted), with the failure in its history."""
        def record_for(current):
            record = copy.deepcopy(self.before)
            record.update(task_state=None, deleted_at=None, reclaim_at=None, soft_delete_mode=None)
            return current, _record.add_history(record, OPERATION, ctx.request_id, self.deleted_at, 'error', str(exc))

        not_rolled_back = engine.put_back(ctx, self.domain, record_for, 'soft_delete', exc)
        if not_rolled_back:
            return engine.OperationError('domain %s: soft delete failed: %s; it could not be rolled back (%s) and stays '
                                         'in task_state soft_deleting: run vm_soft_delete again to finish it'
                                         % (self.domain.name, exc, not_rolled_back))
        return engine.OperationError('domain %s: soft delete failed and was rolled back: %s' % (self.domain.name, exc))

    def finish(self, ctx):
        failpoint('soft_delete.after_record')
        stopped, domain = self.stopped, self.domain
        ctx.event('instance.soft_delete.end', domain, result='success', reclaim_at=self.reclaim_at, mode=self.mode,
                  clean_shutdown=stopped.get('clean_shutdown'))
        after_view = _views.describe(self.after)  # the read after the shutdown, with the record just written
        return engine.result_for(domain, True, before=self.before_view, after=after_view, action='soft_deleted',
                                 resumed=self.decision == RESUME, deleted_at=self.deleted_at, reclaim_at=self.reclaim_at,
                                 mode=self.mode, clean_shutdown=stopped.get('clean_shutdown'),
                                 shutdown_attempts=stopped.get('attempts'), shutdown_sent_at=stopped.get('sent_at') or [],
                                 shutdown_timeout=self.timeout, shutdown_seconds=stopped.get('seconds'),
                                 shutdown_seen_by=stopped.get('seen_by'),
                                 seconds=round(time.monotonic() - self.started, 2), record=after_view)


def soft_delete(ctx, domain, opts, fleet_view=None):
    """Soft delete one domain; returns its result dict, raises OperationError on refusal or failure."""
    return engine.carry_out(ctx, domain, lambda current: SoftDeletePlan(ctx, current, opts, fleet_view))


def refuse_stale_copy(domain, view, opts, fleet_view):
    """Rule 9 for a soft delete: a stale copy (its record names another host, or the fleet slice says another copy is
    authoritative) is refused without force. Every record write names the host that writes it, so soft-deleting it
    would make this copy's record name this host: taken for the authoritative copy from then on, its terminate or
    sweep would delete the disks and volumes the other copy uses."""
    stale = fleet_view.stale(view)
    if stale is not None and not opts.force:
        raise engine.stale_copy_refused(
            domain, stale, 'soft delete', ': its record would then name this host, and this copy would be taken for the '
            'authoritative one. Soft-delete the authoritative copy on {where} instead (playbooks/soft_delete.yml finds '
            'it), or force=true to soft-delete this one anyway')


def stop_guest(ctx, domain, mode, timeout, retry_interval):
    """Managed save, or the clean shutdown with retries and the destroy fallback; with shutdown events."""
    state = domain.power_state  # read under the lock just before
    ctx.event('instance.shutdown.start', domain, power_state=state, mode=mode, shutdown_timeout=timeout)
    failpoint('soft_delete.before_shutdown')
    if mode == 'managed_save' and state in SAVABLE_POWER_STATES:
        began = time.monotonic()
        _power.managed_save(domain.dom)
        stopped = {'clean_shutdown': True, 'attempts': 0, 'seconds': round(time.monotonic() - began, 2), 'was': state,
                   'managed_save': True}
    else:
        attempts = []
        stopped = _power.clean_shutdown(domain.dom, timeout, retry_interval,
                                        on_attempt=lambda n, at: _attempted(attempts, n, at), state=state)
        stopped['sent_at'] = attempts
    ctx.event('instance.shutdown.end', domain, result='success', clean_shutdown=stopped['clean_shutdown'],
              attempts=stopped['attempts'], seconds=stopped['seconds'], sent_at=stopped.get('sent_at'))
    return stopped


def _attempted(attempts, number, at):
    attempts.append(at)
    if number == 2:
        failpoint('soft_delete.shutdown_retry')  # killed while waiting, after the first ACPI shutdown
