# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet index, built on the control node: rule 9 (one authoritative copy) and rule 10 (shared storage).

fleet_index tells, per domain, which copy is authoritative and, per disk, every
domain of the play using it, from every host's vm_info result; fleet_index_for
gives one host its slice, the modules' ``fleet`` option. The format both sides
read (disk keys, slice, stale copies, who reported) is module_utils/_fleet.py's;
this file decides what goes in it. Which hypervisor an inventory host is, and
whether two inventory names are one hypervisor, is here too: fleet_state counts
such a host once by the same rule.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import host_result, without_gc_pauses

# How many other users of a shared disk a host's slice of the fleet index names, and a printed line: enough to keep
# the disk and say why, bounded when one image is attached to thousands of domains.
SLICE_REFERENCES = 12
LINE_REFERENCES = 10


def identity_of(result, host, identities):
    """The libvirt identity ({uuid, hostname}) of inventory host ``host``: from its vm_info result, else from
    ``identities``, else None (then a record naming it is matched by hostname against the inventory name)."""
    ident = result.get('hypervisor') or (identities or {}).get(host)
    if not ident:
        return None
    return {'uuid': (ident.get('uuid') or '').lower() or None, 'hostname': ident.get('hostname')}


def _same_host(record_host, ident, inventory_name):
    """Whether a record's ``host`` names the hypervisor ``ident`` (inventory host ``inventory_name``).

    The records' own rule (_record.names_host: the same host UUID, or the same full hostname); and where the host's
    or the record's UUID is unknown, the inventory name stands for the host's hostname too.
    """
    if not record_host:
        return None  # a record written before hosts were named: it names nobody
    if _record.names_host(record_host, ident):
        return True
    if ident and ident.get('uuid') and record_host.get('uuid'):
        return False  # two known UUIDs and two other hostnames: another host
    name = (record_host.get('hostname') or '').lower()
    return bool(name) and name == inventory_name.lower()


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
    live = [c for c in copies if _fleet.runs(c)]
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


def _reclaim_once(copies, ident_of):
    """Whether a tie (no authoritative copy) is one the fleet settles itself: every copy soft-deleted, shut off and
    idle, on hypervisors that are told apart (two inventory hosts with one identity may be one daemon seen twice)."""
    if len(copies) < 2:
        return False
    if any(c.get('vm_state') != 'soft_deleted' or _fleet.runs(c) or c.get('task_state') is not None for c in copies):
        return False
    seen = set()
    for c in copies:
        ident = ident_of.get(c['host']) or {}
        key = (ident.get('uuid'), ident.get('hostname')) if ident.get('uuid') or ident.get('hostname') else c['host']
        if key in seen:
            return False
        seen.add(key)
    return True


def _resolve_command(copies, uuid, hostvars):
    """The exact commands that settle a tie the fleet cannot settle itself: keep one copy (the lowest inventory name's
    here, as an example) and remove the others' definitions only (their disks are the kept copy's; a running one is
    stopped first). By UUID, never by name: a name is data (rule 13)."""
    keep, drop = copies[0], copies[1:]
    commands = []
    for other in drop:
        uri = 'qemu:///system'
        try:
            uri = to_text((hostvars.get(other['host']) or {}).get('deferred_libvirt_uri') or uri)
        except Exception:  # an undefined or untemplatable variable: the default URI
            pass
        stop = 'virsh -c %s destroy %s; ' % (uri, uuid) if _fleet.runs(other) else ''
        commands.append("ansible %s -m ansible.builtin.shell -a '%svirsh -c %s undefine %s --keep-nvram --keep-tpm'"
                        % (other['host'], stop, uri, uuid))
    return ('an operator must choose the copy to keep; to keep %s\'s, remove the other definitions only: %s'
            % (keep['host'], ' && '.join(commands)))


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


def _copy_ref(ref, holder, copy_at):
    """A reference by another host's copy of the same domain (UUID), with that copy's state (``copy``): rule 10 counts it
    as a user of the disk unless every copy is reclaimed once (FleetView.disk_users). A tombstone's pending disk there
    has no copy: it stays a user."""
    copy_ = copy_at.get(holder)
    return dict(ref, copy=_fleet.other_copy(copy_) if copy_ else {'host': holder[0], 'vm_state': 'deleted'})


@without_gc_pauses
def fleet_index(hostvars, hosts, result_var='state_facts_vm_info', identities=None):
    """The fleet index of one play, from every host's vm_info result: who holds each domain, who uses each disk.

    Per UUID its copies, the authoritative one by rule 9 and the stale ones with where the other copies live;
    per disk identity (path, pool volume, and device + inode where vm_info reports them) every host and domain
    referencing it (rule 10); and per host the slice an operation there needs (``hosts[HOST]``: its stale copies
    and its disks that another domain references). Built once per play, in one pass over every record.
    """
    index = {'hosts': {}, 'missing': {}, 'complete': True, 'domains': {}, 'stale': [], 'conflicts': [],
             'disks': {}, 'shared_disks': [], 'aliases': {}, 'lines': [], 'chain_errors': [],
             # When it was built (UTC): every slice carries it, and a module refuses one older than fleet_max_age.
             'built_at': _record.format_time(_record.utcnow())}
    reported = []
    waiting = []  # (host, UUID) of each tombstone whose Cinder volumes wait
    copies_by_uuid = {}
    copy_at = {}  # (inventory host, UUID) -> that copy: what a disk's other users are, for a copy of the same domain
    first_of = {}  # hypervisor identity -> (inventory host, its UUIDs)
    for host in hosts or []:
        host = to_text(host)
        result, why = host_result(hostvars, host, result_var)
        if why:
            index['missing'][host] = why
            continue
        ident = identity_of(result, host, identities)
        index['hosts'][host] = _fleet.host_entry(ident)
        same = alias_of(first_of, ident, host, result['instances'])
        if same is not None:
            index['aliases'][host] = same  # the same hypervisor under a second inventory name: its domains once
            continue
        reported.append((host, ident, result['instances']))
    identities_list = [(h, i) for h, i, dummy in reported]
    for host, ident, views in reported:
        for view in views:
            uuid = (view.get('uuid') or '').lower()
            if uuid and view.get('vm_state') == 'deleted':
                if view.get('volumes_pending'):
                    waiting.append((host, uuid))
                # A tombstone holds no definition; its disks kept while the index was incomplete (disks_pending) are
                # still its own until a sweep deletes them: another domain using one makes it shared, so that sweep
                # sees the user and keeps it.
                for disk in view.get('disks_pending') or []:
                    ref = _fleet.disk_reference(host, view, uuid, disk)
                    for key in _fleet.disk_keys(disk):
                        index['disks'].setdefault(key, []).append(ref)
                continue
            if not uuid:
                continue
            record_host = view.get('host')
            names_own = _same_host(record_host, ident, host) if view.get('managed') else None
            copy_ = {'host': host, 'name': view.get('name'), 'uuid': uuid, 'vm_state': view.get('vm_state'),
                     'task_state': view.get('task_state'), 'power_state': view.get('power_state'),
                     'generation': view.get('generation'), 'reclaim_at': view.get('reclaim_at'),
                     'record_host': record_host, 'names_own_host': names_own,
                     # Which host of the play the record names: asked only of a record that does not name its own
                     # (a migrated or copied definition), so a healthy fleet makes no search per domain.
                     'record_host_in_play': (host if names_own else _named_host(record_host, identities_list))
                     if record_host else None}
            copies_by_uuid.setdefault(uuid, []).append(copy_)
            copy_at[(host, uuid)] = copy_
            for disk in view.get('disks') or []:
                if disk.get('backing_chain_error'):
                    index['chain_errors'].append({'host': host, 'name': view.get('name'), 'uuid': uuid,
                                                  'target': disk.get('target'), 'error': disk['backing_chain_error']})
                for keys, ref in _fleet.disk_references(host, view, uuid, disk):  # the disk and its backing files
                    for key in keys:
                        index['disks'].setdefault(key, []).append(ref)
    ident_of = dict(identities_list)
    for uuid, copies in copies_by_uuid.items():
        copies.sort(key=lambda c: c['host'])
        winner, why = _decide(copies)
        tie = winner is None and _reclaim_once(copies, ident_of)
        if tie:
            # Rule 9's last sentence: every copy is in the trash and shut off, and none is newer. The fleet reclaims the
            # domain once: the lowest inventory name reclaims its copy (disks deleted once), the others lose their
            # definition only; each host's sweep still waits until every copy has expired (FleetView.tie_waits).
            winner = copies[0]
            why = ('%s; every copy is soft-deleted and shut off, so the fleet reclaims it once, on %s (the lowest '
                   'inventory name), and the other copies lose their definition only' % (why, winner['host']))
            index['hosts'][winner['host']]['reclaim_here'][uuid] = {
                'reason': why, 'others': [_fleet.other_copy(o) for o in copies if o is not winner]}
        entry = {'copies': copies, 'authoritative': winner['host'] if winner else None, 'why': why, 'stale': []}
        index['domains'][uuid] = entry
        if len(copies) > 1:
            # Each host holding a copy names the other copies' hosts in its slice, the authoritative one too: a Cinder
            # attachment a stale copy's host holds is that host's, never detached here.
            for copy_ in copies:
                index['hosts'][copy_['host']].setdefault('peers', set()).update(
                    o['host'] for o in copies if o['host'] != copy_['host'])
        if len(copies) > 1:
            # Each copy's host learns where the others are: the volumes they list wait while another copy exists.
            for copy_ in copies:
                index['hosts'][copy_['host']]['elsewhere'][uuid] = [_fleet.other_copy(o) for o in copies
                                                                    if o is not copy_]
        if len(copies) == 1 and winner is not None:
            continue
        resolve = None if winner is not None else _resolve_command(copies, uuid, hostvars)
        for copy_ in copies:
            if copy_ is winner:
                continue
            if tie:
                reason = 'tied copy: %s' % why
            elif winner is not None:
                reason = 'stale copy: the authoritative copy is %s (%s)' % (_copy_text(winner), why)
            else:
                reason = 'no authoritative copy (%s); %s' % (why, resolve)
            stale = _fleet.stale_copy(reason, winner['host'] if winner else None,
                                      [o for o in copies if o is not copy_], copy_['record_host'],
                                      host=copy_['host'], name=copy_['name'], uuid=uuid)
            if tie:
                stale['tie'] = True
            entry['stale'].append(stale)
            index['stale'].append(stale)
            index['hosts'][copy_['host']]['stale'][uuid] = stale
        if winner is None:
            index['conflicts'].append({'uuid': uuid, 'why': why, 'hosts': [c['host'] for c in copies],
                                       'resolve': resolve})
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
            # A copy of one of its own domains on another host is a user as well (rule 10: any domain on any host):
            # it carries that copy's state, for the one case it is not (a tie, every copy expired in the trash).
            own_uuids = set(u for dummy, u in own)
            others = (_copy_ref(ref, holder, copy_at) if holder[1] in own_uuids and holder[0] != host else ref
                      for holder, ref in first.items() if len(own) > 1 or holder != own[0])
            index['hosts'][host]['shared_disks'][key] = _bounded(others)  # reads only as far as it needs
    for host, uuid in waiting:
        # A terminated domain's waiting volumes: the index vouches for the copies left (none, or those elsewhere).
        index['hosts'][host]['elsewhere'][uuid] = [_fleet.other_copy(o) for o in copies_by_uuid.get(uuid) or []
                                                   if o['host'] != host]
    for alias, host in index['aliases'].items():
        # An operation run through the second name works on the same hypervisor: it gets the same slice.
        index['hosts'][alias] = dict(index['hosts'][host], alias_of=host)
    # Rule 10 through chains: what an unreadable chain reaches behind its disk is unknown, so, as for a host that did
    # not report, storage another host could reach waits (kept for now) until the chain can be read.
    index['unreadable'] = {}
    for item in index['chain_errors']:
        index['unreadable'].setdefault(item['host'], []).append(
            "the backing chain of %s's disk %s cannot be read (%s)" % (item['name'], item['target'], item['error']))
    if index['missing'] or index['unreadable']:
        index['complete'] = False
        for entry in index['hosts'].values():
            entry['complete'] = False
    index['shared_disks'].sort(key=lambda d: d['disk'])
    index['stale'].sort(key=lambda s: (s['host'], s['name'] or ''))
    # Every hypervisor of the play, once: each host's slice carries it (a Cinder attachment another one holds is
    # never detached), and building it per slice made the slices cost hosts x hosts.
    index['hypervisors'] = [dict(e['hypervisor'], host=h) for h, e in sorted(index['hosts'].items())
                            if e.get('hypervisor') and not e.get('alias_of')]
    # The fleet as a slice names it (count and digest of the sorted inventory names), once per index, not per slice.
    index['fleet_hosts'] = _fleet.fleet_hosts(set(to_text(h) for h in hosts or []))
    for entry in index['hosts'].values():
        if 'peers' in entry:
            entry['peers'] = sorted(entry['peers'])
    index['lines'] = _index_lines(index)
    return index


def alias_of(first_of, ident, host, views):
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
        lines.append('CONFLICT %s on %s: %s; %s' % (item['uuid'], ', '.join(item['hosts']), item['why'], item['resolve']))
    for item in index['chain_errors']:
        lines.append('UNREADABLE CHAIN %s/%s disk %s: %s: the files it reaches behind the disk are not indexed'
                     % (item['host'], item['name'], item['target'], item['error']))
    for item in index['shared_disks']:
        refs = item['references']
        lines.append('shared disk %s: %s%s' % (item['disk'], ', '.join(
            '%s/%s%s' % (r['host'], r['name'], ' (backing file)' if r.get('backing_of') else '')
            for r in refs[:LINE_REFERENCES]),
            ' and %d more' % (len(refs) - LINE_REFERENCES) if len(refs) > LINE_REFERENCES else ''))
    return lines


def _hypervisors_for(index, host, entry):
    """The hypervisors ``host``'s slice refers to, each once (identity and inventory host): the hosts of the other
    copies of its domains, of the other users of its shared disks and of the copies of the ties it reclaims. An
    attachment one of them holds is never detached by this host; a host that did not report is in ``missing`` (while
    the index is incomplete every other host counts as foreign, FleetView.foreign_hosts)."""
    names = set(entry.get('peers') or ())
    for stale in (entry.get('stale') or {}).values():
        names.update(o.get('host') for o in stale.get('others') or ())
    for refs in (entry.get('shared_disks') or {}).values():
        names.update(r.get('host') for r in refs or ())
    for tie in (entry.get('reclaim_here') or {}).values():
        names.update(o.get('host') for o in tie.get('others') or ())
    names.discard(host)
    names.discard(entry.get('alias_of'))
    found = []
    for name in sorted(n for n in names if n):
        other = index['hosts'].get(name)
        if other and other.get('hypervisor') and not other.get('alias_of'):
            found.append(dict(other['hypervisor'], host=name))
    return found


@without_gc_pauses
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
    # The fleet it describes: the declared group when the index names it, and the count and digest of the inventory
    # hosts it was built from (computed once when the index was built): a slice never lists the whole fleet.
    fleet = index.get('fleet') if isinstance(index.get('fleet'), str) else None
    hosts = index.get('fleet_hosts') or _fleet.fleet_hosts(set(index['hosts']) | set(index.get('missing') or {}))
    return _fleet.make_slice(host, entry, index.get('missing'), _hypervisors_for(index, host, entry), fleet=fleet,
                             built_at=index.get('built_at'), fleet_hosts=hosts,
                             gaps=_fleet.gaps(index.get('missing'), index.get('unreadable')))
