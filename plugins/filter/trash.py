# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: trash
version_added: 0.2.0
short_description: The trash in the operator's words, one line per soft-deleted domain
description:
- One line per soft-deleted domain, soonest reclaim first, with its host and name, project, owner, the time left in
  human units ("in 6d 0h", "overdue by 2h 0m"), its size on disk, who soft-deleted it (the actor the record keeps) and
  the command that restores it.
- Takes either the result of P(deferred.libvirt.trash_report#filter), or C(hostvars) and the hosts whose vm_info
  results (as the P(deferred.libvirt.state_facts#role) role registers them) to read.
- The playbook C(deferred.libvirt.trash) prints it for the whole fleet.
positional: _input, hosts
options:
  _input:
    description: A trash report, or C(hostvars).
    type: raw
    required: true
  hosts:
    description: With C(hostvars), the hosts to read (for example C(ansible_play_hosts_all)); omitted with a report.
    type: list
    elements: str
  info_var:
    description: The variable holding each host's registered vm_info result.
    type: str
    default: state_facts_vm_info
  project:
    description: Only this project's domains.
    type: str
  now:
    description: The time to count from (UTC ISO 8601); by default the current time.
    type: str
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: The trash of project web
  ansible.builtin.debug:
    msg: "{{ hostvars | deferred.libvirt.trash(ansible_play_hosts_all, project='web') }}"
  run_once: true

- name: The same lines from a report already built
  ansible.builtin.debug:
    msg: "{{ report_data | deferred.libvirt.trash }}"
'''

RETURN = r'''
_value:
  description:
  - 'One line per domain, for example C(hv1/web02 (project web, owner alice): in 5d 23h, 3.2 GiB on disk, deleted by
    alice at 2024-05-01T10:00:00Z; restore: ansible-playbook -i INVENTORY deferred.libvirt.restore
    -e names=4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50 -e project=web).'
  - The restore command names the domain by its UUID and passes the project only when it is plain text (letters,
    digits, C(._@:+-)), so no tenant string becomes part of a command; replace C(INVENTORY) with your inventory.
  type: list
  elements: str
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import trash
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'trash': trash})
