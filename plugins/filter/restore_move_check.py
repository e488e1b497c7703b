# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restore_move_check filter: its documentation, read by ansible-doc and Galaxy, and its entry point.

The code is in plugins/plugin_utils/_restore_move.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: restore_move_check
version_added: 0.1.0
short_description: Whether the target of a restore sees every disk as the same file its source does
description:
  - Compares, for every disk of every domain of a C(deferred.libvirt.restore_move_plan), what M(ansible.builtin.stat)
    found on the source host and on the target - the same inode, size and modification time. A disk missing on the
    target, or another file at the same path there (a copy), is a problem, named with the target host.
positional: _input, stat_results
options:
  _input:
    description: The plan (a C(restore_move_plan) result).
    type: dict
    required: true
  stat_results:
    description: The C(results) of M(ansible.builtin.stat) looped over the plan's C(stats), delegated to each item's host.
    type: list
    elements: dict
    required: true
author:
  - deferred.libvirt developers
"""

EXAMPLES = r"""
- name: Refuse before anything changes
  ansible.builtin.fail:
    msg: "{{ check.message }}"
  vars:
    check: "{{ plan | deferred.libvirt.restore_move_check(disk_stats.results) }}"
  when: not check.ok
"""

RETURN = r"""
_value:
  description:
    - C(ok), C(problems) (one line per disk) and C(message), ending in C(nothing was changed) when not C(ok).
  type: dict
"""

from ansible_collections.deferred.libvirt.plugins.plugin_utils._restore_move import restore_move_check
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'restore_move_check': restore_move_check})
