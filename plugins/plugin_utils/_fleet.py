# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet-wide views for the roles, computed on the control node from what each hypervisor reported.

fleet_state builds the state_facts role's fact from every host's vm_info;
fleet_locate finds named domains across the fleet; quota_check checks a batch
of restores against per-project limits with the same code vm_restore uses
(module_utils/_quota.py); reclaim_summary folds every host's vm_reclaim result
into one summary. Each raises AnsibleFilterError with a message for the
operator, so a role fails before anything changes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.deferred.libvirt.plugins.module_utils import _inventory as inv
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota
from ansible_collections.deferred.libvirt.plugins.module_utils import _record

# What the fleet fact keeps of each vm_info record (the full records stay in each host's registered result).
INSTANCE_KEYS = ('name', 'uuid', 'project', 'user', 'vm_state', 'task_state', 'power_state', 'vcpus', 'memory_mb',
                 'deleted_at', 'reclaim_at', 'terminated_at', 'locked', 'protected', 'managed', 'anomalies',
                 'metadata_error')
RESOURCES = _quota.RESOURCES


def _now(now=None):
    if now is None:
        return _record.utcnow()
    if isinstance(now, datetime.datetime):
        return now
    return _record.parse_time(to_text(now))


def _host_vars(hostvars, host):
    try:
        return hostvars[host]
    except Exception:  # a host not in the inventory: nothing it reported
        return {}


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


def fleet_state(hostvars, hosts, result_var='state_facts_vm_info', now=None):
    """The fleet fact: per host and per project, instances, usage and trash, from each host's vm_info result.

    ``hosts`` are the hosts that should have reported (the play's); those whose
    result is missing or failed are listed in ``missing`` with why, so a quota
    check can refuse to work from partial usage.
    """
    now = _now(now)
    fleet = {'gathered_at': _record.format_time(now), 'hosts': {}, 'projects': {}, 'usage': {}, 'trash': [],
             'instances': [], 'anomalies': [], 'missing': {}}
    for host in hosts or []:
        host = to_text(host)
        result = _host_vars(hostvars, host).get(result_var)
        if not result or result.get('failed') or result.get('unreachable') or 'instances' not in result:
            why = 'did not report'
            if result and result.get('msg'):
                why = to_text(result.get('msg'))
            elif result and result.get('unreachable'):
                why = 'unreachable'
            fleet['missing'][host] = why
            continue
        views = list(result['instances'])
        entry = {'instances': len(views), 'vm_states': {}, 'usage': inv.usage(views), 'trash': [], 'projects': []}
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
                         'vcpus': view.get('vcpus'), 'memory_mb': view.get('memory_mb'),
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
                if host not in proj['hosts']:
                    proj['hosts'].append(host)
                if state == 'soft_deleted':
                    proj['trash'].append(trash)
        entry['projects'].sort()
        entry['trash'].sort(key=_trash_order)
        fleet['hosts'][host] = entry
    usage = inv.usage(list(fleet['instances']))
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
        text += ', reclaim_at %s (%s)' % (item.get('reclaim_at'), _when(_expires_in(item.get('reclaim_at'), now)))
    if item.get('vm_state') == 'deleted':
        text += ', terminated_at %s' % item.get('terminated_at')
    return text


def _counts(states):
    return ', '.join('%s %d' % (k, states[k]) for k in sorted(states)) or 'none'


def _usage_text(usage):
    return ', '.join('%s %d' % (r, (usage or {}).get(r) or 0) for r in RESOURCES)


def _when(seconds):
    if seconds is None:
        return 'never (no readable reclaim_at)'
    if seconds <= 0:
        return 'expired %ds ago' % -seconds
    return 'in %ds' % seconds


def _fleet_lines(fleet):
    """The fleet in a few lines an operator reads at a glance."""
    lines = []
    for host in sorted(fleet['hosts']):
        entry = fleet['hosts'][host]
        lines.append('host %s: %d domain(s) (%s); projects: %s' % (
            host, entry['instances'], _counts(entry['vm_states']), ', '.join(entry['projects']) or 'none'))
    for host in sorted(fleet['missing']):
        lines.append('host %s: DID NOT REPORT (%s)' % (host, fleet['missing'][host]))
    for project in sorted(fleet['projects']):
        proj = fleet['projects'][project]
        lines.append('project %s: %d domain(s) on %s; quota usage %s; %d in the trash' % (
            project, proj['instances'], ', '.join(proj['hosts']), _usage_text(proj['usage']), len(proj['trash'])))
    for item in fleet['trash']:
        flags = [f for f in ('protected', 'locked') if item.get(f)]
        if item.get('task_state'):
            flags.append('task %s' % item['task_state'])
        flags += item.get('anomalies') or []
        lines.append('trash %s/%s (project %s): deleted_at %s, reclaim_at %s, %s%s' % (
            item['host'], item['name'], item.get('project') or 'none', item.get('deleted_at'), item.get('reclaim_at'),
            _when(item.get('expires_in')), ' [%s]' % '; '.join(flags) if flags else ''))
    for item in fleet['anomalies']:
        lines.append('ANOMALY %s/%s: %s' % (item['host'], item['name'],
                                            item.get('metadata_error') or '; '.join(item.get('anomalies') or [])))
    return lines


def _trash_order(item):
    return (item.get('reclaim_at') or '', item.get('host') or '', item.get('name') or '')


def fleet_locate(fleet, names, project=None):
    """Find each named domain (name or UUID) in the fleet; returns {'by_host': {host: [uuid]}, 'instances': [...]}.

    Fails when a name is on no host, on several hosts (use its UUID), or in
    another project, and when some host of the play did not report.
    """
    _complete(fleet)
    wanted = _names(names)
    if not wanted:
        raise AnsibleFilterError('no domain named: give names (a list, or a comma-separated string) of domains or UUIDs')
    instances = fleet.get('instances') or []
    found, missing, ambiguous, foreign = [], [], [], []
    seen = set()
    for key in wanted:
        matches = [i for i in instances if i.get('name') == key or (i.get('uuid') or '').lower() == key.lower()]
        if not matches:
            missing.append(key)
            continue
        if len(matches) > 1:
            ambiguous.append('%s (on %s)' % (key, ', '.join(sorted(m['host'] for m in matches))))
            continue
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
        problems.append('more than one domain named %s: name it by UUID' % ', '.join(ambiguous))
    if foreign:
        problems.append('not in project %s: %s' % (project, ', '.join(foreign)))
    if problems:
        raise AnsibleFilterError('%s; nothing was changed' % '; '.join(problems))
    by_host = {}
    for match in found:
        by_host.setdefault(match['host'], []).append(match['uuid'])
    return {'by_host': by_host, 'instances': found}


def _complete(fleet):
    if not isinstance(fleet, dict) or 'hosts' not in fleet:
        raise AnsibleFilterError('the fleet fact is missing: run the deferred.libvirt.state_facts role first')
    missing = fleet.get('missing') or {}
    if missing:
        raise AnsibleFilterError('the fleet state is incomplete, so usage and names cannot be trusted: %s; nothing was '
                                 'changed' % '; '.join('%s: %s' % (h, missing[h]) for h in sorted(missing)))


def quota_check(fleet, limits, names, project=None):
    """Check restoring the named domains against per-project ``limits`` with fleet usage (soft-deleted excluded).

    Returns fits, over (each with project, resource, limit, usage, request),
    message, the request and usage per project, and the plan: by_host (UUIDs
    to restore on each host) and noop (named domains that are not soft-deleted).
    """
    located = fleet_locate(fleet, names, project)
    limits = dict(limits or {})
    try:
        _quota.validate_limits(limits)
    except _quota.QuotaError as exc:
        raise AnsibleFilterError('%s; nothing was changed' % exc)
    restore, noop = [], []
    for item in located['instances']:
        (restore if item.get('vm_state') == 'soft_deleted' else noop).append(item)
    request = _quota.request_of(restore)
    usage = fleet.get('usage') or {}
    over = _quota.check(limits, usage, request)
    by_host = {}
    for item in restore:
        by_host.setdefault(item['host'], []).append(item['uuid'])
    projects = sorted(request, key=lambda p: p or '')
    return {
        'fits': not over,
        'over': over,
        'message': _quota.describe(over) + '; nothing was changed' if over else
        'the batch fits: %s' % ('; '.join('project %s requests %s' % (
            p, ', '.join('%s %d' % (r, request[p][r]) for r in RESOURCES)) for p in projects) or 'nothing to restore'),
        'request': request,
        'usage': dict((p, usage.get(p) or dict((r, 0) for r in RESOURCES)) for p in projects),
        'limits': dict((p, _quota.limits_for(limits, p)) for p in projects),
        'restore': restore,
        'noop': noop,
        'by_host': by_host,
    }


def reclaim_summary(hostvars, hosts, result_var='reclaim_result', check_mode=False):
    """One summary of a reclaim run over many hosts from each host's vm_reclaim result."""
    summary = {'totals': dict((k, 0) for k in ('reclaimed', 'failed', 'skipped', 'kept', 'pending', 'finished')),
               'hosts': {}, 'reclaimed': [], 'failed': [], 'skipped': [], 'pending': [], 'not_swept': {},
               'next': None, 'check_mode': bool(check_mode)}
    for host in hosts or []:
        host = to_text(host)
        result = _host_vars(hostvars, host).get(result_var)
        if not result or result.get('unreachable') or ('summary' not in result):
            why = 'did not run'
            if result and result.get('msg'):
                why = to_text(result['msg'])
            elif result and result.get('unreachable'):
                why = 'unreachable'
            summary['not_swept'][host] = why
            continue
        counts = dict(result['summary'])
        summary['hosts'][host] = counts
        for key in summary['totals']:
            summary['totals'][key] += int(counts.get(key) or 0)
        for key, source in (('reclaimed', 'reclaimed'), ('failed', 'failed_domains'), ('skipped', 'skipped_domains'),
                            ('pending', 'pending')):
            for item in result.get(source) or []:
                summary[key].append(dict(item, host=host))
        for item in result.get('kept') or []:
            if summary['next'] is None or (item.get('reclaim_at') or '') < (summary['next'].get('reclaim_at') or ''):
                summary['next'] = dict(item, host=host)
    totals = summary['totals']
    verb = 'would reclaim' if check_mode else 'reclaimed'
    lines = ['%s %d, failed %d, skipped %d, kept %d, Cinder work pending %d, finished %d on %d host(s)%s'
             % (verb, totals['reclaimed'], totals['failed'], totals['skipped'], totals['kept'], totals['pending'],
                totals['finished'], len(summary['hosts']), ' (check mode: nothing changed)' if check_mode else '')]
    lines += ['%s %s/%s (%s)' % (verb, i['host'], i.get('name'), i.get('uuid')) for i in summary['reclaimed']]
    lines += ['FAILED %s/%s: %s' % (i['host'], i.get('name'), i.get('msg')) for i in summary['failed']]
    lines += ['skipped %s/%s: %s' % (i['host'], i.get('name'), i.get('reason')) for i in summary['skipped']]
    lines += ['pending %s/%s: volume(s) %s' % (i['host'], i.get('name'), ', '.join(v.get('id') or '?' for v in i.get('volumes') or []))
              for i in summary['pending']]
    lines += ['NOT SWEPT %s: %s' % (h, summary['not_swept'][h]) for h in sorted(summary['not_swept'])]
    if summary['next']:
        lines.append('next to expire: %s/%s at %s' % (summary['next']['host'], summary['next'].get('name'),
                                                      summary['next'].get('reclaim_at')))
    summary['lines'] = lines
    summary['ok'] = not summary['failed'] and not summary['not_swept']
    return summary
