# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""7. The control node at fleet scale: the roles' filters over H hosts x 50 domains, time and memory.

The fleet filters (plugins/plugin_utils/_fleet_state.py, _fleet_index.py, _quota.py,
_reclaim_summary.py) run on the control node over every
host's result: fleet_state (the state_facts role's fleet fact from each
host's vm_info), fleet_locate and quota_check (the quota role: find a batch
of 100 names in the fleet, check restoring them against limits),
fleet_index (rules 9 and 10, once per play, then fleet_index_for for every
host's slice) and reclaim_summary (the reclaim role's summary of each host's
vm_reclaim).

The inputs are shaped exactly like the modules' output because they are made
from it: at the start, vm_soft_delete, vm_info and vm_reclaim run for real on
three domains of this host (each with a qcow2 disk, one soft-deleted and
expired, one soft-deleted, one stopped) and their results are the templates.
bench/control_worker.py then builds H hosts' results from them (50 records a
host, 10% soft-deleted, projects spread over the fleet; each host's result
through json.loads, as Ansible receives it, so nothing is shared between
hosts) and times the filters, one size per process: the median of the
calls, the process's resident set with the inputs built, and its peak
during the filter's calls (reset before them). The filter's memory is that
peak less the inputs. Hostvars are plain dicts
here; under ansible-playbook each access goes through HostVars templating,
which this leaves out.
"""

import json
import os
import time

import lib

NAME = '7 control node'
SIZES = {'full': [100, 500, 1000], 'quick': [100, 300]}
DOMAINS_PER_HOST = 50
FILTERS = ('fleet_state', 'fleet_locate', 'quota_check', 'fleet_index', 'reclaim_summary')
WORKER = os.path.join(lib.BENCH, 'control_worker.py')
TARGET_SECONDS = 2.0
TARGET_MB = 500.0
TARGET_AT = 1000
LINEAR_SLACK = 1.5
NOISE_SECONDS = 0.1
IMAGES = '/var/lib/libvirt/images'


def templates(path):
    """Real vm_info and vm_reclaim results from three domains of this host, written to ``path``."""
    prefix = 'bench-control-%s-' % lib.RUN_ID
    project = 'bench-control-%s' % lib.RUN_ID
    state_dir = lib.state_dir('control')
    names = [prefix + s for s in ('expired', 'kept', 'stopped')]
    args = {'uri': lib.URI, 'state_dir': state_dir}
    try:
        for name in names:
            disk = lib.guests.make_disk(os.path.join(IMAGES, name + '.qcow2'))
            lib.guests.define_guest(lib.conn(), name, start=False, disks=[{'path': disk, 'target': 'vdb'}])
        _module('vm_attributes', dict(args, name=names, project=project, user='bench'))
        # A Cinder volume in the record (not on the expired one: the template sweep has no Cinder to settle it).
        _module('vm_attributes', dict(args, name=names[1:], volumes=[
            {'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'target': 'vdc', 'delete_on_termination': True}]))
        _module('vm_soft_delete', dict(args, name=names[0], project=project, reclaim_interval=1))
        _module('vm_soft_delete', dict(args, name=names[1], project=project, reclaim_interval='7d'))
        time.sleep(1.5)
        info = _module('vm_info', dict(args, name=names[1]))
        # The template record is the soft-deleted one with its history; the worker sets each copy's state.
        rest = dict((k, v) for k, v in info.items() if k not in ('instances', 'ansible_facts', 'invocation'))
        reclaim = _module('vm_reclaim', dict(args, project=project))
        if len(reclaim.get('reclaimed') or []) != 1 or len(reclaim.get('kept') or []) != 1:
            raise RuntimeError('template sweep reclaimed %s and kept %s, expected one each'
                               % (reclaim.get('reclaimed'), reclaim.get('kept')))
        reclaim_rest = dict((k, v) for k, v in reclaim.items() if k not in ('reclaimed', 'kept', 'invocation'))
        data = {'record': info['instances'][0], 'vm_info_rest': rest,
                'facts_keys': [k for k, v in (info.get('ansible_facts') or {}).items() if v == info['instances']],
                'reclaimed': reclaim['reclaimed'][0], 'kept': reclaim['kept'][0], 'reclaim_rest': reclaim_rest}
        with open(path, 'w') as handle:
            json.dump(data, handle)
        return data
    finally:
        lib.cleanup(prefix)
        for name in names:
            if os.path.exists(os.path.join(IMAGES, name + '.qcow2')):
                os.unlink(os.path.join(IMAGES, name + '.qcow2'))


def _module(module, args):
    dummy, result = lib.module_direct(module, args)
    if result.get('failed'):
        raise RuntimeError('%s failed: %s' % (module, result.get('msg')))
    return result


def _worker(names, hosts, path, reps):
    proc = lib.run([lib.PYTHON, WORKER, ','.join(names), str(hosts), str(DOMAINS_PER_HOST), path, lib.COLLECTIONS,
                    str(reps)])
    if proc.rc != 0:
        raise RuntimeError('%s over %d hosts failed: %s' % (', '.join(names), hosts, proc.stderr[-800:]))
    return [json.loads(line) for line in proc.stdout.strip().splitlines() if line.startswith('{')]


def run(sizes, reps=3):
    path = os.path.join(lib.BUILD, 'control-templates.json')
    templates(path)
    measured = {}
    # The quota role's filters read the fleet fact: they share a process with fleet_state (each with its own peak).
    for group in (FILTERS[:4], FILTERS[4:]):
        for hosts in sizes:
            for m in _worker(group, hosts, path, reps):
                lib.log('control: %s over %d hosts: %.3f s, inputs %.0f MiB, peak %.0f MiB'
                        % (m['filter'], hosts, m['seconds'], m['inputs_mb'], m['peak_mb']))
                measured[(m['filter'], hosts)] = m
    return rows(measured, sizes, reps)


def rows(measured, sizes, reps):
    out = []
    note = 'median of %d calls' % reps if reps > 1 else ''
    top = max(sizes)
    for name in FILTERS:
        for hosts in sizes:
            m = measured[(name, hosts)]
            own = max(0.0, m['peak_mb'] - m['inputs_mb'])
            judged = hosts == TARGET_AT
            out.append(lib.Row(
                NAME, '%s, %d hosts x %d domains' % (name, hosts, DOMAINS_PER_HOST),
                '%s, +%s over its inputs' % (lib.fmt_s(m['seconds'], 3), lib.fmt_mb(own)),
                'inputs %s, process peak %s' % (lib.fmt_mb(m['inputs_mb']), lib.fmt_mb(m['peak_mb'])),
                '%.1f us/record' % (1e6 * m['seconds'] / m['records']),
                '< %.0f s, < %.0f MiB' % (TARGET_SECONDS, TARGET_MB) if judged else '',
                lib.verdict(m['seconds'] < TARGET_SECONDS and own < TARGET_MB) if judged else 'info', note))
        if len(sizes) >= 3:
            a, b, c = sizes[:3]
            ta, tb, tc = (measured[(name, s)]['seconds'] for s in (a, b, c))
            first, second = (tb - ta) / (b - a), (tc - tb) / (c - b)
            ok = tc - tb <= LINEAR_SLACK * max(first, 0.0) * (c - b) + NOISE_SECONDS
            out.append(lib.Row(NAME, '%s growth %s hosts' % (name, '->'.join(str(s) for s in sizes)),
                               ' / '.join(lib.fmt_s(measured[(name, s)]['seconds'], 3) for s in sizes), '',
                               'per added host %.2f then %.2f ms' % (1000 * first, 1000 * second), 'linear',
                               lib.verdict(ok), 'second step at most %.1fx the first, +%.1f s for noise'
                               % (LINEAR_SLACK, NOISE_SECONDS)))
        elif len(sizes) == 2:
            a, b = sizes
            ta, tb = (measured[(name, s)]['seconds'] for s in (a, b))
            out.append(lib.Row(NAME, '%s growth %d->%d hosts' % (name, a, b), '%s / %s' % (
                lib.fmt_s(ta, 3), lib.fmt_s(tb, 3)), '', '%.2fx for %.1fx the hosts' % (tb / ta, b / float(a)),
                '', 'info'))
    del top
    return out
