# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared option docs: the fleet view (this host's slice of the fleet index) of the modules that can terminate a domain."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # The fleet view of the modules that can terminate a domain (spec rules 9 and 10).
    DOCUMENTATION = r'''
options:
  fleet:
    description:
      - This host's part of the fleet index, as C(hostvars | deferred.libvirt.fleet_index(HOSTS) |
        deferred.libvirt.fleet_index_for(inventory_hostname)) builds it; the C(deferred.libvirt.reclaim) role and the
        C(terminate) playbook pass it.
      - With it, a stale copy of a domain (one defined on several hosts, whose authoritative copy is elsewhere) is never
        reclaimed, and terminated only with O(force), which then only undefines that definition; a disk any other
        domain of the play references is never deleted; a Cinder attachment another hypervisor of the play holds is
        never detached. While the index is incomplete (a host did not report) no disk is deleted.
      - Without it (a single-host ad hoc call), the record's own C(host) decides which copy is authoritative, and only
        this host's domains count as disk users.
    type: dict
'''
