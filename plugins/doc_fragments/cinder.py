# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared option docs: the fleet's Cinder declaration (cinder), which every module takes for module_defaults."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options:
  cinder:
    description:
      - Whether this fleet has Cinder (OpenStack block storage). Declare it once for every module of the collection
        with C(module_defaults) and the C(group/deferred.libvirt.all) group (the playbooks and roles pass the
        C(deferred_libvirt_cinder) inventory variable).
      - V(false), a fleet without Cinder, the usual libvirt fleet. A terminate (M(deferred.libvirt.vm_terminate),
        M(deferred.libvirt.vm_reclaim), M(deferred.libvirt.vm_soft_delete) with
        O(deferred.libvirt.vm_soft_delete#module:reclaim_interval=0)) finishes a domain at once (its tombstone is
        complete), and the retention prunes it like any other. A domain whose lifecycle record lists Cinder volumes,
        or a tombstone with volumes pending, is refused with the reason and nothing is changed. Giving
        O(deferred.libvirt.vm_terminate#module:cloud) or O(deferred.libvirt.vm_terminate#module:auth) as well is
        refused. M(deferred.libvirt.vm_attributes) refuses to record O(deferred.libvirt.vm_attributes#module:volumes).
      - V(true), a fleet with Cinder. A terminate, a sweep or a soft delete with
        O(deferred.libvirt.vm_soft_delete#module:reclaim_interval=0) without
        O(deferred.libvirt.vm_terminate#module:cloud) or O(deferred.libvirt.vm_terminate#module:auth) is refused.
      - Not given, as before. Without O(deferred.libvirt.vm_terminate#module:cloud) or
        O(deferred.libvirt.vm_terminate#module:auth), Cinder is not asked, a terminated domain's tombstone waits for
        a run with Cinder (the sweep lists it under C(cinder_unchecked)) and the result warns, naming this option.
      - M(deferred.libvirt.vm_info) and M(deferred.libvirt.vm_restore) accept it (so C(module_defaults) can set it
        for the whole group) and do not use it.
    type: bool
'''
