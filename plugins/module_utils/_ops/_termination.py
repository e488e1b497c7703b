# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The terminate work, shared: destroy, delete owned disks, tombstone, undefine, then settle Cinder volumes.

vm_terminate, vm_reclaim and vm_soft_delete with reclaim_interval 0 all
terminate through ``terminate`` here, with a TerminationOptions of their own
(``read``). One terminate decides once (``TerminatePlan``: guards, state,
which disks it owns and which it keeps, or a ``StaleCopy`` whose definition
alone may go) and engine.carry_out reports or carries it out. The tombstone
is written before anything is destroyed (``_tombstone``), and only storage
the domain owns is deleted (``_storage``, rule 6 of docs/rules.md). A failed terminate
is not rolled back: it stays in task_state deleting and a re-run finishes it.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _power
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options_
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _states as states
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._journal import actor as journal_actor

# The option groups a module that may terminate takes (beside selection and its own).
GROUPS = (options_.Lifecycle, options_.Storage, options_.Cinder, options_.Fleet)


class TerminationOptions(object):
    """What a terminate needs: where owned disks live, how to stop the guest, force, Cinder, the fleet index."""

    def __init__(self, instance_dirs=None, shutdown_timeout=None, shutdown_retry_interval=options_.DEFAULT_RETRY_INTERVAL,
                 force=False, cinder_opts=None, fleet_index=None, fleet_max_age=fleet.DEFAULT_MAX_AGE,
                 fleet_required=False, fleet_run=None):
        self.instance_dirs = storage.instance_dirs(instance_dirs)
        self.shutdown_timeout = shutdown_timeout
        self.shutdown_retry_interval = shutdown_retry_interval
        self.force = force
        self.cinder = cinder_opts or options_.Cinder.read({})
        self.fleet = fleet_index  # the fleet option as given (fleet_index_for's output), or None
        self.fleet_max_age = fleet_max_age
        self.fleet_required = fleet_required  # a missing, foreign or stale slice: an incomplete index, no refusal
        self.fleet_run = fleet_run  # the fleet workflow's run id the slice must carry

    def with_shutdown(self, timeout, retry_interval):
        """A copy that stops the guest with ``timeout`` (soft delete with reclaim_interval 0: its own clean shutdown)."""
        copied = TerminationOptions.__new__(TerminationOptions)
        copied.__dict__.update(self.__dict__)
        copied.shutdown_timeout, copied.shutdown_retry_interval = timeout, retry_interval
        return copied


def read(params, no_log_values=None):
    """TerminationOptions from the task's options; DeferredError naming the option when one cannot be read."""
    stop = options_.Shutdown.read(params)
    fleet_opts = options_.Fleet.read(params)
    return TerminationOptions(
        instance_dirs=params.get('instance_dirs'), shutdown_timeout=stop.timeout,
        shutdown_retry_interval=stop.retry_interval,
        force=options_.Lifecycle.read(params).force, cinder_opts=options_.Cinder.read(params, no_log_values),
        fleet_index=fleet_opts.index, fleet_max_age=fleet_opts.max_age, fleet_required=fleet_opts.required,
        fleet_run=fleet_opts.run)


def fleet_view(ctx, opts):
    """The run's FleetView (rules 9 and 10): stale copies, disks other hosts use, their Cinder attachments.

    A slice for another hypervisor, or older than fleet_max_age, is refused before anything changes (rule 12); with
    fleet_required such a slice, or none, makes the view an incomplete one that says why (fleet.view_for)."""
    view = fleet.view_for(opts.fleet, ctx.host, getattr(opts, 'fleet_max_age', fleet.DEFAULT_MAX_AGE),
                          getattr(opts, 'fleet_required', False), run=getattr(opts, 'fleet_run', None))
    return with_membership(ctx, view)


def with_membership(ctx, view):
    """Rule 12 for a run without a slice: a host that was run in a declared fleet with its slice (state_dir
    fleet.json) keeps, when run alone, what another host could reach, as with an incomplete index. A run with a bound
    slice records the fleet there (only when it changes); a host of no fleet keeps the single-host view."""
    state = ctx.state
    if state is None or view.unavailable:
        return view
    key = ctx.host_key()
    if view.given:
        if not ctx.check_mode:
            entry = {'fleet': view.fleet.get('fleet'), 'hosts': (view.fleet.get('fleet_hosts') or {}).get('count'),
                     'since': view.fleet.get('built_at')}
            try:
                state.write_membership(key, entry)
            except (StateDirError, OSError) as exc:
                ctx.warnings.append('the fleet this host belongs to could not be recorded in its state_dir (%s): a run '
                                    'here without a slice of the fleet index will not know it' % exc)
        return view
    try:
        member = state.read_membership(key)
    except StateDirError as exc:
        # Whether this host belongs to a fleet cannot be read: the safe side is that it does.
        return fleet.FleetView(None, ctx.host, unavailable='%s: this host may belong to a fleet, and this run has no '
                               'slice of its index' % exc)
    if not member:
        return view
    return fleet.FleetView(None, ctx.host, unavailable=(
        'this host belongs to fleet %s (%s hosts, recorded at %s in its state_dir\'s fleet.json by a run with its slice '
        'of the fleet index) and this run has none: run the playbooks over the fleet, or remove this host\'s entry '
        'from fleet.json to take it out of the fleet' % (member.get('fleet') or '(unnamed)', member.get('hosts') or '?',
                                                         member.get('since') or '?')))


def with_terminated(ctx, items, names=None, every=False, mine_only=True):
    """``items`` plus a Selected for each terminated domain (its tombstone) a selection may name.

    ``mine_only`` False: other hosts' tombstones in a shared state_dir too (vm_info shows them; nothing acts on them).
    """
    live = set(i.uuid for i in items)
    state = ctx.state if ctx.state is not None else ctx.open_state(create=False)
    host = ctx.host if mine_only else None
    return list(items) + [engine.Selected(None, tomb, view) for tomb, view in
                          tombstones.terminated_to_select(state, live, host, names=names, every=every)]


class StaleCopy(engine.Plan):
    """Rule 9: a stale copy loses its definition only (no disk, volume or attachment: they are the authoritative
    copy's), after destroying it should it run, which a stale copy should not."""

    def __init__(self, domain, stale, action):
        self.domain = domain
        self.stale = stale
        self.action = action
        self.where = stale.get('authoritative') or 'another host'
        self.before_view = _views.describe(domain)

    @classmethod
    def refused_without_force(cls, ctx, domain, opts, stale, action):
        """vm_terminate's stale copy: refused without force; with force the guards still apply."""
        if not opts.force:
            raise engine.stale_copy_refused(domain, stale, action, ' (force=true only undefines this definition: no '
                                                                   'disk, volume or attachment is touched)')
        engine.guard(domain, action, ctx.project, force=True)
        return cls(domain, stale, action)

    def report(self):
        return engine.result_for(self.domain, True, before=self.before_view, after={}, action='would_undefine_stale_copy',
                                 stale=self.stale['reason'], authoritative=self.where, disks_deleted=[], disks_kept=[])

    def apply(self, ctx):
        domain = self.domain
        ctx.event('instance.delete.start', domain, action='%s (stale copy)' % self.action, stale=self.stale['reason'])
        _power.destroy(domain.dom)
        # Its NVRAM file and TPM state stay too: the copy its record names boots with them (rule 9 touches no file).
        self.flags = hv.undefine(ctx.fresh(domain), keep_nvram=True, keep_tpm=True)
        self.warnings = []
        if not self.stale.get('others'):
            self.tombstone(ctx)
        ctx.event('instance.delete.end', domain, result='success', action='undefined_stale_copy', authoritative=self.where)
        return None

    def tombstone(self, ctx):
        """No other copy was seen (the record's host decided, vm_terminate with force): this may have been the domain's
        last definition, as after an offline migration that kept the record. Rule 9 still touches no disk or volume,
        and a finished tombstone says what was undefined and lists what was left (rule 7: every terminated domain has
        one). Where the fleet index saw the other copy the domain lives on there, and no tombstone is written."""
        domain, record = self.domain, self.domain.record or {}
        tomb = tombstones.for_terminate(ctx, domain, record)
        mine = set(v.get('id') for v in record.get('volumes') or [])
        left = [dict(path=d['path'], target=d.get('target'),
                     reason='left to the copy its record names on %s: undefining a stale copy touches no disk (rule 9)'
                     % self.where) for d in domain.disks() if d.get('path')]
        tomb.update(status='terminated', terminated_at=_record.format_time(_record.utcnow()), undefine_flags=self.flags,
                    volumes_pending=[v for v in tomb['volumes_pending'] if v.get('id') not in mine], disks_kept=left,
                    stale_copy={'reason': self.stale['reason'], 'authoritative': self.where})
        tomb = _record.add_history(tomb, self.action, ctx.request_id, tomb.get('started_at'), 'success')
        volumes = ', '.join(v.get('id') for v in record.get('volumes') or []) or 'none'
        self.warnings.append('no other copy of %s was seen (%s): if %s no longer holds it, this was its last definition '
                             'and its disks (%s) and Cinder volumes (%s) are left behind, untouched; its tombstone '
                             'lists them' % (domain.name, self.stale['reason'], self.where,
                                             ', '.join(d['path'] for d in left) or 'none', volumes))
        try:
            ctx.state.write_tombstone(tomb)
        except StateDirError as exc:
            self.warnings.append('the tombstone of %s could not be written: %s' % (domain.name, exc))

    def finish(self, ctx):
        return engine.result_for(self.domain, True, before=self.before_view, after={}, action='undefined_stale_copy',
                                 stale=self.stale['reason'], authoritative=self.where, undefine_flags=self.flags,
                                 disks_deleted=[], disks_kept=[], volumes_detached=[], volumes_deleted=[],
                                 volumes_pending=[], **({'warnings': self.warnings} if self.warnings else {}))


class TerminatePlan(engine.Plan):
    """What a terminate of one domain will do, decided once: guards, state, the disks it deletes and keeps."""

    held = states.holds('terminate')
    event = 'delete'
    faults = 'terminate'
    foreign_hosts = ()
    volumes_held = None  # why its Cinder volumes wait (FleetView.volumes_held), set by terminate()

    def __init__(self, ctx, domain, opts, index, action, operation, precondition=None):
        if precondition:
            precondition(domain)
        self.domain = domain
        self.opts = opts
        self.action = action
        self.record = engine.guard(domain, action, ctx.project, opts.force)
        # A live domain is terminated whatever its record says (even a stray vm_state deleted): no NOOP here, and an
        # interrupted task of any operation is taken over from the task_state it holds.
        engine.decision(domain, operation)
        self.held = states.holds(operation)
        self.expected = (self.record.get('task_state'),)
        self.before_view = _views.describe(domain)
        self.owned, self.kept = storage.classify_disks(ctx.conn, domain, opts.instance_dirs, index)
        # The NVRAM file goes with the definition (libvirt deletes it) unless something else may use it (rule 10).
        nvram_kept = storage.classify_nvram(domain, index)
        self.keep_nvram = nvram_kept is not None
        if self.keep_nvram:
            self.kept.append(nvram_kept)
        self.flags = hv.undefine_flags(domain, keep_nvram=self.keep_nvram)[1]
        self.irreversible = False
        self.deleted = []
        check_cinder(ctx, domain, self.record, opts.cinder)

    def start_payload(self):
        return dict(action=self.action, previous_task_state=self.expected[0])

    def report(self):
        """The plan, reported, with what Cinder would be asked to do (read only)."""
        vols, pending, warnings = tombstones.volumes_to_settle(self.domain.uuid, self.record.get('volumes') or [],
                                                               self.opts.cinder)
        warnings = warnings + cinder_warnings(self.domain.name, self.opts.cinder, pending)
        return engine.result_for(self.domain, True, before=self.before_view, after={}, action='would_terminate',
                                 would_destroy=self.domain.power_state not in ('shutoff',),
                                 disks_deleted=[o['real_path'] for o in self.owned], disks_kept=self.kept,
                                 volumes_detached=[v['id'] for v in vols],
                                 volumes_deleted=[v['id'] for v in vols if v.get('delete_on_termination')],
                                 volumes_kept=[v['id'] for v in vols if not v.get('delete_on_termination')],
                                 volumes_pending=[dict((k, v[k]) for k in ('id', 'delete_on_termination', 'error')
                                                       if k in v) for v in pending],
                                 undefine_flags=self.flags, warnings=warnings)

    def apply(self, ctx):
        domain, opts = self.domain, self.opts
        tomb = tombstones.for_terminate(ctx, domain, self.record)
        tomb['status'] = 'deleting'
        # Who asked, kept with the tombstone: the journal that also says it is rotated away long before.
        tomb['actor'] = tomb.get('actor') or journal_actor()
        ctx.state.write_tombstone(tomb)
        failpoint('terminate.after_tombstone')
        self.stopped = power_off(ctx, domain, opts)
        self.irreversible = self.irreversible or self.stopped.get('was') not in states.OFF_POWER_STATES
        failpoint('terminate.after_destroy')
        domain = ctx.fresh(domain)
        for item in self.owned:
            self.irreversible = True  # even a delete that fails half-way may have removed something
            storage.delete_disk(ctx.conn, item, opts.instance_dirs)
            self.deleted.append(item['real_path'])
        # A disk kept only because the fleet index was incomplete is work left in the tombstone (disks_pending): the
        # next sweep with a complete index deletes it if it is then safe. Never forgotten, never deleted blindly.
        idents = dict((k['real_path'], storage.identity(k['real_path'])) for k in self.kept
                      if k.get('kept_for_now') and k.get('real_path'))
        tomb.update(disks_deleted=sorted(set(tomb.get('disks_deleted', []) + self.deleted)), disks_kept=self.kept,
                    disks_pending=tombstones.pending_disks(self.kept, self.domain.disks(), idents))
        ctx.state.write_tombstone(tomb)
        failpoint('terminate.after_disks')
        self.flags = hv.undefine(domain, keep_nvram=self.keep_nvram)
        tomb.update(status='undefined', terminated_at=_record.format_time(_record.utcnow()), undefine_flags=self.flags)
        tomb = _record.add_history(tomb, self.action, ctx.request_id, tomb.get('started_at'), 'success')
        ctx.state.write_tombstone(tomb)
        failpoint('terminate.after_undefine')
        self.tomb = tomb
        return None  # undefined: no record is left to write

    def roll_back(self, ctx, exc):
        # Not rolled back: the record keeps task_state=deleting (and the tombstone what was done), so running the
        # module again finishes the job (rule 7 of docs/rules.md).
        try:
            ctx.event('instance.delete.end', self.domain, result='error', action=self.action, message=str(exc))
        except Exception:
            pass  # a full or read-only state_dir must not hide the error itself
        # changed: true once the guest was powered off or a disk deleted: the operator must not read "nothing
        # happened" from a failed result.
        return engine.OperationError('domain %s: terminate failed: %s; it is left in task_state deleting, run '
                                     'vm_terminate again to finish it' % (self.domain.name, exc),
                                     changed=self.irreversible, disks_deleted=self.deleted)

    def released(self, ctx, result):
        # The domain is gone; Cinder may take a while and must not hold the domain's lock.
        domain, tomb = self.domain, self.tomb
        began = time.monotonic()
        cinder_result = tombstones.settle_volumes(ctx, tomb, self.opts.cinder, self.foreign_hosts, self.volumes_held)
        cinder_error = cinder_result.pop('cinder_error', None)
        cinder_result['cinder_seconds'] = round(time.monotonic() - began, 3)
        warnings = []
        if tomb.get('volumes_held') and tomb['volumes_pending']:
            warnings.append('domain %s is terminated; its volume(s) %s wait, neither detached nor deleted: %s; the '
                            'first vm_reclaim sweep whose fleet index finds no copy of it left settles them'
                            % (domain.name, ', '.join(v['id'] for v in tomb['volumes_pending']), tomb['volumes_held']))
        elif tomb['volumes_pending']:
            warnings.append('domain %s is terminated but Cinder work is pending for volume(s) %s; the next vm_reclaim '
                            'finishes it' % (domain.name, ', '.join(v['id'] for v in tomb['volumes_pending'])))
        elif cinder_error:
            warnings.append('domain %s is terminated but Cinder could not be asked which volumes are attached to it '
                            '(%s); its tombstone waits for the next vm_reclaim with Cinder'
                            % (domain.name, cinder_error))
        warnings.extend(cinder_warnings(domain.name, self.opts.cinder))
        if tomb.get('disks_pending'):
            cinder_result['disks_pending'] = tomb['disks_pending']
            warnings.append('domain %s is terminated but disk(s) %s were kept because the fleet index is incomplete '
                            '(%s did not report); they stay pending in its tombstone and the next vm_reclaim sweep '
                            'with a complete fleet index deletes what is then safe'
                            % (domain.name, ', '.join(d.get('path') or '?' for d in tomb['disks_pending']),
                               ', '.join(self.opts_fleet_missing) or 'a host'))
        ctx.event('instance.delete.end', domain, result='pending' if tomb['volumes_pending'] else 'success',
                  action=self.action, disks_deleted=self.deleted, disks_kept=[k['path'] for k in self.kept],
                  volumes_pending=[v['id'] for v in tomb['volumes_pending']])
        return engine.result_for(domain, True, before=self.before_view, after={}, action='terminated',
                                 clean_shutdown=self.stopped.get('clean_shutdown'), disks_deleted=self.deleted,
                                 disks_kept=self.kept, undefine_flags=self.flags,
                                 seconds=round(time.monotonic() - self.started, 2), warnings=warnings, **cinder_result)


def check_cinder(ctx, domain, record, cinder_opts):
    """Before anything is destroyed: a domain with volumes to settle needs a Cinder configuration that works.

    The volumes to settle are the record's and those an earlier terminate of the same UUID left pending. A fleet
    declared without Cinder refuses them; a configuration that is wrong (an unknown cloud, missing or refused auth,
    an unreachable Keystone) refuses the domain, nothing changed. Cinder itself not answering is transient: the
    terminate goes on and its volume work stays pending (rule 5).
    """
    volumes = list(record.get('volumes') or [])
    try:
        earlier = ctx.state.read_tombstone(domain.uuid) if ctx.state is not None else None
    except Exception:  # an unreadable tombstone is the terminate's own business (for_terminate reports it)
        earlier = None
    if earlier and not tombstones.finished(earlier):
        known = set(v.get('id') for v in volumes)
        volumes += [v for v in earlier.get('volumes_pending') or [] if v.get('id') not in known]
    tombstones.refuse_volumes_without_cinder(domain.name, volumes, cinder_opts)
    if not volumes or not cinder_opts.configured:
        return
    try:
        cinder_opts.check()
    except cinder.CinderConfigError as exc:
        raise engine.OperationError(
            'domain %s has Cinder volume(s) %s to settle and %s; nothing was changed (not shut down, no disk '
            'deleted, no volume touched): fix the Cinder options and run again'
            % (domain.name, ', '.join(v.get('id') or '?' for v in volumes), exc))


def cinder_warnings(name, cinder_opts, pending=None):
    """What a run without Cinder options and without the fleet's declaration says: what to declare."""
    if cinder_opts.configured or cinder_opts.absent:
        return []
    return ['domain %s: no Cinder options were given (cloud or auth), so Cinder %s asked about its volumes and its '
            'tombstone waits for a run with Cinder; %s' % (name, 'would not be' if pending is not None else 'was not',
                                                           tombstones.NO_CINDER_ADVICE)]


def power_off(ctx, domain, opts):
    """Destroy (or, with a shutdown_timeout, shut down cleanly first), between shutdown events as Nova's delete writes them."""
    state = domain.power_state  # read under the lock just before
    if state in states.OFF_POWER_STATES:  # nothing to power off, so no shutdown events
        return {'clean_shutdown': bool(opts.shutdown_timeout), 'attempts': 0, 'seconds': 0.0, 'was': state}
    ctx.event('instance.shutdown.start', domain, power_state=state, shutdown_timeout=opts.shutdown_timeout or 0)
    if opts.shutdown_timeout:
        stopped = _power.clean_shutdown(domain.dom, opts.shutdown_timeout, opts.shutdown_retry_interval, state=state)
    else:
        began = time.monotonic()
        _power.destroy(domain.dom)
        stopped = {'clean_shutdown': False, 'attempts': 0, 'seconds': round(time.monotonic() - began, 2), 'was': state}
    ctx.event('instance.shutdown.end', domain, result='success', clean_shutdown=stopped['clean_shutdown'],
              attempts=stopped.get('attempts'), seconds=stopped.get('seconds'))
    return stopped


def terminate(ctx, domain, opts, index, action='terminate', precondition=None, operation='terminate'):
    """Terminate one domain; returns its result dict. ``precondition(domain)`` may raise Skip under the lock."""
    foreign_hosts = index.fleet.foreign_hosts()

    def plan_for(current):
        stale = index.fleet.stale(_views.describe(current))
        if stale is not None:
            return StaleCopy.refused_without_force(ctx, current, opts, stale, action)
        plan = TerminatePlan(ctx, current, opts, index, action, operation, precondition)
        plan.foreign_hosts = foreign_hosts
        plan.volumes_held = index.fleet.volumes_held(current.uuid)
        plan.opts_fleet_missing = index.fleet.missing
        return plan

    return engine.carry_out(ctx, domain, plan_for, when_gone=engine.already_gone)


def answer_for_terminated(ctx, tomb, opts, fleet_view):
    """A terminated domain named again: nothing when it is finished, else its pending Cinder work is finished."""
    return tombstones.answer_when_named(ctx, tomb, opts.cinder, fleet_view.foreign_hosts(),
                                        fleet_view.volumes_held(tomb.get('uuid'), gone=True))


class _GoneDomain(object):
    """A terminated domain's pending disks, shaped as the domain was for storage.classify_disks: the same ownership
    and fleet checks a terminate makes, on the domain that is gone (every domain of the host is then another)."""

    def __init__(self, tomb):
        self.name, self.uuid = tomb.get('name'), tomb.get('uuid')
        self._disks = [{'target': d.get('target'), 'device': 'disk', 'type': d.get('type') or 'file', 'format': None,
                        'readonly': False, 'shareable': False, 'path': d.get('path'), 'pool': d.get('pool'),
                        'volume': d.get('volume')} for d in tomb.get('disks_pending') or []]

    def disks(self):
        return [dict(d) for d in self._disks]


def settle_pending_disks(ctx, tomb, opts, index):
    """Delete what is now safe of the disks a terminate kept only because the fleet index was incomplete.

    Only with a fleet view that is given and complete: a run without one cannot know another host's use. Under the
    domain's lock, from the tombstone on disk: each pending disk is checked again exactly as a terminate checks a
    disk (ownership, this host's domains and backing chains, the fleet's users); what is owned is deleted, what is
    still unsafe only for want of a complete index stays pending, and what a domain now references, or what is no
    longer the file that was kept, leaves the pending work and is reported as kept (never deleted). Returns a
    summary: disks_deleted, disks_kept, disks_pending, disks_gone, changed.
    """
    summary = {'disks_deleted': [], 'disks_kept': [], 'disks_pending': list(tomb.get('disks_pending') or []),
               'disks_gone': [], 'changed': False}
    view = index.fleet
    if not summary['disks_pending']:
        return summary
    if not view.given or not view.complete:
        summary['disks_pending_reason'] = (
            'the fleet index is incomplete (%s)' % view.gaps_text()
            if view.given else 'no fleet view was given: only a sweep with a complete fleet index deletes them')
        return summary
    with ctx.state.lock(tomb['uuid'], timeout=ctx.lock_timeout, name=tomb.get('name')):
        on_disk = ctx.state.read_tombstone(tomb['uuid']) or tomb
        pending = list(on_disk.get('disks_pending') or [])
        still, kept, deleted, gone = [], [], [], []
        checkable = []
        for disk in pending:
            real = disk.get('real_path') or disk.get('path')
            if not real or not os.path.lexists(real):
                gone.append(disk)
                continue
            if disk.get('st_dev') is not None and storage.identity(real) != (disk['st_dev'], disk.get('st_ino')):
                kept.append(dict(disk, reason='%s is no longer the file that was kept (it was replaced); not deleted'
                                 % real))
                continue
            checkable.append(disk)
        if checkable:
            gone_domain = _GoneDomain(dict(on_disk, disks_pending=checkable))
            owned, kept_now = storage.classify_disks(ctx.conn, gone_domain, opts.instance_dirs, index)
            by_target = dict((d.get('target'), d) for d in checkable)
            for item in kept_now:
                source = by_target.get(item.get('target'), {})
                if item.get('kept_for_now'):
                    still.append(dict(source, reason=item.get('reason')))
                else:
                    kept.append(dict(source, reason=item.get('reason')))
            for item in owned:
                if ctx.check_mode:
                    deleted.append(item['real_path'])
                    continue
                try:
                    storage.delete_disk(ctx.conn, item, opts.instance_dirs)
                except Exception as exc:  # the disk stays pending: a later sweep tries again
                    still.append(dict(by_target.get(item.get('target'), {}), reason=str(exc)))
                    continue
                deleted.append(item['real_path'])
        summary.update(disks_deleted=deleted, disks_kept=kept, disks_pending=still, disks_gone=[
            d.get('real_path') or d.get('path') for d in gone])
        summary['changed'] = bool(deleted or kept or gone)
        if ctx.check_mode or not summary['changed']:
            return summary
        on_disk.update(disks_pending=still, disks_deleted=sorted(set((on_disk.get('disks_deleted') or []) + deleted)),
                       disks_kept=list(on_disk.get('disks_kept') or []) + kept)
        ctx.state.write_tombstone(on_disk)
        tomb.update((k, on_disk.get(k)) for k in ('disks_pending', 'disks_deleted', 'disks_kept'))
    return summary
