# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet fact and finding domains in it, computed on the control node from what each hypervisor reported.

fleet_state builds the state_facts role's fact from every host's vm_info, with
the lines an operator reads; fleet_locate finds named domains across the
fleet, by the naming rules the modules apply on one host
(module_utils/_selection.py), and where several hosts hold copies of one
domain, at the copy the fleet index says is authoritative. Each raises
AnsibleFilterError with a message for the operator, so a role fails before
anything changes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.deferred.libvirt.plugins.module_utils import _quota
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _selection
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_index import alias_of, identity_of
from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import host_result, without_gc_pauses
from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_time import human_bytes, when

# What the fleet fact keeps of each vm_info record (the full records stay in each host's registered result).
INSTANCE_KEYS = ('name', 'uuid', 'project', 'user', 'vm_state', 'task_state', 'power_state', 'vcpus', 'memory_mb',
                 'deleted_at', 'reclaim_at', 'terminated_at', 'locked', 'protected', 'managed', 'anomalies',
                 'metadata_error', 'disk_bytes')
RESOURCES = _quota.RESOURCES


def _now(now=None):
    if now is None:
        return _record.utcnow()
    if isinstance(now, datetime.datetime):
        return now
    return _record.parse_time(to_text(now))


def _names(value):
    """A list of names or UUIDs from a list, or from a string separated by commas or whitespace (AWX surveys)."""
    if value is None:
        return []
    if isinstance(value, (list, tuple)):
        items = [to_text(v).strip() for v in value]
    else:
        items = re.split(r'[\s,]+', to_text(value))
    return [i for i in items if i]


def _expires_in(reclaim_at, now):
    try:
        return int((_record.parse_time(reclaim_at) - now).total_seconds())
    except (TypeError, ValueError, AttributeError):
        return None


@without_gc_pauses
def fleet_state(hostvars, hosts, result_var='state_facts_vm_info', now=None, project=None):
    """The fleet fact: per host and per project, instances, usage and trash, from each host's vm_info result.

    With ``project``, only that project's domains are listed (state_facts gathers every domain, as the fleet
    index needs them all; what is shown and acted on is one project's).

    ``hosts`` are the hosts that should have reported (the play's); those whose
    result is missing or failed are listed in ``missing`` with why, so a quota
    check can refuse to work from partial usage.
    """
    now = _now(now)
    only = project  # the loops below reuse the name for each domain's project
    fleet = {'gathered_at': _record.format_time(now), 'hosts': {}, 'projects': {}, 'usage': {}, 'trash': [],
             'instances': [], 'anomalies': [], 'missing': {}, 'aliases': {}}
    project_hosts = {}
    first_of = {}
    for host in hosts or []:
        host = to_text(host)
        result, why = host_result(hostvars, host, result_var)
        if why:
            fleet['missing'][host] = why
            continue
        same = alias_of(first_of, identity_of(result, host, None), host, result['instances'])
        if same is not None:
            # One hypervisor under a second inventory name: its domains (and their usage) are counted once.
            fleet['aliases'][host] = same
            continue
        views = [v for v in result['instances'] if only is None or v.get('project') == only]
        entry = {'instances': len(views), 'vm_states': {}, 'usage': _views.usage(views), 'trash': [], 'projects': []}
        for view in views:
            item = dict((k, view.get(k)) for k in INSTANCE_KEYS)
            item['host'] = host
            fleet['instances'].append(item)
            state = view.get('vm_state') or 'unknown'
            entry['vm_states'][state] = entry['vm_states'].get(state, 0) + 1
            project = view.get('project')
            if project and project not in entry['projects']:
                entry['projects'].append(project)
            if view.get('anomalies') or view.get('metadata_error'):
                fleet['anomalies'].append({'host': host, 'name': view.get('name'), 'uuid': view.get('uuid'),
                                           'project': project, 'anomalies': view.get('anomalies') or [],
                                           'metadata_error': view.get('metadata_error')})
            if state == 'soft_deleted':
                expires_in = _expires_in(view.get('reclaim_at'), now)
                trash = {'host': host, 'name': view.get('name'), 'uuid': view.get('uuid'), 'project': project,
                         'vcpus': view.get('vcpus'), 'memory_mb': view.get('memory_mb'), 'user': view.get('user'),
                         'disk_bytes': view.get('disk_bytes'),
                         'deleted_at': view.get('deleted_at'), 'reclaim_at': view.get('reclaim_at'),
                         'expires_in': expires_in, 'expired': expires_in is not None and expires_in <= 0,
                         'task_state': view.get('task_state'), 'protected': bool(view.get('protected')),
                         'locked': bool(view.get('locked')), 'anomalies': view.get('anomalies') or []}
                entry['trash'].append(trash)
                fleet['trash'].append(trash)
            if project:
                proj = fleet['projects'].setdefault(project, {
                    'instances': 0, 'vm_states': {}, 'usage': dict((r, 0) for r in RESOURCES), 'trash': [], 'hosts': []})
                proj['instances'] += 1
                proj['vm_states'][state] = proj['vm_states'].get(state, 0) + 1
                # A set beside the list: a project on many hosts made this a scan per domain.
                seen = project_hosts.setdefault(project, set())
                if host not in seen:
                    seen.add(host)
                    proj['hosts'].append(host)
                if state == 'soft_deleted':
                    proj['trash'].append(trash)
        entry['projects'].sort()
        entry['trash'].sort(key=_trash_order)
        fleet['hosts'][host] = entry
    usage = _views.usage(list(fleet['instances']))
    for project, proj in fleet['projects'].items():
        proj['usage'] = usage.get(project) or dict((r, 0) for r in RESOURCES)
        proj['trash'].sort(key=_trash_order)
        proj['hosts'].sort()
    fleet['usage'] = usage
    fleet['trash'].sort(key=_trash_order)
    fleet['lines'] = _fleet_lines(fleet)
    fleet['table'] = [_instance_line(i, now) for i in sorted(fleet['instances'], key=lambda i: (i['host'], i['name']))]
    return fleet


def _instance_line(item, now):
    """One domain in one line: where, what state, and when it goes if it is in the trash."""
    text = '%s/%s: %s' % (item['host'], item['name'], item.get('vm_state'))
    if item.get('task_state'):
        text += ' (task %s)' % item['task_state']
    text += ', power %s, project %s' % (item.get('power_state'), item.get('project') or 'none')
    if item.get('vm_state') == 'soft_deleted':
        text += ', %s' % _reclaim_text(item.get('reclaim_at'), _expires_in(item.get('reclaim_at'), now))
    if item.get('vm_state') == 'deleted':
        text += ', terminated_at %s' % item.get('terminated_at')
    return text


def _counts(states):
    return ', '.join('%s %d' % (k, states[k]) for k in sorted(states)) or 'none'


def _usage_text(usage):
    return ', '.join('%s %d' % (r, (usage or {}).get(r) or 0) for r in RESOURCES)


def _reclaim_text(reclaim_at, seconds):
    """When a soft-deleted domain goes, in words: "reclaim_at 2024-05-08T10:00:00Z (in 6d 0h)", "(overdue by 2h 0m)";
    a record without one says what that means rather than "None"."""
    if not reclaim_at:
        return 'no reclaim_at (never reclaimed until the record is fixed)'
    return 'reclaim_at %s (%s)' % (reclaim_at, when(seconds))


def _fleet_lines(fleet):
    """The fleet in a few lines an operator reads at a glance."""
    lines = []
    for host in sorted(fleet['hosts']):
        entry = fleet['hosts'][host]
        lines.append('host %s: %d domain(s) (%s); projects: %s' % (
            host, entry['instances'], _counts(entry['vm_states']), ', '.join(entry['projects']) or 'none'))
    for host in sorted(fleet['missing']):
        lines.append('host %s: DID NOT REPORT (%s)' % (host, fleet['missing'][host]))
    for host in sorted(fleet.get('aliases') or {}):
        lines.append('host %s: the same hypervisor as %s; its domains are counted there' % (host, fleet['aliases'][host]))
    for project in sorted(fleet['projects']):
        proj = fleet['projects'][project]
        lines.append('project %s: %d domain(s) on %s; quota usage %s; %d in the trash' % (
            project, proj['instances'], ', '.join(proj['hosts']), _usage_text(proj['usage']), len(proj['trash'])))
    for item in fleet['trash']:
        flags = [f for f in ('protected', 'locked') if item.get(f)]
        if item.get('task_state'):
            flags.append('task %s' % item['task_state'])
        flags += item.get('anomalies') or []
        lines.append('trash %s/%s (project %s, user %s): deleted_at %s, %s, %s on disk%s' % (
            item['host'], item['name'], item.get('project') or 'none', item.get('user') or 'none',
            item.get('deleted_at') or 'missing', _reclaim_text(item.get('reclaim_at'), item.get('expires_in')),
            human_bytes(item.get('disk_bytes')), ' [%s]' % '; '.join(flags) if flags else ''))
    for item in fleet['anomalies']:
        lines.append('ANOMALY %s/%s: %s' % (item['host'], item['name'],
                                            item.get('metadata_error') or '; '.join(item.get('anomalies') or [])))
    return lines


def _trash_order(item):
    return (item.get('reclaim_at') or '', item.get('host') or '', item.get('name') or '')


@without_gc_pauses
def fleet_locate(fleet, names, project=None, index=None):
    """Find each named domain (name or UUID) in the fleet; returns {'by_host': {host: [uuid]}, 'instances': [...]}.

    Fails when a name is on no host, on several hosts (use its UUID), or in
    another project, and when some host of the play did not report. A domain
    defined on several hosts (one UUID: a migration left a stale copy) is
    found where the fleet ``index`` (fleet_index's) says its authoritative
    copy is; without an index, or with no authoritative copy, that fails too.
    """
    _complete(fleet)
    wanted = _names(names)
    if not wanted:
        raise AnsibleFilterError('no domain named: give names (a list, or a comma-separated string) of domains or UUIDs')
    instances = fleet.get('instances') or []
    # One pass over the fleet, then a look-up per name: a scan per name grows with names x domains.
    by_name, by_uuid, position = {}, {}, {}
    for at, item in enumerate(instances):
        by_name.setdefault(item.get('name'), []).append(item)
        by_uuid.setdefault((item.get('uuid') or '').lower(), []).append(item)
        position[id(item)] = at
    found, missing, ambiguous, foreign = [], [], [], []
    seen = set()
    for key in wanted:
        # The modules' rules (an exact UUID wins; a name that is another's UUID in other letter case is refused).
        matches, doubt = _selection.matches(key, by_name.get(key, []), by_uuid.get(key.lower(), []))
        if doubt:
            ambiguous.append('%s (%s: name it by its exact UUID)' % (key, doubt))
            continue
        matches.sort(key=lambda item: position[id(item)])  # in fleet order, so a message lists hosts as they come
        if not matches:
            missing.append(key)
            continue
        if len(matches) > 1:
            match, why = _authoritative(matches, index)
            if match is None:
                ambiguous.append('%s (%s)' % (key, why))
                continue
        else:
            match = matches[0]
        if project is not None and match.get('project') != project:
            foreign.append('%s (project %s)' % (key, match.get('project') or 'none'))
            continue
        if match['uuid'] not in seen:
            seen.add(match['uuid'])
            found.append(match)
    problems = []
    if missing:
        problems.append('no domain named %s on any host of the play (%s)'
                        % (', '.join(missing), ', '.join(sorted(fleet.get('hosts') or {})) or 'no host reported'))
    if ambiguous:
        problems.append('more than one domain named %s' % ', '.join(ambiguous))
    if foreign:
        problems.append('not in project %s: %s' % (project, ', '.join(foreign)))
    if problems:
        raise AnsibleFilterError('%s; nothing was changed' % '; '.join(problems))
    by_host = {}
    for match in found:
        by_host.setdefault(match['host'], []).append(match['uuid'])
    return {'by_host': by_host, 'instances': found}


def _authoritative(matches, index):
    """(the one copy to act on, None) among several matches of one name, else (None, why not)."""
    hosts = ', '.join(sorted(m['host'] for m in matches))
    uuids = set((m.get('uuid') or '').lower() for m in matches)
    if len(uuids) > 1:
        return None, 'on %s: name it by UUID' % hosts
    uuid = uuids.pop()
    if not isinstance(index, dict) or 'domains' not in index:
        return None, 'copies of one domain, %s, on %s: pass the fleet index (state_facts_index) to act on the ' \
                     'authoritative copy' % (uuid, hosts)
    entry = index['domains'].get(uuid) or {}
    chosen = [m for m in matches if entry.get('authoritative') and m['host'] == entry['authoritative']]
    if not chosen:
        return None, 'copies of one domain, %s, on %s, and none is authoritative (%s): settle that first' % (
            uuid, hosts, entry.get('why') or 'the fleet index does not know it')
    return chosen[0], None


def _complete(fleet):
    if not isinstance(fleet, dict) or 'hosts' not in fleet:
        raise AnsibleFilterError('the fleet fact is missing: run the deferred.libvirt.state_facts role first')
    missing = fleet.get('missing') or {}
    if missing:
        raise AnsibleFilterError('the fleet state is incomplete, so usage and names cannot be trusted: %s; nothing was '
                                 'changed' % '; '.join('%s: %s' % (h, missing[h]) for h in sorted(missing)))
