# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""An incomplete fleet index, on the control node (issue 23, items 1 and 7): the sweep's summary and record say which
hosts were missing; a disk a terminated domain keeps pending is counted as that domain's in the next index, and the
report, its page and the metrics show it until it is gone."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_index import fleet_index, fleet_index_for
from ansible_collections.deferred.libvirt.plugins.plugin_utils._reclaim_summary import reclaim_summary
from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import (
    reclaim_sweep_line, trash_report, trash_report_html, trash_report_metrics)
from report_samples import NOW, fleet, sweep, view

SHARED = '/srv/shared-images/web.qcow2'
PENDING = [{'target': 'vda', 'path': SHARED, 'real_path': SHARED, 'type': 'file', 'st_dev': 2049, 'st_ino': 77}]


def gone_with_pending_disk(name='dead'):
    return view(name, vm_state='deleted', power_state='gone', terminated_at='2024-05-01T11:00:00Z', disks=[],
                volumes_pending=[], disks_pending=PENDING)


def sweep_result(complete, missing=(), disks_pending=()):
    return {'changed': True, 'summary': {'reclaimed': 1, 'failed': 0, 'skipped': 0, 'kept': 0, 'pending': 0,
                                         'finished': 0, 'disks_pending': len(disks_pending)},
            'reclaimed': [{'name': 'web', 'uuid': 'uuid-web'}], 'failed_domains': [], 'skipped_domains': [],
            'kept': [], 'pending': [], 'finished': [], 'disks_pending': list(disks_pending),
            'fleet': {'given': True, 'complete': complete, 'missing': list(missing)}}


def test_the_sweep_summary_says_the_index_was_incomplete_and_which_hosts_were_missing():
    pending = {'name': 'web', 'uuid': 'uuid-web', 'disks': [SHARED], 'reason': 'the fleet index is incomplete (hv3 did '
               'not report)'}
    hostvars = {'hv1': {'reclaim_result': sweep_result(False, ['hv3'], [pending])},
                'hv2': {'reclaim_result': sweep_result(False, ['hv3'])}}
    summary = reclaim_summary(hostvars, ['hv1', 'hv2'])
    assert summary['fleet_complete'] is False and summary['fleet_missing'] == ['hv3']
    assert summary['lines'][1].startswith('FLEET INDEX INCOMPLETE: hv3 did not report')
    assert 'disks pending hv1/web: %s (the fleet index is incomplete (hv3 did not report))' % SHARED in summary['lines']

    complete = reclaim_summary({'hv1': {'reclaim_result': sweep_result(True)}}, ['hv1'])
    assert complete['fleet_complete'] is True and not [line for line in complete['lines'] if 'INCOMPLETE' in line]


def test_each_hosts_sweep_line_and_record_say_the_index_was_incomplete():
    record = sweep(sweep_result(False, ['hv3'], [{'name': 'web', 'uuid': 'uuid-web', 'disks': [SHARED]}]))
    assert record['fleet_missing'] == ['hv3'] and record['disks_pending'][0]['disks'] == [SHARED]
    line = reclaim_sweep_line(record)
    assert 'fleet index INCOMPLETE (hv3 did not report)' in line and '1 terminated domain(s) with disks pending' in line


def test_an_unreadable_chain_is_said_as_the_reason_the_index_was_incomplete():
    # Every host reported, but hv2 could not read a backing chain: the summary and each line say that, not "did not
    # report" of nobody.
    gap = "hv2: the backing chain of db's disk vda cannot be read (backing name 'json:{' cannot be parsed)"
    result = dict(sweep_result(False), fleet={'given': True, 'complete': False, 'missing': [], 'gaps': [gap]})
    summary = reclaim_summary({'hv3': {'reclaim_result': result}}, ['hv3'])
    assert summary['fleet_complete'] is False and summary['fleet_gaps'] == [gap]
    assert summary['lines'][1].startswith('FLEET INDEX INCOMPLETE: %s; disks another host could reach were kept' % gap)
    record = sweep(result)
    assert record['fleet_gaps'] == [gap]
    assert 'fleet index INCOMPLETE (%s)' % gap in reclaim_sweep_line(record)


def test_a_disk_a_terminated_domain_keeps_pending_is_shared_with_any_domain_that_uses_it_now():
    hostvars = {'hv2': {'state_facts_vm_info': {'instances': [gone_with_pending_disk()], 'failed': False}},
                'hv3': {'state_facts_vm_info': {'instances': [view('other', disks=[
                    {'target': 'vdb', 'device': 'disk', 'type': 'file', 'path': SHARED, 'pool': None,
                     'volume': None}])], 'failed': False}}}
    index = fleet_index(hostvars, ['hv2', 'hv3'])
    # The tombstone is no copy of anything (rule 9)...
    assert list(index['domains']) == ['uuid-other']
    # ...but hv2's next sweep sees that hv3/other uses the disk it keeps pending, and hv3's sees the tombstone's.
    mine = fleet_index_for(index, 'hv2')['shared_disks']['path:%s' % SHARED]
    assert [(r['host'], r['name']) for r in mine] == [('hv3', 'other')]
    # The file's identity is a key too: the same file under another path (a second mount) is found.
    hostvars['hv3']['state_facts_vm_info']['instances'][0]['disks'][0].update(path='/mnt/images/web.qcow2',
                                                                              st_dev=2049, st_ino=77)
    again = fleet_index_for(fleet_index(hostvars, ['hv2', 'hv3']), 'hv2')['shared_disks']
    assert [r['name'] for r in again['file:2049:77']] == ['other']


def test_the_report_the_page_and_the_metrics_show_disks_pending_until_a_complete_sweep():
    data = trash_report(fleet(hv1=([gone_with_pending_disk()], None)), ['hv1'], now=NOW)
    [tomb] = data['tombstones']
    assert [d['path'] for d in tomb['disks_pending']] == [SHARED] and data['totals']['pending_disks'] == 1
    assert ('hv1/dead: 1 disk(s) kept while the fleet index was incomplete, pending until a sweep with a complete '
            'index: %s' % SHARED) in data['problems']
    assert 'deferred_libvirt_pending_disks{host="hv1",project="web"} 1\n' in trash_report_metrics(data)
    page = trash_report_html(data)
    assert 'Terminated, with disks pending' in page and SHARED in page
