# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore: the batch quota check, then the libvirt driver's hard reboot, bounded by start_timeout, rolled back on
any failure (spec rule 2). ``run`` is the whole of vm_restore."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _states as states
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import parse_duration
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, RESUME, START

DEFAULT_START_TIMEOUT = 300
OPERATION = 'restore'
ARGS = dict(
    quota=dict(type='dict'),
    usage=dict(type='dict'),
    start_timeout=dict(type='raw', default=DEFAULT_START_TIMEOUT),
    hard_reboot=dict(type='bool', default=False),
    move_from=dict(type='str'),
)
ARGUMENT_SPEC = lc.spec(lc.SELECTION_ARGS, lc.LIFECYCLE_ARGS, ARGS)


class RestoreOptions(object):
    def __init__(self, start_timeout=DEFAULT_START_TIMEOUT, hard_reboot=False, force=False, quota=None, usage=None):
        self.start_timeout = start_timeout
        self.hard_reboot = hard_reboot
        self.force = force
        self.quota = quota
        self.usage = usage


def options(params, no_log_values=None):
    """RestoreOptions from the task's options; DeferredError naming the option when one cannot be read."""
    opts = RestoreOptions(start_timeout=parse_duration(lc.param(params, 'start_timeout', DEFAULT_START_TIMEOUT),
                                                       'start_timeout', allow_zero=False),
                          hard_reboot=bool(params.get('hard_reboot')), force=bool(params.get('force')),
                          quota=params.get('quota'), usage=params.get('usage'))
    opts.move_from = params.get('move_from')
    if opts.move_from is not None and params.get('name') is None:
        raise DeferredError('move_from needs name: say which domains to bring here; nothing was changed')
    if opts.quota is not None:
        try:
            quota.validate_limits(opts.quota)
            if opts.usage is not None:
                quota.validate_limits(opts.usage)
        except quota.QuotaError as exc:
            raise quota.QuotaError('%s; nothing was changed' % exc)
    return opts


def run(ctx, opts):
    """vm_restore: the batch quota check before anything, then one restore per selected domain."""
    if opts.move_from:
        return move_here(ctx, opts)
    pairs = lc.snapshot(ctx)
    chosen = lc.select_from_task(ctx, pairs)
    extra = {}
    if opts.quota is not None:
        extra['quota'] = check_quota(ctx, opts, pairs, chosen)
    instances = lc.run_each(ctx, chosen, lambda item: restore(ctx, item[0], opts))
    return lc.outcome(instances, 'vm_restore', **extra)


def check_quota(ctx, opts, pairs, chosen):
    """The batch's quota figures; DeferredError (nothing changed) when the batch does not fit."""
    # Only domains that would really come back count against the quota.
    wanted = []
    for domain, view in chosen:
        try:
            # A soft-deleted guest started by hand already counts in the usage: not asked for twice.
            if lc.decision(domain, OPERATION) != NOOP and not _views.counts_for_quota(view):
                wanted.append(view)
        except lc.OperationError:
            pass  # reported per domain by the restore itself
    usage = opts.usage if opts.usage is not None else _views.usage([v for dummy, v in pairs])
    request = quota.request_of(wanted)
    over = quota.check(opts.quota, usage, request)
    # Only the projects of this batch: the host (or fleet) may hold many others.
    figures = {'request': request, 'usage': quota.usage_of(usage, request), 'over': over}
    if over:
        raise quota.QuotaError('over quota, nothing was changed: %s' % quota.describe(over), quota=figures,
                               instances=[dict(name=d.name, uuid=d.uuid, changed=False, failed=True, msg='over quota')
                                          for d, dummy in chosen])
    return figures


def move_here(ctx, opts):
    """Restore onto this host soft-deleted domains another host holds (``move_from``, its libvirt URI as seen here).

    Every disk must already be visible here at the same path (shared storage; that it is the same file is the
    restore role's check, which sees both hosts): otherwise nothing changes. The domain is defined here with its
    record (stamped with this host, so this copy is the authoritative one), undefined there, then restored here:
    at no moment is there no definition, and the one left there is gone before the guest runs here.
    """
    source = hv.open_connection(opts.move_from)
    try:
        there = lc.snapshot(lc.Context(source, uri=opts.move_from, project=ctx.project))
        chosen = lc.select(ctx, there, names=ctx.params.get('name'), project=ctx.project)
        here = set(v['uuid'] for dummy, v in lc.snapshot(ctx))
        for domain, view in chosen:
            _check_movable(ctx, domain, view, opts, here)
        extra = {}
        if opts.quota is not None:
            extra['quota'] = check_quota(ctx, opts, lc.snapshot(ctx), chosen)
        results = []
        for domain, view in chosen:
            moved = _define_here(ctx, domain, opts)
            results.append(dict(restore(ctx, moved, opts), moved_from=opts.move_from))
        return lc.outcome(results, 'vm_restore', **extra)
    finally:
        try:
            source.close()
        except Exception:  # the source going away after the move changes nothing here
            pass


def _check_movable(ctx, domain, view, opts, here):
    """Refuse (nothing changed) a domain that cannot move here: guards, state, a UUID already here, disks not seen."""
    lc.guard(domain, 'restore', ctx.project, opts.force, check_protected=False)
    if view['vm_state'] != 'soft_deleted' or view.get('task_state'):
        raise lc.OperationError('domain %s is %s%s on %s; only an idle soft-deleted domain moves; nothing was changed'
                                % (domain.name, view['vm_state'], ' (task %s)' % view['task_state']
                                   if view.get('task_state') else '', opts.move_from))
    if domain.uuid in here:
        raise lc.OperationError('domain %s (%s) is already defined on this host; nothing was changed'
                                % (domain.name, domain.uuid))
    if domain.managed_save and not opts.hard_reboot:
        raise lc.OperationError('domain %s has saved memory on %s, which cannot come along: restore it there, or here '
                                'with hard_reboot=true to boot it fresh; nothing was changed' % (domain.name, opts.move_from))
    unseen = []
    for disk in domain.disks():
        if disk['device'] in ('cdrom', 'floppy') and not disk['path']:
            continue
        if disk['type'] == 'volume':
            try:
                path = hv.volume_path_offline(ctx.conn, disk['pool'], disk['volume'])
            except hv.HypervisorError:
                unseen.append('%s/%s' % (disk['pool'], disk['volume']))
                continue
        elif disk['type'] in ('file', 'block'):
            path = disk['path']
        else:
            continue
        if path and not os.path.exists(path):
            unseen.append(path)
    for path in domain.boot_files():
        if not os.path.exists(path):
            unseen.append(path)
    if unseen:
        raise lc.OperationError('domain %s cannot be restored onto %s: this host cannot see %s; nothing was changed'
                                % (domain.name, ctx.host.get('hostname'), ', '.join(unseen)))


def _define_here(ctx, domain, opts):
    """Define the domain here from its definition there (record included), then undefine it there."""
    xml = hv.definition(domain)
    with ctx.lock(domain):
        dom = hv.define(ctx.conn, xml)
        moved = ctx.fresh(hv.Domain(dom, xml, 'shutoff'))
        record = dict(moved.record or _record.empty())
        record = _record.add_history(record, 'move', ctx.request_id, _record.format_time(_record.utcnow()), 'success',
                                     'from %s' % opts.move_from)
        ctx.save(moved, record)  # stamped with this host: this copy is now the authoritative one (rule 9)
        ctx.event('instance.move', moved, result='success', source=opts.move_from)
        hv.undefine_moved(domain)
    return ctx.fresh(moved)


class Plan(object):
    """What a restore of one domain will do, decided once: guards, START/RESUME/NOOP, the record after."""

    def __init__(self, ctx, domain, opts):
        self.domain = domain
        lc.guard(domain, 'restore', ctx.project, opts.force, check_protected=False)
        self.decision = lc.decision(domain, OPERATION)
        self.before = copy.deepcopy(domain.record)
        self.before_view = _views.describe(domain)
        self.resumes_saved_memory = bool(domain.managed_save and not opts.hard_reboot)
        self.after_view = dict(self.before_view, vm_state=states.leaves(OPERATION), task_state=None, deleted_at=None,
                               reclaim_at=None, soft_delete_mode=None, power_state='running')

    def noop_result(self):
        return lc.result_for(self.domain, False, action='none', record=self.before_view, msg='already active')

    def check_mode_result(self):
        if self.decision == NOOP:
            return self.noop_result()
        return lc.result_for(self.domain, True, before=self.before_view, after=self.after_view, action='would_restore',
                             resumed_saved_memory=self.resumes_saved_memory, record=self.after_view)


def restore(ctx, domain, opts):
    """Restore one soft-deleted domain to running; returns its result dict or raises OperationError."""
    started = time.monotonic()
    if ctx.check_mode:
        return Plan(ctx, ctx.fresh(domain), opts).check_mode_result()
    with ctx.lock(domain):
        domain = ctx.fresh(domain)
        plan = Plan(ctx, domain, opts)
        before = plan.before
        if plan.decision == NOOP:
            return plan.noop_result()
        if plan.decision == START:
            ctx.compare_and_set(domain, (None,), {'task_state': states.holds(OPERATION)}, current=domain)
            ctx.event('instance.restore.start', domain, deleted_at=before.get('deleted_at'),
                      reclaim_at=before.get('reclaim_at'))
            lc.failpoint('restore.after_start')
        try:
            steps = hard_reboot(ctx, domain, opts, resumed=plan.decision == RESUME)
            lc.failpoint('restore.after_boot')
            record = copy.deepcopy(domain.record)
            record.update({'vm_state': states.leaves(OPERATION), 'task_state': None, 'deleted_at': None,
                           'reclaim_at': None, 'soft_delete_mode': None})
            record = _record.add_history(record, OPERATION, ctx.request_id, _record.format_time(_record.utcnow()),
                                         'success')
            after = ctx.fresh(domain)  # one read after the boot, for the compare-and-set and the result
            ctx.compare_and_set(domain, (states.holds(OPERATION),), record, current=after)
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
        after_view = _views.describe(after)
        return lc.result_for(domain, True, before=plan.before_view, after=after_view, action='restored',
                             resumed=plan.decision == RESUME, seconds=round(time.monotonic() - started, 2),
                             record=after_view, **steps)


def hard_reboot(ctx, domain, opts, resumed=False):
    """Destroy if running, make networks/pools/disks ready, start, wait for running; returns what it did."""
    steps = {'networks_started': [], 'pools_started': [], 'resumed_saved_memory': False, 'boot_seconds': None}
    state = domain.power_state  # read under the lock just before
    if resumed and state == 'running':
        # An interrupted restore that had already booted the guest: only the record is left to write.
        return steps
    current = domain
    if state not in ('shutoff', 'gone'):
        hv.destroy(domain.dom)
        current = ctx.fresh(domain)
    steps['networks_started'] = hv.ensure_networks(ctx.conn, current)
    steps['pools_started'] = hv.ensure_pools(ctx.conn, current)
    storage.check_disks(ctx.conn, current)
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
