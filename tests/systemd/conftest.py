# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim timer on a host whose PID 1 is a real systemd (tests/testbed/systemd_host.sh).

Everything happens inside that host, as on an operator's control node that is
its own hypervisor: the role is applied with ``ansible-playbook`` there, the
timer fires there, the sweep terminates domains of the host's own libvirtd,
and the tests read what an operator reads there: ``systemctl``,
``journalctl`` and the log file. Each session starts from the built image
(``down`` + ``up``), so the seed domains are back.
"""

import json
import os
import shlex
import subprocess
import time
import uuid

import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'testbed'))
HOST_SH = os.path.join(ROOT, 'tests', 'testbed', 'systemd_host.sh')
INVENTORY = '/etc/deferred-libvirt/hypervisors.yml'
STATE_DIR = '/var/lib/deferred-libvirt'


class Host(object):
    """The systemd host, driven through ``systemd_host.sh exec`` (nsenter into its namespaces)."""

    def testbed(self, action):
        subprocess.run(['bash', HOST_SH, action], check=True, timeout=900)

    def run(self, command, check=True, timeout=300, stdin=None):
        """Run a shell command in the host as root; returns the CompletedProcess (stderr merged into stdout)."""
        proc = subprocess.run(['bash', HOST_SH, 'exec', 'sh', '-c', command], input=stdin, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, timeout=timeout, check=False)
        if check and proc.returncode != 0:
            raise AssertionError('in the systemd host: %s\nexit code %d\n%s'
                                 % (command, proc.returncode, proc.stdout[-4000:]))
        return proc

    def out(self, command, **kw):
        return self.run(command, **kw).stdout.strip()

    def write(self, path, text):
        self.run('mkdir -p %s && cat >%s' % (shlex.quote(os.path.dirname(path)), shlex.quote(path)), stdin=text)

    def playbook(self, plays, check=True, timeout=600):
        """ansible-playbook on the host with its hypervisor inventory, as the operator runs it there."""
        path = '/root/plays/play-%s.yml' % uuid.uuid4().hex[:8]
        self.write(path, json.dumps(plays, indent=1))
        return self.run('ANSIBLE_NOCOLOR=1 ansible-playbook -i %s %s' % (INVENTORY, path), check=check,
                        timeout=timeout)

    def domains(self):
        return self.out('virsh -q -c qemu:///system list --all --name').split()

    def define(self, names):
        """Define shut-off domains (no disk); returns their UUIDs."""
        for name in names:
            xml = ("<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
                   "<os><type arch='x86_64'>hvm</type></os><features><acpi/></features></domain>" % name)
            self.write('/var/tmp/%s.xml' % name, xml)
            self.run('virsh -q -c qemu:///system define /var/tmp/%s.xml >/dev/null' % name)
        return dict((n, self.out('virsh -q -c qemu:///system domuuid %s' % n)) for n in names)

    def soft_delete_play(self, project, names, reclaim_interval):
        """A play that gives the domains an owner and soft-deletes them with the collection's modules."""
        return {'name': 'Soft delete %s' % ', '.join(names), 'hosts': 'hypervisors', 'gather_facts': False, 'tasks': [
            {'deferred.libvirt.vm_attributes': {'name': names, 'project': project}},
            {'deferred.libvirt.vm_soft_delete': {'name': names, 'reclaim_interval': reclaim_interval}},
        ]}

    def soft_deleted(self, project, names, reclaim_interval):
        """Define shut-off domains and soft-delete them; returns their UUIDs."""
        uuids = self.define(names)
        self.playbook([self.soft_delete_play(project, names, reclaim_interval)])
        return uuids

    def show(self, unit, prop):
        return self.out('systemctl show --value -p %s %s' % (prop, unit))

    def wait_for(self, what, predicate, timeout, interval=1.0):
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError('%s: not within %d s' % (what, timeout))
            time.sleep(interval)


@pytest.fixture(scope='session')
def host():
    """A freshly booted systemd host (the image is built first if it is not cached); powered off at the end."""
    h = Host()
    h.testbed('down')
    h.testbed('up')
    assert h.out('cat /proc/1/comm') == 'systemd'
    yield h
    if os.environ.get('SYSTEMD_HOST_KEEP') != '1':
        h.testbed('down')


class Timer(object):
    """The reclaim_timer role applied on the host under one name; ``install()`` takes the role's variables."""

    def __init__(self, host, name):
        self.host = host
        self.name = name
        self.service = name + '.service'
        self.timer = name + '.timer'
        self.script = '/usr/local/sbin/' + name
        self.log_file = '/var/log/deferred-libvirt/%s.log' % name
        self.lock_file = '/run/lock/%s.lock' % name

    def install(self, check=True, soft_delete=None, **role_vars):
        """Apply the role; with soft_delete=(project, names, reclaim_interval) a play before it soft-deletes
        those domains (one ansible-playbook run for both: each run costs seconds on a busy machine)."""
        role_vars = dict(('reclaim_timer_' + k, v) for k, v in role_vars.items())
        role_vars['reclaim_timer_name'] = self.name
        plays = [{'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
                  'roles': [{'role': 'deferred.libvirt.reclaim_timer', 'vars': role_vars}]}]
        if soft_delete:
            plays.insert(0, self.host.soft_delete_play(*soft_delete))
        return self.host.playbook(plays, check=check)

    def journal(self, boot=None):
        """What ``journalctl -u NAME.service`` shows (of one boot with ``boot``: 0 this one, -1 the one before)."""
        flag = '' if boot is None else ' -b %d' % boot
        return self.host.out('journalctl --no-pager -o cat -u %s%s' % (self.service, flag), check=False)

    def log(self):
        return self.host.out('cat %s' % self.log_file, check=False)

    def runs_finished(self):
        return self.journal().count('%s: sweep finished at' % self.name)


@pytest.fixture
def timer(host):
    """A timer name of this test; afterwards its units are taken away by hand (the role's absent has its own test)."""
    t = Timer(host, 'reclaim-t%s' % uuid.uuid4().hex[:6])
    yield t
    host.run('systemctl disable --now %s 2>/dev/null; rm -f /etc/systemd/system/%s.* %s; systemctl daemon-reload;'
             ' systemctl reset-failed %s 2>/dev/null; true' % (t.timer, t.name, t.script, t.service), check=False)


@pytest.fixture
def project():
    return 'p%s' % uuid.uuid4().hex[:8]
