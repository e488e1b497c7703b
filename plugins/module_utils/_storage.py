# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage ownership (spec rule 6): which disks a domain owns, what other domains use, deleting a disk.

Backing chains are read one way only, from the qcow2 image headers
(``backing_files``), by terminate's ownership checks and restore's disk
checks alike. The host's disk index is built once per run (``Index``) and
handed to every terminate of that run.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import struct
import threading

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv

DEFAULT_INSTANCE_DIRS = ['/var/lib/libvirt/images']
ARGS = dict(
    instance_dirs=dict(type='list', elements='path', default=DEFAULT_INSTANCE_DIRS),
)
QCOW2_MAGIC = b'QFI\xfb'
# The longest backing chain followed; deeper chains are not something libvirt builds.
MAX_CHAIN = 16


def instance_dirs(paths):
    """The instance directories as real paths; DeferredError (HypervisorError) for a relative one."""
    dirs = []
    for path in paths or DEFAULT_INSTANCE_DIRS:
        if not path.startswith('/'):
            raise hv.HypervisorError('instance_dirs: %r is not an absolute path; nothing was changed' % path)
        dirs.append(os.path.realpath(path))
    return dirs


def _backing_name(handle):
    """The backing file name in a qcow2 header, '' for none, None when the file is not qcow2."""
    header = handle.read(20)
    if len(header) < 20 or header[:4] != QCOW2_MAGIC:
        return None
    offset = struct.unpack('>Q', header[8:16])[0]
    size = struct.unpack('>I', header[16:20])[0]
    if not offset or not size or size > 4096:
        return ''
    handle.seek(offset)
    return handle.read(size).decode('utf-8', 'replace')


def backing_chain(path, strict=False):
    """The backing files below ``path`` (not itself), as (name as QEMU opens it, real path) pairs.

    A relative backing name is resolved against the directory of the name the
    image was opened by, as QEMU does. With ``strict``, a missing image in the
    chain raises HypervisorError naming it; otherwise the chain stops there.
    """
    chain = []
    current = path
    seen = set([os.path.realpath(path)])
    for dummy in range(MAX_CHAIN):
        try:
            with open(current, 'rb') as handle:
                name = _backing_name(handle)
        except (IOError, OSError) as exc:
            if strict:
                if current == path:
                    raise hv.HypervisorError('disk file %s does not exist' % path)
                raise hv.HypervisorError('disk file %s: backing file %s cannot be opened: %s'
                                         % (path, current, exc.strerror or exc))
            break
        if not name:
            break
        if ':' in name.split('/', 1)[0]:
            break  # a protocol (nbd:, rbd:, json:), not a file
        opened = name if name.startswith('/') else os.path.join(os.path.dirname(current), name)
        real = os.path.realpath(opened)
        if real in seen:
            break
        seen.add(real)
        chain.append((opened, real))
        current = opened
    return chain


def backing_files(path):
    """Real paths of the qcow2 backing chain below ``path``, read from the image headers."""
    return [real for dummy, real in backing_chain(path)]


def disk_paths(conn, domain):
    """Real paths of the domain's file, block and pool-volume disks: {real path: target}."""
    paths = {}
    for disk in domain.disks():
        path = disk['path']
        if disk['type'] == 'volume' and disk['pool'] and disk['volume']:
            try:
                path = hv.volume_path(conn, disk['pool'], disk['volume'])
            except hv.HypervisorError:
                continue
        if path and disk['type'] in ('file', 'volume', 'block'):
            paths[os.path.realpath(path)] = disk['target']
    return paths


def check_disks(conn, domain):
    """Raise HypervisorError naming the first disk, backing file or boot file that is missing (before a boot)."""
    for path in domain.boot_files():
        if not os.path.exists(path):
            raise hv.HypervisorError('domain %s: boot file %s does not exist' % (domain.name, path))
    for disk in domain.disks():
        path = disk['path']
        if disk['type'] == 'volume':
            path = hv.volume_path(conn, disk['pool'], disk['volume'])
        if disk['type'] not in ('file', 'volume', 'block') or not path:
            continue
        try:
            if not os.path.exists(path):
                raise hv.HypervisorError('disk file %s does not exist' % path)
            backing_chain(path, strict=True)
        except hv.HypervisorError as exc:
            raise hv.HypervisorError('domain %s: disk %s: %s' % (domain.name, disk['target'], exc))


class Index(object):
    """What every domain of the host uses as a disk or a backing file, built once per run on first use.

    A sweep that terminates many domains asks it once per domain; building it
    per domain would walk every other domain's disks again each time, and the
    cost would grow with the square of the number of domains.
    """

    def __init__(self, conn, domains):
        self._conn = conn
        self._domains = [d for d in domains if d is not None]
        self._lock = threading.Lock()
        self._built = None

    def _build(self):
        # Locked: a run's threads all start at once, and each would otherwise build the index itself.
        with self._lock:
            if self._built is None:
                disks, backing = {}, {}
                for other in self._domains:
                    for path in disk_paths(self._conn, other):
                        disks.setdefault(path, []).append((other.uuid, other.name))
                        for below in backing_files(path):
                            backing.setdefault(below, []).append((other.uuid, other.name))
                self._built = (disks, backing)
        return self._built

    def others(self, me):
        """({real path: [names]} of the other domains' disks, the same of their backing files), leaving ``me`` out."""
        disks, backing = self._build()
        return _Others(disks, me.uuid), _Others(backing, me.uuid)


class _Others(object):
    """{real path: [names]} of a host-wide index, leaving one domain (the one being terminated) out."""

    def __init__(self, index, uuid):
        self._index = index
        self._uuid = uuid

    def __contains__(self, path):
        return any(uuid != self._uuid for uuid, dummy in self._index.get(path, ()))

    def __getitem__(self, path):
        names = [name for uuid, name in self._index.get(path, ()) if uuid != self._uuid]
        if not names:
            raise KeyError(path)
        return names


def under(path, dirs):
    """Whether ``path`` is one of ``dirs`` or lies below one, by whole path components."""
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in dirs)


def classify_disks(conn, domain, dirs, index):
    """Split the domain's disks into what it owns (to delete) and what it must leave (with the reason).

    Owned: volumes of libvirt storage pools and files whose real path (links
    and ``..`` resolved) lies under the instance directories ``dirs``, unless
    another domain uses them as a disk or a backing file. Everything else is kept.
    """
    disks_of_others, backing_of_others = index.others(domain)
    owned, kept = [], []
    for disk in domain.disks():
        entry = {'target': disk['target'], 'path': disk['path'], 'pool': disk['pool'], 'volume': disk['volume']}
        if disk['device'] in ('cdrom', 'floppy') or disk['readonly'] or disk['shareable']:
            kept.append(dict(entry, reason='%s disk' % ('read-only or shareable' if disk['device'] == 'disk' else disk['device'])))
            continue
        if disk['type'] == 'volume':
            try:
                path = hv.volume_path(conn, disk['pool'], disk['volume'])
            except hv.HypervisorError as exc:
                kept.append(dict(entry, reason=str(exc)))
                continue
        elif disk['type'] in ('file', 'block') and disk['path']:
            path = disk['path']
        else:
            kept.append(dict(entry, reason='%s disk %s is not storage the domain owns'
                             % (disk['type'], disk['path'] or '')))
            continue
        real = os.path.realpath(path)
        entry['real_path'] = real
        if real in disks_of_others:
            kept.append(dict(entry, reason='shared with domain(s) %s' % ', '.join(sorted(disks_of_others[real]))))
            continue
        if real in backing_of_others:
            kept.append(dict(entry, reason='backing file of a disk of domain(s) %s'
                             % ', '.join(sorted(set(backing_of_others[real])))))
            continue
        if hv.volume_by_path(conn, real) is not None:
            owned.append(dict(entry, kind='pool_volume'))
        elif disk['type'] == 'block':
            kept.append(dict(entry, reason='block device %s is not a volume of a libvirt storage pool' % real))
        elif under(real, dirs):
            owned.append(dict(entry, kind='file'))
        else:
            kept.append(dict(entry, reason='%s is outside the instance directories (%s)' % (real, ', '.join(dirs))))
    return owned, kept


def delete_disk(conn, item, dirs):
    """Delete one owned disk; a disk already gone is fine.

    A symbolic link that led to it is removed too, but only when the link
    itself lies in an instance directory.
    """
    real = item['real_path']
    if item['kind'] == 'pool_volume':
        hv.delete_volume(conn, real)
    if os.path.islink(real) or os.path.isfile(real):  # never a device node or a directory
        os.unlink(real)
    link = item.get('path')
    if link and os.path.islink(link) and under(os.path.realpath(os.path.dirname(link)), dirs):
        os.unlink(link)
