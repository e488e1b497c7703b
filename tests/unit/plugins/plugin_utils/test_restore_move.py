# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_restore_move.py: the restore onto another host, planned and checked.

Pure functions of registered results (a dict stands in for hostvars, stat results are shaped as
ansible.builtin.stat returns them); tests/integration/test_fleet_safety.py runs them on hv2 and hv3.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_state import fleet_locate, fleet_state
from ansible_collections.deferred.libvirt.plugins.plugin_utils._restore_move import restore_move_check, restore_move_plan


def view(name, host_disks, project='web', vm_state='soft_deleted'):
    return {'name': name, 'uuid': 'uuid-%s' % name, 'project': project, 'vm_state': vm_state, 'power_state': 'shutoff',
            'vcpus': 1, 'memory_mb': 128, 'managed': True, 'anomalies': [],
            'disks': [{'target': 'vd%s' % chr(97 + i), 'path': p} for i, p in enumerate(host_disks)]}


def hostvars(**hosts):
    return dict((h, {'state_facts_vm_info': {'instances': views, 'failed': False}}) for h, views in hosts.items())


@pytest.fixture
def hv():
    return hostvars(hv2=[view('web', ['/srv/shared/web.qcow2', '/srv/shared/data.qcow2']),
                         view('db', ['/srv/shared/db.qcow2'], project='other')],
                    hv3=[view('cache', ['/srv/shared/cache.qcow2'])])


def located(hv, *names):
    return fleet_locate(fleet_state(hv, sorted(hv)), list(names))


def stat(host, path, exists=True, inode=7, size=1024, mtime=1.5):
    result = {'item': {'host': host, 'path': path}, 'failed': False, 'stat': {'exists': exists}}
    if exists:
        result['stat'].update(inode=inode, size=size, mtime=mtime)
    return result


def test_the_plan_stats_every_disk_on_the_source_and_on_the_target(hv):
    plan = restore_move_plan(located(hv, 'web', 'cache'), hv, 'hv3')
    assert plan['by_source'] == {'hv2': ['uuid-web']} and plan['local'] == ['uuid-cache']
    assert [(s['host'], s['path']) for s in plan['stats']] == [
        ('hv2', '/srv/shared/web.qcow2'), ('hv3', '/srv/shared/web.qcow2'),
        ('hv2', '/srv/shared/data.qcow2'), ('hv3', '/srv/shared/data.qcow2')]


def test_a_target_outside_the_inventory_is_refused(hv):
    with pytest.raises(AnsibleFilterError, match='restore_host hv9 is no host.*nothing was changed'):
        restore_move_plan(located(hv, 'web'), hv, 'hv9')


def test_the_same_files_on_both_hosts_pass(hv):
    plan = restore_move_plan(located(hv, 'web'), hv, 'hv3')
    check = restore_move_check(plan, [stat(s['host'], s['path']) for s in plan['stats']])
    assert check['ok'] and check['problems'] == []


def test_a_missing_disk_and_another_file_at_the_same_path_are_named_with_the_target(hv):
    plan = restore_move_plan(located(hv, 'web'), hv, 'hv3')
    stats = [stat('hv2', '/srv/shared/web.qcow2'), stat('hv3', '/srv/shared/web.qcow2', exists=False),
             stat('hv2', '/srv/shared/data.qcow2'), stat('hv3', '/srv/shared/data.qcow2', inode=8, mtime=2.0)]
    check = restore_move_check(plan, stats)
    assert not check['ok']
    assert check['problems'] == [
        '/srv/shared/web.qcow2 (disk of web on hv2): missing on hv3',
        '/srv/shared/data.qcow2 (disk of web on hv2): on hv3 it is another file (inode, mtime differ)']
    assert check['message'].startswith('cannot restore onto hv3') and check['message'].endswith('nothing was changed')


def test_a_disk_that_was_not_checked_is_a_problem(hv):
    plan = restore_move_plan(located(hv, 'web'), hv, 'hv3')
    check = restore_move_check(plan, [stat('hv2', '/srv/shared/web.qcow2'), stat('hv3', '/srv/shared/web.qcow2')])
    assert check['problems'] == ['/srv/shared/data.qcow2 (disk of web on hv2): was not checked on hv2 itself']


def test_every_backing_file_and_the_nvram_file_are_checked_on_both_hosts():
    """A golden image under an overlay, and the NVRAM file, must be the same files on the target as the disk itself."""
    web = view('web', ['/srv/shared/web.qcow2'])
    web['disks'][0]['chain'] = [{'path': '/srv/shared/golden.qcow2'}, {'path': '/srv/shared/base.raw'}]
    # vm_info lists the NVRAM file among the disks, as device nvram (plugins/module_utils/_views.py).
    web['disks'].append({'path': '/srv/shared/web_VARS.fd', 'device': 'nvram'})
    hv = hostvars(hv2=[web], hv3=[])
    plan = restore_move_plan(located(hv, 'web'), hv, 'hv3')
    [move] = plan['moves']
    assert move['paths'] == ['/srv/shared/web.qcow2', '/srv/shared/golden.qcow2', '/srv/shared/base.raw',
                             '/srv/shared/web_VARS.fd']
    assert sorted((s['host'], s['path']) for s in plan['stats'] if s['path'].endswith('golden.qcow2')) == [
        ('hv2', '/srv/shared/golden.qcow2'), ('hv3', '/srv/shared/golden.qcow2')]
    stats = [{'item': s, 'stat': {'exists': True, 'inode': 1, 'size': 1, 'mtime': 1}} for s in plan['stats']]
    stats[-1]['stat'] = dict(stats[-1]['stat'], inode=2)  # the target's NVRAM file is another file
    checked = restore_move_check(plan, stats)
    assert not checked['ok'] and '/srv/shared/web_VARS.fd' in checked['message']
