# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""6. Side by side with community.libvirt: soft delete, restore and terminate of N guests with each.

The peer is community.libvirt as its users get it (lib.install_peer: the
pinned ``ansible`` package from PyPI, its collection extracted into the
bench's own collections path), driven by the playbooks an operator would
write with it (bench/peer/*.yml): ``virt state=shutdown`` for every guest,
an ``until:`` loop on ``virt command=status`` (every second, up to 60 s),
``state=destroyed`` for those still running; ``state=running`` and a wait
for ``running``; ``get_xml`` for the disks, ``destroyed``, ``undefine`` with
the metadata flags, and the disk files deleted with ``file``. Ours is one
task each: vm_soft_delete, vm_restore, vm_terminate with ``name: [N names]``.

Every cycle boots N fresh ACPI guests, each with its own qcow2 disk in the
default pool's directory, and runs the three jobs on them with one tool;
the two tools alternate (ours first in even repetitions, the peer first in
odd ones), so both see the same host load. A job's time is the whole
playbook from its first task's start to its last result (ansible-playbook's
start-up, the same for both, left out). The last repetition runs with
bench/counting on PYTHONPATH, which counts the libvirt calls of every module
process (about a microsecond a call, on both sides alike).
"""

import collections
import json
import os
import time
import uuid

import lib

NAME = '6 vs community.libvirt'
SIZES = {'full': [1, 8], 'quick': [1, 2]}
REPS = 2
# One guest's soft delete is mostly that guest's own ACPI shutdown, which varies by a few tenths of a second from boot
# to boot here: N=1 gets at least this many repetitions (with more than one asked for), and its rows give the range.
ONE_GUEST_REPS = 6
PEER_DIR = os.path.join(lib.BENCH, 'peer')
JOBS = ('soft_delete', 'restore', 'terminate')
IMAGES = '/var/lib/libvirt/images'
TARGET_BULK = 4.0
# One guest's soft delete against the peer's playbook (issue 26): ours at least this many times faster, at the median.
TARGET_ONE = 1.1
TARGET_BULK_N = 8  # the bulk target is for 8 guests (the quick sizes stop at 2: their rows are information)


def _boot(names):
    for name in names:
        lib.guests.make_disk(os.path.join(IMAGES, name + '.qcow2'))
    for name in names:
        lib.guests.define_guest(lib.conn(), name, kind='acpi', start=True, wait_ready=False,
                                disks=[{'path': os.path.join(IMAGES, name + '.qcow2'), 'target': 'vdb'}])
    for name in names:
        lib.guests.wait_ready(name, timeout=180)
    time.sleep(1.0)  # acpid opens the power button right after the ready line


def _ours(job, names, state_dir, env=None):
    module = {'soft_delete': 'vm_soft_delete', 'restore': 'vm_restore', 'terminate': 'vm_terminate'}[job]
    args = {'name': names}
    if job == 'soft_delete':
        args['reclaim_interval'] = '7d'
    play = lib.playbook([lib.local_play([{'name': job, 'deferred.libvirt.%s' % module: args}])], state_dir,
                        env=env).check()
    return play


def _peer(job, names, env=None):
    path = os.path.join(lib.BUILD, 'peer-vars-%s.json' % uuid.uuid4().hex[:8])
    with open(path, 'w') as handle:
        json.dump({'guests': names}, handle)
    env = dict(env or {})
    # The peer's own requirement lxml, from the bench's cache (see lib.install_peer).
    env['PYTHONPATH'] = lib.PEER_LIB + (os.pathsep + env['PYTHONPATH'] if env.get('PYTHONPATH') else '')
    try:
        play = lib.playbook(os.path.join(PEER_DIR, '%s.yml' % job), None, extra_args=['-e', '@' + path], env=env)
    finally:
        os.unlink(path)
    # The wait task ignores its errors (the destroy fallback follows it); any other failure is a broken run.
    for task in play.tasks():
        for host, res in task['hosts'].items():
            if res.get('failed') and not task['name'].startswith('Wait until shut off'):
                raise RuntimeError('peer %s task %r failed: %s' % (job, task['name'], res.get('msg')))
    return play


def _check_gone(names):
    left = [n for n in names if lib.guests._exists(lib.conn(), n)]
    disks = [n for n in names if os.path.exists(os.path.join(IMAGES, n + '.qcow2'))]
    if left or disks:
        raise RuntimeError('after terminate: still defined %s, disks left %s' % (left, disks))


def _check_state(names, wanted):
    states = [lib.conn().lookupByName(n).state()[0] for n in names]
    if any(s != wanted for s in states):
        raise RuntimeError('guests in states %s, expected %d' % (states, wanted))


def _cycle(tool, names, state_dir, counting=None):
    """Boot the guests, then soft delete, restore, terminate them with ``tool``: {job: seconds, 'counts': ...}."""
    _boot(names)
    out = {}
    for job, after in zip(JOBS, (5, 1, None)):
        env = lib.counting_env(os.path.join(counting, tool, job)) if counting else None
        play = _ours(job, names, state_dir, env) if tool == 'ours' else _peer(job, names, env)
        if after is None:
            _check_gone(names)
        else:
            _check_state(names, after)
        if counting:
            out.setdefault('counts', {})[job] = lib.read_counts(os.path.join(counting, tool, job))
        out[job] = play.play_seconds()
        if tool == 'ours' and job == 'soft_delete':
            inst = play.result(0)['instances']
            out['clean'] = all(i.get('clean_shutdown') for i in inst)
        if tool == 'peer' and job == 'soft_delete':
            out['clean'] = not any(r.get('changed') for t in play.tasks()[2:] for r in t['hosts'].values()
                                   if not r.get('skipped'))
    return out


def run(sizes, reps=2):
    lib.log('peer: community.libvirt %s from ansible %s' % (lib.install_peer(), lib.PEER_ANSIBLE))
    prefix = 'bench-peer-%s-' % lib.RUN_ID
    state_dir = lib.state_dir('peer')
    timed, counted = {}, {}
    try:
        for n in sizes:
            these = max(reps, ONE_GUEST_REPS) if n == 1 and reps > 1 else reps
            for rep in range(these):
                order = ('ours', 'peer') if rep % 2 == 0 else ('peer', 'ours')
                # The last repetition also counts the libvirt calls (a microsecond a call, on both sides alike).
                counting = os.path.join(lib.BUILD, 'counts-peer') if rep == these - 1 else None
                for tool in order:
                    names = ['%s%s%d-%d-%d' % (prefix, tool[0], n, rep, i) for i in range(n)]
                    lib.log('peer: %s, N=%d, repetition %d' % (tool, n, rep + 1))
                    cycle = _cycle(tool, names, state_dir, counting)
                    timed.setdefault((tool, n), []).append(cycle)
                    if counting:
                        counted[(tool, n)] = cycle['counts']
                    lib.cleanup(prefix)
    finally:
        lib.cleanup(prefix)
        for name in os.listdir(IMAGES):
            if name.startswith(prefix):
                os.unlink(os.path.join(IMAGES, name))
    extra = fixed_costs() if 1 in sizes else []
    return rows(timed, counted, sizes, reps) + extra


# What the controller does before any module of a run's first task starts: build its AnsiballZ payload (ansible-core
# parses every module_utils file any import of the module reaches, then zips them), once per module and run.
BUILD_PAYLOAD = r'''
import json, sys, time
from ansible.plugins.loader import init_plugin_loader, module_loader
init_plugin_loader([sys.argv[1]])
from ansible.executor import module_common
from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar
out = {}
for fqcn in sys.argv[2:]:
    path = module_loader.find_plugin(fqcn)
    began = time.perf_counter()
    data = module_common.modify_module(fqcn.split('.')[-1], path, {}, Templar(loader=DataLoader()),
                                       task_vars={'ansible_python_interpreter': sys.executable},
                                       module_compression='ZIP_DEFLATED')[0]
    out[fqcn] = [time.perf_counter() - began, len(data)]
print(json.dumps(out))
'''
FIXED_MODULES = ('deferred.libvirt.vm_soft_delete', 'community.libvirt.virt')


def fixed_costs(reps=3):
    """The fixed cost of a task, ours against the peer's, median of ``reps``: (1) the controller building the module's
    AnsiballZ payload, in a process of its own; (2) the first and the second task of one play, each a module run that
    finds nothing to do (vm_soft_delete of a name no domain has, virt command=list_vms), so the second shows the cost
    without the payload build, which ansible-core caches for the rest of the run."""
    built = collections.defaultdict(list)
    for dummy in range(reps):
        proc = lib.run([lib.PYTHON, '-c', BUILD_PAYLOAD, lib.COLLECTIONS] + list(FIXED_MODULES))
        if proc.rc != 0:
            raise RuntimeError('building the AnsiballZ payloads failed: %s' % proc.stderr[-2000:])
        for fqcn, measured in json.loads(proc.stdout).items():
            built[fqcn].append(measured)
    tasks = {'ours': {'deferred.libvirt.vm_soft_delete': {'name': ['bench-peer-no-such-domain']}, 'ignore_errors': True},
             'peer': {'community.libvirt.virt': {'command': 'list_vms', 'uri': lib.URI}}}
    firsts = collections.defaultdict(list)
    for rep in range(reps):
        for tool in (('ours', 'peer') if rep % 2 == 0 else ('peer', 'ours')):
            env = {'PYTHONPATH': lib.PEER_LIB} if tool == 'peer' else None
            play = lib.playbook([lib.local_play([dict(tasks[tool], name='first'), dict(tasks[tool], name='second')])],
                                lib.state_dir('peer'), env=env)
            firsts[tool].append((play.task_seconds(0), play.task_seconds(1)))
    ours_b, peer_b = [(lib.median([m[0] for m in built[f]]), built[f][0][1]) for f in FIXED_MODULES]
    out = [lib.Row(NAME, 'fixed cost: AnsiballZ payload built on the controller, once per module and run',
                   '%s, %d KB (vm_soft_delete)' % (lib.fmt_s(ours_b[0]), ours_b[1] // 1024),
                   'virt: %s, %d KB' % (lib.fmt_s(peer_b[0]), peer_b[1] // 1024),
                   '+%.2f s' % (ours_b[0] - peer_b[0]), '', 'info', 'median of %d' % reps)]
    for index, which in ((0, 'first task of a run'), (1, 'second task (payload cached)')):
        ours_t = lib.median([f[index] for f in firsts['ours']])
        peer_t = lib.median([f[index] for f in firsts['peer']])
        out.append(lib.Row(NAME, 'fixed cost: %s that finds nothing to do' % which,
                           '%s (vm_soft_delete, unknown name)' % lib.fmt_s(ours_t),
                           'virt command=list_vms: %s' % lib.fmt_s(peer_t), '+%.2f s' % (ours_t - peer_t), '', 'info',
                           'median of %d, alternating' % reps))
    return out


def rows(timed, counted, sizes, reps):
    out = []
    for n in sizes:
        for job in JOBS:
            ours = lib.median([c[job] for c in timed[('ours', n)]])
            peer = lib.median([c[job] for c in timed[('peer', n)]])
            ratio = peer / ours
            target, verdict = '', 'info'
            if job == 'soft_delete':
                if n == 1:
                    target, verdict = '>= %.1fx' % TARGET_ONE, lib.verdict(ratio >= TARGET_ONE)
                elif n == TARGET_BULK_N:
                    target, verdict = '>= %.0fx' % TARGET_BULK, lib.verdict(ratio >= TARGET_BULK)
            done = len(timed[('ours', n)])
            note = ['median of %d, alternating' % done if done > 1 else 'alternating']
            if done > 2:
                note.append('range ours %s, peer %s' % tuple(
                    '%.2f-%.2f s' % (min(c[job] for c in timed[(t, n)]), max(c[job] for c in timed[(t, n)]))
                    for t in ('ours', 'peer')))
            if job == 'soft_delete':
                clean = [c['clean'] for t in ('ours', 'peer') for c in timed[(t, n)]]
                if not all(clean):
                    note.append('a guest needed destroy')
            if ('ours', n) in counted and ('peer', n) in counted:
                o_rpc, dummy, o_calls = counted[('ours', n)][job]
                p_rpc, dummy, p_calls = counted[('peer', n)][job]
                note.append('libvirt RPCs per guest: ours %.1f (%s), peer %.1f (%s)' % (
                    o_rpc / float(n), lib.top_calls(o_calls, 3), p_rpc / float(n), lib.top_calls(p_calls, 3)))
                lib.log('peer: %s N=%d calls, ours: %s' % (job, n, json.dumps(o_calls, sort_keys=True)))
                lib.log('peer: %s N=%d calls, peer: %s' % (job, n, json.dumps(p_calls, sort_keys=True)))
            out.append(lib.Row(NAME, '%s, N=%d' % (job.replace('_', ' '), n), '%s (one task)' % lib.fmt_s(ours),
                               'community.libvirt %s playbook: %s' % (lib.PEER_VERSION, lib.fmt_s(peer)),
                               '%.1fx faster' % ratio, target, verdict, '; '.join(note)))
    return out
