#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_restore
short_description: Bring soft-deleted libvirt domains back to running
version_added: 0.1.0
description:
  - Restores each selected soft-deleted domain, as Nova's restore does, but safely.
  - First the whole batch is checked against O(quota) (per project V(instances), V(cores), V(ram_mb)); over quota fails
    before anything changes, naming project, resource, limit, usage and request.
  - Then, per domain under its lock, a hard reboot like the libvirt driver's C(_hard_reboot) - destroy if running,
    start every network and storage pool the domain uses, check that every disk, backing and boot file exists and
    that no running domain of the host writes to a disk it writes to (QEMU would refuse the boot on its image lock;
    the error names that domain), start, and wait until V(running) for at most O(start_timeout) (Nova waits
    forever) - and the domain is V(active) again with C(deleted_at) and C(reclaim_at) cleared.
  - A domain soft-deleted with C(mode=managed_save) resumes where it was, unless O(hard_reboot=true).
  - A start that QEMU refuses on its image lock (another process holds a disk, such as a guest on another host that
    shares the storage) fails saying so, and keeps any saved memory; only a saved image that cannot be loaded for
    another reason points to O(hard_reboot=true).
  - Any failure once the work has started leaves the domain V(soft_deleted), shut off, with its original C(deleted_at)
    and C(reclaim_at) and the error in its history, so it is neither active-but-broken nor reclaimed early.
  - An C(active) domain is left alone (V(changed=false)). A domain left in C(task_state=restoring) by an interrupted
    run is finished (or rolled back) by running the module again.
  - Rule 9, one authoritative copy per domain. A stale copy - its lifecycle record names another host, or O(fleet) says
    another copy of the same UUID is authoritative or runs - is refused without O(force), with the reason and where
    the other copy lives (two copies of one domain running write the same disks). With O(force=true) it is restored,
    and the result (RV(instances[].overrode)) and a warning say what was overridden.
  - A named domain that is no longer on this hypervisor because it was reclaimed or terminated (its tombstone is in
    C(state_dir)) fails the task with nothing changed, saying what became of it - reclaimed or terminated, when, by
    which request and actor, when it had been soft-deleted and by whom, and which disks and volumes were deleted, kept
    and are still pending - instead of only C(no domain named); RV(terminated) holds the same as structured keys.
extends_documentation_fragment:
  - deferred.libvirt.connection
  - deferred.libvirt.cinder
  - deferred.libvirt.connection.SELECTION
  - deferred.libvirt.lifecycle
  - deferred.libvirt.lifecycle.FORCE
  - deferred.libvirt.fleet
  - deferred.libvirt.attributes
  - deferred.libvirt.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details: Checks quota and states and reports which domains would be restored.
  diff_mode:
    support: full
options:
  name:
    description:
      - The soft-deleted domains to restore, by name or UUID; one or a list.
      - A name that matches no domain is an error, and so is a domain of another O(project); nothing is changed then.
      - Mutually exclusive with O(query); one of O(name) and O(query) is required.
  quota:
    description:
      - 'Per-project limits, C({project: {instances: N, cores: N, ram_mb: N}}); V(-1) is unlimited, a missing resource
        is unlimited, and a V(default) entry applies to projects not listed (and to domains with no project); a listed
        project entry is used alone. No quota, no check.'
      - The whole batch is checked at once, so domains that fit one at a time can be refused together.
    type: dict
  usage:
    description:
      - 'Current usage per project, C({project: {instances: N, cores: N, ram_mb: N}}), as the C(deferred.libvirt.quota)
        role computes it across the fleet. Without it, the usage of the domains on this hypervisor is used (soft-deleted
        domains do not count).'
    type: dict
  start_timeout:
    description:
      - How long to wait for the domain to be V(running) after starting it. Seconds or a duration string.
    type: raw
    default: 300
  hard_reboot:
    description:
      - Discard a managed-save image and boot the guest fresh instead of resuming it.
    type: bool
    default: false
  move_from:
    description:
      - Restore onto this host a soft-deleted domain that another host holds now. The libvirt URI of that host, as
        seen from this one (for example V(qemu+ssh://hv2/system)). O(name) is required.
      - Every disk and boot file of the domain must exist here at the same path (shared storage), or nothing changes
        and the ones this host cannot see are named. That they are the same files is checked by the C(restore)
        playbook, which sees both hosts (inode, size and modification time).
      - Every pool volume must be the same volume on both hosts (the same path, size and modification time), every
        backing file of every disk, the NVRAM file and an emulated TPM's state must be here too.
      - The move is serialised with the other host (rule 4 across hosts). Its record first goes to task_state
        C(moving) by a compare-and-set (done under that host's lock by O(move_to) run there first, as the C(restore)
        playbook does; ad hoc, through its libvirt connection), so its sweep, restores and terminates leave it alone.
        The domain is then defined here with its lifecycle record, undefined on the other host (its NVRAM and TPM
        state kept), its record here stamped with this host (so this copy is the authoritative one), and restored
        here. Saved memory cannot move along, so a domain soft-deleted with managed save needs O(hard_reboot=true).
      - Each domain moves on its own. A failed move is that domain's failure (the others are still tried), and a
        failure before the other host's definition is gone removes the definition made here and puts the domain
        back to idle there, so it is never startable on two hosts. An interrupted move (task_state C(moving)) is
        finished by running the same task again.
    type: str
  move_to:
    description:
      - The first step of a restore onto another host, run on the host that holds the domain now (the C(restore)
        playbook runs it before O(move_from) on the target). Marks the selected idle soft-deleted domains as
        C(moving) to this host name (the target's hostname as its libvirt reports it) under this host's per-domain
        lock, with a compare-and-set on task_state; nothing else changes. From then on the sweep here skips them
        and only O(move_from) on that host takes them.
      - Running it again for the same target changes nothing; a domain being moved to another host is refused.
        O(name) is required; not together with O(move_from).
    type: str
seealso:
  - module: deferred.libvirt.vm_soft_delete
    description: Soft delete a domain; it stays recoverable until its reclaim_at.
  - module: deferred.libvirt.vm_info
    description: What is in the trash, and when each domain is reclaimed.
  - module: deferred.libvirt.vm_reclaim
    description: The sweep a restore is serialised with.
author:
  - deferred.libvirt developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Restore a guest
  deferred.libvirt.vm_restore:
    name: web01

- name: Restore a project's trash within its quota
  deferred.libvirt.vm_restore:
    project: web
    query: "[?vm_state=='soft_deleted']"
    quota:
      web: {instances: 10, cores: 20, ram_mb: 32768}
      default: {instances: 5, cores: 10, ram_mb: 8192}

- name: Restore with the fleet view, so a stale copy of a domain is refused (playbooks/restore.yml does this)
  deferred.libvirt.vm_restore:
    name: web01
    fleet: "{{ state_facts_index | deferred.libvirt.fleet_index_for(inventory_hostname) }}"

- name: Boot fresh, throwing away the saved memory
  deferred.libvirt.vm_restore:
    name: web01
    hard_reboot: true
'''

RETURN = r'''
instances:
  description: One result per selected domain.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Domain name., type: str}
    uuid: {description: Domain UUID., type: str}
    changed: {description: Whether the domain was (or would be) restored., type: bool}
    failed: {description: Whether this domain failed; it is then still soft-deleted with its original timestamps., type: bool}
    msg: {description: Why it failed., type: str}
    action: {description: "V(restored), V(none) or V(would_restore).", type: str}
    resumed: {description: Whether this run finished an interrupted restore., type: bool}
    resumed_saved_memory: {description: Whether the guest resumed from a managed-save image., type: bool}
    networks_started: {description: Networks that were inactive and were started., type: list, elements: str}
    pools_started: {description: Storage pools that were inactive and were started., type: list, elements: str}
    boot_seconds: {description: From start until running., type: float}
    seconds: {description: The whole restore of this domain., type: float}
    record: {description: The lifecycle record after., type: dict}
    overrode:
      description: The rule 9 reason O(force=true) overrode to restore this stale copy; absent for an authoritative copy.
      type: str
    authoritative: {description: "With RV(instances[].overrode): the host of the authoritative copy, if any.", type: str}
quota:
  description:
    - The quota check of the batch, per project of the batch - C(request) (what the restore adds), C(usage)
      (before it) - and C(over), the overruns (project, resource, limit, usage, request).
  returned: when O(quota) is given
  type: dict
request_id:
  description: The id of this request, as in the event journal.
  returned: always
  type: str
terminated:
  description:
    - The named domains that were reclaimed or terminated, one per domain, when the task failed because of them
      (nothing was changed). Read from each domain's tombstone; actors missing from it are read from the event journal.
  returned: when a named domain was reclaimed or terminated
  type: list
  elements: dict
  contains:
    name: {description: Domain name., type: str}
    uuid: {description: Domain UUID., type: str}
    project: {description: "Its project, if it had one.", type: str}
    how:
      description: V(reclaimed) (by the reclaim sweep, after its C(reclaim_at)) or V(terminated) (vm_terminate, or a
        soft delete with C(reclaim_interval=0)).
      type: str
    action: {description: "The history action of the terminate (V(reclaim), V(terminate), ...), if recorded.", type: str}
    status: {description: "The tombstone's status: V(deleting) (interrupted), V(undefined) or V(terminated).", type: str}
    terminated_at: {description: When it was undefined (UTC ISO 8601)., type: str}
    started_at: {description: When the terminate began (UTC ISO 8601)., type: str}
    request_id: {description: "The request that terminated it, as in the event journal.", type: str}
    actor: {description: "Who ran that request (C(DEFERRED_LIBVIRT_ACTOR) or the OS user); null when not recorded.", type: str}
    deleted_at: {description: When it had been soft-deleted (UTC ISO 8601); null if it never was., type: str}
    reclaim_at: {description: When its soft delete made it due for reclaim (UTC ISO 8601)., type: str}
    soft_delete_request_id: {description: "The request that soft-deleted it, from its history.", type: str}
    soft_delete_actor: {description: Who ran that soft delete; null when the journal no longer says., type: str}
    disks_deleted: {description: The disks deleted with it., type: list, elements: str}
    disks_kept:
      description: The disks kept (not owned by it, or in use elsewhere), each with C(path) and C(reason).
      type: list
      elements: dict
    disks_pending: {description: "Disks kept for now, which a later sweep with a complete fleet index deletes if safe.", type: list, elements: str}
    volumes_deleted: {description: Cinder volumes deleted., type: list, elements: str}
    volumes_detached: {description: Cinder volumes detached and kept., type: list, elements: str}
    volumes_kept: {description: Cinder volumes left attached where another host holds them., type: list, elements: str}
    volumes_pending: {description: Cinder volumes whose work is still pending (the next sweep finishes it)., type: list, elements: str}
    cinder_checked: {description: Whether Cinder was asked about its volumes., type: bool}
    msg: {description: The same in one sentence., type: str}
'''

from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _restore as restore
from ansible_collections.deferred.libvirt.plugins.module_utils._module import LifecycleModule


def main():
    LifecycleModule(restore.ARGUMENT_SPEC, require_selection=True).run(restore)


if __name__ == '__main__':
    main()
