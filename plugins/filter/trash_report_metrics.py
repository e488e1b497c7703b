# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash_report_metrics filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: trash_report_metrics
version_added: 0.1.0
short_description: The trash report as Prometheus text-format metrics
description:
- Renders the result of P(deferred.libvirt.trash_report#filter) in the Prometheus text format for node_exporter's textfile
  collector - per host and project the domains and resources in the trash, the next reclaim time, pending Cinder volumes,
  anomalies, and each host's last sweep. C(docs/report.md) lists every metric.
positional: _input
options:
  _input:
    description: The report (the result of P(deferred.libvirt.trash_report#filter)).
    type: dict
    required: true
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: Write the metrics
  ansible.builtin.copy:
    content: "{{ report | deferred.libvirt.trash_report_metrics }}"
    dest: /var/lib/prometheus/node-exporter/deferred_libvirt_report.prom
    mode: "0644"
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
_value:
  description:
  - The metrics, as a string.
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import trash_report_metrics
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'trash_report_metrics': trash_report_metrics})
