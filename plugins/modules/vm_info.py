#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_info
short_description: Report the lifecycle record of libvirt domains
version_added: 0.1.0
description:
  - Reads the lifecycle record (vm_state, task_state, deleted_at, reclaim_at, owner, guards, volumes, disks, history)
    of each selected domain from its libvirt metadata and reports it, with per-project quota usage.
  - A domain with no record is reported as unmanaged, its vm_state derived from libvirt's power state.
  - With O(include_deleted), terminated domains are reported too, from their tombstones in O(state_dir).
  - Changes nothing. The results are also returned as facts.
  - A O(query) that gives something other than records, names or UUIDs (a projection such as V([].[name, reclaim_at]),
    or a count such as V(length(@))) is answered with its result in RV(query_result); the modules that change domains
    refuse such a query. The O(project) scope applies first, so a projection sees that project's records only.
  - Reads every domain with a fixed number of libvirt calls (one stats call for the whole host and one XML read per
    domain), so it answers quickly on hosts with many domains.
extends_documentation_fragment:
  - deferred.libvirt.connection
  - deferred.libvirt.cinder
  - deferred.libvirt.connection.SELECTION
  - deferred.libvirt.attributes
  - deferred.libvirt.attributes.READONLY
  - deferred.libvirt.attributes.ACTIONGROUP
options:
  include_deleted:
    description:
      - Also report terminated domains (vm_state V(deleted)) from the tombstones in O(state_dir), with any volume work
        still pending.
    type: bool
    default: false
  fields:
    description:
      - Return only these keys of each domain (a projection), for example V([name, project, reclaim_at, disk_bytes]);
        by default every key.
      - Applied after the selection (O(query) sees whole records) and to the facts too; RV(usage) is still of the
        whole records. Keys a domain does not carry (V(terminated_at) of a live domain) are null.
      - An unknown field is refused with the list of valid ones, and nothing is read.
      - The backing chains of the disks are read only when V(disks) or V(disk_bytes) is asked for.
    type: list
    elements: str
    version_added: 0.2.0
  facts:
    description:
      - Also return the records and the usage as the host's facts RV(ansible_facts.deferred_libvirt_instances) and
        RV(ansible_facts.deferred_libvirt_usage).
      - V(false) leaves them out. A task that registers the result then holds each record once, not twice (the
        state_facts role with C(state_facts_index_only), the fleet workflow's gather), and the facts of an earlier run
        are left as they were.
    type: bool
    default: true
    version_added: 0.2.0
seealso:
  - module: deferred.libvirt.vm_attributes
    description: Set the owner, guards and durations that vm_info reports.
  - module: deferred.libvirt.vm_soft_delete
    description: Soft delete the domains vm_info lists.
  - module: deferred.libvirt.vm_restore
    description: Bring a soft-deleted domain back before its reclaim_at.
author:
  - deferred.libvirt developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Everything on the hypervisor
  deferred.libvirt.vm_info:
  register: info

- name: The trash of one project
  deferred.libvirt.vm_info:
    project: web
    query: "[?vm_state=='soft_deleted']"

- name: Name, project and time of reclaim of each domain in the trash, and the space a reclaim frees
  deferred.libvirt.vm_info:
    query: "[?vm_state=='soft_deleted']"
    fields: [name, project, user, reclaim_at, disk_bytes]

- name: The same as pairs, with a JMESPath projection (returned in query_result)
  deferred.libvirt.vm_info:
    query: "[?vm_state=='soft_deleted'].[name, reclaim_at]"

- name: Two domains, by name and by UUID
  deferred.libvirt.vm_info:
    name:
      - web01
      - 4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50

- name: When each soft-deleted domain of project web is reclaimed
  ansible.builtin.debug:
    msg: "{{ item.name }} is reclaimed at {{ item.reclaim_at }}"
  loop: "{{ info.instances | selectattr('vm_state', 'equalto', 'soft_deleted') | selectattr('project', 'equalto', 'web') }}"

# Ad hoc, from the shell:
#   ansible hypervisors -m deferred.libvirt.vm_info -a "project=web"
'''

RETURN = r'''
instances:
  description: One lifecycle record per selected domain.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Domain name., type: str, returned: always, sample: web01}
    uuid: {description: Domain UUID., type: str, returned: always, sample: 4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50}
    managed: {description: Whether the domain has a lifecycle record., type: bool, returned: always}
    persistent: {description: Whether the domain is defined (not transient)., type: bool, returned: always}
    vm_state:
      description:
        - V(active), V(stopped), V(paused), V(soft_deleted), V(error), or V(deleted) for tombstones.
        - Unless soft-deleted or deleted, derived from libvirt's power state. V(error) also when the record is malformed.
      type: str
      returned: always
      sample: soft_deleted
    task_state:
      description: V(soft_deleting), V(restoring) or V(deleting) while (or if interrupted while) an operation works; else null.
      type: str
      returned: always
    power_state: {description: "libvirt's power state: running, shutoff, paused, crashed, ...", type: str, returned: always}
    managed_save: {description: Whether the domain has a managed-save image., type: bool, returned: always}
    deleted_at: {description: When it was soft-deleted (UTC ISO 8601)., type: str, returned: always}
    reclaim_at: {description: "When the reclaim sweep may terminate it (UTC ISO 8601), fixed at soft-delete time.", type: str, returned: always}
    soft_delete_mode: {description: "How it was soft-deleted, V(shutdown) or V(managed_save).", type: str, returned: always}
    project: {description: Owning project., type: str, returned: always}
    user: {description: Owning user., type: str, returned: always}
    vcpus: {description: "Virtual CPUs, counted as cores for quota.", type: int, returned: always}
    memory_mb: {description: "Memory in MiB, counted as ram_mb for quota.", type: int, returned: always}
    locked: {description: Whether the domain is locked against lifecycle operations (V(force) passes)., type: bool, returned: always}
    lock_reason: {description: Why it is locked., type: str, returned: always}
    protected: {description: Whether the domain is protected; nothing deletes it., type: bool, returned: always}
    reclaim_interval: {description: "The domain's own retention in seconds, when set.", type: int, returned: always}
    shutdown_timeout: {description: "The domain's own shutdown timeout in seconds, when set.", type: int, returned: always}
    generation:
      description:
        - How many times the record was written (one more with every write); null for a domain never managed.
        - Of two copies of one domain on two hosts (a migration with C(--persistent) but no C(--undefinesource)),
          the one with the larger generation was changed last.
      type: int
      returned: always
    host:
      description: The hypervisor that last wrote the record; null for a domain never managed.
      type: dict
      returned: always
      contains:
        uuid: {description: "libvirt's host UUID (C(host_uuid) of libvirtd.conf, else the SMBIOS one); null where libvirt knows none.", type: str}
        hostname: {description: "The hypervisor's hostname as libvirt reports it.", type: str}
    volumes:
      description: Cinder volumes of the domain.
      type: list
      elements: dict
      returned: always
      contains:
        id: {description: Cinder volume id., type: str}
        target: {description: Target device in the guest., type: str}
        delete_on_termination: {description: Whether terminate deletes the volume., type: bool}
    disks:
      description:
        - Local disks from the domain definition (target, device, type, path, pool, volume).
        - The domain's NVRAM file (UEFI variables), when its definition names one, is listed too, with target and
          device C(nvram), since the fleet index keeps a file any domain names, its NVRAM file included (rule 10). It
          never counts in RV(instances[].disk_bytes).
        - C(st_dev) and C(st_ino), the device and inode of a file or block disk (or the file a pool volume resolves
          to) that exists on this host (null otherwise), let the fleet index tell one file under two paths apart
          (rule 10).
        - Of a live domain, each disk's backing chain, read from the image headers (one small read per file), so the
          fleet index keeps every file any domain of the fleet reaches, as a disk or a backing file (rule 10).
          Tombstones (O(include_deleted)) and the results of the other modules do not carry it.
      type: list
      elements: dict
      returned: always
      contains:
        allocated_bytes:
          description:
            - The bytes the disk takes on this host (the blocks a file has allocated, so a sparse or thin image counts
              what it holds; the size of a block device; a pool volume by the file or device it resolves to); null
              when it cannot be read (a network disk, a file that is gone).
          type: int
          returned: always
          sample: 1073741824
        counts_on_disk:
          description: Whether the disk counts in RV(instances[].disk_bytes) (a writable disk, not a CD-ROM, floppy, read-only or shareable one).
          type: bool
          returned: always
        file_path:
          description: The file the disk opens on this host; for a pool volume, the file its pool resolves it to.
          type: str
          returned: for live domains
        backing_chain:
          description:
            - Every file the disk opens behind its top image, in the order QEMU opens them (at most 16; a deeper
              chain is reported in RV(instances[].disks[].backing_chain_error)). A relative backing name is
              resolved against the directory of the image naming it, a C(json:) name to the file it opens; a
              protocol (C(nbd:), C(rbd:)) ends the chain.
            - Null for a disk that is no file on this host (a network disk, an empty CD-ROM, a pool that cannot be
              read).
          type: list
          elements: dict
          returned: for live domains
          contains:
            path: {description: "The backing file as QEMU opens it.", type: str}
            format: {description: "C(qcow2) or C(raw) as read from its header; null when it cannot be opened.", type: str}
            st_dev: {description: "Its device number; null when it cannot be stat'ed (a backing file that is gone).", type: int}
            st_ino: {description: "Its inode number; null when it cannot be stat'ed.", type: int}
          sample: [{path: /srv/shared-images/golden.qcow2, format: qcow2, st_dev: 64768, st_ino: 1835010}]
        backing_chain_error:
          description:
            - Why the chain (beyond what RV(instances[].disks[].backing_chain) lists) cannot be read, or null. An
              unreadable image, a backing name that cannot be parsed, a format whose backing file is not read
              (qed, vmdk), a chain deeper than 16 images or a pool volume that cannot be resolved is reported. What such a chain
              reaches is unknown; the host's own terminate keeps what it might be.
          type: str
          returned: for live domains
    disk_bytes:
      description:
        - The allocated bytes of the domain's writable disks (RV(instances[].disks[].allocated_bytes) of those that
          count), the space its reclaim gives back at most. A disk outside O(deferred.libvirt.vm_terminate#module:instance_dirs),
          shared with another domain or behind another domain's disk is kept by the terminate, so frees nothing.
        - Cinder volumes are not counted (their size is Cinder's). Null when no disk could be read, and for tombstones.
      type: int
      returned: always
      sample: 2147483648
    history:
      description: The last lifecycle actions (action, request_id, start, finish, result, message; actor, who ran a soft delete, as the journal names it).
      type: list
      elements: dict
      returned: always
    metadata_error: {description: "Why the lifecycle record could not be read, when it could not.", type: str, returned: always}
    terminated_at: {description: "When the domain was terminated (UTC ISO 8601).", type: str, returned: for tombstones (O(include_deleted))}
    volumes_pending:
      description: Cinder work a terminate could not finish yet (detach or delete); the next reclaim finishes it.
      type: list
      elements: dict
      returned: for tombstones (O(include_deleted))
    disks_pending:
      description:
        - Disks a terminate kept only because the fleet index was incomplete (a host of the fleet did not report and
          another host could reach them); the next vm_reclaim sweep with a complete fleet index deletes what is then
          safe. Each has target, path, real_path and the reason it was kept.
      type: list
      elements: dict
      returned: for tombstones (O(include_deleted))
    anomalies:
      description: What makes a soft-deleted record unsafe to reclaim (for example a missing reclaim_at); such domains are never reclaimed.
      type: list
      elements: str
      returned: always
query_result:
  description:
    - What O(query) gives, as JMESPath gives it, when that is not a list of domain records, names or UUIDs (a
      projection, a count); RV(instances) is then empty.
  returned: when O(query) projects
  type: raw
  sample: [[web01, "2024-05-16T09:30:00Z"], [web02, "2024-05-17T11:00:00Z"]]
usage:
  description: Per project, the instances, cores and ram_mb of its domains that count for quota (soft-deleted ones do not). Of the selected domains.
  returned: always
  type: dict
  sample: {web: {instances: 2, cores: 2, ram_mb: 256}}
hypervisor:
  description:
    - The hypervisor that answered, as a record's RV(instances[].host) names it, so the fleet index can tell a copy whose
      record names its own host from one whose record names another.
  returned: always
  type: dict
  contains:
    uuid: {description: "libvirt's host UUID; null where libvirt knows none.", type: str}
    hostname: {description: "The hypervisor's hostname as libvirt reports it.", type: str}
ansible_facts:
  description: The same data as facts.
  returned: unless O(facts=false)
  type: dict
  contains:
    deferred_libvirt_instances: {description: Same as RV(instances)., type: list, elements: dict, returned: always}
    deferred_libvirt_usage: {description: Same as RV(usage)., type: dict, returned: always}
'''

from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _info as info
from ansible_collections.deferred.libvirt.plugins.module_utils._module import LifecycleModule


def main():
    LifecycleModule(info.ARGUMENT_SPEC, needs_state_dir=False).run(info)


if __name__ == '__main__':
    main()
