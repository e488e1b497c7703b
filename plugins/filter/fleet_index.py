# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet_index filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_index
version_added: 0.1.0
short_description: Who holds each domain and who uses each disk, over every hypervisor of the play
description:
- Built once per play on the control node from the registered M(deferred.libvirt.vm_info) result of every host (the C(deferred.libvirt.state_facts)
  role registers it), in one pass over every record.
- Rule 9, one authoritative copy per domain. Where one UUID is defined on several hosts (a migration with C(--persistent)
  but no C(--undefinesource), a definition copied from a dead host), a copy that runs wins (two that run are a conflict);
  otherwise the copy whose record names its own host (newest generation first); if none does, the newest generation. A tie
  has no winner. Every other copy is stale, reported with where the others live. A single copy whose record names a host that
  is not in the play is stale too - the copy there cannot be ruled out.
- With no authoritative copy (a tie, or two copies that run) every copy is stale, so the sweep neither reclaims nor undefines
  any of them; an operator settles it (with M(deferred.libvirt.vm_terminate) C(force), or M(deferred.libvirt.vm_attributes)).
- Two inventory names for one hypervisor (both report the same host UUID, the same hostname and the same domains) are
  indexed once, under the first name; the second is listed in C(aliases) and gets the same slice. A shared identity with
  other domains (hosts cloned with one C(host_uuid)) is not merged.
- Rule 10, shared storage. Every disk is indexed by its path, its pool volume and, where vm_info reports them, the device
  and inode of its file; a disk that two domains reference (on one host or two) is listed with all of them.
- A host that did not report makes the index incomplete (C(complete) false) - then neither rule can be decided for the fleet,
  and an operation must not delete shared storage on its strength.
positional: _input, hosts
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts that should have reported (the whole fleet for a sweep); those without a successful result are
      listed in C(missing).
    type: list
    elements: str
    required: true
  result_var:
    description: The name of the registered vm_info result on each host.
    type: str
    default: state_facts_vm_info
  identities:
    description:
    - Inventory host -> C({uuid, hostname}) of its hypervisor, for vm_info results that do not carry C(hypervisor). Without
      either, a record's host is matched by hostname against the inventory name.
    type: dict
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: Index the fleet once, after vm_info ran on every host
  ansible.builtin.set_fact:
    fleet_index: "{{ hostvars | deferred.libvirt.fleet_index(ansible_play_hosts_all) }}"
  run_once: true

- name: Show stale copies and shared disks
  ansible.builtin.debug:
    msg: "{{ fleet_index.lines }}"
  run_once: true
'''

RETURN = r'''
_value:
  description:
  - C(domains) (per UUID - C(copies), each with C(host), C(name), C(vm_state), C(power_state), C(task_state), C(generation),
    C(record_host), C(names_own_host); C(authoritative) (the inventory host of the authoritative copy, null when there is
    none); C(why); C(stale)).
  - C(stale) (every stale copy - C(host), C(name), C(uuid), C(reason), C(authoritative), C(others), C(record_host)), C(conflicts)
    (UUIDs with no authoritative copy), C(disks) (disk identity -> every C(host), C(name), C(uuid), C(target), C(path) referencing
    it), C(shared_disks) (the disks referenced by more than one domain).
  - C(hosts) (per inventory host - C(hypervisor), C(stale) (UUID -> its stale copy there), C(shared_disks) (disk identity
    -> the other domains referencing it), C(complete), and C(alias_of) for a second name of an indexed hypervisor), C(aliases)
    (second inventory name -> the name it was indexed under), C(missing) (host -> why it did not report), C(complete) and
    C(lines) (a summary to print).
  type: dict
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_index import fleet_index
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'fleet_index': fleet_index})
