# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Terminate (force delete): destroy, delete owned disks, tombstone, undefine, then settle Cinder volumes.

The tombstone is written before anything is destroyed and updated as work
finishes, so a domain is never gone without one and a volume is never
forgotten (spec rule 5). Only storage the domain owns is deleted (rule 6).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record

try:
    import libvirt
except ImportError:
    libvirt = None

DEFAULT_INSTANCE_DIRS = ['/var/lib/libvirt/images']


class Skip(Exception):
    """The domain no longer qualifies (for example it was restored meanwhile); nothing was changed."""


class TerminateOptions(object):
    def __init__(self, instance_dirs=None, shutdown_timeout=None, shutdown_retry_interval=10, force=False,
                 cinder_params=None, volume_wait_timeout=cinder.DEFAULT_WAIT):
        self.instance_dirs = [os.path.realpath(d) for d in (instance_dirs or DEFAULT_INSTANCE_DIRS)]
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_retry_interval = shutdown_retry_interval
        self.force = force
        self.cinder_params = cinder_params or {}
        self.volume_wait_timeout = volume_wait_timeout


def disk_paths(conn, domain):
    """Real paths of the domain's file and pool-volume disks: {real path: target}."""
    paths = {}
    for disk in domain.disks():
        path = disk['path']
        if disk['type'] == 'volume' and disk['pool'] and disk['volume']:
            try:
                path = hv.volume_path(conn, disk['pool'], disk['volume'])
            except hv.HypervisorError:
                continue
        if path and disk['type'] in ('file', 'volume', 'block'):
            paths[os.path.realpath(path)] = disk['target']
    return paths


def shared_paths(conn, domains, me):
    """{real path: [other domain names]} for every disk of the other domains."""
    shared = {}
    for other in domains:
        if other is None or other.uuid == me.uuid:
            continue
        for path in disk_paths(conn, other):
            shared.setdefault(path, []).append(other.name)
    return shared


def _under(path, dirs):
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in dirs)


def classify_disks(conn, domain, opts, shared):
    """Split the domain's disks into what it owns (to delete) and what it must leave (with the reason)."""
    owned, kept = [], []
    for disk in domain.disks():
        entry = {'target': disk['target'], 'path': disk['path'], 'pool': disk['pool'], 'volume': disk['volume']}
        if disk['device'] in ('cdrom', 'floppy') or disk['readonly'] or disk['shareable']:
            kept.append(dict(entry, reason='%s disk' % ('read-only or shareable' if disk['device'] == 'disk' else disk['device'])))
            continue
        if disk['type'] == 'volume':
            try:
                path = hv.volume_path(conn, disk['pool'], disk['volume'])
            except hv.HypervisorError as exc:
                kept.append(dict(entry, reason=str(exc)))
                continue
        elif disk['type'] == 'file' and disk['path']:
            path = disk['path']
        else:
            kept.append(dict(entry, reason='%s disk is not storage the domain owns' % disk['type']))
            continue
        real = os.path.realpath(path)
        entry['real_path'] = real
        if real in shared:
            kept.append(dict(entry, reason='shared with domain(s) %s' % ', '.join(sorted(shared[real]))))
            continue
        pool_volume = _pool_volume(conn, real)
        if pool_volume is not None:
            owned.append(dict(entry, kind='pool_volume'))
        elif _under(real, opts.instance_dirs):
            owned.append(dict(entry, kind='file'))
        else:
            kept.append(dict(entry, reason='%s is outside the instance directories (%s)'
                             % (real, ', '.join(opts.instance_dirs))))
    return owned, kept


def _pool_volume(conn, real):
    try:
        return conn.storageVolLookupByPath(real)
    except Exception:
        return None


def delete_disk(conn, item):
    """Delete one owned disk; a disk already gone is fine."""
    real = item['real_path']
    if item['kind'] == 'pool_volume':
        vol = _pool_volume(conn, real)
        if vol is not None:
            try:
                vol.delete(0)
                return
            except Exception:
                pass  # fall back to the file; the pool is refreshed on its next use
    if os.path.lexists(real):
        os.unlink(real)
    link = item.get('path')
    if link and os.path.islink(link):
        os.unlink(link)


def new_tombstone(ctx, domain, record):
    return {
        'name': domain.name, 'uuid': domain.uuid, 'project': record.get('project'), 'user': record.get('user'),
        'vcpus': domain.vcpus, 'memory_mb': domain.memory_mb, 'deleted_at': record.get('deleted_at'),
        'reclaim_at': record.get('reclaim_at'), 'request_id': ctx.request_id, 'status': 'deleting',
        'started_at': _record.format_time(_record.utcnow()), 'terminated_at': None, 'host_uri': ctx.uri,
        'volumes': copy.deepcopy(record.get('volumes') or []),
        'volumes_pending': [dict(v) for v in record.get('volumes') or []],
        'cinder_checked': False, 'volumes_done': [], 'disks_deleted': [], 'disks_kept': [],
        'history': copy.deepcopy(record.get('history') or []),
    }


def terminate(ctx, domain, opts, others, action='terminate', precondition=None):
    """Terminate one domain; returns its result dict. ``precondition(domain)`` may raise Skip under the lock."""
    started = time.monotonic()
    if ctx.check_mode:
        return _would(ctx, domain, opts, others, action, precondition)
    with ctx.lock(domain):
        current = hv.refresh(ctx.conn, domain.dom)
        if current is None:
            return lc.result_for(domain, False, action='none', msg='already gone')
        domain = current
        if precondition:
            precondition(domain)
        record = lc.guard(domain, action, ctx.project, opts.force)
        lc.plan(domain, 'terminate')
        before_view = lc.view(domain)
        shared = shared_paths(ctx.conn, others, domain)
        previous_task = record.get('task_state')
        ctx.compare_and_set(domain, (previous_task,), {'task_state': 'deleting'})
        ctx.event('instance.delete.start', domain, action=action, previous_task_state=previous_task)
        tomb = ctx.state.read_tombstone(domain.uuid) or new_tombstone(ctx, domain, record)
        tomb['status'] = 'deleting'
        ctx.state.write_tombstone(tomb)
        lc.failpoint('terminate.after_tombstone')
        if opts.shutdown_timeout:
            stopped = hv.clean_shutdown(domain.dom, opts.shutdown_timeout, opts.shutdown_retry_interval)
        else:
            hv.destroy(domain.dom)
            stopped = {'clean_shutdown': False}
        lc.failpoint('terminate.after_destroy')
        domain = ctx.fresh(domain)
        owned, kept = classify_disks(ctx.conn, domain, opts, shared)
        deleted = []
        for item in owned:
            delete_disk(ctx.conn, item)
            deleted.append(item['real_path'])
        tomb.update(disks_deleted=sorted(set(tomb.get('disks_deleted', []) + deleted)), disks_kept=kept)
        ctx.state.write_tombstone(tomb)
        lc.failpoint('terminate.after_disks')
        flags = hv.undefine(domain)
        tomb.update(status='undefined', terminated_at=_record.format_time(_record.utcnow()), undefine_flags=flags)
        ctx.state.write_tombstone(tomb)
        lc.failpoint('terminate.after_undefine')
    # The domain is gone; Cinder may take a while and must not hold the domain's lock.
    cinder_result = settle_tombstone(ctx, tomb, opts)
    warnings = []
    if tomb['volumes_pending']:
        warnings.append('domain %s is terminated but Cinder work is pending for volume(s) %s; the next vm_reclaim '
                        'finishes it' % (domain.name, ', '.join(v['id'] for v in tomb['volumes_pending'])))
    ctx.event('instance.delete.end', domain, result='pending' if tomb['volumes_pending'] else 'success',
              action=action, disks_deleted=deleted, disks_kept=[k['path'] for k in kept],
              volumes_pending=[v['id'] for v in tomb['volumes_pending']])
    return lc.result_for(domain, True, before=before_view, after={}, action='terminated',
                         clean_shutdown=stopped.get('clean_shutdown'), disks_deleted=deleted, disks_kept=kept,
                         undefine_flags=flags, seconds=round(time.monotonic() - started, 2),
                         warnings=warnings, **cinder_result)


def settle_tombstone(ctx, tomb, opts):
    """Finish the Cinder work of a tombstone as far as Cinder lets us; the tombstone keeps what is left."""
    summary = {'volumes_detached': [], 'volumes_deleted': [], 'volumes_kept': [], 'volumes_pending': []}
    pending = tomb.get('volumes_pending') or []
    if not cinder.configured(opts.cinder_params):
        for vol in pending:
            vol['error'] = 'Cinder is not configured for this run (no cloud or auth)'
        tomb['cinder_checked'] = tomb.get('cinder_checked') or not pending
    elif pending or not tomb.get('cinder_checked'):
        try:
            conn = cinder.connect(opts.cinder_params)
            done, left = cinder.settle(conn, tomb['uuid'], pending, opts.volume_wait_timeout)
            tomb['cinder_checked'] = True
        except cinder.CinderUnavailable as exc:
            done, left = [], [dict(v, error=str(exc)) for v in pending]
        tomb['volumes_done'] = (tomb.get('volumes_done') or []) + done
        tomb['volumes_pending'] = left
        pending = left
        for item in done:
            if item.get('detached'):
                summary['volumes_detached'].append(item['id'])
            if item.get('deleted'):
                summary['volumes_deleted'].append(item['id'])
            if item.get('kept'):
                summary['volumes_kept'].append(item['id'])
    if not tomb.get('volumes_pending') and tomb.get('cinder_checked') and tomb.get('status') == 'undefined':
        tomb['status'] = 'terminated'
    ctx.state.write_tombstone(tomb)
    summary['volumes_pending'] = [dict((k, v[k]) for k in ('id', 'delete_on_termination', 'error') if k in v)
                                  for v in pending]
    return summary


def _would(ctx, domain, opts, others, action, precondition):
    current = hv.refresh(ctx.conn, domain.dom)
    if current is None:
        return lc.result_for(domain, False, action='none', msg='already gone')
    if precondition:
        precondition(current)
    record = lc.guard(current, action, ctx.project, opts.force)
    lc.plan(current, 'terminate')
    owned, kept = classify_disks(ctx.conn, current, opts, shared_paths(ctx.conn, others, current))
    vols = record.get('volumes') or []
    return lc.result_for(current, True, before=lc.view(current), after={}, action='would_terminate',
                         would_destroy=hv.power_state(current.dom) not in ('shutoff',),
                         disks_deleted=[o['real_path'] for o in owned], disks_kept=kept,
                         volumes_detached=[v['id'] for v in vols],
                         volumes_deleted=[v['id'] for v in vols if v.get('delete_on_termination')],
                         volumes_kept=[v['id'] for v in vols if not v.get('delete_on_termination')],
                         undefine_flags=hv.undefine_flags(current)[1])
