# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restore_move_plan filter: its documentation, read by ansible-doc and Galaxy, and its entry point.

The code is in plugins/plugin_utils/_restore_move.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: restore_move_plan
version_added: 0.1.0
short_description: What a restore onto another host moves, and the disks to check on both hosts first
description:
  - For the domains C(deferred.libvirt.fleet_locate) (or C(deferred.libvirt.quota_check)) found, those soft-deleted
    on another host than the target, with the paths of their disks from the source host's vm_info result.
  - Lists every (host, path) to stat, on the source and on the target, before anything changes; the result of those
    stats goes to C(deferred.libvirt.restore_move_check). Used by C(playbooks/restore.yml) with C(restore_host).
positional: _input, hostvars, target
options:
  _input:
    description: The located domains (a C(fleet_locate) or C(quota_check) result).
    type: dict
    required: true
  hostvars:
    description: C(hostvars).
    type: dict
    required: true
  target:
    description: The inventory host the domains are to be restored on.
    type: str
    required: true
  result_var:
    description: The name of the registered vm_info result on each host.
    type: str
    default: state_facts_vm_info
author:
  - deferred.libvirt developers
"""

EXAMPLES = r"""
- name: Plan moving web01 onto hv3
  ansible.builtin.set_fact:
    plan: "{{ state_facts_fleet | deferred.libvirt.fleet_locate(['web01'], 'web')
              | deferred.libvirt.restore_move_plan(hostvars, 'hv3') }}"
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - C(target), C(moves) (each with C(host), C(name), C(uuid), C(paths)), C(by_source) (source host -> UUIDs),
      C(local) (UUIDs already on the target) and C(stats) (each with C(host), C(path), C(role) - source or target).
  type: dict
"""

from ansible_collections.deferred.libvirt.plugins.plugin_utils._restore_move import restore_move_plan
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'restore_move_plan': restore_move_plan})
