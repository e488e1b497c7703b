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
import os

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


def _xml(name):
    return ("<domain type='qemu'><name>%s</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
            "<os><type arch='x86_64'>hvm</type></os></domain>" % name)


def define(prefix, project, indices, soft_deleted, expired):
    """Define shut-off domains PREFIX%04d for ``indices`` (or rewrite the record of those that exist).

    Those in ``soft_deleted`` are soft-deleted, with reclaim_at a day in the
    past when ``expired``, else a day ahead; the others are stopped.
    """
    import libvirt
    record_mod = lib.collection_module('_record')
    now = record_mod.utcnow()
    conn = lib.conn()
    soft_deleted = set(soft_deleted)
    for i in indices:
        name = '%s%04d' % (prefix, i)
        try:
            dom = conn.lookupByName(name)
        except libvirt.libvirtError:
            dom = conn.defineXML(_xml(name))
        record = record_mod.empty()
        record.update(project=project, user='bench')
        if i in soft_deleted:
            record.update(vm_state='soft_deleted', soft_delete_mode='shutdown',
                          deleted_at=record_mod.format_time(now - datetime.timedelta(days=8)),
                          reclaim_at=record_mod.format_time(now + datetime.timedelta(days=-1 if expired else 1)))
        dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, record_mod.serialize(record), record_mod.PREFIX,
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


def run(sizes, reps=3):
    base = 'bench-scale-%s-' % lib.RUN_ID
    project = 'bench-scale-%s' % lib.RUN_ID
    state_dir = lib.state_dir('scale')
    every = int(round(1 / EXPIRED_SHARE))
    results = {}
    try:
        for n in sizes:
            prefix = '%sn%d-' % (base, n)
            soft = list(range(0, n, every))
            lib.log('scale: defining %d domains' % n)
            # Expired only while the sweeps are measured: other users' unscoped sweeps on this host would take them.
            define(prefix, project, range(n), soft, expired=False)
            args = {'uri': lib.URI, 'state_dir': state_dir}
            r = {}
            _module('vm_info', args)  # warm-up: byte-compiles the installed collection
            runs = [_module('vm_info', args) for dummy in range(reps)]
            r['info'] = lib.median([p.seconds for p, dummy in runs])
            r['info_rss'] = max(p.maxrss_mb for p, dummy in runs)
            r['info_count'] = len(runs[0][1]['instances'])
            adhoc = [_adhoc_info(state_dir) for dummy in range(reps)]
            r['adhoc'] = lib.median([p.seconds for p in adhoc])
            r['adhoc_rss'] = max(p.maxrss_mb for p in adhoc)
            lib.log('scale: N=%d vm_info %.2f s, ad hoc %.2f s; virsh loop' % (n, r['info'], r['adhoc']))
            # The same reads and expiry test as with expired records; only the (empty) list of due ones differs.
            sweep = _sweep('check', prefix)
            r['virsh_check'], r['virsh_check_rss'] = sweep.seconds, sweep.maxrss_mb
            define(prefix, project, soft, soft, expired=True)
            reclaim_args = dict(args, project=project)
            runs = [_module('vm_reclaim', reclaim_args, check=True) for dummy in range(reps)]
            r['check'] = lib.median([p.seconds for p, dummy in runs])
            r['check_rss'] = max(p.maxrss_mb for p, dummy in runs)
            r['check_due'] = len(runs[0][1]['reclaimed'])
            real = []
            for rep in range(reps):
                if rep:
                    define(prefix, project, soft, soft, expired=True)  # the ones the last run reclaimed
                real.append(_module('vm_reclaim', reclaim_args))
            r['real'] = lib.median([p.seconds for p, dummy in real])
            r['real_rss'] = max(p.maxrss_mb for p, dummy in real)
            r['real_done'] = len(real[-1][1]['reclaimed'])
            define(prefix, project, soft, soft, expired=True)
            sweep = _sweep('real', prefix)
            r['virsh_real'], r['virsh_real_rss'] = sweep.seconds, sweep.maxrss_mb
            r['virsh_real_due'] = int(sweep.stdout.split('due=')[-1].split()[0])
            lib.log('scale: N=%d reclaim check %.2f s, real %.2f s; virsh %.1f s / %.1f s'
                    % (n, r['check'], r['real'], r['virsh_check'], r['virsh_real']))
            lib.cleanup(prefix)
            results[n] = r
    finally:
        lib.cleanup(base)
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
    for n in sizes:
        r = results[n]
        top = n == TARGET_INFO_AT
        out.append(lib.Row(
            NAME, 'vm_info, %d domains (module process)' % n,
            '%s, %s peak' % (lib.fmt_s(r['info']), lib.fmt_mb(r['info_rss'])),
            'virsh loop: %s, %s' % (lib.fmt_s(r['virsh_check'], 1), lib.fmt_mb(r['virsh_check_rss'])),
            '%.0fx faster; %.2f ms/domain' % (r['virsh_check'] / r['info'], 1000 * r['info'] / n),
            ('< %.0f s, faster than virsh' % TARGET_INFO_SECONDS) if top else 'faster than virsh',
            lib.verdict((r['info'] < TARGET_INFO_SECONDS or not top) and r['info'] < r['virsh_check']),
            ('%s; %d records' % (note, r['info_count'])).lstrip('; ')))
        out.append(lib.Row(
            NAME, 'vm_info, %d domains (ansible ad hoc)' % n,
            '%s, %s peak (ansible tree)' % (lib.fmt_s(r['adhoc']), lib.fmt_mb(r['adhoc_rss'])),
            'virsh loop: %s' % lib.fmt_s(r['virsh_check'], 1),
            '%.0fx faster' % (r['virsh_check'] / r['adhoc']), '', 'info', note))
        out.append(lib.Row(
            NAME, 'vm_reclaim check mode, %d domains, %d due' % (n, r['check_due']),
            '%s, %s peak' % (lib.fmt_s(r['check']), lib.fmt_mb(r['check_rss'])),
            'virsh loop (check): %s' % lib.fmt_s(r['virsh_check'], 1),
            '%.0fx faster' % (r['virsh_check'] / r['check']), 'faster than virsh',
            lib.verdict(r['check'] < r['virsh_check']), note))
        out.append(lib.Row(
            NAME, 'vm_reclaim, %d domains, %d reclaimed' % (n, r['real_done']),
            '%s, %s peak' % (lib.fmt_s(r['real']), lib.fmt_mb(r['real_rss'])),
            'virsh loop + undefine: %s, %s' % (lib.fmt_s(r['virsh_real'], 1), lib.fmt_mb(r['virsh_real_rss'])),
            '%.0fx faster' % (r['virsh_real'] / r['real']), 'faster than virsh',
            lib.verdict(r['real'] < r['virsh_real']), note))
    for key, label in (('info', 'vm_info'), ('check', 'vm_reclaim check mode'), ('real', 'vm_reclaim')):
        text, ok = _linear(results, sizes, key)
        if text:
            out.append(lib.Row(NAME, '%s cost growth %s' % (label, '->'.join(str(s) for s in sizes)),
                               ' / '.join(lib.fmt_s(results[s][key]) for s in sizes), '', text,
                               'linear' if ok is not None else '',
                               'info' if ok is None else lib.verdict(ok),
                               'second step at most %.1fx the first, +%.1f s for noise' % (LINEAR_SLACK, NOISE_SECONDS)
                               if ok is not None else ''))
    return out
