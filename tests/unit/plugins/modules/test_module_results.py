# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every module returns is what its docs say: each module run on test:///default (a whole lifecycle, normal and
check mode), every top-level result key documented in its RETURN; no option that does nothing."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib

import pytest
import yaml

URI = 'test:///default'
# Keys Ansible itself defines for every module (ansible.module_utils.common.parameters and AnsibleModule).
COMMON = set(['changed', 'failed', 'msg', 'invocation', 'warnings', 'deprecations', 'diff', 'exception'])


def documented(module):
    doc = importlib.import_module('ansible_collections.deferred.libvirt.plugins.modules.%s' % module)
    return set(yaml.safe_load(doc.RETURN) or {})


def lifecycle(define, run_in_process, tmp_path, check_mode=False):
    """Every module once on a domain without disks (attributes, soft delete, restore, soft delete, a sweep that keeps
    it, terminate, vm_info with tombstones): [(module, result)]."""
    define('web01', running=True)
    base = {'uri': URI, 'state_dir': str(tmp_path / 'state')}
    if check_mode:
        base['_ansible_check_mode'] = True
    steps = [
        ('vm_info', {}),
        ('vm_attributes', {'name': 'web01', 'project': 'web', 'user': 'alice'}),
        ('vm_soft_delete', {'name': 'web01', 'shutdown_timeout': 0}),
        ('vm_restore', {'name': 'web01', 'quota': {'default': {'instances': 10}}}),
        ('vm_soft_delete', {'name': 'web01', 'shutdown_timeout': 0, 'reclaim_interval': '1d'}),
        ('vm_reclaim', {'max_overdue': 0}),
        ('vm_terminate', {'name': 'web01', 'shutdown_timeout': 0}),
        ('vm_info', {'include_deleted': True}),
    ]
    results = []
    for module, params in steps:
        params = dict(base, **params)
        result = run_in_process(module, params)
        assert not result.get("failed"), (module, result.get("msg"))
        results.append((module, result))
    return results


@pytest.mark.parametrize('check_mode', [False, True], ids=['run', 'check_mode'])
def test_every_top_level_result_key_is_documented_in_return(conn, define, run_in_process, tmp_path, check_mode):
    seen = set()
    for module, result in lifecycle(define, run_in_process, tmp_path, check_mode):
        undocumented = set(result) - documented(module) - COMMON
        assert not undocumented, '%s returns %s, not in its RETURN' % (module, sorted(undocumented))
        seen.add(module)
    assert seen == set(['vm_info', 'vm_attributes', 'vm_soft_delete', 'vm_restore', 'vm_reclaim', 'vm_terminate'])


def test_vm_reclaim_has_no_force_option_since_the_sweep_never_passes_a_guard(conn, run_in_process, tmp_path):
    result = run_in_process('vm_reclaim', {'uri': URI, 'state_dir': str(tmp_path / 'state'), 'force': True})
    assert result['failed'] is True
    assert 'Unsupported parameters' in result['msg'] and 'force' in result['msg']


@pytest.mark.parametrize('module,params', [
    ('vm_attributes', {'user': 'bob'}),
    ('vm_soft_delete', {'shutdown_timeout': 0}),
    ('vm_terminate', {'shutdown_timeout': 0}),
], ids=['vm_attributes', 'vm_soft_delete', 'vm_terminate'])
def test_check_mode_summary_says_what_would_change_not_what_changed(conn, define, run_in_process, tmp_path, module, params):
    define('web01', running=True)
    result = run_in_process(module, dict(params, uri=URI, state_dir=str(tmp_path / 'state'), name='web01',
                                         _ansible_check_mode=True))
    assert result['changed'] is True
    assert result['msg'] == '%s: 1 domain(s), 1 would change (check mode: nothing was changed)' % module
    real = run_in_process(module, dict(params, uri=URI, state_dir=str(tmp_path / 'state'), name='web01'))
    assert real['msg'] == '%s: 1 domain(s), 1 changed' % module


# The diff holds what an operator sets or reads (docs/lifecycle.md, "Diff mode"), never the bookkeeping.
OPERATOR_FIELDS = set(['vm_state', 'power_state', 'managed', 'managed_save', 'project', 'user', 'locked', 'lock_reason',
                       'protected', 'reclaim_interval', 'shutdown_timeout', 'deleted_at', 'reclaim_at',
                       'soft_delete_mode', 'volumes'])


def test_every_diff_shows_the_operators_fields_only(conn, define, run_in_process, tmp_path):
    define('web01', running=True)
    base = {'uri': URI, 'state_dir': str(tmp_path / 'state'), '_ansible_diff': True}
    steps = [
        ('vm_attributes', {'name': 'web01', 'project': 'web', 'locked': True, 'lock_reason': 'INC-1'}),
        ('vm_soft_delete', {'name': 'web01', 'shutdown_timeout': 0, 'force': True}),
        ('vm_restore', {'name': 'web01', 'force': True}),
        ('vm_terminate', {'name': 'web01', 'shutdown_timeout': 0, 'force': True}),
    ]
    for module, params in steps:
        result = run_in_process(module, dict(base, **params))
        assert not result.get('failed'), (module, result.get('msg'))
        [diff] = result['diff']
        assert diff['before_header'] == diff['after_header'] == 'web01'
        shown = set(diff['before']) | set(diff['after'])
        assert shown <= OPERATOR_FIELDS, '%s diff shows %s' % (module, sorted(shown - OPERATOR_FIELDS))
        assert 'vm_state' in shown and 'project' in diff['before'], module
        # The record in the result is still whole: the diff is for reading, the record for automation.
        if result['instances'][0].get('record'):
            assert 'generation' in result['instances'][0]['record']
