# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""A host's sweep on the control node: the record it leaves in state_dir/last_sweep.json, its lines and the warning.

sweep_record folds a host's vm_reclaim result into what the next report reads
(and read_sweep reads it back from a slurp); host_line and due_line are the
lines the sweep's summary and the report both print, so the two never word a
host or a due domain differently; warning_payload is the webhook body over the
hosts' records.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import base64
import json
import re

from ansible_collections.deferred.libvirt.plugins.module_utils import _duration
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_time import (
    expiry_order, parse_time, window_seconds)

SWEEP_VERSION = 1
# The file each host's sweep leaves in its state_dir, read by the report.
LAST_SWEEP_FILE = 'last_sweep.json'
SWEEP_COUNTS = ('reclaimed', 'failed', 'skipped', 'kept', 'pending', 'finished')

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


def _listed(value):
    """``value`` when it is a list, else [] (a key a newer ansible-core rewrites)."""
    return value if isinstance(value, list) else []


def sweep_record(result, host, started_at=None, finished_at=None, previous=None, project=None, check_mode=False,
                 warning_window=None):
    """What one host's sweep leaves in state_dir/last_sweep.json, from its registered vm_reclaim result.

    ``previous`` is the record the last sweep left (or None): ``last_success_at``
    carries over from it when this sweep failed, so a metric can say since
    when the host has not been swept cleanly.
    """
    result = result or {}
    previous = previous if isinstance(previous, dict) else {}
    # A sweep in which some domain failed still ran: the rule reclaim_summary applies to the same result.
    ran = _fleet.reported(result, key='summary', failed_counts=True)[1] is None
    counts = dict((k, int((result.get('summary') or {}).get(k) or 0)) for k in SWEEP_COUNTS)
    ok = bool(ran and not result.get('failed') and not counts['failed'])
    started_at = result.get('started_at') or started_at
    finished_at = result.get('finished_at') or finished_at
    duration = result.get('duration_seconds')
    if duration is None and parse_time(started_at) and parse_time(finished_at):
        duration = (parse_time(finished_at) - parse_time(started_at)).total_seconds()
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
        # finished_tombstones: ansible-core 2.19 and later read a result's ``finished`` as the async flag and register a
        # bool in its place (a result of an earlier version has only ``finished``).
        'finished': [dict((k, item.get(k)) for k in ('name', 'uuid'))
                     for item in _listed(result.get('finished_tombstones', result.get('finished')))],
        # Disks kept while the fleet index was incomplete, pending in the tombstones; the hosts that were missing.
        'disks_pending': [dict((k, item.get(k)) for k in ('name', 'uuid', 'project', 'disks', 'reason'))
                          for item in result.get('disks_pending') or []],
        'fleet_missing': list((result.get('fleet') or {}).get('missing') or [])
        if (result.get('fleet') or {}).get('given') and not (result.get('fleet') or {}).get('complete') else [],
        # Why it was incomplete: hosts that did not report, chains a host could not read.
        'fleet_gaps': list((result.get('fleet') or {}).get('gaps') or [])
        if (result.get('fleet') or {}).get('given') and not (result.get('fleet') or {}).get('complete') else [],
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
        try:
            data = json.loads(base64.b64decode(raw['content']).decode('utf-8'))
        except (ValueError, TypeError):
            return {'version': SWEEP_VERSION, 'unreadable': True, 'counts': {}, 'msg': 'last_sweep.json is not valid JSON'}
        return data if isinstance(data, dict) else None
    return None


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
        if sweep.get('fleet_gaps') or sweep.get('fleet_missing'):
            parts.append('fleet index INCOMPLETE (%s)' % ('; '.join(sweep.get('fleet_gaps') or [])
                                                          or '%s did not report' % ', '.join(sweep['fleet_missing'])))
        if sweep.get('disks_pending'):
            parts.append('%d terminated domain(s) with disks pending' % len(sweep['disks_pending']))
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
    domains.sort(key=expiry_order)
    return {'event': 'deferred.libvirt.reclaim_warning', 'generated_at': generated_at or _record.format_time(
        _record.utcnow()), 'warning_window_seconds': window_seconds(window), 'count': len(domains), 'domains': domains}
