# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet_locate filter: its documentation, read by ansible-doc and Galaxy, and its entry point.

The code is in plugins/plugin_utils/_fleet_state.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: fleet_locate
version_added: 0.1.0
short_description: Find named domains across the fleet
description:
  - Finds each named domain (name or UUID) on its host in the fleet fact of the C(deferred.libvirt.state_facts) role,
    so a playbook runs each operation on the host that has the domain.
  - Fails, before anything changes, on a name no host has, a name several hosts have (name it by UUID), a domain of
    another project, and a fleet fact with hosts that did not report.
  - A domain defined on several hosts (one UUID, as a migration without C(--undefinesource) leaves it) is found on the
    host of its authoritative copy, as the fleet index (O(index)) says by rule 9; without an index, or when no copy is
    authoritative, that fails too.
positional: _input, names, project, index
options:
  _input:
    description: The fleet fact (C(state_facts_fleet)).
    type: dict
    required: true
  names:
    description: Names or UUIDs, a list or a string separated by commas or spaces.
    type: raw
    required: true
  project:
    description: Every domain must belong to this project.
    type: str
  index:
    description: The fleet index (C(state_facts_index), from P(deferred.libvirt.fleet_index#filter)), to tell which copy
      of a domain defined on several hosts is the one to act on.
    type: dict
author:
  - deferred.libvirt developers
"""

EXAMPLES = r"""
- name: Where are web01 and web02?
  ansible.builtin.set_fact:
    plan: "{{ state_facts_fleet | deferred.libvirt.fleet_locate('web01,web02', 'web', state_facts_index) }}"

- name: Soft delete each on its host
  deferred.libvirt.vm_soft_delete:
    name: "{{ plan.by_host[inventory_hostname] }}"
  when: inventory_hostname in plan.by_host
"""

RETURN = r"""
_value:
  description: C(by_host) (host -> UUIDs of the named domains there) and C(instances) (each found domain, with its host).
  type: dict
"""

from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_state import fleet_locate
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'fleet_locate': fleet_locate})
