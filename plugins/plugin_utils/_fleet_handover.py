# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet index handed over flat: each host's slice written once to its own file, and the compact per-host record
the fleet workflow caches between jobs (rules 9, 10 and 12 of docs/rules.md).

A task that references the whole index once per host costs the size of the fleet per host on ansible-core 2.16 to
2.18 (every reference templates the whole value): quadratic. Here the index is built once (``build``, for the
fleet_slices action), each host's slice goes to a file of its own in a private directory on the control node
(``write_slices``), and each host reads back only its own (``read_slice``, the fleet_slice lookup). ``record`` makes
the small record of one host's vm_info result that the workflow's gather job caches and its index job reads.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import hashlib
import json
import os
import tempfile

from ansible.module_utils.common.text.converters import to_bytes, to_text

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_index import fleet_index, fleet_index_for
from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import host_vars

# What the index reads of a disk (module_utils/_fleet.py disk_keys, disk_reference) and of a domain (fleet_index).
DISK_KEYS = ('path', 'file_path', 'pool', 'volume', 'st_dev', 'st_ino', 'target', 'backing_chain_error')
CHAIN_KEYS = ('path', 'file_path', 'pool', 'volume', 'st_dev', 'st_ino')
VIEW_KEYS = ('uuid', 'name', 'managed', 'vm_state', 'task_state', 'power_state', 'generation', 'reclaim_at', 'host')
# The fact the workflow's gather job caches per host, and the one its index job stores per host for the sweep.
RECORD_VAR = 'deferred_libvirt_fleet_record'
SLICE_VAR = 'deferred_libvirt_fleet_slice'


class HandoverError(Exception):
    """A handover that cannot be made or read; the message says why and that nothing was changed."""


def _disk(disk):
    small = dict((k, disk.get(k)) for k in DISK_KEYS if disk.get(k) is not None)
    chain = [dict((k, b.get(k)) for k in CHAIN_KEYS if b.get(k) is not None)
             for b in disk.get('backing_chain') or [] if isinstance(b, dict)]
    if chain:
        small['backing_chain'] = chain
    return small


def record(result, host, run, gathered_at=None):
    """The compact record of inventory host ``host``'s vm_info ``result`` for fleet run ``run``: its libvirt identity,
    and per domain exactly what the index reads (uuid, states, generation, record host, disk and backing-file keys).

    A result that does not count as reported (failed, unreachable, no instances) gives a record without
    ``instances`` that says why: the index then counts the host as missing.
    """
    if run in (None, ''):
        raise HandoverError('no fleet run id: set deferred_libvirt_fleet_run (AWX: awx_workflow_job_id is used); '
                            'nothing was changed')
    small = {'host': to_text(host), 'run': to_text(run),
             'gathered_at': gathered_at or _record.format_time(_record.utcnow())}
    used, why = _fleet.reported(result)
    if why:
        small['msg'] = why
        return small
    small['hypervisor'] = used.get('hypervisor')
    views = []
    for view in used.get(_fleet.INSTANCES) or []:
        item = dict((k, view.get(k)) for k in VIEW_KEYS if k in view)
        item['disks'] = [_disk(d) for d in view.get('disks') or []]
        if view.get('disks_pending'):
            item['disks_pending'] = [_disk(d) for d in view['disks_pending']]
        if view.get('volumes_pending'):
            item['volumes_pending'] = len(view['volumes_pending'])  # the index asks only whether any wait
        views.append(item)
    small[_fleet.INSTANCES] = views
    return small


def records_of(hostvars, hosts, var, run=None):
    """{host: {var: its record}} for ``hosts``, reading ``hostvars[host][var]`` once per host; with ``run``, a record of
    another run (or none) is replaced by one that says why, so the index counts that host as missing."""
    found = {}
    for host in hosts:
        host = to_text(host)
        value = host_vars(hostvars, host).get(var)
        if run not in (None, '') and isinstance(value, dict) and _fleet.INSTANCES in value:
            if to_text(value.get('run')) != to_text(run):
                value = {'msg': 'its cached record is from fleet run %s (gathered at %s), not this run %s'
                                % (value.get('run'), value.get('gathered_at'), run)}
        elif run not in (None, '') and value is None:
            value = {'msg': 'no cached record of this fleet run %s (did the gather job run over it?)' % run}
        found[host] = {var: value}
    return found


def build(hostvars, hosts, var, run=None, fleet=None):
    """The fleet index of ``hosts`` from each host's ``var`` (one read per host), tagged with the run and the fleet."""
    index = fleet_index(records_of(hostvars, hosts, var, run), hosts, result_var=var)
    if fleet:
        index['fleet'] = to_text(fleet)
    if run not in (None, ''):
        index['run'] = to_text(run)
    return index


def slice_name(host):
    """The file name of ``host``'s slice: a digest of the name, never the raw name (no path can come out of it)."""
    return hashlib.sha256(to_bytes(host, errors='surrogate_or_strict')).hexdigest() + '.json'


def slice_for(index, host):
    """``host``'s slice of ``index`` (fleet_index_for), with the run it belongs to."""
    part = fleet_index_for(index, host)
    if index.get('run') is not None:
        part['run'] = index['run']
    return part


def write_slices(index, directory=None):
    """Write each reporting host's slice to a private directory (made 0700 when not given); return the directory.

    Hosts that did not report get no file: reading one gives None (read_slice), and a sweep that requires a slice
    then keeps everything another host could reach."""
    if directory is None:
        directory = tempfile.mkdtemp(prefix='deferred-libvirt-fleet-')
    else:
        try:
            os.makedirs(directory, 0o700)
        except OSError as exc:
            if exc.errno != errno.EEXIST:
                raise HandoverError('cannot make the fleet slice directory %s: %s; nothing was changed'
                                    % (directory, exc))
    os.chmod(directory, 0o700)
    for host in sorted(index['hosts']):
        data = json.dumps(slice_for(index, host), sort_keys=True)
        path = os.path.join(directory, slice_name(host))
        tmp = path + '.tmp'
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, 'O_NOFOLLOW', 0), 0o600)
        with os.fdopen(fd, 'w') as handle:
            handle.write(data)
        os.rename(tmp, path)
    return directory


def read_slice(directory, host):
    """``host``'s slice from ``directory`` (write_slices), or None when it has none (it did not report)."""
    path = os.path.join(to_text(directory), slice_name(to_text(host)))
    try:
        with open(path) as handle:
            return json.load(handle)
    except IOError as exc:
        if exc.errno == errno.ENOENT:
            return None
        raise HandoverError('cannot read the fleet slice of %s at %s: %s' % (host, path, exc))
    except ValueError as exc:
        raise HandoverError('the fleet slice of %s at %s is no JSON: %s' % (host, path, exc))


def remove_slices(directory):
    """Remove a directory write_slices made, once every host has read its slice: its slice files, then the directory.
    Anything else in it (not a slice) is left, and so is the directory then; returns whether it is gone."""
    directory = to_text(directory)
    try:
        names = os.listdir(directory)
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            return False
        raise HandoverError('cannot read the fleet slice directory %s: %s' % (directory, exc))
    for name in names:
        if len(name) == 69 and name.endswith('.json') and all(c in '0123456789abcdef' for c in name[:64]):
            os.unlink(os.path.join(directory, name))
    try:
        os.rmdir(directory)
    except OSError:
        return False
    return True


def summary(index, directory):
    """What the fleet_slices action returns: small whatever the fleet's size (no slice, no per-domain data)."""
    return {'dir': directory, 'lines': index['lines'], 'complete': index['complete'],
            'missing': sorted(index['missing']), 'built_at': index['built_at'], 'run': index.get('run'),
            'fleet': index.get('fleet'),
            'counts': {'hosts': len(index['hosts']), 'domains': len(index['domains']), 'stale': len(index['stale']),
                       'conflicts': len(index['conflicts']), 'shared_disks': len(index['shared_disks']),
                       'missing': len(index['missing']), 'aliases': len(index.get('aliases') or {})}}
