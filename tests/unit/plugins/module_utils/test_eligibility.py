# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reclaim eligibility (_eligibility.py) of a vm_info view against the sweep's Clock: due, or skipped and why.

Pure Python on views written by hand: a reclaim_at that is not a time is a skip, not an exception, and how late a
sweep may plausibly come depends on the retention interval (rule 11).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
from ansible_collections.deferred.libvirt.plugins.module_utils import _record

from ops_support import NOW


def test_eligibility_of_a_view_whose_reclaim_at_is_not_a_time_is_skip_not_an_exception():
    view = {'vm_state': 'soft_deleted', 'reclaim_at': '0001-01-01T00:00:00+05:00', 'anomalies': []}
    verdict, reason = eligible.eligibility(view, NOW)
    assert verdict == eligible.SKIP and 'not a time' in reason


def test_a_sweep_two_days_late_for_an_hourly_retention_is_a_clock_jump_but_not_for_a_weekly_one():
    clock = eligible.Clock(NOW)
    hourly = {'vm_state': 'soft_deleted', 'anomalies': [], 'task_state': None,
              'deleted_at': _record.format_time(NOW - datetime.timedelta(hours=49)),
              'reclaim_at': _record.format_time(NOW - datetime.timedelta(hours=48))}
    assert eligible.eligibility(hourly, clock)[0] == eligible.SKIP
    weekly = dict(hourly, deleted_at=_record.format_time(NOW - datetime.timedelta(days=9)))
    assert eligible.eligibility(weekly, clock)[0] == eligible.DUE


# -- rule 11 against the boot clock (issue 24, item 5): injected samples, no real clock --------------------------

def _sample(wall, boot, boot_id='boot-a'):
    return {'wall': wall, 'boot_seconds': boot, 'boot_id': boot_id}


def test_a_wall_clock_stepped_10_days_forward_within_one_boot_blocks_the_sweep():
    last = _sample('2030-01-01T00:00:00Z', 1000.0)
    now = _sample('2030-01-11T01:00:00Z', 1000.0 + 3600)
    out = eligible.check_clock(last, now, 300)
    assert out['state'] == eligible.CLOCK_FORWARD and out['blocks']
    assert out['step_seconds'] == 10 * 86400
    assert 'stepped 10d forward' in out['message'] and 'nothing is reclaimed' in out['message']


def test_time_that_passed_on_both_clocks_is_no_step_and_drift_within_the_tolerance_is_none_either():
    last = _sample('2030-01-01T00:00:00Z', 1000.0)
    assert eligible.check_clock(last, _sample('2030-01-08T00:00:00Z', 1000.0 + 7 * 86400), 300)['state'] == 'ok'
    assert eligible.check_clock(last, _sample('2030-01-01T01:04:00Z', 1000.0 + 3600), 300)['blocks'] is False


def test_a_wall_clock_stepped_back_is_reported_and_blocks_nothing():
    out = eligible.check_clock(_sample('2030-01-11T00:00:00Z', 1000.0), _sample('2030-01-01T01:00:00Z', 4600.0), 300)
    assert out['state'] == eligible.CLOCK_BACKWARD and not out['blocks']
    assert 'stepped 10d back' in out['message']


def test_across_a_reboot_the_kernels_synchronised_flag_decides():
    last = _sample('2030-01-01T00:00:00Z', 99999.0, 'boot-a')
    now = _sample('2030-01-11T00:00:00Z', 30.0, 'boot-b')
    assert eligible.check_clock(last, now, 300, (True, None))['state'] == eligible.CLOCK_REBOOT
    unsynced = eligible.check_clock(last, now, 300, (False, None))
    assert unsynced['blocks'] and 'not synchronised' in unsynced['message']
    unknown = eligible.check_clock(last, now, 300, (None, 'adjtimex failed: EPERM'))
    assert not unknown['blocks'] and 'cannot be read (adjtimex failed: EPERM)' in unknown['message']


def test_the_first_sweep_has_nothing_to_compare():
    assert eligible.check_clock(None, _sample('2030-01-01T00:00:00Z', 1.0), 300)['state'] == eligible.CLOCK_FIRST


def test_the_real_clocks_of_this_host_can_be_read():
    sample = eligible.clock_sample(_record.utcnow())
    assert sample['boot_seconds'] > 0 and sample['boot_id']
    assert eligible.time_synchronised()[0] in (True, False)
