# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What one host's operation knows of the fleet (spec rules 9 and 10): stale copies, shared disks, other hypervisors.

The roles build the fleet index once per play on the control node
(``deferred.libvirt.fleet_index``) and hand each host its slice
(``fleet_index_for``) as the ``fleet`` option. Without it (a single-host ad
hoc call) the record's own ``host`` decides which copy is authoritative, and
the result says so.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

ARGS = dict(
    fleet=dict(type='dict'),
)


def _names(identity):
    hostname = (identity or {}).get('hostname')
    return set([hostname, hostname.split('.')[0]]) if hostname else set()


class FleetView(object):
    """One host's view of the fleet: ``fleet`` is fleet_index_for's output (or None), ``me`` this host's identity."""

    def __init__(self, fleet, me):
        self.fleet = fleet if isinstance(fleet, dict) else None
        self.me = me or {}
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

    def stale(self, view):
        """Why the copy ``view`` (vm_info's) describes is a stale copy, with where the other copies live; else None."""
        uuid = (view.get('uuid') or '').lower()
        if self.given:
            entry = self._stale.get(uuid)
            return dict(entry) if entry else None
        record_host = view.get('host')
        if not view.get('managed') or not record_host or self._names_me(record_host):
            return None
        where = record_host.get('hostname') or record_host.get('uuid')
        return {'reason': 'stale copy: its record names host %s, not this one (no fleet view was given: the record\'s '
                          'host decides; run the sweep over the whole fleet to compare the copies)' % where,
                'authoritative': where, 'others': [], 'record_host': record_host}

    def _names_me(self, record_host):
        """Whether a record's host is this one: the same host UUID, or the same hostname. libvirt makes up a new host
        UUID at every start where the machine has no SMBIOS UUID (and no host_uuid in libvirtd.conf), so the UUID
        alone would make every record of such a host look stale; hypervisors of a fleet have distinct hostnames."""
        if record_host.get('uuid') and self.me.get('uuid') and record_host['uuid'].lower() == self.me['uuid'].lower():
            return True
        return bool(_names(record_host) & _names(self.me))

    def undefine_only(self, view, stale):
        """A stale copy the sweep may undefine (definition only): soft-deleted itself, and so is every other copy, one
        of which is authoritative. With no authoritative copy (a tie, two that run) every copy is stale, and undefining
        them would leave the domain defined nowhere: they are all kept until an operator settles it."""
        if view.get('vm_state') != 'soft_deleted' or not stale or not stale.get('others') or not stale.get('authoritative'):
            return False
        return all(o.get('vm_state') == 'soft_deleted' and o.get('power_state') not in LIVE_POWER_STATES
                   for o in stale['others'])

    def disk_users(self, disk, path, me_uuid):
        """Other domains of the fleet (other UUIDs) that reference ``disk`` (a disk of vm_info's view) at ``path``."""
        keys = ['path:%s' % p for p in set([disk.get('path'), path]) if p]
        if disk.get('pool') and disk.get('volume'):
            keys.append('volume:%s/%s' % (disk['pool'], disk['volume']))
        try:
            st = os.stat(path)
            keys.append('file:%s:%s' % (st.st_dev, st.st_ino))
        except (OSError, TypeError):
            pass
        users = []
        for key in keys:
            for ref in self._shared.get(key) or []:
                if (ref.get('uuid') or '').lower() != (me_uuid or '').lower() and ref not in users:
                    users.append(ref)
        return users

    def foreign_hosts(self):
        """Hostnames of the other hypervisors of the play: a Cinder attachment they hold is never detached here."""
        names = set()
        for identity in (self.fleet or {}).get('hypervisors') or []:
            names |= _names(identity)
        return names - _names(self.me)


# Power states in which a QEMU process holds the guest.
LIVE_POWER_STATES = ('running', 'paused', 'blocked', 'pmsuspended', 'shutdown')
