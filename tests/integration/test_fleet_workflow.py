# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet workflow (gather sliced -> index -> sweep sliced) as AWX runs it, on three real hosts with shared storage.

Each job is an ansible-runner run over a private data dir laid out as AWX lays it out: a sliced job's inventory holds
only ``hosts sorted by name [offset::count]`` (AWX's get_sliced_hosts), its fact cache (ansible-core's jsonfile plugin,
``artifacts/<job id>/fact_cache``) holds only the facts of its own hosts, written from what earlier jobs saved and
saved back when it ends, as AWX's use_fact_cache does; the index job is not sliced and gets every host's facts. The run
id is AWX's ``awx_workflow_job_id``. Each test runs twice: with that jsonfile cache, and with community.general's
redis cache against the test bed's real redis-server, one cache all jobs share (as a control node, or several, running
the three steps from the command line with ``--limit``): the sliced jobs still hold only their own hosts. hv1 (the
main hypervisor, local) and hv3 make one slice, hv2 the other: every cross-host scenario (a stale copy, a shared
disk, a cross-host backing file) crosses the two slices, where an index built per slice would delete what the other
slice uses.
"""

import datetime
import json
import os
import shutil
import subprocess
import sys
import tempfile

import ansible.template
import pytest

import guests
from fleet_support import (SSH_CONFIG, SHARED_DIR, ssh_host_vars, task_on, wait_past, write_inventory)
from test_awx_runner import RUNNER, awx_meta_vars

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# ansible-core 2.19 and later keep a cached host's facts under a schema-qualified key (s1_HOST), JSON-wrapped.
NEW_CACHE = hasattr(ansible.template, 'trust_as_template')
ATTRS = 'deferred.libvirt.vm_attributes'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
SLICES = 2
# ansible-runner is a process wrapper: where the newest line's venv has none, the oldest line's runs the jobs, and the
# jobs themselves run this Python's ansible-playbook (first on their PATH), so they run on this line's ansible-core.
JOB_RUNNER = RUNNER if os.path.exists(RUNNER) else os.path.join(ROOT, '.venv', 'bin', 'ansible-runner')

RUN_WITH_OWN_CACHE = """
import sys
import ansible_runner
run = ansible_runner.run(private_data_dir=sys.argv[1], playbook=sys.argv[2], ident=sys.argv[3],
                         fact_cache_type='environment')
sys.exit(run.rc)
"""


@pytest.fixture
def shared(prefix):
    made = []

    def make(suffix, backing=None):
        path = os.path.join(SHARED_DIR, '%s%s.qcow2' % (prefix, suffix))
        made.append(path)
        return guests.make_disk(path, size=None, backing=backing) if backing else guests.make_disk(path)
    yield make
    for path in made:
        if os.path.exists(path):
            os.unlink(path)


def untagged(value):
    """A cached value as plain data: ansible-core 2.19 and later store a tagged value as {__ansible_type, tags, value}."""
    if isinstance(value, dict):
        if '__ansible_type' in value and 'value' in value:
            return untagged(value['value'])
        return dict((k, untagged(v)) for k, v in value.items())
    if isinstance(value, list):
        return [untagged(v) for v in value]
    return value


def cache_file(cache, host):
    return os.path.join(cache, ('s1_%s' if NEW_CACHE else '%s') % host)


class Awx(object):
    """AWX's engine, as far as the workflow sees it: the hosts with their stored facts, and jobs over slices of them."""

    def __init__(self, base, collections, fleet, state_dir, redis=None):
        self.base = base
        self.collections = collections
        # None: AWX's per-job jsonfile caches. A RedisCache: one Redis cache shared by every job.
        self.redis = redis
        self.hosts = {'hv1': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                              'deferred_libvirt_uri': 'qemu:///system',
                              'deferred_libvirt_state_dir': os.path.join(state_dir, 'hv1')}}
        for host in ('hv2', 'hv3'):
            self.hosts[host] = ssh_host_vars(fleet, host, os.path.join(state_dir, host))
        self.group_vars = {'deferred_libvirt_instance_dirs': ['/var/lib/libvirt/images', SHARED_DIR],
                           'deferred_libvirt_cinder': False}
        self.facts = dict((h, {}) for h in self.hosts)  # what AWX stores per host (main_host.ansible_facts)
        self.jobs = 0
        self.homes = []

    def sliced(self, count):
        """The hosts of each slice of a job template with job_slice_count ``count``."""
        names = sorted(self.hosts)
        return [names[offset::count] for offset in range(count)]

    def job(self, playbook, hosts, workflow_id, extravars=None):
        """One job over ``hosts`` (a slice, or every host): inventory and fact cache hold these hosts only."""
        self.jobs += 1
        job_id = self.jobs
        pdd = os.path.join(self.base, 'job-%d' % job_id)
        shutil.copytree(os.path.join(ROOT, 'playbooks'), os.path.join(pdd, 'project', 'playbooks'))
        os.makedirs(os.path.join(pdd, 'inventory'))
        os.makedirs(os.path.join(pdd, 'env'))
        with open(os.path.join(pdd, 'inventory', 'hosts'), 'w') as handle:
            json.dump({'all': {'children': {'hypervisors': {
                'hosts': dict((h, self.hosts[h]) for h in hosts), 'vars': self.group_vars}}}}, handle)
        extra = dict(awx_meta_vars(job_id, playbook.replace('.yml', '')), awx_workflow_job_id=workflow_id,
                     tower_workflow_job_id=workflow_id, **(extravars or {}))
        with open(os.path.join(pdd, 'env', 'extravars'), 'w') as handle:
            json.dump(extra, handle)
        home = tempfile.mkdtemp(prefix='awx-home-')
        self.homes.append(home)
        envvars = {'HOME': home, 'PWD': os.path.join(pdd, 'project'), 'ANSIBLE_COLLECTIONS_PATH': self.collections,
                   'ANSIBLE_FORCE_COLOR': 'False', 'ANSIBLE_HOST_KEY_CHECKING': 'False',
                   'ANSIBLE_DEPRECATION_WARNINGS': 'False',
                   'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
        written = {}
        if self.redis:
            # The shared cache holds what the test set (a slice replaced by hand); the job reads it through the plugin.
            for host in hosts:
                self.redis.store(host, self.facts[host])
            envvars.update(self.redis.env(), ANSIBLE_COLLECTIONS_PATH=self.collections + os.pathsep + self.redis.collections)
        else:
            # AWX's start_job_fact_cache: one file per host of this job, its stored facts, in the job's fact cache.
            cache = os.path.join(pdd, 'artifacts', str(job_id), 'fact_cache')
            os.makedirs(cache)
            for host in hosts:
                path = cache_file(cache, host)
                with open(path, 'w') as handle:
                    json.dump({'__payload__': json.dumps(self.facts[host])} if NEW_CACHE else self.facts[host], handle)
                written[host] = os.path.getmtime(path)
            envvars.update(ANSIBLE_CACHE_PLUGIN='jsonfile', ANSIBLE_CACHE_PLUGIN_CONNECTION=cache,
                           ANSIBLE_CACHE_PLUGIN_TIMEOUT='0')
        with open(os.path.join(pdd, 'env', 'envvars'), 'w') as handle:
            json.dump(envvars, handle)
        command = [JOB_RUNNER, 'run', pdd, '-p', 'playbooks/%s' % playbook, '--ident', str(job_id)]
        if self.redis:
            # The runner's command line always sets its jsonfile cache over the job's environment; its Python API
            # leaves the cache to the environment when told the cache is of another type.
            command = [os.path.join(os.path.dirname(JOB_RUNNER), 'python'), '-c', RUN_WITH_OWN_CACHE, pdd,
                       'playbooks/%s' % playbook, str(job_id)]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=900, check=False)
        if self.redis:
            for host in hosts:
                self.facts[host] = self.redis.facts(host)
            return Job(pdd, job_id, proc)
        # AWX's finish_job_fact_cache: a host's file the job changed becomes its stored facts.
        for host in hosts:
            path = cache_file(cache, host)
            if os.path.exists(path) and os.path.getmtime(path) != written[host]:
                with open(path) as handle:
                    data = json.load(handle)
                self.facts[host] = json.loads(data['__payload__']) if NEW_CACHE else data
        return Job(pdd, job_id, proc)

    def workflow(self, workflow_id, gather=True, index=True, sweep=True, sweep_vars=None):
        """gather (sliced) -> index (every host) -> sweep (sliced), as the workflow of docs/awx/ chains them."""
        done = {'gather': [], 'index': None, 'sweep': []}
        if gather:
            done['gather'] = [self.job('fleet_gather.yml', part, workflow_id) for part in self.sliced(SLICES)]
        if index:
            done['index'] = self.job('fleet_index.yml', sorted(self.hosts), workflow_id)
        if sweep:
            done['sweep'] = [self.job('fleet_sweep.yml', part, workflow_id, sweep_vars) for part in self.sliced(SLICES)]
        return done

    def close(self):
        for home in self.homes:
            shutil.rmtree(home, ignore_errors=True)


class Job(object):

    def __init__(self, pdd, job_id, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.events = []
        events = os.path.join(pdd, 'artifacts', str(job_id), 'job_events')
        for name in sorted(os.listdir(events)) if os.path.isdir(events) else []:
            with open(os.path.join(events, name)) as handle:
                self.events.append(json.load(handle))
        self.events.sort(key=lambda e: e['counter'])

    def results(self, task, host=None):
        return [e['event_data']['res'] for e in self.events
                if e['event'] in ('runner_on_ok', 'runner_on_failed') and e['event_data'].get('task') == task
                and (host is None or e['event_data'].get('host') == host)]

    def artifacts(self):
        [stats] = [e for e in self.events if e['event'] == 'playbook_on_stats']
        return stats['event_data'].get('artifact_data') or {}

    def why(self):
        return 'rc %s\n%s' % (self.rc, self.stdout[-5000:])


@pytest.fixture(params=['jsonfile', 'redis'])
def awx(request, collection, fleet, state_dir, tmp_path):
    """The jobs' engine: AWX's per-job jsonfile fact caches, or one Redis fact cache every job shares."""
    redis = request.getfixturevalue('redis_cache') if request.param == 'redis' else None
    engine = Awx(str(tmp_path / 'awx'), collection, fleet, state_dir, redis)
    yield engine
    engine.close()


@pytest.fixture
def inventory(fleet, state_dir, tmp_path):
    """hv2 and hv3 for the set-up tasks, with the state_dirs the AWX jobs use."""
    return write_inventory(str(tmp_path / 'inventory.json'), fleet, state_dir, hosts_over_ssh=('hv2', 'hv3'), local=False)


def ok(result):
    assert not result.get('failed'), result
    return result


def owned(ansible, inventory, host, name, project):
    ok(task_on(ansible, inventory, host, ATTRS, name=name, project=project, user='alice'))


def soft_delete(ansible, inventory, host, name, project):
    return ok(task_on(ansible, inventory, host, SOFT_DELETE, name=name, project=project,
                      reclaim_interval='2s'))['instances'][0]['reclaim_at']


def disk(path, target='vdb'):
    return {'path': path, 'target': target}


def sweep_result(job, host):
    [result] = job.results('Sweep the hypervisor', host)
    return result


@pytest.mark.security
def test_each_cross_slice_scenario_holds_through_sliced_gather_an_unsliced_index_and_sliced_sweeps(
        ansible, awx, inventory, hv2, hv3, shared, project, prefix):
    """Rules 9 and 10 across AWX slices: a stale copy on hv2 whose authoritative (running) copy is on hv3 is not
    reclaimed, a disk an hv3 domain uses is kept when its hv2 domain is reclaimed, and so is a golden image an hv3
    overlay is backed by. Each sweep slice sees only its own hosts and facts."""
    # hosts.order_by('name')[offset::slice_count]: hv2 and hv3 are never in one slice.
    assert awx.sliced(SLICES) == [['hv1', 'hv3'], ['hv2']]
    web_disk, data, golden = shared('web'), shared('data'), shared('golden')
    overlay = shared('overlay', backing=golden)
    web, web_uuid = hv2.make('web', start=False, disks=[disk(web_disk)])
    a, dummy = hv2.make('a', start=False, disks=[disk(data)])
    b, dummy = hv3.make('b', start=False, disks=[disk(data)])
    g, dummy = hv2.make('g', start=False, disks=[disk(golden)])
    o, dummy = hv3.make('o', start=False, disks=[disk(overlay)])
    for host, name in (('hv2', web), ('hv2', a), ('hv3', b), ('hv2', g), ('hv3', o)):
        owned(ansible, inventory, host, name, project)
    for name in (a, g):
        reclaim_at = soft_delete(ansible, inventory, 'hv2', name, project)
    reclaim_at = soft_delete(ansible, inventory, 'hv2', web, project)
    # An offline migration without --undefinesource leaves hv2's copy (record naming hv2); the copy on hv3 is started
    # there by hand: the copy that runs is the authoritative one (rule 9), hv2's is stale.
    subprocess.run(['ssh', '-F', SSH_CONFIG, 'hv2',
                    'virsh migrate --offline --persistent %s qemu+ssh://hv3/system' % web], check=True,
                   capture_output=True, timeout=300)
    hv3.conn.lookupByName(web).create()
    wait_past(reclaim_at)

    jobs = awx.workflow(9001, sweep_vars={'reclaim_project': project})

    for job in jobs['gather'] + [jobs['index']] + jobs['sweep']:
        assert job.rc == 0, job.why()
    # The index job saw every host's cached record of this run, and hands a small manifest on.
    manifest = jobs['index'].artifacts()['deferred_libvirt_fleet_manifest']
    assert manifest['run'] == '9001' and manifest['complete'] is True and manifest['missing'] == [], jobs['index'].stdout[-4000:]
    assert manifest['counts']['hosts'] == 3
    assert set(jobs['index'].artifacts()) == set(['deferred_libvirt_fleet_run', 'deferred_libvirt_fleet_manifest'])
    hv2_sweep = sweep_result(jobs['sweep'][1], 'hv2')
    assert hv2_sweep['fleet']['given'] and hv2_sweep['fleet']['complete'], hv2_sweep['fleet']
    # Rule 9: the stale copy is kept (and named as such), its disk too; the running copy on hv3 is untouched.
    assert web not in [r['name'] for r in hv2_sweep['reclaimed']]
    assert hv2.exists(web) and os.path.exists(web_disk)
    assert hv3.conn.lookupByName(web).isActive()
    [skipped] = [s for s in hv2_sweep['skipped_domains'] if s.get('name') == web]
    assert 'stale' in skipped['reason'] and 'hv3' in skipped['reason'], skipped
    # Rule 10: a and g are reclaimed, their disks kept for the domains of the other slice, who are named.
    reclaimed = dict((r['name'], r) for r in hv2_sweep['reclaimed'])
    assert sorted(reclaimed) == sorted([a, g])
    assert not hv2.exists(a) and not hv2.exists(g) and hv3.exists(b) and hv3.exists(o)
    assert os.path.exists(data) and os.path.exists(golden) and os.path.exists(overlay)
    [kept] = [k for k in reclaimed[a]['disks_kept'] if k['path'] == data]
    assert b in kept['reason'] and 'hv3' in kept['reason'], kept
    [kept] = [k for k in reclaimed[g]['disks_kept'] if k['path'] == golden]
    assert o in kept['reason'] and 'backing file' in kept['reason'], kept
    hv3.conn.lookupByName(web).destroy()


@pytest.mark.security
def test_a_sweep_slice_whose_slice_is_missing_foreign_of_another_run_or_stale_deletes_nothing_shared_and_says_why(
        ansible, awx, inventory, hv2, hv3, shared, project):
    """The sweep of hv2's slice with its cached slice removed, replaced by hv3's, left from another run, or older than
    fleet_max_age: each time it sweeps as with an incomplete index, the disk hv3's domain uses is kept and the sweep's
    result says why; never a refusal that stops the sweep, never the single-host view."""
    data = shared('data')
    a, dummy = hv2.make('a', start=False, disks=[disk(data)])
    b, dummy = hv3.make('b', start=False, disks=[disk(data)])
    owned(ansible, inventory, 'hv2', a, project)
    owned(ansible, inventory, 'hv3', b, project)
    reclaim_at = soft_delete(ansible, inventory, 'hv2', a, project)
    wait_past(reclaim_at)
    jobs = awx.workflow(9101, sweep=False)
    assert jobs['index'].rc == 0, jobs['index'].why()
    good = untagged(awx.facts['hv2']['deferred_libvirt_fleet_slice'])
    assert good['run'] == '9101' and good['host'] == 'hv2' and good['complete']
    old = (datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(hours=2)).strftime('%Y-%m-%dT%H:%M:%SZ')
    cases = (
        ('missing', None, 'no fleet slice was handed over', 'none was given'),
        ('foreign', untagged(awx.facts['hv3']['deferred_libvirt_fleet_slice']), None, 'was built for hv3'),
        ('another run', dict(good, run='9000'), 'is from run 9000, not this run 9101', 'is from fleet run 9000'),
        ('stale', dict(good, built_at=old), None, 'older than fleet_max_age'),
    )
    for case, cached, warning, why in cases:
        awx.facts['hv2']['deferred_libvirt_fleet_slice'] = cached
        job = awx.job('fleet_sweep.yml', ['hv2'], 9101, {'reclaim_project': project})
        assert job.rc == 0, '%s: %s' % (case, job.why())
        result = sweep_result(job, 'hv2')
        assert result['fleet']['given'] and not result['fleet']['complete'], (case, result['fleet'])
        gaps = ' '.join(result['fleet']['gaps'])
        assert 'a fleet slice was required (fleet_required)' in gaps and why in gaps, (case, gaps)
        assert os.path.exists(data), case
        assert hv3.exists(b), case
        if warning:
            [said] = job.results("Say why a host's handed-over slice cannot be used (its sweep keeps everything "
                                 "another host could reach)", 'hv2')
            assert warning in said['msg'], (case, said)
    # The first sweep terminated a (hv2's own definition); its disk stayed pending, named, in every sweep since.
    assert not hv2.exists(a)
