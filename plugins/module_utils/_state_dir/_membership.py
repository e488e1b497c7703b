# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""fleet.json: the declared fleet each host of the state_dir was last run in with its slice of the fleet index.

Rule 12 of docs/rules.md: a run over part of the fleet (ad hoc ``ansible -m``, a play without the index) deletes
nothing another host could reach. A module cannot see the inventory, so a host learns that it belongs to a fleet from
the first run that hands it a bound slice; from then on a run there without a slice works as with an incomplete index.
One entry per host (full hostname), as clock.json: a state_dir shared by several hypervisors keeps each one's apart.
Removing a host's entry (or the file) takes the host out of the fleet. Written atomically under the journal lock,
only when the entry changes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._files import read_host_entries, write_atomic
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._layout import FLEET

MAX_BYTES = 1024 * 1024


class FleetMembership(object):
    """Mixed into StateDir (needs ``path``, ``temp`` and ``_journal_locked``)."""

    def _fleet_entries(self):
        return read_host_entries(self.path, FLEET, 'fleet membership file', MAX_BYTES, StateDirError)

    def read_membership(self, host_key):
        """The fleet ``host_key`` was last run in with a slice ({'fleet', 'hosts', 'since'}), or None."""
        entry = self._fleet_entries().get(host_key)
        return entry if isinstance(entry, dict) else None

    def write_membership(self, host_key, entry):
        """Record ``entry`` for ``host_key`` unless its fleet and size are recorded already; True when written."""
        with self._journal_locked():
            entries = self._fleet_entries()
            old = entries.get(host_key)
            if isinstance(old, dict) and all(old.get(k) == entry.get(k) for k in ('fleet', 'hosts')):
                return False
            entries[host_key] = entry
            write_atomic(self.temp, self.path, FLEET, json.dumps(entries, sort_keys=True).encode('utf-8'))
            return True
