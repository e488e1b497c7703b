# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage ownership (rule 6 of docs/rules.md): which disks a domain owns, what other domains use, deleting a disk.

Backing chains are read one way only, from the qcow2 image headers
(``_chains``), by terminate's ownership checks and restore's disk checks
alike. The host's disk index is built once per run (``Index``) and
handed to every terminate of that run.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import os
import re
import stat
import threading

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils._chains import ChainUnreadable, backing_chain
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _locality
from ansible_collections.deferred.libvirt.plugins.module_utils import _pools

DEFAULT_INSTANCE_DIRS = ['/var/lib/libvirt/images']
ARGS = dict(
    instance_dirs=dict(type='list', elements='path', default=DEFAULT_INSTANCE_DIRS),
)


# Directories that would make far too much "owned": a terminate could delete any file below them.
SYSTEM_DIRS = frozenset(['/', '/bin', '/boot', '/dev', '/etc', '/home', '/lib', '/lib32', '/lib64', '/media', '/mnt',
                         '/opt', '/proc', '/root', '/run', '/sbin', '/srv', '/sys', '/tmp', '/usr', '/usr/lib',
                         '/usr/local', '/usr/share', '/var', '/var/lib', '/var/lib/libvirt', '/var/log', '/var/tmp'])


def instance_dirs(paths):
    """The instance directories as real paths; HypervisorError (nothing changed) for a relative or system one."""
    dirs = []
    for path in paths or DEFAULT_INSTANCE_DIRS:
        if not path.startswith('/'):
            raise hv.HypervisorError('instance_dirs: %r is not an absolute path; nothing was changed' % path)
        real = os.path.realpath(path)
        if real in SYSTEM_DIRS:
            raise hv.HypervisorError('instance_dirs: %s is a system directory%s: every file below it would count as '
                                     'owned by the domains and could be deleted; name the directory that holds the '
                                     'instances\' disks instead; nothing was changed'
                                     % (path, '' if real == path else ' (%s)' % real))
        dirs.append(real)
    return dirs


def identity(path):
    """What makes a file that file: (device, inode), whatever path leads to it (bind mounts, second mounts, links);
    the real path for a file that does not exist."""
    try:
        st = os.stat(path)
    except OSError:
        return os.path.realpath(path)
    return (st.st_dev, st.st_ino)


def _disk_path(conn, disk):
    """The path of a file, block or pool-volume disk (a volume looked up in its pool), or None: another type of
    disk, no source, or a volume libvirt cannot find."""
    if disk['type'] not in ('file', 'volume', 'block'):
        return None
    if disk['type'] == 'volume':
        try:
            return _pools.volume_path(conn, disk['pool'], disk['volume'])
        except hv.HypervisorError:
            return None
    return disk['path']


def check_disks(conn, domain):
    """Raise HypervisorError naming the first disk, backing file or boot file that is missing (before a boot)."""
    for path in domain.boot_files():
        if not os.path.exists(path):
            raise hv.HypervisorError('domain %s: boot file %s does not exist' % (domain.name, path))
    for disk in domain.disks():
        path = disk['path']
        if disk['type'] == 'volume':
            path = _pools.volume_path(conn, disk['pool'], disk['volume'])
        if disk['type'] not in ('file', 'volume', 'block') or not path:
            continue
        try:
            if not os.path.exists(path):
                raise hv.HypervisorError('disk file %s does not exist' % path)
            backing_chain(path, strict=True)
        except hv.HypervisorError as exc:
            raise hv.HypervisorError('domain %s: disk %s: %s' % (domain.name, disk['target'], exc))


def _written_files(conn, domain):
    """{identity: (target, path)} of the disks ``domain`` opens for writing and does not share (not read-only,
    not ``<shareable/>``): the ones QEMU locks for itself."""
    written = {}
    for disk in domain.disks():
        path = None if disk['readonly'] or disk['shareable'] else _disk_path(conn, disk)
        if path:
            written[identity(path)] = (disk['target'], path)
    return written


def check_not_written_elsewhere(conn, domain):
    """Raise HypervisorError naming a disk of ``domain`` that a running domain of this host writes to (before a
    boot). QEMU would refuse the start on its image lock ("Failed to get "write" lock"); this names the domain that
    holds the disk. Only a disk both open for writing and unshared counts, where QEMU is sure to refuse."""
    mine = _written_files(conn, domain)
    if not mine:
        return
    for other in hv.running_domains(conn):
        if other.uuid == domain.uuid:
            continue
        for key in _written_files(conn, other):
            if key in mine:
                target, path = mine[key]
                raise hv.HypervisorError('domain %s: disk %s (%s) is in use: running domain %s (uuid %s) writes to '
                                         'it, so QEMU would refuse to start %s; stop that domain first'
                                         % (domain.name, target, path, other.name, other.uuid, domain.name))


# QEMU refusing a disk that another process holds under its image lock ('Failed to get "write" lock', 'Failed to get
# shared "write" lock', with any permission's name): a guest of another host on shared storage, or a process here.
_IMAGE_LOCK = re.compile(r'Failed to get (?:shared )?"[a-z ]+" lock')


def image_locked(error):
    """Whether ``error`` (an exception or its text) is QEMU refusing a disk another process holds under its lock."""
    return bool(_IMAGE_LOCK.search(str(error)))


class Index(object):
    """What every domain of the host uses as a disk or a backing file, built once per run on first use.

    Keyed by file identity (device and inode), so a bind mount, a second mount
    or a symbolic link cannot make another domain's disk look unused. Running
    domains count with their live definition too (a disk hot-plugged without
    --config). What cannot be resolved (a pool volume whose pool is gone, a
    definition that cannot be read, a backing chain that cannot be followed)
    is kept in ``unresolved``: it makes the disks it might be count as used.

    A sweep that terminates many domains asks it once per domain; building it
    per domain would walk every other domain's disks again each time.
    """

    def __init__(self, conn, domains, fleet_view=None, mounts=None):
        self._conn = conn
        # This host's mounts (mountinfo), read once: which disks another host could reach (rule 12).
        self.mounts = mounts if mounts is not None else _locality.Mounts()
        self._domains = [d for d in domains if d is not None]
        # What the other hosts of the play use (rule 10); without a fleet view, only this host is known.
        self.fleet = fleet_view if fleet_view is not None else fleet.FleetView(None, None)
        self._lock = threading.Lock()
        self._built = None
        # Each pool looked up once per run, for the index and for the disks of the domains being terminated.
        self.pools = _pools.Pools(conn)

    def _add_domain(self, domain, disks, backing, unresolved):
        for disk in domain.disks():
            path = disk['path']
            if disk['type'] == 'volume':
                try:
                    path = self.pools.path_offline(disk['pool'], disk['volume'])
                except hv.HypervisorError as exc:
                    unresolved.append((domain.uuid, domain.name, disk['volume'], str(exc)))
                    continue
            if not path or disk['type'] not in ('file', 'volume', 'block'):
                continue
            disks.setdefault(identity(path), []).append((domain.uuid, domain.name))
            try:
                chain = backing_chain(path)
            except ChainUnreadable as exc:
                unresolved.append((domain.uuid, domain.name, None, str(exc)))
                continue
            for opened, dummy in chain:
                backing.setdefault(identity(opened), []).append((domain.uuid, domain.name))
        nvram = domain.nvram_file()
        if nvram:
            # Its NVRAM file (UEFI variables) counts as its disk: libvirt deletes it with an undefine that asks to.
            disks.setdefault(identity(nvram), []).append((domain.uuid, domain.name))

    def _build(self):
        # Locked: a run's threads all start at once, and each would otherwise build the index itself.
        with self._lock:
            if self._built is None:
                disks, backing, unresolved = {}, {}, []
                for other in self._domains:
                    self._add_domain(other, disks, backing, unresolved)
                    live = hv.live_domain(other.dom) if other.power_state != 'shutoff' else None
                    if live is not None:
                        self._add_domain(live, disks, backing, unresolved)
                listed = set(d.uuid for d in self._domains)
                for uuid in hv.listed_uuids(self._conn) - listed:
                    # Defined now but not read by this run (its definition could not be read, or it is new):
                    # its disks are unknown.
                    unresolved.append((uuid, uuid, None, 'its definition was not read by this run'))
                self._built = (disks, backing, unresolved)
        return self._built

    def others(self, me):
        """(other domains' disks, their backing files, what of theirs cannot be resolved), leaving ``me`` out.

        The first two answer ``identity in ...`` and ``[identity]`` -> names;
        the third is a list of (name, volume or None, why).
        """
        disks, backing, unresolved = self._build()
        return (_Others(disks, me.uuid), _Others(backing, me.uuid),
                [(name, volume, why) for uuid, name, volume, why in unresolved if uuid != me.uuid])


class _Others(object):
    """{identity: [names]} of a host-wide index, leaving one domain (the one being terminated) out."""

    def __init__(self, index, uuid):
        self._index = index
        self._uuid = uuid

    def __contains__(self, key):
        return any(uuid != self._uuid for uuid, dummy in self._index.get(key, ()))

    def __getitem__(self, key):
        names = [name for uuid, name in self._index.get(key, ()) if uuid != self._uuid]
        if not names:
            raise KeyError(key)
        return names


def under(path, dirs):
    """Whether ``path`` is one of ``dirs`` or lies below one, by whole path components."""
    return any(path == d or path.startswith(d.rstrip(os.sep) + os.sep) for d in dirs)


def classify_disks(conn, domain, dirs, index):
    """Split the domain's disks into what it owns (to delete) and what it must leave (with the reason).

    Owned: volumes of libvirt storage pools and files whose real path (links
    and ``..`` resolved) lies under the instance directories ``dirs``, unless
    another domain uses the same file (by identity) as a disk or a backing
    file, or something of another domain cannot be resolved that might be it.
    Everything else is kept.
    """
    others = index.others(domain)
    owned, kept = [], []
    for disk in domain.disks():
        entry = {'target': disk['target'], 'path': disk['path'], 'pool': disk['pool'], 'volume': disk['volume']}
        if disk['device'] in ('cdrom', 'floppy') or disk['readonly'] or disk['shareable']:
            kept.append(dict(entry, reason='%s disk' % ('read-only or shareable' if disk['device'] == 'disk' else disk['device'])))
            continue
        vol = None
        if disk['type'] == 'volume':
            try:
                vol = index.pools.volume(disk['pool'], disk['volume'])
                path = _pools.volume_object_path(vol)
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
        ident = identity(path)
        entry['real_path'] = real
        used = _in_use(domain, disk, path, real, ident, index, others)
        if used:
            kept.append(dict(entry, **used))
            continue
        # The pool volume it is (the one just looked up, unless a link leads elsewhere), for its pool to delete.
        vol = vol if vol is not None and real == path else _pools.volume_by_path(conn, real)
        if vol is not None:
            owned.append(dict(entry, kind='pool_volume', identity=ident, volume_handle=vol))
        elif disk['type'] == 'block':
            kept.append(dict(entry, reason='block device %s is not a volume of a libvirt storage pool' % real))
        elif under(real, dirs):
            owned.append(dict(entry, kind='file', identity=ident))
        else:
            kept.append(dict(entry, reason='%s is outside the instance directories (%s)' % (real, ', '.join(dirs))))
    return owned, kept


def _in_use(domain, disk, path, real, ident, index, others):
    """Why a file of ``domain`` (one of its disks, or its NVRAM file) stays because something else uses it or may:
    {'reason': ..., 'kept_for_now': True when only a complete fleet index could clear it}, or None when nothing does.

    Another domain of this host uses the file (by identity) as a disk, a backing file or an NVRAM file; no complete
    fleet index vouches for a file another host could reach (rule 12); a domain of any host of the fleet references
    it (rule 10); or something of another domain cannot be resolved that might be it (rule 6).
    """
    disks_of_others, backing_of_others, unresolved = others
    if ident in disks_of_others:
        return {'reason': 'shared with domain(s) %s' % ', '.join(sorted(disks_of_others[ident]))}
    if ident in backing_of_others:
        return {'reason': 'backing file of a disk of domain(s) %s' % ', '.join(sorted(set(backing_of_others[ident])))}
    if not index.fleet.complete or not index.fleet.given:
        why = _reachable_elsewhere(disk, real, index)
        if why:
            return {'reason': why, 'kept_for_now': True}
    users = index.fleet.disk_users(disk, path, domain.uuid)
    if users:
        return {'reason': 'shared with domain(s) %s' % ', '.join(sorted(fleet.describe_user(u) for u in users))}
    unknown = [(name, why) for name, volume, why in unresolved if volume is None or volume == os.path.basename(real)]
    if unknown:
        # Fail safe (rule 6): what cannot be told apart from another domain's disk is kept.
        return {'reason': 'not deleted: it may be in use by %s' % '; '.join(
            'domain %s (%s)' % (name, why) for name, why in unknown[:5])}
    return None


def classify_nvram(domain, index):
    """Whether the domain's NVRAM file must stay when the domain is undefined: the kept entry (as in ``disks_kept``,
    target ``nvram``, with the reason), or None when libvirt may delete it with the definition (as Nova's undefine does).

    The file is checked as a disk is (``_in_use``): another domain of this host or of the fleet naming it, a copy of
    this domain on another host (rule 10), no complete fleet index for a file another host could reach (rule 12),
    something that cannot be resolved. It need not lie under the instance directories: the NVRAM file is the domain's
    own state, which libvirt made and deletes.
    """
    path = domain.nvram_file()
    if not path or not os.path.lexists(path):
        return None
    disk = hv.nvram_disk(path)
    real = os.path.realpath(path)
    used = _in_use(domain, disk, path, real, identity(path), index, index.others(domain))
    if not used:
        return None
    return dict({'target': 'nvram', 'path': path, 'pool': None, 'volume': None, 'real_path': real}, **used)


def _reachable_elsewhere(disk, real, index):
    """Why a disk is kept when no complete fleet index vouches for it (rule 12), or None to go on deciding.

    No fleet index at all (a single-host ad hoc call): a disk on a network or cluster filesystem, or in a shared or
    network pool, may be another host's; a directory bind-mounted from this host's own disk counts as local, as
    the record's host decides which copy is ours. An incomplete index (some host of the fleet did not report):
    anything not provably local (a bind mount too) is kept for now; local disks are still deleted.
    """
    pool_type = index.pools.pool_type(disk['pool']) if disk['type'] == 'volume' and disk['pool'] else None
    given = index.fleet.given
    why = _locality.disk_reachable_elsewhere(disk, real, pool_type, index.mounts, strict=given)
    if not why:
        return None
    if given:
        return ('not deleted for now: %s, and the fleet index is incomplete (%s), so another host\'s use of it '
                'cannot be ruled out; a sweep over the whole fleet deletes it once no domain uses it'
                % (why, index.fleet.gaps_text()))
    return ('not deleted: %s, and no fleet index was given, so another host\'s use of it cannot be ruled out; pass '
            'the fleet index (the fleet option, as the playbooks do) to delete it' % why)


def delete_disk(conn, item, dirs):
    """Delete one owned disk, the very file that was classified; a disk already gone is fine.

    The file is unlinked through its opened directory, after checking that the
    name there still leads to the same file (device and inode) that was
    classified: a file put in its place meanwhile is not deleted. A symbolic
    link that led to it is removed too, but only when the link itself lies in
    an instance directory. Raises HypervisorError when the disk is still there
    afterwards (a pool that refused, a busy device, an immutable file), so a
    disk is never reported deleted that was not.
    """
    real = item['real_path']
    refused = None
    if item['kind'] == 'pool_volume':
        if identity(real) != item.get('identity', identity(real)):
            raise hv.HypervisorError('disk %s is no longer the file that was checked; not deleted' % real)
        refused = _pools.delete_volume(conn, real, item.get('volume_handle'))
    _unlink_checked(real, item.get('identity'))
    if os.path.lexists(real):
        raise hv.HypervisorError('disk %s was not deleted%s' % (real, ': the pool refused: %s' % refused if refused else ''))
    link = item.get('path')
    if link and link != real and os.path.islink(link) and under(os.path.realpath(os.path.dirname(link)), dirs):
        os.unlink(link)


def _unlink_checked(real, expected):
    """Unlink the regular file ``real`` relative to its opened directory, if it is still ``expected``."""
    directory, base = os.path.split(real)
    try:
        dfd = os.open(directory, os.O_RDONLY | getattr(os, 'O_DIRECTORY', 0))
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return
        raise hv.HypervisorError('disk %s: its directory cannot be opened: %s' % (real, exc.strerror or exc))
    try:
        try:
            st = os.stat(base, dir_fd=dfd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno == errno.ENOENT:
                return  # already gone (a pool deleted it)
            raise
        if not stat.S_ISREG(st.st_mode):
            return  # never a device node, a directory or a link planted in its place
        if expected is not None and (st.st_dev, st.st_ino) != expected:
            raise hv.HypervisorError('disk %s is no longer the file that was checked (it was replaced); not deleted'
                                     % real)
        try:
            os.unlink(base, dir_fd=dfd)
        except OSError as exc:
            raise hv.HypervisorError('disk %s cannot be deleted: %s' % (real, exc.strerror or exc))
    finally:
        os.close(dfd)
