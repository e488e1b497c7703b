# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Integration tests: real ansible-playbook against the real libvirtd with real QEMU guests.

The collection is built with ``ansible-galaxy collection build`` and installed
into a private collections path once per run, the way a user installs it.
Every test gets its own guest name prefix and state_dir and cleans up after
itself, so tests can be read (and rerun) one at a time.
"""

import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'testbed'))

import guests  # noqa: E402
from ansible_env import ansible_env, pipelining  # noqa: E402

BUILD = os.path.join(ROOT, 'build', 'integration')
PYTHON = sys.executable
URI = 'qemu:///system'


def pytest_configure(config):
    config.addinivalue_line('markers', 'cinder: needs the real Cinder test service (tests/testbed/cinder.sh)')
    config.addinivalue_line('markers', 'fleet_rules: the fleet scenarios of rules 9-11 and the restore onto another '
                            'host (test_fleet_safety.py), in the default run; -m fleet_rules runs them alone')
    config.addinivalue_line('markers', 'security: the security tests of issue 24 (tenant strings, secrets, clocks), run '
                            'on the oldest line with the rest and on the newest by the security-newest stage')
    config.addinivalue_line('markers', 'ansible_lines: a result that differs between ansible-core lines (a key Ansible '
                            'itself reads), run on the newest line too by the security-newest stage')
    config.addinivalue_line('markers', 'exclusive: stops or reads what every test on the test bed shares (Cinder '
                            'stopped, the host lock directory, a report of every project) or races two playbooks of '
                            'its own; scripts/test.sh runs these alone, after the tests that run two at a time')


@pytest.fixture(scope='session')
def collection():
    """Build and install the collection from this checkout; returns the collections path.

    Each pytest session gets its own directory, so sessions running at the
    same time never remove each other's installed collection.
    """
    os.makedirs(BUILD, exist_ok=True)
    build = tempfile.mkdtemp(prefix='session-', dir=BUILD)
    collections = os.path.join(build, 'collections')
    subprocess.run([os.path.join(os.path.dirname(PYTHON), 'ansible-galaxy'), 'collection', 'build', ROOT,
                    '--output-path', build, '--force'], check=True, capture_output=True, text=True)
    tarball = glob.glob(os.path.join(build, 'deferred-libvirt-*.tar.gz'))[0]
    subprocess.run([os.path.join(os.path.dirname(PYTHON), 'ansible-galaxy'), 'collection', 'install', tarball,
                    '-p', collections, '--force'], check=True, capture_output=True, text=True)
    yield collections
    shutil.rmtree(build, ignore_errors=True)


class RedisCache(object):
    """The test bed's Redis (tests/testbed/redis.sh) seen as community.general's redis fact cache, under a key prefix
    of one test's own: what an ansible-playbook run needs in its environment to use it, and the facts it holds."""

    TESTBED = '/var/lib/deferred-libvirt-testbed'

    def __init__(self, prefix, new_cache):
        path = os.path.join(self.TESTBED, 'redis', 'connection')
        if not os.path.exists(path):
            pytest.fail('the test bed has no Redis (%s is missing): run bash tests/testbed/redis.sh up' % path)
        with open(path) as handle:
            self.connection = handle.read().strip()
        self.collections = os.path.join(self.TESTBED, 'collections')
        if not os.path.exists(os.path.join(self.collections, 'ansible_collections', 'community', 'general')):
            pytest.fail('community.general is not under %s: run bash tests/testbed/redis.sh up' % self.collections)
        self.prefix = prefix
        self.keyset = prefix + 'keys'
        # ansible-core 2.19 and later keep a host's facts under s1_HOST, JSON-wrapped (as in the jsonfile cache).
        self.new_cache = new_cache
        import redis
        host, port, db, password = self.connection.split(':', 3)
        self.db = redis.StrictRedis(host=host, port=int(port), db=int(db), password=password)
        self.db.ping()

    def env(self):
        """The environment of a run whose fact cache this is."""
        return {'ANSIBLE_CACHE_PLUGIN': 'community.general.redis', 'ANSIBLE_CACHE_PLUGIN_CONNECTION': self.connection,
                'ANSIBLE_CACHE_PLUGIN_PREFIX': self.prefix, 'ANSIBLE_CACHE_REDIS_KEYSET_NAME': self.keyset,
                'ANSIBLE_CACHE_PLUGIN_TIMEOUT': '0'}

    def _key(self, host):
        return ('s1_%s' if self.new_cache else '%s') % host

    def facts(self, host):
        """The facts the cache holds for host ({} for none), as plain data."""
        value = self.db.get(self.prefix + self._key(host))
        if value is None:
            return {}
        data = json.loads(value)
        return json.loads(data['__payload__']) if self.new_cache else data

    def store(self, host, facts):
        """Make facts the host's cached facts, as the plugin stores them."""
        data = {'__payload__': json.dumps(facts)} if self.new_cache else facts
        self.db.set(self.prefix + self._key(host), json.dumps(data))
        self.db.zadd(self.keyset, {self._key(host): time.time()})

    def close(self):
        for key in self.db.scan_iter(match=self.prefix + '*'):
            self.db.delete(key)


@pytest.fixture
def redis_cache(request):
    """RedisCache under a prefix of this test's own; its keys are removed afterwards."""
    import ansible.template
    cache = RedisCache('it-%s-' % uuid.uuid4().hex[:8], hasattr(ansible.template, 'trust_as_template'))
    yield cache
    cache.close()


class LiveConnection(object):
    """A libvirt connection that reopens itself after libvirtd was restarted (the reliability tests do that)."""

    def __init__(self, uri):
        self.uri = uri
        self._conn = guests.connect(uri)

    def _live(self):
        try:
            alive = self._conn.isAlive()
        except Exception:
            alive = False
        if not alive:
            self._conn = guests.connect(self.uri)
        return self._conn

    def __getattr__(self, name):
        return getattr(self._live(), name)


@pytest.fixture(scope='session')
def hypervisor():
    """libvirtd up and the guest boot files built (both idempotent and quick when already done)."""
    guests.ensure_testbed()
    conn = LiveConnection(URI)
    yield conn
    try:
        conn.close()
    except Exception:
        pass


class Runner(object):
    """Runs ansible-playbook / ansible ad hoc against localhost and returns what the operator would see."""

    def __init__(self, collections, state_dir, env=None):
        self.collections = collections
        self.state_dir = state_dir
        self.extra_env = dict(env or {})

    def env(self, **more):
        env = ansible_env(self.collections, PYTHON, 'result_json',
                          os.path.join(os.path.dirname(os.path.abspath(__file__)), 'callback_plugins'),
                          ANSIBLE_PIPELINING=pipelining())
        env.update(self.extra_env)
        env.update(more)
        return env

    def playbook(self, tasks, check=False, diff=False, extra_vars=None, env=None, timeout=600, hosts='localhost',
                 inventory=None, play_vars=None, wrap=None):
        """Run ``tasks`` (a list of task dicts) in one play; returns a PlayResult. ``wrap``: a function of the
        command line (a run on a host that has just rebooted: kernel_clock.as_if_rebooted)."""
        play = {'hosts': hosts, 'gather_facts': False, 'tasks': tasks,
                'module_defaults': {'group/deferred.libvirt.all': {'uri': URI, 'state_dir': self.state_dir}}}
        if hosts == 'localhost':
            play['connection'] = 'local'
        if play_vars:
            play['vars'] = play_vars
        path = os.path.join(self.state_dir + '-plays', 'play-%s.yml' % uuid.uuid4().hex[:8])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            json.dump([play], handle)
        cmd = [os.path.join(os.path.dirname(PYTHON), 'ansible-playbook'), path,
               '-i', inventory or 'localhost,']
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        if extra_vars:
            cmd += ['-e', json.dumps(extra_vars)]
        proc = subprocess.run(wrap(cmd) if wrap else cmd, env=self.env(**(env or {})), capture_output=True, text=True,
                              timeout=timeout, check=False)
        return PlayResult(proc)

    def task(self, module, check=False, diff=False, env=None, **args):
        """One module task; returns its result dict (with ``failed`` when it failed)."""
        result = self.playbook([{'name': module, module: args}], check=check, diff=diff, env=env)
        return result.task(0)

    def tasks(self, *steps, check=False, diff=False, env=None):
        """Several module tasks in one play: one ``ansible-playbook`` run instead of one each (a run's own start-up
        is most of what a short task costs, docs/testing.md, "Where the CPU goes"). ``steps`` are (module, args)
        pairs; every task runs even when one before it failed (``ignore_errors``, and its result still says
        ``failed``). Returns their result dicts in order."""
        result = self.playbook([{'name': module, module: args, 'ignore_errors': True} for module, args in steps],
                               check=check, diff=diff, env=env)
        return result.tasks()

    def adhoc(self, module, args, env=None):
        """``ansible localhost -m MODULE -a ARGS``, as an operator types it; returns (rc, result dict)."""
        cmd = [os.path.join(os.path.dirname(PYTHON), 'ansible'), 'localhost', '-c', 'local', '-i', 'localhost,',
               '-m', module, '-a', args]
        proc = subprocess.run(cmd, env=self.env(**(env or {})),
                              capture_output=True, text=True, timeout=600, check=False)
        data = json.loads(proc.stdout)
        host = data['plays'][0]['tasks'][0]['hosts']['localhost']
        return proc.returncode, host

    def events(self, request_id=None):
        path = os.path.join(self.state_dir, 'events.jsonl')
        if not os.path.exists(path):
            return []
        with open(path) as handle:
            items = [json.loads(line) for line in handle if line.strip()]
        return [e for e in items if request_id is None or e.get('request_id') == request_id]

    def tombstone(self, domain_uuid):
        """The current tombstone (tombstones/pending/ or tombstones/finished/), or None."""
        for sub in ('pending', 'finished'):
            path = os.path.join(self.state_dir, 'tombstones', sub, '%s.json' % domain_uuid)
            if os.path.exists(path):
                with open(path) as handle:
                    return json.load(handle)
        return None


class PlayResult(object):
    def __init__(self, proc):
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        try:
            self.data = json.loads(proc.stdout)
        except ValueError:
            raise AssertionError('ansible-playbook did not print JSON (rc %s)\nstdout: %s\nstderr: %s'
                                 % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))

    def tasks(self, host='localhost'):
        return [t['hosts'].get(host) for play in self.data['plays'] for t in play['tasks']]

    def task(self, index, host='localhost'):
        return self.tasks(host)[index]


@pytest.fixture
def state_dir(tmp_path):
    return str(tmp_path / 'state')


@pytest.fixture
def ansible(collection, hypervisor, state_dir):
    return Runner(collection, state_dir)


@pytest.fixture
def prefix(request, hypervisor):
    """A unique guest name prefix for one test; every domain with it is removed afterwards."""
    name = 'it-%s-%s-' % (request.node.name[:24].replace('[', '-').replace(']', '').replace('_', '-'),
                          uuid.uuid4().hex[:4])
    yield name
    guests.destroy_all(hypervisor, name)


@pytest.fixture
def make_guest(hypervisor, prefix):
    """make_guest('a', kind='acpi', start=True, **guest_xml options) -> (name, uuid)."""
    def make(suffix, kind='acpi', start=True, **kw):
        name = prefix + suffix
        dom = guests.define_guest(hypervisor, name, kind=kind, start=start, **kw)
        return name, dom.UUIDString()
    return make


@pytest.fixture
def scratch(prefix):
    """scratch(directory, suffix) -> a path for a file made by the test; every one is removed afterwards."""
    made = []

    def path(directory, suffix):
        item = os.path.join(directory, prefix + suffix)
        made.append(item)
        return item
    yield path
    for item in made:
        if os.path.lexists(item):
            if os.path.isdir(item) and not os.path.islink(item):
                shutil.rmtree(item, ignore_errors=True)
            else:
                os.unlink(item)


# -- the test bed's Cinder ------------------------------------------------------------------------------------------

@pytest.fixture(scope='session')
def cinder():
    """An openstacksdk connection to the test bed's Cinder; fails (never skips) when it is not running."""
    import cinder_helpers as ch
    script = os.path.join(ROOT, 'tests', 'testbed', 'cinder.sh')
    status = subprocess.run(['bash', script, 'status'], capture_output=True, text=True, check=False)
    if status.returncode != 0:
        pytest.fail('the test bed Cinder is not running (tests/testbed/cinder.sh up):\n%s' % status.stdout)
    return ch.connect()


@pytest.fixture
def volumes(cinder, prefix):
    """new(suffix) creates an available 1 GB volume named with the test's prefix; all are deleted afterwards."""
    import cinder_helpers as ch

    def new(suffix):
        return ch.create_volume(prefix + suffix, 1, conn=cinder).id
    yield new
    ch.cleanup(prefix, conn=cinder)


# The three hosts of the fleet (tests/testbed/fleet.sh), for the fleet tests: the fleet's description once per test
# file, a second and a third hypervisor whose guests a test makes are removed after it, and a project of its own.
# fleet_support is imported where it is used: tests/reliability loads this file as a module of its own, without this
# directory on its path.
@pytest.fixture(scope='module')
def fleet(hypervisor):
    import fleet_support
    return fleet_support.fleet_up()


@pytest.fixture
def hv2(fleet, prefix):
    import fleet_support
    host = fleet_support.HostGuests(fleet, prefix, 'hv2')
    yield host
    host.close()


@pytest.fixture
def hv3(fleet, prefix):
    import fleet_support
    host = fleet_support.HostGuests(fleet, prefix, 'hv3')
    yield host
    host.close()


@pytest.fixture
def project():
    import fleet_support
    return fleet_support.new_project()
