# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""clock.json: what each host's last reclaim sweep saw of its clocks (wall time, boot clock, boot id), so the next
sweep can tell a stepped wall clock from time that passed (rule 11 of docs/rules.md). One entry per host (full hostname): a
state_dir shared by several hypervisors keeps each one's apart. Written atomically under the journal lock."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._files import read_host_entries, write_atomic
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._layout import CLOCK

MAX_BYTES = 1024 * 1024


class ClockFile(object):
    """Mixed into StateDir (needs ``path``, ``temp`` and ``_journal_locked``)."""

    def _clock_entries(self):
        return read_host_entries(self.path, CLOCK, 'clock file', MAX_BYTES, StateDirError)

    def read_clock(self, host_key):
        """The last sweep's clock sample of ``host_key``, or None (none yet, or not a sample this version wrote)."""
        entry = self._clock_entries().get(host_key)
        return entry if isinstance(entry, dict) else None

    def swept_hosts(self):
        """The host keys (full hostnames) that have run a sweep on this state_dir: those with a clock sample."""
        return set(key for key, entry in self._clock_entries().items() if isinstance(entry, dict))

    def write_clock(self, host_key, sample):
        with self._journal_locked():
            entries = self._clock_entries()
            entries[host_key] = sample
            write_atomic(self.temp, self.path, CLOCK, json.dumps(entries, sort_keys=True).encode('utf-8'))
