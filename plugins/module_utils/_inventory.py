# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What vm_info reports: one record per domain, selection by name/query/project, and quota usage."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os

try:
    import jmespath
    HAS_JMESPATH = True
except ImportError:
    jmespath = None
    HAS_JMESPATH = False

from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._states import effective_vm_state
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

# The most names one call takes; more is a runaway variable, not a request.
MAX_NAMES = 10000


class SelectionError(DeferredError):
    """The selection names something that is not there or not the caller's; nothing was changed."""


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
    for disk in domain.disks():
        item = dict((k, disk[k]) for k in ('target', 'device', 'type', 'path', 'pool', 'volume'))
        # The file itself (device and inode): the fleet index tells one file under two paths apart by them (rule 10).
        item['st_dev'] = item['st_ino'] = None
        if disk['type'] in ('file', 'block') and disk['path']:
            try:
                st = os.stat(disk['path'])
                item['st_dev'], item['st_ino'] = st.st_dev, st.st_ino
            except OSError:
                pass
        if owned is not None:
            item['delete_on_termination'] = owned.get(disk['target'], False)
        disks.append(item)
    view['disks'] = disks
    view['anomalies'] = [] if domain.metadata_error else _record.anomalies(record)
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
        'disks': tombstone.get('disks') or [], 'history': tombstone.get('history') or [], 'anomalies': [],
        'locked': False, 'protected': False, 'host': tombstone.get('host'),
    })
    return view


def _project_of(view):
    return view.get('project')


def select(views, names=None, query=None, project=None, what='domain'):
    """Pick the views named by ``names`` (names or UUIDs) or matched by ``query``, within ``project``.

    A named domain that does not exist, or that belongs to another project, is
    an error. Returns views in the order named (or the query's order).
    """
    if names is not None:
        if len(names) == 0:
            raise SelectionError('name is an empty list: name at least one domain, or use query')
        if len(names) > MAX_NAMES:
            raise SelectionError('name lists %d domains; at most %d are taken in one call' % (len(names), MAX_NAMES))
        # Names match exactly, as libvirt's do; only UUIDs ignore case.
        by_name, by_uuid = {}, {}
        for view in views:
            by_name.setdefault(view['name'], view)
            if view.get('uuid'):
                by_uuid.setdefault(view['uuid'].lower(), view)
        chosen, missing, foreign, ambiguous, seen = [], [], [], [], set()
        for raw in names:
            key = str(raw).strip()
            view, doubt = _resolve(key, by_name, by_uuid)
            if doubt:
                ambiguous.append(doubt)
                continue
            if view is None:
                missing.append(key)
                continue
            if project is not None and _project_of(view) != project:
                foreign.append('%s (project %s)' % (view['name'], _project_of(view) or 'none'))
                continue
            if view['uuid'] not in seen:
                seen.add(view['uuid'])
                chosen.append(view)
        problems = []
        if ambiguous:
            problems.append('ambiguous: %s; name the domain by its exact UUID instead'
                            % '; '.join(_shown(ambiguous, quote=False)))
        if missing:
            problems.append('no %s named %s on this hypervisor' % (what, ', '.join(_shown(missing))))
        if foreign:
            problems.append('not in project %s: %s' % (project, ', '.join(_shown(foreign))))
        if problems:
            raise SelectionError('; '.join(problems))
        return chosen
    scoped = [v for v in views if project is None or _project_of(v) == project]
    if query is None:
        return scoped
    return run_query(scoped, query)


def _resolve(key, by_name, by_uuid):
    """(view, None) for the domain ``key`` names, (None, why) when it names two, (None, None) when none.

    A key that is a domain's UUID exactly as libvirt writes it selects that
    domain, even when another domain is named that text: a name never takes a
    UUID over. A key that is one domain's name and, only when letter case is
    ignored, another's UUID names either: it is refused.
    """
    named = by_name.get(key)
    owner = by_uuid.get(key.lower())
    if named is None or owner is None or named is owner:
        return named or owner, None
    if key == owner['uuid']:
        return owner, None
    return None, ('%s is the name of one domain (UUID %s) and the UUID of another (named %s)'
                  % (_shown([key])[0], named['uuid'], _shown([owner['name']])[0]))


def _shown(items, most=10, quote=True):
    # Quoted when it would otherwise read wrong: empty, or with characters a shell or an XML reader would eat.
    if quote:
        items = [repr(i) if not i or any(c in i for c in '\n\r\t<>&;|$`') else i for i in items]
    if len(items) > most:
        return items[:most] + ['and %d more' % (len(items) - most)]
    return items


def run_query(views, query):
    """Apply a JMESPath expression to the list of records; it must yield records, names or UUIDs."""
    if not HAS_JMESPATH:
        raise SelectionError('query needs the jmespath Python package (pip install jmespath)')
    try:
        result = jmespath.search(query, views)
    except jmespath.exceptions.JMESPathError as exc:
        raise SelectionError('query %r is not a valid JMESPath expression: %s' % (query, exc))
    if result is None:
        return []
    if isinstance(result, dict):
        result = [result]
    if not isinstance(result, list):
        raise SelectionError('query %r gives %s, not a list of domains' % (query, type(result).__name__))
    by_uuid = dict((v['uuid'], v) for v in views)
    by_name = dict((v['name'], v) for v in views)
    chosen, seen = [], set()
    for item in result:
        view = None
        if isinstance(item, dict) and item.get('uuid') in by_uuid:
            view = by_uuid[item['uuid']]
        elif isinstance(item, str):
            view = by_uuid.get(item) or by_name.get(item)
        if view is None:
            raise SelectionError('query %r gives %r, which is not a domain record, name or UUID (project scope applies)'
                                 % (query, item if not isinstance(item, dict) else 'a record without a known uuid'))
        if view['uuid'] not in seen:
            seen.add(view['uuid'])
            chosen.append(view)
    return chosen


# Power states in which a guest uses its vCPUs and memory.
RUNNING_STATES = ('running', 'blocked', 'paused', 'pmsuspended', 'shutdown')


def started_after_soft_delete(view):
    """A soft-deleted domain that someone started by hand: it runs outside the trash's rules."""
    return view.get('vm_state') == 'soft_deleted' and view.get('power_state') in RUNNING_STATES


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
