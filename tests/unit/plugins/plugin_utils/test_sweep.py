# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_sweep.py: a host's sweep record, its line and the warning over every host's record.

The inputs are report_samples.py's; the assertions are the ones the report filters have always had to meet.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import (
    reclaim_sweep_line, reclaim_sweep_record, reclaim_warning)
from report_samples import NOW, SWEEP_RESULT, slurped, sweep


def test_sweep_record_counts_anomalies_and_due_soon():
    record = sweep()
    assert record['ok'] is True and record['duration_seconds'] == 30.0 and record['skipped_anomalies'] == 1
    assert [d['name'] for d in record['due_soon']] == ['soon']
    assert record['last_success_at'] == '2024-05-01T11:59:30Z'


def test_failed_sweep_keeps_the_last_success_time():
    first = sweep()
    failed = sweep(dict(SWEEP_RESULT, failed=True, msg='vm_reclaim: 1 failed',
                        summary=dict(SWEEP_RESULT['summary'], failed=1)),
                   finished_at='2024-05-02T00:00:00Z', previous=slurped(first))
    assert failed['ok'] is False and failed['last_success_at'] == '2024-05-01T11:59:30Z'
    assert reclaim_sweep_line(failed).endswith('- FAILED; 1 due within 1d')


def test_unreachable_host_is_not_swept():
    record = reclaim_sweep_record({'unreachable': True, 'msg': 'ssh: connection refused'}, 'hv3')
    assert record['ran'] is False and record['ok'] is False
    assert reclaim_sweep_line(record) == 'host hv3: NOT SWEPT (ssh: connection refused)'


def test_warning_lists_due_domains_of_every_host_and_nothing_when_none_are():
    hv = {'hv1': {'reclaim_sweep': sweep()}, 'hv2': {'reclaim_sweep': sweep(dict(SWEEP_RESULT, kept=[]))}}
    body = reclaim_warning(hv, ['hv1', 'hv2'], window='24h', now=NOW)
    assert body['count'] == 1 and [(d['host'], d['name']) for d in body['domains']] == [('hv1', 'soon')]
    assert body['warning_window_seconds'] == 86400
    assert reclaim_warning(hv, ['hv2'], window='24h', now=NOW)['count'] == 0


@pytest.mark.parametrize('reason, kind', [
    ('its lifecycle record cannot be read (bad XML); never reclaimed until it is fixed', 'anomaly'),
    ('tombstone: unreadable tombstone', 'anomaly'),
    ('locked (legal hold)', 'locked'),
    ('protected', 'protected'),
    ("over this run's limit of 5; left for the next sweep", 'limit'),
    ('domain x: another operation has held its lock for more than 120s (/x.lock); not reclaimed in this sweep',
     'lock_held'),
    ('domain x is no longer soft-deleted (restored meanwhile); not reclaimed', 'restored'),
    ('task restoring is in progress or was interrupted; run that operation again', 'task_in_progress'),
])
def test_skip_reasons_are_sorted_into_kinds(reason, kind):
    result = dict(SWEEP_RESULT, skipped_domains=[{'name': 'x', 'uuid': 'u', 'reason': reason}])
    assert sweep(result)['skipped'][0]['kind'] == kind


def test_a_sweep_that_finished_a_tombstone_is_recorded_on_the_newest_ansible_core_too():
    # ansible-core 2.19 and later register the async flag in place of a module's own "finished" list: the sweep of
    # a host that finished a tombstone failed its last_sweep.json there ("'bool' object is not iterable").
    # The module returns the list as finished_tombstones too, which no line reads: the record keeps it.
    done = [{'name': 'old', 'uuid': 'u-old'}]
    record = reclaim_sweep_record(dict(SWEEP_RESULT, finished=True, finished_tombstones=done), 'hv2')
    assert record['finished'] == done and record['ok'] is True
    # A result of an earlier version (no finished_tombstones) registered on the newest line: an empty list, no error.
    record = reclaim_sweep_record(dict(SWEEP_RESULT, finished=True), 'hv2')
    assert record['finished'] == [] and record['ok'] is True
    listed = reclaim_sweep_record(dict(SWEEP_RESULT, finished=[{'name': 'old', 'uuid': 'u-old'}]), 'hv2')
    assert listed['finished'] == [{'name': 'old', 'uuid': 'u-old'}]
