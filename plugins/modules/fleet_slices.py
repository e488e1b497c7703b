#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet_slices: documentation only; the action plugin plugins/action/fleet_slices.py does the work on the control node."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: fleet_slices
version_added: 0.1.0
short_description: Build the fleet index once and hand each host its own slice in a file
description:
- Runs on the control node, once (use C(run_once=true)). Reads each fleet host's vm_info result or cached fleet record
  (O(var)) with one access per host, builds the fleet index (rules 9 and 10 of docs/rules.md) as
  C(deferred.libvirt.fleet_index) does, and writes each reporting host's slice (as
  C(deferred.libvirt.fleet_index_for) makes it) to a file of its own in a private directory (mode 0700, files 0600,
  named by a digest of the host name).
- Returns only small things, whatever the size of the fleet. Each host then reads its own slice with the
  C(deferred.libvirt.fleet_slice) lookup, so no per-host task references the whole index (on ansible-core 2.16 to
  2.18 each such reference costs the size of the fleet).
- A host of O(hosts) whose result is missing, failed or unreachable, or (with O(run)) whose record is from another
  fleet run, is missing - the index is incomplete and every slice says so.
- The C(deferred.libvirt.state_facts) and C(deferred.libvirt.reclaim) roles and C(playbooks/fleet_index.yml) use it.
options:
  hosts:
    description:
    - The declared fleet - every inventory host whose domains count (rule 12), not the play's hosts.
    type: list
    elements: str
    required: true
  var:
    description:
    - The variable of each host that holds its vm_info result (as the state_facts role registers it), or its compact
      fleet record (C(deferred.libvirt.fleet_record), as C(playbooks/fleet_gather.yml) caches it).
    type: str
    default: state_facts_vm_info
  run:
    description:
    - The fleet run id (the workflow's). A record of another run counts as missing, and every slice carries the id.
    type: str
  fleet:
    description:
    - The name of the declared fleet (its inventory group), carried in every slice. Every slice also names the hosts
      the index was built from by their number and the SHA-256 of their sorted names (C(fleet_hosts)), never by a
      list, so a slice stays small whatever the size of the fleet.
    type: str
  dest:
    description:
    - The directory for the slices (made 0700 if missing). By default a new private temporary directory.
    type: path
  index:
    description:
    - Also return the whole index as C(index), for a play that needs it once (the terminate and restore playbooks'
      C(deferred.libvirt.fleet_locate)). Never reference it per host.
    type: bool
    default: false
  remove:
    description:
    - Instead of building, remove a directory of slices this action wrote (its slice files, then the directory), once
      every host has read its own. Other files in it are left, and so is the directory then.
    type: path
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
    support: full
    details: It changes nothing on any host; it writes the slices on the control node in check mode too.
  diff_mode:
    description: Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
    support: none
  action:
    description: Indicates this has a corresponding action plugin so some parts of the options can be executed on the controller.
    support: full
  platform:
    description: Target OS/families that can be operated against.
    support: full
    platforms: posix
author:
- deferred.libvirt developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Index the fleet once and hand each host its slice
  deferred.libvirt.fleet_slices:
    hosts: "{{ groups['hypervisors'] }}"
    var: state_facts_vm_info
    fleet: hypervisors
  register: fleet_slices
  run_once: true

- name: Each host takes its own slice
  ansible.builtin.set_fact:
    my_fleet_slice: "{{ lookup('deferred.libvirt.fleet_slice', fleet_slices.dir, host=inventory_hostname) }}"
'''

RETURN = r'''
dir:
  description: The directory holding one slice file per reporting host.
  returned: success
  type: str
lines:
  description: The index's summary lines (stale copies, conflicts, shared disks, hosts that did not report).
  returned: success
  type: list
  elements: str
complete:
  description: Whether every host of O(hosts) reported (and could read its backing chains).
  returned: success
  type: bool
missing:
  description: The hosts that did not report, or whose record is from another run.
  returned: success
  type: list
  elements: str
built_at:
  description: When the index was built (UTC); every slice carries it and a module refuses one older than its C(fleet_max_age).
  returned: success
  type: str
run:
  description: The fleet run id given, else null.
  returned: success
  type: str
fleet:
  description: The fleet name given, else null.
  returned: success
  type: str
counts:
  description:
  - How many C(hosts), C(domains), C(stale) copies, C(conflicts), C(shared_disks), C(missing) hosts and C(aliases)
    (a hypervisor under two inventory names) the index holds.
  returned: success
  type: dict
index:
  description: The whole fleet index (as C(deferred.libvirt.fleet_index) makes it), with O(index=true) only.
  returned: when O(index=true)
  type: dict
removed:
  description: With O(remove), whether the directory is gone.
  returned: when O(remove) is given
  type: bool
'''
