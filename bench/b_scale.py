# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""3. Scale: vm_info and vm_reclaim on a host with N defined, shut-off domains, against a virsh shell loop.

The domains are defined from Python with minimal XML (no disks, never
booted) and get their lifecycle record written directly with setMetadata,
using the collection's own _record.serialize: all belong to one project,
10% are soft-deleted, the rest are stopped. The soft-deleted ones get a
reclaim_at in the past just before the sweeps are measured (what the sweep
must reclaim) and a day ahead before that, so that other users' unscoped
sweeps on a shared host do not find them expired for long.

Each module runs as its own process exactly as AnsiballZ runs it (the
module file with an args file), so the time is the module's from interpreter
start to its JSON, and the peak memory is that process's own (wait4's
ru_maxrss). vm_info is also run ad hoc (``ansible localhost -m vm_info``) to
show what the operator waits for, controller included; its memory figure is
the largest process of the ansible tree. vm_reclaim is scoped to the
benchmark's project, so it never touches anybody else's domains.

The baseline is bench/virsh_sweep.sh: per domain ``virsh dominfo`` and
``virsh dumpxml --inactive`` (the same reads: state, persistence, managed
save, size, disks, the record), plus the expiry test, plus (real mode)
``virsh undefine`` of the expired ones.
"""

import datetime
import json
import os
import shutil
import time

import lib

NAME = '3 scale'
SIZES = {'full': [250, 500, 1000], 'quick': [50, 100]}
EXPIRED_SHARE = 0.10
TARGET_INFO_SECONDS = 2.0
TARGET_INFO_AT = 1000
# Linear: the cost per added domain over the larger step is at most this times the one over the smaller step.
LINEAR_SLACK = 1.5
NOISE_SECONDS = 0.2
SWEEP = os.path.join(lib.BENCH, 'virsh_sweep.sh')
FLOOR = os.path.join(lib.BENCH, 'floor.py')
TARGET_FLOOR = 3.0
TARGET_DISKS = 2.0


def _xml(name, pool=None):
    disk = ''
    if pool:
        disk = ("<devices><disk type='volume' device='disk'><driver name='qemu' type='qcow2'/>"
                "<source pool='%s' volume='%s.qcow2'/><target dev='vda' bus='virtio'/></disk></devices>" % (pool, name))
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os>%s</domain>" % (name, disk))


class Pool(object):
    """A dir pool of the benchmark's own under the instance directory: one backing image, a qcow2 overlay per domain.

    Each overlay is a copy of one overlay made with qemu-img on the shared
    backing image (the same bytes qemu-img would write for each), so making
    1,000 of them takes a moment; the pool is refreshed once after.
    """

    def __init__(self, name):
        self.name = name
        self.path = os.path.join('/var/lib/libvirt/images', name)
        os.makedirs(self.path, exist_ok=True)
        self.base = lib.guests.make_disk(os.path.join(self.path, 'base.qcow2'), size='64M')
        self.template = lib.guests.make_disk(os.path.join(lib.BUILD, '%s-overlay.qcow2' % name), size=None,
                                             backing=self.base)
        conn = lib.conn()
        self.pool = conn.storagePoolDefineXML("<pool type='dir'><name>%s</name><target><path>%s</path></target></pool>"
                                              % (name, self.path), 0)
        self.pool.create(0)

    def overlays(self, names):
        for name in names:
            shutil.copyfile(self.template, os.path.join(self.path, name + '.qcow2'))
        self.pool.refresh(0)

    def count(self):
        return len([f for f in os.listdir(self.path) if f != 'base.qcow2'])

    def remove(self):
        try:
            self.pool.destroy()
        except Exception:
            pass
        try:
            self.pool.undefine()
        except Exception:
            pass
        shutil.rmtree(self.path, ignore_errors=True)


def define(prefix, project, indices, soft_deleted, expired, pool=None):
    """Define shut-off domains PREFIX%04d for ``indices`` (or rewrite the record of those that exist).

    Those in ``soft_deleted`` are soft-deleted, with reclaim_at a day in the
    past when ``expired``, else a day ahead; the others are stopped. With a
    ``pool`` (a Pool), a domain that is defined here gets a new overlay as its disk.
    """
    import libvirt
    record_mod = lib.collection_module('_record')
    now = record_mod.utcnow()
    conn = lib.conn()
    soft_deleted = set(soft_deleted)
    names = ['%s%04d' % (prefix, i) for i in indices]
    doms = {}
    missing = []
    for name in names:
        try:
            doms[name] = conn.lookupByName(name)
        except libvirt.libvirtError:
            missing.append(name)
    if pool is not None and missing:
        pool.overlays(missing)
    for name in missing:
        doms[name] = conn.defineXML(_xml(name, pool.name if pool is not None else None))
    for i, name in zip(indices, names):
        record = record_mod.empty()
        record.update(project=project, user='bench')
        if i in soft_deleted:
            record.update(vm_state='soft_deleted', soft_delete_mode='shutdown',
                          deleted_at=record_mod.format_time(now - datetime.timedelta(days=8)),
                          reclaim_at=record_mod.format_time(now + datetime.timedelta(days=-1 if expired else 1)))
        doms[name].setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, record_mod.serialize(record), record_mod.PREFIX,
                               record_mod.NAMESPACE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def _module(module, args, check=False):
    if check:
        args = dict(args, _ansible_check_mode=True)
    proc, result = lib.module_direct(module, args)
    if result.get('failed'):
        raise RuntimeError('%s failed: %s' % (module, result.get('msg')))
    return proc, result


def _adhoc_info(state_dir):
    cmd = [os.path.join(lib.VENV_BIN, 'ansible'), 'localhost', '-c', 'local', '-i', 'localhost,',
           '-m', 'deferred.libvirt.vm_info', '-a', 'uri=%s state_dir=%s' % (lib.URI, state_dir)]
    proc = lib.run(cmd, env=lib.ansible_env(ANSIBLE_STDOUT_CALLBACK='minimal', ANSIBLE_LOAD_CALLBACK_PLUGINS='0'))
    if proc.rc != 0:
        raise RuntimeError('ansible -m vm_info failed: %s' % proc.stdout[-500:])
    return proc


def _sweep(mode, prefix):
    proc = lib.run(['bash', SWEEP, mode, prefix])
    if proc.rc != 0:
        raise RuntimeError('virsh_sweep.sh %s failed: %s' % (mode, proc.stderr[-500:]))
    return proc


def _quote(name):
    return "'%s'" % name.replace("'", "'\\''")


def virsh_stdin(mode, prefix):
    """The sweep as one virsh process fed every command on stdin (and, for real, one more for the due ones).

    Per domain the same commands as virsh_sweep.sh (dominfo, dumpxml
    --inactive), so only the process start-ups differ. Returns (seconds,
    peak MiB of the largest virsh process, due, reclaimed).
    """
    t0 = time.monotonic()
    listing = lib.run(['virsh', '-c', lib.URI, 'list', '--all', '--name'])
    names = [n for n in listing.stdout.split() if n]
    script = ''.join('echo @@%s\ndominfo %s\ndumpxml --inactive %s\n' % (n, _quote(n), _quote(n)) for n in names)
    reads = lib.run(['virsh', '-c', lib.URI], input_text=script)
    rss = max(listing.maxrss_mb, reads.maxrss_mb)
    now = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    due, commands = [], []
    chunks = ('\n' + reads.stdout).split('\n@@')[1:]
    for chunk in chunks:
        name, dummy, text = chunk.partition('\n')
        if '<deferred:vm_state>soft_deleted</deferred:vm_state>' not in text:
            continue
        reclaim_at = text.split('<deferred:reclaim_at>', 1)[-1].split('</deferred:reclaim_at>', 1)[0]
        if not reclaim_at < now:
            continue
        due.append(name)
        if mode == 'real' and name.startswith(prefix):
            if 'running' in text.split('<domain', 1)[0]:
                commands.append('destroy %s' % _quote(name))
            for pool, vol in _volumes(text):
                commands.append('vol-delete --pool %s %s' % (_quote(pool), _quote(vol)))
            commands.append('undefine %s --managed-save --snapshots-metadata --nvram' % _quote(name))
    if commands:
        sweep = lib.run(['virsh', '-c', lib.URI], input_text='\n'.join(commands) + '\n')
        rss = max(rss, sweep.maxrss_mb)
    return time.monotonic() - t0, rss, len(due), sum(1 for c in commands if c.startswith('undefine'))


def _volumes(xml_text):
    import xml.etree.ElementTree as ET
    try:
        root = ET.fromstring(xml_text[xml_text.index('<domain'):xml_text.rindex('</domain>') + len('</domain>')])
    except ValueError:
        return []
    return [(s.get('pool'), s.get('volume')) for s in root.findall('devices/disk/source') if s.get('pool')]


def floor(mode, prefix, env=None):
    """bench/floor.py, the plain libvirt-python loop, as its own process: (Proc, its JSON)."""
    proc = lib.run([lib.PYTHON, FLOOR, mode, prefix, lib.URI], env=dict(os.environ, **(env or {})))
    if proc.rc != 0:
        raise RuntimeError('floor.py %s failed: %s' % (mode, proc.stderr[-500:]))
    return proc, json.loads(proc.stdout.strip().splitlines()[-1])


def _counted(module, args, check=False):
    """The module once more, with bench/counting on its PYTHONPATH: (RPCs, {call: count})."""
    directory = os.path.join(lib.BUILD, 'counts-scale')
    env = lib.counting_env(directory)
    if check:
        args = dict(args, _ansible_check_mode=True)
    dummy, result = lib.module_direct(module, args, env=env)
    if result.get('failed'):
        raise RuntimeError('%s failed: %s' % (module, result.get('msg')))
    rpc, dummy, calls = lib.read_counts(directory)
    return rpc, calls


def _measure(n, prefix, project, state_dir, reps, pool, virsh_loop):
    """vm_info and the sweeps on N domains PREFIX%04d (defined here), with the references; a dict of figures."""
    every = int(round(1 / EXPIRED_SHARE))
    soft = list(range(0, n, every))
    lib.log('scale: defining %d domains%s' % (n, ' with a qcow2 overlay each' if pool else ''))
    # Expired only while the sweeps are measured: other users' unscoped sweeps on this host would take them.
    define(prefix, project, range(n), soft, expired=False, pool=pool)
    args = {'uri': lib.URI, 'state_dir': state_dir}
    r = {}
    _module('vm_info', args)  # warm-up: byte-compiles the installed collection
    runs = [_module('vm_info', args) for dummy in range(reps)]
    r['info'] = lib.median([p.seconds for p, dummy in runs])
    r['info_rss'] = max(p.maxrss_mb for p, dummy in runs)
    r['info_count'] = len(runs[0][1]['instances'])
    floors = [floor('read', prefix) for dummy in range(reps)]
    r['floor_read'] = lib.median([p.seconds for p, dummy in floors])
    r['floor_read_rss'] = max(p.maxrss_mb for p, dummy in floors)
    r['info_rpc'], r['info_calls'] = _counted('vm_info', args)
    if virsh_loop:
        adhoc = [_adhoc_info(state_dir) for dummy in range(reps)]
        r['adhoc'] = lib.median([p.seconds for p in adhoc])
        r['adhoc_rss'] = max(p.maxrss_mb for p in adhoc)
        lib.log('scale: N=%d vm_info %.2f s, ad hoc %.2f s; virsh loops' % (n, r['info'], r['adhoc']))
        # The same reads and expiry test as with expired records; only the (empty) list of due ones differs.
        sweep = _sweep('check', prefix)
        r['virsh_check'], r['virsh_check_rss'] = sweep.seconds, sweep.maxrss_mb
        r['stdin_check'], r['stdin_check_rss'], dummy, dummy = virsh_stdin('check', prefix)
    define(prefix, project, soft, soft, expired=True, pool=pool)
    reclaim_args = dict(args, project=project)
    runs = [_module('vm_reclaim', reclaim_args, check=True) for dummy in range(reps)]
    r['check'] = lib.median([p.seconds for p, dummy in runs])
    r['check_rss'] = max(p.maxrss_mb for p, dummy in runs)
    r['check_due'] = len(runs[0][1]['reclaimed'])
    r['check_rpc'], dummy = _counted('vm_reclaim', reclaim_args, check=True)
    real = []
    for rep in range(reps):
        if rep:
            define(prefix, project, soft, soft, expired=True, pool=pool)  # the ones the last run reclaimed
        real.append(_module('vm_reclaim', reclaim_args))
    r['real'] = lib.median([p.seconds for p, dummy in real])
    r['real_rss'] = max(p.maxrss_mb for p, dummy in real)
    r['real_done'] = len(real[-1][1]['reclaimed'])
    r['disks_left'] = pool.count() if pool else None
    define(prefix, project, soft, soft, expired=True, pool=pool)
    r['real_rpc'], r['real_calls'] = _counted('vm_reclaim', reclaim_args)
    define(prefix, project, soft, soft, expired=True, pool=pool)
    p, out = floor('real', prefix)
    r['floor_real'], r['floor_real_rss'], r['floor_done'] = p.seconds, p.maxrss_mb, out['reclaimed']
    define(prefix, project, soft, soft, expired=True, pool=pool)
    r['stdin_real'], r['stdin_real_rss'], dummy, r['stdin_done'] = virsh_stdin('real', prefix)
    lib.log('scale: N=%d%s reclaim check %.2f s, real %.2f s; floor %.2f s, virsh stdin %.2f s'
            % (n, ' with disks' if pool else '', r['check'], r['real'], r['floor_real'], r['stdin_real']))
    return r


def run(sizes, reps=3):
    base = 'bench-scale-%s-' % lib.RUN_ID
    project = 'bench-scale-%s' % lib.RUN_ID
    state_dir = lib.state_dir('scale')
    results = {}
    pool = None
    try:
        pool = Pool('bench-scale-%s' % lib.RUN_ID)
        for n in sizes:
            prefix = '%sn%d-' % (base, n)
            results[(n, False)] = _measure(n, prefix, project, state_dir, reps, None, virsh_loop=True)
            lib.cleanup(prefix)
            prefix = '%sd%d-' % (base, n)
            results[(n, True)] = _measure(n, prefix, project + '-disks', state_dir, reps, pool, virsh_loop=False)
            lib.cleanup(prefix)
            for name in os.listdir(pool.path):
                if name != 'base.qcow2':
                    os.unlink(os.path.join(pool.path, name))
            pool.pool.refresh(0)
    finally:
        lib.cleanup(base)
        if pool is not None:
            pool.remove()
    return rows(results, sizes, reps)


def _linear(results, sizes, key):
    """(text, ok): the cost per added domain over the two steps between the three sizes.

    Linear cost gives the same slope on both steps; cost that grows with the
    square of the domain count gives a second slope twice the first (for
    sizes that double). Judged with LINEAR_SLACK and NOISE_SECONDS of slack
    for a host shared with other work.
    """
    if len(sizes) < 3:
        if len(sizes) == 2:
            a, b = sizes
            return 'per added domain %.2f ms' % (1000 * (results[b][key] - results[a][key]) / (b - a)), None
        return '', None
    a, b, c = sizes[:3]
    first = (results[b][key] - results[a][key]) / (b - a)
    second = (results[c][key] - results[b][key]) / (c - b)
    ok = results[c][key] - results[b][key] <= LINEAR_SLACK * max(first, 0.0) * (c - b) + NOISE_SECONDS
    return 'per added domain %.2f then %.2f ms' % (1000 * first, 1000 * second), ok


def rows(results, sizes, reps):
    out = []
    note = 'median of %d' % reps if reps > 1 else ''
    top = max(sizes)
    for n in sizes:
        r, d = results[(n, False)], results[(n, True)]
        judged = n == TARGET_INFO_AT
        ratio = r['info'] / r['floor_read']
        out.append(lib.Row(
            NAME, 'vm_info, %d domains (module process)' % n,
            '%s, %s peak' % (lib.fmt_s(r['info']), lib.fmt_mb(r['info_rss'])),
            'libvirt-python loop: %s, %s' % (lib.fmt_s(r['floor_read']), lib.fmt_mb(r['floor_read_rss'])),
            '%.1fx the loop; %.2f ms/domain' % (ratio, 1000 * r['info'] / n),
            ('<= %.0fx the loop, < %.0f s' % (TARGET_FLOOR, TARGET_INFO_SECONDS)) if judged else '',
            lib.verdict(ratio <= TARGET_FLOOR and r['info'] < TARGET_INFO_SECONDS) if judged else 'info',
            '; '.join(x for x in (note, '%d records' % r['info_count'], 'libvirt RPCs %.2f/domain (%s)' % (
                r['info_rpc'] / float(n), lib.top_calls(r['info_calls'], 3))) if x)))
        out.append(lib.Row(
            NAME, 'vm_info, %d domains with a qcow2 disk each' % n,
            '%s, %s peak' % (lib.fmt_s(d['info']), lib.fmt_mb(d['info_rss'])),
            'libvirt-python loop: %s' % lib.fmt_s(d['floor_read']),
            '%.1fx the loop' % (d['info'] / d['floor_read']), '', 'info',
            '; '.join(x for x in (note, 'libvirt RPCs %.2f/domain' % (d['info_rpc'] / float(n))) if x)))
        out.append(lib.Row(
            NAME, 'references, %d domains: read every domain' % n,
            'virsh per domain: %s, %s' % (lib.fmt_s(r['virsh_check'], 1), lib.fmt_mb(r['virsh_check_rss'])),
            'one virsh on stdin: %s; libvirt-python loop: %s' % (lib.fmt_s(r['stdin_check']),
                                                                 lib.fmt_s(r['floor_read'])),
            'vm_info %.0fx / %.1fx / %.1fx faster' % (r['virsh_check'] / r['info'], r['stdin_check'] / r['info'],
                                                      r['floor_read'] / r['info']),
            '', 'info', 'two virsh processes per domain are mostly process start-up'))
        out.append(lib.Row(
            NAME, 'vm_reclaim check mode, %d domains, %d due' % (n, r['check_due']),
            '%s, %s peak' % (lib.fmt_s(r['check']), lib.fmt_mb(r['check_rss'])),
            'one virsh on stdin: %s; virsh per domain: %s' % (
                lib.fmt_s(r['stdin_check']), lib.fmt_s(r['virsh_check'], 1)),
            '%.1fx faster than virsh on stdin' % (r['stdin_check'] / r['check']),
            'faster than virsh on stdin' if judged else '',
            lib.verdict(r['check'] < r['stdin_check']) if judged else 'info', '; '.join(x for x in (note, 'libvirt RPCs %.2f/domain' % (
                r['check_rpc'] / float(n))) if x)))
        per = (r['real_rpc'] - r['check_rpc']) / float(max(1, r['real_done']))
        out.append(lib.Row(
            NAME, 'vm_reclaim, %d domains, %d reclaimed (no disks)' % (n, r['real_done']),
            '%s, %s peak' % (lib.fmt_s(r['real']), lib.fmt_mb(r['real_rss'])),
            'libvirt-python loop: %s; one virsh on stdin: %s' % (
                lib.fmt_s(r['floor_real']), lib.fmt_s(r['stdin_real'])),
            '%.1fx the loop' % (r['real'] / r['floor_real']), '', 'info',
            '; '.join(x for x in (note, 'libvirt RPCs per reclaimed domain beyond check mode: %.1f' % per) if x)))
        ratio = d['real'] / r['real']
        per = (d['real_rpc'] - d['check_rpc']) / float(max(1, d['real_done']))
        left_ok = d['disks_left'] == n - d['real_done']
        out.append(lib.Row(
            NAME, 'vm_reclaim, %d domains with disks, %d reclaimed, disks deleted' % (n, d['real_done']),
            '%s, %s peak (check mode %s)' % (lib.fmt_s(d['real']), lib.fmt_mb(d['real_rss']), lib.fmt_s(d['check'])),
            'the same sweep without disks: %s; libvirt-python loop: %s' % (lib.fmt_s(r['real']),
                                                                           lib.fmt_s(d['floor_real'])),
            '%.2fx without disks' % ratio, ('<= %.0fx without disks' % TARGET_DISKS) if n == top else '',
            lib.verdict(ratio <= TARGET_DISKS and left_ok) if n == top else ('info' if left_ok else 'MISSED'),
            '; '.join(x for x in (note, '%d overlays left of %d (the kept ones)' % (d['disks_left'], n),
                                  'libvirt RPCs per reclaimed domain beyond check mode: %.1f (%s)' % (
                                      per, lib.top_calls(d['real_calls'], 4))) if x)))
    for key, label, disks in (('info', 'vm_info', False), ('check', 'vm_reclaim check mode', False),
                              ('real', 'vm_reclaim', False), ('real', 'vm_reclaim with disks', True)):
        flat = dict((n, results[(n, disks)]) for n in sizes)
        text, ok = _linear(flat, sizes, key)
        if text:
            out.append(lib.Row(NAME, '%s cost growth %s' % (label, '->'.join(str(s) for s in sizes)),
                               ' / '.join(lib.fmt_s(flat[s][key]) for s in sizes), '', text,
                               'linear' if ok is not None else '',
                               'info' if ok is None else lib.verdict(ok),
                               'second step at most %.1fx the first, +%.1f s for noise' % (LINEAR_SLACK, NOISE_SECONDS)
                               if ok is not None else ''))
    return out
