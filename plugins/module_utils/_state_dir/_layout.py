# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What lives where in a state_dir, and the trust checks every directory and file of it passes.

Layout of ``state_dir`` (0700, owned by the user running the modules; a directory that is group- or
world-writable or owned by someone else is refused):
  events.jsonl                 the event journal: JSON lines, each appended whole under locks/journal.lock
  events-<UTC stamp>.jsonl     rotated journal files (same format), removed after the journal retention
  last_sweep.json              the host's last reclaim sweep (when, how long, counts, what was skipped and why),
                               written by the deferred.libvirt.reclaim role (ansible.builtin.copy, atomic) and
                               read by the report role; the modules never read or write it
  clock.json                   each host's last reclaim sweep as its clocks saw it (wall time, CLOCK_BOOTTIME,
                               boot id; by full hostname), written by vm_reclaim (atomic, under locks/journal.lock):
                               the next sweep tells a stepped wall clock from time that passed (rule 11)
  fleet.json                   per host (full hostname), the declared fleet it was last run in with its slice of
                               the fleet index, written by the modules that take one (``_membership``): a run
                               there without a slice then keeps what another host could reach (rule 12)
  locks/<uuid>.lock            flock() files of the state_dir's per-domain locks
  locks/journal.lock           serialises journal appends with its rotation
  tombstones/pending/<uuid>.json    tombstones with work left (not undefined yet, or Cinder work pending):
                                    the only ones an operation reads
  tombstones/finished/<uuid>.json   tombstones whose terminate is complete, kept for the tombstone retention
  tombstones/history/<uuid>.<stamp>.json  earlier tombstones of a UUID that was terminated again
  tombstones/by-day/<YYYY-MM-DD>/<uuid>[.<stamp>]  empty markers: which finished tombstones finished on that day,
                                    so the retention sweep reads only the days past the retention
  tombstones/names/<sha256(name)[:32]>/<uuid>  empty markers: finished tombstones by domain name
  tombstones/tmp/              temporary files of writes in progress (renamed into place when whole)
  tombstones/<uuid>.json       the flat layout of earlier versions: still read, moved into the layout above
                               by the first run that can write

Beside it, the host-wide lock directory (``_locks``: /run/lock/deferred-libvirt for root) holds
<uuid>.lock files too; a lock file names the libvirt connection whose domain it locks.

Nothing read back from disk is trusted: directories and files must be ours, not links, not
writable by others; a tombstone must be a JSON object whose uuid is a UUID equal to its file
name and whose fields have the types this collection writes. Anything else is reported, never used.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import re
import stat

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError

JOURNAL = 'events.jsonl'
ROTATED = re.compile(r'^events-(\d{8}T\d{6}Z)(?:-(\d+))?\.jsonl$')
# The role's record of the last sweep: named here so the layout is whole; no module touches it.
LAST_SWEEP = 'last_sweep.json'
CLOCK = 'clock.json'
FLEET = 'fleet.json'
LOCKS = 'locks'
JOURNAL_LOCK = 'journal.lock'
TOMBSTONES = 'tombstones'
PENDING = 'pending'
FINISHED = 'finished'
HISTORY = 'history'
BY_DAY = 'by-day'
NAMES = 'names'
TEMP = 'tmp'
HISTORY_RE = re.compile(r'^([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})\.(\d{8}T\d{6}Z(?:-\d+)?)$')
DAY_RE = re.compile(r'^\d{4}-\d{2}-\d{2}$')


def mode_problem(st):
    """How a file or directory is writable by others (group, world), or None when only its owner can write."""
    bits = st.st_mode & 0o022
    if bits:
        who = 'group- and world' if bits == 0o022 else 'group' if bits & 0o020 else 'world'
        return 'is %s-writable (mode %04o)' % (who, stat.S_IMODE(st.st_mode))
    return None


def check_dir_stat(st, path, what):
    """StateDirError unless ``st`` is a directory (not a link) of ours that nobody else can write to."""
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError('%s %s is a symbolic link; refusing to use it' % (what, path))
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError('%s %s is not a directory' % (what, path))
    if st.st_uid != os.geteuid():
        raise StateDirError('%s %s is owned by uid %d, not by the user running the module (uid %d)'
                            % (what, path, st.st_uid, os.geteuid()))
    problem = mode_problem(st)
    if problem:
        raise StateDirError('%s %s %s: anyone who can write there can plant files the module trusts; make it '
                            'private (chmod 0700 %s)' % (what, path, problem, path))


def check_dir(path, what):
    check_dir_stat(os.lstat(path), path, what)


def check_file_stat(st, path, what):
    """StateDirError unless ``st`` is a regular file of ours, with one link, that nobody else can write to."""
    if stat.S_ISLNK(st.st_mode):
        raise StateDirError('%s %s is a symbolic link; refusing to use it' % (what, path))
    if not stat.S_ISREG(st.st_mode):
        raise StateDirError('%s %s is not a regular file' % (what, path))
    if st.st_uid != os.geteuid():
        raise StateDirError('%s %s is owned by uid %d, not by the user running the module (uid %d)'
                            % (what, path, st.st_uid, os.geteuid()))
    if st.st_nlink > 1:
        # A hard link planted here would make us write into (or truncate) a file elsewhere.
        raise StateDirError('%s %s has %d hard links; refusing to write through it' % (what, path, st.st_nlink))
    problem = mode_problem(st)
    if problem:
        raise StateDirError('%s %s %s; make it private (chmod 0600 %s)' % (what, path, problem, path))


def check_file(path, what):
    """A file we append to or lock must be ours and real: a link could make us write (or lock) elsewhere."""
    check_file_stat(os.lstat(path), path, what)
