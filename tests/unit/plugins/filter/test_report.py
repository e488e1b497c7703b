# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report filters on synthetic vm_info / vm_reclaim results shaped as the modules return them.

The page in a real browser, promtool and the real fleet are in tests/integration/test_report.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json
import re

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import (
    reclaim_sweep_line, reclaim_sweep_metrics, reclaim_sweep_record, reclaim_warning, trash_report,
    trash_report_html, trash_report_metrics)

NOW = '2024-05-01T12:00:00Z'


def view(name, project='web', vm_state='soft_deleted', reclaim_at='2024-05-02T06:00:00Z', **more):
    item = {'name': name, 'uuid': 'uuid-%s' % name, 'project': project, 'user': 'alice', 'vm_state': vm_state,
            'task_state': None, 'power_state': 'shutoff', 'vcpus': 2, 'memory_mb': 256, 'deleted_at': None,
            'reclaim_at': None, 'locked': False, 'lock_reason': None, 'protected': False, 'managed': True,
            'anomalies': [], 'metadata_error': None, 'volumes': [],
            'disks': [{'target': 'vda', 'device': 'disk', 'type': 'file', 'path': '/var/lib/libvirt/images/%s.qcow2'
                       % name, 'pool': None, 'volume': None}]}
    if vm_state == 'soft_deleted':
        item.update(deleted_at='2024-04-30T12:00:00Z', reclaim_at=reclaim_at)
    item.update(more)
    return item


def tombstone(name, project='web', pending=1):
    return view(name, project, vm_state='deleted', power_state='gone', terminated_at='2024-05-01T11:00:00Z',
                disks=[], volumes_pending=[{'id': 'vol-%s-%d' % (name, i), 'delete_on_termination': True,
                                            'error': 'Cinder is not reachable'} for i in range(pending)])


SWEEP_RESULT = {
    'changed': True, 'request_id': 'req-1', 'summary': {'reclaimed': 1, 'failed': 0, 'skipped': 2, 'kept': 2,
                                                        'pending': 0, 'finished': 0},
    'reclaimed': [{'name': 'old', 'uuid': 'uuid-old', 'project': 'web', 'deleted_at': '2024-04-01T00:00:00Z',
                   'reclaim_at': '2024-04-02T00:00:00Z'}],
    'failed_domains': [],
    'skipped_domains': [
        {'name': 'broken', 'uuid': 'uuid-broken', 'project': 'web',
         'reason': 'its lifecycle record is incomplete (reclaim_at is missing); never reclaimed until it is fixed'},
        {'name': 'guarded', 'uuid': 'uuid-guarded', 'project': 'db', 'reason': 'protected'}],
    'kept': [{'name': 'soon', 'uuid': 'uuid-soon', 'project': 'web', 'deleted_at': '2024-04-30T12:00:00Z',
              'reclaim_at': '2024-05-01T13:00:00Z', 'expires_in': 3600},
             {'name': 'later', 'uuid': 'uuid-later', 'project': 'db', 'deleted_at': '2024-04-30T12:00:00Z',
              'reclaim_at': '2024-05-05T12:00:00Z', 'expires_in': 345600}],
    'pending': [], 'finished': [],
}


def slurped(record):
    return {'content': base64.b64encode(json.dumps(record).encode()).decode(), 'encoding': 'base64'}


def sweep(result=None, **kw):
    kw.setdefault('started_at', '2024-05-01T11:59:00Z')
    kw.setdefault('finished_at', '2024-05-01T11:59:30Z')
    kw.setdefault('warning_window', '24h')
    return reclaim_sweep_record(result or SWEEP_RESULT, 'hv1', **kw)


def fleet(**hosts):
    hv = {}
    for host, (views, record) in hosts.items():
        hv[host] = {'state_facts_vm_info': {'instances': views, 'failed': False}}
        if record is not None:
            hv[host]['report_last_sweep'] = slurped(record)
    return hv


@pytest.fixture
def report():
    return trash_report(fleet(
        hv1=([view('soon', reclaim_at='2024-05-01T13:00:00Z'), view('gone', reclaim_at='2024-05-01T11:00:00Z'),
              view('broken', reclaim_at=None, anomalies=['reclaim_at is missing']),
              view('later', project='db', reclaim_at='2024-05-05T12:00:00Z', locked=True, lock_reason='legal hold'),
              view('running', vm_state='active', power_state='running'), tombstone('dead')], sweep()),
        hv2=([view('idle', vm_state='stopped')], sweep(dict(SWEEP_RESULT, skipped_domains=[], kept=[])))),
        ['hv1', 'hv2'], now=NOW, warning_window='24h')


def test_trash_lists_every_soft_deleted_domain_soonest_first_with_time_left(report):
    assert [(t['host'], t['name'], t['expires_in']) for t in report['trash']] == [
        ('hv1', 'broken', None), ('hv1', 'gone', -3600), ('hv1', 'soon', 3600), ('hv1', 'later', 345600)]
    soon = report['trash'][2]
    assert soon['time_left'] == '1h 0m' and soon['due_soon'] is True
    assert soon['vcpus'] == 2 and soon['memory_bytes'] == 256 * 1048576
    assert soon['disks'] == ['vda: /var/lib/libvirt/images/soon.qcow2']
    assert report['trash'][1]['time_left'] == 'expired 1h 0m ago: next sweep'
    later = report['trash'][3]
    assert later['locked'] and later['reclaimable'] is False and later['due_soon'] is False


def test_per_project_totals_and_next_reclaim(report):
    web = report['projects']['web']
    assert (web['domains'], web['vcpus'], web['memory_bytes'], web['disks']) == (3, 6, 3 * 256 * 1048576, 3)
    assert web['next_reclaim_at'] == '2024-05-01T11:00:00Z' and web['due_soon'] == 2
    assert web['pending_volumes'] == 1 and web['hosts'] == ['hv1']
    # A locked domain is never the next to go.
    assert report['projects']['db']['next_reclaim_at'] is None


def test_empty_trash_on_a_host_says_so(report):
    assert report['hosts']['hv2']['trash'] == [] and report['hosts']['hv2']['reported'] is True
    page = trash_report_html(report)
    assert '<p class="empty" id="trash-hv2-empty">The trash is empty on hv2.</p>' in page


def test_timeline_buckets_the_coming_days(report):
    counts = [(b['label'], b['count']) for b in report['timeline']]
    assert counts[0] == ('overdue (next sweep)', 1) and counts[1] == ('today', 1)
    assert sum(c for dummy, c in counts) == 2  # broken (rule 1) and later (locked) are never reclaimed


def test_tombstones_with_pending_cinder_work_and_problems(report):
    [tomb] = report['tombstones']
    assert tomb['name'] == 'dead' and [v['id'] for v in tomb['volumes_pending']] == ['vol-dead-0']
    assert report['ok'] is False
    assert 'hv1/dead: Cinder work pending for 1 volume(s)' in report['problems']
    assert 'hv1/broken is never reclaimed until its record is fixed: reclaim_at is missing' in report['problems']


def test_last_sweep_skips_are_reported_with_their_kind(report):
    assert [(s['host'], s['name'], s['kind']) for s in report['skipped']] == [
        ('hv1', 'broken', 'anomaly'), ('hv1', 'guarded', 'protected')]
    assert report['hosts']['hv1']['last_sweep']['counts']['reclaimed'] == 1


def test_nothing_wrong_is_said_plainly():
    record = sweep(dict(SWEEP_RESULT, skipped_domains=[], kept=[]))
    clean = trash_report(fleet(hv1=([view('a', reclaim_at='2024-05-09T00:00:00Z')], record)), ['hv1'], now=NOW)
    assert clean['ok'] is True and clean['problems'] == []
    assert clean['lines'][0].endswith('nothing is wrong')
    assert 'Nothing is wrong' in trash_report_html(clean)


def test_host_without_a_recorded_sweep_or_report_is_a_problem():
    data = trash_report(dict(fleet(hv1=([], None)), hv2={'state_facts_vm_info': {'failed': True, 'msg': 'down'}}),
                        ['hv1', 'hv2', 'hv3'], now=NOW)
    assert data['missing'] == {'hv2': 'down', 'hv3': 'did not report'}
    assert 'hv1: no sweep recorded (last_sweep.json in its state_dir)' in data['problems']
    assert data['lines'][2] == 'host hv2: DID NOT REPORT (down)'


def test_page_is_self_contained_and_escapes_names():
    data = trash_report(fleet(hv1=([view('<script>x</script>', reclaim_at='2024-05-03T00:00:00Z')], None)),
                        ['hv1'], now=NOW)
    page = trash_report_html(data)
    assert '&lt;script&gt;x&lt;/script&gt;' in page and '<script>x' not in page
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert 'http://' not in page and 'https://' not in page and '@import' not in page and 'url(' not in page


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


def test_label_values_are_escaped():
    data = trash_report(fleet(hv1=([view('a', project='we"b\\x')], None)), ['hv1'], now=NOW)
    assert 'project="we\\"b\\\\x"' in trash_report_metrics(data)


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


def test_sweep_metrics_for_the_hosts_own_node_exporter():
    text = reclaim_sweep_metrics(sweep())
    assert 'deferred_libvirt_sweep_last_success_timestamp_seconds{host="hv1"} 1714564770\n' in text
    assert 'deferred_libvirt_sweep_due_soon_domains{host="hv1",project="web"} 1\n' in text
    assert 'deferred_libvirt_sweep_due_soon_domains{host="hv1",project="db"} 0\n' in text
    assert 'deferred_libvirt_sweep_last_domains{host="hv1",result="kept"} 2\n' in text


def test_warning_lists_due_domains_of_every_host_and_nothing_when_none_are():
    hv = {'hv1': {'reclaim_sweep': sweep()}, 'hv2': {'reclaim_sweep': sweep(dict(SWEEP_RESULT, kept=[]))}}
    body = reclaim_warning(hv, ['hv1', 'hv2'], window='24h', now=NOW)
    assert body['count'] == 1 and [(d['host'], d['name']) for d in body['domains']] == [('hv1', 'soon')]
    assert body['warning_window_seconds'] == 86400
    assert reclaim_warning(hv, ['hv2'], window='24h', now=NOW)['count'] == 0


def test_bad_window_is_refused():
    with pytest.raises(AnsibleFilterError, match="warning_window: 'soon' is not a duration.*nothing was written"):
        trash_report({}, [], warning_window='soon')
    with pytest.raises(AnsibleFilterError, match='not a trash report'):
        trash_report_html({'hosts': {}})


def test_hand_started_soft_deleted_guest_is_flagged():
    data = trash_report(fleet(hv1=([view('woke', power_state='running')], None)), ['hv1'], now=NOW)
    [item] = data['trash']
    assert item['warnings'] == ['running although soft-deleted (started by hand?); the sweep destroys it when it is due']
    assert 'running although soft-deleted' in trash_report_html(data)


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
