# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet_state filter: its documentation, read by ansible-doc and Galaxy, and its entry point.

The code is in plugins/plugin_utils/_fleet_state.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: fleet_state
version_added: 0.1.0
short_description: Build the fleet fact from every hypervisor's vm_info result
description:
  - Folds the registered M(deferred.libvirt.vm_info) result of each host into one view of the fleet - per host and per
    project the instance counts, quota usage (soft-deleted domains excluded) and the trash (what is soft-deleted,
    where, and when it expires).
  - Used by the C(deferred.libvirt.state_facts) role; computed on the control node.
positional: _input, hosts
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts that should have reported; those without a successful result are listed in C(missing).
    type: list
    elements: str
    required: true
  result_var:
    description: The name of the registered vm_info result on each host.
    type: str
    default: state_facts_vm_info
  now:
    description: The time to compute C(expires_in) from (UTC ISO 8601). Default is now.
    type: str
  project:
    description:
      - Only this project's domains are listed (instances, usage, trash). Null for all.
      - The vm_info results themselves stay unfiltered, so the fleet index built from them sees every domain.
    type: str
author:
  - deferred.libvirt developers
"""

EXAMPLES = r"""
- name: Build the fleet facts after vm_info ran on every host
  ansible.builtin.set_fact:
    fleet: "{{ hostvars | deferred.libvirt.fleet_state(ansible_play_hosts_all, result_var='info') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - C(hosts) (per host - C(instances), C(vm_states), C(usage), C(trash), C(projects)), C(missing) (host -> why it did
      not report), C(projects) (per project - C(instances), C(vm_states), C(usage), C(trash), C(hosts)), C(usage)
      (per project, fleet-wide), C(trash) (soonest expiry first, each with C(host), C(name), C(uuid), C(project),
      C(deleted_at), C(reclaim_at), C(expires_in), C(expired)), C(instances) (every domain, with its host),
      C(anomalies) (records that are incomplete or unreadable), C(aliases) (a second inventory name of a hypervisor
      already counted, with the same host UUID, hostname and domains -> the name it is counted under; its domains and
      usage count once), C(gathered_at), C(lines) (a summary to print) and C(table) (one line per domain).
  type: dict
"""

from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_state import fleet_state
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'fleet_state': fleet_state})
