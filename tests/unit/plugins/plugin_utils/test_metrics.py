# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_metrics.py: the report and a sweep as Prometheus text.

The inputs are report_samples.py's; the assertions are the ones the report filters have always had to meet.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

import pytest

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import (
    reclaim_sweep_metrics, trash_report, trash_report_metrics)
from report_samples import NOW, fleet, make_report, sweep, view


@pytest.fixture
def report():
    return make_report()


def test_report_metrics_per_host_and_project(report):
    text = trash_report_metrics(report)
    assert 'deferred_libvirt_trash_domains{host="hv1",project="web"} 3\n' in text
    assert 'deferred_libvirt_trash_memory_bytes{host="hv1",project="db"} 268435456\n' in text
    assert 'deferred_libvirt_trash_next_reclaim_timestamp_seconds{host="hv1",project="web"} 1714561200\n' in text
    assert 'deferred_libvirt_pending_cinder_volumes{host="hv1",project="web"} 1\n' in text
    assert 'deferred_libvirt_report_last_sweep_domains{host="hv1",result="reclaimed"} 1\n' in text
    assert 'deferred_libvirt_report_last_sweep_skipped_anomalies{host="hv1"} 1\n' in text
    assert 'deferred_libvirt_report_last_sweep_duration_seconds{host="hv1"} 30.0\n' in text
    assert 'deferred_libvirt_host_up{host="hv2"} 1\n' in text
    # One HELP and TYPE per family, before its samples.
    families = re.findall(r'^# TYPE (\S+) (\S+)$', text, re.M)
    assert len(families) == len(set(families)) and all(kind == 'gauge' for dummy, kind in families)


def test_report_metrics_export_disk_bytes_and_overdue_apart_from_due_soon():
    data = trash_report(fleet(hv1=([view('a', disk_bytes=3 << 30, reclaim_at='2024-05-01T11:00:00Z'),
                                    view('b', disk_bytes=1 << 30, reclaim_at='2024-05-01T13:00:00Z')], None)),
                        ['hv1'], now=NOW)
    text = trash_report_metrics(data)
    assert 'deferred_libvirt_trash_disk_bytes{host="hv1",project="web"} %d\n' % (4 << 30) in text
    assert 'deferred_libvirt_trash_overdue_domains{host="hv1",project="web"} 1\n' in text
    assert 'deferred_libvirt_trash_due_soon_domains{host="hv1",project="web"} 1\n' in text


def test_label_values_are_escaped():
    data = trash_report(fleet(hv1=([view('a', project='we"b\\x')], None)), ['hv1'], now=NOW)
    assert 'project="we\\"b\\\\x"' in trash_report_metrics(data)


def test_sweep_metrics_for_the_hosts_own_node_exporter():
    text = reclaim_sweep_metrics(sweep())
    assert 'deferred_libvirt_sweep_last_success_timestamp_seconds{host="hv1"} 1714564770\n' in text
    assert 'deferred_libvirt_sweep_due_soon_domains{host="hv1",project="web"} 1\n' in text
    assert 'deferred_libvirt_sweep_due_soon_domains{host="hv1",project="db"} 0\n' in text
    assert 'deferred_libvirt_sweep_last_domains{host="hv1",result="kept"} 2\n' in text
