# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One reclaim sweep of a host: terminate what has expired, finish pending Cinder work, report the rest."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _terminate as term
from ansible_collections.deferred.libvirt.plugins.module_utils._journal import LockTimeout


def classify(pairs, now, project=None):
    """Sort soft-deleted domains into (due, kept, skipped, resumable) without touching anything.

    due: expired and safe to reclaim; kept: not yet expired (with when);
    skipped: never reclaimed now, with why (rule 1 anomalies, protected,
    locked, a restore in progress); resumable: an interrupted reclaim.
    """
    due, kept, skipped, resumable = [], [], [], []
    for domain, view in pairs:
        if domain is None:
            continue
        if project is not None and view.get('project') != project:
            continue
        if view.get('metadata_error'):
            skipped.append((domain, view, 'its lifecycle record cannot be read (%s); never reclaimed until it is fixed'
                            % view['metadata_error']))
            continue
        if view['vm_state'] != 'soft_deleted':
            continue
        if view['anomalies']:
            skipped.append((domain, view, 'its lifecycle record is incomplete (%s); never reclaimed until it is fixed'
                            % '; '.join(view['anomalies'])))
            continue
        if view['task_state'] == 'deleting':
            resumable.append((domain, view))
            continue
        if view['task_state'] is not None:
            skipped.append((domain, view, 'task %s is in progress or was interrupted; run that operation again'
                            % view['task_state']))
            continue
        if view.get('protected'):
            skipped.append((domain, view, 'protected'))
            continue
        if view.get('locked'):
            skipped.append((domain, view, 'locked%s' % (' (%s)' % view['lock_reason'] if view.get('lock_reason') else '')))
            continue
        if _record.parse_time(view['reclaim_at']) <= now:
            due.append((domain, view))
        else:
            kept.append((domain, view))
    due.sort(key=lambda pair: pair[1]['reclaim_at'])
    return due, kept, skipped, resumable


def still_due(now):
    """Under the lock, the domain must still be soft-deleted, idle and expired (spec rule 4).

    A domain in task_state deleting is an interrupted terminate or reclaim: the
    deletion was already decided (its disks may be gone), so it is finished
    whatever its reclaim_at says (spec rule 7).
    """
    def check(domain):
        if domain.record_error:
            raise term.Skip('domain %s: %s; not reclaimed' % (domain.name, domain.record_error))
        record = domain.record or {}
        if record.get('vm_state') != 'soft_deleted':
            raise term.Skip('domain %s is no longer soft-deleted (restored meanwhile); not reclaimed' % domain.name)
        if record.get('task_state') not in (None, 'deleting'):
            raise term.Skip('domain %s has task %s in progress; not reclaimed' % (domain.name, record.get('task_state')))
        problems = _record.anomalies(record)
        if problems:
            raise term.Skip('domain %s: %s; not reclaimed' % (domain.name, '; '.join(problems)))
        if record.get('task_state') is None and _record.parse_time(record['reclaim_at']) > now:
            raise term.Skip('domain %s: reclaim_at %s has not passed; not reclaimed' % (domain.name, record['reclaim_at']))
        if record.get('protected') or (record.get('locked') and record.get('task_state') is None):
            raise term.Skip('domain %s is protected or locked; not reclaimed' % domain.name)
    return check


def reclaim_one(ctx, domain, opts, others, now):
    """Terminate one expired domain through the same path as vm_terminate, with an instance.reclaim event.

    A domain that no longer qualifies under its lock (restored meanwhile), or
    whose lock another operation holds past lock_timeout, is skipped, not
    failed: the next sweep looks at it again.
    """
    # Between the sweep's snapshot and the domain's lock: where a restore can get in first (tests pause here).
    lc.failpoint('reclaim.before_lock')
    try:
        result = term.terminate(ctx, domain, opts, others, action='reclaim', precondition=still_due(now))
    except (term.Skip, LockTimeout) as exc:
        reason = str(exc)
        if isinstance(exc, LockTimeout):
            reason = '%s; not reclaimed in this sweep' % reason
        ctx.event('instance.reclaim', domain, result='skipped', reason=reason)
        return {'name': domain.name, 'uuid': domain.uuid, 'changed': False, 'action': 'skipped', 'reason': reason}
    if not ctx.check_mode and result.get('changed'):
        ctx.event('instance.reclaim', domain, result='pending' if result.get('volumes_pending') else 'success',
                  deleted_at=(domain.record or {}).get('deleted_at'), reclaim_at=(domain.record or {}).get('reclaim_at'),
                  volumes_pending=[v['id'] for v in result.get('volumes_pending') or []])
    return result
