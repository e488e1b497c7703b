# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_terminate's operation (_ops/_terminate.py) on test:///default: disks, undefine, the tombstone it leaves.

Run through a plain Context (ops_support.py), without Cinder: owned disks deleted and others kept, check mode
planning the disks the real run deletes, a second terminate a no-op, and volume work left pending in the
tombstone for a run with Cinder.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

from ops_support import only, put, run


def disk_domain(define, tmp_path, name, inside=True):
    images = tmp_path / 'images'
    images.mkdir(exist_ok=True)
    path = (images if inside else tmp_path) / ('%s.img' % name)
    path.write_bytes(b'\0' * 512)
    define(name, devices='<disk type="file" device="disk"><source file="%s"/><target dev="vda"/></disk>' % path)
    return str(path)


def test_terminate_deletes_owned_disks_undefines_and_leaves_a_finished_tombstone(conn, define, tmp_path):
    owned = disk_domain(define, tmp_path, 'web01')
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert instance['action'] == 'terminated' and instance['disks_deleted'] == [os.path.realpath(owned)]
    assert not os.path.exists(owned)
    assert 'web01' not in [d.name() for d in conn.listAllDomains(0)]
    tomb = StateDir(str(tmp_path / 'state')).read_tombstone(instance['uuid'])
    # Gone with its disks, but without Cinder options nobody asked Cinder about attachments: not finished yet.
    assert tomb['status'] == 'terminated' and not tomb['cinder_checked'] and not tombstones.finished(tomb)


def test_a_terminate_without_cinder_leaves_the_check_to_the_next_run_with_cinder(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    again = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert (again['changed'], again['action'], again['cinder_checked']) == (False, 'none', False)
    assert 'Cinder has not been asked' in again['msg']
    sweep, dummy = run(reclaim, conn, tmp_path)
    assert sweep['instances'] == [] and [t['name'] for t in sweep['extra']['cinder_unchecked']] == ['web01']


def test_terminate_keeps_a_disk_outside_the_instance_directories(conn, define, tmp_path):
    foreign = disk_domain(define, tmp_path, 'web01', inside=False)
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert instance['disks_deleted'] == [] and os.path.exists(foreign)
    assert 'outside the instance directories' in instance['disks_kept'][0]['reason']


def test_terminate_check_mode_plans_the_disks_the_real_run_deletes(conn, define, tmp_path):
    disk_domain(define, tmp_path, 'web01')
    would = only(run(terminate, conn, tmp_path, check_mode=True, name=['web01'])[0])
    assert 'web01' in [d.name() for d in conn.listAllDomains(0)]
    did = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert would['action'] == 'would_terminate'
    assert would['disks_deleted'] == did['disks_deleted'] and would['disks_kept'] == did['disks_kept']


def test_naming_a_terminated_domain_again_is_a_noop(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    again = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert (again['changed'], again['action']) == (False, 'none')
    assert again['msg'].startswith('already terminated at ')


def test_pending_volume_work_stays_in_the_tombstone_without_cinder(conn, define, tmp_path):
    define('web01')
    put(conn, 'web01', dict(_record.empty(), project='web',
                            volumes=[{'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'target': 'vdb',
                                      'delete_on_termination': True}]))
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert [v['id'] for v in instance['volumes_pending']] == ['0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00']
    sweep, dummy = run(reclaim, conn, tmp_path)
    assert sweep['extra']['pending'][0]['uuid'] == instance['uuid']
    assert sweep['extra']['finished_tombstones'] == [] and sweep['extra']['finished'] == []


def nvram_domain(define, tmp_path, name, nvram):
    """A domain whose NVRAM file (UEFI variables) is ``nvram``, made by the test (the test driver never starts OVMF)."""
    if not os.path.exists(nvram):
        with open(nvram, 'wb') as handle:
            handle.write(b'\0' * 4096)
    define(name, os_extra='<loader readonly="yes" type="pflash">/usr/share/OVMF/OVMF_CODE_4M.fd</loader>'
                          '<nvram>%s</nvram>' % nvram)


def test_terminate_lets_libvirt_delete_the_nvram_file_only_this_domain_names(conn, define, tmp_path):
    nvram = str(tmp_path / 'web01_VARS.fd')
    nvram_domain(define, tmp_path, 'web01', nvram)
    # The flags the plan asks for (check mode): the test driver refuses NVRAM flags, so the real run drops them.
    would = only(run(terminate, conn, tmp_path, check_mode=True, name=['web01'])[0])
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert instance['action'] == 'terminated'
    assert 'VIR_DOMAIN_UNDEFINE_NVRAM' in would['undefine_flags']
    assert [k for k in would['disks_kept'] + instance['disks_kept'] if k['target'] == 'nvram'] == []


def test_rule10_terminate_keeps_the_nvram_file_another_domain_names(conn, define, tmp_path):
    # Another domain of the host names the same NVRAM file (a clone defined from the same XML, say): undefining with
    # VIR_DOMAIN_UNDEFINE_NVRAM would delete the other domain's UEFI variables. The file stays and is reported kept.
    nvram = str(tmp_path / 'shared_VARS.fd')
    nvram_domain(define, tmp_path, 'web01', nvram)
    nvram_domain(define, tmp_path, 'web02', nvram)
    would = only(run(terminate, conn, tmp_path, check_mode=True, name=['web01'])[0])
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    # The flags the plan asks for (check mode): the test driver refuses NVRAM flags, so the real run drops them.
    assert 'VIR_DOMAIN_UNDEFINE_KEEP_NVRAM' in would['undefine_flags']
    assert 'VIR_DOMAIN_UNDEFINE_NVRAM' not in would['undefine_flags']
    for result in (would, instance):
        [kept] = [k for k in result['disks_kept'] if k['target'] == 'nvram']
        assert kept['path'] == nvram and 'shared with domain(s) web02' in kept['reason'], kept
    assert os.path.exists(nvram)
