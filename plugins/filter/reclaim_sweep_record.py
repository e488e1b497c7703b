# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim_sweep_record filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: reclaim_sweep_record
version_added: 0.1.0
short_description: What one host's reclaim sweep leaves in its state_dir
description:
- Turns a host's registered M(deferred.libvirt.vm_reclaim) result into the record the C(deferred.libvirt.reclaim) role keeps
  as C(last_sweep.json) in the host's state_dir - when, how long, counts, what was reclaimed, failed and skipped (with the
  kind of reason), what is kept and what is due within the warning window - and the report reads.
positional: _input, host
options:
  _input:
    description: The registered vm_reclaim result (failed or unreachable ones too).
    type: dict
    required: true
  host:
    description: The host's inventory name.
    type: str
    required: true
  started_at:
    description: When the sweep started (UTC ISO 8601), when the result does not say.
    type: str
  finished_at:
    description: When the sweep finished (UTC ISO 8601), when the result does not say.
    type: str
  previous:
    description: The previous record (a dict, or the slurp of C(last_sweep.json)); its C(last_success_at) carries over when
      this sweep failed.
    type: raw
  project:
    description: The project the sweep was limited to.
    type: str
  check_mode:
    description: Whether the sweep was a dry run.
    type: bool
    default: false
  warning_window:
    description: Kept domains reclaimed within this window (a duration) are listed in C(due_soon).
    type: raw
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: Record the sweep
  ansible.builtin.set_fact:
    sweep: "{{ reclaim_result | deferred.libvirt.reclaim_sweep_record(inventory_hostname, warning_window='24h') }}"
'''

RETURN = r'''
_value:
  description:
  - C(version), C(host), C(request_id), C(project), C(check_mode), C(started_at), C(finished_at), C(duration_seconds), C(ran),
    C(ok), C(msg), C(counts), C(skipped_anomalies), C(reclaimed), C(failed), C(skipped) (each with C(kind)), C(pending), C(finished),
    C(kept), C(warning_window_seconds), C(due_soon) and C(last_success_at).
  type: dict
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import reclaim_sweep_record
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'reclaim_sweep_record': reclaim_sweep_record})
