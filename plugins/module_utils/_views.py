# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What an operator sees of a domain: the vm_info view of a live domain or a tombstone, and quota usage of views.

Model layer: reads a Domain (from _hypervisor) and the record's fields (from _record); changes nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os
import stat

from ansible_collections.deferred.libvirt.plugins.module_utils import _chains
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import HypervisorError, nvram_disk
from ansible_collections.deferred.libvirt.plugins.module_utils._states import RUNNING_POWER_STATES, effective_vm_state


def _size(domain, attribute):
    """vcpus or memory_mb of a domain: a whole number of 0 or more, or None when its definition does not say."""
    try:
        value = getattr(domain, attribute)
    except (TypeError, ValueError, AttributeError, OverflowError):
        return None
    return _count(value)


def _count(value):
    """A count read from somewhere a hand edit reaches: an int of 0 or more, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value


# What a diff shows (--diff): the fields an operator sets (vm_attributes' options, the soft delete's mode) or reads to
# know where a domain stands. The bookkeeping (generation, history, host, task_state, disks, sizes) stays in the
# result's record and in vm_info, never in a diff. docs/lifecycle.md ("Diff mode") lists them for operators.
DIFF_FIELDS = ('vm_state', 'power_state', 'managed', 'managed_save', 'project', 'user', 'locked', 'lock_reason',
               'protected', 'reclaim_interval', 'shutdown_timeout', 'deleted_at', 'reclaim_at', 'soft_delete_mode',
               'volumes')


def for_diff(view):
    """The operator's fields of a vm_info view (DIFF_FIELDS): what --diff shows before and after."""
    return dict((k, view[k]) for k in DIFF_FIELDS if k in (view or {}))


# Every key of a view (a live domain's or a tombstone's): the names vm_info's fields option takes.
FIELDS = tuple(sorted(set(
    ['name', 'uuid', 'managed', 'persistent', 'power_state', 'managed_save', 'vcpus', 'memory_mb', 'metadata_error',
     'host', 'volumes', 'history', 'disks', 'disk_bytes', 'anomalies', 'terminated_at', 'volumes_pending',
     'disks_pending'] + [name for name, _kind in _record.FIELDS])))


def unknown_fields(fields):
    """The names in ``fields`` that are no key of a view, in the order given."""
    return [f for f in fields if f not in FIELDS]


def project_fields(view, fields):
    """Only ``fields`` of ``view`` (None for a key the view does not carry, a tombstone's key on a live domain)."""
    return dict((f, view.get(f)) for f in fields)


def allocated_bytes(path, st=None):
    """The bytes a disk takes on this host: the blocks a file has allocated (a sparse or thin image counts what it
    holds, not its virtual size), the size of a block device; None when it cannot be read (no such file, a network
    disk)."""
    try:
        st = st if st is not None else os.stat(path)
    except (OSError, TypeError, ValueError):
        return None
    if stat.S_ISREG(st.st_mode):
        return st.st_blocks * 512
    if stat.S_ISBLK(st.st_mode):
        try:
            fd = os.open(path, os.O_RDONLY)
        except OSError:
            return None
        try:
            return os.lseek(fd, 0, os.SEEK_END)
        except OSError:
            return None
        finally:
            os.close(fd)
    return None


def _counts_on_disk(disk):
    """A disk whose space a reclaim can give back: a writable disk device (not a CD-ROM, floppy, read-only or
    shareable disk, which terminate always keeps)."""
    return disk.get('device', 'disk') == 'disk' and not disk.get('readonly') and not disk.get('shareable')


def disk_bytes(view):
    """The allocated bytes of a view's writable disks, summed over those that could be read; None when none could."""
    sizes = [d.get('allocated_bytes') for d in view.get('disks') or [] if d.get('counts_on_disk', _counts_on_disk(d))]
    sizes = [s for s in sizes if isinstance(s, int) and not isinstance(s, bool)]
    return sum(sizes) if sizes else None


def describe(domain, owned=None):
    """The lifecycle record of ``domain`` as vm_info returns it; never raises on what the record holds."""
    record = domain.record or _record.empty()
    view = {
        'name': domain.name,
        'uuid': domain.uuid,
        'managed': domain.record is not None,
        'persistent': domain.persistent,
        'power_state': domain.power_state,
        'managed_save': domain.managed_save,
        'vcpus': _size(domain, 'vcpus'),
        'memory_mb': _size(domain, 'memory_mb'),
        'metadata_error': domain.metadata_error,
    }
    for name, _kind in _record.FIELDS:
        view[name] = record.get(name)
    view['vm_state'] = 'error' if domain.metadata_error else effective_vm_state(record.get('vm_state'), domain.power_state)
    view['host'] = copy.deepcopy(record.get('host'))
    view['volumes'] = copy.deepcopy(record.get('volumes') or [])
    view['history'] = copy.deepcopy(record.get('history') or [])
    disks = []
    nvram = domain.nvram_file()
    # Its NVRAM file (UEFI variables) too, as device nvram: the fleet index counts every file a domain names (rule 10).
    for disk in domain.disks() + ([nvram_disk(nvram)] if nvram else []):
        item = dict((k, disk[k]) for k in ('target', 'device', 'type', 'path', 'pool', 'volume'))
        # The file itself (device and inode): the fleet index tells one file under two paths apart by them (rule 10).
        item['st_dev'] = item['st_ino'] = item['allocated_bytes'] = None
        item['counts_on_disk'] = _counts_on_disk(disk)
        if disk['type'] in ('file', 'block') and disk['path']:
            try:
                st = os.stat(disk['path'])
                item['st_dev'], item['st_ino'] = st.st_dev, st.st_ino
                item['allocated_bytes'] = allocated_bytes(disk['path'], st)
            except OSError:
                pass
        if owned is not None:
            item['delete_on_termination'] = owned.get(disk['target'], False)
        disks.append(item)
    view['disks'] = disks
    view['disk_bytes'] = disk_bytes(view)
    view['anomalies'] = [] if domain.metadata_error else _record.anomalies(record)
    return view


def add_backing_chains(view, volume_path):
    """Each disk of vm_info's ``view`` of a live domain with the files it opens behind its top (rule 10).

    ``backing_chain``: the backing files, in the order QEMU opens them, read from the image headers (one small read
    per file), each with its path, format and identity (``st_dev``/``st_ino``); None for a disk that is no file (a
    network disk, an empty CD-ROM). A pool volume is followed from the file ``volume_path(pool, volume)`` resolves it
    to (``file_path``, with its identity). A chain that cannot be read is reported in ``backing_chain_error`` with
    what was read before it; the fleet index lists it among its ``chain_errors`` (the files behind it are not
    indexed), and the host's own disk index keeps whatever it might reach.
    """
    for item in view['disks']:
        path = item.get('path') if item.get('type') in ('file', 'block') else None
        item['file_path'], item['backing_chain'], item['backing_chain_error'] = path, None, None
        if item.get('type') == 'volume':
            path = item['file_path'] = None
            if item.get('pool') and item.get('volume'):
                try:
                    path = item['file_path'] = volume_path(item['pool'], item['volume'])
                except HypervisorError as exc:
                    item['backing_chain_error'] = str(exc)
                    continue
            if path and item.get('st_dev') is None:
                try:
                    st = os.stat(path)
                    item['st_dev'], item['st_ino'] = st.st_dev, st.st_ino
                except OSError:
                    pass
            if path and item.get('allocated_bytes') is None:
                item['allocated_bytes'] = allocated_bytes(path)
        if not path:
            continue
        dummy, item['backing_chain'], item['backing_chain_error'] = _chains.describe_chain(path)
    view['disk_bytes'] = disk_bytes(view)
    return view


def describe_tombstone(tombstone):
    """A terminated domain's record as vm_info returns it with include_deleted."""
    view = dict((name, None) for name, _kind in _record.FIELDS)
    view.update({
        'name': tombstone.get('name'), 'uuid': tombstone.get('uuid'), 'managed': True, 'persistent': False,
        'power_state': 'gone', 'managed_save': False, 'vcpus': _count(tombstone.get('vcpus')),
        'memory_mb': _count(tombstone.get('memory_mb')), 'metadata_error': tombstone.get('error'),
        'project': tombstone.get('project'), 'user': tombstone.get('user'),
        'vm_state': 'deleted', 'task_state': None, 'deleted_at': tombstone.get('deleted_at'),
        'terminated_at': tombstone.get('terminated_at'),
        'volumes': tombstone.get('volumes') or [], 'volumes_pending': tombstone.get('volumes_pending') or [],
        'disks_pending': tombstone.get('disks_pending') or [],
        'disks': tombstone.get('disks') or [], 'history': tombstone.get('history') or [], 'anomalies': [],
        'locked': False, 'protected': False, 'host': tombstone.get('host'), 'disk_bytes': None,
    })
    return view


def started_after_soft_delete(view):
    """A soft-deleted domain that someone started by hand: it runs outside the trash's rules."""
    return view.get('vm_state') == 'soft_deleted' and view.get('power_state') in RUNNING_POWER_STATES


def counts_for_quota(view):
    """Soft-deleted (and terminated) domains do not use quota, unless someone started one by hand: it runs, so it counts."""
    if started_after_soft_delete(view):
        return True
    return view.get('vm_state') not in ('soft_deleted', 'deleted') and view.get('task_state') != 'deleting'


def usage(views):
    """Per-project usage: instances, cores and ram_mb of the domains that count for quota."""
    result = {}
    for view in views:
        if not view.get('project') or not counts_for_quota(view):
            continue
        entry = result.setdefault(view['project'], {'instances': 0, 'cores': 0, 'ram_mb': 0})
        entry['instances'] += 1
        # A size that is not a count (a hand-edited tombstone, say) adds nothing rather than stopping the run.
        entry['cores'] += _count(view.get('vcpus')) or 0
        entry['ram_mb'] += _count(view.get('memory_mb')) or 0
    return result
