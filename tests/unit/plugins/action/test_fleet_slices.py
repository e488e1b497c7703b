# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet_slices action and the fleet_slice lookup through a real play: real HostVars, each host its own slice.

And the flat handover's rule for the roles: no per-host task references the whole fleet index (on ansible-core 2.16
to 2.18 each such reference costs the size of the fleet, so the play costs the fleet's size squared).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import json
import os
import re
import subprocess
import sys

import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
UUID = '6f1c3c8e-7a4e-4a53-9d6e-3f4b2c1d0a11'


def _result(host, generation, power='shutoff'):
    return {'failed': False, 'run': '77', 'hypervisor': {'uuid': None, 'hostname': host}, 'instances': [
        {'uuid': UUID, 'name': 'web{{ lookup("env", "HOME") }}', 'managed': True, 'vm_state': 'soft_deleted',
         'task_state': None, 'power_state': power, 'generation': generation,
         'host': {'uuid': None, 'hostname': host}, 'disks': [{'target': 'vda', 'path': '/srv/shared/web.qcow2'}]}]}


def play_ok(collections_path, tmp_path, inventory, play):
    """Run ``play`` over ``inventory`` with the real ansible-playbook; it must succeed."""
    (tmp_path / 'inv.json').write_text(json.dumps(inventory))
    (tmp_path / 'play.yml').write_text(json.dumps(play))
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR='1')
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i',
                           str(tmp_path / 'inv.json'), str(tmp_path / 'play.yml')],
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]


def test_each_host_reads_only_its_own_slice_and_the_action_returns_only_small_things(collections_path, tmp_path):
    hosts = ['hv%d' % i for i in range(1, 5)]
    inventory = {'all': {'children': {'hypervisors': {'hosts': dict(
        (h, {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable}) for h in hosts)}}}}
    results = dict((h, _result(h, i, 'running' if h == 'hv2' else 'shutoff')) for i, h in enumerate(hosts))
    del results['hv4']  # it did not report
    out = str(tmp_path / 'out')
    play = [{'hosts': 'hypervisors', 'gather_facts': False, 'tasks': [
        {'name': 'report', 'ansible.builtin.set_fact': {'state_facts_vm_info': '{{ results[inventory_hostname] | default(omit) }}'},
         'when': 'inventory_hostname in results'},
        {'name': 'slices', 'deferred.libvirt.fleet_slices': {'hosts': '{{ groups.hypervisors }}', 'run': '77'},
         'register': 'slices', 'run_once': True},
        {'name': 'mine', 'ansible.builtin.set_fact': {
            'mine': "{{ lookup('deferred.libvirt.fleet_slice', slices.dir, host=inventory_hostname) }}"}},
        {'name': 'keep', 'ansible.builtin.copy': {'content': '{{ {"mine": mine, "slices": slices} | to_json }}',
                                                  'dest': out + '-{{ inventory_hostname }}.json'}},
        {'name': 'remove', 'deferred.libvirt.fleet_slices': {'remove': '{{ slices.dir }}'}, 'run_once': True,
         'register': 'removed'},
        {'name': 'gone', 'ansible.builtin.assert': {'that': ['removed.removed', 'slices.dir is not exists']},
         'run_once': True}]}]
    # What a tenant chose arrives as vm_info reports it: data (!unsafe), never a template.
    name = json.dumps(_result('x', 0)['instances'][0]['name'])
    (tmp_path / 'results.yml').write_text(json.dumps({'results': results}).replace(name, '!unsafe ' + name))
    play[0]['vars_files'] = [str(tmp_path / 'results.yml')]
    play_ok(collections_path, tmp_path, inventory, play)
    seen = dict((h, json.load(open(out + '-%s.json' % h))) for h in hosts)
    summary = seen['hv1']['slices']
    assert set(summary) >= set(['dir', 'lines', 'complete', 'missing', 'built_at', 'run', 'counts'])
    assert 'index' not in summary and 'hosts' not in summary
    assert summary['missing'] == ['hv4'] and summary['complete'] is False and summary['run'] == '77'
    assert summary['counts']['stale'] == 2
    for host in ('hv1', 'hv3'):
        mine = seen[host]['mine']
        assert mine['host'] == host and mine['run'] == '77' and mine['missing'] == ['hv4']
        # The running copy on hv2 is the authoritative one; the tenant's name stays data, never templated.
        assert mine['stale'][UUID]['authoritative'] == 'hv2'
        assert mine['stale'][UUID]['name'] == 'web{{ lookup("env", "HOME") }}'
    assert seen['hv2']['mine']['stale'] == {}
    assert seen['hv4']['mine'] in (None, '')  # no report, no slice (ansible-core 2.16 renders None as '')


def _walk(items, once=False):
    """Every task of ``items`` (blocks opened, nested ones too), with whether it runs once (its own or a block's run_once)."""
    for item in items or []:
        once_here = once or bool(item.get('run_once'))
        if any(key in item for key in ('block', 'rescue', 'always')):
            for key in ('block', 'rescue', 'always'):
                yield from _walk(item.get(key), once_here)
        else:
            yield item, once_here


def test_no_per_host_task_of_the_roles_or_playbooks_references_the_whole_fleet_index():
    # On ansible-core 2.16 to 2.18 every reference templates and copies the whole value: a per-host task that names the
    # index costs the size of the fleet for every host. Each host takes its own slice (state_facts_slice).
    whole = ('state_facts_index', 'reclaim_fleet_index', 'fleet_index_for', 'state_facts_slices')
    offenders = []
    for path in sorted(glob.glob(os.path.join(ROOT, 'roles', '*', 'tasks', '*.yml'))
                       + glob.glob(os.path.join(ROOT, 'playbooks', '*.yml'))):
        with open(path) as handle:
            data = yaml.safe_load(handle) or []
        if '/playbooks/' in path:
            items = [t for play in data for key in ('pre_tasks', 'tasks', 'post_tasks') for t in play.get(key) or []]
        else:
            items = data
        for task, once in _walk(items):
            if once:
                continue
            text = json.dumps(dict((k, v) for k, v in task.items() if k != 'name'))
            for name in whole:
                # The whole name: state_facts_index_only (a flag) and state_facts_index_summary (small) are not the index.
                if re.search(r'\b%s\b' % name, text):
                    offenders.append('%s: %s references %s' % (os.path.relpath(path, ROOT), task.get('name'), name))
    assert offenders == []


def test_the_reclaim_role_sets_no_fleet_sized_fact_on_every_host():
    # A run_once set_fact puts its value in every host's variables: the reclaim role's sweep needs each host's slice
    # only, so neither the whole index nor the fleet fact (per host, per project, the trash) is built for it.
    with open(os.path.join(ROOT, 'roles', 'reclaim', 'tasks', 'fleet.yml')) as handle:
        gather = [t for t in yaml.safe_load(handle) if (t.get('ansible.builtin.include_role') or {}).get('name')
                  == 'deferred.libvirt.state_facts']
    assert len(gather) == 1
    assert gather[0]['vars']['state_facts_keep_index'] is False and gather[0]['vars']['state_facts_fleet_fact'] is False
    # Nor every domain's whole record: vm_info is asked for the index's fields only, and for no facts.
    assert gather[0]['vars']['state_facts_index_only'] is True
    with open(os.path.join(ROOT, 'roles', 'state_facts', 'tasks', 'main.yml')) as handle:
        build = [t for t in yaml.safe_load(handle) if 'state_facts_fleet' in (t.get('ansible.builtin.set_fact') or {})]
    assert len(build) == 1 and build[0]['when'] == 'state_facts_fleet_fact | bool'


def test_the_state_facts_role_names_the_declared_fleet_in_every_slice(collections_path, tmp_path):
    # A slice names the fleet it describes (rule 12), so a refusal of a slice says which fleet it came from: the role
    # passes the declared group's name (here deferred_libvirt_fleet), not null. vm_info reads libvirt's test driver.
    hosts = ['hv1', 'hv2']
    inventory = {'all': {'children': {'my_fleet': {'hosts': dict(
        (h, {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
             'deferred_libvirt_uri': 'test:///default', 'deferred_libvirt_state_dir': str(tmp_path / h)})
        for h in hosts)}}, 'vars': {'deferred_libvirt_fleet': 'my_fleet'}}}
    out = str(tmp_path / 'slice')
    play = [{'hosts': 'my_fleet', 'gather_facts': False,
             'roles': [{'role': 'deferred.libvirt.state_facts', 'vars': {'state_facts_show': False}}],
             'tasks': [{'name': 'keep', 'ansible.builtin.copy': {'content': '{{ state_facts_slice | to_json }}',
                                                                 'dest': out + '-{{ inventory_hostname }}.json'}}]}]
    play_ok(collections_path, tmp_path, inventory, play)
    for host in hosts:
        with open(out + '-%s.json' % host) as handle:
            mine = json.load(handle)
        assert mine['host'] == host and mine['fleet'] == 'my_fleet' and mine['fleet_hosts']['count'] == 2
