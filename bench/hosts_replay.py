# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Replayed hypervisor results for benchmark 9 (b_hosts.py): what vm_info and vm_reclaim answer on a simulated host.

The action plugins in bench/replay/ (copied into the benchmark's own copy of
the collection as plugins/action/vm_info.py and vm_reclaim.py, where they
shadow the modules) call these instead of running anything on a host. The
results are built from the real vm_info and vm_reclaim results recorded on
the test bed at the start of the benchmark (b_control.templates, the file
BENCH_HOSTS_TEMPLATES names) by control_worker's builders: 50 records per
host, each host with its own hypervisor identity, UUIDs, names and disk
paths (the host's index is the inventory variable bench_host_index), in the
recorded shapes.
"""

import datetime
import json
import os

import control_worker

_TEMPLATE = []


def template():
    if not _TEMPLATE:
        with open(os.environ['BENCH_HOSTS_TEMPLATES']) as handle:
            _TEMPLATE.append(json.load(handle))
    return _TEMPLATE[0]


def _now():
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


def domains():
    return int(os.environ.get('BENCH_HOSTS_DOMAINS', '50'))


def vm_info(host_index, fields=None, facts=True):
    """The host's vm_info result (include_deleted or not: the simulated hosts have no tombstones); with ``fields``,
    each domain projected to them, in the result and in its facts, with the module's own projection; with
    ``facts`` false, no facts (as the module's options do)."""
    result = control_worker.vm_info_result(template(), int(host_index), domains(), _now())
    if facts in (False, 'false', 'False'):
        result.pop('ansible_facts', None)
    if fields:
        from ansible_collections.deferred.libvirt.plugins.module_utils._views import project_fields
        projected = [project_fields(view, fields) for view in result['instances']]
        result['instances'] = projected
        for key, value in (result.get('ansible_facts') or {}).items():
            if isinstance(value, list):
                result['ansible_facts'][key] = projected
    return result


def vm_reclaim(host_index, fleet=None):
    """The host's vm_reclaim result: one expired domain in fifty reclaimed, the other soft-deleted ones kept.

    ``fleet`` is the slice the task handed over; a slice for another host is refused as the module refuses it.
    """
    result = control_worker.reclaim_result(template(), int(host_index), domains(), _now())
    if isinstance(fleet, dict) and fleet.get('host') not in (None, 'hv%04d' % int(host_index)):
        return {'failed': True, 'msg': 'replay: the fleet slice is for %s' % fleet.get('host')}
    # As the module reports it: whether a slice was handed over, and whether it was complete.
    given = isinstance(fleet, dict)
    result['fleet'] = dict(result.get('fleet') or {}, given=given,
                           complete=bool(fleet.get('complete')) if given else result.get('fleet', {}).get('complete'))
    return result
