# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""One controller-side filter over a synthetic fleet, in a process of its own (for benchmark 7, b_control.py).

Usage: python control_worker.py FILTER[,FILTER...] HOSTS DOMAINS TEMPLATES.json COLLECTIONS REPS [compact]

Builds HOSTS hosts' results from the real vm_info and vm_reclaim results in
TEMPLATES.json (each host's result goes through json.loads, as Ansible
receives a module's result, so no two hosts share objects), then times REPS
calls of each FILTER, printing a JSON line for each: the median seconds,
the resident set before its first call (the inputs), and the process's
peak during its calls (VmHWM, reset before them through clear_refs).

With ``compact`` (benchmark 10, b_index.py), each host's vm_info result is
cut to what the fleet index reads (the hypervisor identity and, per domain,
UUID, name, states, generation, reclaim_at, record host and the disks' and
backing files' keys): the input a cacheable per-host record of the gather
step would be, instead of full vm_info results.
"""

import copy
import datetime
import json
import statistics
import sys
import time
import uuid


def _status(key):
    with open('/proc/self/status') as handle:
        for line in handle:
            if line.startswith(key + ':'):
                return int(line.split()[1]) / 1024.0
    return None


def _stamp(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


def vm_info_result(template, host_index, domains, now, projects=200):
    """A host's vm_info result: ``domains`` records, 10% soft-deleted (a fifth of those expired), 10% stopped."""
    instances = []
    for i in range(domains):
        rec = copy.deepcopy(template['record'])
        rec['name'] = 'h%04d-vm%03d' % (host_index, i)
        rec['uuid'] = str(uuid.UUID(int=(host_index << 32) | i))
        # Projects span hosts, as tenants do: project p has domains on about a quarter of the fleet.
        rec['project'] = 'project-%03d' % ((host_index * 7 + i) % projects)
        rec['user'] = 'user-%d' % (i % 5)
        rec['vcpus'], rec['memory_mb'] = 1 + i % 4, 512 * (1 + i % 8)
        for n, disk in enumerate(rec.get('disks') or []):
            disk['path'] = '/var/lib/libvirt/images/%s-%s.qcow2' % (rec['name'], disk.get('target'))
            if disk.get('st_ino') is not None:
                disk['st_ino'] = (host_index << 20) | (i << 4) | n  # each its own file
        if i % 10 == 5:
            # One installer image on shared storage, attached to a tenth of the fleet's domains (rule 10's index).
            rec.setdefault('disks', []).append({'target': 'sda', 'device': 'cdrom', 'type': 'file',
                                                'path': '/srv/iso/installer.iso', 'pool': None, 'volume': None,
                                                'st_dev': 64768, 'st_ino': 77})
        if i % 10 == 0:
            expired = i % 50 == 0
            rec.update(vm_state='soft_deleted', power_state='shutoff', task_state=None,
                       deleted_at=_stamp(now - datetime.timedelta(days=8 if expired else 1)),
                       reclaim_at=_stamp(now + datetime.timedelta(hours=-1 if expired else 24 + i)))
        elif i % 10 == 1:
            rec.update(vm_state='stopped', power_state='shutoff', deleted_at=None, reclaim_at=None)
        else:
            rec.update(vm_state='active', power_state='running', deleted_at=None, reclaim_at=None)
        instances.append(rec)
    result = copy.deepcopy(template['vm_info_rest'])
    # Each host is a hypervisor of its own, and its records name it (as every write stamps them): the fleet index
    # then compares real identities, not one identity a thousand times.
    identity = {'uuid': str(uuid.UUID(int=(1 << 64) | host_index)), 'hostname': 'hv%04d' % host_index}
    result['hypervisor'] = dict(identity)
    for rec in instances:
        rec['host'] = dict(identity)
    result['instances'] = instances
    for key in template['facts_keys']:
        result.setdefault('ansible_facts', {})[key] = instances
    return json.loads(json.dumps(result))


# What fleet_index (plugins/plugin_utils/_fleet_index.py) reads of a vm_info result, a record and a disk.
COMPACT_RESULT = ('hypervisor', 'instances')
COMPACT_RECORD = ('name', 'uuid', 'managed', 'vm_state', 'task_state', 'power_state', 'generation', 'reclaim_at',
                  'host', 'disks', 'disks_pending')
COMPACT_DISK = ('target', 'path', 'file_path', 'pool', 'volume', 'st_dev', 'st_ino', 'backing_chain',
                'backing_chain_error')


def compact(result):
    """A vm_info result cut to what the fleet index reads (see COMPACT_*)."""
    out = dict((k, result[k]) for k in COMPACT_RESULT if k in result)
    out['instances'] = []
    for rec in result.get('instances') or []:
        small = dict((k, rec[k]) for k in COMPACT_RECORD if k in rec)
        small['disks'] = [dict((k, d[k]) for k in COMPACT_DISK if k in d) for d in rec.get('disks') or []]
        out['instances'].append(small)
    return out


def reclaim_result(template, host_index, domains, now):
    """A host's vm_reclaim result for the same fleet: the expired ones reclaimed, the other soft-deleted kept."""
    result = copy.deepcopy(template['reclaim_rest'])
    reclaimed, kept = [], []
    for i in range(0, domains, 10):
        name = 'h%04d-vm%03d' % (host_index, i)
        uid = str(uuid.UUID(int=(host_index << 32) | i))
        if i % 50 == 0:
            item = copy.deepcopy(template['reclaimed'])
            item.update(name=name, uuid=uid)
            reclaimed.append(item)
        else:
            item = copy.deepcopy(template['kept'])
            item.update(name=name, uuid=uid, reclaim_at=_stamp(now + datetime.timedelta(hours=24 + i)))
            kept.append(item)
    result['reclaimed'], result['kept'] = reclaimed, kept
    result['summary'] = dict(result['summary'], reclaimed=len(reclaimed), kept=len(kept))
    return json.loads(json.dumps(result))


def main():
    names_arg, hosts, domains, templates, collections, reps = sys.argv[1:7]
    cut = sys.argv[7:8] == ['compact']
    hosts, domains, reps = int(hosts), int(domains), int(reps)
    sys.path.insert(0, collections)
    from ansible_collections.deferred.libvirt.plugins.plugin_utils import _fleet_index
    from ansible_collections.deferred.libvirt.plugins.plugin_utils import _fleet_state
    from ansible_collections.deferred.libvirt.plugins.plugin_utils import _quota
    from ansible_collections.deferred.libvirt.plugins.plugin_utils import _reclaim_summary
    with open(templates) as handle:
        template = json.load(handle)
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    hostnames = ['hv%04d' % h for h in range(hosts)]
    calls = []
    wanted = names_arg.split(',')
    if 'reclaim_summary' in wanted:
        results = dict((h, {'reclaim_result': reclaim_result(template, i, domains, now)})
                       for i, h in enumerate(hostnames))
        calls.append(('reclaim_summary', lambda: _reclaim_summary.reclaim_summary(results, hostnames)))
    if set(wanted) & set(('fleet_state', 'fleet_locate', 'quota_check', 'fleet_index')):
        hostvars = {}
        for i, h in enumerate(hostnames):
            result = vm_info_result(template, i, domains, now)
            hostvars[h] = {'state_facts_vm_info': compact(result) if cut else result}
            del result
        fact, batch = None, None
        if set(wanted) & set(('fleet_locate', 'quota_check')):
            fact = _fleet_state.fleet_state(hostvars, hostnames)
            # A restore batch of 100 soft-deleted domains spread over the fleet, named as an operator names them.
            batch = [t['name'] for t in fact['trash'][::max(1, len(fact['trash']) // 100)]][:100]
        limits = {'default': {'instances': -1, 'cores': -1, 'ram_mb': -1}}
        calls += [('fleet_state', lambda: _fleet_state.fleet_state(hostvars, hostnames)),
                  ('fleet_locate', lambda: _fleet_state.fleet_locate(fact, batch)),
                  ('quota_check', lambda: _quota.quota_check(fact, limits, batch)),
                  # Rules 9 and 10: built once per play, then each host takes its slice (a call per host).
                  ('fleet_index', lambda: [_fleet_index.fleet_index_for(index, h)
                                           for index in [_fleet_index.fleet_index(hostvars, hostnames)] for h in hostnames])]
    for name, call in calls:
        if name not in wanted:
            continue
        # The peak so far is the inputs' (and the fleet fact's, which the quota role's filters read): start it again.
        with open('/proc/self/clear_refs', 'w') as handle:
            handle.write('5')
        inputs = _status('VmRSS')
        times = []
        for dummy in range(reps):
            t0 = time.perf_counter()
            out = call()
            times.append(time.perf_counter() - t0)
            del out
        print(json.dumps({'filter': name, 'hosts': hosts, 'records': hosts * domains,
                          'seconds': statistics.median(times), 'inputs_mb': inputs, 'peak_mb': _status('VmHWM')}))


if __name__ == '__main__':
    main()
