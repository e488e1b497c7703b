# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash report, the sweep record and the Prometheus metrics, computed on the control node.

Pure functions of what the hypervisors reported (vm_info with include_deleted,
vm_reclaim results, each host's last_sweep.json): no libvirt, no network.
plugins/filter/ has one file per filter (plugin_utils/_report_filters.py holds their code); the report and reclaim
roles call those.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import calendar
import datetime
import json
import re

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils import _duration
from ansible_collections.deferred.libvirt.plugins.module_utils import _record

REPORT_VERSION = 1
SWEEP_VERSION = 1
# The file each host's sweep leaves in its state_dir, read by the report.
LAST_SWEEP_FILE = 'last_sweep.json'
TIMELINE_DAYS = 7
SWEEP_COUNTS = ('reclaimed', 'failed', 'skipped', 'kept', 'pending', 'finished')


class ReportError(DeferredError, ValueError):
    """Input the report cannot use; the message says which and why."""


# -- time --------------------------------------------------------------------------------------------------------

def now_of(now=None):
    if now is None:
        return _record.utcnow()
    if isinstance(now, datetime.datetime):
        return now.astimezone(datetime.timezone.utc)
    try:
        return _record.parse_time(str(now))
    except ValueError:
        raise ReportError('now: %r is not a UTC ISO 8601 time' % (now,))


def _parse(text):
    if not text:
        return None
    try:
        return _record.parse_time(str(text))
    except (ValueError, TypeError, AttributeError):
        return None


def epoch(text):
    """Unix seconds of an ISO 8601 time, None when unreadable."""
    value = _parse(text)
    return None if value is None else calendar.timegm(value.utctimetuple())


def window_seconds(value, name='warning_window'):
    if value in (None, '', 0, '0'):
        return 0
    try:
        return _duration.parse_duration(value, name)
    except _duration.DurationError as exc:
        raise ReportError(str(exc))


def human(seconds):
    """A time span as an operator reads it: 2d 3h, 4h 10m, 5m, 40s."""
    if seconds is None:
        return 'unknown'
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    if days:
        return '%dd %dh' % (days, hours)
    if hours:
        return '%dh %dm' % (hours, minutes)
    if minutes:
        return '%dm' % minutes
    return '%ds' % secs


def time_left(seconds):
    if seconds is None:
        return 'never (no readable reclaim_at)'
    if seconds <= 0:
        return 'expired %s ago: next sweep' % human(seconds)
    return human(seconds)


# -- the sweep record ------------------------------------------------------------------------------------------

_ANOMALY = re.compile(r'lifecycle record (is incomplete|cannot be read)|tombstone: ')


def skip_kind(reason):
    """Why the sweep skipped a domain, as one word for tables and metrics."""
    reason = reason or ''
    if _ANOMALY.search(reason):
        return 'anomaly'
    for word, kind in (('stale', 'stale_copy'), ('another host', 'stale_copy'), ('clock', 'clock'),
                       ('future', 'clock'), ('protected', 'protected'), ('locked', 'locked'),
                       ("run's limit", 'limit'), ('held its lock', 'lock_held'), ('restored', 'restored'),
                       ('task ', 'task_in_progress')):
        if word in reason:
            return kind
    return 'other'


def sweep_record(result, host, started_at=None, finished_at=None, previous=None, project=None, check_mode=False,
                 warning_window=None):
    """What one host's sweep leaves in state_dir/last_sweep.json, from its registered vm_reclaim result.

    ``previous`` is the record the last sweep left (or None): ``last_success_at``
    carries over from it when this sweep failed, so a metric can say since
    when the host has not been swept cleanly.
    """
    result = result or {}
    previous = previous if isinstance(previous, dict) else {}
    ran = 'summary' in result and not result.get('unreachable')
    counts = dict((k, int((result.get('summary') or {}).get(k) or 0)) for k in SWEEP_COUNTS)
    ok = bool(ran and not result.get('failed') and not counts['failed'])
    started_at = result.get('started_at') or started_at
    finished_at = result.get('finished_at') or finished_at
    duration = result.get('duration_seconds')
    if duration is None and _parse(started_at) and _parse(finished_at):
        duration = (_parse(finished_at) - _parse(started_at)).total_seconds()
    skipped = []
    for item in result.get('skipped_domains') or []:
        entry = dict((k, item.get(k)) for k in ('name', 'uuid', 'project', 'reason'))
        entry['kind'] = skip_kind(item.get('reason'))
        skipped.append(entry)
    window = window_seconds(warning_window)
    kept = [dict((k, item.get(k)) for k in ('name', 'uuid', 'project', 'deleted_at', 'reclaim_at', 'expires_in'))
            for item in result.get('kept') or []]
    record = {
        'version': SWEEP_VERSION,
        'host': host,
        'request_id': result.get('request_id'),
        'project': project or None,
        'check_mode': bool(check_mode),
        'started_at': started_at,
        'finished_at': finished_at,
        'duration_seconds': round(float(duration), 3) if duration is not None else None,
        'ran': ran,
        'ok': ok,
        'msg': None if ok else (result.get('msg') or ('the sweep did not run' if not ran else None)),
        'counts': counts,
        'skipped_anomalies': len([s for s in skipped if s['kind'] == 'anomaly']),
        'reclaimed': [dict((k, item.get(k)) for k in ('name', 'uuid', 'project', 'deleted_at', 'reclaim_at'))
                      for item in result.get('reclaimed') or []],
        'failed': [dict((k, item.get(k)) for k in ('name', 'uuid', 'msg')) for item in result.get('failed_domains') or []],
        'skipped': skipped,
        'pending': [{'name': i.get('name'), 'uuid': i.get('uuid'),
                     'volumes': [v.get('id') for v in i.get('volumes') or []]} for i in result.get('pending') or []],
        'finished': [dict((k, item.get(k)) for k in ('name', 'uuid')) for item in result.get('finished') or []],
        'kept': kept,
        'warning_window_seconds': window,
        'due_soon': [k for k in kept if window and k.get('expires_in') is not None and k['expires_in'] <= window],
        'last_success_at': finished_at if ok else previous.get('last_success_at'),
    }
    return record


def read_sweep(raw):
    """A host's last_sweep.json from a slurp result (base64 content) or a dict; None when there is none."""
    if not raw:
        return None
    if isinstance(raw, dict) and 'version' in raw and 'counts' in raw:
        return raw
    if isinstance(raw, dict):
        if raw.get('failed') or 'content' not in raw:
            return None
        import base64
        try:
            data = json.loads(base64.b64decode(raw['content']).decode('utf-8'))
        except (ValueError, TypeError):
            return {'version': SWEEP_VERSION, 'unreadable': True, 'counts': {}, 'msg': 'last_sweep.json is not valid JSON'}
        return data if isinstance(data, dict) else None
    return None


# -- the report data -----------------------------------------------------------------------------------------

def _host_vars(hostvars, host):
    try:
        return hostvars[host]
    except Exception:  # a host not in the inventory: nothing it reported
        return {}


def _disk_text(disk):
    where = disk.get('path') or ('%s/%s' % (disk.get('pool'), disk.get('volume')) if disk.get('pool') else None)
    return '%s: %s' % (disk.get('target') or '?', where or disk.get('type') or '?')


def _trash_item(host, view, now, window):
    reclaim_at = view.get('reclaim_at')
    expires_in = None
    if _parse(reclaim_at) is not None:
        expires_in = int((_parse(reclaim_at) - now).total_seconds())
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
    if view.get('power_state') not in (None, 'shutoff', 'gone'):
        warnings.append('%s although soft-deleted (started by hand?); the sweep destroys it when it is due'
                        % view.get('power_state'))
    reclaimable = not reasons and not view.get('protected') and not view.get('locked') and \
        view.get('task_state') in (None, 'deleting')
    memory_mb = view.get('memory_mb') or 0
    return {
        'host': host, 'name': view.get('name'), 'uuid': view.get('uuid'), 'project': view.get('project'),
        'user': view.get('user'), 'deleted_at': view.get('deleted_at'), 'reclaim_at': reclaim_at,
        'expires_in': expires_in, 'time_left': time_left(expires_in),
        'expired': expires_in is not None and expires_in <= 0,
        'due_soon': bool(reclaimable and expires_in is not None and window and expires_in <= window),
        'vcpus': view.get('vcpus') or 0, 'memory_mb': memory_mb, 'memory_bytes': memory_mb * 1024 * 1024,
        'disks': [_disk_text(d) for d in disks], 'disk_count': len(disks),
        'volumes': [v.get('id') for v in view.get('volumes') or []],
        'locked': bool(view.get('locked')), 'lock_reason': view.get('lock_reason'),
        'protected': bool(view.get('protected')), 'task_state': view.get('task_state'),
        'power_state': view.get('power_state'), 'anomalies': reasons, 'warnings': warnings,
        'reclaimable': reclaimable,
    }


def _empty_totals():
    return {'domains': 0, 'vcpus': 0, 'memory_bytes': 0, 'disks': 0, 'due_soon': 0, 'anomalies': 0,
            'pending_volumes': 0, 'pending_tombstones': 0, 'next_reclaim_at': None}


def _add(totals, item):
    totals['domains'] += 1
    totals['vcpus'] += item['vcpus']
    totals['memory_bytes'] += item['memory_bytes']
    totals['disks'] += item['disk_count']
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
            offset = (_parse(item['reclaim_at']).date() - today).days
            bucket = buckets[1 + offset] if offset < days else buckets[-1]
        bucket['domains'].append('%s/%s' % (item['host'], item['name']))
    for bucket in buckets:
        bucket['count'] = len(bucket['domains'])
    return buckets


def build(hostvars, hosts, info_var='state_facts_vm_info', sweep_var='report_last_sweep', now=None,
          warning_window='24h', days=TIMELINE_DAYS, sweep_max_age=None):
    """The report data (the JSON file, and what the page and the metrics are made of)."""
    now = now_of(now)
    window = window_seconds(warning_window)
    max_age = window_seconds(sweep_max_age, 'sweep_max_age') if sweep_max_age else None
    report = {'version': REPORT_VERSION, 'generated_at': _record.format_time(now), 'warning_window_seconds': window,
              'warning_window': _duration.format_duration(window) if window else None,
              'hosts': {}, 'projects': {}, 'trash': [], 'tombstones': [], 'anomalies': [], 'skipped': [],
              'sweeps': {}, 'missing': {}, 'due_soon': [], 'totals': _empty_totals()}
    for host in hosts or []:
        host = str(host)
        hv = _host_vars(hostvars, host)
        result = hv.get(info_var)
        sweep = read_sweep(hv.get(sweep_var))
        entry = {'reported': False, 'why': None, 'trash': [], 'tombstones': [], 'domains': 0,
                 'totals': _empty_totals(), 'last_sweep': sweep, 'problems': []}
        report['hosts'][host] = entry
        if sweep:
            report['sweeps'][host] = sweep
        if not result or result.get('failed') or result.get('unreachable') or 'instances' not in result:
            why = 'did not report'
            if result and result.get('msg'):
                why = str(result['msg'])
            elif result and result.get('unreachable'):
                why = 'unreachable'
            entry['why'] = why
            report['missing'][host] = why
            entry['problems'].append('did not report: %s' % why)
            continue
        entry['reported'] = True
        for view in result['instances']:
            state = view.get('vm_state')
            if state == 'deleted':
                pending = view.get('volumes_pending') or []
                if pending:
                    tomb = {'host': host, 'name': view.get('name'), 'uuid': view.get('uuid'),
                            'project': view.get('project'), 'deleted_at': view.get('deleted_at'),
                            'terminated_at': view.get('terminated_at'),
                            'volumes_pending': [dict((k, v.get(k)) for k in ('id', 'delete_on_termination', 'error'))
                                                for v in pending]}
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
        entry['trash'].sort(key=_order)
        for item in entry['trash']:
            _add(entry['totals'], item)
        for tomb in entry['tombstones']:
            entry['totals']['pending_tombstones'] += 1
            entry['totals']['pending_volumes'] += len(tomb['volumes_pending'])
        if sweep is None:
            entry['problems'].append('no sweep recorded (%s in its state_dir)' % LAST_SWEEP_FILE)
        else:
            if not sweep.get('ok'):
                entry['problems'].append('last sweep failed: %s' % (sweep.get('msg') or '%d domain(s) failed'
                                                                    % (sweep.get('counts') or {}).get('failed', 0)))
            age = None
            if _parse(sweep.get('finished_at')):
                age = int((now - _parse(sweep['finished_at'])).total_seconds())
            sweep['age_seconds'] = age
            if max_age and age is not None and age > max_age:
                entry['problems'].append('last sweep was %s ago' % human(age))
            for skipped in sweep.get('skipped') or []:
                report['skipped'].append(dict(skipped, host=host))
    report['trash'].sort(key=_order)
    report['tombstones'].sort(key=lambda t: (t.get('terminated_at') or '', t['host'], t.get('name') or ''))
    for item in report['trash']:
        _add(report['totals'], item)
        proj = report['projects'].setdefault(item['project'] or '', dict(_empty_totals(), hosts=[]))
        _add(proj, item)
        if item['host'] not in proj['hosts']:
            proj['hosts'].append(item['host'])
        if item['due_soon']:
            report['due_soon'].append(item)
    for tomb in report['tombstones']:
        proj = report['projects'].setdefault(tomb['project'] or '', dict(_empty_totals(), hosts=[]))
        for totals in (report['totals'], proj):
            totals['pending_tombstones'] += 1
            totals['pending_volumes'] += len(tomb['volumes_pending'])
        if tomb['host'] not in proj['hosts']:
            proj['hosts'].append(tomb['host'])
    for proj in report['projects'].values():
        proj['hosts'].sort()
    report['timeline'] = _timeline(report['trash'], now, days)
    report['problems'] = _problems(report)
    report['ok'] = not report['problems']
    report['lines'] = _lines(report)
    return report


def _order(item):
    return (item.get('reclaim_at') or '', item.get('host') or '', item.get('name') or '')


def _problems(report):
    problems = []
    for host in sorted(report['hosts']):
        problems += ['%s: %s' % (host, p) for p in report['hosts'][host]['problems']]
    for item in report['anomalies']:
        problems.append('%s/%s is never reclaimed until its record is fixed: %s'
                        % (item['host'], item['name'], '; '.join(item['reasons'])))
    for tomb in report['tombstones']:
        problems.append('%s/%s: Cinder work pending for %d volume(s)' % (tomb['host'], tomb['name'],
                                                                         len(tomb['volumes_pending'])))
    return problems


def _lines(report):
    totals = report['totals']
    lines = ['trash: %d domain(s), %d vCPU(s), %d MiB on %d host(s); %d due within %s; Cinder work pending for %d '
             'volume(s); %s' % (totals['domains'], totals['vcpus'], totals['memory_bytes'] // 1048576,
                                len(report['hosts']), totals['due_soon'], report['warning_window'] or 'no window',
                                totals['pending_volumes'],
                                'nothing is wrong' if report['ok'] else '%d problem(s)' % len(report['problems']))]
    for host in sorted(report['hosts']):
        entry = report['hosts'][host]
        lines.append(host_line(host, entry.get('last_sweep'), entry))
    lines += [due_line(i, report['warning_window_seconds']) for i in report['due_soon']]
    lines += ['PROBLEM %s' % p for p in report['problems']]
    return lines


def host_line(host, sweep, entry=None):
    """One line per host, the same in the sweep's output and the report."""
    parts = []
    if entry is not None:
        if not entry.get('reported'):
            return 'host %s: DID NOT REPORT (%s)' % (host, entry.get('why'))
        parts.append('%d in the trash' % entry['totals']['domains'])
    if not sweep:
        parts.append('no sweep recorded')
    elif not sweep.get('ran'):
        parts.append('NOT SWEPT (%s)' % (sweep.get('msg') or 'the sweep did not run'))
    else:
        counts = sweep.get('counts') or {}
        text = 'last sweep %s' % (sweep.get('finished_at') or '?') if entry is not None else 'swept'
        text += ': %s %d, failed %d, skipped %d (anomalies %d), kept %d, pending %d, finished %d' % (
            'would reclaim' if sweep.get('check_mode') else 'reclaimed', counts.get('reclaimed', 0),
            counts.get('failed', 0), counts.get('skipped', 0), sweep.get('skipped_anomalies') or 0,
            counts.get('kept', 0), counts.get('pending', 0), counts.get('finished', 0))
        if sweep.get('duration_seconds') is not None:
            text += ' in %.2f s' % sweep['duration_seconds']
        if not sweep.get('ok'):
            text += ' - FAILED'
        parts.append(text)
        if sweep.get('due_soon'):
            parts.append('%d due within %s' % (len(sweep['due_soon']),
                                               _duration.format_duration(sweep.get('warning_window_seconds'))))
    return 'host %s: %s' % (host, '; '.join(parts))


def due_line(item, window):
    """One domain due within the warning window, the same in the sweep's summary and the report."""
    return 'due within %s: %s/%s (project %s) at %s' % (
        _duration.format_duration(window_seconds(window)), item.get('host'), item.get('name'),
        item.get('project') or 'none', item.get('reclaim_at'))


def warning_payload(sweeps, generated_at=None, window=None):
    """The webhook body: every domain due within the window, over the hosts' sweep records."""
    domains = []
    for host in sorted(sweeps or {}):
        for item in (sweeps[host] or {}).get('due_soon') or []:
            domains.append(dict(item, host=host))
    domains.sort(key=_order)
    return {'event': 'deferred.libvirt.reclaim_warning', 'generated_at': generated_at or _record.format_time(
        _record.utcnow()), 'warning_window_seconds': window_seconds(window), 'count': len(domains), 'domains': domains}


# -- Prometheus text format ----------------------------------------------------------------------------------

def _label_value(value):
    return str(value if value is not None else '').replace('\\', '\\\\').replace('\n', '\\n').replace('"', '\\"')


def _number(value):
    if isinstance(value, bool):
        return '1' if value else '0'
    if isinstance(value, float):
        return repr(value)
    return str(int(value))


class _Metrics(object):
    def __init__(self):
        self.families = []
        self.index = {}

    def add(self, name, kind, help_text, value, **labels):
        if value is None:
            return
        if name not in self.index:
            self.index[name] = (kind, help_text, [])
            self.families.append(name)
        key = ','.join('%s="%s"' % (k, _label_value(labels[k])) for k in sorted(labels))
        self.index[name][2].append((key, value))

    def text(self):
        out = []
        for name in self.families:
            kind, help_text, samples = self.index[name]
            out.append('# HELP %s %s' % (name, help_text))
            out.append('# TYPE %s %s' % (name, kind))
            for key, value in samples:
                out.append('%s%s %s' % (name, '{%s}' % key if key else '', _number(value)))
        return '\n'.join(out) + '\n'


P = 'deferred_libvirt_'


def report_metrics(report):
    """The report as Prometheus text (node_exporter textfile collector): the fleet, per host and project."""
    m = _Metrics()
    m.add(P + 'report_generated_timestamp_seconds', 'gauge', 'When the trash report was generated.',
          epoch(report['generated_at']))
    m.add(P + 'report_ok', 'gauge', '1 when the report found nothing wrong, else 0.', bool(report['ok']))
    m.add(P + 'warning_window_seconds', 'gauge', 'Domains due within this many seconds are warned about.',
          report['warning_window_seconds'])
    per = {}
    for item in report['trash']:
        key = (item['host'], item['project'] or '')
        per.setdefault(key, _empty_totals())
        _add(per[key], item)
    for tomb in report['tombstones']:
        key = (tomb['host'], tomb['project'] or '')
        per.setdefault(key, _empty_totals())
        per[key]['pending_tombstones'] += 1
        per[key]['pending_volumes'] += len(tomb['volumes_pending'])
    for host in sorted(report['hosts']):
        m.add(P + 'host_up', 'gauge', '1 when the hypervisor reported to the report, else 0.',
              bool(report['hosts'][host]['reported']), host=host)
    rows = [
        ('trash_domains', 'Soft-deleted domains in the trash.', 'domains'),
        ('trash_vcpus', 'Virtual CPUs of the soft-deleted domains.', 'vcpus'),
        ('trash_memory_bytes', 'Memory of the soft-deleted domains.', 'memory_bytes'),
        ('trash_disks', 'Local disks of the soft-deleted domains.', 'disks'),
        ('trash_due_soon_domains', 'Soft-deleted domains the sweep reclaims within the warning window.', 'due_soon'),
        ('trash_anomalies', 'Soft-deleted domains never reclaimed because their record is incomplete (rule 1).',
         'anomalies'),
        ('pending_cinder_volumes', 'Cinder volumes of terminated domains whose detach or delete is pending.',
         'pending_volumes'),
        ('pending_cinder_tombstones', 'Terminated domains with Cinder work pending.', 'pending_tombstones'),
    ]
    for suffix, help_text, key in rows:
        for (host, project) in sorted(per):
            m.add(P + suffix, 'gauge', help_text, per[(host, project)][key], host=host, project=project)
    for (host, project) in sorted(per):
        m.add(P + 'trash_next_reclaim_timestamp_seconds', 'gauge',
              'The soonest reclaim_at of a reclaimable soft-deleted domain.',
              epoch(per[(host, project)]['next_reclaim_at']), host=host, project=project)
    for host in sorted(report['sweeps']):
        _sweep_metrics(m, P + 'report_last_sweep_', report['sweeps'][host], host)
    return m.text()


def _sweep_metrics(m, prefix, sweep, host):
    if not sweep or sweep.get('unreadable'):
        return
    m.add(prefix + 'timestamp_seconds', 'gauge', 'When the last reclaim sweep of the host finished.',
          epoch(sweep.get('finished_at')), host=host)
    m.add(prefix + 'success_timestamp_seconds', 'gauge', 'When the last sweep with no failure finished.',
          epoch(sweep.get('last_success_at')), host=host)
    m.add(prefix + 'duration_seconds', 'gauge', 'How long the last sweep of the host took.',
          sweep.get('duration_seconds'), host=host)
    m.add(prefix + 'ok', 'gauge', '1 when the last sweep ran with no failure, else 0.', bool(sweep.get('ok')), host=host)
    for key in SWEEP_COUNTS:
        m.add(prefix + 'domains', 'gauge', 'Domains of the last sweep, by result.',
              int((sweep.get('counts') or {}).get(key) or 0), host=host, result=key)
    m.add(prefix + 'skipped_anomalies', 'gauge',
          'Domains the last sweep skipped because their record is incomplete or unreadable (rule 1).',
          int(sweep.get('skipped_anomalies') or 0), host=host)


def sweep_metrics(sweep, host):
    """One host's sweep as Prometheus text, for the host's own node_exporter."""
    m = _Metrics()
    _sweep_metrics(m, P + 'sweep_last_', sweep, host)
    per = {}
    for item in sweep.get('kept') or []:
        entry = per.setdefault(item.get('project') or '', {'kept': 0, 'due': 0, 'next': None})
        entry['kept'] += 1
        if item in (sweep.get('due_soon') or []):
            entry['due'] += 1
        if item.get('reclaim_at') and (entry['next'] is None or item['reclaim_at'] < entry['next']):
            entry['next'] = item['reclaim_at']
    for project in sorted(per):
        m.add(P + 'sweep_kept_domains', 'gauge', 'Soft-deleted domains the last sweep kept (not yet expired).',
              per[project]['kept'], host=host, project=project)
    for project in sorted(per):
        m.add(P + 'sweep_due_soon_domains', 'gauge',
              'Domains the sweep will reclaim within the warning window, as of the last sweep.',
              per[project]['due'], host=host, project=project)
    for project in sorted(per):
        m.add(P + 'sweep_next_reclaim_timestamp_seconds', 'gauge',
              'The soonest reclaim_at among the domains the last sweep kept.', epoch(per[project]['next']),
              host=host, project=project)
    m.add(P + 'sweep_warning_window_seconds', 'gauge', 'The warning window of the last sweep.',
          sweep.get('warning_window_seconds') or 0, host=host)
    return m.text()
