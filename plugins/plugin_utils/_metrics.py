# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash report and a host's sweep as Prometheus text, for node_exporter's textfile collector.

report_metrics renders the report data (the fleet, per host and project);
sweep_metrics one host's sweep record, for that host's own node_exporter. Both
write the same last-sweep families through one helper, so a dashboard reads a
sweep the same from either.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report import add_to_totals, empty_totals
from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_time import epoch
from ansible_collections.deferred.libvirt.plugins.plugin_utils._sweep import SWEEP_COUNTS


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
        per.setdefault(key, empty_totals())
        add_to_totals(per[key], item)
    for tomb in report['tombstones']:
        key = (tomb['host'], tomb['project'] or '')
        per.setdefault(key, empty_totals())
        per[key]['pending_tombstones'] += 1
        per[key]['pending_volumes'] += len(tomb['volumes_pending'])
        per[key]['pending_disks'] += len(tomb.get('disks_pending') or [])
    for host in sorted(report['hosts']):
        m.add(P + 'host_up', 'gauge', '1 when the hypervisor reported to the report, else 0.',
              bool(report['hosts'][host]['reported']), host=host)
    rows = [
        ('trash_domains', 'Soft-deleted domains in the trash.', 'domains'),
        ('trash_vcpus', 'Virtual CPUs of the soft-deleted domains.', 'vcpus'),
        ('trash_memory_bytes', 'Memory of the soft-deleted domains.', 'memory_bytes'),
        ('trash_disks', 'Local disks of the soft-deleted domains.', 'disks'),
        ('trash_disk_bytes', 'Allocated bytes of the writable disks of the soft-deleted domains: what reclaiming them '
         'frees at most.', 'disk_bytes'),
        ('trash_overdue_domains', 'Soft-deleted domains past their reclaim_at: the next sweep reclaims them.', 'overdue'),
        ('trash_due_soon_domains', 'Soft-deleted domains the sweep reclaims within the warning window (not yet overdue).',
         'due_soon'),
        ('trash_anomalies', 'Soft-deleted domains never reclaimed because their record is incomplete (rule 1).',
         'anomalies'),
        ('pending_cinder_volumes', 'Cinder volumes of terminated domains whose detach or delete is pending.',
         'pending_volumes'),
        ('pending_cinder_tombstones', 'Terminated domains with Cinder work pending.', 'pending_tombstones'),
        ('pending_disks', 'Disks of terminated domains kept while the fleet index was incomplete, deleted by the next '
         'sweep with a complete index if then safe.', 'pending_disks'),
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
