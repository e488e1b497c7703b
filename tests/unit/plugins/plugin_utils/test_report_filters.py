# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_report_filters.py: each report filter turns bad input into an error for the operator.

The inputs are report_samples.py's; the assertions are the ones the report filters have always had to meet.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import (
    terminated_lines, trash_report, trash_report_html)


def test_bad_window_is_refused():
    with pytest.raises(AnsibleFilterError, match="warning_window: 'soon' is not a duration.*nothing was written"):
        trash_report({}, [], warning_window='soon')
    with pytest.raises(AnsibleFilterError, match='not a trash report'):
        trash_report_html({'hosts': {}})


def test_terminated_lines_say_what_each_host_terminated_would_terminate_or_failed():
    hostvars = {
        'hv1': {'empty_trash_result': {'changed': True, 'instances': [
            {'name': 'web02', 'action': 'terminated', 'disks_deleted': ['/img/web02.qcow2'],
             'volumes_deleted': ['vol-1'], 'disks_kept': [{'path': '/srv/golden.qcow2', 'reason': 'backing file'}]},
            {'name': 'web03', 'failed': True, 'msg': 'domain web03: cannot destroy'}]}},
        'hv2': {'empty_trash_result': {'changed': False, 'instances': [
            {'name': 'web04', 'action': 'would_terminate', 'disks_deleted': ['/img/web04.qcow2'],
             'volumes_pending': [{'id': 'vol-2', 'error': 'Cinder is down'}]}]}},
        'hv3': {'empty_trash_result': {'failed': True, 'msg': 'cannot connect to libvirt'}},
        'hv4': {},
    }
    assert terminated_lines(hostvars, ['hv1', 'hv2', 'hv3', 'hv4', 'absent']) == [
        'hv1/web02: terminated; disks deleted: /img/web02.qcow2; Cinder volumes deleted: vol-1; '
        'disks kept: /srv/golden.qcow2 (backing file)',
        'hv1/web03: FAILED: domain web03: cannot destroy',
        'hv2/web04: would terminate; disks deleted: /img/web04.qcow2; Cinder work pending for vol-2',
        'hv3: FAILED: cannot connect to libvirt']
