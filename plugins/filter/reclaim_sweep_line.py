# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim_sweep_line filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: reclaim_sweep_line
version_added: 0.1.0
short_description: One line for a host's sweep
description:
- The line the C(deferred.libvirt.reclaim) role prints for each host and in its summary; the report prints the same words
  for the host's last sweep.
positional: _input, host
options:
  _input:
    description: The sweep record (P(deferred.libvirt.reclaim_sweep_record#filter)).
    type: dict
    required: true
  host:
    description: The host's name. Default is the record's host.
    type: str
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: How the sweep went
  ansible.builtin.debug:
    msg: "{{ sweep | deferred.libvirt.reclaim_sweep_line }}"
'''

RETURN = r'''
_value:
  description:
  - 'The line, for example C(host hv1: swept: reclaimed 1, failed 0, skipped 1 (anomalies 1), kept 2, pending 0, finished
    0 in 0.42 s).'
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import reclaim_sweep_line
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'reclaim_sweep_line': reclaim_sweep_line})
