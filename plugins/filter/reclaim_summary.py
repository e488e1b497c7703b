# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim_summary filter: its documentation, read by ansible-doc and Galaxy, and its entry point.

The code is in plugins/plugin_utils/_reclaim_summary.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: reclaim_summary
version_added: 0.1.0
short_description: One summary of a reclaim run over many hosts
description:
  - Folds the registered M(deferred.libvirt.vm_reclaim) result of each host into one summary of the run, with the
    hosts that were not swept (unreachable, or the sweep could not start). Used by the C(deferred.libvirt.reclaim) role.
positional: _input, hosts
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts that should have been swept.
    type: list
    elements: str
    required: true
  result_var:
    description: The name of the registered vm_reclaim result on each host.
    type: str
    default: reclaim_result
  check_mode:
    description: Word the summary as a dry run.
    type: bool
    default: false
author:
  - deferred.libvirt developers
"""

EXAMPLES = r"""
- name: Sum up
  ansible.builtin.debug:
    msg: "{{ (hostvars | deferred.libvirt.reclaim_summary(ansible_play_hosts_all)).lines }}"
  run_once: true
"""

RETURN = r"""
_value:
  description:
    - C(totals) (reclaimed, failed, skipped, kept, pending, finished), C(hosts) (the counts per host), C(reclaimed),
      C(failed), C(skipped), C(pending) (each item with its host), C(not_swept) (host -> why), C(next) (the soonest
      to expire), C(ok) (nothing failed and every host was swept), C(check_mode) and C(lines) (the summary to print).
  type: dict
"""

from ansible_collections.deferred.libvirt.plugins.plugin_utils._reclaim_summary import reclaim_summary
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'reclaim_summary': reclaim_summary})
