# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""10. The fleet index at 10,000 hosts x 50 domains: built (with every host's slice) in under 10 s and 4 GiB.

bench/control_worker.py builds the hosts' vm_info results from the real
results recorded on this host (b_control.templates), as benchmark 7 does,
and times deferred.libvirt.fleet_index over all of them plus
fleet_index_for for every host (what a play does: one index, a slice per
host), in a process of its own. Memory is the process's peak during the
call, inputs included: a control node has to hold them to build the index.

Two inputs: the full vm_info results the state_facts role registers today,
and the compact record of the gather step of the workflow (each result cut
to what the index reads: the hypervisor identity and per domain UUID, name,
states, generation, reclaim_at, record host, disk and backing-file keys;
control_worker.compact). The target is judged on each; the full results do
not fit 4 GiB at 10,000 hosts (about 0.43 GiB per 1,000 hosts before the
index), and the row says what they take.
"""

import json
import os

import lib
import b_control

NAME = '10 index'
SIZES = {'full': [10000], 'quick': [1000]}
REPS = 1
DOMAINS_PER_HOST = 50
TARGET_SECONDS = 10.0
TARGET_MB = 4096.0
TARGET_AT = 10000
WORKER = os.path.join(lib.BENCH, 'control_worker.py')
INPUTS = (('full vm_info results', []), ('compact records', ['compact']))


def _worker(hosts, path, reps, extra):
    proc = lib.run([lib.PYTHON, WORKER, 'fleet_index', str(hosts), str(DOMAINS_PER_HOST), path, lib.COLLECTIONS,
                    str(reps)] + extra, timeout=3600)
    if proc.rc != 0:
        raise RuntimeError('fleet_index over %d hosts failed (rc %s): %s' % (hosts, proc.rc, proc.stderr[-800:]))
    lines = [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith('{')]
    m = lines[0]
    m['process_peak_mb'] = proc.maxrss_mb
    return m


def run(sizes, reps=1):
    path = os.path.join(lib.BUILD, 'index-templates.json')
    b_control.templates(path)
    measured = {}
    for hosts in sizes:
        for label, extra in INPUTS:
            lib.log('index: fleet_index over %d hosts x %d domains, %s' % (hosts, DOMAINS_PER_HOST, label))
            m = _worker(hosts, path, reps, extra)
            lib.log('index: %.2f s, inputs %.0f MiB, peak %.0f MiB' % (m['seconds'], m['inputs_mb'], m['peak_mb']))
            measured[(hosts, label)] = m
    return rows(measured, sizes, reps)


def rows(measured, sizes, reps):
    out = []
    for hosts in sizes:
        for label, dummy in INPUTS:
            m = measured[(hosts, label)]
            judged = hosts == TARGET_AT
            ok = m['seconds'] < TARGET_SECONDS and m['peak_mb'] < TARGET_MB
            why = ''
            if judged and not ok:
                why = '; inputs alone %.1f GiB' % (m['inputs_mb'] / 1024.0) if m['inputs_mb'] >= TARGET_MB else ''
            out.append(lib.Row(
                NAME, 'fleet_index + every slice, %d hosts x %d domains, %s' % (hosts, DOMAINS_PER_HOST, label),
                '%s, peak %s' % (lib.fmt_s(m['seconds'], 2), lib.fmt_mb(m['peak_mb'])),
                'inputs %s; index and slices +%s' % (lib.fmt_mb(m['inputs_mb']),
                                                     lib.fmt_mb(max(0.0, m['peak_mb'] - m['inputs_mb']))),
                '%.1f us/record' % (1e6 * m['seconds'] / m['records']),
                '< %.0f s, < %.0f GiB' % (TARGET_SECONDS, TARGET_MB / 1024) if judged else '',
                lib.verdict(ok) if judged else 'info',
                ('median of %d calls' % reps if reps > 1 else 'one call') + why))
    return out
