# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The report filters' code: the trash report, its page and its metrics, and the sweep's record, metrics and warning.

Each filter has its own file in plugins/filter/ (its documentation and entry point).

trash_report builds the report data from every host's vm_info (with
include_deleted) and last_sweep.json; trash_report_html and trash_report_metrics
render it; reclaim_sweep_record, reclaim_sweep_metrics and reclaim_warning do
the same for one sweep. The work is in plugin_utils/_report.py (the data),
_report_html.py (the page), _metrics.py (Prometheus text) and _sweep.py (the
sweep's record and lines); each filter turns bad input into AnsibleFilterError.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils import _metrics
from ansible_collections.deferred.libvirt.plugins.plugin_utils import _report
from ansible_collections.deferred.libvirt.plugins.plugin_utils import _report_html
from ansible_collections.deferred.libvirt.plugins.plugin_utils import _sweep
from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import host_vars
from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_time import ReportError


def _checked(func):
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except ReportError as exc:
            raise AnsibleFilterError('%s; nothing was written' % exc)
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


@_checked
def trash_report(hostvars, hosts, info_var='state_facts_vm_info', sweep_var='report_last_sweep', now=None,
                 warning_window='24h', days=_report.TIMELINE_DAYS, sweep_max_age=None, project=None):
    """The report data over ``hosts`` (see trash_report.yml); with ``project`` only that project's domains."""
    return _report.build(hostvars, hosts, info_var=info_var, sweep_var=sweep_var, now=now,
                         warning_window=warning_window, days=int(days), sweep_max_age=sweep_max_age,
                         project=project)


@_checked
def trash(data, hosts=None, info_var='state_facts_vm_info', project=None, now=None):
    """One line per soft-deleted domain (see trash.py): from a trash report, or from hostvars over ``hosts``."""
    if isinstance(data, dict) and 'trash' in data and 'hosts' in data and hosts is None:
        items = [i for i in data['trash'] if not project or i.get('project') == project]
    else:
        if hosts is None:
            raise AnsibleFilterError('trash: pass a trash report, or hostvars and the list of hosts')
        items = _report.build(data, hosts, info_var=info_var, sweep_var=None, now=now, warning_window=0,
                              project=project)['trash']
    return [_report.trash_line(i) for i in items]


_ACTIONS = {'terminated': 'terminated', 'would_terminate': 'would terminate', 'none': 'nothing to do',
            'pending_finished': 'pending work finished', 'would_finish_pending': 'would finish pending work'}


def terminated_lines(hostvars, hosts, result_var='empty_trash_result'):
    """One line per domain of every host's registered vm_terminate result: what was (or would be) terminated and
    deleted, or why it failed."""
    lines = []
    for host in hosts or []:
        result = host_vars(hostvars, str(host)).get(result_var)
        if not isinstance(result, dict):
            continue
        if result.get('failed') and not result.get('instances'):
            lines.append('%s: FAILED: %s' % (host, result.get('msg') or 'no message'))
        for item in result.get('instances') or []:
            if item.get('failed'):
                lines.append('%s/%s: FAILED: %s' % (host, item.get('name'), item.get('msg') or 'no message'))
                continue
            parts = [_ACTIONS.get(item.get('action'), item.get('action') or 'unknown')]
            for key, label in (('disks_deleted', 'disks deleted'), ('volumes_deleted', 'Cinder volumes deleted'),
                               ('volumes_detached', 'Cinder volumes detached')):
                if item.get(key):
                    parts.append('%s: %s' % (label, ', '.join(str(v) for v in item[key])))
            if item.get('disks_kept'):
                parts.append('disks kept: %s' % ', '.join('%s (%s)' % (d.get('path') or d.get('target'), d.get('reason'))
                                                          for d in item['disks_kept']))
            if item.get('volumes_pending'):
                parts.append('Cinder work pending for %s' % ', '.join(str(v.get('id')) for v in item['volumes_pending']))
            lines.append('%s/%s: %s' % (host, item.get('name'), '; '.join(parts)))
    return lines


def _report_of(report):
    if not isinstance(report, dict) or 'trash' not in report or 'hosts' not in report:
        raise AnsibleFilterError('not a trash report: pass the result of the deferred.libvirt.trash_report filter')
    return report


def trash_report_html(report, title='Trash report'):
    """The report as one self-contained HTML page."""
    return _report_html.render(_report_of(report), title=title)


def trash_report_metrics(report):
    """The report as Prometheus text format."""
    return _metrics.report_metrics(_report_of(report))


@_checked
def reclaim_sweep_record(result, host, started_at=None, finished_at=None, previous=None, project=None,
                         check_mode=False, warning_window=None):
    """What a host's sweep leaves in its state_dir (last_sweep.json)."""
    return _sweep.sweep_record(result, host, started_at=started_at, finished_at=finished_at,
                               previous=_sweep.read_sweep(previous), project=project, check_mode=check_mode,
                               warning_window=warning_window)


def reclaim_sweep_metrics(record, host=None):
    """One host's sweep record as Prometheus text format."""
    if not isinstance(record, dict) or 'counts' not in record:
        raise AnsibleFilterError('not a sweep record: pass the result of the deferred.libvirt.reclaim_sweep_record filter')
    return _metrics.sweep_metrics(record, host or record.get('host'))


def reclaim_sweep_line(record, host=None):
    """One line for a host's sweep, as the summary and the report print it."""
    return _sweep.host_line(host or (record or {}).get('host'), record)


@_checked
def reclaim_warning_line(item, window):
    """One line for a domain due within the window."""
    return _sweep.due_line(item, window)


@_checked
def reclaim_warning(hostvars, hosts, record_var='reclaim_sweep', window=None, now=None):
    """The webhook body: the domains due within the window, over every host's sweep record."""
    sweeps = {}
    for host in hosts or []:
        record = host_vars(hostvars, host).get(record_var)  # nothing for a host the inventory does not have
        if record:
            sweeps[str(host)] = record
    return _sweep.warning_payload(sweeps, generated_at=now, window=window)
