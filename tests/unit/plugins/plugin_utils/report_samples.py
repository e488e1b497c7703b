# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_info and vm_reclaim results shaped as the modules return them, shared by the report's tests (not a test file).

The page in a real browser, promtool and the real fleet are in tests/integration/test_report.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import reclaim_sweep_record, trash_report

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


def make_report():
    """Two hosts: hv1 with every kind of trash (due, expired, broken, locked, a tombstone), hv2 with none."""
    return trash_report(fleet(
        hv1=([view('soon', reclaim_at='2024-05-01T13:00:00Z'), view('gone', reclaim_at='2024-05-01T11:00:00Z'),
              view('broken', reclaim_at=None, anomalies=['reclaim_at is missing']),
              view('later', project='db', reclaim_at='2024-05-05T12:00:00Z', locked=True, lock_reason='legal hold'),
              view('running', vm_state='active', power_state='running'), tombstone('dead')], sweep()),
        hv2=([view('idle', vm_state='stopped')], sweep(dict(SWEEP_RESULT, skipped_domains=[], kept=[])))),
        ['hv1', 'hv2'], now=NOW, warning_window='24h')
