# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every benchmark shares: the installed collection, ansible runs with timings, guests, measurements, rows.

Times are wall-clock seconds from time.monotonic() (or the callback's
time.time() stamps inside ansible-playbook). Peak memory is the maximum
resident set size the kernel reports for a finished process (wait4's
ru_maxrss), so it is that process's own peak, or for a process that waits
for children (ansible) the largest of the tree.
"""

import glob
import json
import os
import shutil
import statistics
import subprocess
import sys
import time
import uuid

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BENCH = os.path.join(ROOT, 'bench')
BUILD = os.path.join(ROOT, 'build', 'bench')
COLLECTIONS = os.path.join(BUILD, 'collections')
VENV_BIN = os.path.join(ROOT, '.venv', 'bin')
PYTHON = os.path.join(VENV_BIN, 'python')
URI = 'qemu:///system'
# bench/counting/sitecustomize.py: counts libvirt calls in any Python process that has it on PYTHONPATH.
COUNTING = os.path.join(BENCH, 'counting')
# The peer, as its users get it: community.libvirt from the pinned ``ansible`` package on PyPI.
PEER_ANSIBLE = '12.2.0'
PEER_VERSION = '2.0.0'
PEER_CACHE = os.path.join(ROOT, 'build', 'peer-cache')
# virt imports lxml (a requirement of community.libvirt that ansible-core does not have): kept apart for the peer.
PEER_LXML = '6.1.3'
PEER_LIB = os.path.join(PEER_CACHE, 'lib')

sys.path.insert(0, os.path.join(ROOT, 'tests', 'testbed'))
import guests  # noqa: E402
from ansible_env import ansible_env as testbed_ansible_env  # noqa: E402

RUN_ID = uuid.uuid4().hex[:6]


def log(msg):
    print('[bench %s] %s' % (time.strftime('%H:%M:%S'), msg), file=sys.stderr, flush=True)


# -- the collection -----------------------------------------------------------

def install_collection():
    """Build and install the collection from this checkout into build/bench/collections, as a user would."""
    shutil.rmtree(BUILD, ignore_errors=True)
    os.makedirs(BUILD)
    galaxy = os.path.join(VENV_BIN, 'ansible-galaxy')
    subprocess.run([galaxy, 'collection', 'build', ROOT, '--output-path', BUILD, '--force'],
                   check=True, capture_output=True, text=True)
    tarball = glob.glob(os.path.join(BUILD, 'deferred-libvirt-*.tar.gz'))[0]
    subprocess.run([galaxy, 'collection', 'install', tarball, '-p', COLLECTIONS, '--force'],
                   check=True, capture_output=True, text=True)
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    return COLLECTIONS


def install_peer():
    """community.libvirt from the ``ansible`` wheel of PyPI, pinned, into the bench's own collections path.

    galaxy.ansible.com is out of reach here; the ``ansible`` package ships the
    same release tarball's content under ansible_collections/.
    """
    import zipfile
    wheel = os.path.join(PEER_CACHE, 'ansible-%s-py3-none-any.whl' % PEER_ANSIBLE)
    if not os.path.exists(wheel):
        os.makedirs(PEER_CACHE, exist_ok=True)
        subprocess.run([PYTHON, '-m', 'pip', 'download', '--no-deps', '--only-binary', ':all:',
                        'ansible==%s' % PEER_ANSIBLE, '-d', PEER_CACHE], check=True, capture_output=True, text=True)
    if not os.path.isdir(os.path.join(PEER_LIB, 'lxml')):
        subprocess.run([PYTHON, '-m', 'pip', 'install', '--quiet', '--only-binary', ':all:', '--target', PEER_LIB,
                        'lxml==%s' % PEER_LXML], check=True, capture_output=True, text=True)
    top = 'ansible_collections/community/libvirt/'
    with zipfile.ZipFile(wheel) as zf:
        for member in zf.namelist():
            if member.startswith(top) and not member.endswith('/'):
                zf.extract(member, COLLECTIONS)
    with open(os.path.join(COLLECTIONS, top, 'MANIFEST.json')) as handle:
        version = json.load(handle)['collection_info']['version']
    if version != PEER_VERSION:
        raise RuntimeError('ansible %s ships community.libvirt %s, not the pinned %s' % (
            PEER_ANSIBLE, version, PEER_VERSION))
    return version


def counting_env(directory, base=None):
    """Environment for processes whose libvirt calls are counted into ``directory`` (see bench/counting)."""
    shutil.rmtree(directory, ignore_errors=True)
    os.makedirs(directory)
    env = dict(base or {})
    path = env.get('PYTHONPATH') or ''
    env['PYTHONPATH'] = COUNTING + (os.pathsep + path if path else '')
    env['BENCH_LIBVIRT_COUNT'] = directory
    return env


def read_counts(directory):
    """(RPCs, local calls, {call: count}) summed over every process that wrote counts into ``directory``."""
    sys.path.insert(0, COUNTING)
    try:
        from sitecustomize import LOCAL
    finally:
        sys.path.remove(COUNTING)
    total = {}
    for path in glob.glob(os.path.join(directory, '*.json')):
        with open(path) as handle:
            for call, count in json.load(handle).items():
                total[call] = total.get(call, 0) + count
    rpc = sum(c for k, c in total.items() if k not in LOCAL)
    local = sum(c for k, c in total.items() if k in LOCAL)
    return rpc, local, total


def top_calls(total, most=4):
    """The most frequent RPCs as 'XMLDesc 12, info 8' (class names left out)."""
    sys.path.insert(0, COUNTING)
    try:
        from sitecustomize import LOCAL
    finally:
        sys.path.remove(COUNTING)
    items = sorted(((c, k) for k, c in total.items() if k not in LOCAL), reverse=True)[:most]
    return ', '.join('%s %d' % (k.split('.', 1)[-1], c) for c, k in items)


def collection_module(name):
    """Import a module_utils file of the installed collection (for _record.serialize and friends)."""
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)
    import importlib
    return importlib.import_module('ansible_collections.deferred.libvirt.plugins.module_utils.%s' % name)


# -- processes ----------------------------------------------------------------

class Proc(object):
    """A finished process: rc, stdout, stderr, wall seconds, peak RSS in MiB."""

    def __init__(self, rc, stdout, stderr, seconds, maxrss_mb):
        self.rc, self.stdout, self.stderr, self.seconds, self.maxrss_mb = rc, stdout, stderr, seconds, maxrss_mb


def run(cmd, env=None, input_text=None, timeout=1800, shell=False):
    """Run a command, timing it and reading its peak RSS with wait4 (no /usr/bin/time needed)."""
    out_path = os.path.join(BUILD, 'out-%s' % uuid.uuid4().hex[:8])
    err_path = out_path + '.err'
    os.makedirs(BUILD, exist_ok=True)
    with open(out_path, 'w') as out, open(err_path, 'w') as err:
        t0 = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, stdout=out, stderr=err, shell=shell,
                                stdin=subprocess.PIPE if input_text is not None else subprocess.DEVNULL, text=True)
        if input_text is not None:
            proc.stdin.write(input_text)
            proc.stdin.close()
        deadline = t0 + timeout
        while True:
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            if time.monotonic() > deadline:
                proc.kill()
                pid, status, usage = os.wait4(proc.pid, 0)
                break
            time.sleep(0.005)
        seconds = time.monotonic() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
    with open(out_path) as out, open(err_path) as err:
        stdout, stderr = out.read(), err.read()
    os.unlink(out_path)
    os.unlink(err_path)
    return Proc(proc.returncode, stdout, stderr, seconds, usage.ru_maxrss / 1024.0)


def ansible_env(**more):
    """The tests' ansible environment (tests/testbed/ansible_env.py) with the bench's callback and Cinder."""
    env = testbed_ansible_env(COLLECTIONS, PYTHON, 'bench_json', os.path.join(BENCH, 'callback_plugins'),
                              ANSIBLE_NOCOLOR='1', PATH=VENV_BIN + os.pathsep + os.environ.get('PATH', ''),
                              OS_CLIENT_CONFIG_FILE=os.path.join(guests.TESTBED_DIR, 'clouds.yaml'))
    env.update(more)
    return env


class PlayRun(object):
    """One ansible-playbook run: wall seconds, peak RSS of the process tree, and per-task timings and results."""

    def __init__(self, proc):
        self.proc = proc
        self.seconds = proc.seconds
        self.maxrss_mb = proc.maxrss_mb
        try:
            self.data = json.loads(proc.stdout[proc.stdout.index('{"start"'):])
        except ValueError:
            raise RuntimeError('ansible-playbook did not print JSON (rc %s)\nstdout: %s\nstderr: %s'
                               % (proc.rc, proc.stdout[-2000:], proc.stderr[-2000:]))

    def tasks(self):
        return [t for play in self.data['plays'] for t in play['tasks']]

    def result(self, index=0, host='localhost'):
        return self.tasks()[index]['hosts'].get(host)

    def play_seconds(self):
        """From the first task's start to the last result: every task of the run, ansible's start-up left out."""
        tasks = self.tasks()
        ends = [r['_end'] for t in tasks for r in t['hosts'].values()] or [tasks[-1]['start']]
        return max(ends) - tasks[0]['start']

    def task_seconds(self, index=0, host=None):
        """From the task's start to the last (or the named) host's result, as the controller saw it."""
        task = self.tasks()[index]
        ends = [r['_end'] for h, r in task['hosts'].items() if host is None or h == host]
        return max(ends) - task['start']

    def check(self, index=None):
        """Raise when any task failed, with its message."""
        for i, task in enumerate(self.tasks()):
            if index is not None and i != index:
                continue
            for host, res in task['hosts'].items():
                if res.get('failed') or res.get('unreachable'):
                    raise RuntimeError('task %r failed on %s: %s' % (task['name'], host, res.get('msg')))
        return self


def playbook(plays, state_dir, inventory='localhost,', check=False, env=None, extra_args=(), path=None):
    """Run ``plays`` (a list of play dicts, or a path) with ansible-playbook; returns a PlayRun."""
    if not isinstance(plays, str):
        for play in plays:
            play.setdefault('gather_facts', False)
            play.setdefault('module_defaults', {'group/deferred.libvirt.all': {'uri': URI, 'state_dir': state_dir}})
        path = os.path.join(BUILD, 'plays', 'play-%s.json' % uuid.uuid4().hex[:8])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            json.dump(plays, handle)
    else:
        path = plays
    cmd = [os.path.join(VENV_BIN, 'ansible-playbook'), path, '-i', inventory] + list(extra_args)
    if check:
        cmd.append('--check')
    return PlayRun(run(cmd, env=ansible_env(**(env or {}))))


def local_play(tasks, **kw):
    play = {'hosts': 'localhost', 'connection': 'local', 'gather_facts': False, 'tasks': tasks}
    play.update(kw)
    return play


def module_direct(module, args, env=None):
    """Run a collection module as its own process, the way AnsiballZ runs it (args file), without a controller.

    Returns (Proc, result dict). Proc.maxrss_mb is the module process's own peak RSS.
    """
    path = os.path.join(BUILD, 'args-%s.json' % uuid.uuid4().hex[:8])
    with open(path, 'w') as handle:
        json.dump({'ANSIBLE_MODULE_ARGS': args}, handle)
    env = dict(os.environ, **(env or {}))
    env['PYTHONPATH'] = COLLECTIONS + (os.pathsep + env['PYTHONPATH'] if (env or {}).get('PYTHONPATH') else '')
    proc = run([PYTHON, '-m', 'ansible_collections.deferred.libvirt.plugins.modules.%s' % module, path], env=env)
    os.unlink(path)
    try:
        result = json.loads(proc.stdout)
    except ValueError:
        raise RuntimeError('module %s printed no JSON (rc %s): %s %s' % (module, proc.rc, proc.stdout[-1000:],
                                                                         proc.stderr[-1000:]))
    return proc, result


# -- guests -------------------------------------------------------------------

_conn = None


def conn():
    """The benchmark's libvirt connection, opened again if libvirtd restarted (other users of the host may do that)."""
    global _conn
    try:
        alive = _conn is not None and _conn.isAlive()
    except Exception:
        alive = False
    if not alive:
        deadline = time.monotonic() + 60
        while True:
            try:
                _conn = guests.connect(URI)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(1)
    return _conn


def boot_guests(names, kind='acpi', settle=1.0, timeout=180):
    """Define and start the guests together, wait until each prints its ready line (acpid listening)."""
    for name in names:
        guests.define_guest(conn(), name, kind=kind, start=True, wait_ready=False)
    for name in names:
        guests.wait_ready(name, timeout=timeout)
    # The ready line comes right after acpid is forked: give it a moment to open the power button.
    time.sleep(settle)


def wait_console_ready(name, timeout=180):
    guests.wait_ready(name, timeout=timeout)


def cleanup(prefix):
    for attempt in range(3):
        try:
            return guests.destroy_all(conn(), prefix)
        except Exception:
            if attempt == 2:
                raise
            time.sleep(2)


def state_dir(name):
    path = os.path.join(BUILD, 'state-%s-%s' % (name, RUN_ID))
    return path


# -- statistics and rows ------------------------------------------------------

def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


class Row(object):
    """One line of the table.

    measured and reference are strings already formatted; figure is the
    ratio or difference the target is judged on; verdict is 'met', 'MISSED',
    'info' or 'skipped'.
    """

    def __init__(self, bench, case, measured, reference='', figure='', target='', verdict='info', note=''):
        self.bench, self.case, self.measured, self.reference = bench, case, measured, reference
        self.figure, self.target, self.verdict, self.note = figure, target, verdict, note

    def as_dict(self):
        return dict(self.__dict__)


def verdict(ok):
    return 'met' if ok else 'MISSED'


def fmt_s(seconds, digits=2):
    return '-' if seconds is None else ('%.*f s' % (digits, seconds))


def fmt_mb(mb):
    return '-' if mb is None else '%.0f MiB' % mb


def table(rows):
    """A Markdown table (readable in a terminal, pasted as is into docs/performance.md)."""
    head = ['#', 'benchmark: case', 'measured', 'reference (same run)', 'figure', 'target', 'result']
    lines = []
    for r in rows:
        lines.append([r.bench.split(' ', 1)[0], '%s: %s' % (r.bench.split(' ', 1)[-1], r.case), r.measured,
                      r.reference, r.figure, r.target, r.verdict + (' (%s)' % r.note if r.note else '')])
    widths = [max(len(str(x)) for x in col) for col in zip(head, *lines)] if lines else [len(h) for h in head]
    out = ['| ' + ' | '.join(h.ljust(w) for h, w in zip(head, widths)) + ' |',
           '|' + '|'.join('-' * (w + 2) for w in widths) + '|']
    for line in lines:
        out.append('| ' + ' | '.join(str(c).ljust(w) for c, w in zip(line, widths)) + ' |')
    return '\n'.join(out)
