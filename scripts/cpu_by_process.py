# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Where a command's CPU goes, by kind of process: the controller, the modules, QEMU, Cinder, ...

    python3 scripts/cpu_by_process.py [--interval 0.25] -- COMMAND [ARGS...]

Runs COMMAND and samples /proc every INTERVAL seconds meanwhile; at its end prints the CPU seconds (user + system)
each kind of process used while it ran, with the number of processes seen, then the command's wall time and the
average number of cores busy (from /proc/stat, so every process of the machine counts there). A process is counted
from its first sample to its last (one that lives less than INTERVAL is missed, and so is what a process uses after
its last sample), and one that was already running is counted from the start of the command only. Exit code: the
command's.

What it answered (docs/testing.md, "Where the CPU goes"): the integration tests are bound by ansible-playbook's own
work and the modules' Python, not by the guests.
"""

import argparse
import os
import subprocess
import sys
import time
from collections import Counter

TICK = os.sysconf('SC_CLK_TCK')
NAMED = ('libvirtd', 'virtlogd', 'sshd', 'ssh', 'redis-server', 'swtpm', 'chromium', 'promtool', 'bash', 'sh')


def kind(argv):
    """The kind of a process from its command line (a list of strings)."""
    if not argv:
        return 'kernel threads'
    line = ' '.join(argv)
    base = os.path.basename(argv[0])
    if base.startswith('qemu-system'):
        return 'qemu'
    if 'ansible-playbook' in line:
        return 'ansible-playbook (controller and its workers)'
    if 'ansible-runner' in line:
        return 'ansible-runner'
    if 'cinder' in line:
        return 'cinder'
    if 'beam' in base or 'rabbit' in line or base in ('epmd', 'erl_child_setup'):
        return 'rabbitmq'
    if 'pytest' in line:
        return 'pytest'
    if base.startswith('python'):
        # A pipelined module is the interpreter alone reading the AnsiballZ payload on stdin; without pipelining it
        # runs a file named AnsiballZ_<module>.py.
        if len(argv) == 1 or (len(argv) == 2 and argv[1] == '-') or 'AnsiballZ_' in line:
            return 'module (python)'
        if argv[1] in ('-c', '-m'):
            return 'python %s%s' % (argv[1], '' if argv[1] == '-c' else ' ' + argv[2] if len(argv) > 2 else '')
        script = next((a for a in argv[1:] if not a.startswith('-')), '')
        return 'python %s' % os.path.basename(script)
    for name in NAMED:
        if base == name or base.startswith(name + ':'):
            return name
    return base


def _cmdline(pid):
    try:
        with open('/proc/%s/cmdline' % pid, 'rb') as handle:
            return [part.decode('utf-8', 'replace') for part in handle.read().split(b'\0') if part]
    except OSError:
        return None


def _processes():
    """{(pid, start time in ticks): CPU seconds so far} of every process of the machine but this one."""
    me = str(os.getpid())
    out = {}
    for pid in os.listdir('/proc'):
        if not pid.isdigit() or pid == me:
            continue
        try:
            with open('/proc/%s/stat' % pid) as handle:
                fields = handle.read().rsplit(')', 1)[1].split()
        except (OSError, IndexError):
            continue  # gone meanwhile
        out[(pid, int(fields[19]))] = (int(fields[11]) + int(fields[12])) / TICK
    return out


def _busy():
    with open('/proc/stat') as handle:
        values = [int(v) for v in handle.readline().split()[1:]]
    return sum(values) - values[3] - values[4], sum(values)  # everything but idle and iowait, and everything


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--interval', type=float, default=0.25, help='seconds between samples (default 0.25)')
    parser.add_argument('command', nargs=argparse.REMAINDER, help='the command, after --')
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ['--'] else args.command
    if not command:
        parser.error('no command given: cpu_by_process.py -- COMMAND [ARGS...]')
    if args.interval <= 0:
        parser.error('--interval must be more than zero, not %s' % args.interval)
    seen = {}  # (pid, start) -> [kind, CPU at the first sample, CPU at the last]
    before = _processes()
    busy0, total0 = _busy()
    started = time.monotonic()
    proc = subprocess.Popen(command)
    while True:
        for key, cpu in _processes().items():
            if key in seen:
                seen[key][2] = cpu
                continue
            argv_ = _cmdline(key[0])
            if argv_ is not None:
                seen[key] = [kind(argv_), before.get(key, 0.0), cpu]
        if proc.poll() is not None:
            break
        time.sleep(args.interval)
    wall = time.monotonic() - started
    busy1, total1 = _busy()
    used, count = Counter(), Counter()
    for what, first, last in seen.values():
        used[what] += last - first
        count[what] += 1
    total = sum(used.values())
    print('\nCPU seconds by kind of process while the command ran (%s):' % ' '.join(command))
    for what, seconds in used.most_common():
        if seconds >= 0.05:
            print('%9.1f  %5.1f%%  %6d  %s' % (seconds, 100.0 * seconds / total if total else 0.0, count[what], what))
    cores = os.cpu_count() or 1
    print('%9.1f  total of the processes sampled; wall %.1f s; %.2f of %d cores busy on average'
          % (total, wall, cores * (busy1 - busy0) / float(max(1, total1 - total0)), cores))
    return proc.returncode


if __name__ == '__main__':
    sys.exit(main())
