# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lifecycle state machine, as data.

One table says, for each operation, which ``vm_state`` it starts from, which
states make it a no-op, which ``task_state`` it holds while working, which
interrupted ``task_state`` it picks up again (rule 7 of docs/rules.md), and what it leaves.
The operations, the tests and docs/lifecycle.md all read this table.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

VM_STATES = ('active', 'stopped', 'paused', 'soft_deleted', 'error', 'deleted')
TASK_STATES = (None, 'soft_deleting', 'restoring', 'deleting', 'moving')

# libvirt power state -> vm_state of a domain that is not soft-deleted.
POWER_TO_VM_STATE = {
    'running': 'active',
    'blocked': 'active',
    'shutdown': 'active',
    'pmsuspended': 'paused',
    'paused': 'paused',
    'shutoff': 'stopped',
    'crashed': 'error',
    'nostate': 'error',
}

LIVE_STATES = ('active', 'stopped', 'paused', 'error')

# Power-state classes, named once here and read by the operations, the views and the fleet index.
# A guest in one of these uses its vCPUs and memory (a copy of a domain that runs, rule 9; quota).
RUNNING_POWER_STATES = ('running', 'blocked', 'paused', 'pmsuspended', 'shutdown')
# Nothing left to power off ('gone': the domain was undefined under us).
OFF_POWER_STATES = ('shutoff', 'gone')
# A managed save keeps the guest's memory only from these.
SAVABLE_POWER_STATES = ('running', 'blocked', 'paused', 'pmsuspended')

TRANSITIONS = {
    'soft_delete': {
        'accepts': LIVE_STATES,
        'noop': ('soft_deleted',),
        'task_state': 'soft_deleting',
        'resumes': ('soft_deleting',),
        'leaves': 'soft_deleted',
    },
    'restore': {
        'accepts': ('soft_deleted',),
        'noop': ('active',),
        'task_state': 'restoring',
        'resumes': ('restoring',),
        'leaves': 'active',
    },
    # Force delete: every state, and it takes over any interrupted task.
    'terminate': {
        'accepts': LIVE_STATES + ('soft_deleted',),
        'noop': ('deleted',),
        'task_state': 'deleting',
        'resumes': ('soft_deleting', 'restoring', 'deleting'),
        'leaves': 'deleted',
    },
    'reclaim': {
        'accepts': ('soft_deleted',),
        'noop': ('deleted',),
        'task_state': 'deleting',
        'resumes': ('deleting',),
        'leaves': 'deleted',
    },
    # Restore onto another host (vm_restore move_to on the source, then move_from on the target): the source record
    # holds 'moving' from before anything is defined on the target until the source definition is gone, and the
    # target's copy holds it until the move is finished there. Nothing else starts, reclaims or terminates a domain
    # in 'moving' (rule 4 across hosts); running the same move again finishes it or rolls it back (rule 7).
    'move': {
        'accepts': ('soft_deleted',),
        'noop': (),
        'task_state': 'moving',
        'resumes': ('moving',),
        'leaves': 'soft_deleted',
    },
}

START, RESUME, NOOP = 'start', 'resume', 'noop'


class InvalidState(DeferredError):
    """The domain is in a state the operation does not accept (Nova's 409)."""


def decide(operation, vm_state, task_state):
    """Return START, RESUME or NOOP for ``operation`` on a domain, or raise InvalidState.

    RESUME means an earlier run of the same operation was interrupted and this
    run finishes it.
    """
    rule = TRANSITIONS[operation]
    if task_state is not None:
        if task_state in rule['resumes']:
            return RESUME
        raise InvalidState('task %s is in progress (run the operation that started it again to finish it, '
                           'or vm_terminate to delete the domain)' % task_state)
    if vm_state in rule['noop']:
        return NOOP
    if vm_state in rule['accepts']:
        return START
    raise InvalidState('%s is not allowed from vm_state %s (allowed: %s)'
                       % (operation, vm_state, ', '.join(rule['accepts'])))


def effective_vm_state(recorded, power_state):
    """The vm_state an operator sees: a recorded soft_deleted or deleted wins, else libvirt's power state decides."""
    if recorded in ('soft_deleted', 'deleted'):
        return recorded
    return POWER_TO_VM_STATE.get(power_state, 'error')


def holds(operation):
    """The task_state ``operation`` holds while it works."""
    return TRANSITIONS[operation]['task_state']


def leaves(operation):
    """The vm_state ``operation`` leaves when it ends well."""
    return TRANSITIONS[operation]['leaves']
