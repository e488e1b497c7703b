# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""8. Tombstones: a run's cost with few and with many finished tombstones in the state_dir (issue 17).

The state_dir gets N finished tombstones (terminated and settled over the
last 80 days, all within the default 90-day retention, so the sweep removes
none of them), 3 pending ones, and the day and name index entries the
collection keeps for them. They are written straight into the layout the
collection reads (tombstones/finished/, by-day/, names/), without fsync, so
that 100,000 of them take seconds to make rather than minutes.

Measured, with the page cache warm (a cold cache would need dropping every
cache of a shared host):
- in process: what a sweep does with the state_dir - open and check it,
  list the pending tombstones, look up a terminated domain by name (what
  vm_terminate does for names it is given), and apply the retention
  (nothing expired): median of the repetitions;
- the whole vm_reclaim module as AnsiballZ runs it (interpreter start to its
  JSON) against the real hypervisor, the two sizes measured in turns, scoped to a project with no domains so
  that the hypervisor's own domains do not enter the figure;
- for reference, how earlier versions read tombstones: every file of a flat
  tombstones/ directory, at 10,000.

The figure is the ratio of the time with the largest N to the time with the
smallest; the target is within 1.2x.
"""

import datetime
import hashlib
import json
import os
import shutil
import time

import lib

NAME = '8 tombstones'
SIZES = {'full': [100, 100000], 'quick': [100, 10000]}
TARGET_RATIO = 1.2
REPS = 5
IN_PROCESS_REPS = 15
FLAT_REFERENCE = 10000


def _uuid(n):
    return '%08x-5eed-4000-8000-%012x' % (n, n)


def make_state_dir(path, n_finished, flat=False):
    """A state_dir with ``n_finished`` finished tombstones (and 3 pending), in the collection's layout or flat."""
    shutil.rmtree(path, ignore_errors=True)
    tomb_dir = os.path.join(path, 'tombstones')
    for sub in ('', 'locks', 'tombstones', 'tombstones/pending', 'tombstones/finished', 'tombstones/history',
                'tombstones/by-day', 'tombstones/names', 'tombstones/tmp'):
        os.makedirs(os.path.join(path, sub), 0o700, exist_ok=True)
    os.chmod(path, 0o700)
    now = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    days = set()
    for n in range(n_finished):
        when = (now - datetime.timedelta(days=1 + n % 80)).strftime('%Y-%m-%dT%H:%M:%SZ')
        tomb = {'name': 'bench-gone-%d' % n, 'uuid': _uuid(n), 'project': 'bench-tombstones', 'user': 'bench',
                'vcpus': 1, 'memory_mb': 128, 'status': 'terminated', 'cinder_checked': True,
                'terminated_at': when, 'finished_at': when, 'started_at': when, 'request_id': 'req-bench',
                'volumes': [], 'volumes_pending': [], 'volumes_done': [], 'disks_deleted': [], 'disks_kept': [],
                'history': [{'action': 'terminate', 'request_id': 'req-bench', 'start': when, 'finish': when,
                             'result': 'success', 'message': None}], 'revision': 3}
        where = tomb_dir if flat else os.path.join(tomb_dir, 'finished')
        with open(os.path.join(where, '%s.json' % tomb['uuid']), 'w') as handle:
            json.dump(tomb, handle, sort_keys=True, indent=1)
        if flat:
            continue
        day = os.path.join(tomb_dir, 'by-day', when[:10])
        if day not in days:
            os.makedirs(day, 0o700, exist_ok=True)
            days.add(day)
        open(os.path.join(day, tomb['uuid']), 'w').close()
        name_dir = os.path.join(tomb_dir, 'names', hashlib.sha256(tomb['name'].encode()).hexdigest()[:32])
        os.mkdir(name_dir, 0o700)
        open(os.path.join(name_dir, tomb['uuid']), 'w').close()
    for n in range(3):
        tomb = {'name': 'bench-pending-%d' % n, 'uuid': _uuid(10 ** 9 + n), 'project': 'bench-tombstones',
                'status': 'undefined', 'cinder_checked': False, 'terminated_at': now.strftime('%Y-%m-%dT%H:%M:%SZ'),
                'volumes_pending': [{'id': 'bench-volume-%d' % n, 'delete_on_termination': True}]}
        with open(os.path.join(tomb_dir if flat else os.path.join(tomb_dir, 'pending'), '%s.json' % tomb['uuid']),
                  'w') as handle:
            json.dump(tomb, handle)
    return path


def sweep_in_process(path, lookup):
    """What a sweep does with the state_dir, timed: open, pending list, one name lookup, retention (nothing due)."""
    state_dir = lib.collection_module('_state_dir._state')
    retention = lib.collection_module('_retention')
    began = time.monotonic()
    state = state_dir.StateDir(path, host_lock_dir=os.path.join(os.path.dirname(path), 'host-locks'))
    pending = state.pending_tombstones()
    found = state.tombstones_for([lookup])
    pruned = retention.prune(state, set(), retention.RetentionOptions(), request_id='req-bench')
    seconds = time.monotonic() - began
    assert len(pending) == 3 and len(found) == 4, (len(pending), len(found))
    assert pruned['tombstones_removed'] == [], pruned
    return seconds


def flat_read(path):
    """How earlier versions listed tombstones: read every file of tombstones/ (opened read-only, nothing moved)."""
    began = time.monotonic()
    tomb_dir = os.path.join(path, 'tombstones')
    found = 0
    for entry in sorted(os.listdir(tomb_dir)):
        if entry.endswith('.json'):
            with open(os.path.join(tomb_dir, entry)) as handle:
                json.load(handle)
                found += 1
    return time.monotonic() - began, found


def module_run(path):
    proc, result = lib.module_direct('vm_reclaim', {'uri': lib.URI, 'state_dir': path, 'project': 'bench-tombstones'})
    if result.get('failed') and 'pending' not in json.dumps(result):
        raise RuntimeError('vm_reclaim failed: %s' % result.get('msg'))
    return proc.seconds


def run(sizes, reps=REPS):
    """Both state_dirs are made first and measured in turns, so a busy host weighs on both sizes alike."""
    base = os.path.join(lib.BUILD, 'tombstones-%s' % lib.RUN_ID)
    paths, runs = {}, dict((n, {'inproc': [], 'module': []}) for n in sizes)
    try:
        for n in sizes:
            paths[n] = os.path.join(base, 'n%d' % n)
            lib.log('tombstones: making a state_dir with %d finished tombstones' % n)
            t0 = time.monotonic()
            make_state_dir(paths[n], n)
            lib.log('tombstones: made in %.1f s' % (time.monotonic() - t0))
            sweep_in_process(paths[n], 'bench-gone-%d' % (n // 2))  # warm the cache
        for rep in range(max(reps, IN_PROCESS_REPS)):
            for n in sizes:
                # The in-process part takes milliseconds: one sample of it is timer noise, so it always gets several.
                runs[n]['inproc'].append(sweep_in_process(paths[n], 'bench-gone-%d' % (n // 2)))
                if rep < reps:
                    runs[n]['module'].append(module_run(paths[n]))
        measured = dict((n, {'inproc': lib.median(runs[n]['inproc']), 'module': lib.median(runs[n]['module'])})
                        for n in sizes)
        for n in sizes:
            shutil.rmtree(paths[n], ignore_errors=True)
        flat_path = os.path.join(base, 'flat')
        make_state_dir(flat_path, FLAT_REFERENCE, flat=True)
        flat_read(flat_path)
        flat = lib.median([flat_read(flat_path)[0] for dummy in range(reps)])
    finally:
        shutil.rmtree(base, ignore_errors=True)
    return rows(measured, sizes, flat)


def rows(measured, sizes, flat):
    small, large = sizes[0], sizes[-1]
    out = []
    for key, what in (('inproc', 'a sweep\'s state_dir work in process'), ('module', 'vm_reclaim module run')):
        ratio = measured[large][key] / measured[small][key]
        out.append(lib.Row(
            NAME, '%s, %d finished tombstones' % (what, large),
            lib.fmt_s(measured[large][key], 3), '%d finished: %s' % (small, lib.fmt_s(measured[small][key], 3)),
            '%.2fx' % ratio, '<= %.1fx' % TARGET_RATIO, lib.verdict(ratio <= TARGET_RATIO), 'warm page cache'))
    out.append(lib.Row(
        NAME, 'reference: the flat layout of earlier versions, every tombstone read, %d' % FLAT_REFERENCE,
        lib.fmt_s(flat, 3), 'new layout, %d finished: %s' % (large, lib.fmt_s(measured[large]['inproc'], 3)),
        '%.0fx' % (flat / measured[large]['inproc']) if measured[large]['inproc'] else '-', '', 'info'))
    return out
