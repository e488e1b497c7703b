# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The source's side of a move onto another host (vm_restore move_to) on libvirt's test:///default driver: the
compare-and-set to task_state moving under the source's lock, and that nothing else takes a moving domain (rule 4
across hosts). The move itself needs two hypervisors: tests/integration/test_fleet_moves.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import InputError
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _move as move
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _restore as restore
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate

from ops_support import PAST, NOW, context, put, record_of, run, soft_deleted_record


def test_move_to_marks_an_idle_soft_deleted_domain_moving_to_the_target(conn, define, tmp_path):
    define('web01')
    put(conn, 'web01', soft_deleted_record(PAST))
    before = record_of(conn, 'web01')
    outcome, dummy = run(restore, conn, tmp_path, name=['web01'], move_to='hv3')
    [instance] = outcome['instances']
    assert not instance['failed'] and instance['action'] == 'marked_moving', instance
    record = record_of(conn, 'web01')
    assert (record['vm_state'], record['task_state']) == ('soft_deleted', 'moving')
    assert (record['deleted_at'], record['reclaim_at']) == (before['deleted_at'], before['reclaim_at'])
    assert move.marked_for(record) == 'hv3' and record['generation'] == before['generation'] + 1


def test_move_to_again_for_the_same_target_changes_nothing_and_another_target_is_refused(conn, define, tmp_path):
    define('web01')
    put(conn, 'web01', soft_deleted_record(PAST))
    run(restore, conn, tmp_path, name=['web01'], move_to='hv3')
    generation = record_of(conn, 'web01')['generation']
    again, dummy = run(restore, conn, tmp_path, name=['web01'], move_to='hv3.example.org')
    assert again['instances'][0]['changed'] is False and not again['instances'][0]['failed']
    other, dummy = run(restore, conn, tmp_path, name=['web01'], move_to='hv4')
    [refused] = other['instances']
    assert refused['failed'] and 'is being moved to hv3, not hv4' in refused['msg']
    assert record_of(conn, 'web01')['generation'] == generation


def test_move_to_in_check_mode_changes_nothing(conn, define, tmp_path):
    define('web01')
    put(conn, 'web01', soft_deleted_record(PAST))
    outcome, dummy = run(restore, conn, tmp_path, check_mode=True, name=['web01'], move_to='hv3')
    assert outcome['instances'][0]['action'] == 'would_mark_moving'
    assert record_of(conn, 'web01')['task_state'] is None


@pytest.mark.parametrize('state', [dict(vm_state='active', deleted_at=None, reclaim_at=None),
                                   dict(task_state='restoring')])
def test_only_an_idle_soft_deleted_domain_is_marked_moving(conn, define, tmp_path, state):
    define('web01')
    put(conn, 'web01', dict(soft_deleted_record(PAST), **state))
    outcome, dummy = run(restore, conn, tmp_path, name=['web01'], move_to='hv3')
    assert outcome['instances'][0]['failed']
    assert record_of(conn, 'web01')['task_state'] == state.get('task_state')


def test_a_locked_domain_is_marked_moving_only_with_force(conn, define, tmp_path):
    define('web01')
    put(conn, 'web01', soft_deleted_record(PAST, locked=True))
    refused, dummy = run(restore, conn, tmp_path, name=['web01'], move_to='hv3')
    assert refused['instances'][0]['failed'] and 'locked' in refused['instances'][0]['msg']
    forced, dummy = run(restore, conn, tmp_path, name=['web01'], move_to='hv3', force=True)
    assert forced['instances'][0]['action'] == 'marked_moving'


def test_a_moving_domain_is_skipped_by_the_sweep_and_refused_by_restore_and_terminate(conn, define, tmp_path):
    """Rule 4 across hosts: from the mark on, the source host's own operations leave the domain to the move."""
    define('web01')
    put(conn, 'web01', soft_deleted_record(PAST))
    run(restore, conn, tmp_path, name=['web01'], move_to='hv3')
    view = [s.view for s in engine.snapshot(context(conn, tmp_path)) if s.view['name'] == 'web01'][0]
    verdict, reason = eligible.eligibility(view, NOW)
    assert verdict == eligible.SKIP and 'moving' in reason
    swept, dummy = run(reclaim, conn, tmp_path)
    assert swept['extra']['reclaimed'] == [] and 'web01' in [d.name() for d in conn.listAllDomains(0)]
    for operation in (restore, terminate):
        outcome, dummy = run(operation, conn, tmp_path, name=['web01'])
        assert outcome['instances'][0]['failed'] and 'task moving is in progress' in outcome['instances'][0]['msg']
    assert record_of(conn, 'web01')['task_state'] == 'moving'


def test_move_to_and_move_from_are_never_given_together():
    with pytest.raises(InputError, match='move_to and move_from'):
        options.Restore.read({'name': 'web01', 'move_to': 'hv3', 'move_from': 'qemu+ssh://hv2/system'})
    with pytest.raises(InputError, match='^move_to needs name'):
        options.Restore.read({'move_to': 'hv3'})


def test_the_undefine_after_a_move_keeps_nvram_and_tpm_state(conn, define):
    domain = hv.refresh(conn, define('web01'))
    flags = hv.undefine_moved_flags(domain)
    assert flags & hv.libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM and flags & hv.libvirt.VIR_DOMAIN_UNDEFINE_KEEP_TPM
    assert not flags & hv.libvirt.VIR_DOMAIN_UNDEFINE_NVRAM and not flags & hv.libvirt.VIR_DOMAIN_UNDEFINE_TPM
