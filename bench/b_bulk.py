# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""1. Bulk soft delete: N ACPI guests in one vm_soft_delete call, against one task per guest in a loop.

Each case boots N fresh guests (they are running and their acpid listens),
then either soft-deletes them all in one task (name: [list]), or with one
task invocation per guest (``loop:``, which Ansible runs one after the
other), the way a playbook without bulk support would. The figure is the
task's time as the controller sees it (task start to result), so
ansible-playbook's own start-up is not in it; the whole command's wall time
is shown for context.
"""

import lib

NAME = '1 bulk soft delete'
SIZES = {'full': [1, 8], 'quick': [1, 2]}
TARGET_RATIO = 1.5
REPS = 2


def _soft_delete(names, mode, state_dir):
    args = {'reclaim_interval': '7d'}
    if mode == 'bulk':
        task = {'name': 'soft delete', 'deferred.libvirt.vm_soft_delete': dict(args, name=names)}
    else:
        task = {'name': 'soft delete', 'deferred.libvirt.vm_soft_delete': dict(args, name='{{ item }}'),
                'loop': names}
    play = lib.playbook([lib.local_play([task])], state_dir).check()
    result = play.result(0)
    if mode == 'bulk':
        instances = result['instances']
    else:
        instances = [i for r in result['results'] for i in r['instances']]
    attempts = max(i.get('shutdown_attempts') or 0 for i in instances)
    clean = all(i.get('clean_shutdown') for i in instances)
    return {'task': play.task_seconds(0), 'wall': play.seconds, 'attempts': attempts, 'clean': clean,
            'module_max': max(i.get('seconds') or 0 for i in instances)}


def run(sizes, reps=1):
    prefix = 'bench-bulk-%s-' % lib.RUN_ID
    state_dir = lib.state_dir('bulk')
    measured = {}
    try:
        for n in sizes:
            for mode in ('bulk', 'loop'):
                runs = []
                for rep in range(reps):
                    names = ['%s%s%d-%d-%d' % (prefix, mode[0], n, rep, i) for i in range(n)]
                    lib.log('bulk: booting %d guest(s) for %s N=%d' % (n, mode, n))
                    lib.boot_guests(names)
                    lib.log('bulk: soft delete %s N=%d' % (mode, n))
                    runs.append(_soft_delete(names, mode, state_dir))
                    lib.cleanup(prefix)
                measured[(mode, n)] = {
                    'task': lib.median([r['task'] for r in runs]), 'wall': lib.median([r['wall'] for r in runs]),
                    'attempts': max(r['attempts'] for r in runs), 'clean': all(r['clean'] for r in runs),
                    'module_max': lib.median([r['module_max'] for r in runs])}
    finally:
        lib.cleanup(prefix)
    return rows(measured, sizes)


def rows(measured, sizes):
    out = []
    base = measured.get(('bulk', sizes[0]))
    for n in sizes:
        bulk, loop = measured[('bulk', n)], measured[('loop', n)]
        note = '' if bulk['clean'] and loop['clean'] else 'a guest needed destroy'
        if max(bulk['attempts'], loop['attempts']) > 1:
            note = (note + '; ' if note else '') + 'an ACPI shutdown was re-sent'
        ratio = bulk['task'] / base['task']
        last = n == sizes[-1] and n > 1
        out.append(lib.Row(
            NAME, 'N=%d in one call' % n,
            '%s task (%s wall, slowest guest %s in module)' % (lib.fmt_s(bulk['task']), lib.fmt_s(bulk['wall']),
                                                               lib.fmt_s(bulk['module_max'])),
            'N=%d one call: %s task' % (sizes[0], lib.fmt_s(base['task'])),
            '%.2fx N=%d' % (ratio, sizes[0]),
            '<= %.1fx' % TARGET_RATIO if last else '',
            lib.verdict(ratio <= TARGET_RATIO) if last else 'info', note))
        out.append(lib.Row(
            NAME, 'N=%d one task per guest (loop)' % n,
            '%s task (%s wall)' % (lib.fmt_s(loop['task']), lib.fmt_s(loop['wall'])),
            'N=%d one call: %s task' % (n, lib.fmt_s(bulk['task'])),
            'loop takes %.1fx one call' % (loop['task'] / bulk['task']), '', 'info'))
    return out
