# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which disks another host could reach (_locality), and what a terminate keeps for it when no complete fleet index
vouches for the disk (rules 10 and 12): mountinfo texts given as input, this machine's own, test:///default."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _locality as locality
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage

# A hypervisor's mountinfo: a local root, an NFS export, an sshfs, a bind mount of a local directory, a CephFS, a
# btrfs subvolume mounted as itself, a mount point with a space in it (escaped as \040), a fuseblk (ntfs-3g).
MOUNTINFO = '\n'.join([
    '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
    '40 27 0:50 / /var/lib/nova/instances rw,relatime shared:7 - nfs4 nas:/export/instances rw,vers=4.2',
    '41 27 0:51 / /srv/netfs-images rw,nosuid - fuse.sshfs root@nas:/images rw,user_id=0,allow_other',
    '45 27 254:0 /var/lib/shared /srv/shared-images rw,relatime - ext4 /dev/vda rw',
    '46 27 0:52 / /mnt/ceph rw - ceph 10.0.0.1:6789:/ rw,name=admin',
    '47 27 0:53 /@images /var/lib/libvirt/images rw - btrfs /dev/vdb rw,subvol=/@images',
    '48 27 254:16 / /srv/my\\040images rw - xfs /dev/vdc rw',
    '49 27 8:17 / /mnt/usb rw - fuseblk /dev/sdb1 rw',
    'a line that is not mountinfo',
])


@pytest.fixture
def mounts():
    return locality.Mounts(MOUNTINFO)


def test_mountinfo_is_parsed_with_its_escapes_and_unreadable_lines_left_out():
    parsed = locality.parse_mountinfo(MOUNTINFO)
    assert [m.mount_point for m in parsed][-2:] == ['/srv/my images', '/mnt/usb']
    assert [m.fstype for m in parsed][:3] == ['ext4', 'nfs4', 'fuse.sshfs']
    assert len(parsed) == 8


@pytest.mark.parametrize('path, fstype', [
    ('/var/lib/nova/instances/web01/disk', 'nfs4'),
    ('/srv/netfs-images/web01.qcow2', 'fuse.sshfs'),
    ('/mnt/ceph/web01.raw', 'ceph'),
])
def test_a_disk_on_a_network_filesystem_is_reachable_elsewhere_whatever_the_scope(mounts, path, fstype):
    for strict in (False, True):
        why = mounts.reachable_elsewhere(path, strict=strict)
        assert why is not None and 'network filesystem (%s at ' % fstype in why


@pytest.mark.parametrize('path', ['/var/lib/libvirt/images/web01.qcow2', '/srv/my images/web01.qcow2',
                                  '/mnt/usb/web01.qcow2', '/var/lib/nova-local/web01.qcow2'])
def test_a_disk_on_a_local_filesystem_is_local_whatever_the_scope(mounts, path):
    assert mounts.reachable_elsewhere(path) is None
    assert mounts.reachable_elsewhere(path, strict=True) is None


def test_a_bind_mounted_directory_is_local_with_no_fleet_view_and_not_provably_local_otherwise(mounts):
    path = '/srv/shared-images/web01.qcow2'
    assert mounts.reachable_elsewhere(path) is None
    why = mounts.reachable_elsewhere(path, strict=True)
    assert 'bind mount (/var/lib/shared of /dev/vda at /srv/shared-images)' in why


def test_a_path_by_prefix_is_by_whole_components(mounts):
    assert mounts.reachable_elsewhere('/srv/netfs-images-local/web01.qcow2') is None


def test_a_shareable_disk_and_a_volume_of_a_network_pool_are_reachable_elsewhere(mounts):
    local = '/var/lib/libvirt/images/web01.qcow2'
    assert 'shareable' in locality.disk_reachable_elsewhere({'shareable': True}, local, mounts=mounts)
    for kind in ('netfs', 'rbd', 'iscsi', 'iscsi-direct', 'gluster', 'mpath', 'scsi', 'sheepdog'):
        why = locality.disk_reachable_elsewhere({'type': 'volume', 'pool': 'p1'}, local, kind, mounts)
        assert why == 'a volume of the %s pool p1, storage other hosts may reach' % kind
    for kind in ('dir', 'fs', 'logical', None):
        assert locality.disk_reachable_elsewhere({'type': 'volume', 'pool': 'p1'}, local, kind, mounts) is None
    assert 'network disk' in locality.disk_reachable_elsewhere({'type': 'network', 'path': 'rbd:pool/img'}, None)


def test_this_machines_own_mountinfo_is_read(tmp_path):
    """The real /proc/self/mountinfo: the root filesystem is found, and a network filesystem mounted here (the fleet
    test bed's sshfs) is one."""
    mounts = locality.Mounts()
    assert mounts.mount_of('/') is not None
    assert mounts.mount_of(str(tmp_path)) is not None
    with open('/proc/self/mountinfo') as handle:
        text = handle.read()
    for mount in locality.parse_mountinfo(text):
        if mount.fstype.startswith('fuse.') or mount.fstype in locality.NETWORK_FSTYPES:
            assert mounts.reachable_elsewhere(os.path.join(mount.mount_point, 'x.qcow2')) is not None


# -- what a terminate keeps (classify_disks) -------------------------------------------------------------------------

def sshfs_over(directory):
    """A mountinfo where ``directory`` is an sshfs mount (the file's own device, as the kernel would list it)."""
    st = os.stat(directory)
    return locality.Mounts('\n'.join([
        '27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
        '41 27 %d:%d / %s rw,nosuid - fuse.sshfs root@hv2:/export rw,allow_other'
        % (os.major(st.st_dev), os.minor(st.st_dev), directory)]))


def classify(conn, define, tmp_path, view, mounts):
    disk = tmp_path / 'web01.qcow2'
    disk.write_bytes(b'x')
    define('web01', devices='<disk type="file" device="disk"><source file="%s"/><target dev="vda"/></disk>' % disk)
    domain = hv.refresh(conn, conn.lookupByName('web01'))
    index = storage.Index(conn, hv.list_domains(conn), view, mounts=mounts)
    return storage.classify_disks(conn, domain, [str(tmp_path)], index)


def test_ad_hoc_with_no_fleet_view_a_disk_on_a_network_filesystem_is_kept_and_reported(conn, define, tmp_path):
    owned, kept = classify(conn, define, tmp_path, None, sshfs_over(str(tmp_path)))
    assert owned == []
    assert kept[0]['kept_for_now'] is True
    assert kept[0]['reason'].startswith('not deleted: on a network filesystem (fuse.sshfs at %s) another host may use'
                                        % tmp_path)
    assert 'pass the fleet index' in kept[0]['reason']


def test_ad_hoc_with_no_fleet_view_a_local_disk_is_still_deleted(conn, define, tmp_path):
    owned, kept = classify(conn, define, tmp_path, None, locality.Mounts('27 1 254:0 / / rw - ext4 /dev/vda rw'))
    assert [o['real_path'] for o in owned] == [str(tmp_path / 'web01.qcow2')], kept


def incomplete():
    return fleet.FleetView({'complete': False, 'missing': ['hv3'], 'stale': {}, 'shared_disks': {}}, {'hostname': 'hv2'})


def test_an_incomplete_fleet_index_keeps_for_now_what_another_host_could_reach(conn, define, tmp_path):
    owned, kept = classify(conn, define, tmp_path, incomplete(), sshfs_over(str(tmp_path)))
    assert owned == []
    assert kept[0]['kept_for_now'] is True
    assert 'not deleted for now: on a network filesystem (fuse.sshfs' in kept[0]['reason']
    assert 'the fleet index is incomplete (hv3 did not report)' in kept[0]['reason']


def test_an_incomplete_fleet_index_keeps_a_bind_mounted_directory_for_now(conn, define, tmp_path):
    st = os.stat(str(tmp_path))
    mounts = locality.Mounts('27 1 254:0 / / rw - ext4 /dev/vda rw\n45 27 %d:%d /var/lib/shared %s rw - ext4 /dev/vda rw'
                             % (os.major(st.st_dev), os.minor(st.st_dev), tmp_path))
    owned, kept = classify(conn, define, tmp_path, incomplete(), mounts)
    assert owned == [] and kept[0]['kept_for_now'] is True and 'bind mount' in kept[0]['reason']


def test_an_incomplete_fleet_index_still_deletes_a_local_disk(conn, define, tmp_path):
    """Before, every disk was kept while any host of the fleet did not report, even one no other host can reach."""
    st = os.stat(str(tmp_path))
    mounts = locality.Mounts('27 1 %d:%d / / rw - ext4 /dev/vda rw' % (os.major(st.st_dev), os.minor(st.st_dev)))
    owned, kept = classify(conn, define, tmp_path, incomplete(), mounts)
    assert [o['real_path'] for o in owned] == [str(tmp_path / 'web01.qcow2')], kept


def test_a_complete_fleet_index_vouches_for_a_disk_on_a_network_filesystem(conn, define, tmp_path):
    view = fleet.FleetView({'complete': True, 'missing': [], 'stale': {}, 'shared_disks': {}}, {'hostname': 'hv2'})
    owned, kept = classify(conn, define, tmp_path, view, sshfs_over(str(tmp_path)))
    assert [o['real_path'] for o in owned] == [str(tmp_path / 'web01.qcow2')], kept
