# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lifecycle state machine: what each operation does from every vm_state and task_state."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._states import (
    NOOP, RESUME, START, TASK_STATES, TRANSITIONS, VM_STATES, InvalidState, decide, effective_vm_state)

INVALID = 'invalid'
OPERATIONS = ('soft_delete', 'restore', 'terminate', 'reclaim', 'move')

# The contract, written out by hand rather than derived from TRANSITIONS:
# for an idle domain (task_state null), what each operation does from each vm_state.
IDLE = {
    'soft_delete': {'active': START, 'stopped': START, 'paused': START, 'error': START,
                    'soft_deleted': NOOP, 'deleted': INVALID},
    'restore': {'active': NOOP, 'stopped': INVALID, 'paused': INVALID, 'error': INVALID,
                'soft_deleted': START, 'deleted': INVALID},
    'terminate': {'active': START, 'stopped': START, 'paused': START, 'error': START,
                  'soft_deleted': START, 'deleted': NOOP},
    'reclaim': {'active': INVALID, 'stopped': INVALID, 'paused': INVALID, 'error': INVALID,
                'soft_deleted': START, 'deleted': NOOP},
    # Only an idle soft-deleted domain moves to another host.
    'move': {'active': INVALID, 'stopped': INVALID, 'paused': INVALID, 'error': INVALID,
             'soft_deleted': START, 'deleted': INVALID},
}
# With an interrupted task recorded, which tasks each operation picks up again (whatever the vm_state).
RESUMES = {
    'soft_delete': ('soft_deleting',),
    'restore': ('restoring',),
    'terminate': ('soft_deleting', 'restoring', 'deleting'),
    'reclaim': ('deleting',),
    # A domain being moved between hosts is the move's alone: no other operation takes it over.
    'move': ('moving',),
}


def expected(operation, vm_state, task_state):
    if task_state is None:
        return IDLE[operation][vm_state]
    return RESUME if task_state in RESUMES[operation] else INVALID


CASES = [(op, vm, task) for op in OPERATIONS for vm in VM_STATES for task in TASK_STATES]


@pytest.mark.parametrize('operation, vm_state, task_state', CASES,
                         ids=['%s-from-%s-task-%s' % case for case in CASES])
def test_decide_follows_the_table(operation, vm_state, task_state):
    want = expected(operation, vm_state, task_state)
    if want == INVALID:
        with pytest.raises(InvalidState):
            decide(operation, vm_state, task_state)
    else:
        assert decide(operation, vm_state, task_state) == want


def test_the_table_covers_every_operation_and_state():
    assert set(TRANSITIONS) == set(OPERATIONS)
    assert set(VM_STATES) == set(['active', 'stopped', 'paused', 'soft_deleted', 'error', 'deleted'])
    assert set(TASK_STATES) == set([None, 'soft_deleting', 'restoring', 'deleting', 'moving'])


# The move leaves the domain soft-deleted on another host, where the restore follows: its re-run is the same move
# again, which the move itself makes a no-op (tests/unit/plugins/module_utils/test_move.py).
@pytest.mark.parametrize('operation', [op for op in OPERATIONS if op != 'move'])
def test_running_an_operation_again_on_what_it_left_is_a_noop(operation):
    assert decide(operation, TRANSITIONS[operation]['leaves'], None) == NOOP


@pytest.mark.parametrize('operation', OPERATIONS)
def test_an_operation_marks_its_work_with_a_task_state_it_can_resume(operation):
    rule = TRANSITIONS[operation]
    assert rule['task_state'] in rule['resumes']


def test_soft_deleting_a_soft_deleted_domain_is_a_noop_that_keeps_the_retention_clock():
    assert decide('soft_delete', 'soft_deleted', None) == NOOP


def test_reclaim_never_touches_a_domain_that_was_restored():
    with pytest.raises(InvalidState) as err:
        decide('reclaim', 'active', None)
    assert str(err.value) == 'reclaim is not allowed from vm_state active (allowed: soft_deleted)'


def test_reclaim_does_not_take_over_an_interrupted_restore():
    with pytest.raises(InvalidState) as err:
        decide('reclaim', 'soft_deleted', 'restoring')
    assert 'task restoring is in progress' in str(err.value)
    assert 'vm_terminate' in str(err.value)


def test_restore_of_a_stopped_domain_names_the_allowed_states():
    with pytest.raises(InvalidState) as err:
        decide('restore', 'stopped', None)
    assert str(err.value) == 'restore is not allowed from vm_state stopped (allowed: soft_deleted)'


def test_terminate_takes_over_any_interrupted_task():
    assert [decide('terminate', 'soft_deleted', t) for t in ('soft_deleting', 'restoring', 'deleting')] == [RESUME] * 3


@pytest.mark.parametrize('recorded, power_state, shown', [
    (None, 'running', 'active'),
    (None, 'blocked', 'active'),
    (None, 'shutdown', 'active'),
    (None, 'shutoff', 'stopped'),
    (None, 'paused', 'paused'),
    (None, 'pmsuspended', 'paused'),
    (None, 'crashed', 'error'),
    (None, 'nostate', 'error'),
    (None, 'something-new', 'error'),
    ('active', 'shutoff', 'stopped'),
    ('stopped', 'running', 'active'),
    ('error', 'running', 'active'),
    ('soft_deleted', 'shutoff', 'soft_deleted'),
    ('soft_deleted', 'running', 'soft_deleted'),
    ('deleted', 'gone', 'deleted'),
])
def test_effective_vm_state(recorded, power_state, shown):
    assert effective_vm_state(recorded, power_state) == shown
