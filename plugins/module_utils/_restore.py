# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore: the libvirt driver's hard reboot, bounded by start_timeout, rolled back on any failure (spec rule 2)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, RESUME, START

DEFAULT_START_TIMEOUT = 300


class RestoreOptions(object):
    def __init__(self, start_timeout=DEFAULT_START_TIMEOUT, hard_reboot=False, force=False):
        self.start_timeout = start_timeout
        self.hard_reboot = hard_reboot
        self.force = force


def preview(ctx, domain, opts):
    """What restore would do to ``domain``: ('noop'|'start'|'resume', view); raises OperationError on refusal."""
    lc.guard(domain, 'restore', ctx.project, opts.force, check_protected=False)
    return lc.plan(domain, 'restore'), lc.view(domain)


def restore(ctx, domain, opts):
    """Restore one soft-deleted domain to running; returns its result dict or raises OperationError."""
    started = time.monotonic()
    if ctx.check_mode:
        decision, before_view = preview(ctx, ctx.fresh(domain), opts)
        if decision == NOOP:
            return lc.result_for(domain, False, action='none', record=before_view)
        after_view = dict(before_view, vm_state='active', task_state=None, deleted_at=None, reclaim_at=None,
                          soft_delete_mode=None, power_state='running')
        return lc.result_for(domain, True, before=before_view, after=after_view, action='would_restore',
                             resumed_saved_memory=bool(domain.managed_save and not opts.hard_reboot), record=after_view)
    with ctx.lock(domain):
        domain = ctx.fresh(domain)
        decision, before_view = preview(ctx, domain, opts)
        before = copy.deepcopy(domain.record)
        if decision == NOOP:
            return lc.result_for(domain, False, action='none', record=before_view, msg='already active')
        if decision == START:
            ctx.compare_and_set(domain, (None,), {'task_state': 'restoring'})
            ctx.event('instance.restore.start', domain, deleted_at=before.get('deleted_at'),
                      reclaim_at=before.get('reclaim_at'))
            lc.failpoint('restore.after_start')
        try:
            steps = hard_reboot(ctx, domain, opts, resumed=decision == RESUME)
            lc.failpoint('restore.after_boot')
            record = copy.deepcopy(domain.record)
            record.update({'vm_state': 'active', 'task_state': None, 'deleted_at': None, 'reclaim_at': None,
                           'soft_delete_mode': None})
            record = _record.add_history(record, 'restore', ctx.request_id, _record.format_time(_record.utcnow()),
                                         'success')
            ctx.compare_and_set(domain, ('restoring',), record)
        except Exception as exc:
            not_rolled_back = _roll_back(ctx, domain, before, exc)
            if not_rolled_back:
                raise lc.OperationError('domain %s: restore failed: %s; it could not be rolled back (%s) and stays '
                                        'soft-deleted with task_state restoring, which the reclaim sweep leaves alone: '
                                        'run vm_restore again to finish it' % (domain.name, exc, not_rolled_back))
            raise lc.OperationError('domain %s: restore failed; it stays soft-deleted with deleted_at %s and '
                                    'reclaim_at %s: %s' % (domain.name, before.get('deleted_at'),
                                                           before.get('reclaim_at'), exc))
        lc.failpoint('restore.after_record')
        ctx.event('instance.restore.end', domain, result='success', **steps)
        after_view = lc.view(ctx.fresh(domain))
        return lc.result_for(domain, True, before=before_view, after=after_view, action='restored',
                             resumed=decision == RESUME, seconds=round(time.monotonic() - started, 2),
                             record=after_view, **steps)


def hard_reboot(ctx, domain, opts, resumed=False):
    """Destroy if running, make networks/pools/disks ready, start, wait for running; returns what it did."""
    steps = {'networks_started': [], 'pools_started': [], 'resumed_saved_memory': False, 'boot_seconds': None}
    state = hv.power_state(domain.dom)
    if resumed and state == 'running':
        # An interrupted restore that had already booted the guest: only the record is left to write.
        return steps
    if state not in ('shutoff', 'gone'):
        hv.destroy(domain.dom)
    current = ctx.fresh(domain)
    steps['networks_started'] = hv.ensure_networks(ctx.conn, current)
    steps['pools_started'] = hv.ensure_pools(ctx.conn, current)
    hv.check_disks(ctx.conn, current)
    steps['resumed_saved_memory'] = bool(current.managed_save and not opts.hard_reboot)
    lc.failpoint('restore.before_boot')
    began = time.monotonic()
    try:
        hv.start(domain.dom, discard_saved=opts.hard_reboot)
    except hv.HypervisorError as exc:
        if steps['resumed_saved_memory']:
            # libvirt keeps a saved image it cannot load; only the operator may decide to throw the memory away.
            raise hv.HypervisorError('%s; the saved memory could not be resumed: run vm_restore with hard_reboot=true '
                                     'to discard it and boot the guest fresh' % exc)
        raise
    try:
        hv.wait_running(domain.dom, opts.start_timeout)
    except hv.HypervisorError:
        hv.destroy(domain.dom)
        raise
    steps['boot_seconds'] = round(time.monotonic() - began, 2)
    return steps


def _roll_back(ctx, domain, before, exc):
    """Spec rule 2: back to soft_deleted, shut off, original deleted_at and reclaim_at, error in history.

    Returns None when rolled back, else why not: then it stays 'restoring' (a re-run finishes or rolls back,
    rule 7, and reclaim leaves it alone). Never soft_deleted and idle while the guest may still run.
    """
    try:
        current = ctx.fresh_or_reconnect(domain)  # libvirtd may have been restarted under us
        hv.destroy(current.dom)
        current = ctx.fresh(current)
        record = copy.deepcopy(before)
        record.update({'vm_state': 'soft_deleted', 'task_state': None})
        if record.get('soft_delete_mode') == 'managed_save' and not current.managed_save:
            record['soft_delete_mode'] = 'shutdown'  # the saved memory was used up: the next restore boots fresh
        record = _record.add_history(record, 'restore', ctx.request_id, _record.format_time(_record.utcnow()),
                                     'error', str(exc))
        ctx.save(current, record)
    except Exception as err:
        return str(err) or err.__class__.__name__
    try:
        ctx.event('instance.restore.end', domain, result='error', message=str(exc))
    except Exception:
        pass  # the record is rolled back; a full state_dir must not hide that
    return None
