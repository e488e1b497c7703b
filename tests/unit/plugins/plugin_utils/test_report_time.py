# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_report_time.py: the times and spans the report, the sweep and the metrics print."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.plugin_utils import _report_time as t


def test_spans_read_as_an_operator_reads_them():
    assert [t.human(s) for s in (None, 40, 300, 4 * 3600 + 600, 2 * 86400 + 3 * 3600)] == [
        'unknown', '40s', '5m', '4h 10m', '2d 3h']
    assert t.time_left(-3600) == 'overdue by 1h 0m: next sweep' and t.time_left(None).startswith('never')


def test_when_says_in_or_overdue_by_in_human_units_never_raw_seconds():
    assert t.when(518270) == 'in 5d 23h' and t.when(-7200) == 'overdue by 2h 0m'
    assert t.when(None) == 'no readable reclaim_at (never reclaimed until the record is fixed)'


def test_sizes_read_as_an_operator_reads_them():
    assert [t.human_bytes(v) for v in (None, 0, 512, 1536, 5 * 1048576, 3 * 1073741824 // 2, 200 * 1073741824)] == [
        'unknown', '0 B', '512 B', '1.5 KiB', '5.0 MiB', '1.5 GiB', '200 GiB']


def test_times_and_windows():
    assert t.epoch('2024-05-01T12:00:00Z') == 1714564800 and t.epoch('soon') is None
    assert t.window_seconds('24h') == 86400 and t.window_seconds(None) == 0
    with pytest.raises(t.ReportError, match="warning_window: 'soon' is not a duration"):
        t.window_seconds('soon')
    with pytest.raises(t.ReportError, match='is not a UTC ISO 8601 time'):
        t.now_of('yesterday')


def test_the_trash_is_ordered_soonest_first_then_by_host_and_name():
    items = [{'reclaim_at': '2024-05-02T00:00:00Z', 'host': 'a', 'name': 'x'},
             {'reclaim_at': '2024-05-01T00:00:00Z', 'host': 'b', 'name': 'y'},
             {'reclaim_at': None, 'host': 'c', 'name': 'z'}]
    assert [i['name'] for i in sorted(items, key=t.expiry_order)] == ['z', 'y', 'x']
