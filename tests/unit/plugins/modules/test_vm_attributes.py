# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_attributes against libvirt's test:///default: run as Ansible runs it (ad hoc), and in process.

The test driver's state does not outlive an ad-hoc run, which starts from the
default running domain ``test`` without a record; the in-process runs
(cheaper, and able to show what one run leaves for the next) share the state
of the test's ``conn``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

URI = 'test:///default'
VOLUME = '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00'


def args(tmp_path, **more):
    params = {'uri': URI, 'name': 'test', 'state_dir': str(tmp_path / 'state')}
    params.update(more)
    return params


def events(tmp_path):
    path = tmp_path / 'state' / 'events.jsonl'
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_sets_owner_and_durations_and_reports_the_record(run_module, tmp_path):
    run = run_module('vm_attributes', args(tmp_path, project='web', user='alice', reclaim_interval='3d',
                                           shutdown_timeout='90s'))
    assert (run.rc, run.status) == (0, 'CHANGED'), run.stdout + run.stderr
    assert run.result['changed'] is True
    assert run.result['msg'] == 'vm_attributes: 1 domain(s), 1 changed'
    instance = run.result['instances'][0]
    assert (instance['name'], instance['changed'], instance['failed']) == ('test', True, False)
    record = instance['record']
    assert (record['managed'], record['project'], record['user']) == (True, 'web', 'alice')
    assert (record['reclaim_interval'], record['shutdown_timeout']) == (259200, 90)
    assert record['vm_state'] == 'active'


def test_a_change_is_journalled_as_an_update_event(conn, run_in_process, tmp_path):
    result = run_in_process('vm_attributes', args(tmp_path, locked=True, lock_reason='INC-1234'))
    journal = events(tmp_path)
    assert [e['event_type'] for e in journal] == ['instance.update']
    assert journal[0]['request_id'] == result['request_id']
    assert journal[0]['domain'] == 'test'
    assert journal[0]['payload'] == {'changed': ['lock_reason', 'locked']}


def test_volumes_are_recorded(conn, run_in_process, tmp_path):
    result = run_in_process('vm_attributes', args(tmp_path, volumes=[
        {'id': VOLUME, 'target': 'vdb', 'delete_on_termination': True},
        {'id': '7f3c2a10-1b2d-4e5f-8a9b-0c1d2e3f4a5b'},
    ]))
    assert result['instances'][0]['record']['volumes'] == [
        {'id': VOLUME, 'target': 'vdb', 'delete_on_termination': True},
        {'id': '7f3c2a10-1b2d-4e5f-8a9b-0c1d2e3f4a5b', 'target': None, 'delete_on_termination': False},
    ]


def test_check_mode_says_what_would_change_and_touches_nothing(run_module, tmp_path):
    run = run_module('vm_attributes', args(tmp_path, project='web'), check=True)
    assert run.rc == 0
    assert run.result['changed'] is True
    assert run.result['instances'][0]['record']['project'] == 'web'
    assert not (tmp_path / 'state').exists()


def test_diff_mode_shows_the_record_before_and_after(run_module, tmp_path):
    run = run_module('vm_attributes', args(tmp_path, protected=True), diff=True)
    assert '--- before: test\n+++ after: test\n' in run.stdout
    assert '-    "protected": false,\n+    "protected": true,\n' in run.stdout
    assert '-    "managed": false,\n+    "managed": true,\n' in run.stdout


def test_without_diff_mode_no_diff_is_returned(conn, run_in_process, tmp_path):
    result = run_in_process('vm_attributes', args(tmp_path, protected=True))
    assert result['changed'] is True
    assert 'diff' not in result
    assert 'diff' not in result['instances'][0]


def test_default_clears_a_duration(conn, run_in_process, tmp_path):
    run_in_process('vm_attributes', args(tmp_path, reclaim_interval='7d'))
    result = run_in_process('vm_attributes', args(tmp_path, reclaim_interval='default'))
    assert result['changed'] is True
    assert result['instances'][0]['record']['reclaim_interval'] is None


# -- bad input: a clear message, nothing changed ---------------------------------

def fails(run, msg, tmp_path):
    assert run.rc != 0
    assert run.failed
    assert run.msg == msg
    assert events(tmp_path) == []
    return True


def refused(result, msg, tmp_path):
    assert result['failed'] is True
    assert result['msg'] == msg
    assert events(tmp_path) == []
    return True


def test_invalid_duration(run_module, tmp_path):
    assert fails(run_module('vm_attributes', args(tmp_path, project='web', reclaim_interval='3x')),
                 "reclaim_interval: '3x' is not a duration (use seconds or a string such as 90s, 15m, 12h, 7d)",
                 tmp_path)
    assert not (tmp_path / 'state').exists()


def test_negative_duration(conn, run_in_process, tmp_path):
    assert refused(run_in_process('vm_attributes', args(tmp_path, shutdown_timeout=-5)),
                   'shutdown_timeout: -5 is negative; a duration must be zero or more', tmp_path)


def test_absurd_duration(conn, run_in_process, tmp_path):
    assert refused(run_in_process('vm_attributes', args(tmp_path, reclaim_interval='4000d')),
                   "reclaim_interval: '4000d' is longer than the maximum of 315360000 seconds", tmp_path)


def test_unknown_domain(run_module, tmp_path):
    assert fails(run_module('vm_attributes', args(tmp_path, name='nope', project='web')),
                 'no domain named nope on this hypervisor; nothing was changed', tmp_path)


def test_no_selection(run_module, tmp_path):
    params = args(tmp_path, project='web')
    del params['name']
    assert fails(run_module('vm_attributes', params), 'name or query is required: say which domains to act on', tmp_path)


def test_empty_name_list(run_module, tmp_path):
    assert fails(run_module('vm_attributes', args(tmp_path, name=[], project='web')),
                 'name is an empty list: name at least one domain, or use query; nothing was changed', tmp_path)


def test_name_with_query(conn, run_in_process, tmp_path):
    assert refused(run_in_process('vm_attributes', args(tmp_path, query='[]', project='web')),
                   'parameters are mutually exclusive: name|query', tmp_path)


def test_invalid_jmespath(conn, run_in_process, tmp_path):
    params = args(tmp_path, query='[?', project='web')
    del params['name']
    result = run_in_process('vm_attributes', params)
    assert result['failed'] is True
    assert result['msg'].startswith("query '[?' is not a valid JMESPath expression: ")


def test_bad_volume_id(conn, run_in_process, tmp_path):
    assert refused(run_in_process('vm_attributes', args(tmp_path, volumes=[{'id': '../etc/passwd'}])),
                   "volumes: '../etc/passwd' is not a Cinder volume id; nothing was changed", tmp_path)


def test_volume_listed_twice(conn, run_in_process, tmp_path):
    assert refused(run_in_process('vm_attributes', args(tmp_path, volumes=[{'id': VOLUME}, {'id': VOLUME}])),
                   'volumes: %s is listed twice; nothing was changed' % VOLUME, tmp_path)


def test_unknown_option(run_module, tmp_path):
    run = run_module('vm_attributes', args(tmp_path, vm_state='active'))
    assert run.rc != 0
    assert run.msg.startswith('Unsupported parameters for (deferred.libvirt.vm_attributes) module: vm_state.')


def test_unreachable_hypervisor(run_module, tmp_path):
    uri = 'qemu+unix:///system?socket=/nonexistent'
    run = run_module('vm_attributes', args(tmp_path, uri=uri, project='web'))
    assert run.rc != 0
    assert run.msg.startswith('cannot connect to the hypervisor at %s: ' % uri)
    assert not (tmp_path / 'state').exists()


# -- idempotence: two runs against one hypervisor ----------------------------------

def test_setting_the_same_attributes_twice_changes_nothing_the_second_time(conn, run_in_process, tmp_path):
    wanted = args(tmp_path, project='web', user='alice', locked=True, lock_reason='INC-1234', protected=False,
                  reclaim_interval='7d', shutdown_timeout=60,
                  volumes=[{'id': VOLUME, 'target': 'vdb', 'delete_on_termination': True},
                           {'id': '7f3c2a10-1b2d-4e5f-8a9b-0c1d2e3f4a5b'}])
    first = run_in_process('vm_attributes', wanted)
    second = run_in_process('vm_attributes', wanted)
    assert first['changed'] is True
    assert second['changed'] is False
    assert second['instances'][0]['record'] == first['instances'][0]['record']
    assert [e['event_type'] for e in events(tmp_path)] == ['instance.update']


def test_attributes_are_kept_in_the_domain_for_vm_info(conn, run_in_process, tmp_path):
    run_in_process('vm_attributes', args(tmp_path, project='web', reclaim_interval='12h'))
    info = run_in_process('vm_info', {'uri': URI, 'project': 'web'})
    assert [(i['name'], i['project'], i['reclaim_interval']) for i in info['instances']] == [('test', 'web', 43200)]
    assert info['usage'] == {'web': {'instances': 1, 'cores': 2, 'ram_mb': 8192}}


def test_moving_a_domain_to_another_project_needs_force(conn, run_in_process, tmp_path):
    run_in_process('vm_attributes', args(tmp_path, project='web'))
    refused = run_in_process('vm_attributes', args(tmp_path, project='data'))
    assert refused['failed'] is True
    assert refused['instances'][0]['msg'] == 'domain test belongs to project web; moving it to data needs force=true'
    moved = run_in_process('vm_attributes', args(tmp_path, project='data', force=True))
    assert moved['instances'][0]['record']['project'] == 'data'


def test_a_batch_with_one_refused_domain_changes_no_domain(conn, define, run_in_process, tmp_path):
    names = ['batch%d' % i for i in range(6)]
    for name in names:
        define(name)
    run_in_process('vm_attributes', args(tmp_path, name=names[:5], project='web'))
    run_in_process('vm_attributes', args(tmp_path, name=names[5], project='data'))
    journal = events(tmp_path)
    result = run_in_process('vm_attributes', args(tmp_path, name=names, project='web', user='alice'))
    assert result['failed'] is True
    assert result['changed'] is False
    assert result['msg'] == ('vm_attributes refused for 1 of 6 domain(s): batch5: domain batch5 belongs to project '
                             'data; moving it to web needs force=true; nothing was changed')
    by_name = dict((i['name'], i) for i in result['instances'])
    assert by_name['batch5']['failed'] is True
    assert [by_name[n]['msg'] for n in names[:5]] == ['not changed: another domain of the batch was refused'] * 5
    assert not any(i['changed'] for i in result['instances'])
    info = run_in_process('vm_info', {'uri': URI, 'name': names})
    assert [(i['name'], i['project'], i['user']) for i in info['instances']] == (
        [(n, 'web', None) for n in names[:5]] + [('batch5', 'data', None)])
    assert events(tmp_path) == journal
