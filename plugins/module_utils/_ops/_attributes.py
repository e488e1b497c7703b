# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_attributes: set what the lifecycle needs to know about a domain (owner, guards, durations, volumes).

``run`` is the whole of vm_attributes; each domain's change is an
``AttributesPlan`` that engine.carry_out reports (check mode, or nothing to
change) or writes under the domain's lock. It holds no task_state.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options_
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import unchanged
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, START

ARGUMENT_SPEC = options_.spec(options_.Selection, options_.Attributes)


class AttributeOptions(object):
    def __init__(self, selection, changes, force=False):
        self.selection = selection
        self.changes = changes
        self.force = force


def options(params, no_log_values=None):
    """The record fields to set, and the domains: here ``project`` sets the owner, it does not scope the selection."""
    own = options_.Attributes.read(params)
    if options_.CinderDeclaration.read(params).declared is False and own.changes.get('volumes'):
        # A fleet without Cinder would refuse to terminate such a domain: say so now, not at the terminate.
        raise options_.InputError('volumes: cinder is false (this fleet declares no Cinder), so no Cinder volume is '
                                  'recorded: a terminate would refuse the domain; a fleet with Cinder does not declare '
                                  'cinder: false')
    return AttributeOptions(options_.Selection.read(params, scoped=False), own.changes, force=own.force)


def run(ctx, opts):
    """vm_attributes: change the record of every selected domain, or of none when any of them is refused."""
    chosen = engine.select(engine.snapshot(ctx), opts.selection)
    check_batch(chosen, opts)
    return engine.outcome(engine.run_each(ctx, chosen, lambda item: change(ctx, item.domain, opts)), 'vm_attributes')


def check_batch(chosen, opts):
    """Decide every domain's change before the first write: one refusal refuses the batch, and nothing is changed.

    The same checks run again under each domain's lock (it may have changed meanwhile); this pass makes a batch
    all or nothing for everything that can be known up front.
    """
    refused = {}
    for item in chosen:
        try:
            AttributesPlan(item.domain, opts)
        except engine.OperationError as exc:
            refused[item.uuid] = str(exc)
    if not refused:
        return
    instances = []
    for item in chosen:
        msg = refused.get(item.uuid, 'not changed: another domain of the batch was refused')
        instances.append({'name': item.name, 'uuid': item.uuid, 'changed': False, 'failed': item.uuid in refused,
                          'msg': msg})
    reasons = '; '.join('%s: %s' % (i['name'], i['msg']) for i in instances if i['failed'])
    raise unchanged(engine.OperationError('vm_attributes refused for %d of %d domain(s): %s'
                                          % (len(refused), len(chosen), reasons), instances=instances, changed=False))


class AttributesPlan(engine.Plan):
    """The change to one domain's record, decided once: before, after, whether anything changes."""

    def __init__(self, domain, opts):
        # Its own refusals, not engine.guard's: this is the module that sets (and, with force, clears) the guards.
        if domain.metadata_error:
            raise engine.OperationError('%s; nothing was changed' % domain.metadata_error)
        if not domain.persistent:
            raise engine.OperationError('domain %s is transient; only a defined domain can keep a lifecycle record'
                                        % domain.name)
        self.domain = domain
        self.force = opts.force
        self.before = copy.deepcopy(domain.record or _record.empty())
        owner = self.before.get('project')
        wanted = opts.changes.get('project')
        if 'project' in opts.changes and owner and owner != wanted and not opts.force:
            raise engine.OperationError('domain %s belongs to project %s; moving it to %s needs force=true'
                                        % (domain.name, owner, wanted))
        for guard, cleared in (('locked', 'unlocking it'), ('protected', 'removing its protection')):
            # Setting a guard needs nothing; dropping one is an admin override, like moving a domain.
            if opts.changes.get(guard) is False and self.before.get(guard) and not opts.force:
                reason = ' (%s)' % self.before['lock_reason'] if guard == 'locked' and self.before.get('lock_reason') else ''
                raise engine.OperationError('domain %s is %s%s; %s needs force=true; nothing was changed'
                                            % (domain.name, guard, reason, cleared))
        self.after_record = copy.deepcopy(self.before)
        self.after_record.update(opts.changes)
        self.changed = self.after_record != self.before or domain.record is None
        self.decision = START if self.changed else NOOP
        self.fields = sorted(k for k in opts.changes if self.before.get(k) != self.after_record.get(k))
        self.before_view = _views.describe(domain)
        self.after_view = self._view_of(self.after_record)

    def _view_of(self, record):
        shown = copy.copy(self.domain)
        shown.record = record
        return _views.describe(shown)

    def report(self):
        return engine.result_for(self.domain, self.changed, before=self.before_view if self.changed else None,
                                 after=self.after_view if self.changed else None, record=self.after_view)

    def apply(self, ctx):
        """Write the record; the view after then shows the host and generation the write stamped.

        Rule 9: a copy whose record names another host (a stale copy by its record) keeps that host, so locking or
        relabelling the wrong copy never makes it the authoritative one (whose terminate deletes the other copy's
        disks and volumes); force=true claims it for this host."""
        keep = not self.force and fleet.FleetView(None, ctx.host).stale(self.before_view) is not None
        hv.write_record(self.domain, self.after_record, keep_host=keep)
        self.after_view = self._view_of(self.after_record)
        ctx.event('instance.update', self.domain, result='success', changed=self.fields)
        return None  # written as a whole: no task_state is held, so there is nothing to compare and set

    def finish(self, ctx):
        return self.report()


def change(ctx, domain, opts):
    return engine.carry_out(ctx, domain, lambda current: AttributesPlan(current, opts))
