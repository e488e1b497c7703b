# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim_warning_line filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: reclaim_warning_line
version_added: 0.1.0
short_description: One line for a domain due within the warning window
description:
- The line the sweep's summary and the report print for a domain reclaimed within the warning window.
positional: _input, window
options:
  _input:
    description: A domain of C(domains) of P(deferred.libvirt.reclaim_warning#filter).
    type: dict
    required: true
  window:
    description: The warning window (a duration).
    type: raw
    required: true
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: What is due
  ansible.builtin.debug:
    msg: "{{ warning.domains | map('deferred.libvirt.reclaim_warning_line', '24h') | list }}"
'''

RETURN = r'''
_value:
  description:
  - 'The line, for example C(due within 1d: hv1/web02 (project web) at 2024-05-02T10:00:00Z).'
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import reclaim_warning_line
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'reclaim_warning_line': reclaim_warning_line})
