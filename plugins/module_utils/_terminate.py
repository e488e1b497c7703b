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
import struct
import threading
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record

DEFAULT_INSTANCE_DIRS = ['/var/lib/libvirt/images']


class Skip(Exception):
    """The domain no longer qualifies (for example it was restored meanwhile); nothing was changed."""


class TerminateOptions(object):
    def __init__(self, instance_dirs=None, shutdown_timeout=None, shutdown_retry_interval=10, force=False,
                 cinder_params=None, volume_wait_timeout=cinder.DEFAULT_WAIT, no_log_values=None):
        self.instance_dirs = [os.path.realpath(d) for d in (instance_dirs or DEFAULT_INSTANCE_DIRS)]
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_retry_interval = shutdown_retry_interval
        self.force = force
        self.cinder_params = cinder_params or {}
        self.volume_wait_timeout = volume_wait_timeout
        # The module's set of values Ansible masks in its output; Cinder secrets are added when they are read.
        self.no_log_values = no_log_values if no_log_values is not None else set()


def disk_paths(conn, domain):
    """Real paths of the domain's file, block and pool-volume disks: {real path: target}."""
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


QCOW2_MAGIC = b'QFI\xfb'


def backing_files(path, most=16):
    """Real paths of the qcow2 backing chain below ``path`` (not itself), read from the image headers.

    Reading the header ourselves costs one small read per image, where
    qemu-img would cost a process per disk of every domain on the host.
    """
    chain = []
    current = path
    for dummy in range(most):
        try:
            with open(current, 'rb') as handle:
                header = handle.read(20)
                if len(header) < 20 or header[:4] != QCOW2_MAGIC:
                    break
                offset = struct.unpack('>Q', header[8:16])[0]
                size = struct.unpack('>I', header[16:20])[0]
                if not offset or not size or size > 4096:
                    break
                handle.seek(offset)
                name = handle.read(size).decode('utf-8', 'replace')
        except (IOError, OSError):
            break
        if ':' in name.split('/', 1)[0]:
            break  # a protocol (nbd:, rbd:, json:), not a file
        backing = os.path.realpath(os.path.join(os.path.dirname(current), name))
        if backing in chain or backing == os.path.realpath(path):
            break
        chain.append(backing)
        current = backing
    return chain


def shared_paths(conn, domains, me):
    """What the other domains use: ({real path: [names]} of their disks, {real path: [names]} of their backing files).

    The host-wide index is built once per list of domains (one module run),
    not once per domain terminated: a sweep that reclaims many domains would
    otherwise walk every other domain's disks (libvirt lookups, image header
    reads) again for each one, and its cost would grow with the square of the
    number of domains. The maps returned leave ``me`` out when looked up.
    """
    disks, backing = _index_of(conn, domains)
    return _Others(disks, me.uuid), _Others(backing, me.uuid)


_INDEX_LOCK = threading.Lock()
_INDEX = {}


def _index_of(conn, domains):
    # Locked: a run's threads all start at once, and each would otherwise build the index itself.
    with _INDEX_LOCK:
        cached = _INDEX.get(id(domains))
        if cached is None or cached[0] is not domains:
            disks, backing = {}, {}
            for other in domains:
                if other is None:
                    continue
                for path in disk_paths(conn, other):
                    disks.setdefault(path, []).append((other.uuid, other.name))
                    for below in backing_files(path):
                        backing.setdefault(below, []).append((other.uuid, other.name))
            cached = _INDEX[id(domains)] = (domains, (disks, backing))
    return cached[1]


class _Others(object):
    """{real path: [names]} of a host-wide index, leaving one domain (the one being terminated) out."""

    def __init__(self, index, uuid):
        self._index = index
        self._uuid = uuid

    def __contains__(self, path):
        return any(uuid != self._uuid for uuid, dummy in self._index.get(path, ()))

    def __getitem__(self, path):
        names = [name for uuid, name in self._index.get(path, ()) if uuid != self._uuid]
        if not names:
            raise KeyError(path)
        return names


def _under(path, dirs):
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in dirs)


def classify_disks(conn, domain, opts, shared):
    """Split the domain's disks into what it owns (to delete) and what it must leave (with the reason).

    Owned: volumes of libvirt storage pools and files whose real path (links
    and ``..`` resolved) lies under ``opts.instance_dirs``, unless another
    domain uses them as a disk or a backing file. Everything else is kept.
    """
    disks_of_others, backing_of_others = shared
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
        elif disk['type'] in ('file', 'block') and disk['path']:
            path = disk['path']
        else:
            kept.append(dict(entry, reason='%s disk %s is not storage the domain owns'
                             % (disk['type'], disk['path'] or '')))
            continue
        real = os.path.realpath(path)
        entry['real_path'] = real
        if real in disks_of_others:
            kept.append(dict(entry, reason='shared with domain(s) %s' % ', '.join(sorted(disks_of_others[real]))))
            continue
        if real in backing_of_others:
            kept.append(dict(entry, reason='backing file of a disk of domain(s) %s'
                             % ', '.join(sorted(set(backing_of_others[real])))))
            continue
        pool_volume = _pool_volume(conn, real)
        if pool_volume is not None:
            owned.append(dict(entry, kind='pool_volume'))
        elif disk['type'] == 'block':
            kept.append(dict(entry, reason='block device %s is not a volume of a libvirt storage pool' % real))
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


def delete_disk(conn, item, instance_dirs):
    """Delete one owned disk; a disk already gone is fine.

    A symbolic link that led to it is removed too, but only when the link
    itself lies in an instance directory.
    """
    real = item['real_path']
    if item['kind'] == 'pool_volume':
        vol = _pool_volume(conn, real)
        if vol is not None:
            try:
                vol.delete(0)
            except Exception:
                pass  # fall back to the file; the pool is refreshed on its next use
    if os.path.islink(real) or os.path.isfile(real):  # never a device node or a directory
        os.unlink(real)
    link = item.get('path')
    if link and os.path.islink(link) and _under(os.path.realpath(os.path.dirname(link)), instance_dirs):
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
        lc.failpoint('terminate.after_start')
        try:
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
                delete_disk(ctx.conn, item, opts.instance_dirs)
                deleted.append(item['real_path'])
            tomb.update(disks_deleted=sorted(set(tomb.get('disks_deleted', []) + deleted)), disks_kept=kept)
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
            raise lc.OperationError('domain %s: terminate failed: %s; it is left in task_state deleting, run '
                                    'vm_terminate again to finish it' % (domain.name, exc))
    # The domain is gone; Cinder may take a while and must not hold the domain's lock.
    began = time.monotonic()
    cinder_result = settle_tombstone(ctx, tomb, opts)
    cinder_result['cinder_seconds'] = round(time.monotonic() - began, 3)
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
    """Finish the Cinder work of a tombstone as far as Cinder lets us; the tombstone keeps what is left.

    Runs under the domain's lock (the domain is gone, the UUID's lock remains)
    and takes the volume work from the tombstone on disk, so a terminate and a
    reclaim sweep finishing the same tombstone never both work on a volume.
    ``tomb`` is updated in place.
    """
    summary = {'volumes_detached': [], 'volumes_deleted': [], 'volumes_kept': [], 'volumes_pending': []}
    with ctx.state.lock(tomb['uuid'], timeout=ctx.lock_timeout, name=tomb.get('name')):
        on_disk = ctx.state.read_tombstone(tomb['uuid'])
        if on_disk:
            for key in ('volumes_pending', 'volumes_done', 'cinder_checked'):
                tomb[key] = on_disk.get(key)
            if on_disk.get('status') == 'terminated':
                tomb['status'] = 'terminated'
        pending = tomb.get('volumes_pending') or []
        if not cinder.configured(opts.cinder_params):
            for vol in pending:
                vol['error'] = 'Cinder is not configured for this run (no cloud or auth)'
            # Nothing recorded and no Cinder to ask: there is no volume work we could know of.
            tomb['cinder_checked'] = tomb.get('cinder_checked') or not pending
        elif pending or not tomb.get('cinder_checked'):
            try:
                conn = cinder.connect(opts.cinder_params, opts.no_log_values)
                done, left = cinder.settle(conn, tomb['uuid'], pending, opts.volume_wait_timeout)
                lc.failpoint('terminate.after_cinder')
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


def finish_tombstone(ctx, tomb, opts):
    """Finish what a terminate left in the tombstone of a domain that is gone; returns (summary, changed).

    A run killed after undefine (or Cinder being down) leaves the delete
    without its end in the journal: this run writes it, so the journal tells
    how it finished.
    """
    was = (tomb.get('status'), len(tomb.get('volumes_pending') or []))
    if tomb.get('status') == 'deleting':
        # Killed between undefine and the tombstone update: the domain is gone, so it was undefined.
        tomb.update(status='undefined', terminated_at=tomb.get('terminated_at') or _record.format_time(_record.utcnow()))
    summary = settle_tombstone(ctx, tomb, opts)
    changed = (tomb.get('status'), len(tomb.get('volumes_pending') or [])) != was or bool(
        summary['volumes_detached'] or summary['volumes_deleted'] or summary['volumes_kept'])
    if changed and not ctx.check_mode:
        ctx.state.event('instance.delete.end', ctx.request_id, domain=tomb.get('name'), uuid=tomb.get('uuid'),
                        project=tomb.get('project'), result='pending' if tomb.get('volumes_pending') else 'success',
                        action='pending_finished', volumes_deleted=summary['volumes_deleted'],
                        volumes_detached=summary['volumes_detached'],
                        volumes_pending=[v['id'] for v in summary['volumes_pending']])
    return summary, changed


def _would(ctx, domain, opts, others, action, precondition):
    """Check mode: what a terminate would destroy, delete, detach and keep; nothing is changed."""
    current = hv.refresh(ctx.conn, domain.dom)
    if current is None:
        return lc.result_for(domain, False, action='none', msg='already gone')
    if precondition:
        precondition(current)
    record = lc.guard(current, action, ctx.project, opts.force)
    lc.plan(current, 'terminate')
    owned, kept = classify_disks(ctx.conn, current, opts, shared_paths(ctx.conn, others, current))
    vols, warnings = would_settle(current.uuid, record.get('volumes') or [], opts)
    return lc.result_for(current, True, before=lc.view(current), after={}, action='would_terminate',
                         would_destroy=hv.power_state(current.dom) not in ('shutoff',),
                         disks_deleted=[o['real_path'] for o in owned], disks_kept=kept,
                         volumes_detached=[v['id'] for v in vols],
                         volumes_deleted=[v['id'] for v in vols if v.get('delete_on_termination')],
                         volumes_kept=[v['id'] for v in vols if not v.get('delete_on_termination')],
                         undefine_flags=hv.undefine_flags(current)[1], warnings=warnings)


def would_settle(server_uuid, volumes, opts):
    """The volumes a terminate would handle: the record's plus those Cinder says are attached (read only)."""
    if not cinder.configured(opts.cinder_params):
        return list(volumes), []
    try:
        return cinder.plan(cinder.connect(opts.cinder_params, opts.no_log_values), server_uuid, volumes), []
    except cinder.CinderUnavailable as exc:
        return list(volumes), ['Cinder cannot be asked which volumes are attached (%s): the volumes listed are '
                               'those of the lifecycle record only' % exc]
