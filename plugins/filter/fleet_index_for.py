# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet_index_for filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_index_for
version_added: 0.1.0
short_description: One hypervisor's part of the fleet index
description:
- From the C(deferred.libvirt.fleet_index) of the play, what an operation on one host needs - which of its domains are stale
  copies (and where the authoritative copy lives) and which of its disks other domains reference - small enough to hand to
  a module on that host.
positional: _input, host
options:
  _input:
    description: The fleet index.
    type: dict
    required: true
  host:
    description: The inventory host.
    type: str
    required: true
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: This host's part of the index
  ansible.builtin.set_fact:
    my_fleet_view: "{{ fleet_index | deferred.libvirt.fleet_index_for(inventory_hostname) }}"
'''

RETURN = r'''
_value:
  description:
  - C(host), C(hypervisor), C(complete) (every host of the play reported), C(missing) (hosts that did not), C(stale) (UUID
    -> reason, C(authoritative) host and C(others)), C(shared_disks) (disk identity -> the other domains referencing it),
    C(hypervisors) (the C(uuid), C(hostname) and inventory C(host) of each hypervisor this host's part refers to, the
    hosts of the other copies of its domains and of the other users of its disks), C(fleet) (the declared group's
    name, else null) and C(fleet_hosts) (C(count) and C(digest), the SHA-256 of the sorted inventory names of the
    hosts the index was built from), so a slice does not grow with the fleet.
  type: dict
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_index import fleet_index_for
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'fleet_index_for': fleet_index_for})
