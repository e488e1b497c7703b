#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_terminate
short_description: Terminate (force delete) libvirt domains and clean up their Cinder volumes
version_added: 0.1.0
description:
  - Deletes each selected domain for good, in any state (Nova's force delete), in this order
    - set C(task_state=deleting), write a tombstone in O(state_dir) with every volume still to handle,
    destroy the domain (a clean shutdown first only when O(shutdown_timeout) is given), delete the local disks it
    owns (volumes of libvirt storage pools, files under O(instance_dirs)), undefine it with every flag its definition
    needs (managed save, snapshot and checkpoint metadata, NVRAM, TPM), then detach its Cinder volumes and delete
    those marked C(delete_on_termination), waiting until they are gone.
  - Disks it does not own (outside O(instance_dirs), symbolic links pointing out of them, disks shared with another
    domain or serving as the qcow2 backing file of another domain's disk, block devices that are not pool volumes,
    network disks, CD-ROMs, read-only and shareable disks) are left in place and reported in
    RV(instances[].disks_kept) with the reason.
  - Volumes are those in the lifecycle record plus any Cinder says are attached to the domain's UUID; volumes only
    Cinder knows about are detached and kept. A volume marked C(delete_on_termination) that is still attached to
    another server after the detach is kept, not deleted, and reported.
  - Without O(cloud) or O(auth), Cinder is not asked; the record's volumes stay pending in the tombstone, and a
    domain without any waits there for a run with Cinder (its tombstone is not complete, and the result warns, naming
    O(cinder)). A fleet without Cinder declares O(cinder=false); a domain without volumes then finishes at once, and one
    whose record lists volumes is refused, nothing changed.
  - Before anything is destroyed, a domain with volumes to settle (in its record, or left pending by an earlier
    terminate of the same UUID) needs a Cinder configuration that works, checked once per run. An unknown O(cloud),
    missing or refused authentication, an unreachable Keystone or no block-storage endpoint refuses that domain, with
    the cloud and the reason, and nothing is changed (not shut down, no disk deleted). A domain without volumes to
    settle is terminated, and Cinder's look at its attachments waits in the tombstone, with a warning.
  - Cinder secrets (O(auth), the token or password in a O(cloud) dict or in C(clouds.yaml)) are masked in the results
    and never written to the tombstones or the event journal.
  - If Cinder itself does not answer (down, overloaded), or refuses a volume once the terminate is under way, the domain
    is still terminated; the pending detach and delete stay in the tombstone,
    the result lists them in RV(instances[].volumes_pending) with a warning, and the next run of this module for the same name or
    the next M(deferred.libvirt.vm_reclaim) finishes them. No volume is forgotten.
  - A domain that is already gone is V(changed=false) (pending Cinder work in its tombstone is retried).
extends_documentation_fragment:
  - deferred.libvirt.connection
  - deferred.libvirt.cinder
  - deferred.libvirt.connection.SELECTION
  - deferred.libvirt.lifecycle
  - deferred.libvirt.lifecycle.FORCE
  - deferred.libvirt.lifecycle.TERMINATE
  - deferred.libvirt.openstack
  - deferred.libvirt.fleet
  - deferred.libvirt.attributes
  - deferred.libvirt.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details: Lists what would be destroyed, deleted, detached and kept.
  diff_mode:
    support: full
options:
  name:
    description:
      - The domains to terminate, by name or UUID; one or a list. Names of domains already terminated (with a
        tombstone) are accepted.
      - A name that matches no domain is an error, and so is a domain of another O(project); nothing is changed then.
      - Mutually exclusive with O(query); one of O(name) and O(query) is required.
  shutdown_timeout:
    description:
      - Try a clean ACPI shutdown for this long before destroying. Not set means destroy at once.
    type: raw
  shutdown_retry_interval:
    description:
      - How often to re-send the ACPI shutdown while waiting.
    type: raw
    default: 10
seealso:
  - module: deferred.libvirt.vm_soft_delete
    description: Soft delete instead, recoverable until the reclaim_at.
  - module: deferred.libvirt.vm_reclaim
    description: The sweep that terminates expired soft-deleted domains and finishes pending Cinder work.
  - module: deferred.libvirt.vm_attributes
    description: Record the Cinder volumes a terminate detaches or deletes.
author:
  - deferred.libvirt developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Terminate a guest and clean up its Cinder volumes
  deferred.libvirt.vm_terminate:
    name: db01
    cloud: mycloud

- name: What would terminating project ci's trash remove?
  deferred.libvirt.vm_terminate:
    project: ci
    query: "[?vm_state=='soft_deleted']"
    cloud: mycloud
  check_mode: true
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
    changed: {description: Whether anything was (or would be) done., type: bool}
    failed: {description: Whether this domain failed., type: bool}
    msg: {description: Why it failed., type: str}
    action:
      description: "V(terminated), V(none), V(pending_finished), V(would_terminate) or V(would_finish_pending)."
      type: str
    clean_shutdown: {description: Whether the guest shut down by itself (only with O(shutdown_timeout))., type: bool}
    would_destroy: {description: "Check mode only: whether the domain runs and would be destroyed.", type: bool}
    disks_deleted: {description: Real paths of the local disks deleted (or that would be)., type: list, elements: str}
    disks_kept:
      description:
        - Disks left in place, each with C(target), C(path), C(real_path) and the C(reason) (outside O(instance_dirs),
          shared with or the backing file of another domain's disk, read-only, CD-ROM, network or block device).
        - C(kept_for_now=true) marks a disk kept because another host could reach it and no complete fleet index
          (O(fleet)) vouched that none uses it; a network or cluster filesystem (by its mount type, such as nfs, cifs, ceph,
          fuse.sshfs, ...), a shared or network pool's volume, a shareable disk, and while the index is incomplete a
          bind-mounted directory too. Local disks are still deleted. See docs/lifecycle.md "Fleets".
        - The domain's NVRAM file, when another domain or another copy of this one may still name it, is listed here
          with C(target=nvram); the undefine then asks for C(VIR_DOMAIN_UNDEFINE_KEEP_NVRAM) instead of deleting it
          (rule 10).
      type: list
      elements: dict
    undefine_flags:
      description: The libvirt undefine flags used (or that would be), by their C(VIR_DOMAIN_UNDEFINE_*) names.
      type: list
      elements: str
    volumes_detached: {description: Cinder volumes detached., type: list, elements: str}
    volumes_deleted: {description: Cinder volumes deleted (delete_on_termination)., type: list, elements: str}
    volumes_kept:
      description: Cinder volumes detached and kept, those only Cinder knew were attached included.
      type: list
      elements: str
    seconds: {description: How long the terminate of this domain took., type: float}
    cinder_seconds: {description: "How long the Cinder part (listing, detaching, deleting, waiting) took.", type: float}
    volumes_pending:
      description: Cinder work that could not be done now, kept in the tombstone for the next reclaim (id, error).
      type: list
      elements: dict
    volumes_held:
      description:
        - Why the volumes wait, neither detached nor deleted - a copy of the domain on another host lists them, or the
          fleet index is incomplete or was not given on a host of a fleet. Absent when nothing waits.
      type: str
      returned: when the volumes wait
    warnings: {description: Warnings for this domain., type: list, elements: str}
request_id:
  description: The id of this request, as in the event journal and the tombstones.
  returned: always
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate
from ansible_collections.deferred.libvirt.plugins.module_utils._module import LifecycleModule


def main():
    LifecycleModule(terminate.ARGUMENT_SPEC, require_selection=True).run(terminate)


if __name__ == '__main__':
    main()
