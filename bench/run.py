# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the benchmarks on the local hypervisor and print one table.

Usage (through bench/run.sh, which sets up the hypervisor first):
  run.sh                      every benchmark, full sizes
  run.sh --quick              every benchmark, small sizes (a few minutes)
  run.sh --only scale,peer    some of them (names or numbers 1-10)
  run.sh --sizes scale=100,200 --sizes bulk=1,8
  run.sh --reps 3             repeat each timed case, report the median
  run.sh --json out.json      also write the rows and the machine description
"""

import argparse
import json
import os
import platform
import subprocess
import sys
import time
import traceback

import lib
import b_bulk
import b_cinder
import b_control
import b_fleet
import b_hosts
import b_index
import b_overhead
import b_peer
import b_scale
import b_tombstones

BENCHMARKS = [('bulk', b_bulk), ('overhead', b_overhead), ('scale', b_scale), ('cinder', b_cinder), ('fleet', b_fleet),
              ('peer', b_peer), ('control', b_control), ('tombstones', b_tombstones),
              ('hosts', b_hosts), ('index', b_index)]


def machine():
    """What the numbers were measured on."""
    info = {'nproc': os.cpu_count(), 'python': platform.python_version(), 'kernel': platform.release()}
    try:
        with open('/proc/cpuinfo') as handle:
            info['cpu'] = next(line.split(':', 1)[1].strip() for line in handle if line.startswith('model name'))
    except (OSError, StopIteration):
        info['cpu'] = 'unknown'
    with open('/proc/meminfo') as handle:
        info['memory_gib'] = round(int(handle.readline().split()[1]) / 1048576.0, 1)
    out = subprocess.run(['virsh', '-c', lib.URI, 'version'], capture_output=True, text=True, check=False).stdout
    for line in out.splitlines():
        if 'library' in line:
            info['libvirt'] = line.split(':', 1)[1].split()[-1]
        if 'hypervisor' in line:
            info['qemu'] = line.split(':', 1)[1].split()[-1]
    info['accelerator'] = 'TCG (software emulation; guests are <domain type="qemu">)'
    info['load_before'] = os.getloadavg()
    # The host may be shared: say how busy it was (other users' running guests, load average).
    try:
        names = subprocess.run(['virsh', '-c', lib.URI, 'list', '--name'], capture_output=True, text=True, check=False).stdout.split()
        info['other_running_domains'] = len([n for n in names if not n.startswith('bench-')])
    except OSError:
        info['other_running_domains'] = None
    return info


def wait_for_services(cinder_too, timeout=300):
    """Other users of the host restart libvirtd and Cinder in their tests: wait until they answer again."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hv = subprocess.run(['virsh', '-c', lib.URI, 'version'], capture_output=True, check=False).returncode == 0
        cinder = not cinder_too or subprocess.run(
            ['bash', os.path.join(lib.ROOT, 'tests', 'testbed', 'cinder.sh'), 'status'], capture_output=True, check=False).returncode == 0
        if hv and cinder:
            time.sleep(15)  # a restart often comes in a series (fault tests): let it settle
            return
        time.sleep(5)


def run_one(mod, sizes, reps, tries=3):
    """The benchmark's rows; on an error (a daemon restarted under it, say), wait for the services and try once more."""
    for attempt in range(tries):
        try:
            rows = mod.run(sizes, reps=reps)
            if attempt:
                for row in rows:
                    row.note = (row.note + '; ' if row.note else '') + 'attempt %d' % (attempt + 1)
            return rows
        except Exception as exc:  # one broken benchmark must not hide the others' numbers
            traceback.print_exc()
            error = str(exc).splitlines()[0][:160] if str(exc) else exc.__class__.__name__
            if attempt < tries - 1:
                lib.log('%s failed (%s); waiting for libvirtd (and Cinder), then again' % (mod.NAME, error))
                wait_for_services(getattr(mod, 'NEEDS_CINDER', False))
    return [lib.Row(mod.NAME, 'error', '-', '', '', '', 'ERROR', error)]


def parse_sizes(items):
    sizes = {}
    for item in items or []:
        name, dummy, values = item.partition('=')
        sizes[name.strip()] = [int(v) for v in values.split(',') if v.strip()]
    return sizes


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument('--quick', action='store_true', help='small sizes, for a quick look')
    parser.add_argument('--only', default='', help='comma-separated benchmarks: bulk, overhead, scale, cinder, fleet, peer, control, '
                                                   'tombstones, hosts, index (or 1-10)')
    parser.add_argument('--sizes', action='append', help='NAME=a,b,c: the sizes of one benchmark')
    parser.add_argument('--reps', type=int, default=None,
                        help='repetitions of each timed case (median); default 3 (5 for overhead, 2 for bulk, '
                             'fleet and peer), 1 with --quick')
    parser.add_argument('--json', help='also write the results here')
    args = parser.parse_args(argv)

    wanted = [w.strip() for w in args.only.split(',') if w.strip()]
    chosen = []
    for index, (name, mod) in enumerate(BENCHMARKS, 1):
        if not wanted or name in wanted or str(index) in wanted:
            chosen.append((name, mod))
    unknown = set(wanted) - set(n for n, dummy in BENCHMARKS) - set(str(i) for i in range(1, len(BENCHMARKS) + 1))
    if unknown:
        parser.error('unknown benchmark(s): %s' % ', '.join(sorted(unknown)))
    sizes = parse_sizes(args.sizes)
    default_reps = 1 if args.quick else 3

    info = machine()
    lib.log('machine: %s' % json.dumps(info))
    lib.log('installing the collection into %s' % lib.COLLECTIONS)
    lib.install_collection()

    rows = []
    started = time.monotonic()
    for name, mod in chosen:
        these = sizes.get(name) or mod.SIZES['quick' if args.quick else 'full']
        # A benchmark whose figure is a small difference of two noisy times asks for more repetitions (REPS).
        reps = args.reps or (default_reps if args.quick else getattr(mod, 'REPS', default_reps))
        lib.log('%s: sizes %s, %d repetition(s)' % (name, these, reps))
        t0 = time.monotonic()
        rows += run_one(mod, these, reps)
        lib.log('%s: done in %.0f s (load average now %.2f)' % (name, time.monotonic() - t0, os.getloadavg()[0]))
    info['load_after'] = os.getloadavg()
    info['seconds'] = round(time.monotonic() - started)

    print()
    print('Machine: %(nproc)s cores (%(cpu)s), %(memory_gib)s GiB, libvirt %(libvirt)s, QEMU %(qemu)s, %(accelerator)s'
          % dict(info, libvirt=info.get('libvirt', '?'), qemu=info.get('qemu', '?')))
    print('Load average before %s, after %s; %s other running guest(s) at the start; %d s in all; %s, %d repetition(s)'
          % (' '.join('%.2f' % x for x in info['load_before']), ' '.join('%.2f' % x for x in info['load_after']),
             info['other_running_domains'], info['seconds'], 'quick sizes' if args.quick else 'full sizes',
             args.reps or default_reps))
    print()
    print(lib.table(rows))
    if args.json:
        with open(args.json, 'w') as handle:
            json.dump({'machine': info, 'quick': args.quick, 'reps': args.reps or default_reps,
                       'rows': [r.as_dict() for r in rows]},
                      handle, indent=1)
    return 1 if any(r.verdict == 'ERROR' for r in rows) else 0


if __name__ == '__main__':
    sys.exit(main())
