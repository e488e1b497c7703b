# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared option docs: the options of every module that changes domains, its admin override, and of the modules that can
terminate one."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # Options of every module that changes domains.
    DOCUMENTATION = r'''
options:
  lock_timeout:
    description:
      - How long to wait for another operation on the same domain to finish before failing that domain.
      - Seconds or a duration string such as V(90s) or V(5m).
    type: raw
    default: 120
  parallel:
    description:
      - How many domains to work on at once. Waiting (for shutdowns and boots) dominates, not CPU.
    type: int
    default: 16
'''

    # The admin override of the modules an operator points at domains (not the sweep, which never passes a guard).
    FORCE = r'''
options:
  force:
    description:
      - Pass a domain's lock (an admin override). Nothing passes O(deferred.libvirt.vm_attributes#module:protected).
    type: bool
    default: false
'''

    # Options of the modules that can terminate a domain.
    TERMINATE = r'''
options:
  instance_dirs:
    description:
      - Directories whose files a terminated domain owns. A disk file whose real path (symbolic links and V(..)
        resolved) lies under one of them, or any volume of a libvirt storage pool, is deleted; any other disk is left
        in place and reported. A disk that another domain also uses is never deleted; disks are told apart by file
        (device and inode), so a bind mount or a symbolic link to another domain's disk counts as that disk.
      - System directories (V(/), V(/var), V(/usr), V(/var/lib/libvirt) and the like) are refused, since every file below
        them would count as owned.
    type: list
    elements: path
    default: [/var/lib/libvirt/images]
  volume_wait_timeout:
    description:
      - How long to wait for Cinder to detach and delete one volume, in seconds or a duration string.
    type: raw
    default: 120
'''
