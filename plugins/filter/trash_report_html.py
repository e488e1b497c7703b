# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash_report_html filter: its documentation, read by ansible-doc and Galaxy, and its entry point."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: trash_report_html
version_added: 0.1.0
short_description: The trash report as one self-contained HTML page
description:
- Renders the result of P(deferred.libvirt.trash_report#filter) as one HTML page with inline CSS and JavaScript only (sortable
  tables), nothing fetched from the network, so it opens offline and from an AWX artifact.
positional: _input, title
options:
  _input:
    description: The report (the result of P(deferred.libvirt.trash_report#filter)).
    type: dict
    required: true
  title:
    description: The page's title.
    type: str
    default: Trash report
author:
- deferred.libvirt developers
'''

EXAMPLES = r'''
- name: Write the page
  ansible.builtin.copy:
    content: "{{ report | deferred.libvirt.trash_report_html }}"
    dest: /srv/www/trash/index.html
    mode: "0644"
  delegate_to: localhost
  run_once: true
'''

RETURN = r'''
_value:
  description:
  - The page, as a string.
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import trash_report_html
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'trash_report_html': trash_report_html})
