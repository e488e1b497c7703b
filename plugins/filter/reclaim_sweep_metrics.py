# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim_sweep_metrics filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: reclaim_sweep_metrics
version_added: 0.1.0
short_description: One host's sweep as Prometheus text-format metrics
description:
- Renders a record of P(deferred.libvirt.reclaim_sweep_record#filter) in the Prometheus text format, for the host's own node_exporter
  textfile collector. C(docs/report.md) lists every metric.
positional: _input, host
options:
  _input:
    description: The sweep record.
    type: dict
    required: true
  host:
    description: The C(host) label. Default is the record's host.
    type: str
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: Write the sweep metrics
  ansible.builtin.copy:
    content: "{{ sweep | deferred.libvirt.reclaim_sweep_metrics }}"
    dest: /var/lib/prometheus/node-exporter/deferred_libvirt_sweep.prom
    mode: "0644"
'''

RETURN = r'''
_value:
  description:
  - The metrics, as a string.
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import reclaim_sweep_metrics
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'reclaim_sweep_metrics': reclaim_sweep_metrics})
