# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet index's wire format, and what one host's operation knows of the fleet (rules 9 and 10 of docs/rules.md).

The roles build the fleet index once per play on the control node
(``deferred.libvirt.fleet_index``) and hand each host its slice
(``fleet_index_for``) as the ``fleet`` option; the modules read that slice
with FleetView. Both sides import what they share from here, so the two can
never drift apart: whether a host's registered result counts as reported, the
keys a disk is known by, the shape of a host's entry, of a stale copy, of a
disk reference and of the slice, and which copy runs. Without a slice (a
single-host ad hoc call) the record's own ``host`` decides which copy is
authoritative, and the result says so.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import os

from ansible.module_utils.common.text.converters import to_text

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import format_duration
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils._states import RUNNING_POWER_STATES

# How old a slice may be before a module refuses it (the fleet_max_age option's default): a slice is a picture of the
# fleet, and the longer ago it was taken, the likelier a copy was started, moved or defined since (rule 12 of docs/rules.md).
DEFAULT_MAX_AGE = 15 * 60
# How far a slice's built_at may lie ahead of this host's clock (the control node's clock and this one's disagree).
BUILT_AT_TOLERANCE = 300

ARGS = dict(
    fleet=dict(type='dict'),
    fleet_max_age=dict(type='raw', default='15m'),
    fleet_required=dict(type='bool', default=False),
    fleet_run=dict(type='str'),
)

# The key of vm_info's domain list in its registered result: the result that holds it is a host that reported.
INSTANCES = 'instances'
# What a copy of a stale domain says of each other copy (enough to tell whether they are all in the trash).
OTHER_KEYS = ('host', 'name', 'vm_state', 'power_state', 'generation', 'reclaim_at')
# The keys of one host's slice of the index (fleet_index_for's output, the modules' ``fleet`` option).
SLICE_KEYS = ('host', 'hypervisor', 'fleet', 'built_at', 'complete', 'missing', 'gaps', 'stale', 'shared_disks', 'hypervisors',
              'reclaim_here', 'fleet_hosts', 'elsewhere')


# -- the wire format ---------------------------------------------------------------------------------------------

def reported(result, key=INSTANCES, absent='did not report', failed_counts=False):
    """(``result``, None) when a host's registered module result is one to use, else (None, why it is not).

    A result counts when it is there, the host was reachable and it holds ``key`` (vm_info's ``instances``, or
    vm_reclaim's ``summary``); a failed result counts only with ``failed_counts`` (a sweep where some domain
    failed still swept the others). Why not: the module's own message, else "unreachable", else ``absent``.
    """
    if result and not result.get('unreachable') and key in result and (failed_counts or not result.get('failed')):
        return result, None
    if result and result.get('msg'):
        return None, to_text(result['msg'])
    if result and result.get('unreachable'):
        return None, 'unreachable'
    return None, absent


def disk_keys(disk, path=None, file_id=None):
    """The identities under which a disk is indexed: its path, its pool volume, its file (device and inode).

    ``disk`` is a disk as vm_info reports it (``st_dev``/``st_ino`` when the host could stat it, ``file_path`` the
    file a pool volume resolves to), one file of its ``backing_chain`` (path and identity), or a disk as the
    hypervisor lists it; ``path`` another path it resolves to (a pool volume's file) and ``file_id`` the
    (device, inode) of that file as the operation sees it now, which wins over the reported one.
    """
    keys = []
    for each in (disk.get('path'), disk.get('file_path'), path):
        if each and 'path:%s' % each not in keys:
            keys.append('path:%s' % each)
    if disk.get('pool') and disk.get('volume'):
        keys.append('volume:%s/%s' % (disk['pool'], disk['volume']))
    dev, ino = file_id if file_id is not None else (disk.get('st_dev'), disk.get('st_ino'))
    if dev is not None and ino is not None:
        keys.append('file:%s:%s' % (dev, ino))
    return keys


def runs(copy_):
    """Whether a QEMU process holds this copy (a view, or a copy of the index): such a copy is the one that runs,
    whatever its record says (rule 9)."""
    return copy_.get('power_state') in RUNNING_POWER_STATES


def host_entry(hypervisor):
    """A reporting host's entry in the index's ``hosts``: its identity, and its part of rules 9 and 10 (``reclaim_here``:
    the tied domains, every copy in the trash, that this host reclaims once for the fleet)."""
    return {'hypervisor': hypervisor, 'stale': {}, 'shared_disks': {}, 'complete': True, 'reclaim_here': {},
            'elsewhere': {}}


def other_copy(copy_):
    """What one copy of a domain says of another copy (OTHER_KEYS)."""
    return dict((k, copy_.get(k)) for k in OTHER_KEYS)


def disk_reference(host, view, uuid, disk, backing=None):
    """One domain's use of a disk, as the index lists it under each of the disk's keys; with ``backing`` (one file of
    the disk's ``backing_chain``), its use of that file as a backing file of the disk: ``backing_of`` names the disk."""
    ref = {'host': host, 'name': view.get('name'), 'uuid': uuid, 'target': disk.get('target'), 'path': disk.get('path')}
    if backing is not None:
        ref.update(path=backing.get('path'), backing_of=disk.get('path') or disk.get('file_path'))
    return ref


def disk_references(host, view, uuid, disk):
    """[(keys, reference)] for every file a disk of vm_info's ``view`` opens: the disk itself, then each file of its
    backing chain (rule 10: a file any domain reaches, as a disk or a backing file, is never deleted)."""
    found = [(disk_keys(disk), disk_reference(host, view, uuid, disk))]
    for backing in disk.get('backing_chain') or []:
        if isinstance(backing, dict):
            found.append((disk_keys(backing), disk_reference(host, view, uuid, disk, backing)))
    return found


def describe_user(ref):
    """One reference of the index as a reason names it: 'NAME on HOST', and how it reaches the file."""
    text = '%s on %s' % (ref.get('name'), ref.get('host'))
    if ref.get('copy'):
        text += ' (a copy of this domain, %s)' % (ref['copy'].get('vm_state') or 'in no known state')
    if ref.get('backing_of'):
        text += ' (backing file of its disk %s)' % ref['backing_of']
    return text


def stale_copy(reason, authoritative, others, record_host, **where):
    """Why one copy of a domain is stale: the reason, the authoritative host (None: no copy is), the other copies
    (OTHER_KEYS of each) and the host its record names; ``where`` adds host, name and uuid in the index."""
    entry = dict(where)
    entry.update({'reason': reason, 'authoritative': authoritative,
                  'others': [other_copy(o) for o in others], 'record_host': record_host})
    return entry


def gaps(missing, unreadable=None):
    """Why an index is incomplete, one line per gap: each host that did not report, each chain a host could not read."""
    found = ['%s did not report' % host for host in sorted(missing or {})]
    for host in sorted(unreadable or {}):
        found += ['%s: %s' % (host, why) for why in unreadable[host]]
    return found


def make_slice(host, entry, missing, hypervisors, fleet=None, built_at=None, gaps=None, fleet_hosts=None):
    """Host ``host``'s slice of the index from its ``entry``, the hosts that did not report and the hypervisors its
    part of the index refers to (a Cinder attachment one of them holds is never detached by this host).

    A slice is bound (rule 12 of docs/rules.md): it names the host it is for (``host``, the inventory name, and ``hypervisor``,
    the libvirt identity that host reported), the ``fleet`` it describes (the declared group's name, else None) with
    ``fleet_hosts`` (how many inventory hosts it was built from and a digest of their sorted names: a slice stays the
    same size whatever the size of the fleet) and when the index was built (``built_at``, UTC ISO 8601). A module
    refuses a slice for another hypervisor, or older than its fleet_max_age (``check_slice``).
    """
    return {'host': host, 'hypervisor': entry['hypervisor'], 'fleet': fleet, 'built_at': built_at,
            'fleet_hosts': fleet_hosts or {},
            'complete': entry['complete'], 'missing': sorted(missing or {}), 'stale': entry['stale'],
            'shared_disks': entry['shared_disks'], 'hypervisors': hypervisors or [],
            'reclaim_here': entry.get('reclaim_here') or {},
            # Per UUID of this host with a copy on another host, or a tombstone whose Cinder volumes wait: those copies.
            'elsewhere': entry.get('elsewhere') or {},
            # Why it is incomplete (missing hosts, unreadable chains), for the operator: the results say it.
            'gaps': list(gaps if gaps is not None else ['%s did not report' % h for h in sorted(missing or {})])}


def fleet_hosts(hosts):
    """How a slice names the inventory hosts an index was built from without listing them: their count and the
    SHA-256 of their sorted names (one per line), computed once per index."""
    names = sorted(set(to_text(h) for h in hosts or ()))
    return {'count': len(names), 'digest': hashlib.sha256('\n'.join(names).encode('utf-8')).hexdigest()}


def _span(seconds):
    """A rough, readable span: 22m, 3h, 2d (whole units, rounded down), else seconds."""
    seconds = int(seconds)
    for unit, size in (('d', 86400), ('h', 3600), ('m', 60)):
        if seconds >= size:
            return '%d%s' % (seconds // size, unit)
    return '%ds' % seconds


def _fleet_text(fleet, hosts=None):
    if isinstance(fleet, list):  # a slice built before slices named the fleet by count and digest
        return 'hosts %s' % ', '.join(to_text(h) for h in fleet)
    hosts = hosts if isinstance(hosts, dict) else {}
    count = '%s host(s), digest %s' % (hosts.get('count'), to_text(hosts.get('digest'))[:12]) if hosts else ''
    if fleet in (None, ''):
        return count or 'an undeclared fleet'
    return 'group %s%s' % (to_text(fleet), ' (%s)' % count if count else '')


def _identity_text(identity):
    identity = identity or {}
    return 'hostname %s, host UUID %s' % (identity.get('hostname') or 'unknown', identity.get('uuid') or 'unknown')


def same_hypervisor(one, other):
    """Whether two libvirt identities ({uuid, hostname}) are one hypervisor, by its full hostname, else its host UUID.

    Never by a short name (hv2 and hv2.other.example are two hosts). The full hostname first: libvirt makes up a new
    host UUID at every start where the machine has no SMBIOS UUID (nor host_uuid in libvirtd.conf).
    """
    one, other = one or {}, other or {}
    if one.get('hostname') and other.get('hostname'):
        return one['hostname'].lower() == other['hostname'].lower()
    if one.get('uuid') and other.get('uuid'):
        return one['uuid'].lower() == other['uuid'].lower()
    return False


def check_slice(fleet, me, max_age=DEFAULT_MAX_AGE, now=None, run=None):
    """Refuse, before anything changes, a ``fleet`` option that is no fresh slice for this host (``me``, its libvirt
    identity): not built by fleet_index_for, built for another hypervisor, or older than ``max_age`` seconds (0: no
    age limit), or (with ``run``, the fleet workflow's run id) of another run. None (no fleet view) passes: then the
    record's own host decides. Raises DeferredError."""
    if fleet is None:
        return None
    if not isinstance(fleet, dict) or any(key not in fleet for key in ('host', 'hypervisor', 'fleet', 'built_at')):
        raise DeferredError('the fleet option is not a fleet slice built by fleet_index_for (it lacks %s): build it '
                            'with deferred.libvirt.fleet_index and deferred.libvirt.fleet_index_for(inventory_hostname) '
                            'in the same play; nothing was changed'
                            % ', '.join(k for k in ('host', 'hypervisor', 'fleet', 'built_at')
                                        if not isinstance(fleet, dict) or k not in fleet))
    if not same_hypervisor(fleet.get('hypervisor'), me):
        raise DeferredError('the fleet slice was built for %s (%s), not this host %s (%s): pass each host its own slice, '
                            'fleet_index_for(inventory_hostname); nothing was changed'
                            % (to_text(fleet.get('host')), _identity_text(fleet.get('hypervisor')),
                               (me or {}).get('hostname') or 'unknown', _identity_text(me)))
    if run not in (None, '') and to_text(fleet.get('run')) != to_text(run):
        raise DeferredError('the fleet slice of %s is from fleet run %s (built at %s), not this run %s: run the index '
                            'job of this run first; nothing was changed'
                            % (to_text(fleet.get('host')), fleet.get('run'), fleet.get('built_at'), run))
    try:
        built = _record.parse_time(fleet.get('built_at'))
    except (ValueError, TypeError, AttributeError):
        raise DeferredError('the fleet slice has no readable built_at (%r): it is not a fleet slice built by '
                            'fleet_index_for; nothing was changed' % (fleet.get('built_at'),))
    now = now or _record.utcnow()
    age = (now - built).total_seconds()
    if age < -BUILT_AT_TOLERANCE:
        raise DeferredError('the fleet slice of %s was built at %s, %s in the future of this host\'s clock: the control '
                            'node\'s clock or this one is wrong; nothing was changed'
                            % (_fleet_text(fleet['fleet'], fleet.get('fleet_hosts')), fleet['built_at'], _span(-age)))
    if max_age and age > max_age:
        raise DeferredError('the fleet slice of %s was built at %s, %s ago, older than fleet_max_age %s: a copy may have '
                            'been started, moved or defined since; rebuild the index in the same play (the state_facts '
                            'role, or the reclaim, terminate and restore playbooks do), or, if it was just built, set '
                            'this host\'s clock right: it runs ahead of the control node\'s; nothing was changed'
                            % (_fleet_text(fleet['fleet'], fleet.get('fleet_hosts')), fleet['built_at'], _span(age),
                               format_duration(max_age)))
    return fleet


def view_for(fleet, me, max_age=DEFAULT_MAX_AGE, required=False, now=None, run=None):
    """This host's FleetView from its ``fleet`` option (check_slice first).

    ``required`` (a run that depends on a fleet index handed over from another job, such as a sliced sweep): a slice
    that is missing, for another hypervisor, stale or no slice at all is not refused and not replaced by the
    single-host view either; the run goes on as with an incomplete index, which keeps every disk another host could
    reach and names why (FleetView ``unavailable``). Without ``required`` such a slice is refused (DeferredError).
    """
    if not required:
        check_slice(fleet, me, max_age, now, run)
        return FleetView(fleet, me)
    if fleet is None:
        return FleetView(None, me, unavailable='a fleet slice was required (fleet_required) but none was given')
    try:
        check_slice(fleet, me, max_age, now, run)
    except DeferredError as exc:
        why = to_text(exc)
        for tail in ('; nothing was changed', ': nothing was changed'):
            if why.endswith(tail):
                why = why[:-len(tail)]
        return FleetView(None, me, unavailable='a fleet slice was required (fleet_required) but it cannot be used: %s'
                         % why)
    return FleetView(fleet, me)


# -- one host's view of it -----------------------------------------------------------------------------------------

def _not_expired(copies, now=None):
    """The copies whose reclaim_at has not passed at ``now`` (or cannot be read: never taken for passed, rule 1)."""
    now = now or _record.utcnow()
    waiting = []
    for copy_ in copies:
        try:
            passed = _record.parse_time(copy_.get('reclaim_at')) <= now
        except (ValueError, TypeError, AttributeError):
            passed = False
        if not passed:
            waiting.append(copy_)
    return waiting


def _still_uses(copy_, now=None):
    """Whether another host's copy of a domain (a disk reference's ``copy``) keeps the domain's disks: any copy that is
    not soft-deleted, shut off and past its reclaim_at. None (this host's own reference) keeps nothing."""
    if copy_ is None:
        return False
    return copy_.get('vm_state') != 'soft_deleted' or runs(copy_) or bool(_not_expired([copy_], now))


def _names(identity):
    """The full hostname of ``identity`` (lower case: DNS names ignore case), never its short name: hv1.dc1 and
    hv1.dc2 are two hosts, and a record naming one is never the other's (a short name once made them one)."""
    hostname = (identity or {}).get('hostname')
    return set([hostname.lower()]) if hostname else set()


class FleetView(object):
    """One host's view of the fleet: ``fleet`` is fleet_index_for's output (or None), ``me`` this host's identity.

    ``unavailable`` (why a required slice cannot be used, view_for): the view is given but incomplete, knows no other
    host's disk users and tells stale copies by the record's own host only, so nothing another host could reach is
    deleted and every result says why."""

    def __init__(self, fleet, me, unavailable=None):
        self.unavailable = unavailable
        if unavailable:
            fleet = {'complete': False, 'missing': [], 'gaps': [unavailable], 'stale': {}, 'shared_disks': {},
                     'hypervisors': [], 'reclaim_here': {}, 'elsewhere': {}}
        self.fleet = fleet if isinstance(fleet, dict) else None
        self.me = me or {}
        self._elsewhere = dict(((k or '').lower(), v) for k, v in ((self.fleet or {}).get('elsewhere') or {}).items())
        self._stale = dict(((k or '').lower(), v) for k, v in ((self.fleet or {}).get('stale') or {}).items())
        self._shared = (self.fleet or {}).get('shared_disks') or {}

    @property
    def given(self):
        return self.fleet is not None

    @property
    def complete(self):
        """Every host of the play reported (always true without a fleet view: then there is only this host)."""
        return not self.given or bool(self.fleet.get('complete'))

    @property
    def missing(self):
        return list((self.fleet or {}).get('missing') or [])

    def gaps_text(self):
        """Why the index is incomplete, in one line (a host that did not report, a chain a host could not read)."""
        found = (self.fleet or {}).get('gaps') or ['%s did not report' % h for h in self.missing]
        return '; '.join(found) or 'a host did not report'

    def stale(self, view):
        """Why the copy ``view`` (vm_info's) describes is a stale copy, with where the other copies live; else None."""
        uuid = (view.get('uuid') or '').lower()
        if self.given and not self.unavailable:
            entry = self._stale.get(uuid)
            return dict(entry) if entry else None
        record_host = view.get('host')
        if not view.get('managed') or not record_host or self._names_me(record_host):
            return None
        where = record_host.get('hostname') or record_host.get('uuid')
        if self.unavailable:
            return stale_copy('stale copy: its record names host %s, not this one (%s: the record\'s host decides)'
                              % (where, self.unavailable), where, [], record_host)
        return stale_copy('stale copy: its record names host %s, not this one (no fleet view was given: the record\'s '
                          'host decides; run the sweep over the whole fleet to compare the copies)' % where,
                          where, [], record_host)

    def _names_me(self, record_host):
        """Whether a record's host is this one: the same host UUID, or the same hostname. libvirt makes up a new host
        UUID at every start where the machine has no SMBIOS UUID (and no host_uuid in libvirtd.conf), so the UUID
        alone would make every record of such a host look stale; hypervisors of a fleet have distinct hostnames."""
        return _record.names_host(record_host, self.me)

    def undefine_only(self, view, stale, now=None):
        """A stale copy the sweep may undefine (definition only): soft-deleted itself, and so is every other copy, one
        of which is authoritative. With no authoritative copy (two that run, one that is not in the trash) every copy
        is stale, and undefining them would leave the domain defined nowhere: they are all kept until an operator
        settles it. A tie the index settled (``tie``: every copy in the trash) waits until every copy has expired."""
        if view.get('vm_state') != 'soft_deleted' or not stale or not stale.get('others') or not stale.get('authoritative'):
            return False
        if not all(o.get('vm_state') == 'soft_deleted' and not runs(o) for o in stale['others']):
            return False
        return not (stale.get('tie') and _not_expired(stale['others'], now))

    def tie_waits(self, view, now=None):
        """Why this host, chosen to reclaim a tied domain once for the fleet, waits: another copy has not expired yet;
        None when it need not wait (or the domain is no tie this host reclaims)."""
        tie = ((self.fleet or {}).get('reclaim_here') or {}).get((view.get('uuid') or '').lower())
        if not tie:
            return None
        waiting = _not_expired(tie.get('others') or [], now)
        if not waiting:
            return None
        return ('%s; it waits until every copy has expired (%s)'
                % (tie.get('reason'), ', '.join('%s/%s reclaim_at %s' % (o.get('host'), o.get('name'), o.get('reclaim_at'))
                                                for o in waiting)))

    def disk_users(self, disk, path, me_uuid, now=None):
        """The other domains of the fleet that reference ``disk`` (a disk of vm_info's view) at ``path``: other UUIDs,
        and copies of this very domain on other hosts (rule 10: any domain on any host). A copy of this domain is no
        user only when it is soft-deleted, shut off and expired: the fleet reclaims a domain every copy of which is in
        the trash once (rule 9), and its other copies lose their definition only."""
        try:
            st = os.stat(path)
            file_id = (st.st_dev, st.st_ino)
        except (OSError, TypeError):
            file_id = None
        users = []
        for key in disk_keys(disk, path, file_id):
            for ref in self._shared.get(key) or []:
                if ref in users:
                    continue
                if (ref.get('uuid') or '').lower() == (me_uuid or '').lower() and not _still_uses(ref.get('copy'), now):
                    continue
                users.append(ref)
        return users

    def volumes_held(self, uuid, gone=False):
        """Why the Cinder volumes of domain ``uuid`` wait, neither detached nor deleted (rules 10 and 12), or None.

        A copy of the domain on another host lists them (an offline migration's leftover, say): they are that copy's
        too until it is gone or expired in the trash (soft-deleted, shut off, past its reclaim_at), as for its disks.
        With an incomplete index a host that did not report may hold such a copy. ``gone``: the domain is terminated
        here (its tombstone's volumes wait): only an index that names this UUID, with no copy left elsewhere, lets
        them go. Without a fleet view (a host of no declared fleet) nothing waits."""
        if not self.given:
            return None
        if self.unavailable or not self.complete:
            return ('the fleet index is incomplete (%s): a copy of this domain on another host may list them'
                    % self.gaps_text())
        copies = self._elsewhere.get((uuid or '').lower())
        if copies is None:
            return ('the fleet index does not name this terminated domain, so it cannot tell that no copy is left'
                    if gone else None)
        # A copy soft-deleted, shut off and expired loses its definition only, in the same sweep (rule 9: a stale
        # copy in the trash, or a tie this host reclaims once): it keeps no volume, as it keeps no disk.
        users = [c for c in copies if _still_uses(c)]
        if not users:
            return None
        return 'another copy of this domain lists them: %s' % ', '.join(
            '%s on %s (%s)' % (c.get('name'), c.get('host'), c.get('vm_state')) for c in users)

    def foreign_hosts(self):
        """Hostnames of the other hypervisors of the fleet: a Cinder attachment they hold is never detached here.

        While the index is incomplete a host that did not report counts as another hypervisor too, and since its
        identity may be unknown, every host that is not this one does (``every``): nothing is detached that this
        hypervisor does not hold.
        """
        names = set()
        for identity in (self.fleet or {}).get('hypervisors') or []:
            names |= _names(identity)
        names -= _names(self.me)
        if self.given and not self.complete:
            return cinder.OtherHypervisors(names | set(
                part for host in self.missing for part in (host, host.split('.')[0])), _names(self.me), every=True)
        return cinder.OtherHypervisors(names)
