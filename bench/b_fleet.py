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

The fleet index (rules 9 and 10: which copy of a domain is authoritative,
which disks another domain uses) needs every host's vm_info and one
deferred.libvirt.fleet_index pass on the control node before the sweep. Each
size also runs the sweep behind that: the state_facts role (vm_info on every
host, scoped to the host's project so each bench host reports only its own
domains, as separate hypervisors would) plus the index, once per play. Its
cost per host is (with index - without) / H, and the ratio is with / without;
the index task alone is the controller's share.
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


def _indexed_play():
    """state_facts + the fleet index, then the same sweep: what the roles do once rule 9 and 10 are wired."""
    return [{'hosts': 'hypervisors', 'gather_facts': False,
             'roles': [{'role': 'deferred.libvirt.state_facts',
                        'vars': {'state_facts_project': '{{ reclaim_project }}', 'state_facts_show': False}}],
             'post_tasks': [{'name': 'Index the fleet', 'run_once': True, 'ansible.builtin.set_fact': {
                 'fleet_index': '{{ hostvars | deferred.libvirt.fleet_index(ansible_play_hosts_all) }}'}}]},
            {'hosts': 'hypervisors', 'gather_facts': False, 'roles': ['deferred.libvirt.reclaim']}]


def _sweeps(result):
    """{host: (task index, its vm_reclaim result)}: the sweep play runs with the free strategy, so each host's
    vm_reclaim can be a task entry of its own."""
    found = {}
    for i, task in enumerate(result.tasks()):
        for host, res in task['hosts'].items():
            if 'summary' in res and 'reclaimed' in res:
                found[host] = (i, res)
    return found


def _reclaimed(result, size, what):
    """How many domains the sweep reclaimed on every host; RuntimeError with what it said when not one per host."""
    sweeps = _sweeps(result)
    reclaimed = sum(len(res.get('reclaimed') or []) for dummy, res in sweeps.values())
    if reclaimed != size or len(sweeps) != size:
        said = [(h, r.get('msg'), r.get('skipped_domains'), r.get('stale_undefined'))
                for h, (dummy, r) in sorted(sweeps.items())][:2]
        raise RuntimeError('%s of %d hosts reclaimed %d domains on %d hosts, expected one per host; the sweep said: %s'
                           % (what, size, reclaimed, len(sweeps), json.dumps(said, default=str)[:1500]))
    return sweeps


def run(sizes, reps=1):
    base = 'bench-fleet-%s-' % lib.RUN_ID
    measured = {}
    used = None
    try:
        for size in sizes:
            runs = []
            for rep in range(reps):
                hosts = []
                for h in range(size):
                    host = 'hv%02d' % h
                    project = 'bench-fleet-%s-r%d-%s' % (lib.RUN_ID, rep, host)
                    _define('%sh%d-r%d-%s-' % (base, size, rep, host), project)
                    hosts.append((host, project))
                path = _inventory(os.path.join(lib.BUILD, 'fleet-%d-%d.json' % (size, rep)), hosts,
                                  lib.state_dir('fleet-%d-%d' % (size, rep)))
                play, used = _play()
                lib.log('fleet: reclaim over %d hosts' % size)
                result = lib.playbook(play, None, inventory=path).check()
                sweeps = _reclaimed(result, size, 'fleet')
                per_host = [result.task_seconds(sweeps[host][0], host) for host, dummy in hosts]
                runs.append({'wall': result.seconds, 'slowest': max(per_host), 'fastest': min(per_host),
                             'rss': result.maxrss_mb})
                lib.cleanup('%sh%d-r%d-' % (base, size, rep))
                # The same fleet again (fresh domains, fresh state_dirs), swept behind state_facts + the fleet index.
                for host, project in hosts:
                    _define('%sh%d-r%d-%s-i-' % (base, size, rep, host), project)
                path = _inventory(os.path.join(lib.BUILD, 'fleet-%d-%d-indexed.json' % (size, rep)), hosts,
                                  lib.state_dir('fleet-%d-%d-indexed' % (size, rep)))
                lib.log('fleet: state_facts + fleet index + reclaim over %d hosts' % size)
                indexed = lib.playbook(_indexed_play(), None, inventory=path).check()
                tasks = indexed.tasks()
                built = next(i for i, task in enumerate(tasks) if task['name'] == 'Index the fleet')
                fleet_index = next(iter(tasks[built]['hosts'].values()))['ansible_facts']['fleet_index']
                if len(fleet_index['hosts']) != size or fleet_index['stale']:
                    raise RuntimeError('fleet index of %d hosts is wrong: %d hosts, %d stale'
                                       % (size, len(fleet_index['hosts']), len(fleet_index['stale'])))
                _reclaimed(indexed, size, 'indexed fleet')
                runs[-1].update(indexed=indexed.seconds, index_task=indexed.task_seconds(built))
                lib.cleanup('%sh%d-r%d-' % (base, size, rep))
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
    for size in sizes:
        m = measured[size]
        if m.get('indexed') is None:
            continue
        out.append(lib.Row(
            NAME, 'fleet index, %d hosts' % size,
            '%s wall with state_facts + index, +%.0f ms per host' % (
                lib.fmt_s(m['indexed']), 1000 * (m['indexed'] - m['wall']) / size),
            'sweep alone %s; index task %.0f ms (%.1f ms per host)' % (
                lib.fmt_s(m['wall']), 1000 * m['index_task'], 1000 * m['index_task'] / size),
            'x%.2f' % (m['indexed'] / m['wall']), '', 'info',
            'vm_info on every host + one fleet_index pass, once per play' if size == first else ''))
    return out
