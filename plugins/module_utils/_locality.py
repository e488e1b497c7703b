# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Whether another host could reach a disk (rules 10 and 12 of docs/rules.md), when no complete fleet index can vouch for it.

A disk is reachable elsewhere when it lies on a network or cluster filesystem
(the mount's type in /proc/self/mountinfo: nfs, cifs, ceph, fuse.sshfs, ...),
is marked ``<shareable/>``, or is a volume of a shared or network storage pool
(netfs, rbd, iscsi, ...). ``reachable_elsewhere`` says why, or None when the
disk is local. With ``strict`` a bind mount of a directory (the mount's root is
not its filesystem's root) is not provably local either: the same directory may
be mounted into another host at the same path, as the test bed's shared
directory is; only a complete fleet index can say that no other host uses it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import threading

MOUNTINFO = '/proc/self/mountinfo'

# Filesystems whose files other machines open too: network filesystems, cluster filesystems on shared block devices.
NETWORK_FSTYPES = frozenset([
    'nfs', 'nfs4', 'cifs', 'smb3', 'smbfs', 'ceph', 'glusterfs', '9p', 'virtiofs', 'ocfs2', 'gfs', 'gfs2', 'lustre',
    'beegfs', 'fhgfs', 'gpfs', 'afs', 'openafs', 'coda', 'ncpfs', 'orangefs', 'pvfs2', 'davfs', 'moosefs', 'mfs',
    'quobyte', 'vzfs', 'panfs', 'cvfs', 'acfs', 'lizardfs', 'vxfs',
])
# FUSE: sshfs, s3fs, glusterfs or cephfs through FUSE... any of them may be a network filesystem. fuseblk is FUSE
# over a local block device (ntfs-3g, exfat).
FUSE_PREFIX = 'fuse.'
LOCAL_FUSE = frozenset(['fuseblk'])
# libvirt pool types whose volumes other hosts reach: network storage, and LUNs of a SAN.
SHARED_POOL_TYPES = frozenset(['netfs', 'rbd', 'iscsi', 'iscsi-direct', 'gluster', 'sheepdog', 'mpath', 'scsi',
                               'vstorage'])


def _unescape(field):
    """A mountinfo field with its octal escapes (\\040 for a space) undone."""
    out, i = [], 0
    while i < len(field):
        if field[i] == '\\' and field[i + 1:i + 4].isdigit() and len(field[i + 1:i + 4]) == 3:
            out.append(chr(int(field[i + 1:i + 4], 8)))
            i += 4
        else:
            out.append(field[i])
            i += 1
    return ''.join(out)


class Mount(object):
    """One line of mountinfo: where it is mounted, its type, source, device and the root of the filesystem it shows."""

    __slots__ = ('mount_point', 'fstype', 'source', 'device', 'root', 'super_options')

    def __init__(self, mount_point, fstype, source, device, root, super_options):
        self.mount_point = mount_point
        self.fstype = fstype
        self.source = source
        self.device = device
        self.root = root
        self.super_options = super_options

    @property
    def bind(self):
        """A bind mount of a directory: it shows a directory below its filesystem's root (a btrfs subvolume mounted
        as itself is not one)."""
        if self.root == '/':
            return False
        if self.fstype == 'btrfs':
            subvol = [o[len('subvol='):] for o in self.super_options.split(',') if o.startswith('subvol=')]
            return not subvol or subvol[0] != self.root
        return True


def parse_mountinfo(text):
    """The mounts of a mountinfo text (proc(5)), in its order; unreadable lines are left out."""
    mounts = []
    for line in text.splitlines():
        fields = line.split(' ')
        if '-' not in fields[6:]:
            continue
        sep = fields.index('-', 6)
        if len(fields) < sep + 3 or len(fields) < 6:
            continue
        mounts.append(Mount(_unescape(fields[4]), fields[sep + 1], _unescape(fields[sep + 2]), fields[2],
                            _unescape(fields[3]), fields[sep + 3] if len(fields) > sep + 3 else ''))
    return mounts


def _below(path, mount_point):
    return path == mount_point or mount_point == '/' or path.startswith(mount_point.rstrip('/') + '/')


class Mounts(object):
    """This host's mounts, read once (``text`` for a given mountinfo, as the tests give)."""

    def __init__(self, text=None):
        self._text = text
        self._mounts = None
        self._lock = threading.Lock()

    def _all(self):
        with self._lock:
            if self._mounts is None:
                text = self._text
                if text is None:
                    try:
                        with open(MOUNTINFO) as handle:
                            text = handle.read()
                    except (IOError, OSError):
                        text = ''
                self._mounts = parse_mountinfo(text)
        return self._mounts

    def mount_of(self, path, device=None):
        """The mount that holds ``path`` (a real path): the last-mounted of those whose mount point is the longest
        prefix of it; with ``device`` ("major:minor" of the file) one of that device wins (a bind mount elsewhere
        of the same filesystem, an overmount). None when nothing is known."""
        best = None
        for mount in self._all():
            if not _below(path, mount.mount_point):
                continue
            if best is None or len(mount.mount_point) >= len(best.mount_point):
                best = mount
        if best is not None and device is not None and best.device != device:
            same = [m for m in self._all() if m.device == device and _below(path, m.mount_point)]
            if same:
                best = max(same, key=lambda m: len(m.mount_point))
        return best

    def reachable_elsewhere(self, path, strict=False):
        """Why another host could reach the file at ``path``, or None when it is local (see the module doc)."""
        real = os.path.realpath(path)
        device = None
        probe = real
        while probe:
            try:
                st = os.stat(probe)
                device = '%d:%d' % (os.major(st.st_dev), os.minor(st.st_dev))
                break
            except OSError:
                parent = os.path.dirname(probe)
                probe = parent if parent != probe else None
        # The device of an existing ancestor above the mount that holds the path says nothing of that mount.
        holder = self.mount_of(real)
        if holder is not None and probe and not _below(probe, holder.mount_point):
            device = None
        mount = self.mount_of(real, device)
        if mount is None:
            return None if not strict else 'its mount cannot be found in %s' % MOUNTINFO
        fstype = mount.fstype
        if fstype in NETWORK_FSTYPES or ((fstype.startswith(FUSE_PREFIX) or fstype == 'fuse') and fstype not in LOCAL_FUSE):
            return 'on a network filesystem (%s at %s) another host may use' % (fstype, mount.mount_point)
        if strict and mount.bind:
            return ('in a bind mount (%s of %s at %s) the same directory may be mounted into another host'
                    % (mount.root, mount.source, mount.mount_point))
        return None


def disk_reachable_elsewhere(disk, path, pool_type=None, mounts=None, strict=False):
    """Why another host could reach ``disk`` (a disk as the hypervisor lists it, or as vm_info reports it) whose
    file is ``path``, or None when it is local. ``pool_type`` is the type of the libvirt pool its volume is in."""
    if disk.get('shareable'):
        return 'a shareable disk (<shareable/>): other hosts may attach it'
    if pool_type in SHARED_POOL_TYPES:
        return 'a volume of the %s pool %s, storage other hosts may reach' % (pool_type, disk.get('pool'))
    if disk.get('type') == 'network':
        return 'a network disk (%s)' % (disk.get('path') or '')
    if not path:
        return None
    return (mounts or Mounts()).reachable_elsewhere(path, strict=strict)
