# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash_report filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: trash_report
version_added: 0.1.0
short_description: Build the trash report over the fleet
description:
- Folds every host's registered M(deferred.libvirt.vm_info) result (with C(include_deleted)) and its slurped C(last_sweep.json)
  into the report the C(deferred.libvirt.report) role writes - per host and per project the soft-deleted domains with time
  left and size, a timeline of the coming reclaims, tombstones with Cinder work pending, what the last sweep skipped and why,
  and each host's last sweep.
- Computed on the control node; C(docs/report.md) describes every field.
positional: _input, hosts
options:
  _input:
    description: C(hostvars).
    type: dict
    required: true
  hosts:
    description: The hosts that should have reported; those without a successful vm_info result are listed in C(missing).
    type: list
    elements: str
    required: true
  info_var:
    description: The name of the registered vm_info result on each host.
    type: str
    default: state_facts_vm_info
  sweep_var:
    description: The name of the registered slurp of each host's C(last_sweep.json).
    type: str
    default: report_last_sweep
  now:
    description: The time to compute time left from (UTC ISO 8601). Default is now.
    type: str
  warning_window:
    description: Domains reclaimed within this window (a duration such as V(24h)) are marked due soon; V(0) for none.
    type: raw
    default: 24h
  days:
    description: How many days the timeline shows.
    type: int
    default: 7
  sweep_max_age:
    description: A last sweep older than this (a duration) is a problem. Null for any age.
    type: raw
  project:
    description:
    - Only this project's domains, in every list that names domains - the trash, tombstones, anomalies, and what each
      host's last sweep skipped, reclaimed, kept or left pending (an entry without a project is kept when its uuid is
      one of the project's). Another project's names and reasons never reach the result.
    - Null or empty for every project.
    type: str
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: Build the report after vm_info and the slurp of last_sweep.json ran on every host
  ansible.builtin.set_fact:
    report: "{{ hostvars | deferred.libvirt.trash_report(ansible_play_hosts_all, warning_window='2d') }}"
  run_once: true
'''

RETURN = r'''
_value:
  description:
  - C(generated_at), C(ok) (nothing wrong), C(problems), C(lines) (to print), C(totals), C(hosts) (per host - C(reported),
    C(trash), C(tombstones), C(totals), C(last_sweep)), C(projects) (per project totals and C(next_reclaim_at)), C(trash),
    C(due_soon), C(timeline), C(tombstones), C(anomalies), C(skipped), C(sweeps), C(missing) and C(warning_window_seconds).
  type: dict
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import trash_report
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'trash_report': trash_report})
