# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The host's state directory, one file a concern.

- ``_layout``: what lives where in a state_dir, and the trust checks every directory and file passes;
- ``_files``: checked reads and atomic writes;
- ``_locks``: the per-domain locks (host-wide lock directory, then the state_dir's locks/);
- ``_journal``: the event journal and its rotation, and who an event names (actor, os_user);
- ``_store``: the tombstone store (pending, finished, history, the by-day and by-name indexes);
- ``_state``: ``StateDir``, which checks (or creates) a state_dir and composes the above.
"""
