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
    RV(skipped_domains), as a warning and as an C(instance.reclaim) event with result C(skipped), on every sweep until
    it is fixed; protected and locked domains and domains with a restore in progress are skipped too.
  - Each domain is re-checked under its lock just before it is terminated, so a domain restored meanwhile is never
    reclaimed (serialised with M(deferred.libvirt.vm_restore)). A domain whose lock another operation holds for longer
    than O(lock_timeout) is skipped until the next sweep.
  - A soft-deleted domain left in task_state V(deleting) by an interrupted or failed terminate or reclaim is finished
    first, whatever its C(reclaim_at), since its deletion was already decided and its disks may be half gone.
  - One domain's failure never stops the sweep; the task fails after the sweep if any domain failed. Each domain
    the sweep acts on gets an C(instance.reclaim) event (result C(success), C(pending), C(error) or C(skipped)).
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
  tombstone_retention:
    description:
      - How long a finished tombstone (domain undefined, every Cinder action done) is kept after it finished; the sweep
        then removes it and journals an C(instance.purge) event. Seconds or a duration (V(90d)); V(0) removes finished
        tombstones at the next sweep; null keeps them for ever.
      - A tombstone with work left (not undefined yet, Cinder work pending or never checked) is never removed.
      - With O(project), only that project's tombstones are removed.
    type: raw
    default: 90d
  journal_rotate_size:
    description:
      - Rotate C(events.jsonl) (rename it to C(events-<UTC time>.jsonl) in O(state_dir)) when it is bigger than this.
        Bytes or a size such as V(64M), V(1G); null never rotates by size.
    type: raw
    default: 64M
  journal_rotate_age:
    description:
      - Rotate C(events.jsonl) when its first event is older than this. Seconds or a duration; null never rotates by age.
    type: raw
    default: 30d
  journal_retention:
    description:
      - Remove rotated journal files rotated longer ago than this. Seconds or a duration; null keeps them for ever.
    type: raw
    default: 365d
author:
  - deferred.libvirt developers (!UNKNOWN)
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
  description:
    - Domains terminated by this sweep (in check mode, those that would be), the longest expired first.
    - Each with name, uuid, project, deleted_at, reclaim_at, the disks deleted and kept, and the Cinder volumes detached,
      deleted and still pending.
  returned: always
  type: list
  elements: dict
failed_domains:
  description:
    - Domains the sweep tried and could not reclaim, with name, uuid and msg (the reason). They are left in task_state
      V(deleting) and the next sweep finishes them.
    - Named C(failed_domains) because C(failed) is the task's own failure flag in Ansible.
  returned: always
  type: list
  elements: dict
skipped_domains:
  description:
    - Soft-deleted domains (and unreadable tombstones) the sweep left alone, with name, uuid and reason - a missing or
      unreadable C(deleted_at)/C(reclaim_at) or lifecycle record (spec rule 1), protected, locked, another task in
      progress, restored meanwhile, its lock held by another operation, or over this run's O(limit).
    - Named C(skipped_domains) because a result key C(skipped) makes Ansible show the whole task as skipped.
  returned: always
  type: list
  elements: dict
kept:
  description: Soft-deleted domains not yet expired, soonest first, with name, uuid, project, deleted_at, reclaim_at and
    expires_in (seconds from the start of the sweep).
  returned: always
  type: list
  elements: dict
pending:
  description: Cinder work still pending after this sweep (name, uuid, volumes), kept in the tombstones for the next sweep.
  returned: always
  type: list
  elements: dict
finished:
  description: Tombstones of domains terminated earlier whose pending work this sweep finished (name, uuid).
  returned: always
  type: list
  elements: dict
instances:
  description: One result per domain or tombstone the sweep acted on, as M(deferred.libvirt.vm_terminate) returns them.
  returned: always
  type: list
  elements: dict
retention:
  description:
    - What the state_dir's retention removed in this sweep (in check mode, would remove) - C(tombstones_removed)
      (name, uuid, project, terminated_at, finished_at), C(locks_removed) (paths), C(journal_rotated) (the rotated
      file, or null), C(journal_removed) (rotated files past O(journal_retention)), C(temp_files_removed) and
      C(errors) (what could not be removed, and why).
  returned: always
  type: dict
summary:
  description: Counts of reclaimed, failed, skipped, kept, pending and finished.
  returned: always
  type: dict
  sample: {reclaimed: 2, failed: 0, skipped: 1, kept: 4, pending: 0, finished: 0}
request_id:
  description: The id of this sweep, as in the event journal.
  returned: always
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _reclaim as rc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _retention
from ansible_collections.deferred.libvirt.plugins.module_utils import _terminate as term
from ansible_collections.deferred.libvirt.plugins.module_utils._module import LifecycleModule


def main():
    base = LifecycleModule(dict(
        project=dict(type='str'),
        limit=dict(type='int'),
        **_retention.RETENTION_ARGS
    ), selection=False, lifecycle=True, terminate=True)
    try:
        retention = _retention.RetentionOptions.from_params(base.params)
    except _retention.RetentionError as exc:
        base.fail('%s; nothing was changed' % exc)
    limit = base.params['limit']
    if limit is not None and limit < 0:
        base.fail('limit must be 0 or more, got %d; nothing was changed' % limit)
    opts = base.terminate_options()
    lock_timeout = base.duration('lock_timeout')
    state = base.state_dir()
    pairs = base.snapshot()
    now = _record.utcnow()
    project = base.params['project']
    ctx = lc.Context(base, state, lock_timeout=lock_timeout)
    ctx.project = project
    due, kept, skipped, resumable = rc.classify(pairs, now, project)
    # Interrupted reclaims first (their disks may be half gone), then the longest expired.
    todo = resumable + due
    over_limit = []
    if limit is not None and len(todo) > limit:
        todo, over_limit = todo[:limit], todo[limit:]
    everyone = [d for d, dummy in pairs]

    live = set(v['uuid'] for dummy, v in pairs)
    tombs, bad_tombs = [], []
    for tomb in state.pending_tombstones():
        if tomb.get('error'):
            bad_tombs.append(tomb)
        elif (tomb.get('uuid') not in live and (tomb.get('volumes_pending') or not tomb.get('cinder_checked', True))
              and (project is None or tomb.get('project') == project)):
            tombs.append(tomb)

    def work(item):
        kind, payload = item
        if kind == 'domain':
            return rc.reclaim_one(ctx, payload, opts, everyone, now)
        if base.check_mode:
            return {'name': payload.get('name'), 'uuid': payload.get('uuid'), 'changed': True,
                    'action': 'would_finish_pending', 'volumes_pending': payload.get('volumes_pending')}
        summary, changed = term.finish_tombstone(ctx, payload, opts)
        return dict(summary, name=payload.get('name'), uuid=payload.get('uuid'), action='pending_finished',
                    changed=changed)

    items = [('tombstone', t) for t in tombs] + [('domain', d) for d, dummy in todo]
    views = dict((v['uuid'], v) for dummy, v in pairs)
    instances = base.run_each(items, work, label=lambda item: item[1].name if item[0] == 'domain' else item[1].get('name'))

    reclaimed, failed, finished, pending, skipped_out = [], [], [], [], []
    for (kind, payload), result in zip(items, instances):
        result.setdefault('uuid', payload.uuid if kind == 'domain' else payload.get('uuid'))
        if result.get('failed'):
            failed.append({'name': result['name'], 'uuid': result.get('uuid'), 'msg': result['msg']})
            if kind == 'domain':
                ctx.event('instance.reclaim', payload, result='error', message=result['msg'])
        elif result.get('action') == 'skipped':
            skipped_out.append({'name': result['name'], 'uuid': result.get('uuid'), 'reason': result.get('reason')})
        elif kind == 'domain' and result.get('changed'):
            view = views.get(payload.uuid) or {}
            entry = dict((k, view.get(k)) for k in ('project', 'deleted_at', 'reclaim_at'))
            entry.update((k, result.get(k)) for k in ('name', 'uuid', 'volumes_deleted', 'volumes_detached',
                                                      'volumes_pending', 'disks_deleted', 'disks_kept'))
            reclaimed.append(entry)
        elif kind == 'tombstone' and not result.get('volumes_pending'):
            finished.append({'name': result['name'], 'uuid': result.get('uuid')})
        if result.get('volumes_pending'):
            pending.append({'name': result['name'], 'uuid': result.get('uuid'), 'volumes': result['volumes_pending']})
    anomalies = []
    for domain, view, why in skipped:
        skipped_out.append({'name': view['name'], 'uuid': view.get('uuid'), 'project': view.get('project'), 'reason': why})
        if view.get('metadata_error') or view.get('anomalies'):
            anomalies.append((domain, why))
    skipped_out += [{'name': tomb.get('name'), 'uuid': tomb.get('uuid'), 'reason': 'tombstone: %s' % tomb['error']}
                    for tomb in bad_tombs]
    skipped_out += [{'name': v['name'], 'uuid': v['uuid'], 'project': v.get('project'), 'reclaim_at': v.get('reclaim_at'),
                     'reason': 'over this run\'s limit of %d; left for the next sweep' % limit} for dummy, v in over_limit]
    kept.sort(key=lambda pair: pair[1]['reclaim_at'])
    kept_out = [{'name': v['name'], 'uuid': v['uuid'], 'project': v.get('project'), 'deleted_at': v.get('deleted_at'),
                 'reclaim_at': v['reclaim_at'],
                 'expires_in': int((_record.parse_time(v['reclaim_at']) - now).total_seconds())} for dummy, v in kept]
    summary = dict(reclaimed=len(reclaimed), failed=len(failed), skipped=len(skipped_out), kept=len(kept_out),
                   pending=len(pending), finished=len(finished))
    for domain, why in anomalies:
        # Spec rule 1: never reclaimed, always reported - in the result, as a warning and in the journal.
        base.module.warn('vm_reclaim: %s skipped: %s' % (domain.name, why))
        ctx.event('instance.reclaim', domain, result='skipped', reason=why)
    for tomb in bad_tombs:
        base.module.warn('vm_reclaim: tombstone %s cannot be read: %s' % (tomb.get('uuid'), tomb['error']))
    pruned = _retention.prune(state, live, retention, project=project, check_mode=base.check_mode,
                              request_id=base.request_id)
    for error in pruned['errors']:
        base.module.warn('vm_reclaim: state_dir retention: %s' % error)
    base.finish(instances, 'vm_reclaim', retention=pruned, reclaimed=reclaimed, failed_domains=failed, skipped_domains=skipped_out,
                kept=kept_out, pending=pending, finished=finished, summary=summary)


if __name__ == '__main__':
    main()
