# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A randomized fleet trial (issue 27): random operations and faults on the real fleet test bed, the safety rules
checked after every step from libvirt, the filesystem and Cinder directly.

Operations and faults are drawn from a seeded RNG and run through the public interface only: modules in one-task
plays and ad hoc (``ansible -m``), the reclaim playbook over the whole fleet, with ``--limit`` and as two overlapping
runs. Guests are defined and migrated the way an operator (or Nova) does it: through libvirt. Every name the trial
makes starts with its own prefix; everything with it is removed at the end.

Usage: python tests/trial/trial.py --seed N --steps M [--hosts 3] [--replay OPS.json] [--shrink SECONDS]
"""

import argparse
import collections
import datetime
import glob
import json
import os
import random
import re
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'tests', 'testbed'))

import libvirt  # noqa: E402

import cinder_helpers as ch  # noqa: E402
import guests  # noqa: E402
from ansible_env import ansible_env, pipelining  # noqa: E402
from together import Started  # noqa: E402

PYTHON = sys.executable
BIN = os.path.dirname(PYTHON)
FLEET_DIR = '/var/lib/deferred-libvirt-testbed/fleet'
FLEET_JSON = os.path.join(FLEET_DIR, 'fleet-hosts.json')
TRIAL_DIR = '/var/lib/deferred-libvirt-testbed/trial'
TESTBED = os.path.join(ROOT, 'tests', 'testbed')
SSH_CONFIG = os.path.join(FLEET_DIR, 'ssh_config')
SHARED_DIR = '/srv/shared-images'
CALLBACKS = os.path.join(ROOT, 'tests', 'integration', 'callback_plugins')
NAMESPACE = 'urn:deferred-libvirt:lifecycle:1'
INACTIVE_XML = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE
MODULE = 'deferred.libvirt.'
MAX_GUESTS = 8
MAX_RUNNING = 3
SHUTDOWN_TIMEOUT = '5s'
START_TIMEOUT = 120
STATE_DIR_KB = 16384
FILLER = 'trial-filler'
REFUSED_PORT = 9  # discard: nothing listens there on the test bed, so ssh is refused

# The fail points a step may be killed at, by operation (plugins/module_utils/_faults.py).
FAILPOINTS = {
    'soft_delete': ['soft_delete.before_shutdown', 'soft_delete.after_shutdown', 'soft_delete.after_record'],
    'restore': ['restore.after_record', 'restore.before_boot', 'restore.after_boot'],
    'terminate': ['terminate.after_destroy', 'terminate.after_disks', 'terminate.after_tombstone',
                  'terminate.after_undefine', 'terminate.after_detach', 'terminate.after_cinder'],
    'sweep': ['reclaim.before_lock', 'terminate.after_destroy', 'terminate.after_disks', 'terminate.after_tombstone',
              'terminate.after_undefine', 'terminate.after_detach'],
    'move': ['move.after_define', 'move.after_record', 'move.after_source_marked', 'move.after_source_undefined'],
}
CLOCK_STEPS = ['+2d', '-1d', '+400d', '-2h']
# Where Cinder is stopped under a module paused at a fail point (None: before the step): before the terminate decides,
# after the domain is gone and before its volumes are settled, between a volume's detach and its delete.
CINDER_POINTS = {'terminate': [None, 'terminate.after_tombstone', 'terminate.after_undefine', 'terminate.after_detach'],
                 'sweep': [None, 'terminate.after_tombstone', 'terminate.after_undefine', 'terminate.after_detach'],
                 'soft_delete': [None]}
PAUSE_WAIT = 600  # seconds a paused module may wait for its outage to pass before the trial gives up
INVARIANTS = (
    ('files', '1. no file a defined domain references is gone (unless soft-deleted, expired, sole user)'),
    ('volumes', '2. no volume attached to a defined domain is detached or deleted'),
    ('settled', '3. after a clean sweep with Cinder, terminated domains\' volumes follow delete_on_termination'),
    ('restored', '4. a live (not soft-deleted) copy is never reclaimed; nothing runs half-restored'),
    ('one_running', '5. never two running copies of one UUID'),
    ('not_early', '6. nothing reclaimed before its reclaim_at by the real clock'),
    ('converges', '7. an interrupted operation run again converges; every terminated domain has a tombstone'),
)


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def parse_time(text):
    if not text:
        return None
    return datetime.datetime.fromisoformat(text.strip().replace('Z', '+00:00'))


def playbook_failures(stdout):
    """'host: task: message' of every failed or unreachable task result a JSON playbook run printed."""
    found = []
    try:
        plays = json.loads(stdout)['plays']
    except (ValueError, KeyError, TypeError):
        return ['no JSON output']
    for play in plays:
        for task in play['tasks']:
            for host, result in sorted(task['hosts'].items()):
                if result.get('failed') or result.get('unreachable'):
                    found.append('%s: %s: %s' % (host, task.get('name'),
                                                 one_line(result.get('msg'))))
    return found


def one_line(text, head=100, tail=140):
    """The text on one line; a long one keeps its start (what failed) and its end (why: a module's message gives the
    reason last, e.g. QEMU's "Failed to get "write" lock" after "restore failed; it stays soft-deleted ...")."""
    text = ' '.join(str(text).split())
    return text if len(text) <= head + tail + 5 else '%s ... %s' % (text[:head], text[-tail:])


class Violation(Exception):
    def __init__(self, invariant, message):
        super(Violation, self).__init__('%s: %s' % (invariant, message))
        self.invariant = invariant


# -- the fleet ------------------------------------------------------------------------------------------------------

class Fleet(object):
    """The test bed's hosts (hv1 local, hv2/hv3 over SSH), a private state_dir per host and the installed collection."""

    def __init__(self, prefix, hosts, cloud, collections, workdir):
        with open(FLEET_JSON) as handle:
            fleet = json.load(handle)
        self.prefix = prefix
        self.cloud = cloud
        self.collections = collections
        self.workdir = workdir
        self.hosts = ['hv1', 'hv2', 'hv3'][3 - hosts:]
        self.uri = {'hv1': 'qemu:///system'}
        # Where each host's QEMU listens for a live migration (fleet.sh gives hv2 and hv3 a loopback address each).
        self.migration_address = {'hv1': '127.0.0.1'}
        self.state_main = {'hv1': os.path.join(TRIAL_DIR, prefix + 'hv1')}
        self.lib_main = {'hv1': '/var/lib/libvirt'}  # each host's /var/lib/libvirt, seen from this machine
        self.vars = {'hv1': {'ansible_connection': 'local', 'ansible_python_interpreter': PYTHON,
                             'deferred_libvirt_uri': 'qemu:///system',
                             'deferred_libvirt_state_dir': self.state_main['hv1']}}
        for host in ('hv2', 'hv3'):
            entry = fleet[host]
            self.uri[host] = entry['uri_from_main_namespace']
            self.migration_address[host] = entry['migration_address']
            inside = '/var/lib/deferred-libvirt/%s' % prefix.rstrip('-')
            self.state_main[host] = os.path.join(entry['state_dir_from_main_namespace'], prefix.rstrip('-'))
            self.lib_main[host] = os.path.dirname(entry['images_from_main_namespace'])
            self.vars[host] = dict((k, entry[k]) for k in (
                'ansible_host', 'ansible_port', 'ansible_user', 'ansible_ssh_private_key_file',
                'ansible_ssh_common_args'))
            self.vars[host].update(ansible_connection='ssh', ansible_python_interpreter=PYTHON,
                                   deferred_libvirt_uri=entry['uri'], deferred_libvirt_state_dir=inside)
        self._conns = {}
        self.faketime = (glob.glob('/usr/lib/*/faketime/libfaketimeMT.so.1') or [None])[0]

    def conn(self, host):
        conn = self._conns.get(host)
        try:
            if conn is not None and conn.isAlive():
                return conn
        except libvirt.libvirtError:
            pass
        conn = self._conns[host] = guests.connect(self.uri[host])
        return conn

    def forget_conn(self, host):
        """Drop the connection to a host whose libvirtd was restarted: it is broken, whatever isAlive() says."""
        conn = self._conns.pop(host, None)
        if conn is not None:
            try:
                conn.close()
            except libvirt.libvirtError:
                pass

    def mount_state_dir(self):
        """hv1's state_dir is a small tmpfs of its own, so a step can find it full (ENOSPC) for real."""
        if 'hv1' in self.hosts:
            os.makedirs(self.state_main['hv1'], exist_ok=True)
            subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=%dk,mode=0700' % STATE_DIR_KB, 'trial-state',
                            self.state_main['hv1']], check=True)

    def umount_state_dir(self):
        if 'hv1' in self.hosts and os.path.ismount(self.state_main['hv1']):
            subprocess.run(['umount', self.state_main['hv1']], check=False)

    def fill_state_dir(self, host):
        """Fill the host's state_dir (a tmpfs) up to its last byte."""
        with open(os.path.join(self.state_main[host], FILLER), 'wb', buffering=0) as handle:
            for size in (65536, 1):
                try:
                    while True:
                        handle.write(b'\0' * size)
                except OSError:
                    pass

    def unfill_state_dir(self, host):
        try:
            os.unlink(os.path.join(self.state_main[host], FILLER))
        except FileNotFoundError:
            pass

    def inventory(self, refused=None, remote_env=None):
        """The fleet's inventory; ``refused``: a host whose SSH port is closed; ``remote_env``: {host: env} for the
        modules of hv2 and hv3 in this run (a fail point), which reach them only through SSH (``SetEnv``; their sshd
        accepts the fail point variables, tests/testbed/fleet.sh). A master connection sends its ``SetEnv`` to each
        session it carries, so such a run gets its own control path, not the master an earlier run left open."""
        hosts = dict((h, dict(self.vars[h])) for h in self.hosts)
        if refused in hosts and refused != 'hv1':
            hosts[refused]['ansible_port'] = REFUSED_PORT
        token = uuidlib.uuid4().hex[:8]
        for host, env in sorted((remote_env or {}).items()):
            if host in hosts and host != 'hv1' and env:
                hosts[host]['ansible_ssh_extra_args'] = '-o %s -o ControlPath=/tmp/dl-trial-%s-%%C' % (
                    shlex.quote('SetEnv=' + ' '.join('%s=%s' % item for item in sorted(env.items()))), token)
        inv = {'all': {'children': {'hypervisors': {'hosts': hosts, 'vars': {
            'deferred_libvirt_cloud': self.cloud,
            'deferred_libvirt_instance_dirs': ['/var/lib/libvirt/images', SHARED_DIR]}}}}}
        path = os.path.join(self.workdir, 'inventory-%s%s.json' % (refused or 'all', '-faults' if remote_env else ''))
        with open(path, 'w') as handle:
            json.dump(inv, handle)
        return path

    def env(self, **more):
        env = ansible_env(self.collections, PYTHON, 'result_json', CALLBACKS, ANSIBLE_PIPELINING=pipelining())
        env.update(more)
        return env

    def playbook_cmd(self, playbook, refused=None, args=(), remote_env=None):
        return [os.path.join(BIN, 'ansible-playbook'), '-i', self.inventory(refused, remote_env), playbook] + list(args)

    def play(self, host, module, args, environment=None, refused=None):
        """One module task on ``host`` in a play; returns (rc, the host's result or None)."""
        play = {'hosts': host, 'gather_facts': False, 'environment': environment or {},
                'module_defaults': {'group/deferred.libvirt.all': {
                    'uri': '{{ deferred_libvirt_uri }}', 'state_dir': '{{ deferred_libvirt_state_dir }}'}},
                'tasks': [{'name': module, MODULE + module: args}]}
        path = os.path.join(self.workdir, 'play-%s.json' % uuidlib.uuid4().hex[:8])
        with open(path, 'w') as handle:
            json.dump([play], handle)
        proc = subprocess.run(self.playbook_cmd(path, refused), env=self.env(), capture_output=True, text=True,
                              timeout=900, check=False)
        os.unlink(path)
        return proc.returncode, _host_result(proc.stdout, host)

    def install_timer(self, project):
        """The reclaim_timer role, run on this control node with its files under the trial's workdir (no cron or
        systemd entry is activated): returns (its script, its log). The script runs the fleet workflow over the
        trial's inventory with a jsonfile fact cache."""
        base = os.path.join(self.workdir, 'timer')
        name = 'deferred-libvirt-reclaim-' + self.prefix.rstrip('-')
        self.timer_inventory = os.path.join(base, 'inventory.json')
        os.makedirs(os.path.join(base, 'bin'), exist_ok=True)
        os.makedirs(os.path.join(base, 'cron.d'), exist_ok=True)
        shutil.copyfile(self.inventory(), self.timer_inventory)
        args = {'reclaim_timer_name': name, 'reclaim_timer_inventory': self.timer_inventory,
                'reclaim_timer_backend': 'cron', 'reclaim_timer_manage_cron': False, 'reclaim_timer_workflow': True,
                'reclaim_timer_fact_cache_dir': os.path.join(base, 'facts'),
                'reclaim_timer_extra_vars': {'reclaim_project': project},
                'reclaim_timer_script': os.path.join(base, 'bin', name),
                'reclaim_timer_lock_file': os.path.join(base, name + '.lock'),
                'reclaim_timer_unit_dir': os.path.join(base, 'units'),
                'reclaim_timer_cron_file': os.path.join(base, 'cron.d', name),
                'reclaim_timer_log_file': os.path.join(base, 'log', name + '.log'),
                'reclaim_timer_logrotate_dir': os.path.join(base, 'logrotate.d'),
                'reclaim_timer_extra_vars_file': os.path.join(base, 'etc', name + '.vars.json'),
                'reclaim_timer_skip_count_file': os.path.join(base, name + '.skipped'),
                'reclaim_timer_clock_file': os.path.join(base, 'state', 'clock')}
        play = [{'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
                 'roles': [{'role': 'deferred.libvirt.reclaim_timer', 'vars': args}]}]
        path = os.path.join(self.workdir, 'timer-play.json')
        with open(path, 'w') as handle:
            json.dump(play, handle)
        proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-i', 'localhost,', path], env=self.env(),
                              capture_output=True, text=True, timeout=900, check=False)
        if proc.returncode != 0:
            raise RuntimeError('the reclaim_timer role failed (rc %d): %s' % (proc.returncode, proc.stdout[-2000:]))
        return args['reclaim_timer_script'], args['reclaim_timer_log_file']

    def adhoc(self, host, module, args):
        """``ansible HOST -m deferred.libvirt.MODULE -a JSON``, as an operator types it."""
        args = dict(args, uri=self.vars[host]['deferred_libvirt_uri'],
                    state_dir=self.vars[host]['deferred_libvirt_state_dir'])
        cmd = [os.path.join(BIN, 'ansible'), host, '-i', self.inventory(), '-m', MODULE + module,
               '-a', json.dumps(args)]
        proc = subprocess.run(cmd, env=self.env(), capture_output=True, text=True, timeout=900, check=False)
        return proc.returncode, _host_result(proc.stdout, host)


def _host_result(stdout, host):
    try:
        data = json.loads(stdout)
        for play in data['plays']:
            for task in play['tasks']:
                if host in task['hosts']:
                    return task['hosts'][host]
    except (ValueError, KeyError, TypeError):
        return None
    return None


# -- what is there: libvirt, files, Cinder ---------------------------------------------------------------------------

def read_record(dom):
    try:
        text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, NAMESPACE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    except libvirt.libvirtError:
        return None
    root = ET.fromstring(text)
    record = dict((child.tag.split('}')[-1], child.text) for child in root if len(child) == 0)
    record['volumes'] = [dict(v.attrib) for v in root.iter() if v.tag.split('}')[-1] == 'volume']
    return record


def domain_files(xml):
    root = ET.fromstring(xml)
    files = [s.get('file') for s in root.findall('devices/disk/source') if s.get('file')]
    files += [n.text for n in root.findall('os/nvram') if n.text]
    return files


def expired(record, now):
    """Whether the record says soft-deleted with its reclaim_at passed at ``now``: a sweep may take its files."""
    return bool(record.get('vm_state') == 'soft_deleted' and record.get('reclaim_at')
                and parse_time(record['reclaim_at']) <= now)


def tpm_state(lib_dir, uuid, xml):
    """Where libvirt keeps the TPM state of ``uuid`` on the host whose /var/lib/libvirt is ``lib_dir`` (seen from this
    machine), when its definition has an emulated TPM; else None."""
    if ET.fromstring(xml).find("devices/tpm/backend[@type='emulator']") is None:
        return None
    return guests.tpm_state_dir(uuid, lib_dir)


def snapshot(fleet):
    """Every copy of every trial domain: {(host, uuid): {name, active, record, files}}, at one moment."""
    copies = {}
    for host in fleet.hosts:
        conn = fleet.conn(host)
        for dom in conn.listAllDomains():
            try:
                name = dom.name()
                if not name.startswith(fleet.prefix):
                    continue
                uuid, xml = dom.UUIDString(), dom.XMLDesc(INACTIVE_XML)
                tpm = tpm_state(fleet.lib_main[host], uuid, xml)
                copies[(host, uuid)] = {
                    'name': name, 'active': bool(dom.isActive()), 'record': read_record(dom),
                    'files': domain_files(xml), 'tpm': tpm, 'tpm_there': bool(tpm) and os.path.isdir(tpm)}
            except libvirt.libvirtError:
                continue  # undefined while listed
    return {'time': utcnow(), 'copies': copies}


def tombstone_paths(fleet, uuid):
    """(host, pending or finished, path) of every tombstone of ``uuid`` in the hosts' state_dirs, in host order."""
    for host in fleet.hosts:
        for sub in ('pending', 'finished'):
            path = os.path.join(fleet.state_main[host], 'tombstones', sub, '%s.json' % uuid)
            if os.path.exists(path):
                yield host, sub, path


def tombstone_of(fleet, uuid):
    """The tombstone of ``uuid`` in any host's state_dir (pending or finished), read as JSON; None when there is none."""
    for dummy, dummy, path in tombstone_paths(fleet, uuid):
        with open(path) as handle:
            return json.load(handle)
    return None


def tombstones_text(fleet, uuid):
    """What every host's tombstones of ``uuid`` say about its volumes, for a violation's message: the clean-up removes
    them after the run."""
    said = []
    for host, sub, path in tombstone_paths(fleet, uuid):
        try:
            with open(path) as handle:
                tomb = json.load(handle)
        except (OSError, ValueError) as exc:
            said.append('%s %s unreadable (%s)' % (host, sub, exc))
            continue
        said.append('%s %s %s' % (host, sub, json.dumps(dict(
            (k, tomb.get(k)) for k in ('stale_copy', 'volumes', 'volumes_pending', 'volumes_held', 'cinder_errors',
                                       'history') if tomb.get(k)))[:1500]))
    return '; '.join(said) or 'none'


def tombstone_exists(fleet, uuid):
    return tombstone_of(fleet, uuid) is not None


# -- outages: a daemon taken away under a running module ---------------------------------------------------------

def restart_libvirtd(host):
    """Stop the host's libvirtd alone and start it again (its QEMU guests keep running)."""
    cmd = (['bash', os.path.join(TESTBED, 'hypervisor.sh'), 'restart-libvirtd'] if host == 'hv1' else
           ['bash', os.path.join(TESTBED, 'fleet.sh'), 'restart-libvirtd', host])
    subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=300)


def cinder(action):
    subprocess.run(['bash', os.path.join(TESTBED, 'cinder.sh'), action], check=True, capture_output=True, text=True,
                   timeout=600)


class Outage(object):
    """libvirtd restarted, or Cinder stopped, while the step runs.

    With a fail point (``at``) the module stops there (DEFERRED_LIBVIRT_FAILPOINT_PAUSE) and a watcher thread takes
    the daemon away at that exact step, then lets the module go on (SIGCONT): libvirtd is back by then, Cinder stays
    down until the step ends. Without one, Cinder is down for the whole step. The module is never left stopped."""

    def __init__(self, trial, fault):
        self.trial = trial
        self.fault = fault
        self.stop = threading.Event()
        self.thread = None
        self.fired = None
        self.cinder_down = False
        self.done = False

    def start(self):
        try:
            os.unlink(self.trial.pause_file)
        except FileNotFoundError:
            pass
        if self.fault.get('cinder_down') and not self.fault.get('at'):
            cinder('down')
            self.cinder_down = True
        if self.fault.get('at'):
            self.thread = threading.Thread(target=self._watch, daemon=True)
            self.thread.start()

    def _watch(self):
        deadline = time.monotonic() + PAUSE_WAIT
        while not self.stop.is_set() and time.monotonic() < deadline:
            try:
                with open(self.trial.pause_file) as handle:
                    text = handle.read().split()
            except FileNotFoundError:
                text = []
            if len(text) == 2:
                pid = int(text[0])
                try:
                    if 'libvirtd_restart' in self.fault:
                        restart_libvirtd(self.fault['libvirtd_restart'])
                        self.trial.fleet.forget_conn(self.fault['libvirtd_restart'])
                    else:
                        cinder('down')
                        self.cinder_down = True
                    self.fired = text[1]
                finally:
                    try:
                        os.kill(pid, signal.SIGCONT)
                    except ProcessLookupError:
                        pass
                return
            time.sleep(0.1)

    def finish(self):
        """After the step: the watcher stopped, Cinder up again; returns what happened, once."""
        if self.done:
            return ''
        self.done = True
        self.stop.set()
        if self.thread is not None:
            self.thread.join()
        if self.cinder_down:
            cinder('up')
        if 'libvirtd_restart' in self.fault:
            what = 'libvirtd of %s restarted' % self.fault['libvirtd_restart']
        else:
            what = 'Cinder stopped'
        if not self.fault.get('at'):
            return '; %s for the whole step' % what
        if self.fired:
            return '; %s at %s' % (what, self.fired)
        return '; not %s: the fail point %s was not reached' % (what, self.fault['at'])


# -- the trial ------------------------------------------------------------------------------------------------------

class Trial(object):

    def __init__(self, fleet, project, rng, fault_rate, out=sys.stdout):
        self.fleet = fleet
        self.project = project
        self.rng = rng
        self.fault_rate = fault_rate
        self.out = out
        self.guests = {}     # index -> {name, uuid, disk, volumes: [(id, delete_on_termination)]}
        self.backing = {}    # overlay path -> base path (the trial made every image: its headers are known)
        self.terminated = set()  # uuids gone from every host
        self.tpm_made = set()  # (host, uuid) whose TPM state libvirt has made (at its first start on that host)
        self.faults = collections.Counter()
        self.ops = collections.Counter()
        self.checks = collections.Counter()
        self._cinder = None
        self.next_guest = 0
        self.next_base = 0
        self.pause_file = os.path.join(SHARED_DIR, fleet.prefix + 'paused')
        self.timer = None  # the reclaim timer's script, installed on first use
        self.stopped = None  # why the run ended before its last step (--max-seconds, SIGINT), or None

    @property
    def cinder(self):
        if self._cinder is None:
            self._cinder = ch.connect()
        return self._cinder

    # -- drawing ---------------------------------------------------------------------------------------------------

    def draw(self, snap):
        """The next operation, from the RNG and what libvirt shows now."""
        rng = self.rng
        by_guest = collections.defaultdict(list)
        for (host, uuid), copy in snap['copies'].items():
            by_guest[copy['name']].append((host, copy))
        index = dict((g['name'], i) for i, g in self.guests.items())
        live = [(index[n], cs) for n, cs in sorted(by_guest.items()) if n in index]
        soft = [(i, h) for i, cs in live for h, c in cs
                if (c['record'] or {}).get('vm_state') == 'soft_deleted']
        # A move reaches the source by name (qemu+ssh://HOST/system): hv2 and hv3 know each other, not hv1.
        movable = [(i, h) for i, h in soft if h != 'hv1']
        awake = [(i, h) for i, cs in live for h, c in cs
                 if (c['record'] or {}).get('vm_state') != 'soft_deleted']
        running = sum(1 for _g, cs in live for _h, c in cs if c['active'])
        hosts = self.fleet.hosts
        weights = {'create': 4 if len(live) < MAX_GUESTS else 0, 'soft_delete': 5 if awake else 0,
                   'restore': 3 if soft else 0, 'move': 1 if movable and len([h for h in hosts if h != 'hv1']) > 1 else 0,
                   'migrate': 1 if live and len(hosts) > 1 else 0, 'terminate': 2 if live else 0,
                   'attributes': 2 if live else 0, 'sweep': 4}
        kinds = sorted(k for k, w in weights.items() if w)
        kind = rng.choices(kinds, [weights[k] for k in kinds])[0]
        op = {'op': kind}
        if kind == 'create':
            op.update(g=self.next_guest, host=rng.choice(hosts), guest=rng.choice(['acpi', 'noacpi']),
                      start=running < MAX_RUNNING and rng.random() < 0.5,
                      disk=rng.choice(['own', 'own', 'share', 'chain', 'cinder']),
                      other=rng.choice(sorted(self.guests)) if self.guests else None,
                      base=rng.randrange(2), delete_on_termination=rng.random() < 0.5,
                      nvram=rng.random() < 0.2, tpm=rng.random() < 0.2)
            self.next_guest += 1
        elif kind == 'soft_delete':
            g, host = rng.choice(awake)
            zero = rng.random() < 0.15
            op.update(g=g, host=host, interval=0 if zero else rng.choice(['3s', '6s', '20s', '1h']),
                      allow_terminate=zero and rng.random() < 0.8,
                      mode=rng.choice(['shutdown', 'shutdown', 'managed_save']))
        elif kind == 'restore':
            g, host = rng.choice(soft)
            op.update(g=g, host=host, force=rng.random() < 0.2, hard_reboot=rng.random() < 0.2)
        elif kind == 'move':
            g, host = rng.choice(movable)
            op.update(g=g, host=host, target=rng.choice([h for h in hosts if h not in (host, 'hv1')] or [host]))
        elif kind == 'migrate':
            # Half the migrations take a running guest live to another host, when one runs.
            runners = [(i, h) for i, cs in live for h, c in cs if c['active']]
            if runners and rng.random() < 0.5:
                g, host = rng.choice(runners)
                op.update(g=g, host=host, target=rng.choice([h for h in hosts if h != host]),
                          undefine_source=rng.random() < 0.5, live=True)
            else:
                g, cs = rng.choice(live)
                host = rng.choice(cs)[0]
                op.update(g=g, host=host, target=rng.choice([h for h in hosts if h != host]),
                          undefine_source=rng.random() < 0.5, live=False)
        elif kind == 'terminate':
            g, cs = rng.choice(live)
            op.update(g=g, host=rng.choice(cs)[0], force=rng.random() < 0.5)
        elif kind == 'attributes':
            g, cs = rng.choice(live)
            # A guard is cleared twice as often as it is set: with equal weights half the guests ended up locked or
            # protected in a long run, and most operations on them were refused.
            change = rng.choice([{'locked': True}, {'locked': False, 'force': True}, {'locked': False, 'force': True},
                                 {'protected': True}, {'protected': False, 'force': True},
                                 {'protected': False, 'force': True}, {'reclaim_interval': rng.choice(['2s', '1h'])},
                                 {'reclaim_interval': 'default'}])
            op.update(g=g, host=rng.choice(cs)[0], change=change)
        else:
            op.update(variant=rng.choice(['fleet', 'fleet', 'limit', 'adhoc', 'overlap', 'timer']),
                      host=rng.choice(hosts))
        # A fault, sometimes: a fail point, a refused SSH connection, a stepped clock.
        if rng.random() < self.fault_rate:
            choices = []
            # In a playbook sweep (and the timer's script) a kill reaches the module of every host of the run: a job
            # cancelled, or a control node lost, while the sweep deletes (Trial.sweep_env).
            if kind in FAILPOINTS:
                choices.append('kill')
            if kind in ('soft_delete', 'sweep') and (kind != 'sweep' or op['variant'] == 'adhoc'):
                choices.append('clock')
            if kind == 'sweep' and op['variant'] in ('fleet', 'overlap', 'timer') and len(hosts) > 1:
                choices.append('ssh_refused')
            if kind in ('soft_delete', 'restore', 'terminate', 'sweep') and op['host'] == 'hv1' and (
                    kind != 'sweep' or op['variant'] == 'adhoc'):
                choices.append('state_dir_full')
            # A restart at a fail point pauses one module: not in two overlapping runs, where both would stop there.
            if kind in FAILPOINTS and (kind != 'sweep' or op['variant'] != 'overlap'):
                choices.append('libvirtd_restart')
            if kind in CINDER_POINTS and (kind != 'sweep' or op['variant'] in ('adhoc', 'fleet')) and (
                    kind != 'soft_delete' or op['interval'] == 0):
                choices.append('cinder_down')
            if choices:
                fault = rng.choice(choices)
                if fault == 'kill':
                    op['fault'] = {'kill': rng.choice(FAILPOINTS[kind])}
                elif fault == 'clock':
                    op['fault'] = {'clock': rng.choice(CLOCK_STEPS)}
                elif fault == 'state_dir_full':
                    op['fault'] = {'state_dir_full': op['host']}
                elif fault == 'libvirtd_restart':
                    # libvirtd of the host the module runs on restarts while the module waits at a fail point; in a
                    # sweep of the whole fleet, of any of its hosts.
                    if kind == 'move':
                        host = op['target']
                    elif kind == 'sweep' and op['variant'] in ('fleet', 'timer'):
                        host = rng.choice(hosts)
                    else:
                        host = op['host']
                    op['fault'] = {'libvirtd_restart': host, 'at': rng.choice(FAILPOINTS[kind])}
                elif fault == 'cinder_down':
                    at = rng.choice(CINDER_POINTS[kind]) if op.get('variant', 'adhoc') == 'adhoc' else None
                    op['fault'] = {'cinder_down': True, 'at': at}
                else:
                    op['fault'] = {'ssh_refused': rng.choice([h for h in hosts if h != 'hv1'])}
        return op

    # -- running ---------------------------------------------------------------------------------------------------

    def name(self, g):
        return self.fleet.prefix + 'g%d' % g

    def environment(self, op):
        fault = op.get('fault') or {}
        env = {}
        if 'kill' in fault:
            env['DEFERRED_LIBVIRT_FAILPOINT'] = fault['kill']
        if fault.get('at'):
            # The module stops at the fail point (SIGSTOP) and writes its pid to a file in the shared directory, which
            # every host's namespace sees; the trial takes the daemon away there and lets the module go on.
            env['DEFERRED_LIBVIRT_FAILPOINT'] = fault['at']
            env['DEFERRED_LIBVIRT_FAILPOINT_PAUSE'] = self.pause_file
        if 'clock' in fault and self.fleet.faketime:
            env.update(LD_PRELOAD=self.fleet.faketime, FAKETIME=fault['clock'], FAKETIME_DONT_FAKE_MONOTONIC='1')
        return env

    def sweep_env(self, op):
        """Where a playbook sweep's fault goes: {host: env}. A kill reaches every host's module (hv1's through
        ansible-playbook's own environment, hv2's and hv3's through SSH); a pause only the module of the host whose
        libvirtd restarts, so exactly one module waits at the fail point."""
        env = self.environment(op)
        if not env:
            return {}
        fault = op.get('fault') or {}
        if 'libvirtd_restart' in fault:
            return {fault['libvirtd_restart']: env}
        return dict((host, env) for host in self.fleet.hosts)

    def run(self, op, faults=True):
        """Carry out one operation; returns a short line of what happened."""
        if not faults:
            op = dict(op, fault=None)
        kind = op['op']
        self.ops[kind] += 1
        if op.get('fault'):
            self.faults[[k for k in sorted(op['fault']) if k != 'at'][0]] += 1
        fault = op.get('fault') or {}
        full = fault.get('state_dir_full')
        if full:
            self.fleet.fill_state_dir(full)
        outage = Outage(self, fault) if ('libvirtd_restart' in fault or 'cinder_down' in fault) else None
        try:
            if outage is not None:
                outage.start()
            outcome = getattr(self, 'op_' + kind)(op)
            if outage is not None:
                outcome += outage.finish()
            return outcome
        finally:
            if full:
                self.fleet.unfill_state_dir(full)
            if outage is not None:
                outage.finish()

    def module(self, op, module, args):
        host = op['host']
        rc, result = self.fleet.play(host, module, args, environment=self.environment(op))
        if result is None:
            return 'no result (rc %s)' % rc
        if result.get('unreachable'):
            return 'unreachable'
        if result.get('failed'):
            return 'failed: %s' % one_line(result.get('msg'))
        return 'changed' if result.get('changed') else 'ok'

    def op_create(self, op):
        g = op['g']
        name = self.name(g)
        conn = self.fleet.conn(op['host'])
        path = os.path.join(SHARED_DIR, '%sg%d.qcow2' % (self.fleet.prefix, g))
        other = self.guests.get(op['other'])
        if op['disk'] == 'share' and other and os.path.exists(other['disk']):
            path = other['disk']
        elif op['disk'] == 'chain':
            base = os.path.join(SHARED_DIR, '%sbase%d.qcow2' % (self.fleet.prefix, op['base']))
            if not os.path.exists(base):
                guests.make_disk(base)
            guests.make_disk(path, backing=base)
            self.backing[path] = base
        else:
            guests.make_disk(path)
        nvram = False
        if op.get('nvram'):
            # UEFI variables in the shared directory, as on a fleet whose instance directories are shared: a copy
            # of the domain on another host names the same file.
            nvram = os.path.join(SHARED_DIR, '%sg%d_VARS.fd' % (self.fleet.prefix, g))
            shutil.copyfile(guests.OVMF_VARS, nvram)
        dom = guests.define_guest(conn, name, kind=op['guest'], start=False,
                                  disks=[{'path': path, 'target': 'vdb'}], nvram=nvram, tpm=bool(op.get('tpm')))
        uuid = dom.UUIDString()
        self.guests[g] = {'name': name, 'uuid': uuid, 'disk': path, 'volumes': []}
        attrs = {'name': name, 'project': self.project, 'user': 'trial'}
        if op['disk'] == 'cinder':
            volume = ch.create_volume(self.fleet.prefix + 'v%d' % g, 1, conn=self.cinder).id
            ch.attach_like_nova(volume, uuid, mountpoint='/dev/vdc', conn=self.cinder,
                                connector=dict(ch.DEFAULT_CONNECTOR, host=op['host']))
            self.guests[g]['volumes'].append((volume, op['delete_on_termination']))
            attrs['volumes'] = [{'id': volume, 'target': 'vdc', 'delete_on_termination': op['delete_on_termination']}]
        rc, result = self.fleet.adhoc(op['host'], 'vm_attributes', attrs)
        started = ''
        if op['start']:
            try:
                dom.create()
                started = ', started'
            except libvirt.libvirtError as exc:
                started = ', start refused (%s)' % str(exc).splitlines()[0][:80]
        owner = '' if result and not result.get('failed') else ', owner not set'
        return 'defined on %s (%s disk%s%s%s)%s' % (op['host'], op['disk'], ', nvram' if nvram else '',
                                                    ', tpm' if op.get('tpm') else '', started, owner)

    def op_soft_delete(self, op):
        args = {'name': self.name(op['g']), 'project': self.project, 'reclaim_interval': op['interval'],
                'shutdown_timeout': SHUTDOWN_TIMEOUT, 'mode': op['mode'], 'cloud': self.fleet.cloud}
        if op.get('allow_terminate'):
            args['allow_terminate'] = True
        return self.module(op, 'vm_soft_delete', args)

    def op_restore(self, op):
        args = {'name': self.name(op['g']), 'project': self.project, 'start_timeout': START_TIMEOUT}
        if op.get('force'):
            args['force'] = True
        if op.get('hard_reboot'):
            args['hard_reboot'] = True
        return self.module(op, 'vm_restore', args)

    def op_move(self, op):
        moving = dict(op, host=op['target'])
        return self.module(moving, 'vm_restore', {
            'name': self.name(op['g']), 'project': self.project, 'start_timeout': START_TIMEOUT,
            'move_from': 'qemu+ssh://%s/system' % op['host']})

    def op_migrate(self, op):
        """Offline migration as libvirt does it: the definition (with its record) defined on the target; with
        undefine_source the source's copy is undefined (a move), else it stays (a stale copy)."""
        source, target = self.fleet.conn(op['host']), self.fleet.conn(op['target'])
        name = self.name(op['g'])
        try:
            dom = source.lookupByName(name)
            if op.get('live') and dom.isActive():
                return self.live_migrate(op, dom, target)
            if dom.UUIDString() in [d.UUIDString() for d in target.listAllDomains()]:
                # Not onto a host that defines the domain already: redefining it there would replace that copy's
                # definition and record (a running copy's included) with the source's, the operator's doing.
                return 'refused: already defined on %s' % op['target']
            xml = dom.XMLDesc(INACTIVE_XML)
            target.defineXML(xml)
        except libvirt.libvirtError as exc:
            return 'refused: %s' % str(exc).splitlines()[0][:120]
        if op['undefine_source'] and not dom.isActive():
            dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_KEEP_NVRAM)
            return 'moved to %s' % op['target']
        return 'copied to %s' % op['target']

    def live_migrate(self, op, dom, target):
        """Live migration as an operator runs it (between hv2 and hv3 virsh on the source, which reach each other by
        name; to or from hv1 virsh on this machine): the
        guest keeps running on the target with its definition (and record); with undefine_source the source's
        definition goes, else it stays there, shut off (a stale copy). --unsafe: libvirt cannot tell that the shared
        directory (a bind mount here, NFS on a real fleet) is shared, and refuses a disk with a cache mode otherwise."""
        if dom.UUIDString() in [d.UUIDString() for d in target.listAllDomains()]:
            return 'refused: already defined on %s' % op['target']
        flags = '--live --unsafe --persistent' + (' --undefinesource' if op['undefine_source'] else '')
        if 'hv1' in (op['host'], op['target']):
            # hv1 is this machine, whose libvirtd no sshd of the fleet fronts: the operator runs virsh here with both
            # hosts' URIs (the client drives the migration), and names where the target's QEMU listens.
            command = ['virsh', '-c', self.fleet.uri[op['host']], 'migrate'] + flags.split() + [
                self.name(op['g']), self.fleet.uri[op['target']],
                '--migrateuri', 'tcp://%s' % self.fleet.migration_address[op['target']]]
        else:
            command = ['ssh', '-F', SSH_CONFIG, op['host'], 'virsh migrate %s %s qemu+ssh://%s/system'
                       % (flags, self.name(op['g']), op['target'])]
        proc = subprocess.run(command, capture_output=True, text=True, timeout=300, check=False)
        if proc.returncode != 0:
            return 'live migration refused: %s' % one_line(proc.stderr)
        return 'live-migrated to %s%s' % (op['target'], '' if op['undefine_source'] else ' (source definition kept)')

    def op_terminate(self, op):
        args = {'name': self.name(op['g']), 'project': self.project, 'cloud': self.fleet.cloud}
        if op.get('force'):
            args['force'] = True
        return self.module(op, 'vm_terminate', args)

    def op_attributes(self, op):
        rc, result = self.fleet.adhoc(op['host'], 'vm_attributes', dict(op['change'], name=self.name(op['g'])))
        if result is None:
            return 'no result (rc %s)' % rc
        return 'failed: %s' % one_line(result.get('msg')) if result.get('failed') else (
            'changed' if result.get('changed') else 'ok')

    def op_sweep(self, op):
        fault = op.get('fault') or {}
        if op['variant'] == 'adhoc':
            return self.module(op, 'vm_reclaim', {'project': self.project, 'cloud': self.fleet.cloud,
                                                  'instance_dirs': ['/var/lib/libvirt/images', SHARED_DIR]})
        routed = self.sweep_env(op)
        if op['variant'] == 'timer':
            return self.timer_sweep(fault.get('ssh_refused'), routed)
        extra = ['-e', json.dumps({'reclaim_project': self.project})]
        if op['variant'] == 'limit':
            extra += ['--limit', op['host']]
        cmd = self.fleet.playbook_cmd('deferred.libvirt.reclaim', fault.get('ssh_refused'), extra, routed)
        runs = 2 if op['variant'] == 'overlap' else 1
        env = self.fleet.env(**routed.get('hv1', {}))
        procs = [Started(cmd, env=env) for _run in range(runs)]
        rcs, failures = [], []
        for proc in procs:
            stdout = proc.communicate(timeout=900)[0]
            rcs.append(proc.returncode)
            failures += playbook_failures(stdout)
        return 'reclaim.yml %s rc %s%s' % (op['variant'], rcs, ''.join('; %s' % f for f in failures[:3]))

    def timer_sweep(self, refused=None, routed=None):
        """One run of the reclaim timer's script, as cron or systemd starts it: the fleet workflow (gather, index,
        sweep) with a jsonfile fact cache, installed by the reclaim_timer role on first use. ``routed``: a fault's
        environment by host (Trial.sweep_env), for hv1 in the script's environment, for hv2 and hv3 in its
        inventory."""
        if self.timer is None:
            self.timer = self.fleet.install_timer(self.project)
        script, log = self.timer
        routed = routed or {}
        changed = refused or [h for h in routed if h != 'hv1']
        if changed:
            # The inventory the timer reads, for this run: the refused host's port closed, the fault's environment.
            shutil.copyfile(self.fleet.inventory(refused, routed), self.fleet.timer_inventory)
        os.makedirs(os.path.dirname(log), exist_ok=True)
        start = os.path.getsize(log) if os.path.exists(log) else 0
        try:
            # As the role's cron entry runs it: cron's environment (the script sets the rest itself), its output
            # appended to the log.
            cron_env = dict(PATH='/usr/bin:/bin', HOME='/root', LOGNAME='root', SHELL='/bin/sh')
            cron_env.update(routed.get('hv1', {}))
            with open(log, 'a') as out:
                proc = subprocess.run([script], env=cron_env, stdout=out, stderr=subprocess.STDOUT, timeout=1800,
                                      check=False)
        finally:
            if changed:
                shutil.copyfile(self.fleet.inventory(), self.fleet.timer_inventory)
        with open(log) as handle:
            handle.seek(start)
            run = handle.read()
        # The summary line of this run, and why a step stopped the workflow.
        said = [line.strip(' ",') for line in run.splitlines()
                if re.search(r'reclaimed \d+, failed|step failed|no sweep runs|is skipped', line)]
        return 'timer script rc %d%s' % (proc.returncode, ''.join('; ' + one_line(line) for line in said[-2:]))

    # -- checking --------------------------------------------------------------------------------------------------

    def check(self, before, after, op, step_start):
        """The invariants that must hold after every step; raises Violation."""
        now = utcnow()
        copies = after['copies']
        users = collections.defaultdict(list)
        for key, copy in copies.items():
            for path in self.closure(copy['files']):
                users[path].append(key)
        # 1. files
        for key, copy in sorted(copies.items()):
            record = copy['record'] or {}
            for path in self.closure(copy['files']):
                self.checks['files'] += 1
                if os.path.exists(path):
                    continue
                if record.get('task_state') == 'deleting':
                    continue  # a terminate under way (the operator's own ask), finished by running it again
                if expired(record, now) and users[path] == [key]:
                    continue
                raise Violation('files', '%s on %s (uuid %s, vm_state %s, task_state %s) references %s, which is gone'
                                % (copy['name'], key[0], key[1], record.get('vm_state'), record.get('task_state'),
                                   path))
        # 1. the TPM state, which libvirt keeps per host and makes at a domain's first start there: once made, it
        # stays while that host defines the domain (the same exceptions as a file).
        self.tpm_made &= set(copies)
        for key, copy in sorted(copies.items()):
            if not copy.get('tpm'):
                continue
            self.checks['files'] += 1
            if copy['tpm_there']:
                self.tpm_made.add(key)
                continue
            if key not in self.tpm_made:
                continue
            record = copy['record'] or {}
            if record.get('task_state') == 'deleting' or expired(record, now):
                continue
            raise Violation('files', '%s on %s (uuid %s, vm_state %s, task_state %s) had its TPM state in %s, which '
                            'is gone' % (copy['name'], key[0], key[1], record.get('vm_state'),
                                         record.get('task_state'), copy['tpm']))
        # 2. volumes
        for key, copy in sorted(copies.items()):
            record = copy['record'] or {}
            if record.get('task_state') == 'deleting':
                continue
            for g in self.guests.values():
                if g['uuid'] != key[1]:
                    continue
                for volume, _dot in g['volumes']:
                    self.checks['volumes'] += 1
                    status = ch.volume_status(volume, conn=self.cinder)
                    attached = [a for a in ch.attachments_for(key[1], conn=self.cinder) if a.volume_id == volume]
                    if status != 'in-use' or not attached:
                        raise Violation('volumes', 'volume %s of %s (defined on %s) is %s with %d attachment(s)'
                                        % (volume, copy['name'], key[0], status, len(attached)))
        # 5. one running copy
        running = collections.Counter(uuid for (host, uuid), c in copies.items() if c['active'])
        for uuid, count in running.items():
            self.checks['one_running'] += 1
            if count > 1:
                raise Violation('one_running', 'uuid %s runs on %d hosts' % (uuid, count))
        # 4. a live copy is never reclaimed; nothing runs half-restored. 6. nothing reclaimed early.
        asked = op['op'] in ('terminate', 'migrate', 'move') or (op['op'] == 'soft_delete' and op['interval'] == 0)
        for key, copy in sorted(before['copies'].items()):
            if key in copies:
                continue
            if asked and self.guests.get(op.get('g'), {}).get('uuid') == key[1]:
                continue
            record = copy['record'] or {}
            self.checks['restored'] += 1
            if record.get('vm_state') != 'soft_deleted':
                raise Violation('restored', '%s on %s (uuid %s) was %s (task_state %s) before a %s and is gone after it'
                                % (copy['name'], key[0], key[1], record.get('vm_state'), record.get('task_state'),
                                   op['op']))
            self.checks['not_early'] += 1
            reclaim_at = parse_time(record.get('reclaim_at'))
            if reclaim_at is None or reclaim_at > now:
                raise Violation('not_early', '%s on %s (uuid %s) was reclaimed by %s, before its reclaim_at %s'
                                % (copy['name'], key[0], key[1], now.strftime('%H:%M:%S'), record.get('reclaim_at')))
        for key, copy in sorted(copies.items()):
            record = copy['record'] or {}
            self.checks['restored'] += 1
            if copy['active'] and record.get('vm_state') == 'soft_deleted' and not record.get('task_state'):
                raise Violation('restored', '%s on %s (uuid %s) runs but its record says soft_deleted, idle'
                                % (copy['name'], key[0], key[1]))
        # 7. every domain gone from every host has a tombstone
        left = set(uuid for _host, uuid in copies)
        for _host, uuid in sorted(before['copies']):
            if uuid in left or uuid in self.terminated:
                continue
            self.checks['converges'] += 1
            if not tombstone_exists(self.fleet, uuid):
                raise Violation('converges', 'uuid %s is gone from every host and has no tombstone' % uuid)
            self.terminated.add(uuid)

    def closure(self, files):
        out = []
        for path in files:
            while path and path not in out:
                out.append(path)
                path = self.backing.get(path)
        return out

    def check_converged(self, op, after):
        """Rule 7: after an interrupted operation ran again, its domain is idle wherever it is defined."""
        uuid = self.guests.get(op.get('g'), {}).get('uuid')
        self.checks['converges'] += 1
        for (host, u), copy in after['copies'].items():
            if op['op'] == 'sweep' or u == uuid:
                state = (copy['record'] or {}).get('task_state')
                if state and not (copy['record'] or {}).get('locked') and not (copy['record'] or {}).get('protected'):
                    if op['op'] == 'sweep' and state != 'deleting':
                        continue
                    raise Violation('converges', '%s on %s still has task_state %s after the interrupted %s ran '
                                    'again' % (copy['name'], host, state, op['op']))

    def settle(self):
        """Invariant 3: no fault, one sweep of the whole fleet with Cinder, then every terminated domain's volumes
        are deleted (delete_on_termination) or available and detached."""
        self.op_sweep({'op': 'sweep', 'variant': 'fleet'})
        for g in self.guests.values():
            if g['uuid'] not in self.terminated:
                continue
            tomb = tombstone_of(self.fleet, g['uuid']) or {}
            for volume, dot in g['volumes']:
                self.checks['settled'] += 1
                if tomb.get('stale_copy'):
                    # vm_terminate force on what the record called a stale copy: rule 9 touches no volume; the
                    # tombstone must list each one left behind so the operator can find it.
                    if volume not in [v.get('id') for v in tomb.get('volumes') or []]:
                        raise Violation('settled', 'volume %s of %s, undefined as a stale copy, is not listed in its '
                                        'tombstone' % (volume, g['name']))
                    continue
                status = ch.volume_status(volume, conn=self.cinder)
                attached = ch.attachments_for(g['uuid'], conn=self.cinder)
                want = None if dot else 'available'
                if status != want or attached:
                    raise Violation('settled', 'volume %s of terminated %s (delete_on_termination %s) is %s with %d '
                                    'attachment(s); its tombstones: %s' % (
                                        volume, g['name'], dot, status, len(attached),
                                        tombstones_text(self.fleet, g['uuid'])))

    # -- cleaning up -----------------------------------------------------------------------------------------------

    def cleanup(self):
        for host in self.fleet.hosts:
            try:
                guests.destroy_all(self.fleet.conn(host), self.fleet.prefix)
            except libvirt.libvirtError as exc:
                print('cleanup: %s: %s' % (host, exc), file=sys.stderr)
        for path in glob.glob(os.path.join(SHARED_DIR, self.fleet.prefix + '*')):
            os.unlink(path)
        try:
            ch.cleanup(self.fleet.prefix, conn=self.cinder)
        except Exception as exc:  # noqa: BLE001 - cleanup reports and goes on
            print('cleanup: cinder: %s' % exc, file=sys.stderr)
        self.fleet.umount_state_dir()
        for host in self.fleet.hosts:
            shutil.rmtree(self.fleet.state_main[host], ignore_errors=True)


def build_collection(workdir):
    build = os.path.join(workdir, 'build')
    collections = os.path.join(workdir, 'collections')
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', ROOT, '--output-path', build,
                    '--force'], check=True, capture_output=True, text=True)
    tarball = glob.glob(os.path.join(build, 'deferred-libvirt-*.tar.gz'))[0]
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', tarball, '-p', collections,
                    '--force'], check=True, capture_output=True, text=True)
    return collections


def load_cloud():
    import yaml
    with open(ch.CLOUDS_YAML) as handle:
        return yaml.safe_load(handle)['clouds']['testbed']


def run_trial(args, ops=None, collections=None, workdir=None, quiet=False, ops_file=None, deadline=None):
    """One trial on a clean fleet (a fresh prefix and project). ``ops``: replay these instead of drawing. ``ops_file``:
    the ops run so far are written there after each step (a list for ``--replay``), so no interruption loses them.
    ``deadline`` (time.monotonic): no step starts after it, as with --max-seconds (the earlier of the two holds); the
    Trial's ``stopped`` then says so.

    Returns (steps, violation or None, the ops run, the Trial)."""
    rng = random.Random(args.seed)
    tag = uuidlib.uuid4().hex[:4]
    prefix = 'tr%d-%s-' % (args.seed, tag)
    project = 'tr%s%s' % (args.seed, tag)
    os.makedirs(TRIAL_DIR, exist_ok=True)
    fleet = Fleet(prefix, args.hosts, load_cloud(), collections, workdir)
    for host in fleet.hosts:
        os.makedirs(fleet.state_main[host], exist_ok=True)
    fleet.mount_state_dir()
    trial = Trial(fleet, project, rng, args.fault_rate)
    say = (lambda *a: None) if quiet else (lambda *a: print(*a, flush=True))
    done = []
    violation = None
    steps = len(ops) if ops is not None else args.steps
    if args.max_seconds:
        deadline = min(deadline or float('inf'), time.monotonic() + args.max_seconds)
    try:
        # The fleet as operators run it: its reclaim timer has swept it once, so each host knows the fleet it belongs
        # to (its state_dir's fleet.json) and an ad hoc run there keeps what another host could reach (rule 12).
        say('   0 enroll      %s' % trial.op_sweep({'op': 'sweep', 'variant': 'fleet'}))
        before = snapshot(fleet)
        for step in range(steps):
            why = 'its time limit passed' if deadline and time.monotonic() >= deadline else (
                'it was interrupted (SIGINT)' if STOP['requested'] else None)
            if why:
                # Stopped early: no more steps, but the final sweep and its checks still run, and the figures print.
                say('     stopped after %d steps: %s' % (len(done), why))
                trial.stopped = '%d of %d steps: %s' % (len(done), steps, why)
                break
            op = ops[step] if ops is not None else trial.draw(before)
            if op['op'] == 'create':
                trial.next_guest = max(trial.next_guest, op['g'] + 1)
            elif 'g' in op and op['g'] not in trial.guests:
                continue  # a replayed op whose guest the shrunk list never made
            done.append(op)
            if ops_file:
                with open(ops_file + '.tmp', 'w') as handle:
                    json.dump(done, handle)
                os.rename(ops_file + '.tmp', ops_file)
            started = time.monotonic()
            try:
                outcome = trial.run(op)
                after = snapshot(fleet)
                trial.check(before, after, op, started)
                if op.get('fault'):
                    # The fault stops; the same operation runs again and must converge (rule 7).
                    if set(op['fault']) & set(['kill', 'ssh_refused', 'state_dir_full', 'libvirtd_restart',
                                               'cinder_down']):
                        outcome += '; again: ' + trial.run(op, faults=False)
                        before, after = after, snapshot(fleet)
                        trial.check(before, after, op, started)
                        trial.check_converged(op, after)
            except Violation as exc:
                violation = (step + 1, exc)
                say('%4d %-11s %s\n     VIOLATION %s' % (step + 1, op['op'], json.dumps(op), exc))
                break
            say('%4d %-11s %-60s %s (%.1f s)' % (step + 1, op['op'], json.dumps(
                dict((k, v) for k, v in op.items() if k not in ('op', 'other', 'base'))), outcome,
                time.monotonic() - started))
            before = after
        if violation is None:
            try:
                trial.settle()
            except Violation as exc:
                violation = (len(done) + 1, exc)
                say('     VIOLATION after the final sweep: %s' % exc)
    finally:
        trial.cleanup()
    return len(done), violation, done, trial


STOP = {'requested': False}


def _stop_requested(signum, frame):
    if STOP['requested']:
        raise KeyboardInterrupt
    STOP['requested'] = True
    print('trial: stopping after the step under way (SIGINT again to interrupt at once)', file=sys.stderr, flush=True)


class OutOfTime(Exception):
    """A shrink candidate's replay reached the shrink's deadline before it could say whether it reproduces."""


def ddmin(ops, reproduces, deadline):
    """Delta debugging: the smallest sub-list of ``ops`` found before ``deadline`` (time.monotonic) for which
    ``reproduces(candidate, deadline)`` is still true; returns (ops, finished in time). ``reproduces`` raises OutOfTime
    when the deadline stopped the candidate's replay: the budget holds within a candidate too (a replay of hundreds of
    steps takes most of an hour), and an unfinished replay is no answer either way, so the list found so far is kept."""
    n = 2
    while len(ops) >= 2:
        chunk = max(1, len(ops) // n)
        reduced = False
        for i in range(0, len(ops), chunk):
            if time.monotonic() >= deadline:
                return ops, False
            candidate = ops[:i] + ops[i + chunk:]
            try:
                found = reproduces(candidate, deadline)
            except OutOfTime:
                return ops, False
            if found:
                ops, n, reduced = candidate, max(n - 1, 2), True
                break
        if not reduced:
            if n >= len(ops):
                break
            n = min(len(ops), n * 2)
    return ops, True


def shrink(args, ops, collections, workdir, budget, invariant):
    """The op list shrunk by ddmin, each candidate replayed on a clean fleet and kept when ``invariant`` breaks
    again; returns (ops, shrunk to the end)."""
    def reproduces(candidate, deadline):
        dummy, found, dummy, replay = run_trial(args, ops=candidate, collections=collections, workdir=workdir,
                                                quiet=True, deadline=deadline)
        if replay.stopped:
            raise OutOfTime(replay.stopped)
        return found is not None and found[1].invariant == invariant
    return ddmin(ops, reproduces, time.monotonic() + budget)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--seed', type=int, required=True)
    parser.add_argument('--steps', type=int, default=50)
    parser.add_argument('--hosts', type=int, default=3, choices=(2, 3))
    parser.add_argument('--fault-rate', type=float, default=0.25)
    parser.add_argument('--replay', help='a JSON file of operations to run instead of drawing them')
    parser.add_argument('--shrink', type=float, default=0, help='seconds to spend shrinking a violation (0: none)')
    parser.add_argument('--max-seconds', type=float, default=None,
                        help='draw no step after this many seconds; the final sweep, its checks and the figures follow')
    args = parser.parse_args(argv)
    # The first SIGINT (Ctrl-C) ends the run after the step under way, with the final sweep and the figures; a second
    # one interrupts at once (the clean-up still runs).
    signal.signal(signal.SIGINT, _stop_requested)
    workdir = tempfile.mkdtemp(prefix='trial-', dir=os.path.join(ROOT, 'build')
                               if os.path.isdir(os.path.join(ROOT, 'build')) else None)
    started = time.monotonic()
    try:
        collections = build_collection(workdir)
        ops = None
        if args.replay:
            with open(args.replay) as handle:
                ops = json.load(handle)
        # The ops as they run, kept after the run (the workdir is not): a replay list even when a long run or its
        # shrinking is interrupted.
        ops_dir = os.path.join(ROOT, 'build', 'trial')
        os.makedirs(ops_dir, exist_ok=True)
        ops_file = os.path.join(ops_dir, 'seed%d-%s.ops.json' % (args.seed, time.strftime('%Y%m%dT%H%M%S')))
        print('trial: seed %d, %s steps, %d hosts, fault rate %.2f; ops in %s as they run (for --replay)' % (
            args.seed, len(ops) if ops is not None else args.steps, args.hosts, args.fault_rate, ops_file), flush=True)
        steps, violation, done, trial = run_trial(args, ops=ops, collections=collections, workdir=workdir,
                                                  ops_file=ops_file)
        print('operations: %s' % ', '.join('%s %d' % kv for kv in sorted(trial.ops.items())))
        print('faults: %s' % (', '.join('%s %d' % kv for kv in sorted(trial.faults.items())) or 'none'))
        for key, text in INVARIANTS:
            print('  %6d checks  %s' % (trial.checks[key], text))
        print('time: %.0f s' % (time.monotonic() - started))
        if trial.stopped:
            print('stopped early: %s' % trial.stopped)
        if violation is not None:
            minimal, shrunk = done, False
            if args.shrink > 0:
                minimal, shrunk = shrink(args, done, collections, workdir, args.shrink, violation[1].invariant)
            print('REPLAY: seed %d, step %d, %s: %s' % (args.seed, violation[0], violation[1].invariant, violation[1]))
            print('%s op list (%d ops; replay with --replay FILE --seed %d):' % (
                'shrunk' if shrunk else 'unshrunk (no --shrink, or its budget ran out)', len(minimal), args.seed))
            print(json.dumps(minimal))
        print('%d steps, %d violations' % (steps, 0 if violation is None else 1))
        return 0 if violation is None else 1
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == '__main__':
    sys.exit(main())
