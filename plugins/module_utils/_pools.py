# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a domain needs around it on its host: its libvirt networks and storage pools started, pool volumes
looked up (each pool read once per run), their paths (even while a pool is inactive) and their deletion."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import threading
import xml.etree.ElementTree as ET

from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import call, HypervisorError, libvirt


def ensure_networks(conn, domain):
    """Start every libvirt network the domain's interfaces use; return the names started."""
    started = []
    for name in domain.networks():
        try:
            net = conn.networkLookupByName(name)
        except libvirt.libvirtError:
            raise HypervisorError('domain %s: network %s does not exist' % (domain.name, name))
        if not net.isActive():
            call('starting network %s' % name, domain.name, net.create)
            started.append(name)
    return started


def ensure_pools(conn, domain):
    """Start every storage pool the domain's disks use; return the names started.

    A pool that is already running is refreshed only when it does not list a
    volume the domain names (one another host of shared storage created, say):
    a refresh reads every file of the pool, so it is not done per restore
    without need. Starting a pool reads them anyway.
    """
    started = []
    disks = domain.disks()
    names = set(d['pool'] for d in disks if d['pool'])
    files = [d['path'] for d in disks if d['type'] == 'file' and d['path']]
    if files:
        dirs = _pool_dirs(conn)
        names.update(dirs[os.path.dirname(os.path.realpath(path))] for path in files
                     if os.path.dirname(os.path.realpath(path)) in dirs)
    for name in sorted(names):
        try:
            pool = conn.storagePoolLookupByName(name)
        except libvirt.libvirtError:
            raise HypervisorError('domain %s: storage pool %s does not exist' % (domain.name, name))
        if not pool.isActive():
            call('starting storage pool %s' % name, domain.name, pool.create, 0)
            started.append(name)
            continue
        for volume in sorted(set(d['volume'] for d in disks if d['type'] == 'volume' and d['pool'] == name)):
            try:
                pool.storageVolLookupByName(volume)
            except libvirt.libvirtError:
                try:
                    pool.refresh(0)
                except libvirt.libvirtError:
                    pass  # the start reports the volume that is still missing
                break
    return started


def _pool_dirs(conn):
    """{real target directory: pool name} of the defined dir-like pools."""
    found = {}
    try:
        pools = conn.listAllStoragePools(0)
    except libvirt.libvirtError:
        return found
    for pool in pools:
        try:
            target = ET.fromstring(pool.XMLDesc(0)).findtext('target/path')
        except libvirt.libvirtError:
            continue
        if target:
            found.setdefault(os.path.realpath(target), pool.name())
    return found


def volume_object_path(vol):
    """The path of a virStorageVol; HypervisorError when libvirt cannot say."""
    try:
        return vol.path()
    except libvirt.libvirtError as exc:
        raise HypervisorError('volume %s: %s' % (vol.name(), exc.get_error_message()))


def volume_path(conn, pool, volume):
    try:
        return conn.storagePoolLookupByName(pool).storageVolLookupByName(volume).path()
    except libvirt.libvirtError as exc:
        raise HypervisorError('volume %s in pool %s: %s' % (volume, pool, exc.get_error_message()))


# Pools whose volumes are files named after them in the pool's target directory (libvirt's own rule for them).
DIR_POOL_TYPES = ('dir', 'fs', 'netfs')


class Pools(object):
    """The storage pools of one run, each looked up and read once (a sweep asks about every disk of the host)."""

    def __init__(self, conn):
        self._conn = conn
        self._pools = {}
        self._lock = threading.Lock()

    def _pool(self, name):
        """(pool, type, target directory, error) of the named pool."""
        with self._lock:
            if name not in self._pools:
                try:
                    pool = self._conn.storagePoolLookupByName(name)
                    root = ET.fromstring(pool.XMLDesc(0))  # the target is the same live or not
                    self._pools[name] = (pool, root.get('type'), root.findtext('target/path'), None)
                except (libvirt.libvirtError, ET.ParseError) as exc:
                    why = exc.get_error_message() if isinstance(exc, libvirt.libvirtError) else str(exc)
                    self._pools[name] = (None, None, None, why)
            return self._pools[name]

    def pool_type(self, name):
        """The type of the named pool (dir, netfs, rbd, ...), None when it cannot be found."""
        return self._pool(name)[1]

    def volume(self, name, volume):
        """The volume's virStorageVol; HypervisorError when the pool or the volume cannot be found."""
        pool, dummy, dummy, error = self._pool(name)
        if pool is None:
            raise HypervisorError('volume %s in pool %s: %s' % (volume, name, error))
        try:
            return pool.storageVolLookupByName(volume)
        except libvirt.libvirtError as exc:
            raise HypervisorError('volume %s in pool %s: %s' % (volume, name, exc.get_error_message()))

    def path_offline(self, name, volume):
        """What volume_path_offline says, with no call per volume for a dir-like pool (its target and the name)."""
        pool, kind, target, error = self._pool(name)
        if pool is None:
            raise HypervisorError('volume %s in pool %s: %s' % (volume, name, error))
        if kind not in DIR_POOL_TYPES or not target:
            try:
                return self.volume(name, volume).path()
            except (HypervisorError, libvirt.libvirtError):
                pass
        if not target:
            raise HypervisorError('volume %s in pool %s: the pool has no target directory' % (volume, name))
        return os.path.join(target, volume)


def volume_path_offline(conn, pool, volume):
    """Where a volume of a pool lives even while the pool is inactive: the pool's target directory and the volume's
    name (dir-like pools name a volume's file after it). HypervisorError when even that cannot be read."""
    return Pools(conn).path_offline(pool, volume)


def volume_by_path(conn, real):
    """The storage volume at ``real`` (a real path), or None when no pool holds it."""
    try:
        return conn.storageVolLookupByPath(real)
    except libvirt.libvirtError:
        return None


def delete_volume(conn, real, vol=None):
    """Delete the pool volume at ``real`` (``vol``, when the caller has it) through its pool; returns why the pool
    refused, or None.

    A refusal leaves the file to the caller; the pool is refreshed on its next use.
    """
    vol = vol if vol is not None else volume_by_path(conn, real)
    if vol is not None:
        try:
            vol.delete(0)
        except libvirt.libvirtError as exc:
            return exc.get_error_message()
    return None


def volume_identity(conn, pool, volume):
    """What the host behind ``conn`` says a pool volume is: its path, size on disk and modification time (whole
    seconds), read through libvirt (so a host that runs nothing of ours can still be asked). HypervisorError when
    the volume cannot be read there."""
    try:
        vol = conn.storagePoolLookupByName(pool).storageVolLookupByName(volume)
        root = ET.fromstring(vol.XMLDesc(0))
    except (libvirt.libvirtError, ET.ParseError) as exc:
        message = exc.get_error_message() if hasattr(exc, 'get_error_message') else str(exc)
        raise HypervisorError('volume %s in pool %s cannot be read: %s' % (volume, pool, message))
    mtime = root.findtext('target/timestamps/mtime')
    physical = root.findtext('physical') or root.findtext('allocation')
    return {'path': root.findtext('target/path') or vol.path(),
            'size': int(physical) if physical and physical.isdigit() else None,
            'mtime': int(float(mtime)) if mtime else None}
