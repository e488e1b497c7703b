# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_restore's operation (_ops/_restore.py) on test:///default: back to running, refused over quota, check mode.

Run through a plain Context (ops_support.py): a refused restore changes nothing, and check mode reports the record
the real restore leaves.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _attributes as attributes
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _restore as restore
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete

from ops_support import only, record_of, run


def test_restore_brings_a_soft_deleted_domain_back_to_running(conn, define, tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'])
    instance = only(run(restore, conn, tmp_path, name=['web01'])[0])
    record = record_of(conn, 'web01')
    assert instance['action'] == 'restored'
    assert (record['vm_state'], record['deleted_at'], record['reclaim_at']) == ('active', None, None)
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING


def test_restore_over_quota_is_refused_before_anything_changes(conn, define, tmp_path):
    define('web01', running=True, vcpus=2)
    run(soft_delete, conn, tmp_path, name=['web01'])
    run(attributes, conn, tmp_path, name=['web01'], project='web')
    before = record_of(conn, 'web01')
    with pytest.raises(quota.QuotaError) as err:
        run(restore, conn, tmp_path, name=['web01'], quota={'web': {'cores': 1}})
    assert 'over quota, nothing was changed' in str(err.value)
    assert err.value.result['quota']['over']
    assert record_of(conn, 'web01') == before


def test_restore_check_mode_matches_the_real_restore(conn, define, tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'])
    would = only(run(restore, conn, tmp_path, check_mode=True, name=['web01'])[0])
    assert record_of(conn, 'web01')['vm_state'] == 'soft_deleted'
    did = only(run(restore, conn, tmp_path, name=['web01'])[0])
    for key in ('vm_state', 'task_state', 'deleted_at', 'reclaim_at', 'power_state'):
        assert would['record'][key] == did['record'][key], key
