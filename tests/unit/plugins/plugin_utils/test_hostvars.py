# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_hostvars.py: one host's vars, whether its registered result counts, the collector paused."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gc

from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import host_result, host_vars, without_gc_pauses


class Strict(dict):
    """Like HostVars for a host outside the inventory: the look-up raises something other than KeyError."""

    def __getitem__(self, key):
        if key not in self:
            raise RuntimeError('no such host %s' % key)
        return dict.__getitem__(self, key)


def test_a_host_outside_the_inventory_has_no_vars():
    assert host_vars(Strict(hv1={'a': 1}), 'hv1') == {'a': 1}
    assert host_vars(Strict(), 'hv9') == {}


def test_a_hosts_result_is_judged_by_the_fleet_formats_rule():
    hv = Strict(hv1={'r': {'instances': []}}, hv2={'r': {'failed': True, 'msg': 'down'}})
    assert host_result(hv, 'hv1', 'r') == ({'instances': []}, None)
    assert host_result(hv, 'hv2', 'r') == (None, 'down')
    assert host_result(hv, 'hv9', 'r') == (None, 'did not report')
    assert host_result(hv, 'hv9', 'r', key='summary', absent='did not run') == (None, 'did not run')


def test_the_collector_is_paused_while_the_filter_runs_and_restored_after():
    seen = []
    wrapped = without_gc_pauses(lambda: seen.append(gc.isenabled()))
    was = gc.isenabled()
    gc.enable()
    try:
        wrapped()
        assert seen == [False] and gc.isenabled()
    finally:
        if not was:
            gc.disable()
