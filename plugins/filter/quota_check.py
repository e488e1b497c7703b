# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The quota_check filter: its documentation, read by ansible-doc and Galaxy, and its entry point.

The code is in plugins/plugin_utils/_quota.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r"""
name: quota_check
version_added: 0.1.0
short_description: Check a batch of restores against per-project quotas with the fleet's usage
description:
  - Finds the named domains in the fleet fact (as P(deferred.libvirt.fleet_locate#filter) does) and checks restoring
    the soft-deleted ones against per-project limits with the usage of the whole fleet, where soft-deleted domains do
    not count - the same check M(deferred.libvirt.vm_restore) makes on one host.
  - Used by the C(deferred.libvirt.quota) role.
positional: _input, limits, names, project, index
options:
  _input:
    description: The fleet fact (C(state_facts_fleet)).
    type: dict
    required: true
  limits:
    description:
      - 'Per-project limits, C({project: {instances: N, cores: N, ram_mb: N}}); V(-1) or a missing resource is
        unlimited, a C(default) entry applies to projects not listed.'
    type: dict
    required: true
  names:
    description: The domains to restore, names or UUIDs; a list or a string separated by commas or spaces.
    type: raw
    required: true
  project:
    description: Every named domain must belong to this project.
    type: str
  index:
    description: The fleet index (C(state_facts_index)), so a domain defined on several hosts is found where its
      authoritative copy is (as P(deferred.libvirt.fleet_locate#filter) does).
    type: dict
author:
  - deferred.libvirt developers
"""

EXAMPLES = r"""
- name: Would restoring web01 and web02 fit?
  ansible.builtin.set_fact:
    check: "{{ state_facts_fleet | deferred.libvirt.quota_check({'web': {'instances': 10}}, ['web01', 'web02']) }}"
"""

RETURN = r"""
_value:
  description:
    - C(fits), C(over) (each with C(project), C(resource), C(limit), C(usage), C(request)), C(message) (naming them),
      C(request), C(usage) and C(limits) per project, C(restore) (the soft-deleted domains to restore, with host),
      C(noop) (named domains that are not soft-deleted) and C(by_host) (host -> UUIDs to restore there).
  type: dict
"""

from ansible_collections.deferred.libvirt.plugins.plugin_utils._quota import quota_check
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe_filters


class FilterModule(object):
    def filters(self):
        return unsafe_filters({'quota_check': quota_check})
