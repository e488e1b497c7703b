# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A Cinder configuration refused before anything changes, and a fleet declared without Cinder, on test:///default.

A terminate (vm_terminate, the sweep, vm_soft_delete with reclaim_interval 0) of a domain with volumes to settle
and a wrong Cinder configuration (here a cloud clouds.yaml does not have) changes nothing: the domain, its disks
and its record stay. ``cinder: false`` (a fleet without Cinder) finishes a terminated domain at once, so the
retention prunes it, and refuses a domain with recorded volumes. Check mode says what the real run does. The
same against the real Cinder: tests/integration/test_cinder_configuration.py.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _retention as retention
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

from ops_support import PAST, only, put, run, soft_deleted_record

VOLUME = '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00'
VOLUMES = [{'id': VOLUME, 'target': 'vdb', 'delete_on_termination': True}]


@pytest.fixture(autouse=True)
def no_clouds(tmp_path, monkeypatch):
    """openstacksdk with an empty clouds.yaml and no OS_* variables: every cloud name is unknown."""
    for name in list(os.environ):
        if name.startswith('OS_'):
            monkeypatch.delenv(name)
    config = tmp_path / 'clouds.yaml'
    config.write_text('clouds: {}\n')
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(config))


def with_disk(conn, define, tmp_path, name, volumes=None, record=None):
    images = tmp_path / 'images'
    images.mkdir(exist_ok=True)
    disk = images / ('%s.img' % name)
    disk.write_bytes(b'\0' * 512)
    define(name, devices='<disk type="file" device="disk"><source file="%s"/><target dev="vda"/></disk>' % disk)
    put(conn, name, dict(record or _record.empty(), project='web', volumes=volumes or []))
    return str(disk)


def defined(conn):
    return sorted(d.name() for d in conn.listAllDomains(0))


def failed(outcome):
    [instance] = outcome['instances']
    assert instance['failed'], instance
    return instance


def state(tmp_path):
    return StateDir(str(tmp_path / 'state'))


# -- a wrong Cinder configuration -------------------------------------------------------------------------------------

@pytest.mark.parametrize('check_mode', [False, True])
def test_an_unknown_cloud_refuses_the_terminate_of_a_domain_with_volumes_and_changes_nothing(
        conn, define, tmp_path, check_mode):
    disk = with_disk(conn, define, tmp_path, 'web01', VOLUMES)
    outcome, dummy = run(terminate, conn, tmp_path, check_mode=check_mode, name=['web01'], cloud='nosuchcloud')
    instance = failed(outcome)
    assert instance['msg'].startswith('domain web01 has Cinder volume(s) %s to settle and the Cinder configuration '
                                      '(cloud nosuchcloud) is refused: cannot configure the Cinder connection: '
                                      % VOLUME)
    assert 'nothing was changed (not shut down, no disk deleted, no volume touched)' in instance['msg']
    assert instance['changed'] is False
    assert 'web01' in defined(conn) and os.path.exists(disk)
    if not check_mode:
        assert state(tmp_path).read_tombstone(conn.lookupByName('web01').UUIDString()) is None


def test_an_unknown_cloud_does_not_reclaim_a_domain_with_volumes_but_reclaims_one_without(conn, define, tmp_path):
    kept_disk = with_disk(conn, define, tmp_path, 'vol01', VOLUMES, soft_deleted_record(PAST))
    with_disk(conn, define, tmp_path, 'plain01', record=soft_deleted_record(PAST))
    outcome, ctx = run(reclaim, conn, tmp_path, cloud='nosuchcloud')
    by_name = dict((i['name'], i) for i in outcome['instances'])
    assert by_name['vol01']['failed'] and 'cloud nosuchcloud' in by_name['vol01']['msg']
    assert 'vol01' in defined(conn) and os.path.exists(kept_disk)
    # No volume recorded: reclaimed; Cinder's look at its attachments waits in the tombstone, and the result says so.
    assert by_name['plain01']['action'] == 'terminated' and 'plain01' not in defined(conn)
    assert any('Cinder could not be asked which volumes are attached' in w for w in by_name['plain01']['warnings'])
    tomb = state(tmp_path).read_tombstone(by_name['plain01']['uuid'])
    assert tomb['cinder_checked'] is False and not tombstones.finished(tomb)


def test_a_soft_delete_at_interval_zero_with_an_unknown_cloud_leaves_a_domain_with_volumes_running(
        conn, define, tmp_path):
    disk = with_disk(conn, define, tmp_path, 'web01', VOLUMES)
    conn.lookupByName('web01').create()
    outcome, dummy = run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval=0, allow_terminate=True,
                         cloud='nosuchcloud')
    assert 'cloud nosuchcloud' in failed(outcome)['msg']
    assert conn.lookupByName('web01').isActive() and os.path.exists(disk)


# -- check mode without Cinder says what the real run does -------------------------------------------------------------

def test_check_mode_without_cinder_reports_the_volumes_the_real_run_leaves_pending(conn, define, tmp_path):
    with_disk(conn, define, tmp_path, 'web01', VOLUMES)
    would = only(run(terminate, conn, tmp_path, check_mode=True, name=['web01'])[0])
    did = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    for key in ('volumes_detached', 'volumes_deleted', 'volumes_pending'):
        assert would[key] == did[key], key
    assert would['volumes_detached'] == [] and would['volumes_deleted'] == []
    assert [v['id'] for v in would['volumes_pending']] == [VOLUME]


def test_without_cinder_options_or_declaration_the_result_says_to_declare_cinder_false(conn, define, tmp_path):
    define('web01')
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert any('no Cinder options were given' in w and 'declares cinder: false' in w and
               'deferred_libvirt_cinder: false' in w for w in instance['warnings'])
    sweep, ctx = run(reclaim, conn, tmp_path)
    assert [t['name'] for t in sweep['extra']['cinder_unchecked']] == ['web01']
    assert any('declares cinder: false' in w for w in ctx.warnings)


# -- a fleet declared without Cinder ----------------------------------------------------------------------------------

def test_a_fleet_without_cinder_finishes_a_terminated_domain_at_once_and_the_retention_prunes_it(conn, define, tmp_path):
    with_disk(conn, define, tmp_path, 'web01')
    instance = only(run(terminate, conn, tmp_path, name=['web01'], cinder=False)[0])
    assert instance['action'] == 'terminated' and not instance.get('warnings')
    tomb = state(tmp_path).read_tombstone(instance['uuid'])
    assert tomb['no_cinder'] is True and tombstones.finished(tomb)
    again = only(run(terminate, conn, tmp_path, name=['web01'], cinder=False)[0])
    assert (again['changed'], again['msg']) == (False, 'already terminated at %s' % tomb['terminated_at'])
    sweep, ctx = run(reclaim, conn, tmp_path, cinder=False)
    assert sweep['extra']['cinder_unchecked'] == [] and not ctx.warnings
    later = _record.utcnow() + datetime.timedelta(days=91)
    pruned = retention.prune(state(tmp_path), set(), retention.RetentionOptions.from_params({'tombstone_retention': '90d'}), now=later)
    assert [t['name'] for t in pruned['tombstones_removed']] == ['web01']


def test_a_fleet_without_cinder_refuses_a_domain_with_recorded_volumes_naming_them(conn, define, tmp_path):
    disk = with_disk(conn, define, tmp_path, 'web01', VOLUMES)
    instance = failed(run(terminate, conn, tmp_path, name=['web01'], cinder=False)[0])
    assert instance['msg'] == (
        'domain web01: its lifecycle record lists Cinder volume(s) %s, but cinder is false (this fleet declares no '
        'Cinder); nothing was changed. Give the Cinder options (cloud or auth) for it, or, if they are not Cinder '
        'volumes, clear them with vm_attributes volumes=[]' % VOLUME)
    assert 'web01' in defined(conn) and os.path.exists(disk)


def test_a_sweep_of_a_fleet_without_cinder_refuses_a_domain_with_volumes_and_reclaims_the_others(
        conn, define, tmp_path):
    with_disk(conn, define, tmp_path, 'vol01', VOLUMES, soft_deleted_record(PAST))
    with_disk(conn, define, tmp_path, 'plain01', record=soft_deleted_record(PAST))
    outcome, ctx = run(reclaim, conn, tmp_path, cinder=False)
    by_name = dict((i['name'], i) for i in outcome['instances'])
    assert by_name['vol01']['failed'] and 'cinder is false' in by_name['vol01']['msg']
    assert [f['name'] for f in outcome['extra']['failed_domains']] == ['vol01']
    assert by_name['plain01']['action'] == 'terminated'
    assert tombstones.finished(state(tmp_path).read_tombstone(by_name['plain01']['uuid']))


def test_declaring_no_cinder_finishes_the_tombstones_that_waited_for_cinder(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    would, dummy = run(reclaim, conn, tmp_path, check_mode=True, cinder=False)
    assert [(i['name'], i['action']) for i in would['instances']] == [('web01', 'would_finish_pending')]
    sweep, ctx = run(reclaim, conn, tmp_path, cinder=False)
    assert [(i['name'], i['action'], i['changed']) for i in sweep['instances']] == [('web01', 'pending_finished', True)]
    assert sweep['extra']['cinder_unchecked'] == [] and [f['name'] for f in sweep['extra']['finished_tombstones']] == ['web01']
    assert tombstones.finished(state(tmp_path).read_tombstone(sweep['instances'][0]['uuid']))


def test_declaring_no_cinder_refuses_a_tombstone_with_pending_volumes_never_silently(conn, define, tmp_path):
    with_disk(conn, define, tmp_path, 'web01', VOLUMES)
    run(terminate, conn, tmp_path, name=['web01'])
    sweep, ctx = run(reclaim, conn, tmp_path, cinder=False)
    instance = failed(sweep)
    assert instance['msg'].startswith('domain web01: its tombstone has pending Cinder volume(s) %s, but cinder is '
                                      'false' % VOLUME)
