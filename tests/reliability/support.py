# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the reliability, security and bad-input tests share.

- an independent reader of the lifecycle record (plain ElementTree over the
  domain XML, not the collection's parser), so a check does not trust the
  code it checks;
- the consistency check every fault trial ends with;
- Cinder volumes attached the way Nova attaches them;
- ansible-playbook runs started in the background (races, paused fail points);
- the daemon restarts (libvirtd, Cinder) the fault tests need.
"""

import datetime
import json
import os
import signal
import subprocess
import time
import uuid as uuidlib
import xml.etree.ElementTree as ET

import libvirt
import pytest

from together import Started

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TESTBED = os.path.join(ROOT, 'tests', 'testbed')
NAMESPACE = 'urn:deferred-libvirt:lifecycle:1'
CLOUDS_YAML = '/var/lib/deferred-libvirt-testbed/clouds.yaml'
CLOUD = 'testbed'
IMAGES = '/var/lib/libvirt/images'
LIBVIRTD_PID = '/run/libvirtd.pid'
FAILPOINT = 'DEFERRED_LIBVIRT_FAILPOINT'
FAILPOINT_PAUSE = 'DEFERRED_LIBVIRT_FAILPOINT_PAUSE'
TASK_STATES = ('soft_deleting', 'restoring', 'deleting')


def utc(delta_seconds=0):
    value = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    value += datetime.timedelta(seconds=delta_seconds)
    return value.strftime('%Y-%m-%dT%H:%M:%SZ')


# -- the lifecycle record, read and written without the collection's code ---------------------------------------------

def lookup(conn, uuid):
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise


def read_record(conn, uuid):
    """{'power_state', 'managed_save', fields of the record...} of a domain, or None when it is gone."""
    dom = lookup(conn, uuid)
    if dom is None:
        return None
    root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
    found = {'name': root.findtext('name'), 'power_state': _POWER.get(dom.state()[0], 'other'),
             'managed_save': bool(dom.hasManagedSaveImage(0)), 'id': dom.ID(), 'record': None}
    node = root.find('metadata/{%s}lifecycle' % NAMESPACE)
    if node is not None:
        record = {}
        for child in node:
            tag = child.tag.split('}', 1)[-1]
            if tag == 'volumes':
                record['volumes'] = [dict(v.attrib) for v in child]
            elif tag == 'history':
                record['history'] = [dict(a.attrib) for a in child]
            else:
                record[tag] = (child.text or '').strip() or None
        found['record'] = record
    return found


_POWER = {1: 'running', 2: 'running', 3: 'paused', 4: 'shutdown', 5: 'shutoff', 6: 'crashed', 7: 'pmsuspended'}


def record_xml(vm_state=None, task_state=None, deleted_at=None, reclaim_at=None, project=None, extra='',
               version='1', volumes=()):
    """A lifecycle element as an operator's hand edit (or an older run) would leave it."""
    parts = ['<lifecycle version="%s">' % version]
    for tag, value in (('vm_state', vm_state), ('task_state', task_state), ('deleted_at', deleted_at),
                       ('reclaim_at', reclaim_at), ('project', project)):
        if value is not None:
            parts.append('<%s>%s</%s>' % (tag, value, tag))
    if volumes:
        parts.append('<volumes>%s</volumes>' % ''.join(
            '<volume id="%s" target="%s" delete_on_termination="%s"/>'
            % (v['id'], v.get('target') or '', 'true' if v.get('delete_on_termination') else 'false') for v in volumes))
    parts.append(extra)
    parts.append('</lifecycle>')
    return ''.join(parts)


def set_record(dom, text, namespace=NAMESPACE):
    """Write a lifecycle element straight into the persistent definition (setup, or a hand edit)."""
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, 'deferred', namespace,
                    libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def soft_deleted_record(project, reclaim_in=-1, deleted_ago=3600, volumes=()):
    """The record a soft delete leaves, with reclaim_at ``reclaim_in`` seconds from now (negative: passed)."""
    return record_xml(vm_state='soft_deleted', deleted_at=utc(-deleted_ago), reclaim_at=utc(reclaim_in),
                      project=project, extra='<soft_delete_mode>shutdown</soft_delete_mode>', volumes=volumes)


# -- state_dir ---------------------------------------------------------------------------------------------------------

def events(state_dir, request_id=None):
    path = os.path.join(state_dir, 'events.jsonl')
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        items = [json.loads(line) for line in handle if line.strip()]
    return [e for e in items if request_id is None or e.get('request_id') == request_id]


def tombstone_path(state_dir, uuid):
    """Where the current tombstone of ``uuid`` is: tombstones/pending/, tombstones/finished/ (or the flat layout of
    earlier versions); None when there is none."""
    for sub in ('pending', 'finished', ''):
        path = os.path.join(state_dir, 'tombstones', sub, '%s.json' % uuid)
        if os.path.exists(path):
            return path
    return None


def tombstone(state_dir, uuid):
    path = tombstone_path(state_dir, uuid)
    if path is None:
        return None
    with open(path) as handle:
        return json.load(handle)


def snapshot_files(state_dir):
    """{relative path: bytes} of events and tombstones (locks are empty scratch files and left out)."""
    found = {}
    if not os.path.isdir(state_dir):
        return found
    for sub in ('', 'tombstones', 'tombstones/pending', 'tombstones/finished', 'tombstones/history'):
        base = os.path.join(state_dir, sub)
        if not os.path.isdir(base):
            continue
        for entry in sorted(os.listdir(base)):
            path = os.path.join(base, entry)
            if os.path.isfile(path) and not os.path.islink(path):
                with open(path, 'rb') as handle:
                    found[os.path.join(sub, entry)] = handle.read()
    return found


# -- the consistency check ---------------------------------------------------------------------------------------------

def consistency_problems(conn, state_dir, uuid, expect):
    """What is wrong with the domain ``uuid`` after a fault and a re-run; [] when it is consistent.

    expect: 'active' (running, record active), 'soft_deleted' (shut off or
    saved, with deleted_at and reclaim_at), 'deleted' (gone, with a finished
    tombstone). Whatever is expected, task_state must be clear and a domain
    that is gone must have a tombstone.
    """
    problems = []
    seen = read_record(conn, uuid)
    tomb = tombstone(state_dir, uuid)
    if seen is None:
        if tomb is None:
            problems.append('domain %s is gone without a tombstone' % uuid)
        elif expect != 'deleted':
            problems.append('domain %s is gone (tombstone status %s), expected %s' % (uuid, tomb.get('status'), expect))
        elif tomb.get('status') != 'terminated' or not tomb.get('terminated_at'):
            problems.append('tombstone of %s is %s (terminated_at %s), not terminated'
                            % (uuid, tomb.get('status'), tomb.get('terminated_at')))
        return problems
    record = seen['record'] or {}
    if expect == 'deleted':
        problems.append('domain %s still exists (%s, record %s), expected it gone' % (uuid, seen['power_state'], record))
    if record.get('task_state'):
        problems.append('domain %s was left with task_state %s' % (uuid, record['task_state']))
    if expect == 'active':
        if record.get('vm_state') not in (None, 'active'):
            problems.append('domain %s: vm_state %s, expected active' % (uuid, record.get('vm_state')))
        if seen['power_state'] != 'running':
            problems.append('domain %s: power state %s, expected running' % (uuid, seen['power_state']))
        if record.get('deleted_at') or record.get('reclaim_at'):
            problems.append('domain %s is active but keeps deleted_at/reclaim_at' % uuid)
    if expect == 'soft_deleted':
        if record.get('vm_state') != 'soft_deleted':
            problems.append('domain %s: vm_state %s, expected soft_deleted' % (uuid, record.get('vm_state')))
        if seen['power_state'] != 'shutoff':
            problems.append('domain %s is soft-deleted but %s' % (uuid, seen['power_state']))
        if not record.get('deleted_at') or not record.get('reclaim_at'):
            problems.append('domain %s is soft-deleted without deleted_at/reclaim_at' % uuid)
    return problems


def assert_consistent(conn, state_dir, uuid, expect):
    problems = consistency_problems(conn, state_dir, uuid, expect)
    assert not problems, '; '.join(problems)


# -- Cinder ------------------------------------------------------------------------------------------------------------

class Cinder(object):
    """The test bed's real Cinder, through openstacksdk, for setting up volumes and checking what happened to them."""

    def __init__(self):
        import openstack
        os.environ.setdefault('OS_CLIENT_CONFIG_FILE', CLOUDS_YAML)
        self.openstack = openstack
        self.conn = openstack.connect(cloud=CLOUD)
        self.bs = self.conn.block_storage
        self.created = []

    def volume(self, name):
        vol = self.bs.create_volume(size=1, name=name)
        self.created.append(vol.id)
        return self.bs.wait_for_status(vol, 'available', wait=120).id

    def attach(self, volume_id, server_uuid):
        """Attach as Nova does: attachment create, update with a connector, complete (volume in-use)."""
        att = self.bs.create_attachment(volume_id, instance=server_uuid)
        self.bs.update_attachment(att, connector={'host': 'deferred-test', 'initiator': 'iqn.2024-01.test:x',
                                                  'ip': '127.0.0.1', 'platform': 'x86_64', 'os_type': 'linux',
                                                  'multipath': False})
        self.bs.complete_attachment(att)
        return att.id

    def state(self, volume_id):
        """'deleted', or the volume's status."""
        try:
            return self.bs.get_volume(volume_id).status
        except self.openstack.exceptions.ResourceNotFound:
            return 'deleted'

    def attachments(self, server_uuid):
        return [a.volume_id for a in self.bs.attachments(instance_id=server_uuid)]

    def wait_state(self, volume_id, wanted, timeout=60):
        deadline = time.monotonic() + timeout
        while True:
            state = self.state(volume_id)
            if state in wanted or time.monotonic() > deadline:
                return state
            time.sleep(0.5)

    def cleanup(self):
        for vid in self.created:
            try:
                for att in self.bs.attachments(volume_id=vid):
                    self.bs.delete_attachment(att)
            except Exception:
                pass
            try:
                self.bs.delete_volume(vid)
            except Exception:
                pass


def cinder_endpoint():
    """The block-storage endpoint of the test bed's cloud, from its clouds.yaml."""
    import yaml
    with open(CLOUDS_YAML) as handle:
        return yaml.safe_load(handle)['clouds'][CLOUD]['block_storage_endpoint_override']


def cinder_env():
    return {'OS_CLIENT_CONFIG_FILE': CLOUDS_YAML}


def cinder_up():
    """tests/testbed/cinder.sh up; returns the seconds it took."""
    began = time.monotonic()
    subprocess.run(['bash', os.path.join(TESTBED, 'cinder.sh'), 'up'], check=True, capture_output=True, text=True,
                   timeout=600)
    return time.monotonic() - began


def cinder_down():
    began = time.monotonic()
    subprocess.run(['bash', os.path.join(TESTBED, 'cinder.sh'), 'down'], check=True, capture_output=True, text=True,
                   timeout=300)
    return time.monotonic() - began


def cinder_answers():
    return subprocess.run(['bash', os.path.join(TESTBED, 'cinder.sh'), 'status'], capture_output=True,
                          check=False).returncode == 0


def require_cinder():
    """Fail (never skip) a test that needs the test bed's Cinder when it does not answer: CI always has it."""
    status = subprocess.run(['bash', os.path.join(TESTBED, 'cinder.sh'), 'status'], capture_output=True, text=True,
                            check=False)
    if status.returncode != 0:
        pytest.fail('the test bed Cinder is not running, and this test needs it (start it with '
                    'tests/testbed/cinder.sh up): %s' % (status.stdout + status.stderr).strip()[-500:], pytrace=False)


# -- libvirtd ----------------------------------------------------------------------------------------------------------

def stop_libvirtd():
    """SIGTERM the running libvirtd and wait until it has exited; QEMU processes keep running."""
    with open(LIBVIRTD_PID) as handle:
        pid = int(handle.read().strip())
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.05)
    raise AssertionError('libvirtd (pid %d) did not exit within 30 s of SIGTERM' % pid)


def start_libvirtd():
    """hypervisor.sh up: starts libvirtd again (it reconnects to the running QEMU processes) and waits for it."""
    subprocess.run(['bash', os.path.join(TESTBED, 'hypervisor.sh'), 'up'], check=True, capture_output=True,
                   text=True, timeout=120)


def restart_libvirtd(pause=0.0, meanwhile=None):
    """Stop libvirtd, run ``meanwhile()`` and wait ``pause`` seconds, start it again; returns the outage in seconds.

    Every open connection to libvirtd breaks.
    """
    began = time.monotonic()
    stop_libvirtd()
    try:
        if meanwhile is not None:
            meanwhile()
        time.sleep(pause)
    finally:
        start_libvirtd()
    return time.monotonic() - began


class ReconnectingConnection(object):
    """A libvirt connection that opens itself again after libvirtd was restarted under it."""

    def __init__(self, uri):
        self.uri = uri
        self._conn = None

    def _live(self):
        if self._conn is not None:
            try:
                if self._conn.isAlive():
                    self._conn.getLibVersion()
                    return self._conn
            except libvirt.libvirtError:
                pass
            try:
                self._conn.close()
            except libvirt.libvirtError:
                pass
        self._conn = libvirt.open(self.uri)
        return self._conn

    def __getattr__(self, name):
        return getattr(self._live(), name)


# -- ansible-playbook in the background --------------------------------------------------------------------------------

class Background(object):
    """An ansible-playbook run started now and collected later, built exactly as Runner.playbook builds it."""

    def __init__(self, runner, tasks, env=None, check=False, extra_args=()):
        play = {'hosts': 'localhost', 'gather_facts': False, 'connection': 'local', 'tasks': tasks,
                'module_defaults': {'group/deferred.libvirt.all': {
                    'uri': 'qemu:///system', 'state_dir': runner.state_dir}}}
        path = os.path.join(runner.state_dir + '-plays', 'play-%s.yml' % uuidlib.uuid4().hex[:8])
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            json.dump([play], handle)
        cmd = [os.path.join(os.path.dirname(_python()), 'ansible-playbook'), path, '-i', 'localhost,']
        if check:
            cmd.append('--check')
        cmd += list(extra_args)
        self.proc = Started(cmd, env=runner.env(**(env or {})))

    def wait(self, timeout=600, raw=False):
        """The run's result; with raw=True, (returncode, stdout, stderr) as printed (any stdout callback)."""
        out, err = self.proc.communicate(timeout=timeout)
        if raw:
            return self.proc.returncode, out, err
        return _PlayResult(self.proc.returncode, out, err)


def _python():
    import sys
    return sys.executable


class _PlayResult(object):
    def __init__(self, rc, stdout, stderr):
        self.rc, self.stdout, self.stderr = rc, stdout, stderr
        try:
            self.data = json.loads(stdout)
        except ValueError:
            raise AssertionError('ansible-playbook did not print JSON (rc %s)\nstdout: %s\nstderr: %s'
                                 % (rc, stdout[-3000:], stderr[-3000:]))

    def task(self, index, host='localhost'):
        return [t['hosts'].get(host) for play in self.data['plays'] for t in play['tasks']][index]


def run_paused(runner, tasks, point, tmp_dir, env=None, timeout=300):
    """Start a playbook whose module stops (SIGSTOP) at fail point ``point``; returns (Background, pid).

    The caller breaks something, then resumes the module with os.kill(pid, SIGCONT).
    """
    pause_file = os.path.join(tmp_dir, 'paused-%s' % uuidlib.uuid4().hex[:6])
    run = Background(runner, tasks, env=dict(env or {}, **{FAILPOINT: point, FAILPOINT_PAUSE: pause_file}))
    deadline = time.monotonic() + timeout
    while not os.path.exists(pause_file) or not open(pause_file).read().endswith('\n'):
        if run.proc.poll() is not None:
            result = run.wait()
            raise AssertionError('the module finished without reaching fail point %s: %s'
                                 % (point, json.dumps(result.data)[-2000:]))
        if time.monotonic() > deadline:
            raise AssertionError('fail point %s not reached within %ss' % (point, timeout))
        time.sleep(0.05)
    pid = int(open(pause_file).read().split()[0])
    PAUSED.add(pid)
    _wait_stopped(pid)
    return run, pid


def _wait_stopped(pid, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with open('/proc/%d/stat' % pid) as handle:
            if handle.read().rsplit(')', 1)[1].split()[0] == 'T':
                return
        time.sleep(0.02)
    raise AssertionError('module process %d did not stop at its fail point' % pid)


def resume(pid):
    PAUSED.discard(pid)
    os.kill(pid, signal.SIGCONT)


# Module processes a test paused and has not resumed yet; killed after the test if it failed before resuming them.
PAUSED = set()


def kill_paused():
    for pid in sorted(PAUSED):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    PAUSED.clear()
