# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""One summary of a reclaim run over many hosts, folded on the control node from each host's vm_reclaim result.

reclaim_summary adds up the counts, lists what was reclaimed, failed, skipped
or left pending, and names the hosts whose sweep did not run (by the rule
module_utils/_fleet.py states for any host's registered result), so the
reclaim role prints one account of the run and fails when a host was missed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import host_result, without_gc_pauses


@without_gc_pauses
def reclaim_summary(hostvars, hosts, result_var='reclaim_result', check_mode=False):
    """One summary of a reclaim run over many hosts from each host's vm_reclaim result."""
    summary = {'totals': dict((k, 0) for k in ('reclaimed', 'failed', 'skipped', 'kept', 'pending', 'finished')),
               'hosts': {}, 'reclaimed': [], 'failed': [], 'skipped': [], 'pending': [], 'not_swept': {},
               'next': None, 'check_mode': bool(check_mode), 'disks_pending': [], 'fleet_missing': [], 'fleet_gaps': []}
    for host in hosts or []:
        host = to_text(host)
        # A sweep in which some domain failed still swept the others: its counts are the run's.
        result, why = host_result(hostvars, host, result_var, key='summary', absent='did not run', failed_counts=True)
        if why:
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
        for item in result.get('disks_pending') or []:
            summary['disks_pending'].append(dict(item, host=host))
        fleet = result.get('fleet') or {}
        for missing in fleet.get('missing') or []:
            if fleet.get('given') and not fleet.get('complete') and missing not in summary['fleet_missing']:
                summary['fleet_missing'].append(missing)
        for gap in fleet.get('gaps') or []:
            if fleet.get('given') and not fleet.get('complete') and gap not in summary['fleet_gaps']:
                summary['fleet_gaps'].append(gap)
        for item in result.get('kept') or []:
            if summary['next'] is None or (item.get('reclaim_at') or '') < (summary['next'].get('reclaim_at') or ''):
                summary['next'] = dict(item, host=host)
    totals = summary['totals']
    verb = 'would reclaim' if check_mode else 'reclaimed'
    lines = ['%s %d, failed %d, skipped %d, kept %d, Cinder work pending %d, finished %d on %d host(s)%s'
             % (verb, totals['reclaimed'], totals['failed'], totals['skipped'], totals['kept'], totals['pending'],
                totals['finished'], len(summary['hosts']), ' (check mode: nothing changed)' if check_mode else '')]
    summary['fleet_missing'].sort()
    summary['fleet_gaps'].sort()
    summary['fleet_complete'] = not summary['fleet_missing'] and not summary['fleet_gaps']
    if not summary['fleet_complete']:
        # Rule 12: said first, since it bounds what the sweep could do.
        lines.append('FLEET INDEX INCOMPLETE: %s; disks another host could reach were kept (pending in the '
                     'tombstones until a sweep with a complete index), no copy was taken for the only one'
                     % ('; '.join(summary['fleet_gaps'])
                        or '%s did not report' % ', '.join(summary['fleet_missing'])))
    lines += ['%s %s/%s (%s)' % (verb, i['host'], i.get('name'), i.get('uuid')) for i in summary['reclaimed']]
    lines += ['FAILED %s/%s: %s' % (i['host'], i.get('name'), i.get('msg')) for i in summary['failed']]
    lines += ['skipped %s/%s: %s' % (i['host'], i.get('name'), i.get('reason')) for i in summary['skipped']]
    lines += ['pending %s/%s: volume(s) %s' % (i['host'], i.get('name'), ', '.join(v.get('id') or '?' for v in i.get('volumes') or []))
              for i in summary['pending']]
    lines += ['disks pending %s/%s: %s (%s)' % (i['host'], i.get('name'), ', '.join(d or '?' for d in i.get('disks') or []),
                                                i.get('reason') or 'kept while the fleet index was incomplete')
              for i in summary['disks_pending']]
    lines += ['NOT SWEPT %s: %s' % (h, summary['not_swept'][h]) for h in sorted(summary['not_swept'])]
    if summary['next']:
        lines.append('next to expire: %s/%s at %s' % (summary['next']['host'], summary['next'].get('name'),
                                                      summary['next'].get('reclaim_at')))
    summary['lines'] = lines
    summary['ok'] = not summary['failed'] and not summary['not_swept']
    return summary
