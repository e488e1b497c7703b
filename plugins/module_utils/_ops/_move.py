# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Restore onto another host: the move of a soft-deleted domain, serialised with the source host (rule 4 across
hosts), one domain at a time and each its own result.

The move is a sequence of steps, each with a fail point, and the source's record says where it is:

1. ``mark`` (vm_restore ``move_to`` on the source host, under that host's per-domain lock; or, ad hoc, the target
   through the source's libvirt connection): task_state ``moving`` with a compare-and-set from an idle soft-deleted
   record, the target named in its history. From then on the source's sweep skips it (eligibility: a task is in
   progress), and no restore, terminate or soft delete takes it (the state table gives ``moving`` to the move alone).
2. ``move.after_source_marked``, then the target defines the domain from the source's definition (record included,
   still ``moving``).
3. ``move.after_define``, then the source's record is read again: still ``moving`` at the generation marked, or the
   move is rolled back (the target's definition removed, the source put back to idle). Then the source definition is
   undefined, keeping its NVRAM and TPM state.
4. ``move.after_source_undefined``, then the target's record leaves ``moving`` (stamped with this host: the
   authoritative copy, rule 9), and the domain is restored here.

Running the same move again finishes an interrupted one (rule 7): source ``moving`` and nothing here: define;
both: undefine there; only here, still ``moving``: finish. A failed step before the source definition is gone
removes the target's definition again and puts the source back: the domain is never startable on two hosts.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os

from ansible_collections.deferred.libvirt.plugins.module_utils import _chains
from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _pools
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options_
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _states as states
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, RESUME

OPERATION = 'move'
MOVING = states.holds(OPERATION)
# The history entry the mark writes: its message names the target ("to HOST").
MARK_RESULT = 'moving'


def _short(name):
    return (name or '').split('.')[0].lower()


def same_host(one, other):
    """Whether two hostnames name the same host (a short name matches its FQDN)."""
    return bool(one) and bool(other) and _short(one) == _short(other)


def marked_for(record):
    """The host a record in ``moving`` is being moved to (its newest mark in the history), else None."""
    for entry in reversed((record or {}).get('history') or []):
        if entry.get('action') == OPERATION and entry.get('result') == MARK_RESULT:
            message = entry.get('message') or ''
            return message[3:] if message.startswith('to ') else None
    return None


def _marked(record, target, request_id):
    record = copy.deepcopy(record or _record.empty())
    record['task_state'] = MOVING
    now = _record.format_time(_record.utcnow())
    return _record.add_history(record, OPERATION, request_id, now, MARK_RESULT, 'to %s' % target)


# -- step 1 on the source host: vm_restore move_to ------------------------------------------------------------------

class MarkPlan(engine.Plan):
    """The source's side of a move, under the source host's per-domain lock: idle soft-deleted -> ``moving``."""

    held = MOVING
    event = 'move'
    faults = 'move'

    def __init__(self, ctx, domain, opts):
        self.domain = domain
        self.target = opts.move_to
        engine.guard(domain, 'restore onto another host', ctx.project, opts.force, check_protected=False)
        self.decision = engine.decision(domain, OPERATION)
        record = domain.record or _record.empty()
        if self.decision == RESUME and not same_host(marked_for(record), self.target):
            elsewhere = marked_for(record)
            raise engine.OperationError('domain %s is being moved to %s, not %s; finish that move (vm_restore move_from '
                                        'on %s) first; nothing was changed'
                                        % (domain.name, elsewhere or 'another host', self.target,
                                           elsewhere or 'that host'))
        if self.decision == RESUME:
            self.decision = NOOP  # marked for this target already: a re-run changes nothing
        self.before_view = _views.describe(domain)
        self.after_view = dict(self.before_view, task_state=MOVING)

    def report(self):
        if self.decision == NOOP:
            return engine.result_for(self.domain, False, action='none', moving_to=self.target, record=self.before_view,
                                     msg='already marked as moving to %s' % self.target)
        return engine.result_for(self.domain, True, before=self.before_view, after=self.after_view,
                                 action='would_mark_moving', moving_to=self.target, record=self.after_view)

    def start_updates(self):
        marked = _marked(self.domain.record, self.target, self.request_id)
        return {'task_state': MOVING, 'history': marked['history']}

    def start_payload(self):
        return dict(target=self.target)

    def apply(self, ctx):
        failpoint('move.after_source_marked')
        return None

    def finish(self, ctx):
        after = ctx.fresh(self.domain)
        return engine.result_for(self.domain, True, before=self.before_view, after=_views.describe(after),
                                 action='marked_moving', moving_to=self.target, record=_views.describe(after))


def mark(ctx, opts):
    """vm_restore move_to: mark the selected domains of this (the source) host as moving to ``opts.move_to``."""
    chosen = engine.select(engine.snapshot(ctx), opts.selection)

    def work(item):
        def plan_for(current):
            plan = MarkPlan(ctx, current, opts)
            plan.request_id = ctx.request_id
            return plan
        return engine.carry_out(ctx, item.domain, plan_for)

    return engine.outcome(engine.run_each(ctx, chosen, work), 'vm_restore')


# -- steps 2 to 4 on the target host: vm_restore move_from ----------------------------------------------------------

def move_here(ctx, opts, restore):
    """vm_restore move_from: move the named domains from ``opts.move_from`` here and restore them with
    ``restore(ctx, domain, opts)``; one result per domain, a failed one never stopping the others."""
    source_conn = hv.open_connection(opts.move_from)
    try:
        there = engine.snapshot(engine.Context(source_conn, uri=opts.move_from, project=ctx.project))
        here = engine.snapshot(ctx)
        on_source = set(i.uuid for i in there)
        # A move interrupted after the source definition went: its copy here still holds 'moving', finished here.
        unfinished = [i for i in here if i.uuid not in on_source and i.view.get('task_state') == MOVING]
        chosen = engine.select(there + unfinished,
                               options_.Selection(names=opts.selection.names, query=None, project=ctx.project))
        extra = {}
        if opts.quota is not None:
            extra['quota'] = _check_quota(opts, here, chosen)
        mover = Move(ctx, source_conn, opts, restore)
        instances = engine.run_each(ctx, chosen, mover.run)
        return engine.outcome(instances, 'vm_restore', **extra)
    finally:
        try:
            source_conn.close()
        except Exception:  # the source going away after the move changes nothing here
            pass


def _check_quota(opts, here, chosen):
    """The batch's quota figures (every domain that moves comes back, whatever task it holds there)."""
    wanted = [i.view for i in chosen if not _views.counts_for_quota(i.view)]
    usage = opts.usage if opts.usage is not None else _views.usage([i.view for i in here])
    request = quota.request_of(wanted)
    over = quota.check(opts.quota, usage, request)
    figures = {'request': request, 'usage': quota.usage_of(usage, request), 'over': over}
    if over:
        raise quota.QuotaError('over quota, nothing was changed: %s' % quota.describe(over), quota=figures,
                               instances=[dict(name=i.name, uuid=i.uuid, changed=False, failed=True, msg='over quota')
                                          for i in chosen])
    return figures


class Move(object):
    """One move per domain, from the source connection to this host."""

    def __init__(self, ctx, source_conn, opts, restore):
        self.ctx, self.source_conn, self.opts, self.restore = ctx, source_conn, opts, restore
        self.here_name = ctx.host.get('hostname')

    def _read(self, conn, uuid):
        dom = hv.lookup(conn, uuid)
        return hv.refresh(conn, dom) if dom is not None else None

    def run(self, item):
        ctx, opts = self.ctx, self.opts
        source = self._read(self.source_conn, item.uuid)
        here = self._read(ctx.conn, item.uuid)
        if source is None:
            if here is None:
                raise engine.OperationError('domain %s (%s) is defined neither on %s nor here; nothing was changed'
                                            % (item.name, item.uuid, opts.move_from))
            if (here.record or {}).get('task_state') != MOVING:
                raise engine.OperationError('domain %s is already defined here and not on %s: restore it without '
                                            'move_from; nothing was changed' % (here.name, opts.move_from))
            return self._finish(here, resumed=True)
        engine.guard(source, 'restore onto another host', ctx.project, opts.force, check_protected=False)
        record = source.record or _record.empty()
        task = record.get('task_state')
        if task is None:
            engine.decision(source, OPERATION)  # only an idle soft-deleted domain moves
            if here is not None:
                raise engine.OperationError('domain %s (%s) is already defined on this host; nothing was changed'
                                            % (source.name, source.uuid))
            check_movable(ctx, self.source_conn, source, opts)
        elif task == MOVING:
            target = marked_for(record)
            if not same_host(target, self.here_name):
                raise engine.OperationError('domain %s on %s is being moved to %s, not to this host (%s); nothing was '
                                            'changed' % (source.name, opts.move_from, target or 'another host',
                                                         self.here_name))
            if here is None:
                check_movable(ctx, self.source_conn, source, opts)
            elif (here.record or {}).get('task_state') != MOVING:
                raise engine.OperationError('domain %s (%s) is already defined on this host and not moving; nothing '
                                            'was changed' % (source.name, source.uuid))
        else:
            raise engine.OperationError('domain %s on %s: task %s is in progress (run the operation that started it '
                                        'again to finish it); nothing was changed' % (source.name, opts.move_from, task))
        view = _views.describe(source)
        if ctx.check_mode:
            after = dict(view, vm_state='active', task_state=None, power_state='running')
            return engine.result_for(source, True, before=view, after=after, action='would_move_and_restore',
                                     moved_from=opts.move_from, record=after)
        if task is None:
            source = self._mark_through_connection(source)
        failpoint('move.after_source_marked')
        generation = (source.record or {}).get('generation')
        defined_now = False
        try:
            if here is None:
                here = self._define_here(source)
                defined_now = True
            failpoint('move.after_define')
            current = self._read(self.source_conn, source.uuid)
            if current is not None:
                now = current.record or {}
                if now.get('task_state') != MOVING or now.get('generation') != generation:
                    raise engine.OperationError('its record on %s changed while it moved (task_state %s, generation %s, '
                                                'marked at %s): another operation got there first'
                                                % (self.opts.move_from, now.get('task_state'), now.get('generation'),
                                                   generation))
                hv.undefine_moved(current)
        except Exception as exc:
            raise self._roll_back(source, here if defined_now else None, exc)
        failpoint('move.after_source_undefined')
        return self._finish(here, resumed=not defined_now)

    def _mark_through_connection(self, source):
        """Step 1 when no vm_restore move_to ran on the source: the compare-and-set through its connection."""
        current = hv.refresh(self.source_conn, source.dom)
        if current is None:
            raise engine.OperationError('domain %s disappeared from %s; nothing was changed'
                                        % (source.name, self.opts.move_from))
        if (current.record or {}).get('task_state') is not None:
            raise engine.OperationError('domain %s on %s: task_state is %s, expected none; another operation got '
                                        'there first; nothing was changed'
                                        % (source.name, self.opts.move_from, (current.record or {}).get('task_state')))
        hv.write_record(current, _marked(current.record, self.here_name, self.ctx.request_id))
        return current

    def _define_here(self, source):
        ctx = self.ctx
        xml = hv.definition(source)
        with ctx.lock(source):
            dom = hv.define(ctx.conn, xml)
            here = ctx.fresh(hv.Domain(dom, xml, 'shutoff'))
        ctx.event('instance.move.define', here, source=self.opts.move_from)
        return here

    def _roll_back(self, source, defined_here, exc):
        """A failed step before the source definition went: remove the definition made here, then put the source back
        to idle. When that cannot be done the source stays 'moving' (nothing starts it): a re-run finishes the move."""
        why = str(exc) or exc.__class__.__name__
        try:
            if defined_here is not None:
                with self.ctx.lock(defined_here):
                    hv.undefine_moved(self.ctx.fresh(defined_here))
            current = self._read(self.source_conn, source.uuid)
            if current is not None and (current.record or {}).get('task_state') == MOVING:
                record = copy.deepcopy(current.record)
                record['task_state'] = None
                record = _record.add_history(record, OPERATION, self.ctx.request_id,
                                             _record.format_time(_record.utcnow()), 'error', why)
                hv.write_record(current, record)
        except Exception as err:
            return engine.OperationError('domain %s: the move from %s failed: %s; it could not be rolled back (%s): it '
                                         'stays in task_state moving, which nothing starts or reclaims: run the same '
                                         'move again to finish it' % (source.name, self.opts.move_from, why, err))
        self.ctx.event('instance.move.end', source, result='error', source=self.opts.move_from, message=why)
        return engine.OperationError('domain %s: the move from %s failed and was rolled back: it stays soft-deleted on '
                                     '%s only: %s' % (source.name, self.opts.move_from, self.opts.move_from, why))

    def _finish(self, here, resumed):
        """Step 4: the copy here leaves 'moving', stamped with this host, then the restore."""
        ctx = self.ctx
        with ctx.lock(here):
            current = ctx.fresh(here)
            record = copy.deepcopy(current.record or _record.empty())
            if record.get('task_state') == MOVING:
                record['task_state'] = None
                record = _record.add_history(record, OPERATION, ctx.request_id, _record.format_time(_record.utcnow()),
                                             'success', 'from %s' % self.opts.move_from)
                ctx.save(current, record)  # stamped with this host: this copy is now the authoritative one (rule 9)
                ctx.event('instance.move.end', current, result='success', source=self.opts.move_from)
        failpoint('move.after_record')
        result = self.restore(ctx, ctx.fresh(here), self.opts)
        return dict(result, moved_from=self.opts.move_from, move_resumed=resumed)


# -- the same storage ------------------------------------------------------------------------------------------------

def check_movable(ctx, source_conn, domain, opts):
    """Refuse (nothing changed) a domain whose storage this host does not see as the same: every disk, pool volume
    (the same path on both hosts, the same size and modification time), backing file, boot file, NVRAM file and TPM
    state must be here; saved memory cannot come along."""
    if domain.managed_save and not opts.hard_reboot:
        raise engine.OperationError('domain %s has saved memory on %s, which cannot come along: restore it there, or '
                                    'here with hard_reboot=true to boot it fresh; nothing was changed'
                                    % (domain.name, opts.move_from))
    unseen, differs = [], []
    for disk in domain.disks():
        if disk['device'] in ('cdrom', 'floppy') and not disk['path']:
            continue
        if disk['type'] == 'volume':
            name = '%s/%s' % (disk['pool'], disk['volume'])
            try:
                there = _pools.volume_identity(source_conn, disk['pool'], disk['volume'])
                path = _pools.volume_path_offline(ctx.conn, disk['pool'], disk['volume'])
            except hv.HypervisorError as exc:
                unseen.append('volume %s (%s)' % (name, exc))
                continue
            if path != there['path']:
                differs.append('volume %s is %s there and %s here' % (name, there['path'], path))
                continue
            try:
                st = os.stat(path)
            except OSError:
                unseen.append('volume %s (%s)' % (name, path))
                continue
            changed = [k for k, mine in (('size', st.st_size), ('mtime', int(st.st_mtime)))
                       if there.get(k) is not None and there[k] != mine]
            if changed:
                differs.append('volume %s at %s is another file here (%s differ)' % (name, path, ', '.join(changed)))
                continue
        elif disk['type'] in ('file', 'block'):
            path = disk['path']
        else:
            continue
        if not path:
            continue
        if not os.path.exists(path):
            unseen.append(path)
            continue
        try:
            _chains.backing_chain(path, strict=True)
        except hv.HypervisorError as exc:
            unseen.append('the backing chain of %s (%s)' % (path, exc))
    for path in domain.boot_files() + ([domain.nvram_file()] if domain.nvram_file() else []):
        if not os.path.exists(path):
            unseen.append(path)
    if domain.tpm_state():
        tpm_dir = os.path.join('/var/lib/libvirt/swtpm', domain.uuid)
        if not os.path.isdir(tpm_dir):
            unseen.append('its TPM state %s' % tpm_dir)
    if unseen or differs:
        problems = (['this host cannot see %s' % ', '.join(unseen)] if unseen else []) + differs
        raise engine.OperationError('domain %s cannot be restored onto %s: %s; nothing was changed'
                                    % (domain.name, ctx.host.get('hostname'), '; '.join(problems)))
