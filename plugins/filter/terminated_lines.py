# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The terminated_lines filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: terminated_lines
version_added: 0.2.0
short_description: One line per domain a vm_terminate task terminated, over the hosts of a play
description:
- What each host's registered M(deferred.libvirt.vm_terminate) result says, one line per domain; in check mode what
  a real run would do. The C(deferred.libvirt.empty_trash) playbook prints it.
positional: _input, hosts
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts whose results to read, for example C(ansible_play_hosts_all).
    type: list
    elements: str
    required: true
  result_var:
    description: The variable each host registered the vm_terminate result in.
    type: str
    default: empty_trash_result
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: Say what was terminated
  ansible.builtin.debug:
    msg: "{{ hostvars | deferred.libvirt.terminated_lines(ansible_play_hosts_all, result_var='terminate_result') }}"
  run_once: true
'''

RETURN = r'''
_value:
  description:
  - 'One line per domain, for example C(hv1/web02: terminated; disks deleted: /var/lib/libvirt/images/web02.qcow2),
    C(hv1/web03: would terminate; ...) in check mode, or C(hv1/web04: FAILED: ...).'
  type: list
  elements: str
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import terminated_lines
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'terminated_lines': terminated_lines})
