# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet_slice lookup: one host's slice, as the fleet_slices action wrote it, read on the control node."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
name: fleet_slice
version_added: 0.1.0
short_description: One host's slice of the fleet index, from the files deferred.libvirt.fleet_slices wrote
description:
- Reads the slice of one inventory host from the private directory the C(deferred.libvirt.fleet_slices) action wrote
  (its C(dir) result), on the control node. Each host reads only its own slice, so the cost per host does not grow
  with the fleet.
- Returns C(None) (no slice) for a host that did not report when the index was built; a sweep given
  C(fleet_required=true) then keeps everything another host could reach.
- The slice is data, never a template (tenant strings in it are not templated again).
options:
  _terms:
    description: The directory (the C(dir) result of C(deferred.libvirt.fleet_slices)).
    type: list
    elements: str
    required: true
  host:
    description: The inventory host whose slice to read.
    type: str
    required: true
author:
- deferred.libvirt developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Take this host's slice
  ansible.builtin.set_fact:
    my_fleet_slice: "{{ lookup('deferred.libvirt.fleet_slice', fleet_slices.dir, host=inventory_hostname) }}"
'''

RETURN = r'''
_raw:
  description:
  - The host's slice (as C(deferred.libvirt.fleet_index_for) makes it, plus the C(run) id when the index had one), or
    C(None).
  type: list
  elements: dict
'''

from ansible.errors import AnsibleLookupError
from ansible.module_utils.common.text.converters import to_text
from ansible.plugins.lookup import LookupBase

from ansible_collections.deferred.libvirt.plugins.plugin_utils import _fleet_handover as handover
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe


class LookupModule(LookupBase):

    def run(self, terms, variables=None, **kwargs):
        self.set_options(var_options=variables, direct=kwargs)
        host = self.get_option('host')
        found = []
        for term in terms:
            try:
                found.append(unsafe(handover.read_slice(to_text(term), host)))
            except handover.HandoverError as exc:
                raise AnsibleLookupError(to_text(exc))
        return found
