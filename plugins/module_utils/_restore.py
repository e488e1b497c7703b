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
                             resume_saved=bool(domain.managed_save and not opts.hard_reboot), record=after_view)
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
            _roll_back(ctx, domain, before, exc)
            raise lc.OperationError('domain %s: restore failed; it stays soft-deleted with deleted_at %s and '
                                    'reclaim_at %s: %s' % (domain.name, before.get('deleted_at'),
                                                           before.get('reclaim_at'), exc))
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
    began = time.monotonic()
    hv.start(domain.dom, discard_saved=opts.hard_reboot)
    try:
        hv.wait_running(domain.dom, opts.start_timeout)
    except hv.HypervisorError:
        hv.destroy(domain.dom)
        raise
    steps['boot_seconds'] = round(time.monotonic() - began, 2)
    return steps


def _roll_back(ctx, domain, before, exc):
    """Spec rule 2: back to soft_deleted, shut off, original deleted_at and reclaim_at, error in history."""
    try:
        hv.destroy(domain.dom)
    except Exception:
        pass
    try:
        current = ctx.fresh(domain)
        record = copy.deepcopy(before)
        record.update({'vm_state': 'soft_deleted', 'task_state': None})
        record = _record.add_history(record, 'restore', ctx.request_id, _record.format_time(_record.utcnow()),
                                     'error', str(exc))
        ctx.save(current, record)
        ctx.event('instance.restore.end', domain, result='error', message=str(exc))
    except Exception:
        pass  # still 'restoring': a re-run finishes or rolls back (rule 7), and reclaim leaves it alone
