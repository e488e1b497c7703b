# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_report.py: the report data (trash, totals, timeline, problems), through the trash_report filter.

The inputs are report_samples.py's; the assertions are the ones the report filters have always had to meet.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import (
    trash, trash_report, trash_report_html)
from report_samples import NOW, SWEEP_RESULT, fleet, make_report, sweep, view


@pytest.fixture
def report():
    return make_report()


def test_trash_lists_every_soft_deleted_domain_soonest_first_with_time_left(report):
    assert [(t['host'], t['name'], t['expires_in']) for t in report['trash']] == [
        ('hv1', 'broken', None), ('hv1', 'gone', -3600), ('hv1', 'soon', 3600), ('hv1', 'later', 345600)]
    soon = report['trash'][2]
    assert soon['time_left'] == '1h 0m' and soon['due_soon'] is True
    assert soon['vcpus'] == 2 and soon['memory_bytes'] == 256 * 1048576
    assert soon['disks'] == ['vda: /var/lib/libvirt/images/soon.qcow2']
    assert report['trash'][1]['time_left'] == 'overdue by 1h 0m: next sweep'
    later = report['trash'][3]
    assert later['locked'] and later['reclaimable'] is False and later['due_soon'] is False


def test_per_project_totals_and_next_reclaim(report):
    web = report['projects']['web']
    assert (web['domains'], web['vcpus'], web['memory_bytes'], web['disks']) == (3, 6, 3 * 256 * 1048576, 3)
    assert web['next_reclaim_at'] == '2024-05-01T11:00:00Z' and (web['overdue'], web['due_soon']) == (1, 1)
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


def test_hand_started_soft_deleted_guest_is_flagged():
    data = trash_report(fleet(hv1=([view('woke', power_state='running')], None)), ['hv1'], now=NOW)
    [item] = data['trash']
    assert item['warnings'] == ['running although soft-deleted (started by hand?); the sweep destroys it when it is due']
    assert 'running although soft-deleted' in trash_report_html(data)


def test_project_filter_keeps_other_projects_skipped_domains_off_the_report():
    record = sweep(dict(SWEEP_RESULT, failed_domains=[{'name': 'dbfail', 'uuid': 'uuid-dbfail', 'msg': 'db broke'}],
                        pending=[{'name': 'dbpend', 'uuid': 'uuid-dbpend', 'volumes': [{'id': 'v1'}]}]))
    data = trash_report(fleet(hv1=([view('soon', reclaim_at='2024-05-01T13:00:00Z'),
                                    view('later', project='db', reclaim_at='2024-05-05T12:00:00Z'),
                                    view('dbfail', project='db')], record)),
                        ['hv1'], now=NOW, project='web')
    assert [(s['name'], s['project']) for s in data['skipped']] == [('broken', 'web')]
    last = data['hosts']['hv1']['last_sweep']
    assert [s['name'] for s in last['skipped']] == ['broken']
    assert [k['name'] for k in last['kept']] == ['soon'] and [d['name'] for d in last['due_soon']] == ['soon']
    assert last['failed'] == [] and last['pending'] == [] and [r['name'] for r in last['reclaimed']] == ['old']
    assert [t['name'] for t in data['trash']] == ['soon'] and data['project'] == 'web'
    text = json.dumps(data)
    for other in ('"guarded"', '"name": "later"', 'dbfail', 'dbpend', 'db broke', '"project": "db"'):
        assert other not in text, other


def test_overdue_domains_are_listed_apart_from_those_due_soon(report):
    assert [i['name'] for i in report['overdue']] == ['gone']
    assert [i['name'] for i in report['due_soon']] == ['soon']
    assert (report['totals']['overdue'], report['totals']['due_soon']) == (1, 1)
    assert 'overdue by 1h 0m: hv1/gone (project web) at 2024-05-01T11:00:00Z; the next sweep reclaims it' in report['lines']
    assert not any(line.startswith('due within') and 'hv1/gone' in line for line in report['lines'])
    page = trash_report_html(report)
    overdue = page[page.index('<section id="overdue">'):]
    overdue = overdue[:overdue.index('</section>')]
    due = page[page.index('<section id="due-soon">'):]
    due = due[:due.index('</section>')]
    assert 'uuid-gone' in overdue and 'uuid-soon' not in overdue
    assert 'uuid-soon' in due and 'uuid-gone' not in due


def test_disk_sizes_per_domain_per_project_and_the_total_to_be_freed():
    gib = 1 << 30
    data = trash_report(fleet(hv1=([view('a', disk_bytes=2 * gib), view('b', project='db', disk_bytes=gib // 2),
                                    view('c', disk_bytes=None), view('up', vm_state='active', disk_bytes=9 * gib)],
                                   None)), ['hv1'], now=NOW)
    sizes = dict((i['name'], (i['disk_bytes'], i['disk_size'])) for i in data['trash'])
    assert sizes == {'a': (2 * gib, '2.0 GiB'), 'b': (gib // 2, '512 MiB'), 'c': (None, 'unknown')}
    assert data['projects']['web']['disk_bytes'] == 2 * gib and data['projects']['db']['disk_bytes'] == gib // 2
    assert data['totals']['disk_bytes'] == 2 * gib + gib // 2
    assert data['lines'][0].startswith('trash: 3 domain(s), 2.5 GiB on disk to be freed, ')
    page = trash_report_html(data)
    assert '2.5 GiB' in page and '512 MiB' in page


def test_each_domain_says_who_deleted_it_and_how_to_restore_it():
    history = [{'action': 'soft_delete', 'result': 'error', 'actor': 'mallory'},
               {'action': 'soft_delete', 'result': 'success', 'actor': 'alice@awx'},
               {'action': 'lock', 'result': 'success', 'actor': 'bob'}]
    data = trash_report(fleet(hv1=([view('a', uuid='4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50', history=history),
                                    view('b', project="we b';x", uuid='5b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50'),
                                    view('c', uuid='not a uuid; rm -rf /')], None)), ['hv1'], now=NOW)
    items = dict((i['name'], i) for i in data['trash'])
    assert items['a']['deleted_by'] == 'alice@awx' and items['b']['deleted_by'] is None
    assert items['a']['restore_command'] == ('ansible-playbook -i INVENTORY deferred.libvirt.restore '
                                             '-e names=4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50 -e project=web')
    # A project that is not plain text never becomes part of a command (an extra var is templated).
    assert items['b']['restore_command'] == ('ansible-playbook -i INVENTORY deferred.libvirt.restore '
                                             '-e names=5b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50')
    assert items['c']['restore_command'] is None
    page = trash_report_html(data)
    assert 'deferred.libvirt.restore -e names=4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50 -e project=web' in page
    assert 'alice@awx' in page


def test_trash_prints_one_line_per_domain_in_the_operators_words():
    uuid = '4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50'
    history = [{'action': 'soft_delete', 'result': 'success', 'actor': 'alice@awx'}]
    hostvars = fleet(hv1=([view('web02', uuid=uuid, reclaim_at='2024-05-07T11:00:00Z', disk_bytes=3 << 30,
                                history=history),
                           view('old', uuid='11111111-2222-3333-4444-555555555555', reclaim_at='2024-05-01T10:00:00Z',
                                user=None),
                           view('held', project='db', locked=True, lock_reason='legal hold', uuid='not plain'),
                           view('up', vm_state='active')], None))
    lines = trash(hostvars, ['hv1'], now=NOW)
    assert lines == [
        'hv1/old (project web, owner none): overdue by 2h 0m, unknown on disk, deleted by unknown (not recorded) at '
        '2024-04-30T12:00:00Z; restore: ansible-playbook -i INVENTORY deferred.libvirt.restore '
        '-e names=11111111-2222-3333-4444-555555555555 -e project=web',
        'hv1/held (project db, owner alice): never reclaimed as it is (locked (legal hold): skipped by the sweep), '
        'unknown on disk, deleted by unknown (not recorded) at 2024-04-30T12:00:00Z; restore: name it to the restore '
        'playbook (its UUID is not a plain one)',
        'hv1/web02 (project web, owner alice): in 5d 23h, 3.0 GiB on disk, deleted by alice@awx at '
        '2024-04-30T12:00:00Z; restore: ansible-playbook -i INVENTORY deferred.libvirt.restore -e names=%s '
        '-e project=web' % uuid]
    assert [line.split(' ')[0] for line in trash(hostvars, ['hv1'], project='db', now=NOW)] == ['hv1/held']
    # The same lines from a report already built, and its project filter.
    report = trash_report(hostvars, ['hv1'], now=NOW)
    assert trash(report) == lines
    assert [line.split(' ')[0] for line in trash(report, project='web')] == ['hv1/old', 'hv1/web02']


def test_trash_without_hosts_or_a_report_says_what_to_pass():
    with pytest.raises(AnsibleFilterError, match='pass a trash report, or hostvars and the list of hosts'):
        trash({'hv1': {}})
