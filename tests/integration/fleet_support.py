# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet of hypervisors for the fleet and timer tests: hv1 is the main test hypervisor (qemu:///system,
reached with the local connection), hv2 and hv3 further, independent libvirtds of tests/testbed/fleet.sh, each with
its own hostname and host UUID, reached over SSH on loopback as production playbooks reach their hosts. hv2 and hv3
(and hv1) see one shared images directory at the same path (SHARED_DIR), and guests migrate between hv2 and hv3.
hv1 has the machine's own hostname, so the records it writes, and every message naming the host a record names, say
that hostname (`vm` on these machines) where the inventory says hv1: a module reports the libvirt identity it reads,
which is all an ad hoc run has."""

import datetime
import json
import os
import subprocess
import sys
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET

import pytest

import guests

PYTHON = sys.executable
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

FLEET_SH = os.path.join(ROOT, 'tests', 'testbed', 'fleet.sh')
FLEET_DIR = '/var/lib/deferred-libvirt-testbed/fleet'
FLEET_JSON = os.path.join(FLEET_DIR, 'fleet-hosts.json')
SSH_CONFIG = os.path.join(FLEET_DIR, 'ssh_config')
SHARED_DIR = '/srv/shared-images'
# A real network filesystem (sshfs, FUSE) mounted at the same path on every host; NETFS_EXPORT is the directory
# hv2's sshd exports, where a file's existence is read without any client's cache.
NETFS_DIR = '/srv/netfs-images'
NETFS_EXPORT = '/var/lib/deferred-libvirt-testbed/netfs'
HOSTS = ('hv2', 'hv3')
ANSIBLE_PLAYBOOK = os.path.join(os.path.dirname(PYTHON), 'ansible-playbook')


class PlayResult(object):
    """What ansible-playbook printed through the tests' result_json callback (as conftest's PlayResult reads it)."""

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


def fleet_up():
    """Start (idempotently) the second hypervisor and its sshd; returns how to reach it (fleet.json)."""
    proc = subprocess.run(['bash', FLEET_SH, 'up'], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.fail('tests/testbed/fleet.sh up failed:\n%s' % proc.stderr[-3000:])
    with open(FLEET_JSON) as handle:
        return json.load(handle)


def wait_past(reclaim_at):
    """Sleep until ``reclaim_at`` (UTC ISO 8601, whole seconds) has passed."""
    when = datetime.datetime.strptime(reclaim_at, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    left = (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()
    if left > -1:
        time.sleep(left + 1.1)


def new_project():
    return 'fl%s' % uuidlib.uuid4().hex[:10]


def ssh_host_vars(fleet, host, state_dir):
    """Inventory variables that reach fleet host ``host`` over SSH, with ``state_dir`` as its state_dir."""
    entry = fleet[host]
    return dict(((k, entry[k]) for k in ('ansible_host', 'ansible_port', 'ansible_user',
                                         'ansible_ssh_private_key_file', 'ansible_ssh_common_args')),
                ansible_connection='ssh', ansible_python_interpreter=PYTHON,
                deferred_libvirt_uri=entry['uri'], deferred_libvirt_state_dir=state_dir)


def write_inventory(path, fleet, state_dir, extra_hosts=None, group_vars=None, hosts_over_ssh=('hv2',), local=True):
    """An inventory of the group ``hypervisors``: hv1 local (unless ``local`` is false), the fleet hosts named in
    ``hosts_over_ssh`` over SSH, each with its own state_dir under ``state_dir``."""
    hosts = {}
    if local:
        hosts['hv1'] = {'ansible_connection': 'local', 'ansible_python_interpreter': PYTHON,
                        'deferred_libvirt_uri': 'qemu:///system',
                        'deferred_libvirt_state_dir': os.path.join(state_dir, 'hv1')}
    for host in hosts_over_ssh:
        hosts[host] = ssh_host_vars(fleet, host, os.path.join(state_dir, host))
    hosts.update(extra_hosts or {})
    inventory = {'all': {'children': {'hypervisors': {'hosts': hosts, 'vars': dict(group_vars or {})}}}}
    with open(path, 'w') as handle:
        json.dump(inventory, handle, indent=1)
    return path


def run_playbook(runner, playbook, inventory, extra_vars=None, check=False, env=None, timeout=900, args=()):
    """ansible-playbook PLAYBOOK (a collection playbook name, a path, or a list of plays) -i INVENTORY [ARGS]."""
    if isinstance(playbook, list):
        path = os.path.join(runner.state_dir + '-plays', 'play-%s.yml' % uuidlib.uuid4().hex[:8])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            json.dump(playbook, handle)
        playbook = path
    cmd = [ANSIBLE_PLAYBOOK, '-i', inventory, playbook]
    for item in extra_vars or []:
        cmd += ['-e', item if isinstance(item, str) else json.dumps(item)]
    if check:
        cmd.append('--check')
    cmd += list(args)
    proc = subprocess.run(cmd, env=runner.env(**(env or {})), capture_output=True, text=True, timeout=timeout,
                          check=False)
    return PlayResult(proc)


def _play_on(host, tasks):
    """A play of ``tasks`` on ``host`` with the collection's uri and state_dir from the host's inventory vars."""
    return {'hosts': host, 'gather_facts': False, 'tasks': tasks,
            'module_defaults': {'group/deferred.libvirt.all': {
                'uri': "{{ deferred_libvirt_uri }}", 'state_dir': "{{ deferred_libvirt_state_dir }}"}}}


def task_on(runner, inventory, host, module, **args):
    """One module task on one host of the fleet (uri and state_dir from the host's inventory vars)."""
    result = run_playbook(runner, [_play_on(host, [{'name': module, module: args}])], inventory)
    return result.task(0, host)


def tasks_on(runner, inventory, host, *steps):
    """Several module tasks on one host in one play, one ``ansible-playbook`` run (``steps``: (module, args) pairs).
    Every task runs even when one before it failed (``ignore_errors``; its result still says ``failed``). Returns
    their results in order."""
    tasks = [{'name': module, module: args, 'ignore_errors': True} for module, args in steps]
    return run_playbook(runner, [_play_on(host, tasks)], inventory).tasks(host)


def adhoc_on(runner, inventory, host, module, args):
    """``ansible HOST -i INVENTORY -m MODULE -a ARGS`` (``args`` a dict, given as JSON), as an operator types it:
    no fleet option. Returns (rc, the host's result)."""
    cmd = [os.path.join(os.path.dirname(PYTHON), 'ansible'), host, '-i', inventory, '-m', module,
           '-a', json.dumps(args)]
    proc = subprocess.run(cmd, env=runner.env(), capture_output=True, text=True, timeout=600, check=False)
    try:
        data = json.loads(proc.stdout)
    except ValueError:
        raise AssertionError('ansible did not print JSON (rc %s)\nstdout: %s\nstderr: %s'
                             % (proc.returncode, proc.stdout[-3000:], proc.stderr[-3000:]))
    return proc.returncode, data['plays'][0]['tasks'][0]['hosts'][host]


def named_task(result, name, host):
    """The result on ``host`` of the task whose name is ``name`` (role tasks are named 'role : task')."""
    for play in result.data['plays']:
        for task in play['tasks']:
            if task['name'] == name or task['name'].endswith(' : ' + name):
                if host in task['hosts']:
                    return task['hosts'][host]
    raise AssertionError('no task %r ran on %s; tasks: %s' % (
        name, host, [t['name'] for p in result.data['plays'] for t in p['tasks']]))


def ssh(host, command, check=True, timeout=120):
    """Run ``command`` on fleet host ``host`` over SSH, as an operator logged in there would."""
    proc = subprocess.run(['ssh', '-F', SSH_CONFIG, host, command], capture_output=True, text=True, timeout=timeout,
                          check=False)
    if check and proc.returncode != 0:
        raise AssertionError('ssh %s %r failed (rc %s): %s' % (host, command, proc.returncode, proc.stderr[-2000:]))
    return proc


def migrate(source, target, name, *flags):
    """``virsh migrate FLAGS NAME qemu+ssh://TARGET/system``, run on ``source``: the hosts reach each other by name."""
    return ssh(source, 'virsh migrate %s %s qemu+ssh://%s/system' % (' '.join(flags), name, target), timeout=300)


def host_identity(fleet, host):
    """(host UUID, hostname) of a fleet host as its own libvirtd reports them."""
    conn = guests.connect(fleet[host]['uri_from_main_namespace'])
    try:
        caps = conn.getCapabilities()
        hostname = conn.getHostname()
    finally:
        conn.close()
    return ET.fromstring(caps).findtext('host/uuid'), hostname


class HostGuests(object):
    """Guests on one fleet host, defined through its libvirt socket; every one with the prefix is removed afterwards."""

    def __init__(self, fleet, prefix, host='hv2'):
        self.host = host
        self.conn = guests.connect(fleet[host]['uri_from_main_namespace'])
        self.prefix = prefix

    def make(self, suffix, kind='acpi', start=False, **kw):
        name = self.prefix + suffix
        dom = guests.define_guest(self.conn, name, kind=kind, start=start, **kw)
        return name, dom.UUIDString()

    def exists(self, name):
        return name in [d.name() for d in self.conn.listAllDomains()]

    def close(self):
        guests.destroy_all(self.conn, self.prefix)
        self.conn.close()


class Hv2Guests(HostGuests):
    """Guests on hv2 (the fleet tests written before hv3 existed)."""

    def __init__(self, fleet, prefix):
        super(Hv2Guests, self).__init__(fleet, prefix, 'hv2')


def run_as_operator(runner, playbook, inventory, *flags, **extra_env):
    """ansible-playbook as an operator sees it: the default stdout callback, with ``flags`` (-vvvv, --diff, -e ...).

    Returns the finished process (stdout and stderr as text); the plays are written as for run_playbook."""
    if isinstance(playbook, list):
        path = os.path.join(runner.state_dir + '-plays', 'play-%s.yml' % uuidlib.uuid4().hex[:8])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            json.dump(playbook, handle)
        playbook = path
    env = runner.env(ANSIBLE_STDOUT_CALLBACK='default', ANSIBLE_NOCOLOR='1', **extra_env)
    return subprocess.run([ANSIBLE_PLAYBOOK, '-i', inventory, playbook] + list(flags), env=env, capture_output=True,
                          text=True, timeout=900, check=False)
