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

- name: Two domains, by name and by UUID
  deferred.libvirt.vm_info:
    name:
      - web01
      - 4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50

- name: Ad hoc, from the shell
  ansible.builtin.debug:
    msg: ansible hypervisors -m deferred.libvirt.vm_info -a "project=web"
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
    history:
      description: The last lifecycle actions (action, request_id, start, finish, result, message).
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
  returned: always
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
