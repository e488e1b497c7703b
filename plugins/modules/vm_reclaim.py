#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_reclaim
short_description: One reclaim sweep of a libvirt host - terminate soft-deleted domains whose reclaim_at has passed
version_added: 0.1.0
description:
  - Terminates, as M(deferred.libvirt.vm_terminate) does, every soft-deleted domain with no task in progress whose
    C(reclaim_at) has passed, and finishes the Cinder work pending in tombstones of earlier terminations.
  - A domain whose C(deleted_at) or C(reclaim_at) is missing or unreadable is never reclaimed, only reported in
    RV(skipped); so are protected and locked domains and domains with a restore in progress.
  - Each domain is re-checked under its lock just before it is terminated, so a domain restored meanwhile is never
    reclaimed (serialised with M(deferred.libvirt.vm_restore)).
  - One domain's failure never stops the sweep; the task fails after the sweep if any domain failed.
  - Usually run by the C(deferred.libvirt.reclaim) role or C(playbooks/reclaim.yml) on a timer.
extends_documentation_fragment:
  - deferred.libvirt.connection
  - deferred.libvirt.lifecycle
  - deferred.libvirt.lifecycle.TERMINATE
  - deferred.libvirt.openstack
  - deferred.libvirt.attributes
  - deferred.libvirt.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details: A dry run listing what would be reclaimed, and when every other soft-deleted domain expires.
  diff_mode:
    support: none
options:
  project:
    description:
      - Sweep only this project's domains and tombstones.
    type: str
  limit:
    description:
      - Reclaim at most this many domains in this run, the longest expired first. The rest wait for the next run.
    type: int
  force:
    description:
      - Not used by the sweep; locked domains are always skipped.
'''

EXAMPLES = r'''
- name: Sweep this hypervisor
  deferred.libvirt.vm_reclaim:
    cloud: mycloud

- name: What would the next sweep do?
  deferred.libvirt.vm_reclaim:
  check_mode: true
  register: dry

- name: At most 20 per run, one project
  deferred.libvirt.vm_reclaim:
    project: ci
    limit: 20
'''

RETURN = r'''
reclaimed:
  description: Domains terminated by this sweep (or that would be, in check mode), with name, uuid, reclaim_at and volume results.
  returned: always
  type: list
  elements: dict
failed:
  description: Domains the sweep tried and could not reclaim, with name and msg.
  returned: always
  type: list
  elements: dict
skipped:
  description: Soft-deleted domains the sweep left alone, with name and reason (rule 1 anomalies, protected, locked, task in progress, over limit).
  returned: always
  type: list
  elements: dict
kept:
  description: Soft-deleted domains not yet expired, with name, reclaim_at and expires_in seconds.
  returned: always
  type: list
  elements: dict
pending:
  description: Cinder work still pending after this sweep (tombstone name, uuid, volumes).
  returned: always
  type: list
  elements: dict
finished:
  description: Tombstones whose pending Cinder work this sweep finished.
  returned: always
  type: list
  elements: dict
instances:
  description: One result per domain or tombstone the sweep acted on.
  returned: always
  type: list
  elements: dict
summary:
  description: Counts of reclaimed, failed, skipped, kept, pending and finished.
  returned: always
  type: dict
request_id:
  description: The id of this sweep, as in the event journal.
  returned: always
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _reclaim as rc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _terminate as term
from ansible_collections.deferred.libvirt.plugins.module_utils._module import LifecycleModule


def main():
    base = LifecycleModule(dict(
        project=dict(type='str'),
        limit=dict(type='int'),
    ), selection=False, lifecycle=True, terminate=True)
    if base.params['limit'] is not None and base.params['limit'] < 0:
        base.fail('limit must be 0 or more, got %d; nothing was changed' % base.params['limit'])
    opts = base.terminate_options()
    lock_timeout = base.duration('lock_timeout')
    state = base.state_dir()
    pairs = base.snapshot()
    now = _record.utcnow()
    project = base.params['project']
    ctx = lc.Context(base, state, lock_timeout=lock_timeout)
    ctx.project = project
    due, kept, skipped, resumable = rc.classify(pairs, now, project)
    todo = resumable + due
    over_limit = []
    if base.params['limit'] is not None and len(todo) > base.params['limit']:
        todo, over_limit = todo[:base.params['limit']], todo[base.params['limit']:]
    everyone = [d for d, _ in pairs]

    live = set(v['uuid'] for _, v in pairs)
    tombs = [t for t in state.tombstones_list()
             if t.get('uuid') not in live and (t.get('volumes_pending') or not t.get('cinder_checked', True))
             and (project is None or t.get('project') == project)]

    def work(item):
        kind, payload = item
        if kind == 'domain':
            return rc.reclaim_one(ctx, payload, opts, everyone, now)
        if base.check_mode:
            return {'name': payload.get('name'), 'uuid': payload.get('uuid'), 'changed': True,
                    'action': 'would_finish_pending', 'volumes_pending': payload.get('volumes_pending')}
        summary = term.settle_tombstone(ctx, payload, opts)
        return dict(summary, name=payload.get('name'), uuid=payload.get('uuid'), action='pending_finished',
                    changed=bool(summary['volumes_detached'] or summary['volumes_deleted'] or summary['volumes_kept']))

    items = [('tombstone', t) for t in tombs] + [('domain', d) for d, _ in todo]
    instances = base.run_each(items, work, label=lambda item: item[1].name if item[0] == 'domain' else item[1].get('name'))

    reclaimed, failed, finished, pending = [], [], [], []
    for (kind, _payload), result in zip(items, instances):
        if result.get('failed'):
            failed.append({'name': result['name'], 'uuid': result.get('uuid'), 'msg': result['msg']})
            if kind == 'domain':
                ctx_domain = _payload
                ctx.event('instance.reclaim', ctx_domain, result='error', message=result['msg'])
        elif result.get('action') == 'skipped':
            skipped_entry = (None, {'name': result['name'], 'uuid': result.get('uuid')}, result.get('reason'))
            skipped.append(skipped_entry)
        elif kind == 'domain' and result.get('changed'):
            reclaimed.append(dict((k, result.get(k)) for k in ('name', 'uuid', 'volumes_deleted', 'volumes_detached',
                                                             'volumes_pending', 'disks_deleted', 'disks_kept')))
        elif kind == 'tombstone' and not result.get('volumes_pending'):
            finished.append({'name': result['name'], 'uuid': result.get('uuid')})
        if result.get('volumes_pending'):
            pending.append({'name': result['name'], 'uuid': result.get('uuid'), 'volumes': result['volumes_pending']})
    skipped_out = [{'name': v['name'], 'uuid': v.get('uuid'), 'reason': why} for _, v, why in skipped]
    skipped_out += [{'name': v['name'], 'uuid': v['uuid'], 'reason': 'over this run\'s limit of %d' % base.params['limit'],
                     'reclaim_at': v.get('reclaim_at')} for _, v in over_limit]
    kept_out = [{'name': v['name'], 'uuid': v['uuid'], 'project': v.get('project'), 'reclaim_at': v['reclaim_at'],
                 'expires_in': int((_record.parse_time(v['reclaim_at']) - now).total_seconds())} for _, v in kept]
    summary = dict(reclaimed=len(reclaimed), failed=len(failed), skipped=len(skipped_out), kept=len(kept_out),
                   pending=len(pending), finished=len(finished))
    for entry in skipped_out:
        if 'never reclaimed' in (entry['reason'] or '') or 'metadata' in (entry['reason'] or ''):
            base.module.warn('vm_reclaim: %s skipped: %s' % (entry['name'], entry['reason']))
    base.finish(instances, 'vm_reclaim', reclaimed=reclaimed, failed_domains=failed, skipped=skipped_out,
                kept=kept_out, pending=pending, finished=finished, summary=summary)


if __name__ == '__main__':
    main()
