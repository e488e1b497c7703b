# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared option docs: the fleet view (this host's slice of the fleet index) of the modules that can terminate a domain."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # The fleet view of the modules that can terminate a domain (rules 9 and 10 of docs/rules.md).
    DOCUMENTATION = r'''
options:
  fleet:
    description:
      - This host's part of the fleet index, as C(hostvars | deferred.libvirt.fleet_index(HOSTS) |
        deferred.libvirt.fleet_index_for(inventory_hostname)) builds it; the C(deferred.libvirt.reclaim) role and the
        C(terminate) playbook pass it.
      - With it, a stale copy of a domain (one defined on several hosts, whose authoritative copy is elsewhere) is never
        reclaimed, and terminated only with O(deferred.libvirt.vm_terminate#module:force=true), which then only
        undefines that definition; a disk any other domain of the play references is never deleted; a Cinder
        attachment another hypervisor of the play holds is never detached. While the index is incomplete (a host did
        not report) no disk another host could reach is deleted.
      - A copy of the same domain on another host (an offline migration's leftover, say) is a user of the disks it
        references, and while one is left the Cinder volumes of a terminated domain wait, neither detached nor deleted
        (the result's C(volumes_held) says why); the first M(deferred.libvirt.vm_reclaim) sweep whose index shows no
        copy left settles them. The same holds while the index is incomplete.
      - A run of M(deferred.libvirt.vm_terminate), M(deferred.libvirt.vm_soft_delete) or M(deferred.libvirt.vm_reclaim)
        with a slice records the fleet this host belongs to in the O(state_dir) (C(fleet.json), per host). A run of
        one of them on that host without a slice (ad hoc) then works as with an incomplete index and says why;
        removing the host's entry from C(fleet.json) takes the host out of the fleet.
      - Without it, on a host of no fleet (a single-host ad hoc call), the record's own C(host) decides which copy is
        authoritative, and only this host's domains count as disk users.
      - The slice is bound to the host it was built for and to the time the index was built (C(host), C(hypervisor),
        C(fleet), C(built_at)). A slice built for another hypervisor (compared by full hostname, else libvirt host
        UUID, never by a short name), one older than O(fleet_max_age), or a dict not built by
        C(deferred.libvirt.fleet_index_for) is refused before anything changes, with a message naming both hosts or
        both times.
    type: dict
  fleet_max_age:
    description:
      - How old O(fleet) may be, counted from the C(built_at) of its index to this host's clock; seconds or a string
        such as C(15m). C(0) sets no age limit (for an index carried on purpose, such as a test).
      - A slice is a picture of the fleet. The older it is, the likelier a copy was started, moved or defined since.
        The roles and playbooks build the index in the same play, so their slices are fresh.
      - A slice built more than 5 minutes in the future of this host's clock is refused whatever this says.
    type: raw
    default: 15m
  fleet_required:
    description:
      - Whether this run depends on a fleet slice handed over from another job, as the sliced sweep of the fleet
        workflow (C(playbooks/fleet_sweep.yml)) does.
      - With C(true), a O(fleet) that is missing, built for another hypervisor, older than O(fleet_max_age) or no
        slice at all is not refused, and the run does not fall back to the single-host view either - it goes on as
        with an incomplete fleet index - no disk another host could reach is deleted, a Cinder attachment is detached
        only when this hypervisor holds it, a copy whose record names another host is kept as a stale copy, and the
        result's C(fleet.gaps) and warnings say why the slice could not be used.
      - With C(false) (the default) such a slice is refused before anything changes, and no slice means the
        single-host view.
    type: bool
    default: false
  fleet_run:
    description:
      - The fleet workflow's run id (C(deferred_libvirt_fleet_run), or AWX's C(awx_workflow_job_id)) that O(fleet)
        must carry - a slice the index job of another run wrote is refused, or with O(fleet_required=true) treated as
        missing. Null (the default) - a slice carries no run to check.
    type: str
'''
