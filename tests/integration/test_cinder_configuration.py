# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A wrong Cinder configuration changes nothing, and a fleet without Cinder is first class, against the real
hypervisor and the test bed's real Cinder (tests/testbed/cinder.sh up).

An unknown cloud, a token Cinder refuses and an unreachable Keystone each leave a domain with volumes as it was:
running, its disk and its volume untouched, no tombstone. ``cinder: false`` (deferred_libvirt_cinder: false in the
playbooks) terminates a domain without volumes to a complete tombstone that no sweep lists under cinder_unchecked,
and refuses a domain with recorded volumes. A clouds.yaml that OS_CLIENT_CONFIG_FILE names but that is missing is
one message naming it.
"""

import copy
import os
import sys

import libvirt
import pytest
import yaml

import cinder_helpers as ch
import guests
from fleet_support import named_task, run_playbook, wait_past, write_inventory
from results import only

pytestmark = pytest.mark.cinder

TERMINATE = 'deferred.libvirt.vm_terminate'
RECLAIM = 'deferred.libvirt.vm_reclaim'
ATTRS = 'deferred.libvirt.vm_attributes'
IMAGES = '/var/lib/libvirt/images'
CLOUD_ENV = {'OS_CLIENT_CONFIG_FILE': ch.CLOUDS_YAML}


@pytest.fixture
def ansible(ansible, cinder):
    ansible.extra_env.update(CLOUD_ENV)
    return ansible


def project_of(name):
    return name.rsplit('-', 1)[0]


def running(conn, name):
    try:
        return conn.lookupByName(name).isActive() == 1
    except libvirt.libvirtError:
        return None


def guest(ansible, make_guest, scratch, volumes, cinder, with_volume=True):
    """A running domain with an owned disk under the instance directory and, with_volume, one Cinder volume
    (delete_on_termination) attached as Nova attaches it and recorded with vm_attributes."""
    disk = scratch(IMAGES, 'owned.qcow2')
    guests.make_disk(disk)
    name, uuid = make_guest('a', disks=[{'path': disk, 'target': 'vdb'}])
    recorded = []
    if with_volume:
        vid = volumes('vol')
        ch.attach_like_nova(vid, uuid, mountpoint='/dev/vdc', conn=cinder)
        recorded = [{'id': vid, 'target': 'vdc', 'delete_on_termination': True}]
    only(ansible.task(ATTRS, name=name, project=project_of(name), volumes=recorded))
    return name, uuid, disk, recorded[0]['id'] if recorded else None


def the_testbed_cloud():
    with open(ch.CLOUDS_YAML) as handle:
        return yaml.safe_load(handle)['clouds']['testbed']


def refused_token_cloud():
    cloud = copy.deepcopy(the_testbed_cloud())
    cloud['auth']['token'] = 'admin:0000000000000000000000000000dead'
    return cloud


KEYSTONE_UNREACHABLE = {'auth_type': 'password', 'auth': {
    'auth_url': 'http://127.0.0.1:9/v3', 'username': 'ops', 'password': 'not-used', 'project_name': 'ops',
    'user_domain_name': 'Default', 'project_domain_name': 'Default'}}


@pytest.mark.parametrize('how, options, said', [
    ('unknown cloud', {'cloud': 'nosuchcloud'}, '(cloud nosuchcloud) is refused: cannot configure the Cinder '
                                                'connection: Cloud nosuchcloud was not found'),
    ('refused auth', {'cloud': 'refused'}, 'is refused: Cinder refused a read of the volumes (HTTP 400'),
    # Ansible masks every value of the no_log auth option in the result, its auth_url included.
    ('keystone unreachable', KEYSTONE_UNREACHABLE, 'is refused: authentication failed: Unable to establish connection'),
])
def test_a_wrong_cinder_configuration_leaves_a_domain_with_volumes_running_with_its_disk_and_volume(
        ansible, make_guest, scratch, volumes, cinder, hypervisor, tmp_path, how, options, said):
    name, uuid, disk, vid = guest(ansible, make_guest, scratch, volumes, cinder)
    env = None
    if options.get('cloud') == 'refused':
        options = {'cloud': refused_token_cloud()}
    if 'auth' in options:
        # A controller whose clouds.yaml has no cloud: only the auth given counts.
        (tmp_path / 'clouds.yaml').write_text('clouds: {}\n')
        env = {'OS_CLIENT_CONFIG_FILE': str(tmp_path / 'clouds.yaml')}
    result = ansible.task(TERMINATE, name=name, api_timeout=10, env=env, **options)
    [inst] = result['instances']
    assert inst['failed'] and result['failed'], result
    assert inst['msg'].startswith('domain %s has Cinder volume(s) %s to settle and the Cinder configuration ' % (name, vid))
    assert said in inst['msg']
    assert 'nothing was changed (not shut down, no disk deleted, no volume touched)' in inst['msg']
    assert inst['changed'] is False
    assert running(hypervisor, name) is True and os.path.exists(disk)
    assert ch.volume_status(vid, conn=cinder) == 'in-use'
    assert ansible.tombstone(uuid) is None


def test_an_unknown_cloud_does_not_reclaim_a_domain_with_volumes(
        ansible, make_guest, scratch, volumes, cinder, hypervisor):
    name, uuid, disk, vid = guest(ansible, make_guest, scratch, volumes, cinder)
    deleted = only(ansible.task('deferred.libvirt.vm_soft_delete', name=name, reclaim_interval='2s', shutdown_timeout=1))
    wait_past(deleted['reclaim_at'])
    sweep = ansible.task(RECLAIM, project=project_of(name), cloud='nosuchcloud')
    assert [f['name'] for f in sweep['failed_domains']] == [name]
    assert 'cloud nosuchcloud' in sweep['failed_domains'][0]['msg']
    assert running(hypervisor, name) is False and os.path.exists(disk)
    assert ch.volume_status(vid, conn=cinder) == 'in-use' and ansible.tombstone(uuid) is None


def test_a_fleet_without_cinder_terminates_to_a_complete_tombstone_no_sweep_waits_for(
        ansible, make_guest, scratch, volumes, cinder, hypervisor):
    name, uuid, disk, dummy = guest(ansible, make_guest, scratch, volumes, cinder, with_volume=False)
    inst = only(ansible.task(TERMINATE, name=name, cinder=False))
    assert inst['action'] == 'terminated' and not inst.get('warnings')
    assert running(hypervisor, name) is None and not os.path.exists(disk)
    tomb = ansible.tombstone(uuid)
    assert (tomb['status'], tomb['no_cinder'], tomb['cinder_checked']) == ('terminated', True, False)
    assert tomb['finished_at']
    sweep = ansible.task(RECLAIM, project=project_of(name), cinder=False)
    assert not sweep.get('failed') and sweep['cinder_unchecked'] == [] and sweep['instances'] == []


def test_a_fleet_without_cinder_refuses_a_domain_with_recorded_volumes(
        ansible, make_guest, scratch, volumes, cinder, hypervisor):
    name, uuid, disk, vid = guest(ansible, make_guest, scratch, volumes, cinder)
    result = ansible.task(TERMINATE, name=name, cinder=False)
    [inst] = result['instances']
    assert inst['failed'] and inst['msg'].startswith(
        'domain %s: its lifecycle record lists Cinder volume(s) %s, but cinder is false' % (name, vid))
    assert running(hypervisor, name) is True and os.path.exists(disk)
    assert ch.volume_status(vid, conn=cinder) == 'in-use' and ansible.tombstone(uuid) is None


def local_inventory(tmp_path, state_dir, **group_vars):
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
             'deferred_libvirt_uri': 'qemu:///system', 'deferred_libvirt_state_dir': state_dir}
    return write_inventory(str(tmp_path / 'inventory.json'), {}, state_dir, hosts_over_ssh=(), local=False,
                           extra_hosts={'hv1': local}, group_vars=group_vars)


@pytest.mark.parametrize('playbook', ['deferred.libvirt.terminate', 'deferred.libvirt.soft_delete',
                                      'deferred.libvirt.reclaim'])
def test_a_clouds_file_that_is_missing_is_one_message_naming_it(ansible, state_dir, tmp_path, playbook):
    missing = str(tmp_path / 'gone' / 'clouds.yaml')
    inventory = local_inventory(tmp_path, state_dir)
    result = run_playbook(ansible, playbook, inventory, extra_vars=[{'names': 'nothing-h25c', 'reclaim_project': 'x'}],
                          env={'OS_CLIENT_CONFIG_FILE': missing})
    assert result.rc != 0
    failed = [t['hosts']['hv1'] for play in result.data['plays'] for t in play['tasks']
              if t['hosts'].get('hv1', {}).get('failed')]
    assert [t['msg'] for t in failed] == [
        'OS_CLIENT_CONFIG_FILE (deferred_libvirt_clouds_file) names %s, which does not exist; nothing was changed. '
        'Point it at the clouds.yaml that holds the Cinder cloud, or unset it for a run without Cinder.' % missing]
    assert 'Traceback' not in result.stdout + result.stderr


def test_the_terminate_playbook_of_a_fleet_without_cinder_finishes_the_domain(
        ansible, make_guest, scratch, volumes, cinder, state_dir, tmp_path):
    name, uuid, disk, dummy = guest(ansible, make_guest, scratch, volumes, cinder, with_volume=False)
    inventory = local_inventory(tmp_path, state_dir, deferred_libvirt_cinder=False)
    result = run_playbook(ansible, 'deferred.libvirt.terminate', inventory,
                          extra_vars=[{'names': name, 'project': project_of(name)}])
    assert result.rc == 0, result.stdout[-3000:]
    tomb = ansible.tombstone(uuid)
    assert tomb['status'] == 'terminated' and tomb['no_cinder'] is True and tomb['finished_at']


def test_the_reclaim_playbook_of_a_fleet_without_cinder_finishes_the_tombstones_that_waited_for_cinder(
        ansible, make_guest, scratch, volumes, cinder, state_dir, tmp_path):
    name, uuid, disk, dummy = guest(ansible, make_guest, scratch, volumes, cinder, with_volume=False)
    only(ansible.task(TERMINATE, name=name))
    assert ansible.tombstone(uuid)['cinder_checked'] is False and not ansible.tombstone(uuid).get('finished_at')
    inventory = local_inventory(tmp_path, state_dir, deferred_libvirt_cinder=False)
    result = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory,
                          extra_vars=[{'reclaim_project': project_of(name)}])
    assert result.rc == 0, result.stdout[-3000:]
    sweep = named_task(result, 'Sweep the hypervisor', 'hv1')
    assert sweep['cinder_unchecked'] == [] and [f['uuid'] for f in sweep['finished_tombstones']] == [uuid]
    tomb = ansible.tombstone(uuid)
    assert tomb['no_cinder'] is True and tomb['finished_at']
