# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""9. Control node per host: the real reclaim playbook over 100, 1,000 and 5,000 simulated hosts, on both ansible-core lines.

What it runs is whatever playbooks/reclaim.yml does (the state_facts role's
vm_info on every host, the fleet index once, each host's slice handed to its
vm_reclaim, the summary), through the real ansible-playbook: real
inventory, HostVars, templating and strategy, forks 50. The inventory holds
H hosts in the group hypervisors, each ``ansible_connection: local`` with
its own state_dir under build/bench and ``bench_host_index``.

The hypervisor modules are replayed, not run: at the start vm_info and
vm_reclaim run for real on three domains of this host (b_control.templates,
with the hypervisor), then a copy of the collection gets two action plugins,
plugins/action/vm_info.py and vm_reclaim.py (bench/replay/, built by
bench/hosts_replay.py), that shadow the modules and return each host's own
variant of the recorded results (50 domains, its own identity, UUIDs and
disk paths, the recorded shapes) without running anything on the host. The
other tasks of the roles run as they are (slurp and copy of the host's
last_sweep.json run locally, as a module each). So the figures are the
control node's cost plus those local module runs, not a hypervisor's.

Each size runs twice on each line: the playbook as it is (the fleet-safe
sweep) and with ``reclaim_fleet_view=false`` (no vm_info round, no index, no
slice). Every run is checked: no host failed, every host's sweep reclaimed
its one domain, and every sweep was handed its slice in the fleet-safe runs
and none in the others (a replayed vm_reclaim refuses a slice bound to
another host, and reports whether it got one as the module does, in its
``fleet.given``). Seconds per host is the wall time over H; the fleet part per host is
the difference of the two over H. Peak memory: the largest process of the
run (wait4's ru_maxrss, as the other benchmarks) and the peak of the run's
process tree, sampled every second as the sum of its processes'
proportional set sizes (PSS: a page the forked workers share is counted
once, so this is what the tree holds). The target: per-host cost flat, the
per-host figure at the largest size at most 1.25x that at the smallest
(ansible-playbook's start-up, about 2 s, is spread over fewer hosts at the
smallest size, which favours the larger one by a little).

The workflow playbooks (playbooks/fleet_gather.yml, fleet_index.yml,
fleet_sweep.yml) run in turn over the same hosts with ansible-core's jsonfile
fact cache and one deferred_libvirt_fleet_run, and their sum is a row of its
own.

BENCH_HOSTS_LINES=newest (or 2.16) runs one line only; the default is both.

A run that does not finish within BENCH_HOSTS_TIMEOUT seconds (default
3600) is stopped and its row says so, with the time as a lower bound; the
larger sizes of that line are then not run (they would take longer still)
and their rows say so.
"""

import json
import os
import shutil
import signal
import subprocess
import time

import lib
import b_control

NAME = '9 hosts'
SIZES = {'full': [100, 1000, 5000], 'quick': [20, 50]}
REPS = 1
FORKS = 50
DOMAINS_PER_HOST = 50
FLAT = 1.25
LINES = (('2.16', os.path.join(lib.ROOT, '.venv')), ('newest', os.path.join(lib.ROOT, '.venv-newest')))
PLAYBOOKS = os.path.join(lib.ROOT, 'playbooks')
WORKFLOW = ('fleet_gather.yml', 'fleet_index.yml', 'fleet_sweep.yml')
REPLAY = os.path.join(lib.BENCH, 'replay')


def timeout():
    return float(os.environ.get('BENCH_HOSTS_TIMEOUT', '3600'))


def lines():
    """The ansible-core lines to run: BENCH_HOSTS_LINES (comma-separated names of LINES), default every line. A
    line of each runs for hours at 5,000 hosts, so one line can be measured while the other is not."""
    names = [n.strip() for n in os.environ.get('BENCH_HOSTS_LINES', '').split(',') if n.strip()]
    known = [name for name, dummy in LINES]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit('BENCH_HOSTS_LINES: no ansible-core line named %s; the lines are %s. Nothing was run.'
                         % (', '.join(repr(n) for n in unknown), ', '.join(known)))
    return [(name, venv) for name, venv in LINES if not names or name in names]


def replay_collections(root):
    """A copy of the installed collection whose vm_info and vm_reclaim are the replaying action plugins."""
    shutil.rmtree(root, ignore_errors=True)
    shutil.copytree(lib.COLLECTIONS, root, ignore=shutil.ignore_patterns('community'))
    action = os.path.join(root, 'ansible_collections', 'deferred', 'libvirt', 'plugins', 'action')
    os.makedirs(action, exist_ok=True)
    for name in ('vm_info.py', 'vm_reclaim.py'):
        shutil.copy(os.path.join(REPLAY, name), os.path.join(action, name))
    return root


def inventory(path, hosts, state_root):
    """H hosts in the group hypervisors, connection local, each with its own state_dir and index."""
    hostvars = {}
    for i in range(hosts):
        hostvars['hv%04d' % i] = {'ansible_connection': 'local', 'bench_host_index': i,
                                  'deferred_libvirt_state_dir': os.path.join(state_root, 'hv%04d' % i)}
    with open(path, 'w') as handle:
        json.dump({'all': {'children': {'hypervisors': {'hosts': hostvars}}}}, handle)
    for host in hostvars:
        os.makedirs(hostvars[host]['deferred_libvirt_state_dir'], exist_ok=True)
    return path


def _tree(root):
    """The pids of ``root`` and its descendants (from /proc)."""
    children = {}
    for entry in os.listdir('/proc'):
        if not entry.isdigit():
            continue
        try:
            with open('/proc/%s/stat' % entry) as handle:
                ppid = int(handle.read().rsplit(')', 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, []))
    return out


def _tree_pss_mb(root):
    """The proportional set size of ``root``'s process tree: pages the forked workers share are counted once."""
    total = 0
    for pid in _tree(root):
        try:
            with open('/proc/%d/smaps_rollup' % pid) as handle:
                total += next(int(line.split()[1]) for line in handle if line.startswith('Pss:'))
        except (OSError, IndexError, ValueError, StopIteration):
            pass
    return total / 1024.0


def run_playbook(venv, playbook, inv, collections, extra=(), env=None):
    """ansible-playbook of ``venv``: (wall seconds, largest process MiB, tree RSS peak MiB, callback JSON or None)."""
    python = os.path.join(venv, 'bin', 'python')
    environ = lib.testbed_ansible_env(collections, python, 'bench_timing', os.path.join(lib.BENCH, 'callback_plugins'),
                                      ANSIBLE_NOCOLOR='1', ANSIBLE_FORKS=str(FORKS),
                                      PATH=os.path.join(venv, 'bin') + os.pathsep + os.environ.get('PATH', ''),
                                      OS_CLIENT_CONFIG_FILE=os.path.join(lib.guests.TESTBED_DIR, 'clouds.yaml'),
                                      BENCH_DIR=lib.BENCH, BENCH_HOSTS_DOMAINS=str(DOMAINS_PER_HOST))
    environ.update(env or {})
    out_path = os.path.join(lib.BUILD, 'hosts-out-%d' % os.getpid())
    cmd = [os.path.join(venv, 'bin', 'ansible-playbook'), playbook, '-i', inv] + list(extra)
    with open(out_path, 'w') as out, open(out_path + '.err', 'w') as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=environ, stdout=out, stderr=err, stdin=subprocess.DEVNULL,
                                start_new_session=True)
        peak, next_sample, timed_out = 0.0, t0, False
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            now = time.monotonic()
            if now >= next_sample:
                peak = max(peak, _tree_pss_mb(proc.pid))
                next_sample = now + 1.0
            if now - t0 > timeout():
                timed_out = True
                os.killpg(proc.pid, signal.SIGKILL)
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.05)
        seconds = time.monotonic() - t0
    with open(out_path) as out, open(out_path + '.err') as err:
        stdout, stderr = out.read(), err.read()
    os.unlink(out_path)
    os.unlink(out_path + '.err')
    data = None
    if not timed_out:
        try:
            data = json.loads(stdout[stdout.index('{"start"'):])
        except ValueError:
            raise RuntimeError('%s printed no JSON (rc %s): %s %s' % (playbook, os.waitstatus_to_exitcode(status),
                                                                      stdout[-1500:], stderr[-1500:]))
    return {'wall': seconds, 'maxrss': usage.ru_maxrss / 1024.0, 'tree': peak, 'data': data,
            'timed_out': timed_out}


def checked(run, hosts, what, sweeps=True, fleet=None):
    """The run, or RuntimeError when a host failed or (``sweeps``) a host's sweep did not reclaim its one domain, or
    (``fleet`` True or False) the fleet slice was not handed to every sweep, or was handed to one."""
    data = run['data']
    if data is None:
        return run
    if data['failed_count']:
        raise RuntimeError('%s over %d hosts: %d host(s) failed: %s' % (what, hosts, data['failed_count'],
                                                                        json.dumps(data['failures'])[:1500]))
    expected = hosts * (DOMAINS_PER_HOST // 50)
    if sweeps and (data['sweeps']['hosts'] != hosts or data['sweeps']['reclaimed'] != expected):
        raise RuntimeError('%s over %d hosts: %d sweep(s) reclaimed %d domains, expected %d and %d'
                           % (what, hosts, data['sweeps']['hosts'], data['sweeps']['reclaimed'], hosts, expected))
    if sweeps and fleet is not None and data['sweeps'].get('fleet_given') != (hosts if fleet else 0):
        raise RuntimeError('%s over %d hosts: %d sweep(s) were handed a fleet slice, expected %d'
                           % (what, hosts, data['sweeps'].get('fleet_given'), hosts if fleet else 0))
    return run


def task_span(data, *names):
    """Seconds from the first start to the last result of the tasks named (over all plays), or None."""
    spans = [t for play in data['plays'] for name, t in play['tasks'].items() if name in names and t['end']]
    if not spans:
        return None
    return max(t['end'] for t in spans) - min(t['start'] for t in spans)


def run_workflow(venv, inv, collections, hosts, cache):
    """fleet_gather, fleet_index, fleet_sweep in turn, with a jsonfile fact cache: summed wall, largest peaks."""
    shutil.rmtree(cache, ignore_errors=True)
    env = {'ANSIBLE_CACHE_PLUGIN': 'jsonfile', 'ANSIBLE_CACHE_PLUGIN_CONNECTION': cache}
    total = {'wall': 0.0, 'maxrss': 0.0, 'tree': 0.0, 'data': None, 'timed_out': False, 'steps': []}
    # The three steps of one workflow run share its id, as the AWX workflow job's id is shared.
    extra = ['-e', 'deferred_libvirt_fleet_run=%s' % os.path.basename(cache)]
    for name in WORKFLOW:
        run = run_playbook(venv, os.path.join(PLAYBOOKS, name), inv, collections, extra, env=env)
        checked(run, hosts, name, sweeps=name == WORKFLOW[-1], fleet=True)
        total['wall'] += run['wall']
        total['maxrss'] = max(total['maxrss'], run['maxrss'])
        total['tree'] = max(total['tree'], run['tree'])
        total['steps'].append(run['wall'])
        if run['timed_out']:
            total['timed_out'] = True
            break
    return total


def run(sizes, reps=1):
    chosen = lines()  # before anything runs: a line that does not exist changes nothing
    templates = os.path.join(lib.BUILD, 'hosts-templates.json')
    b_control.templates(templates)
    collections = replay_collections(os.path.join(lib.BUILD, 'hosts-collections'))
    playbook = os.path.join(PLAYBOOKS, 'reclaim.yml')
    measured = {}
    os.environ['BENCH_HOSTS_TEMPLATES'] = templates
    for line, venv in chosen:
        stopped = None
        for hosts in sizes:
            if stopped is not None:
                # A larger fleet on the same line takes longer still: not run, its rows say so.
                lib.log('hosts: %d hosts on %s not run: %d hosts already ran past the timeout' % (hosts, line, stopped))
                for case in ('safe', 'unsafe'):
                    measured[(line, hosts, case)] = {'wall': timeout(), 'maxrss': None, 'tree': None, 'data': None,
                                                     'timed_out': True, 'not_run': stopped}
                continue
            inv = inventory(os.path.join(lib.BUILD, 'hosts-%d.json' % hosts), hosts,
                            os.path.join(lib.BUILD, 'hosts-state-%s-%d' % (line, hosts)))
            cases = [('safe', []), ('unsafe', ['-e', 'reclaim_fleet_view=false'])]
            for case, extra in cases:
                lib.log('hosts: reclaim.yml over %d simulated hosts on %s (%s)' % (hosts, line, case))
                m = checked(run_playbook(venv, playbook, inv, collections, extra), hosts, 'reclaim.yml',
                            fleet=case == 'safe')
                lib.log('hosts: %.1f s, largest process %.0f MiB, tree %.0f MiB%s'
                        % (m['wall'], m['maxrss'], m['tree'], ' (stopped: timeout)' if m['timed_out'] else ''))
                measured[(line, hosts, case)] = m
                if m['timed_out'] and case == 'safe':
                    stopped = hosts
            lib.log('hosts: the workflow playbooks over %d simulated hosts on %s' % (hosts, line))
            measured[(line, hosts, 'workflow')] = run_workflow(
                venv, inv, collections, hosts, os.path.join(lib.BUILD, 'hosts-cache-%s-%d' % (line, hosts)))
            shutil.rmtree(os.path.join(lib.BUILD, 'hosts-state-%s-%d' % (line, hosts)), ignore_errors=True)
    return rows(measured, sizes)


def _wall(m, hosts):
    """'12.3 s wall, 0.123 s per host', with '>' for a run stopped at the timeout (a lower bound)."""
    if m.get('not_run'):
        return 'not run (%d hosts ran past the timeout of %s)' % (m['not_run'], lib.fmt_s(m['wall'], 0))
    mark = '> ' if m['timed_out'] else ''
    return '%s%s wall%s, %s%.3f s per host' % (
        mark, lib.fmt_s(m['wall']), ' (stopped)' if mark else '', mark, m['wall'] / hosts)


def rows(measured, sizes):
    out = []
    note = 'vm_info and vm_reclaim replayed (recorded on this host), forks %d, %d domains per host' % (
        FORKS, DOMAINS_PER_HOST)
    for line, dummy in lines():
        for hosts in sizes:
            safe, unsafe = measured[(line, hosts, 'safe')], measured[(line, hosts, 'unsafe')]
            fleet = None if safe['timed_out'] or unsafe['timed_out'] else (safe['wall'] - unsafe['wall']) / hosts
            sweep = None if safe['data'] is None else task_span(safe['data'], 'Sweep the hypervisor')
            out.append(lib.Row(
                NAME, 'reclaim.yml, %d hosts, ansible-core %s' % (hosts, line),
                _wall(safe, hosts) + ('' if fleet is None else '; fleet part %.3f s per host' % fleet),
                'without the fleet view: %s' % _wall(unsafe, hosts),
                'peak: largest process %s, process tree %s (PSS)' % (lib.fmt_mb(safe['maxrss']), lib.fmt_mb(safe['tree'])),
                '', 'info', note + ('; sweep task %s' % lib.fmt_s(sweep) if sweep is not None else '')))
            note = ''
            wf = measured.get((line, hosts, 'workflow'))
            if wf is not None:
                out.append(lib.Row(
                    NAME, 'workflow (gather, index, sweep), %d hosts, ansible-core %s' % (hosts, line),
                    _wall(wf, hosts),
                    'steps %s' % ' + '.join(lib.fmt_s(s) for s in wf['steps']),
                    'peak: largest process %s, process tree %s (PSS)' % (lib.fmt_mb(wf['maxrss']), lib.fmt_mb(wf['tree'])),
                    '', 'info', 'jsonfile fact cache'))
        if len(sizes) >= 2:
            out += flat_rows(measured, line, sizes)
    return out


def flat(small, large, slack=0.0):
    """Whether the per-host figure at the large size is at most FLAT times (plus ``slack`` s) that at the small one."""
    return large <= FLAT * small + slack


def flat_rows(measured, line, sizes):
    out = []
    lo, hi = sizes[0], sizes[-1]
    cases = [('reclaim.yml (fleet-safe)', 'safe')]
    if (line, lo, 'workflow') in measured:
        cases.append(('workflow', 'workflow'))
    for label, case in cases:
        a, b = measured[(line, lo, case)], measured[(line, hi, case)]
        per_a, per_b = a['wall'] / lo, b['wall'] / hi
        ok = not b['timed_out'] and flat(per_a, per_b)
        out.append(lib.Row(
            NAME, '%s per-host cost %d->%d hosts, ansible-core %s' % (label, lo, hi, line),
            ' / '.join(('>' if measured[(line, s, case)]['timed_out'] else '') + '%.3f' % (
                measured[(line, s, case)]['wall'] / s) for s in sizes) + ' s per host',
            '', '%s%.2fx' % ('>' if b['timed_out'] else '', per_b / per_a),
            'flat: <= %.2fx' % FLAT, lib.verdict(ok), 'per host at %d over per host at %d' % (hi, lo)))
    a = [measured[(line, s, k)] for s in (lo, hi) for k in ('safe', 'unsafe')]
    if not any(m['timed_out'] for m in a):
        fa = (a[0]['wall'] - a[1]['wall']) / lo
        fb = (a[2]['wall'] - a[3]['wall']) / hi
        out.append(lib.Row(
            NAME, 'fleet part per host %d->%d hosts, ansible-core %s' % (lo, hi, line),
            '%.3f / %.3f s per host' % (fa, fb), '(fleet-safe - without fleet view) / hosts',
            '%.2fx' % (fb / fa if fa > 0 else float('inf')), 'flat: <= %.2fx + 5 ms' % FLAT,
            lib.verdict(flat(fa, fb, 0.005)), ''))
    else:
        out.append(lib.Row(NAME, 'fleet part per host %d->%d hosts, ansible-core %s' % (lo, hi, line),
                           'a run stopped at the timeout', '', '', 'flat: <= %.2fx + 5 ms' % FLAT, lib.verdict(False),
                           'BENCH_HOSTS_TIMEOUT %.0f s' % timeout()))
    return out
