# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""2. Overhead against the physical limit: the module's soft delete and restore of one ACPI guest,
against the same guest's own shutdown and start done with plain libvirt.

The limit: virDomainShutdown (what ``virsh shutdown`` sends), re-sent every
second (a shutdown sent before acpid listens is lost; the guest is also
waited for until it prints its ready line), polling virDomainGetState every
50 ms until shut off; and virDomainCreate (``virsh start``) polled the same
way until running. Then the module does the same on the same guest, in the
same repetition: vm_soft_delete, vm_restore. The overhead is measured inside
the module (its own ``seconds`` result field, from its entry into the
per-domain work to the record written) and at the playbook level (the task
as the controller sees it: module transfer, interpreter start, imports,
connection, the work and the result). A vm_info task on the same guest shows
the part of the playbook-level figure that any module pays.
"""

import time

import lib

NAME = '2 overhead vs limit'
SIZES = {'full': [1], 'quick': [1]}
# The guest's own shutdown varies by +-0.3 s from one time to the next under TCG: a median needs a few samples.
REPS = 5
TARGET = 0.5
POLL = 0.05
# Seconds a guest idles after its ready line before each measured shutdown (the boot's tail settles).
IDLE = 3.0


def _wait_state(dom, wanted, timeout=120, resend=None):
    t0 = time.monotonic()
    attempts = 0
    next_send = t0
    while True:
        if dom.state()[0] == wanted:
            return time.monotonic() - t0, attempts
        now = time.monotonic()
        if resend is not None and now >= next_send:
            try:
                resend()
                attempts += 1
            except Exception:
                pass
            next_send = now + 1.0
        if now - t0 > timeout:
            raise RuntimeError('domain %s did not reach state %d in %ds' % (dom.name(), wanted, timeout))
        time.sleep(POLL)


def limit_shutdown(dom):
    seconds, attempts = _wait_state(dom, 5, resend=dom.shutdown)
    return seconds, attempts


def limit_start(dom):
    t0 = time.monotonic()
    dom.create()
    seconds, dummy = _wait_state(dom, 1)
    return time.monotonic() - t0


def _task(module, state_dir, **args):
    play = lib.playbook([lib.local_play([{'name': module, 'deferred.libvirt.%s' % module: args}])], state_dir).check()
    return play, play.result(0)


def run(sizes, reps=3):
    prefix = 'bench-ovh-%s-' % lib.RUN_ID
    state_dir = lib.state_dir('overhead')
    name = prefix + 'g'
    samples = []
    try:
        lib.boot_guests([name], settle=IDLE)
        dom = lib.conn().lookupByName(name)
        for rep in range(reps):
            lib.log('overhead: repetition %d of %d' % (rep + 1, reps))
            s = {}
            s['limit_shutdown'], s['limit_attempts'] = limit_shutdown(dom)
            s['limit_start'] = limit_start(dom)
            lib.wait_console_ready(name)
            time.sleep(IDLE)
            info_play, dummy = _task('vm_info', state_dir, name=name)
            s['info_task'] = info_play.task_seconds(0)
            # The same idle time after the ready line as the plain libvirt shutdown had.
            time.sleep(IDLE)
            play, res = _task('vm_soft_delete', state_dir, name=name)
            [inst] = res['instances']
            s['sd_task'], s['sd_wall'] = play.task_seconds(0), play.seconds
            s['sd_module'], s['sd_shutdown'] = inst['seconds'], inst['shutdown_seconds']
            s['sd_attempts'] = inst.get('shutdown_attempts')
            play, res = _task('vm_restore', state_dir, name=name)
            [inst] = res['instances']
            s['rs_task'], s['rs_wall'] = play.task_seconds(0), play.seconds
            s['rs_module'], s['rs_boot'] = inst['seconds'], inst['boot_seconds']
            lib.wait_console_ready(name)
            time.sleep(IDLE)
            samples.append(s)
    finally:
        lib.cleanup(prefix)
    m = dict((k, lib.median([s[k] for s in samples])) for k in samples[0])
    resent = max(s['sd_attempts'] or 0 for s in samples) > 1 or max(s['limit_attempts'] for s in samples) > 1
    spread = dict((k, (min(s[k] for s in samples), max(s[k] for s in samples))) for k in samples[0]
                  if samples[0][k] is not None)
    return rows(m, reps, resent, spread)


def rows(m, reps, resent, spread):
    out = []
    note = 'median of %d' % reps
    for label, key, limit_key, limit_text in (
            ('soft delete', 'sd', 'limit_shutdown', 'virsh shutdown until shut off'),
            ('restore', 'rs', 'limit_start', 'virsh start until running')):
        limit = m[limit_key]
        for level, value, extra in (
                ('inside the module', m[key + '_module'],
                 ' (%s %s)' % ('clean shutdown' if key == 'sd' else 'boot',
                               lib.fmt_s(m['sd_shutdown'] if key == 'sd' else m['rs_boot']))),
                ('playbook task', m[key + '_task'], ' (%s command wall)' % lib.fmt_s(m[key + '_wall']))):
            over = value - limit
            level_key = key + ('_module' if level == 'inside the module' else '_task')
            ranges = '; range %.2f-%.2f s, limit %.2f-%.2f s' % (spread[level_key] + spread[limit_key])
            out.append(lib.Row(NAME, '%s, %s' % (label, level), lib.fmt_s(value) + extra,
                               '%s: %s' % (limit_text, lib.fmt_s(limit)), '%+.2f s' % over,
                               '<= +%.1f s' % TARGET, lib.verdict(over <= TARGET),
                               note + ranges + ('; a shutdown was re-sent' if resent and key == 'sd' else '')))
    out.append(lib.Row(NAME, 'fixed cost of any module task', lib.fmt_s(m['info_task']),
                       'vm_info task on the same guest', '', '', 'info',
                       'part of every playbook-level figure'))
    return out
