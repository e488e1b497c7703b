# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim_warning filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: reclaim_warning
version_added: 0.1.0
short_description: The domains due within the warning window, over every host's sweep
description:
- Collects the C(due_soon) domains of every host's sweep record into the JSON body the C(deferred.libvirt.reclaim) role posts
  to its warning webhook (described in C(docs/report.md)).
positional: _input, hosts
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts whose sweep records to read.
    type: list
    elements: str
    required: true
  record_var:
    description: The name of the sweep record fact on each host.
    type: str
    default: reclaim_sweep
  window:
    description: The warning window (a duration), reported as C(warning_window_seconds).
    type: raw
  now:
    description: C(generated_at) (UTC ISO 8601). Default is now.
    type: str
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: What is due within a day
  ansible.builtin.set_fact:
    warning: "{{ hostvars | deferred.libvirt.reclaim_warning(ansible_play_hosts_all, window='24h') }}"
  run_once: true
'''

RETURN = r'''
_value:
  description:
  - C(event) (V(deferred.libvirt.reclaim_warning)), C(generated_at), C(warning_window_seconds), C(count) and C(domains) (each
    with C(host), C(name), C(uuid), C(project), C(deleted_at), C(reclaim_at), C(expires_in)).
  type: dict
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import reclaim_warning
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'reclaim_warning': reclaim_warning})
