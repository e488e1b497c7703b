# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash report's data, computed on the control node: what is in the trash, what is due, what is wrong.

A pure function of what the hypervisors reported (vm_info with
include_deleted, each host's last_sweep.json): no libvirt, no network. The
JSON file, the page (_report_html.py) and the metrics (_metrics.py) are all
made of it; the sweep's own record and lines are _sweep.py's, and
plugin_utils/_report_filters.py holds the filters the report and reclaim
roles call.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import re
import shlex

from ansible_collections.deferred.libvirt.plugins.module_utils import _duration
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._states import OFF_POWER_STATES
from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import host_vars
from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_time import (
    expiry_order, human, human_bytes, now_of, parse_time, time_left, when, window_seconds)
from ansible_collections.deferred.libvirt.plugins.plugin_utils._sweep import (
    LAST_SWEEP_FILE, due_line, host_line, read_sweep)

REPORT_VERSION = 1
TIMELINE_DAYS = 7


def _disk_text(disk):
    where = disk.get('path') or ('%s/%s' % (disk.get('pool'), disk.get('volume')) if disk.get('pool') else None)
    return '%s: %s' % (disk.get('target') or '?', where or disk.get('type') or '?')


# Text that is safe on a command line and in an extra var as it is: no quoting, nothing Ansible would template.
_PLAIN = re.compile(r'^[A-Za-z0-9._@:+-]{1,255}$')


def deleted_by(view):
    """Who soft-deleted the domain, from the last successful soft_delete in its history; None when not recorded."""
    for item in reversed(view.get('history') or []):
        if isinstance(item, dict) and item.get('action') == 'soft_delete' and item.get('result') == 'success':
            return item.get('actor') or None
    return None


def restore_command(view):
    """The command that restores this domain with the restore playbook, or None when its UUID is not a plain one.

    The domain is named by its UUID (exact across the fleet); the project is passed only when it is plain text, as
    an extra var is templated by Ansible: a tenant's string never becomes part of a command to paste.
    """
    uuid = view.get('uuid')
    if not isinstance(uuid, str) or not _record.UUIDISH.match(uuid):
        return None
    extra = {'names': uuid}
    project = view.get('project')
    if isinstance(project, str) and _PLAIN.match(project):
        extra['project'] = project
    return 'ansible-playbook -i INVENTORY deferred.libvirt.restore %s' % ' '.join(
        '-e %s' % shlex.quote('%s=%s' % (k, extra[k])) for k in ('names', 'project') if k in extra)


def trash_line(item):
    """One soft-deleted domain in the operator's words: where, whose, when it goes, its size, who deleted it and
    how to restore it."""
    if item.get('reclaimable'):
        left = when(item.get('expires_in'))
    else:
        left = 'never reclaimed as it is (%s)' % '; '.join(
            (item.get('anomalies') or []) + (item.get('warnings') or [])[:2] or ['task %s' % item.get('task_state')])
    return '%s/%s (project %s, owner %s): %s, %s on disk, deleted by %s%s; restore: %s' % (
        item.get('host'), item.get('name'), item.get('project') or 'none', item.get('user') or 'none', left,
        item.get('disk_size') or human_bytes(item.get('disk_bytes')), item.get('deleted_by') or 'unknown (not recorded)',
        ' at %s' % item['deleted_at'] if item.get('deleted_at') else '',
        item.get('restore_command') or 'name it to the restore playbook (its UUID is not a plain one)')


def _trash_item(host, view, now, window):
    reclaim_at = view.get('reclaim_at')
    expires_in = None
    if parse_time(reclaim_at) is not None:
        expires_in = int((parse_time(reclaim_at) - now).total_seconds())
    disks = [d for d in view.get('disks') or [] if d.get('device', 'disk') == 'disk']
    warnings = []
    reasons = []
    if view.get('metadata_error'):
        reasons.append(view['metadata_error'])
    reasons += view.get('anomalies') or []
    if view.get('protected'):
        warnings.append('protected: never reclaimed')
    if view.get('locked'):
        warnings.append('locked%s: skipped by the sweep' % (' (%s)' % view['lock_reason'] if view.get('lock_reason') else ''))
    if view.get('task_state') and view.get('task_state') != 'deleting':
        warnings.append('task %s in progress or interrupted' % view['task_state'])
    if view.get('power_state') not in (None,) + OFF_POWER_STATES:
        warnings.append('%s although soft-deleted (started by hand?); the sweep destroys it when it is due'
                        % view.get('power_state'))
    reclaimable = not reasons and not view.get('protected') and not view.get('locked') and \
        view.get('task_state') in (None, 'deleting')
    memory_mb = view.get('memory_mb') or 0
    size = view.get('disk_bytes')
    size = size if isinstance(size, int) and not isinstance(size, bool) and size >= 0 else None
    expired = expires_in is not None and expires_in <= 0
    return {
        'host': host, 'name': view.get('name'), 'uuid': view.get('uuid'), 'project': view.get('project'),
        'user': view.get('user'), 'deleted_at': view.get('deleted_at'), 'reclaim_at': reclaim_at,
        'expires_in': expires_in, 'time_left': time_left(expires_in),
        'expired': expired, 'overdue': bool(reclaimable and expired),
        'due_soon': bool(reclaimable and expires_in is not None and not expired and window and expires_in <= window),
        'disk_bytes': size, 'disk_size': human_bytes(size), 'deleted_by': deleted_by(view),
        'restore_command': restore_command(view),
        'vcpus': view.get('vcpus') or 0, 'memory_mb': memory_mb, 'memory_bytes': memory_mb * 1024 * 1024,
        'disks': [_disk_text(d) for d in disks], 'disk_count': len(disks),
        'volumes': [v.get('id') for v in view.get('volumes') or []],
        'locked': bool(view.get('locked')), 'lock_reason': view.get('lock_reason'),
        'protected': bool(view.get('protected')), 'task_state': view.get('task_state'),
        'power_state': view.get('power_state'), 'anomalies': reasons, 'warnings': warnings,
        'reclaimable': reclaimable,
    }


def empty_totals():
    return {'domains': 0, 'vcpus': 0, 'memory_bytes': 0, 'disks': 0, 'disk_bytes': 0, 'overdue': 0, 'due_soon': 0,
            'anomalies': 0,
            'pending_volumes': 0, 'pending_tombstones': 0, 'pending_disks': 0, 'next_reclaim_at': None}


def add_to_totals(totals, item):
    totals['domains'] += 1
    totals['vcpus'] += item['vcpus']
    totals['memory_bytes'] += item['memory_bytes']
    totals['disks'] += item['disk_count']
    totals['disk_bytes'] += item.get('disk_bytes') or 0
    totals['overdue'] += 1 if item.get('overdue') else 0
    totals['due_soon'] += 1 if item['due_soon'] else 0
    totals['anomalies'] += 1 if item['anomalies'] else 0
    if item['reclaimable'] and item['reclaim_at'] and (
            totals['next_reclaim_at'] is None or item['reclaim_at'] < totals['next_reclaim_at']):
        totals['next_reclaim_at'] = item['reclaim_at']


def _timeline(trash, now, days):
    """What the next days' sweeps will reclaim: overdue (the next sweep), then one bucket per UTC day, then later."""
    today = now.date()
    buckets = [{'label': 'overdue (next sweep)', 'date': None, 'domains': []}]
    for offset in range(days):
        day = today + datetime.timedelta(days=offset)
        buckets.append({'label': 'today' if offset == 0 else day.strftime('%a %d %b'), 'date': day.isoformat(),
                        'domains': []})
    buckets.append({'label': 'later', 'date': None, 'domains': []})
    for item in trash:
        if not item['reclaimable'] or item['expires_in'] is None:
            continue
        if item['expired']:
            bucket = buckets[0]
        else:
            offset = (parse_time(item['reclaim_at']).date() - today).days
            bucket = buckets[1 + offset] if offset < days else buckets[-1]
        bucket['domains'].append('%s/%s' % (item['host'], item['name']))
    for bucket in buckets:
        bucket['count'] = len(bucket['domains'])
    return buckets


# The lists of a sweep record that name domains: with a project, only that project's are kept.
_SWEEP_DOMAIN_LISTS = ('reclaimed', 'failed', 'skipped', 'pending', 'finished', 'kept', 'due_soon')


def _sweep_of_project(sweep, project, uuids):
    """The sweep record with only ``project``'s domains in its lists (an entry without a project by its uuid)."""
    if not sweep or not project:
        return sweep
    sweep = dict(sweep)
    for key in _SWEEP_DOMAIN_LISTS:
        if isinstance(sweep.get(key), list):
            sweep[key] = [item for item in sweep[key] if isinstance(item, dict) and (
                item.get('project') == project if 'project' in item else item.get('uuid') in uuids)]
    sweep['skipped_anomalies'] = len([s for s in sweep.get('skipped') or [] if s.get('kind') == 'anomaly'])
    sweep['project_filter'] = project
    return sweep


def _instances(result, project):
    """A host's views, only ``project``'s when a project is given."""
    views = result['instances']
    return [v for v in views if v.get('project') == project] if project else views


def build(hostvars, hosts, info_var='state_facts_vm_info', sweep_var='report_last_sweep', now=None,
          warning_window='24h', days=TIMELINE_DAYS, sweep_max_age=None, project=None):
    """The report data (the JSON file, and what the page and the metrics are made of).

    With ``project`` every list that names domains (the trash, tombstones,
    anomalies, what the last sweeps skipped, reclaimed, kept or left pending)
    holds that project's domains only: another tenant's names and reasons never
    reach the page or the JSON.
    """
    project = project or None
    now = now_of(now)
    window = window_seconds(warning_window)
    max_age = window_seconds(sweep_max_age, 'sweep_max_age') if sweep_max_age else None
    report = {'version': REPORT_VERSION, 'generated_at': _record.format_time(now), 'warning_window_seconds': window,
              'warning_window': _duration.format_duration(window) if window else None,
              'hosts': {}, 'projects': {}, 'trash': [], 'tombstones': [], 'anomalies': [], 'skipped': [],
              'sweeps': {}, 'missing': {}, 'overdue': [], 'due_soon': [], 'totals': empty_totals(), 'project': project}
    uuids = set()
    for host in hosts or []:
        result, why = _fleet.reported(host_vars(hostvars, str(host)).get(info_var))
        if not why:
            uuids.update(v.get('uuid') for v in _instances(result, project))
    for host in hosts or []:
        host = str(host)
        hv = host_vars(hostvars, host)
        result = hv.get(info_var)
        sweep = _sweep_of_project(read_sweep(hv.get(sweep_var)), project, uuids)
        entry = {'reported': False, 'why': None, 'trash': [], 'tombstones': [], 'domains': 0,
                 'totals': empty_totals(), 'last_sweep': sweep, 'problems': []}
        report['hosts'][host] = entry
        if sweep:
            report['sweeps'][host] = sweep
        result, why = _fleet.reported(result)  # the rule fleet_state and fleet_index apply to the same results
        if why:
            entry['why'] = why
            report['missing'][host] = why
            entry['problems'].append('did not report: %s' % why)
            continue
        entry['reported'] = True
        for view in _instances(result, project):
            state = view.get('vm_state')
            if state == 'deleted':
                pending = view.get('volumes_pending') or []
                # Disks a terminate kept while the fleet index was incomplete: work left, like pending volumes.
                disks = view.get('disks_pending') or []
                if pending or disks:
                    tomb = {'host': host, 'name': view.get('name'), 'uuid': view.get('uuid'),
                            'project': view.get('project'), 'deleted_at': view.get('deleted_at'),
                            'terminated_at': view.get('terminated_at'),
                            'volumes_pending': [dict((k, v.get(k)) for k in ('id', 'delete_on_termination', 'error'))
                                                for v in pending],
                            'disks_pending': [dict((k, d.get(k)) for k in ('path', 'target', 'reason')) for d in disks]}
                    entry['tombstones'].append(tomb)
                    report['tombstones'].append(tomb)
                continue
            entry['domains'] += 1
            if view.get('metadata_error') and state != 'soft_deleted':
                report['anomalies'].append({'host': host, 'name': view.get('name'), 'uuid': view.get('uuid'),
                                            'project': view.get('project'), 'reasons': [view['metadata_error']]})
                continue
            if state != 'soft_deleted':
                continue
            item = _trash_item(host, view, now, window)
            entry['trash'].append(item)
            report['trash'].append(item)
            if item['anomalies']:
                report['anomalies'].append({'host': host, 'name': item['name'], 'uuid': item['uuid'],
                                            'project': item['project'], 'reasons': item['anomalies']})
        entry['trash'].sort(key=expiry_order)
        for item in entry['trash']:
            add_to_totals(entry['totals'], item)
        for tomb in entry['tombstones']:
            entry['totals']['pending_tombstones'] += 1
            entry['totals']['pending_volumes'] += len(tomb['volumes_pending'])
            entry['totals']['pending_disks'] += len(tomb['disks_pending'])
        if sweep is None:
            entry['problems'].append('no sweep recorded (%s in its state_dir)' % LAST_SWEEP_FILE)
        else:
            if not sweep.get('ok'):
                entry['problems'].append('last sweep failed: %s' % (sweep.get('msg') or '%d domain(s) failed'
                                                                    % (sweep.get('counts') or {}).get('failed', 0)))
            age = None
            if parse_time(sweep.get('finished_at')):
                age = int((now - parse_time(sweep['finished_at'])).total_seconds())
            sweep['age_seconds'] = age
            if max_age and age is not None and age > max_age:
                entry['problems'].append('last sweep was %s ago' % human(age))
            for skipped in sweep.get('skipped') or []:
                report['skipped'].append(dict(skipped, host=host))
    report['trash'].sort(key=expiry_order)
    report['tombstones'].sort(key=lambda t: (t.get('terminated_at') or '', t['host'], t.get('name') or ''))
    for item in report['trash']:
        add_to_totals(report['totals'], item)
        proj = report['projects'].setdefault(item['project'] or '', dict(empty_totals(), hosts=[]))
        add_to_totals(proj, item)
        if item['host'] not in proj['hosts']:
            proj['hosts'].append(item['host'])
        if item['overdue']:
            report['overdue'].append(item)
        if item['due_soon']:
            report['due_soon'].append(item)
    for tomb in report['tombstones']:
        proj = report['projects'].setdefault(tomb['project'] or '', dict(empty_totals(), hosts=[]))
        for totals in (report['totals'], proj):
            totals['pending_tombstones'] += 1
            totals['pending_volumes'] += len(tomb['volumes_pending'])
            totals['pending_disks'] += len(tomb['disks_pending'])
        if tomb['host'] not in proj['hosts']:
            proj['hosts'].append(tomb['host'])
    for proj in report['projects'].values():
        proj['hosts'].sort()
    report['timeline'] = _timeline(report['trash'], now, days)
    report['problems'] = _problems(report)
    report['ok'] = not report['problems']
    report['lines'] = _lines(report)
    return report


def _problems(report):
    problems = []
    for host in sorted(report['hosts']):
        problems += ['%s: %s' % (host, p) for p in report['hosts'][host]['problems']]
    for item in report['anomalies']:
        problems.append('%s/%s is never reclaimed until its record is fixed: %s'
                        % (item['host'], item['name'], '; '.join(item['reasons'])))
    for tomb in report['tombstones']:
        if tomb['volumes_pending']:
            problems.append('%s/%s: Cinder work pending for %d volume(s)' % (tomb['host'], tomb['name'],
                                                                             len(tomb['volumes_pending'])))
        if tomb.get('disks_pending'):
            problems.append('%s/%s: %d disk(s) kept while the fleet index was incomplete, pending until a sweep with a '
                            'complete index: %s' % (tomb['host'], tomb['name'], len(tomb['disks_pending']),
                                                    ', '.join(d.get('path') or '?' for d in tomb['disks_pending'])))
    return problems


def _lines(report):
    totals = report['totals']
    lines = ['trash: %d domain(s), %s on disk to be freed, %d vCPU(s), %d MiB on %d host(s); %d overdue, %d due within '
             '%s; Cinder work pending for %d volume(s); %s' % (
                 totals['domains'], human_bytes(totals['disk_bytes']), totals['vcpus'], totals['memory_bytes'] // 1048576,
                 len(report['hosts']), totals['overdue'], totals['due_soon'], report['warning_window'] or 'no window',
                 totals['pending_volumes'], 'nothing is wrong' if report['ok'] else '%d problem(s)' % len(report['problems']))]
    for host in sorted(report['hosts']):
        entry = report['hosts'][host]
        lines.append(host_line(host, entry.get('last_sweep'), entry))
    lines += ['overdue by %s: %s/%s (project %s) at %s; the next sweep reclaims it' % (
        human(i['expires_in']), i['host'], i['name'], i['project'] or 'none', i['reclaim_at']) for i in report['overdue']]
    lines += [due_line(i, report['warning_window_seconds']) for i in report['due_soon']]
    lines += ['PROBLEM %s' % p for p in report['problems']]
    return lines
