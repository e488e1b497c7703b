# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The quota_lock_name filter: its documentation, read by ansible-doc and Galaxy, and its entry point.

The code is in plugins/plugin_utils/_quota.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: quota_lock_name
version_added: 0.1.0
short_description: The file name of a project's fleet quota lock
description:
  - The name, under the C(deferred.libvirt.quota) role's lock directory, of the lock that serialises the quota check
    and the restore of one project - C(quota-PROJECT-HASH.lock), the project with characters outside C([A-Za-z0-9._-])
    replaced and the first 8 hex digits of its SHA-1 added, so two projects never share a lock.
positional: _input
options:
  _input:
    description: The project (null for domains without one).
    type: str
    required: true
author:
  - deferred.libvirt developers
"""

EXAMPLES = r"""
- name: Where the lock of project web lives
  ansible.builtin.debug:
    msg: "{{ quota_lock_dir }}/{{ 'web' | deferred.libvirt.quota_lock_name }}"
"""

RETURN = r"""
_value:
  description: The lock's file name, for example C(quota-web-2b8e7f3a.lock).
  type: str
"""

from ansible_collections.deferred.libvirt.plugins.plugin_utils._quota import quota_lock_name
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'quota_lock_name': quota_lock_name})
