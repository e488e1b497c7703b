# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""4. Terminate with Cinder volumes: K volumes on one domain, cost per volume against Cinder's own delete time.

For each K (and K=0, the fixed cost), a shut-off domain gets K real Cinder
volumes of the test bed (fake volume driver, real API, scheduler, volume
service and database), attached to its UUID as Nova attaches them
(attachment create, update with a connector, complete: the volume is
in-use) and listed in its lifecycle record with delete_on_termination. Then
vm_terminate (with ``cloud`` set to the benchmark's own Cinder project)
destroys and undefines the domain, detaches every volume and deletes it,
waiting until Cinder says it is gone.

The reference is Cinder's own time for the same work, driven directly with
openstacksdk on K volumes set up the same way: per volume, delete the
attachment and poll every 50 ms until the volume is available, delete it and
poll until it is gone. The module's cost per volume is (terminate with K -
terminate with 0) / K, from its own ``seconds`` result field.

Settling (the concurrency target): the module's own ``cinder_seconds`` (the
Cinder part of the terminate, from the connection to the last volume gone)
with K volumes, less the same with none (connecting and listing the
server's attachments), so the libvirt part's noise stays out. Its floor is
Cinder itself: the same K volumes settled directly, all K at once (one
thread each, 50 ms polls), against one volume settled directly. A service
that serialises the work (the test bed's Cinder has one API worker and
SQLite, whose writers queue) cannot settle 16 volumes in twice the time of
one, whoever drives it; the row says how far the module is from that floor.
"""

from concurrent.futures import ThreadPoolExecutor

import os
import subprocess
import time

import lib

NAME = '4 terminate + Cinder'
NEEDS_CINDER = True
SIZES = {'full': [1, 4, 16], 'quick': [1, 4]}
CINDER_SH = os.path.join(lib.ROOT, 'tests', 'testbed', 'cinder.sh')
CLOUD = 'testbed'
# noauth Cinder takes any hex project id; this one is the benchmark's alone.
PROJECT = 'be4c0000be4c4000800000000000be4c'
CONNECTOR = {'host': 'bench', 'initiator': 'iqn.2024-01.bench:x', 'ip': '127.0.0.1', 'platform': 'x86_64',
             'os_type': 'linux', 'multipath': False}
POLL = 0.05
# Settling 16 volumes of one domain within this many times one (issued together, then waited for together).
TARGET_SETTLE = 2.0


def cinder_ready():
    """(True, '') when the test bed's Cinder answers, after one `cinder.sh up` if it did not; else (False, why)."""
    if subprocess.run(['bash', CINDER_SH, 'status'], capture_output=True, check=False).returncode == 0:
        return True, ''
    lib.log('cinder: not up; running tests/testbed/cinder.sh up')
    up = subprocess.run(['bash', CINDER_SH, 'up'], capture_output=True, text=True, check=False)
    if subprocess.run(['bash', CINDER_SH, 'status'], capture_output=True, check=False).returncode == 0:
        return True, ''
    tail = (up.stderr or up.stdout).strip().splitlines()[-1:] or ['no output']
    return False, 'Cinder test service not ready after cinder.sh up: %s' % tail[0][:120]


def _retry(call, tries=5):
    """The test bed's Cinder runs on SQLite, which answers 500 (database is locked) under concurrent writes."""
    for attempt in range(tries):
        try:
            return call()
        except Exception as exc:
            if attempt == tries - 1 or '500' not in str(exc):
                raise
            time.sleep(0.5 * (attempt + 1))


class Volumes(object):
    """The benchmark's own Cinder project (noauth: any hex id), so its volume quota is its own to raise."""

    def __init__(self):
        import openstack
        import yaml
        with open(os.path.join(lib.guests.TESTBED_DIR, 'clouds.yaml')) as handle:
            testbed = yaml.safe_load(handle)['clouds'][CLOUD]
        endpoint = testbed['auth']['endpoint'].rstrip('/').rsplit('/', 1)[0] + '/' + PROJECT
        # What the module gets as its cloud option: an openstacksdk config dict, as clouds.yaml would hold it.
        self.cloud = {'auth_type': 'admin_token', 'auth': {'endpoint': endpoint, 'token': 'admin:%s' % PROJECT},
                      'block_storage_endpoint_override': endpoint, 'block_storage_api_version': '3'}
        self.openstack = openstack
        self.bs = openstack.connect(**self.cloud).block_storage
        self.bs.update_quota_set(PROJECT, volumes=-1, gigabytes=-1)
        self.created = []

    def create_attached(self, prefix, count, server_uuid):
        """``count`` in-use volumes attached to ``server_uuid``: [(volume id, attachment id)]."""
        vols = [self.bs.create_volume(size=1, name='%s%d' % (prefix, i)) for i in range(count)]
        self.created += [v.id for v in vols]
        for vol in vols:
            self.bs.wait_for_status(vol, 'available', interval=0.2, wait=120)
        out = []
        for vol in vols:
            att = _retry(lambda: self.bs.create_attachment(vol.id, instance=server_uuid))
            _retry(lambda: self.bs.update_attachment(att, connector=CONNECTOR))
            _retry(lambda: self.bs.complete_attachment(att))
            out.append((vol.id, att.id))
        for vid, dummy in out:
            self.bs.wait_for_status(self.bs.get_volume(vid), 'in-use', interval=0.2, wait=120)
        return out

    def gone(self, vid):
        try:
            self.bs.get_volume(vid)
            return False
        except self.openstack.exceptions.ResourceNotFound:
            return True

    def settle_directly(self, pair):
        """One volume settled the way the module does it: (detach until available, delete until gone) seconds."""
        vid, att = pair
        t0 = time.monotonic()
        self.bs.delete_attachment(att)
        vol = self.bs.get_volume(vid)
        while vol.status not in ('available', 'error'):
            time.sleep(POLL)
            vol = self.bs.get_volume(vid)
        t1 = time.monotonic()
        self.bs.delete_volume(vid)
        while not self.gone(vid):
            time.sleep(POLL)
        return t1 - t0, time.monotonic() - t1

    def delete_directly(self, pairs):
        """Cinder's own time, per volume, one after the other: [(detach, delete) seconds]."""
        return [self.settle_directly(pair) for pair in pairs]

    def settle_all_at_once(self, pairs):
        """Cinder's own floor for settling these volumes together: all at once, one thread each; wall seconds."""
        began = time.monotonic()
        with ThreadPoolExecutor(max_workers=len(pairs)) as pool:
            list(pool.map(self.settle_directly, pairs))
        return time.monotonic() - began

    def cleanup(self):
        """Delete what a failed case (this run's, or an interrupted earlier run's) left in the benchmark's project."""
        leftovers = set(self.created)
        try:
            leftovers |= set(v.id for v in self.bs.volumes() if (v.name or '').startswith('bench-cinder-'))
        except Exception:
            pass
        for vid in leftovers:
            try:
                if self.gone(vid):
                    continue
                for att in self.bs.attachments(volume_id=vid):
                    self.bs.delete_attachment(att)
                self.bs.delete_volume(vid)
            except Exception:
                pass


def _domain(name):
    """A shut-off domain with no disks: terminate's libvirt part is then the same small cost for every K."""
    return lib.conn().defineXML("<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
                                "<os><type arch='x86_64'>hvm</type></os></domain>" % name)


def _set_volumes(dom, project, pairs):
    import libvirt
    record_mod = lib.collection_module('_record')
    record = record_mod.empty()
    record.update(project=project, volumes=[{'id': vid, 'target': 'vd%s' % chr(ord('b') + i % 24),
                                             'delete_on_termination': True} for i, (vid, dummy) in enumerate(pairs)])
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, record_mod.serialize(record), record_mod.PREFIX,
                    record_mod.NAMESPACE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def run(sizes, reps=1):
    ok, why = cinder_ready()
    if not ok:
        return [lib.Row(NAME, 'K=%s volumes' % ','.join(str(s) for s in sizes), '-', '', '', '', 'skipped', why)]
    prefix = 'bench-cinder-%s-' % lib.RUN_ID
    project = 'bench-cinder'
    state_dir = lib.state_dir('cinder')
    cinder = Volumes()
    cinder.cleanup()
    measured = {}
    try:
        for k in [0] + list(sizes):
            runs = []
            for rep in range(reps):
                name = '%sr%d-k%d' % (prefix, rep, k)
                dom = _domain(name)
                pairs = cinder.create_attached(name + '-vol', k, dom.UUIDString())
                _set_volumes(dom, project, pairs)
                lib.log('cinder: terminate with %d volume(s)' % k)
                play = lib.playbook([lib.local_play([{'name': 'terminate', 'deferred.libvirt.vm_terminate': {
                    'name': name, 'project': project, 'cloud': cinder.cloud}}])], state_dir).check()
                [inst] = play.result(0)['instances']
                deleted = inst.get('volumes_deleted') or []
                if len(deleted) != k or not all(cinder.gone(v) for v, dummy in pairs):
                    raise RuntimeError('terminate with %d volumes deleted %d (pending: %s)'
                                       % (k, len(deleted), inst.get('volumes_pending')))
                direct, together = [], None
                if k:
                    name2 = '%sd%d-k%d' % (prefix, rep, k)
                    pairs2 = cinder.create_attached(name2 + '-vol', k, _domain(name2).UUIDString())
                    direct = cinder.delete_directly(pairs2)
                    lib.cleanup(name2)
                    name3 = '%sc%d-k%d' % (prefix, rep, k)
                    together = cinder.settle_all_at_once(cinder.create_attached(name3 + '-vol', k,
                                                                                _domain(name3).UUIDString()))
                    lib.cleanup(name3)
                runs.append({'module': inst['seconds'], 'task': play.task_seconds(0), 'direct': direct,
                             'cinder': inst['cinder_seconds'], 'together': together})
            measured[k] = {'module': lib.median([r['module'] for r in runs]),
                           'task': lib.median([r['task'] for r in runs]),
                           'cinder': lib.median([r['cinder'] for r in runs]),
                           'together': lib.median([r['together'] for r in runs]) if k else None,
                           'detach': lib.median([sum(d for d, dummy in r['direct']) / k for r in runs if r['direct']]),
                           'delete': lib.median([sum(d for dummy, d in r['direct']) / k for r in runs if r['direct']])}
    finally:
        cinder.cleanup()
        lib.cleanup(prefix)
    return rows(measured, sizes, reps)


def rows(measured, sizes, reps):
    out = []
    base = measured[0]
    note = 'median of %d' % reps if reps > 1 else ''
    out.append(lib.Row(NAME, 'no volumes (fixed cost)', '%s in module (%s task)' % (
        lib.fmt_s(base['module']), lib.fmt_s(base['task'])), '', '', '', 'info', note))
    for k in sizes:
        m = measured[k]
        per = (m['module'] - base['module']) / k
        own = m['detach'] + m['delete']
        out.append(lib.Row(
            NAME, '%d volume(s)' % k, '%s in module (%s task); %.2f s per volume' % (
                lib.fmt_s(m['module']), lib.fmt_s(m['task']), per),
            'Cinder: detach %.2f + delete %.2f = %.2f s per volume' % (m['detach'], m['delete'], own),
            '%.1fx Cinder' % (per / own), '', 'info', note))
    first, last = min(sizes), max(sizes)
    if last > first:
        settle = dict((k, measured[k]['cinder'] - base['cinder']) for k in (first, last))
        ratio = settle[last] / settle[first]
        floor = measured[last]['together'] / measured[first]['together']
        out.append(lib.Row(
            NAME, 'settling %d volumes against %d' % (last, first),
            '%d: %s' % (last, lib.fmt_s(settle[last])), '%d: %s' % (first, lib.fmt_s(settle[first])),
            '%.1fx' % ratio, '<= %.0fx' % TARGET_SETTLE, lib.verdict(ratio <= TARGET_SETTLE),
            'settling = the module\'s cinder_seconds with K volumes - with none; Cinder\'s own floor for the same: '
            '%.1fx (below)' % floor))
        out.append(lib.Row(
            NAME, 'Cinder\'s own floor: %d volumes settled all at once against %d' % (last, first),
            '%d: %s' % (last, lib.fmt_s(measured[last]['together'])),
            '%d: %s' % (first, lib.fmt_s(measured[first]['together'])),
            '%.1fx; the module is %.2fx this floor at %d' % (floor, settle[last] / measured[last]['together'], last),
            '', 'info', 'openstacksdk, one thread per volume, 50 ms polls: what this Cinder allows whoever drives it'))
    return out
