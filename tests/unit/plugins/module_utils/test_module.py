# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The module base (_module.py) run as Ansible runs it: bad input refused unchanged, request_id, per-domain failure.

Ad-hoc runs (run_module) against test:///default show what an operator's
task prints: bad input fails naming what is wrong and saying "nothing was
changed" once; name and query together are refused; every result carries
the run's request_id. A task failing for one domain of two (in process,
run_in_process, so the second domain and its record outlive one run) reports
both.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

URI = 'test:///default'


def args(tmp_path, **more):
    params = {'uri': URI, 'state_dir': str(tmp_path / 'state')}
    params.update(more)
    return params


def test_parallel_zero_is_refused_naming_it_and_nothing_is_changed(run_module, tmp_path):
    run = run_module('vm_soft_delete', args(tmp_path, name=['test'], parallel=0))
    assert run.failed and run.rc != 0, run.stdout + run.stderr
    assert run.msg == 'parallel must be 1 or more, got 0; nothing was changed'
    assert run.result.get('changed') is False
    assert not os.path.exists(str(tmp_path / 'state'))


def test_an_unknown_domain_is_refused_naming_it_and_saying_nothing_was_changed_once(run_module, tmp_path):
    run = run_module('vm_soft_delete', args(tmp_path, name=['web09']))
    assert run.failed, run.stdout + run.stderr
    assert run.msg == 'no domain named web09 on this hypervisor; nothing was changed'
    assert run.result.get('changed') is False
    assert run.result['request_id'].startswith('req-')


def test_name_and_query_together_are_refused(run_module, tmp_path):
    run = run_module('vm_soft_delete', args(tmp_path, name=['test'], query='[?vm_state==`active`]'))
    assert run.failed, run.stdout + run.stderr
    assert 'mutually exclusive' in run.msg and 'name' in run.msg and 'query' in run.msg
    assert run.result.get('changed') is False


def test_neither_name_nor_query_is_refused_before_anything_happens(run_module, tmp_path):
    run = run_module('vm_soft_delete', args(tmp_path))
    assert run.failed and run.msg == 'name or query is required: say which domains to act on'
    assert not os.path.exists(str(tmp_path / 'state'))


def test_a_result_carries_the_runs_request_id_and_a_summary(run_module, tmp_path):
    run = run_module('vm_attributes', args(tmp_path, name=['test'], project='web'))
    assert (run.rc, run.status) == (0, 'CHANGED'), run.stdout + run.stderr
    assert run.result['request_id'].startswith('req-') and len(run.result['request_id']) == len('req-') + 36
    assert run.result['msg'] == 'vm_attributes: 1 domain(s), 1 changed'


def test_a_task_failing_for_one_domain_of_two_reports_both(conn, define, run_in_process, tmp_path):
    define('web01')
    run_in_process('vm_attributes', args(tmp_path, name=['web01'], locked=True, lock_reason='INC-1234'))
    result = run_in_process('vm_soft_delete', args(tmp_path, name=['test', 'web01']))
    assert result['failed'] is True and result['changed'] is True
    assert result['msg'].startswith('vm_soft_delete failed for 1 of 2 domain(s): web01: '), result['msg']
    assert 'locked' in result['msg']
    by_name = dict((i['name'], i) for i in result['instances'])
    assert sorted(by_name) == ['test', 'web01']
    assert (by_name['test']['failed'], by_name['test']['changed']) == (False, True)
    assert (by_name['web01']['failed'], by_name['web01']['changed']) == (True, False)
    assert result['request_id'].startswith('req-')
    assert conn.lookupByName('test').isActive() == 0  # the other domain was soft-deleted all the same
