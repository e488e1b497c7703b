# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet_record filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_record
version_added: 0.1.0
short_description: One host's compact fleet record, to cache between the jobs of the fleet workflow
description:
- From one host's C(deferred.libvirt.vm_info) result, exactly what the fleet index needs of that host - its libvirt
  identity and, per domain, its UUID, name, states, generation, reclaim time, the host its record names, and the keys
  of its disks and backing files - tagged with the fleet run id and the time. C(playbooks/fleet_gather.yml) caches it
  as the host's fact C(deferred_libvirt_fleet_record); C(deferred.libvirt.fleet_slices) builds the index from it.
- A result that failed, was unreachable or holds no domain list gives a record that says why (no C(instances)), and the
  index counts that host as missing.
positional: _input, host, run
options:
  _input:
    description: The host's registered vm_info result.
    type: dict
    required: true
  host:
    description: The inventory host.
    type: str
    required: true
  run:
    description: The fleet run id (C(deferred_libvirt_fleet_run), or AWX's C(awx_workflow_job_id)).
    type: str
    required: true
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: Keep this host's fleet record for the index job
  ansible.builtin.set_fact:
    deferred_libvirt_fleet_record: "{{ my_vm_info | deferred.libvirt.fleet_record(inventory_hostname, run_id) }}"
    cacheable: true
'''

RETURN = r'''
_value:
  description:
  - C(host), C(run), C(gathered_at), C(hypervisor) and C(instances) (the compact domain views), or C(host), C(run),
    C(gathered_at) and C(msg) (why the host did not report).
  type: dict
'''

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils import _fleet_handover as handover
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


def fleet_record(result, host, run):
    try:
        return handover.record(result, host, run)
    except handover.HandoverError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'fleet_record': fleet_record})
