# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Fleet-wide views for the roles, computed on the control node from what each hypervisor reported.

fleet_state builds the state_facts role's fact from every host's vm_info;
fleet_locate finds named domains across the fleet; quota_check checks a batch
of restores against per-project limits with the same code vm_restore uses
(module_utils/_quota.py); reclaim_summary folds every host's vm_reclaim result
into one summary; fleet_index tells, per domain, which copy is authoritative
(rule 9) and, per disk, every domain of the play using it (rule 10), and
fleet_index_for gives one host its part of it. Each raises AnsibleFilterError with a message for the
operator, so a role fails before anything changes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import functools
import gc
import hashlib
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota
from ansible_collections.deferred.libvirt.plugins.module_utils import _record

# What the fleet fact keeps of each vm_info record (the full records stay in each host's registered result).
INSTANCE_KEYS = ('name', 'uuid', 'project', 'user', 'vm_state', 'task_state', 'power_state', 'vcpus', 'memory_mb',
                 'deleted_at', 'reclaim_at', 'terminated_at', 'locked', 'protected', 'managed', 'anomalies',
                 'metadata_error')
RESOURCES = _quota.RESOURCES


def _without_gc_pauses(fn):
    """Run ``fn`` with the cyclic garbage collector paused (and restored after, as it was).

    Over a large fleet the inputs are millions of objects, and each full
    collection that the filter's own allocations trigger walks all of them:
    at 1,000 hosts x 50 domains that was 60% of fleet_state's time and 90% of
    fleet_locate's (bench/, control node). The filters make no reference
    cycles; what they drop is freed by reference counting as usual.
    """
    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        enabled = gc.isenabled()
        gc.disable()
        try:
            return fn(*args, **kwargs)
        finally:
            if enabled:
                gc.enable()
    return wrapper


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


@_without_gc_pauses
def _reported(hostvars, host, result_var):
    """(the host's vm_info result, None), or (None, why it did not report)."""
    result = _host_vars(hostvars, host).get(result_var)
    if result and not result.get('failed') and not result.get('unreachable') and 'instances' in result:
        return result, None
    if result and result.get('msg'):
        return None, to_text(result.get('msg'))
    if result and result.get('unreachable'):
        return None, 'unreachable'
    return None, 'did not report'


@_without_gc_pauses
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
        result, why = _reported(hostvars, host, result_var)
        if why:
            fleet['missing'][host] = why
            continue
        same = _alias_of(first_of, _identity_of(result, host, None), host, result['instances'])
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
        lines.append('trash %s/%s (project %s): deleted_at %s, reclaim_at %s, %s%s' % (
            item['host'], item['name'], item.get('project') or 'none', item.get('deleted_at'), item.get('reclaim_at'),
            _when(item.get('expires_in')), ' [%s]' % '; '.join(flags) if flags else ''))
    for item in fleet['anomalies']:
        lines.append('ANOMALY %s/%s: %s' % (item['host'], item['name'],
                                            item.get('metadata_error') or '; '.join(item.get('anomalies') or [])))
    return lines


def _trash_order(item):
    return (item.get('reclaim_at') or '', item.get('host') or '', item.get('name') or '')


@_without_gc_pauses
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
    by_name, by_uuid = {}, {}
    for position, item in enumerate(instances):
        by_name.setdefault(item.get('name'), []).append(position)
        by_uuid.setdefault((item.get('uuid') or '').lower(), []).append(position)
    found, missing, ambiguous, foreign = [], [], [], []
    seen = set()
    for key in wanted:
        # In fleet order, each domain once (its name may also be another's UUID).
        hits = sorted(set(by_name.get(key, ())) | set(by_uuid.get(key.lower(), ())))
        matches = [instances[i] for i in hits]
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


@_without_gc_pauses
def quota_check(fleet, limits, names, project=None, index=None):
    """Check restoring the named domains against per-project ``limits`` with fleet usage (soft-deleted excluded).

    Returns fits, over (each with project, resource, limit, usage, request),
    message, the request and usage per project, and the plan: by_host (UUIDs
    to restore on each host) and noop (named domains that are not soft-deleted).
    """
    located = fleet_locate(fleet, names, project, index)
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


@_without_gc_pauses
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


# -- the fleet index: rule 9 (one authoritative copy) and rule 10 (shared storage) -----------------------------

# Power states in which a QEMU process holds the guest: such a copy is the one that runs, whatever its record says.
LIVE_POWER_STATES = ('running', 'paused', 'blocked', 'pmsuspended', 'shutdown')


def _identity_of(result, host, identities):
    """The libvirt identity ({uuid, hostname}) of inventory host ``host``: from its vm_info result, else from
    ``identities``, else None (then a record naming it is matched by hostname against the inventory name)."""
    ident = result.get('hypervisor') or (identities or {}).get(host)
    if not ident:
        return None
    return {'uuid': (ident.get('uuid') or '').lower() or None, 'hostname': ident.get('hostname')}


def _same_host(record_host, ident, inventory_name):
    """Whether a record's ``host`` names the hypervisor ``ident`` (inventory host ``inventory_name``)."""
    if not record_host:
        return None  # a record written before hosts were named: it names nobody
    # The same host UUID, or else the same hostname: libvirt makes up a new host UUID at every start where there is
    # no SMBIOS UUID (nor host_uuid in libvirtd.conf), and the hypervisors of a fleet have distinct hostnames.
    name = record_host.get('hostname')
    if ident and ident.get('uuid') and record_host.get('uuid'):
        if ident['uuid'] == record_host['uuid'].lower():
            return True
        own = ident.get('hostname')
        return bool(own and name) and (name == own or name.split('.')[0] == own.split('.')[0])
    candidates = set([inventory_name, inventory_name.split('.')[0]])
    if ident and ident.get('hostname'):
        candidates.update([ident['hostname'], ident['hostname'].split('.')[0]])
    return name in candidates or (name or '').split('.')[0] in candidates


def _named_host(record_host, identities):
    """The inventory host a record's ``host`` names, None when it is no host of the play."""
    for inv_host, ident in identities:
        if _same_host(record_host, ident, inv_host):
            return inv_host
    return None


def _copy_text(copy_):
    return '%s/%s (%s, power %s, generation %s)' % (
        copy_['host'], copy_['name'], copy_.get('vm_state'), copy_.get('power_state'), copy_.get('generation'))


def _decide(copies):
    """(authoritative copy or None, why) for the copies of one UUID, by rule 9.

    A copy that runs wins; two that run are a conflict with no winner. Otherwise the copies whose record names
    their own host, newest generation first; if none does, the newest generation. A tie is no winner: every
    copy is then stale, so nothing of that domain is reclaimed until an operator settles it.
    """
    live = [c for c in copies if c.get('power_state') in LIVE_POWER_STATES]
    if len(live) == 1:
        return live[0], 'it runs'
    if len(live) > 1:
        return None, 'it runs on more than one host: %s' % ', '.join(sorted(c['host'] for c in live))
    own = [c for c in copies if c['names_own_host']]
    pool, why = (own, 'its record names its own host') if own else (copies, 'no copy\'s record names its own host')
    if len(copies) == 1:
        only = copies[0]
        if only['names_own_host'] is False and only['record_host_in_play'] is None:
            return None, ('its record names %s, which is no host of this play: the copy there cannot be ruled out'
                          % ((only.get('record_host') or {}).get('hostname') or 'an unknown host'))
        return only, 'it is the only copy in the play'
    best = max(c.get('generation') or 0 for c in pool)
    newest = [c for c in pool if (c.get('generation') or 0) == best]
    if len(newest) > 1:
        return None, '%s and the copies tie at generation %d: %s' % (why, best, ', '.join(_copy_text(c) for c in newest))
    if len(pool) == 1 and own:
        return newest[0], why
    return newest[0], '%s; it has the newest record (generation %d)' % (why, best)


# How many other users of a shared disk a host's slice of the fleet index names, and a printed line: enough to keep
# the disk and say why, bounded when one image is attached to thousands of domains.
SLICE_REFERENCES = 12
LINE_REFERENCES = 10


def _bounded(refs):
    """At most SLICE_REFERENCES references, each of another domain (UUID): the host's operation leaves out its own
    domain's, so with copies of one domain on many hosts the other domains must not be the ones cut."""
    kept, seen = [], set()
    for ref in refs:
        if ref['uuid'] in seen:
            continue
        seen.add(ref['uuid'])
        kept.append(ref)
        if len(kept) == SLICE_REFERENCES:
            break
    return kept


def _disk_keys(disk):
    """The identities under which a disk is indexed: its path, its pool volume, its file (device and inode)."""
    keys = []
    if disk.get('path'):
        keys.append('path:%s' % disk['path'])
    if disk.get('pool') and disk.get('volume'):
        keys.append('volume:%s/%s' % (disk['pool'], disk['volume']))
    if disk.get('st_dev') is not None and disk.get('st_ino') is not None:
        keys.append('file:%s:%s' % (disk['st_dev'], disk['st_ino']))
    return keys


@_without_gc_pauses
def fleet_index(hostvars, hosts, result_var='state_facts_vm_info', identities=None):
    """The fleet index of one play, from every host's vm_info result: who holds each domain, who uses each disk.

    Per UUID its copies, the authoritative one by rule 9 and the stale ones with where the other copies live;
    per disk identity (path, pool volume, and device + inode where vm_info reports them) every host and domain
    referencing it (rule 10); and per host the slice an operation there needs (``hosts[HOST]``: its stale copies
    and its disks that another domain references). Built once per play, in one pass over every record.
    """
    index = {'hosts': {}, 'missing': {}, 'complete': True, 'domains': {}, 'stale': [], 'conflicts': [],
             'disks': {}, 'shared_disks': [], 'aliases': {}, 'lines': []}
    reported = []
    copies_by_uuid = {}
    first_of = {}  # hypervisor identity -> (inventory host, its UUIDs)
    for host in hosts or []:
        host = to_text(host)
        result, why = _reported(hostvars, host, result_var)
        if why:
            index['missing'][host] = why
            continue
        ident = _identity_of(result, host, identities)
        index['hosts'][host] = {'hypervisor': ident, 'stale': {}, 'shared_disks': {}, 'complete': True}
        same = _alias_of(first_of, ident, host, result['instances'])
        if same is not None:
            index['aliases'][host] = same  # the same hypervisor under a second inventory name: its domains once
            continue
        reported.append((host, ident, result['instances']))
    identities_list = [(h, i) for h, i, dummy in reported]
    for host, ident, views in reported:
        for view in views:
            uuid = (view.get('uuid') or '').lower()
            if not uuid or view.get('vm_state') == 'deleted':
                continue  # a tombstone holds no definition and no disk
            record_host = view.get('host')
            names_own = _same_host(record_host, ident, host) if view.get('managed') else None
            copy_ = {'host': host, 'name': view.get('name'), 'uuid': uuid, 'vm_state': view.get('vm_state'),
                     'task_state': view.get('task_state'), 'power_state': view.get('power_state'),
                     'generation': view.get('generation'), 'record_host': record_host, 'names_own_host': names_own,
                     # Which host of the play the record names: asked only of a record that does not name its own
                     # (a migrated or copied definition), so a healthy fleet makes no search per domain.
                     'record_host_in_play': (host if names_own else _named_host(record_host, identities_list))
                     if record_host else None}
            copies_by_uuid.setdefault(uuid, []).append(copy_)
            for disk in view.get('disks') or []:
                ref = {'host': host, 'name': view.get('name'), 'uuid': uuid, 'target': disk.get('target'),
                       'path': disk.get('path')}
                for key in _disk_keys(disk):
                    index['disks'].setdefault(key, []).append(ref)
    for uuid, copies in copies_by_uuid.items():
        copies.sort(key=lambda c: c['host'])
        winner, why = _decide(copies)
        entry = {'copies': copies, 'authoritative': winner['host'] if winner else None, 'why': why, 'stale': []}
        index['domains'][uuid] = entry
        if len(copies) == 1 and winner is not None:
            continue
        for copy_ in copies:
            if copy_ is winner:
                continue
            others = [dict((k, o[k]) for k in ('host', 'name', 'vm_state', 'power_state', 'generation'))
                      for o in copies if o is not copy_]
            if winner is not None:
                reason = 'stale copy: the authoritative copy is %s (%s)' % (_copy_text(winner), why)
            else:
                reason = 'no authoritative copy (%s)' % why
            stale = {'host': copy_['host'], 'name': copy_['name'], 'uuid': uuid, 'reason': reason,
                     'authoritative': winner['host'] if winner else None, 'others': others,
                     'record_host': copy_['record_host']}
            entry['stale'].append(stale)
            index['stale'].append(stale)
            index['hosts'][copy_['host']]['stale'][uuid] = stale
        if winner is None:
            index['conflicts'].append({'uuid': uuid, 'why': why, 'hosts': [c['host'] for c in copies]})
    for key, refs in index['disks'].items():
        first = {}  # (host, uuid) -> its first reference, in order
        for ref in refs:
            first.setdefault((ref['host'], ref['uuid']), ref)
        if len(first) < 2:
            continue
        index['shared_disks'].append({'disk': key, 'references': refs})
        by_host = {}
        for holder in first:
            by_host.setdefault(holder[0], []).append(holder)
        for host, own in by_host.items():
            # The other domains referencing it, as this host's operations see them. One of its own domains is another's
            # user too; a few names are enough to keep the disk and say why (an ISO image every domain of a large fleet
            # has attached would otherwise be listed in full for every host).
            others = (ref for holder, ref in first.items() if len(own) > 1 or holder != own[0])
            index['hosts'][host]['shared_disks'][key] = _bounded(others)  # reads only as far as it needs
    for alias, host in index['aliases'].items():
        # An operation run through the second name works on the same hypervisor: it gets the same slice.
        index['hosts'][alias] = dict(index['hosts'][host], alias_of=host)
    if index['missing']:
        index['complete'] = False
        for entry in index['hosts'].values():
            entry['complete'] = False
    index['shared_disks'].sort(key=lambda d: d['disk'])
    index['stale'].sort(key=lambda s: (s['host'], s['name'] or ''))
    # Every hypervisor of the play, once: each host's slice carries it (a Cinder attachment another one holds is
    # never detached), and building it per slice made the slices cost hosts x hosts.
    index['hypervisors'] = [dict(e['hypervisor'], host=h) for h, e in sorted(index['hosts'].items())
                            if e.get('hypervisor') and not e.get('alias_of')]
    index['lines'] = _index_lines(index)
    return index


def _alias_of(first_of, ident, host, views):
    """The inventory host already indexed that is the very hypervisor ``host`` is, else None (and ``host`` is noted).

    Two inventory names lead to one libvirtd when both report the same host UUID and hostname and the same domains:
    indexing both would make every domain two tied copies (rule 9 then keeps all of them for ever) and every disk one
    shared with itself. An identity without a UUID, or the same identity with other domains (two hosts cloned with
    one host_uuid), is never merged: then each is indexed as a host of its own, and ties keep what they hold.
    """
    if not ident or not ident.get('uuid') or not ident.get('hostname'):
        return None
    key = (ident['uuid'], ident['hostname'])
    uuids = frozenset((v.get('uuid') or '').lower() for v in views)
    if key not in first_of:
        first_of[key] = (host, uuids)
        return None
    first, seen = first_of[key]
    return first if seen == uuids else None


def _index_lines(index):
    lines = ['fleet index: %d domain(s) on %d host(s), %d stale copy(ies), %d conflict(s), %d shared disk(s)' % (
        len(index['domains']), len(index['hosts']), len(index['stale']), len(index['conflicts']),
        len(index['shared_disks']))]
    for alias in sorted(index['aliases']):
        lines.append('host %s is the same hypervisor as %s (same host UUID, hostname and domains): its domains are '
                     'counted once' % (alias, index['aliases'][alias]))
    for host in sorted(index['missing']):
        lines.append('host %s: DID NOT REPORT (%s): a copy or a disk user there cannot be ruled out'
                     % (host, index['missing'][host]))
    for item in index['stale']:
        lines.append('STALE %s/%s (%s): %s' % (item['host'], item['name'], item['uuid'], item['reason']))
    for item in index['conflicts']:
        lines.append('CONFLICT %s on %s: %s' % (item['uuid'], ', '.join(item['hosts']), item['why']))
    for item in index['shared_disks']:
        refs = item['references']
        lines.append('shared disk %s: %s%s' % (item['disk'], ', '.join(
            '%s/%s' % (r['host'], r['name']) for r in refs[:LINE_REFERENCES]),
            ' and %d more' % (len(refs) - LINE_REFERENCES) if len(refs) > LINE_REFERENCES else ''))
    return lines


@_without_gc_pauses
def fleet_index_for(index, host):
    """The slice of the fleet index an operation on ``host`` needs (its stale copies, its shared disks, and whether
    every host of the play reported), small enough to pass as a module option."""
    if not isinstance(index, dict) or 'hosts' not in index:
        raise AnsibleFilterError('the fleet index is missing: build it with deferred.libvirt.fleet_index first')
    host = to_text(host)
    entry = index['hosts'].get(host)
    if entry is None:
        raise AnsibleFilterError('host %s is not in the fleet index (%s)' % (
            host, 'it did not report: %s' % index['missing'][host] if host in index.get('missing', {})
            else 'it is not one of the hosts it was built from'))
    # Every hypervisor of the play: a Cinder attachment one of the others holds is never detached by this host.
    hypervisors = index.get('hypervisors') or []
    return {'host': host, 'hypervisor': entry['hypervisor'], 'complete': entry['complete'],
            'missing': sorted(index.get('missing') or {}), 'stale': entry['stale'], 'shared_disks': entry['shared_disks'],
            'hypervisors': hypervisors}


# -- the restore onto another host: does the target see every disk, as the same file? ------------------------------

def restore_move_plan(located, hostvars, target, result_var='state_facts_vm_info'):
    """What restoring the located domains on ``target`` moves: per domain on another host, its disk paths, and
    the (host, path) pairs to stat on both the source and the target before anything changes.

    ``located`` is fleet_locate's or quota_check's result (instances with their host). Returns ``moves``
    (host, name, uuid, paths), ``by_source`` (source host -> UUIDs), ``local`` (UUIDs already on the target) and
    ``stats`` (host, path, role: source or target).
    """
    target = to_text(target)
    if target not in (hostvars or {}):
        raise AnsibleFilterError('restore_host %s is no host of the inventory; nothing was changed' % target)
    plan = {'target': target, 'moves': [], 'by_source': {}, 'local': [], 'stats': []}
    for item in (located or {}).get('instances') or (located or {}).get('restore') or []:
        if item.get('vm_state') not in (None, 'soft_deleted'):
            continue
        if item['host'] == target:
            plan['local'].append(item['uuid'])
            continue
        result = _host_vars(hostvars, item['host']).get(result_var) or {}
        views = [v for v in result.get('instances') or [] if (v.get('uuid') or '').lower() == item['uuid'].lower()]
        if not views:
            raise AnsibleFilterError('%s (%s) is not in the vm_info result of %s; nothing was changed'
                                     % (item.get('name'), item['uuid'], item['host']))
        paths = []
        for disk in views[0].get('disks') or []:
            if disk.get('path') and disk['path'] not in paths:
                paths.append(disk['path'])
        plan['moves'].append({'host': item['host'], 'name': item.get('name'), 'uuid': item['uuid'], 'paths': paths})
        plan['by_source'].setdefault(item['host'], []).append(item['uuid'])
        for path in paths:
            plan['stats'].append({'host': item['host'], 'path': path, 'role': 'source', 'uuid': item['uuid']})
            plan['stats'].append({'host': target, 'path': path, 'role': 'target', 'uuid': item['uuid']})
    return plan


def _stat_of(results, host, path):
    for result in results or []:
        item = result.get('item') or {}
        if item.get('host') == host and item.get('path') == path:
            if result.get('failed') or result.get('unreachable') or 'stat' not in result:
                return None, to_text(result.get('msg') or 'could not be read')
            return result['stat'], None
    return None, 'was not checked'


def restore_move_check(plan, stat_results):
    """Whether the target of ``plan`` sees every disk of every move as the same file its source does (the same
    inode, size and modification time: a copy, or another file at the same path, is not the same file).

    ``stat_results`` are the results of ansible.builtin.stat run on each of ``plan.stats`` (delegated to its host).
    Returns ok, problems (one per disk) and message (naming the disks and the target, ending in "nothing was
    changed" when not ok).
    """
    target = plan['target']
    problems = []
    for move in plan.get('moves') or []:
        for path in move['paths']:
            source, why_source = _stat_of(stat_results, move['host'], path)
            there, why_there = _stat_of(stat_results, target, path)
            what = '%s (disk of %s on %s)' % (path, move.get('name') or move['uuid'], move['host'])
            if source is None or not source.get('exists'):
                problems.append('%s: %s on %s itself' % (what, why_source or 'missing', move['host']))
            elif there is None:
                problems.append('%s: %s on %s' % (what, why_there, target))
            elif not there.get('exists'):
                problems.append('%s: missing on %s' % (what, target))
            else:
                differs = [k for k in ('inode', 'size', 'mtime') if source.get(k) != there.get(k)]
                if differs:
                    problems.append('%s: on %s it is another file (%s differ)' % (what, target, ', '.join(differs)))
    if problems:
        message = ('cannot restore onto %s: it does not see every disk as the same file: %s; nothing was changed'
                   % (target, '; '.join(problems)))
    else:
        message = 'restore onto %s: %d domain(s) move there; every disk is the same file on both hosts' % (
            target, len(plan.get('moves') or []))
    return {'ok': not problems, 'problems': problems, 'message': message}


def quota_lock_name(project):
    """The file name of a project's quota lock: readable, and distinct for projects a path could not tell apart."""
    text = to_text(project) if project else 'none'
    readable = re.sub(r'[^A-Za-z0-9._-]', '_', text)[:64]
    return 'quota-%s-%s.lock' % (readable, hashlib.sha1(text.encode('utf-8')).hexdigest()[:8])
