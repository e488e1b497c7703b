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
    first, whatever its C(reclaim_at), since its deletion was already decided and its disks may be half gone; unless it
    is locked or protected, which the sweep (it has no C(force)) leaves to M(deferred.libvirt.vm_terminate).
  - A soft-deleted domain that someone started by hand is never destroyed by the sweep; it is skipped and reported
    (and counts against quota while it runs). Shut it down and the next sweep reclaims it when due, or restore it.
  - A tombstone of a domain terminated without Cinder options has never been checked against Cinder's own list of
    attachments. A sweep with Cinder options does that (and detaches what it finds); one without lists it in
    RV(cinder_unchecked), with a warning naming O(cinder). A fleet without Cinder declares O(cinder=false); the sweep
    then finishes those tombstones (and the retention prunes them), and refuses a domain or tombstone with volumes.
  - A Cinder configuration that does not work (an unknown O(cloud), missing or refused authentication, an unreachable
    Keystone) is found before anything is destroyed. The domains with volumes to settle are not reclaimed (each fails
    with the cloud and the reason, nothing changed), the domains without volumes are reclaimed and their tombstones
    wait for a sweep with a working Cinder (RV(cinder_unchecked)). Fix the configuration; the next sweep reclaims
    them.
  - One domain's failure never stops the sweep; the task fails after the sweep if any domain failed. Each domain
    the sweep acts on gets an C(instance.reclaim) event (result C(success), C(pending), C(error) or C(skipped)).
  - Usually run by the C(deferred.libvirt.reclaim) role or C(playbooks/reclaim.yml) on a timer.
extends_documentation_fragment:
  - deferred.libvirt.connection
  - deferred.libvirt.cinder
  - deferred.libvirt.lifecycle
  - deferred.libvirt.lifecycle.TERMINATE
  - deferred.libvirt.openstack
  - deferred.libvirt.fleet
  - deferred.libvirt.attributes
  - deferred.libvirt.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details: A dry run listing what would be reclaimed, and when every other soft-deleted domain expires.
  diff_mode:
    support: full
    details: Each reclaimed domain's lifecycle record before, and nothing after (it is gone).
options:
  project:
    description:
      - Sweep only this project's domains and tombstones.
    type: str
  limit:
    description:
      - Reclaim at most this many domains in this run, the longest expired first. The rest wait for the next run.
    type: int
  clock_tolerance:
    description:
      - How far a record's C(deleted_at) may lie in the future of this host's clock (another host's clock running
        ahead, or this one set back) before the sweep distrusts it. Such a domain is never reclaimed, only reported in
        RV(skipped_domains).
      - Seconds or a duration string such as V(5m).
    type: raw
    default: 300
  max_overdue:
    description:
      - The most a sweep may plausibly come after a domain's C(reclaim_at). A domain further overdue is taken as a
        sign that this host's clock jumped forward (a wrong RTC at boot, an NTP step) and is never reclaimed, only
        reported in RV(skipped_domains), since reclaim cannot be undone.
      - The limit for a domain is 24 of its own retention intervals (C(reclaim_at) minus C(deleted_at)), at least one
        day, and never more than this option. After checking the clock, run once with V(0) to turn the check off.
      - Seconds or a duration string such as V(30d).
    type: raw
    default: 30d
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
seealso:
  - module: deferred.libvirt.vm_soft_delete
    description: Soft delete domains, each with its reclaim_at.
  - module: deferred.libvirt.vm_terminate
    description: Terminate one domain now; the sweep does the same work per domain.
  - module: deferred.libvirt.vm_restore
    description: Restore a domain before the sweep reclaims it.
  - module: deferred.libvirt.vm_info
    description: What the next sweeps will reclaim, and when.
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

- name: Show it
  ansible.builtin.debug:
    msg: "would reclaim {{ dry.reclaimed | map(attribute='name') | join(', ') or 'nothing' }}; {{ dry.summary }}"

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
      unreadable C(deleted_at)/C(reclaim_at) or lifecycle record (rule 1 of docs/rules.md), protected, locked, another task in
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
finished_tombstones:
  description: Tombstones of domains terminated earlier whose pending work this sweep finished (name, uuid).
  returned: always
  type: list
  elements: dict
  version_added: 0.2.0
finished:
  description:
    - The same list as RV(finished_tombstones), under its earlier name. Deprecated, use RV(finished_tombstones).
    - On ansible-core 2.19 and later a registered result has a boolean here instead (Ansible reads a result's
      C(finished) as its async flag), so only ansible-core 2.16-2.18 see the list.
  returned: always
  type: raw
disks_pending:
  description:
    - Terminated domains (reclaimed now or earlier) whose disks are kept only because the fleet index was incomplete
      (another host could reach them and a host of the fleet did not report). They stay in the tombstone, which is not
      finished, until a sweep with a complete index deletes what is then safe.
    - Each item has name, uuid, project, disks (paths) and reason.
  type: list
  elements: dict
  returned: always
disks_settled:
  description: Terminated domains whose pending disks this sweep deleted (name, uuid, disks_deleted).
  type: list
  elements: dict
  returned: always
fleet:
  description:
    - What the sweep knew of the fleet - given (a O(fleet) slice was passed), complete (every host of the fleet
      reported, and every backing chain could be read), missing (the hosts that did not report) and gaps (why the
      index is incomplete, one line each - a host that did not report, a backing chain a host could not read). While
      it is incomplete no disk another host could reach is deleted and a Cinder attachment that is not this
      hypervisor's is never detached.
  type: dict
  returned: always
stale_undefined:
  description:
    - Stale copies of a domain (rule 9) whose definition alone this sweep removed (in check mode, would remove) - every
      copy was soft-deleted, expired and shut off and the authoritative copy is on another host, which reclaims the
      domain once. No disk, volume or attachment was touched. Not counted as reclaimed.
    - Each item has name, uuid, reason (why this copy is stale) and authoritative (the host of the authoritative copy).
  returned: always
  type: list
  elements: dict
tombstones_of_other_hosts:
  description:
    - Tombstones with work left (Cinder volumes or disks pending) that another hypervisor wrote, in a state_dir shared by
      several hosts. This sweep leaves them to that host and only lists them - name, uuid, project, terminated_at,
      host and host_uuid (the host the tombstone names), volumes_pending and disks_pending (how many).
    - When the host named has never run a sweep on this state_dir the result also warns. That is how a host that was
      renamed while libvirt made up a new host UUID (no SMBIOS UUID, no C(host_uuid) in libvirtd.conf) sees the
      tombstones it wrote under its earlier name; giving libvirtd that host UUID again, or the hostname back, lets the
      next sweep finish them (docs/lifecycle.md).
  returned: always
  type: list
  elements: dict
  version_added: 0.2.0
cinder_unchecked:
  description:
    - Tombstones of domains terminated without Cinder options that Cinder has not been asked about yet (name, uuid,
      terminated_at). A sweep with Cinder options checks them; a sweep with O(cinder=false) finishes them.
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
  description:
    - Counts of reclaimed, failed, skipped, kept, pending (Cinder work) and finished, and disks_pending (terminated
      domains with disks kept while the fleet index was incomplete).
  returned: always
  type: dict
  sample: {reclaimed: 2, failed: 0, skipped: 1, kept: 4, pending: 0, finished: 0, disks_pending: 0}
request_id:
  description: The id of this sweep, as in the event journal.
  returned: always
  type: str
clock:
  description:
    - Rule 11 against the boot clock. Each sweep records in the state_dir's C(clock.json), beside the wall time, the
      host's C(CLOCK_BOOTTIME) and boot id. Within one boot, a wall clock that advanced more than the boot clock by more
      than O(clock_tolerance) was stepped forward (V(stepped_forward)), and nothing is reclaimed (each due domain is in
      RV(skipped_domains) with the reason, a warning and a C(reclaim.clock) journal event say by how much) until the
      clock is fixed or one sweep runs with O(max_overdue=0). Stepped back (V(stepped_back)) is reported only.
    - After a reboot the kernel's synchronised flag decides - V(rebooted) (synchronised, the overdue rule still
      applies), V(rebooted_unsynchronised) (nothing reclaimed), V(rebooted_unknown) (flag unreadable, said; overdue rule only).
      V(first) when there was no earlier sweep, V(ok) otherwise.
  returned: always
  type: dict
  sample: {state: stepped_forward, step_seconds: 860400, blocks: true, message: "the wall clock advanced 10d ..."}
started_at:
  description: When this sweep started on the host (UTC ISO 8601); the deferred.libvirt.reclaim role records it.
  returned: always
  type: str
finished_at:
  description: When this sweep finished on the host (UTC ISO 8601).
  returned: always
  type: str
duration_seconds:
  description: How long this sweep took on the host, in seconds.
  returned: always
  type: float
'''

from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils._module import LifecycleModule


def main():
    LifecycleModule(reclaim.ARGUMENT_SPEC).run(reclaim)


if __name__ == '__main__':
    main()
