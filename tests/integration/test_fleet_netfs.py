# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Disks on a real network filesystem shared by the hosts (issue 23, rules 10 and 12).

tests/testbed/fleet.sh mounts one sshfs export (served by hv2's sshd) at /srv/netfs-images on hv1, hv2 and hv3:
a FUSE filesystem, each host with its own mount, so one file has another st_dev on every host and only its path
names it fleet-wide. Ad hoc on one host with no fleet view, a disk there is kept and reported (another host may use
it), while a local disk of the same domain is still deleted; the sweep over the whole fleet, with a complete index,
deletes an unshared disk there and keeps one a domain on another host uses.
"""

import glob
import os

import pytest

import cinder_helpers as ch
import guests
import yaml
from fleet_support import (NETFS_DIR, NETFS_EXPORT, adhoc_on, named_task, run_playbook, task_on, wait_past,
                           write_inventory)

ATTRS = 'deferred.libvirt.vm_attributes'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
TERMINATE = 'deferred.libvirt.vm_terminate'


@pytest.fixture
def netfs(fleet, prefix):
    """netfs('data') -> a new qcow2 image on the network filesystem (its path there); removed after."""
    def make(suffix):
        return guests.make_disk(os.path.join(NETFS_DIR, '%s%s.qcow2' % (prefix, suffix)))
    yield make
    for path in glob.glob(os.path.join(NETFS_EXPORT, prefix + '*')):
        os.unlink(path)


@pytest.fixture
def cloud():
    with open(ch.CLOUDS_YAML) as handle:
        return yaml.safe_load(handle)['clouds']['testbed']


@pytest.fixture
def inventory(fleet, state_dir, tmp_path, cloud):
    """hv2 and hv3 over SSH; the network filesystem is an instance directory, so rule 6 alone would delete there."""
    return write_inventory(str(tmp_path / 'inventory.json'), fleet, state_dir, hosts_over_ssh=('hv2', 'hv3'),
                           local=False, group_vars={'deferred_libvirt_cloud': cloud,
                                                    'deferred_libvirt_instance_dirs': ['/var/lib/libvirt/images',
                                                                                       NETFS_DIR]})


def ok(result):
    assert not result.get('failed'), result
    return result


def on_export(path):
    """Whether the file at ``path`` on the network filesystem exists, read at the server (no client's cache)."""
    return os.path.exists(os.path.join(NETFS_EXPORT, os.path.relpath(path, NETFS_DIR)))


def test_the_network_filesystem_is_one_file_at_one_path_on_every_host_with_its_own_device(fleet, netfs):
    path = netfs('probe')
    seen = {}
    for host in ('hv2', 'hv3'):
        out = guests.subprocess.run(['nsenter', '--mount', '--target', str(fleet[host]['holder_pid']), '--',
                                     'sh', '-c', 'findmnt -n -o FSTYPE %s; stat -c "%%d %%s" %s' % (NETFS_DIR, path)],
                                    capture_output=True, text=True, check=True).stdout.split('\n')
        seen[host] = (out[0], out[1])
    st = os.stat(path)
    assert seen['hv2'][0] == seen['hv3'][0] == 'fuse.sshfs'
    assert seen['hv2'][1].split()[1] == seen['hv3'][1].split()[1] == str(st.st_size)
    # One mount per host: the same file has a device of its own on each (only its path names it across hosts).
    assert len(set([seen['hv2'][1].split()[0], seen['hv3'][1].split()[0], str(st.st_dev)])) == 3


def test_ad_hoc_on_one_host_with_no_fleet_view_a_disk_on_a_network_filesystem_is_kept_and_reported(
        ansible, inventory, fleet, hv2, netfs, project, state_dir):
    shared = netfs('data')
    local = guests.make_disk(os.path.join(fleet['hv2']['images_from_main_namespace'], hv2.prefix + 'root.qcow2'))
    name, uuid = hv2.make('a', start=False, disks=[{'path': shared, 'target': 'vdb'},
                                                   {'path': '/var/lib/libvirt/images/%sroot.qcow2' % hv2.prefix,
                                                    'target': 'vdc'}])
    ok(task_on(ansible, inventory, 'hv2', ATTRS, name=name, project=project, user='alice'))
    args = {'name': name, 'project': project, 'state_dir': os.path.join(state_dir, 'hv2'),
            'instance_dirs': ['/var/lib/libvirt/images', NETFS_DIR]}

    rc, done = adhoc_on(ansible, inventory, 'hv2', TERMINATE, args)

    assert rc == 0, done
    result = done['instances'][0]

    assert result['action'] == 'terminated' and not hv2.exists(name)
    assert on_export(shared), 'the disk on the network filesystem was deleted'
    kept = [k for k in result['disks_kept'] if k['path'] == shared]
    assert len(kept) == 1 and kept[0]['kept_for_now'] is True, result['disks_kept']
    assert kept[0]['reason'].startswith('not deleted: on a network filesystem (fuse.sshfs at %s) another host may use'
                                        % NETFS_DIR), kept[0]
    assert 'pass the fleet index' in kept[0]['reason']
    # A local disk of the same domain is still its own to delete.
    assert result['disks_deleted'] == ['/var/lib/libvirt/images/%sroot.qcow2' % hv2.prefix], result
    assert not os.path.exists(local)


def test_the_whole_fleet_sweep_deletes_an_unshared_disk_on_the_network_filesystem_and_keeps_a_shared_one(
        ansible, inventory, hv2, hv3, netfs, project):
    alone = netfs('alone')
    both = netfs('both')
    a, a_uuid = hv2.make('a', start=False, disks=[{'path': alone, 'target': 'vdb'}, {'path': both, 'target': 'vdc'}])
    b, b_uuid = hv3.make('b', start=False, disks=[{'path': both, 'target': 'vdb'}])
    for host, name in (('hv2', a), ('hv3', b)):
        ok(task_on(ansible, inventory, host, ATTRS, name=name, project=project, user='alice'))
    done = ok(task_on(ansible, inventory, 'hv2', SOFT_DELETE, name=a, project=project, reclaim_interval='2s'))
    wait_past(done['instances'][0]['reclaim_at'])

    result = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}])

    assert result.rc == 0, result.stdout[-3000:]
    swept = named_task(result, 'Sweep the hypervisor', 'hv2')
    assert [r['name'] for r in swept['reclaimed']] == [a], swept
    assert not hv2.exists(a) and hv3.exists(b)
    assert not on_export(alone), 'the complete index vouches for the unshared disk: it goes with its domain'
    assert on_export(both), 'a disk a domain on hv3 uses was deleted'
    reclaimed = swept['reclaimed'][0]
    kept = [k for k in reclaimed.get('disks_kept', []) if k['path'] == both]
    assert kept and 'on hv3' in kept[0]['reason'] and not kept[0].get('kept_for_now'), reclaimed
