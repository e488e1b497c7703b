# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Soft delete: clean shutdown (or managed save), then soft_deleted with a fixed reclaim_at."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import datetime
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, RESUME

DEFAULT_RECLAIM_INTERVAL = 7 * 86400
DEFAULT_SHUTDOWN_TIMEOUT = 60
DEFAULT_RETRY_INTERVAL = 10


class SoftDeleteOptions(object):
    def __init__(self, reclaim_interval=DEFAULT_RECLAIM_INTERVAL, shutdown_timeout=None,
                 shutdown_retry_interval=DEFAULT_RETRY_INTERVAL, mode='shutdown', force=False):
        self.reclaim_interval = reclaim_interval
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_retry_interval = shutdown_retry_interval
        self.mode = mode
        self.force = force


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


def soft_delete(ctx, domain, opts):
    """Soft delete one domain; returns its result dict, raises OperationError on refusal or failure."""
    started = time.monotonic()
    if ctx.check_mode:
        return _would(ctx, domain, opts)
    with ctx.lock(domain):
        domain = ctx.fresh(domain)
        before = copy.deepcopy(domain.record or _record.empty())
        lc.guard(domain, 'soft delete', ctx.project, opts.force)
        decision = lc.plan(domain, 'soft_delete')
        before_view = lc.view(domain)
        if decision == NOOP:
            return lc.result_for(domain, False, action='none', deleted_at=before.get('deleted_at'),
                                 reclaim_at=before.get('reclaim_at'), record=before_view,
                                 msg='already soft-deleted; deleted_at and reclaim_at kept')
        if decision == RESUME:
            mode = before.get('soft_delete_mode') or opts.mode
            deleted_at, reclaim_at = before.get('deleted_at'), before.get('reclaim_at')
            lc.failpoint('soft_delete.resumed')
        else:
            mode = opts.mode
            now = _record.utcnow()
            deleted_at = _record.format_time(now)
            reclaim_at = _record.format_time(now + datetime.timedelta(seconds=effective_interval(before, opts)))
            ctx.compare_and_set(domain, (None,), {
                'task_state': 'soft_deleting', 'deleted_at': deleted_at, 'reclaim_at': reclaim_at,
                'soft_delete_mode': mode,
            })
            ctx.event('instance.soft_delete.start', domain, reclaim_at=reclaim_at, mode=mode)
            lc.failpoint('soft_delete.after_start')
        timeout = effective_timeout(before, opts)
        try:
            stopped = stop_guest(ctx, domain, mode, timeout, opts.shutdown_retry_interval)
            lc.failpoint('soft_delete.after_shutdown')
            # Record what was done, not what was asked: a guest that was already off has no saved memory.
            mode = 'managed_save' if stopped.get('managed_save') or ctx.fresh(domain).managed_save else 'shutdown'
            record = copy.deepcopy(domain.record)
            record.update({'vm_state': 'soft_deleted', 'task_state': None, 'soft_delete_mode': mode})
            record = _record.add_history(record, 'soft_delete', ctx.request_id, deleted_at, 'success')
            ctx.compare_and_set(domain, ('soft_deleting',), record)
        except Exception as exc:
            not_rolled_back = _roll_back(ctx, domain, before, deleted_at, exc)
            if not_rolled_back:
                raise lc.OperationError('domain %s: soft delete failed: %s; it could not be rolled back (%s) and stays in '
                                        'task_state soft_deleting: run vm_soft_delete again to finish it'
                                        % (domain.name, exc, not_rolled_back))
            raise lc.OperationError('domain %s: soft delete failed and was rolled back: %s' % (domain.name, exc))
        lc.failpoint('soft_delete.after_record')
        ctx.event('instance.soft_delete.end', domain, result='success', reclaim_at=reclaim_at, mode=mode,
                  clean_shutdown=stopped.get('clean_shutdown'))
        after_view = lc.view(ctx.fresh(domain))
        return lc.result_for(domain, True, before=before_view, after=after_view, action='soft_deleted',
                             resumed=decision == RESUME, deleted_at=deleted_at, reclaim_at=reclaim_at, mode=mode,
                             clean_shutdown=stopped.get('clean_shutdown'), shutdown_attempts=stopped.get('attempts'),
                             shutdown_sent_at=stopped.get('sent_at') or [], shutdown_timeout=timeout,
                             shutdown_seconds=stopped.get('seconds'), seconds=round(time.monotonic() - started, 2),
                             record=after_view)


def stop_guest(ctx, domain, mode, timeout, retry_interval):
    """Managed save, or the clean shutdown with retries and the destroy fallback; with shutdown events."""
    state = hv.power_state(domain.dom)
    ctx.event('instance.shutdown.start', domain, power_state=state, mode=mode, shutdown_timeout=timeout)
    lc.failpoint('soft_delete.before_shutdown')
    if mode == 'managed_save' and state in ('running', 'blocked', 'paused', 'pmsuspended'):
        began = time.monotonic()
        hv.managed_save(domain.dom)
        stopped = {'clean_shutdown': True, 'attempts': 0, 'seconds': round(time.monotonic() - began, 2), 'was': state,
                   'managed_save': True}
    else:
        attempts = []
        stopped = hv.clean_shutdown(domain.dom, timeout, retry_interval,
                                    on_attempt=lambda n, at: _attempted(attempts, n, at))
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
        record = _record.add_history(record, 'soft_delete', ctx.request_id, deleted_at, 'error', str(exc))
        ctx.save(current, record)
    except Exception as err:
        return str(err) or err.__class__.__name__
    try:
        ctx.event('instance.soft_delete.end', domain, result='error', message=str(exc))
    except Exception:
        pass  # the record is rolled back; a full state_dir must not hide that
    return None


def _would(ctx, domain, opts):
    """Check mode: what a real run would do, with nothing changed."""
    domain = ctx.fresh(domain)
    before = domain.record or _record.empty()
    lc.guard(domain, 'soft delete', ctx.project, opts.force)
    decision = lc.plan(domain, 'soft_delete')
    before_view = lc.view(domain)
    if decision == NOOP:
        return lc.result_for(domain, False, action='none', deleted_at=before.get('deleted_at'),
                             reclaim_at=before.get('reclaim_at'), record=before_view)
    if decision == RESUME:
        deleted_at, reclaim_at = before.get('deleted_at'), before.get('reclaim_at')
    else:
        now = _record.utcnow()
        deleted_at = _record.format_time(now)
        reclaim_at = _record.format_time(now + datetime.timedelta(seconds=effective_interval(before, opts)))
    mode = before.get('soft_delete_mode') if decision == RESUME and before.get('soft_delete_mode') else opts.mode
    saves = mode == 'managed_save' and domain.power_state in ('running', 'blocked', 'paused', 'pmsuspended')
    mode = 'managed_save' if saves or domain.managed_save else 'shutdown'
    after_view = dict(before_view, vm_state='soft_deleted', task_state=None, deleted_at=deleted_at,
                      reclaim_at=reclaim_at, soft_delete_mode=mode, power_state='shutoff',
                      managed_save=before_view['managed_save'] or saves)
    return lc.result_for(domain, True, before=before_view, after=after_view, action='would_soft_delete',
                         deleted_at=deleted_at, reclaim_at=reclaim_at, mode=mode,
                         shutdown_timeout=effective_timeout(before, opts), record=after_view)
