# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared option docs: the libvirt URI and the state_dir every module takes, and the selection (name, query, project)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  uri:
    description:
      - The libvirt connection URI of the hypervisor.
      - Set it once for every module of the collection with C(module_defaults) and the C(group/deferred.libvirt.all) group.
    type: str
    default: qemu:///system
  state_dir:
    description:
      - Directory on the hypervisor for the event journal (C(events.jsonl)), tombstones of terminated domains and per-domain locks.
      - Created with mode 0700 when missing. A symbolic link, a directory owned by another user, or one that cannot be
        written is refused before any domain is changed.
    type: path
    default: /var/lib/deferred-libvirt
requirements:
  - python >= 3.9
  - libvirt-python >= 9.0
notes:
  - A "rule N" in these docs and in the messages is rule N of C(docs/rules.md) in the collection, where it is stricter
    than Nova on purpose. C(docs/lifecycle.md) describes the states and what each operation accepts and leaves.
'''

    SELECTION = r'''
options:
  name:
    description:
      - The domains to act on, by name or UUID; one or a list.
      - A name that matches no domain is an error, and so is a domain of another O(project).
      - Mutually exclusive with O(query).
    type: list
    elements: str
    aliases: [names]
  query:
    description:
      - A JMESPath expression over the list of lifecycle records that M(deferred.libvirt.vm_info) returns; it must give
        records, names or UUIDs. For example V([?vm_state=='stopped' && project=='web']).
      - Evaluated after the O(project) scope is applied, so a query never reaches another project's domains.
      - Mutually exclusive with O(name).
    type: str
  project:
    description:
      - Limit the selection to the domains of this project (the O(deferred.libvirt.vm_attributes#module:project) set on them).
      - Naming a domain of another project, or one with no project, is an error rather than a silent skip.
    type: str
requirements:
  - jmespath >= 1.0 (for O(query))
'''
