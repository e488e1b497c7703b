# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reading what each host of a play registered, on the control node, for the fleet and report filters.

A filter gets Ansible's HostVars and the play's host names; ``host_vars`` reads
one host's vars (nothing for a host outside the inventory) and ``host_result``
says whether its registered module result counts as reported, by the rule the
fleet index's wire format states (module_utils/_fleet.py ``reported``).
``without_gc_pauses`` keeps the collector out of filters that walk every
host's result.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import functools
import gc

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet


def without_gc_pauses(fn):
    """Run ``fn`` with the cyclic garbage collector paused (and restored after, as it was).

    Over a large fleet the inputs are millions of objects, and each full
    collection that the filter's own allocations trigger walks all of them:
    at 1,000 hosts x 50 domains that was 60% of fleet_state's time and 90% of
    fleet_locate's (bench/, control node). The filters make no reference
    cycles; what they drop is freed by reference counting as usual.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()
    return wrapper


def host_vars(hostvars, host):
    """One host's vars; empty for a host the inventory does not have (it reported nothing)."""
    try:
        return hostvars[host]
    except Exception:  # HostVars raises more than KeyError for an unknown host: any of it means nothing reported
        return {}


def host_result(hostvars, host, var, key=_fleet.INSTANCES, absent='did not report', failed_counts=False):
    """(the result ``host`` registered in ``var``, None), or (None, why it does not count): see _fleet.reported."""
    return _fleet.reported(host_vars(hostvars, host).get(var), key=key, absent=absent, failed_counts=failed_counts)
