# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_info against libvirt's test:///default: run as Ansible runs it (ad hoc), and in process.

The test driver's state does not outlive an ad-hoc run, which sees only the
default running domain ``test``; the in-process runs (cheaper, no Ansible
plumbing involved) share the state of the test's ``conn``.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

URI = 'test:///default'
TEST_UUID = '6695eb01-f6a4-8304-79aa-97f2502e193f'
RECORD_KEYS = set([
    'name', 'uuid', 'managed', 'persistent', 'power_state', 'managed_save', 'vcpus', 'memory_mb', 'metadata_error',
    'vm_state', 'task_state', 'deleted_at', 'reclaim_at', 'soft_delete_mode', 'project', 'user', 'locked',
    'lock_reason', 'protected', 'reclaim_interval', 'shutdown_timeout', 'volumes', 'disks', 'history', 'anomalies',
    'generation', 'host', 'disk_bytes',
])


def test_reports_every_domain_with_its_lifecycle_record(run_module, tmp_path):
    run = run_module('vm_info', {'uri': URI, 'state_dir': str(tmp_path / 'state')})
    assert (run.rc, run.status) == (0, 'SUCCESS'), run.stdout + run.stderr
    result = run.result
    assert result['changed'] is False
    assert len(result['instances']) == 1
    test = result['instances'][0]
    assert set(test) == RECORD_KEYS
    assert (test['name'], test['uuid']) == ('test', TEST_UUID)
    assert (test['managed'], test['vm_state'], test['power_state']) == (False, 'active', 'running')
    assert (test['vcpus'], test['memory_mb']) == (2, 8192)
    # The test driver's disk is no file here: no identity, and nothing behind it.
    assert test['disks'] == [{'target': 'vda', 'device': 'disk', 'type': 'file', 'path': '/guest/diskimage1',
                              'pool': None, 'volume': None, 'st_dev': None, 'st_ino': None,
                              'allocated_bytes': None, 'counts_on_disk': True,
                              'file_path': '/guest/diskimage1', 'backing_chain': [], 'backing_chain_error': None}]
    assert result['usage'] == {}


def test_the_records_are_also_facts(run_module):
    result = run_module('vm_info', {'uri': URI}).result
    assert result['ansible_facts'] == {'deferred_libvirt_instances': result['instances'],
                                       'deferred_libvirt_usage': result['usage']}


def test_facts_false_returns_the_records_once_and_sets_no_facts(run_module):
    """A registered result holds each record once: the gather of a large fleet keeps half the memory per host."""
    result = run_module('vm_info', {'uri': URI, 'facts': False}).result
    assert 'ansible_facts' not in result
    assert result['instances'] == run_module('vm_info', {'uri': URI}).result['instances'] != []


def test_reading_changes_nothing_on_disk(run_module, tmp_path):
    run_module('vm_info', {'uri': URI, 'state_dir': str(tmp_path / 'state'), 'include_deleted': True})
    assert not (tmp_path / 'state').exists()


def test_select_by_uuid(conn, run_in_process):
    result = run_in_process('vm_info', {'uri': URI, 'name': TEST_UUID.upper()})
    assert [i['name'] for i in result['instances']] == ['test']


def test_select_by_query(conn, run_in_process):
    result = run_in_process('vm_info', {'uri': URI, 'query': "[?power_state=='running'].name"})
    assert [i['name'] for i in result['instances']] == ['test']


def test_a_project_sees_none_of_the_unowned_domains(conn, run_in_process):
    result = run_in_process('vm_info', {'uri': URI, 'project': 'web'})
    assert result['instances'] == []
    assert result['usage'] == {}


def test_terminated_domains_are_reported_from_their_tombstones(conn, run_in_process, tmp_path):
    state = StateDir(str(tmp_path / 'state'))
    state.write_tombstone({'name': 'old01', 'uuid': '11111111-2222-3333-4444-555555555555', 'project': 'web',
                           'terminated_at': '2024-05-09T00:00:00Z', 'volumes_pending': []})
    result = run_in_process('vm_info', {'uri': URI, 'state_dir': state.path, 'include_deleted': True})
    shown = dict((i['name'], i['vm_state']) for i in result['instances'])
    assert shown == {'test': 'active', 'old01': 'deleted'}


def test_check_mode_reports_the_same(run_module):
    run = run_module('vm_info', {'uri': URI}, check=True)
    assert run.rc == 0
    assert [i['name'] for i in run.result['instances']] == ['test']


# -- bad input: a clear message, nothing changed ---------------------------------

def fails(run, msg):
    assert run.rc != 0
    assert run.failed
    assert run.msg == msg
    return True


def test_unknown_domain(run_module):
    assert fails(run_module('vm_info', {'uri': URI, 'name': ['test', 'nope', 'gone']}),
                 'no domain named nope, gone on this hypervisor; nothing was changed')


def test_named_domain_of_another_project(conn, run_in_process):
    result = run_in_process('vm_info', {'uri': URI, 'name': 'test', 'project': 'web'})
    assert result['failed'] is True
    assert result['msg'] == 'not in project web: test (project none); nothing was changed'


def test_invalid_jmespath(run_module):
    run = run_module('vm_info', {'uri': URI, 'query': '[?vm_state==]'})
    assert run.rc != 0
    assert run.msg.startswith("query '[?vm_state==]' is not a valid JMESPath expression: ")
    assert run.msg.endswith('; nothing was changed')


def test_a_query_that_projects_is_answered_with_its_own_result(conn, run_in_process):
    """vm_info changes nothing: a projection of the records is returned as JMESPath gives it, not refused."""
    result = run_in_process('vm_info', {'uri': URI, 'query': '[].[name, power_state, reclaim_at]'})
    assert result.get('failed') is not True, result
    assert result['query_result'] == [['test', 'running', None]]
    assert result['instances'] == [] and result['usage'] == {}


def test_an_aggregate_query_is_answered_over_the_project_scope_only(conn, run_in_process):
    assert run_in_process('vm_info', {'uri': URI, 'query': 'length(@)'})['query_result'] == 1
    # The project scope applies before the query: another project's (here: unowned) domains are never counted.
    assert run_in_process('vm_info', {'uri': URI, 'query': 'length(@)', 'project': 'web'})['query_result'] == 0


def test_a_query_naming_another_projects_domain_is_refused_not_answered_as_a_projection(conn, run_in_process):
    """Project scoping (rule 8): a literal UUID, or a forged record, of a domain outside the project is a selection
    vm_info refuses, as the changing modules do; it is never handed back as a query_result."""
    uuid = conn.lookupByName('test').UUIDString()
    for query in ('[`"%s"`]' % uuid, '[`{"uuid": "%s", "project": "web"}`]' % uuid, '[`"test"`]'):
        result = run_in_process('vm_info', {'uri': URI, 'query': query, 'project': 'web'})
        assert result.get('failed') is True, (query, result)
        assert 'project scope applies' in result['msg'] and 'query_result' not in result


def test_a_query_that_selects_domains_gives_no_query_result(conn, run_in_process):
    result = run_in_process('vm_info', {'uri': URI, 'query': '[].name'})
    assert 'query_result' not in result and [i['name'] for i in result['instances']] == ['test']


def test_a_changing_module_still_refuses_a_projection(conn, run_in_process, tmp_path):
    result = run_in_process('vm_soft_delete', {'uri': URI, 'state_dir': str(tmp_path / 'state'),
                                               'query': '[].[name, reclaim_at]'})
    assert result['failed'] is True
    assert 'which is not a domain record, name or UUID' in result['msg']
    assert result['msg'].endswith('nothing was changed')
    assert conn.lookupByName('test').isActive()


def test_fields_keep_only_the_keys_asked_for(conn, run_in_process):
    result = run_in_process('vm_info', {'uri': URI, 'fields': ['name', 'project', 'reclaim_at', 'disk_bytes']})
    assert result['instances'] == [{'name': 'test', 'project': None, 'reclaim_at': None, 'disk_bytes': None}]
    assert result['ansible_facts']['deferred_libvirt_instances'] == result['instances']
    # Usage is of the whole records, whatever the fields show.
    assert result['usage'] == {}


def test_fields_apply_after_the_query_which_sees_whole_records(conn, run_in_process):
    result = run_in_process('vm_info', {'uri': URI, 'query': "[?power_state=='running']", 'fields': ['uuid']})
    assert result['instances'] == [{'uuid': TEST_UUID}]


def test_an_unknown_field_is_refused_naming_it_and_the_valid_ones(run_module):
    run = run_module('vm_info', {'uri': URI, 'fields': ['name', 'owner', 'size']})
    assert run.rc != 0 and run.failed
    assert run.msg.startswith("fields: unknown field(s) 'owner', 'size'; the fields are ")
    assert 'reclaim_at' in run.msg and 'disk_bytes' in run.msg and 'user' in run.msg
    assert run.msg.endswith('; nothing was changed')


def test_an_empty_field_list_is_refused(run_module):
    run = run_module('vm_info', {'uri': URI, 'fields': []})
    assert run.rc != 0 and run.msg.startswith('fields: an empty list; the fields are ')


def test_name_with_query(run_module):
    assert fails(run_module('vm_info', {'uri': URI, 'name': 'test', 'query': '[]'}),
                 'parameters are mutually exclusive: name|query')


def test_unknown_option(run_module):
    run = run_module('vm_info', {'uri': URI, 'reclaim_at': 'now'})
    assert run.rc != 0
    assert run.msg.startswith('Unsupported parameters for (deferred.libvirt.vm_info) module: reclaim_at.')


def test_unreachable_hypervisor(run_module):
    uri = 'qemu+unix:///system?socket=/nonexistent'
    run = run_module('vm_info', {'uri': uri})
    assert run.rc != 0
    assert run.msg.startswith('cannot connect to the hypervisor at %s: ' % uri)
    assert '/nonexistent' in run.msg


def test_empty_name_list(run_module):
    assert fails(run_module('vm_info', {'uri': URI, 'name': []}),
                 'name is an empty list: name at least one domain, or use query; nothing was changed')


def test_the_failure_is_printed_for_the_operator(run_module):
    run = run_module('vm_info', {'uri': URI, 'name': 'nope'})
    assert 'localhost | FAILED! => ' in run.stdout
    assert '"msg": "no domain named nope on this hypervisor; nothing was changed"' in run.stdout
