# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reclaim eligibility (_eligibility.py) of a vm_info view against the sweep's Clock: due, or skipped and why.

Pure Python on views written by hand: a reclaim_at that is not a time is a skip, not an exception, and how late a
sweep may plausibly come depends on the retention interval (spec rule 11).
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
