# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""5. Fleet: the reclaim sweep over H inventory hosts with Ansible's default forks (5).

The hosts all reach the local hypervisor (ansible_connection=local), each
scoped to its own project with its own domains (shut off, records written
directly): per host one soft-deleted domain whose reclaim_at has passed and
two stopped ones, so every host reclaims exactly one domain and reads them
all. The play is playbooks/reclaim.yml (the deferred.libvirt.reclaim role:
the sweep, a fleet summary, a failure check) with each host's project in
``reclaim_project`` and its own ``deferred_libvirt_state_dir``, as separate
hypervisors would have; before that playbook existed, one vm_reclaim task.
The per-host figure is the vm_reclaim task, from its start to that host's
result (so it includes the wait for a free fork).

Time per host is the whole ansible-playbook wall time over H; growth is the
cost of each added host between the smallest and the largest fleet.

The price of safety (issue 26, item 6): each size runs the sweep three
ways over fresh domains, in alternating order: without the fleet index
(playbooks/reclaim.yml with ``reclaim_fleet_view=false``: no vm_info
round, no index, the modules fall back to the record's host), the
fleet-safe sweep as one play gathers and indexes itself (reclaim.yml as it
is), and the sweep with a fresh cached
slice (playbooks/fleet_gather.yml and fleet_index.yml first, untimed, then
fleet_sweep.yml timed, all three with ansible-core's jsonfile fact cache in
a directory of the run and one ``deferred_libvirt_fleet_run``). The ratios are the fleet-safe walls over the
unsafe one: at most 1.25x for the play that indexes itself, at most 1.1x
with the cached slice. Each sweep's result is checked: one domain reclaimed per host,
and the fleet slice given exactly in the fleet-safe cases.
"""

import datetime
import json
import os

import lib

NAME = '5 fleet'
SIZES = {'full': [2, 8, 32], 'quick': [2, 8]}
DOMAINS_PER_HOST = 3
REPS = 2
PLAYBOOK = os.path.join(lib.ROOT, 'playbooks', 'reclaim.yml')


def _define(prefix, project):
    import libvirt
    record_mod = lib.collection_module('_record')
    now = record_mod.utcnow()
    for i in range(DOMAINS_PER_HOST):
        name = '%s%d' % (prefix, i)
        dom = lib.conn().defineXML("<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
                                   "<os><type arch='x86_64'>hvm</type></os></domain>" % name)
        record = record_mod.empty()
        record.update(project=project, user='bench')
        if i == 0:
            record.update(vm_state='soft_deleted', soft_delete_mode='shutdown',
                          deleted_at=record_mod.format_time(now - datetime.timedelta(days=8)),
                          reclaim_at=record_mod.format_time(now - datetime.timedelta(hours=1)))
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, record_mod.serialize(record), record_mod.PREFIX,
                        record_mod.NAMESPACE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def _inventory(path, hosts, state_root):
    inv = {'all': {'children': {'hypervisors': {'hosts': {}}}}}
    for host, project in hosts:
        inv['all']['children']['hypervisors']['hosts'][host] = {
            'ansible_connection': 'local', 'ansible_python_interpreter': lib.PYTHON,
            'reclaim_project': project, 'deferred_libvirt_state_dir': os.path.join(state_root, host)}
    with open(path, 'w') as handle:
        json.dump(inv, handle)
    return path


def _play():
    if os.path.exists(PLAYBOOK):
        return PLAYBOOK, 'playbooks/reclaim.yml'
    play = {'hosts': 'hypervisors', 'gather_facts': False,
            'module_defaults': {'group/deferred.libvirt.all': {'uri': lib.URI,
                                                               'state_dir': '{{ deferred_libvirt_state_dir }}'}},
            'tasks': [{'name': 'reclaim', 'deferred.libvirt.vm_reclaim': {'project': '{{ reclaim_project }}'}}]}
    return [play], 'one vm_reclaim task (playbooks/reclaim.yml not there yet)'


WORKFLOW = ('fleet_gather.yml', 'fleet_index.yml', 'fleet_sweep.yml')
SAFE_TARGET = 1.25
CACHED_TARGET = 1.1


def _sweeps(result):
    """{host: (task index, its vm_reclaim result)}: the sweep play runs with the free strategy, so each host's
    vm_reclaim can be a task entry of its own."""
    found = {}
    for i, task in enumerate(result.tasks()):
        for host, res in task['hosts'].items():
            if 'summary' in res and 'reclaimed' in res:
                found[host] = (i, res)
    return found


def _reclaimed(result, size, what, fleet_given=None):
    """How many domains the sweep reclaimed on every host; RuntimeError with what it said when not one per host, or
    when the fleet slice was (``fleet_given`` False) or was not (True) handed to every host's sweep."""
    sweeps = _sweeps(result)
    reclaimed = sum(len(res.get('reclaimed') or []) for dummy, res in sweeps.values())
    if reclaimed != size or len(sweeps) != size:
        said = [(h, r.get('msg'), r.get('skipped_domains'), r.get('stale_undefined'))
                for h, (dummy, r) in sorted(sweeps.items())][:2]
        raise RuntimeError('%s of %d hosts reclaimed %d domains on %d hosts, expected one per host; the sweep said: %s'
                           % (what, size, reclaimed, len(sweeps), json.dumps(said, default=str)[:1500]))
    if fleet_given is not None:
        wrong = [(h, r.get('fleet')) for h, (dummy, r) in sorted(sweeps.items())
                 if bool((r.get('fleet') or {}).get('given')) != fleet_given]
        if wrong:
            raise RuntimeError('%s of %d hosts: the fleet slice was %s: %s' % (
                what, size, 'not given' if fleet_given else 'given', json.dumps(wrong[:2])[:800]))
    return sweeps


def _case(case, size, rep, base, hosts):
    """One timed sweep over fresh domains: its wall seconds (and for 'safe' the per-host task times)."""
    tag = '%sh%d-r%d-' % (base, size, rep)
    for host, project in hosts:
        _define('%s%s-%s-' % (tag, case, host), project)
    name = 'fleet-%d-%d-%s' % (size, rep, case)
    path = _inventory(os.path.join(lib.BUILD, name + '.json'), hosts, lib.state_dir(name))
    try:
        if case == 'cached':
            cache = os.path.join(lib.BUILD, name + '-cache')
            env = {'ANSIBLE_CACHE_PLUGIN': 'jsonfile', 'ANSIBLE_CACHE_PLUGIN_CONNECTION': cache}
            # The three steps of one workflow run share its id, as the AWX workflow job's id is shared.
            extra = ['-e', 'deferred_libvirt_fleet_run=%s' % name]
            for step in WORKFLOW[:2]:
                lib.log('fleet: %s over %d hosts (untimed)' % (step, size))
                lib.playbook(os.path.join(lib.ROOT, 'playbooks', step), None, inventory=path, env=env,
                             extra_args=extra).check()
            lib.log('fleet: fleet_sweep.yml over %d hosts with the cached slices' % size)
            result = lib.playbook(os.path.join(lib.ROOT, 'playbooks', WORKFLOW[2]), None, inventory=path,
                                  env=env, extra_args=extra).check()
            _reclaimed(result, size, 'cached-slice sweep', fleet_given=True)
            return {'cached': result.seconds}
        play, used = _play()
        extra = ['-e', 'reclaim_fleet_view=false'] if case == 'unsafe' else []
        lib.log('fleet: reclaim over %d hosts (%s)' % (size, case))
        result = lib.playbook(play, None, inventory=path, extra_args=extra).check()
        given = None if not isinstance(play, str) else case == 'safe'
        sweeps = _reclaimed(result, size, '%s sweep' % case, fleet_given=given)
        if case == 'unsafe':
            return {'unsafe': result.seconds}
        per_host = [result.task_seconds(sweeps[host][0], host) for host, dummy in hosts]
        return {'wall': result.seconds, 'slowest': max(per_host), 'fastest': min(per_host), 'rss': result.maxrss_mb,
                'used': used}
    finally:
        lib.cleanup(tag + case + '-')


def run(sizes, reps=1):
    base = 'bench-fleet-%s-' % lib.RUN_ID
    measured = {}
    used = None
    cases = ['unsafe', 'safe', 'cached']
    try:
        for size in sizes:
            runs = []
            for rep in range(reps):
                hosts = [('hv%02d' % h, 'bench-fleet-%s-r%d-hv%02d' % (lib.RUN_ID, rep, h)) for h in range(size)]
                got = {}
                # Alternating order: a machine getting busier over the run does not favour one case.
                for case in (cases if rep % 2 == 0 else cases[::-1]):
                    got.update(_case(case, size, rep, base, hosts))
                used = got.pop('used')
                runs.append(got)
            measured[size] = dict((k, lib.median([r[k] for r in runs])) for k in runs[0])
    finally:
        lib.cleanup(base)
    return rows(measured, sizes, reps, used)


def rows(measured, sizes, reps, used):
    out = []
    note = ('median of %d; ' % reps if reps > 1 else '') + (used or '')
    first = sizes[0]
    for size in sizes:
        m = measured[size]
        growth = ''
        if size != first:
            growth = '+%.2f s per added host' % ((m['wall'] - measured[first]['wall']) / (size - first))
        out.append(lib.Row(
            NAME, '%d hosts, forks 5' % size,
            '%s wall, %.2f s per host' % (lib.fmt_s(m['wall']), m['wall'] / size),
            'task on one host: %s-%s' % (lib.fmt_s(m['fastest']), lib.fmt_s(m['slowest'])),
            growth, '', 'info', note if size == first else ''))
    # The price of safety: each fleet-safe sweep's wall over the sweep without the index (item 6's two targets).
    for key, case, target, how in (
            ('wall', 'one play gathers and indexes (reclaim.yml)', SAFE_TARGET,
             'vm_info on every host + one fleet_index pass, once per play'),
            ('cached', 'with a fresh cached slice (fleet_sweep.yml)', CACHED_TARGET,
             'after fleet_gather.yml and fleet_index.yml (untimed), jsonfile fact cache')):
        for size in sizes:
            m = measured[size]
            ratio = m[key] / m['unsafe']
            out.append(lib.Row(
                NAME, 'fleet-safe sweep, %s, %d hosts' % (case, size),
                '%s wall, +%.0f ms per host' % (lib.fmt_s(m[key]), 1000 * (m[key] - m['unsafe']) / size),
                'without the index (reclaim_fleet_view=false) %s' % lib.fmt_s(m['unsafe']),
                'x%.2f' % ratio, '<= %.2fx' % target, lib.verdict(ratio <= target), how if size == first else ''))
    return out
