# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared docs: the attributes every module declares (check mode, diff mode, the module defaults group)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    DOCUMENTATION = r'''
options: {}
attributes:
  check_mode:
    description: Can run in check_mode and return changed status prediction without modifying target.
  diff_mode:
    description:
      - Will return details on what has changed (or possibly needs changing in check_mode), when in diff mode.
      - The diff shows each domain's fields an operator sets or reads (vm_state, power_state, project, user, the
        guards, the durations, deleted_at, reclaim_at, volumes), not the record's bookkeeping (see C(docs/lifecycle.md)).
'''

    ACTIONGROUP = r'''
options: {}
attributes:
  action_group:
    description: Use C(group/deferred.libvirt.all) in C(module_defaults) to set defaults for this module.
    support: full
    membership:
      - deferred.libvirt.all
'''

    READONLY = r'''
options: {}
attributes:
  check_mode:
    support: full
    details: This module changes nothing, so check mode does the same as a normal run.
  diff_mode:
    support: none
'''
