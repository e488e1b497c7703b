# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_attributes: set what the lifecycle needs to know about a domain (owner, guards, durations, volumes).

``run`` is the whole of vm_attributes; each domain's change is decided once
(``Plan``) and then reported (check mode) or written under the domain's lock.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import parse_duration
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

SIMPLE = ('project', 'user', 'locked', 'lock_reason', 'protected')
DURATIONS = ('reclaim_interval', 'shutdown_timeout')
ARGS = dict(
    project=dict(type='str'),
    user=dict(type='str'),
    locked=dict(type='bool'),
    lock_reason=dict(type='str'),
    protected=dict(type='bool'),
    reclaim_interval=dict(type='raw'),
    shutdown_timeout=dict(type='raw'),
    volumes=dict(type='list', elements='dict', options=dict(
        id=dict(type='str', required=True),
        target=dict(type='str'),
        delete_on_termination=dict(type='bool', default=False),
    )),
    force=dict(type='bool', default=False),
)
ARGUMENT_SPEC = lc.spec(lc.SELECTION_ARGS, ARGS)


class AttributeOptions(object):
    def __init__(self, changes, force=False):
        self.changes = changes
        self.force = force


def options(params, no_log_values=None):
    """The record fields to set, from the options given; durations parsed (None clears)."""
    changes = {}
    for option in SIMPLE:
        if params.get(option) is not None:
            changes[option] = params[option]
    if params.get('locked') is False and params.get('lock_reason') is None:
        # As Nova's unlock: the reason goes with the lock.
        changes['lock_reason'] = None
    for option in DURATIONS:
        value = params.get(option)
        if value is None:
            continue
        changes[option] = None if str(value).strip().lower() == 'default' else parse_duration(value, option)
    if params.get('volumes') is not None:
        seen = set()
        volumes = []
        for vol in params['volumes']:
            if not vol.get('id') or not _record.UUIDISH.match(vol['id']):
                raise DeferredError('volumes: %r is not a Cinder volume id; nothing was changed' % vol.get('id'))
            if vol['id'] in seen:
                raise DeferredError('volumes: %s is listed twice; nothing was changed' % vol['id'])
            seen.add(vol['id'])
            volumes.append({'id': vol['id'], 'target': vol.get('target'),
                            'delete_on_termination': bool(vol.get('delete_on_termination'))})
        changes['volumes'] = volumes
    return AttributeOptions(changes, force=bool(params.get('force')))


def run(ctx, opts):
    """vm_attributes: change the record of every selected domain. Here ``project`` sets the owner, not the selection."""
    pairs = lc.snapshot(ctx)
    chosen = lc.select(ctx, pairs, names=ctx.params.get('name'), query=ctx.params.get('query'))
    return lc.outcome(lc.run_each(ctx, chosen, lambda item: change(ctx, item[0], opts)), 'vm_attributes')


class Plan(object):
    """The change to one domain's record, decided once: before, after, whether anything changes."""

    def __init__(self, domain, opts):
        if domain.metadata_error:
            raise lc.OperationError('%s; nothing was changed' % domain.metadata_error)
        if not domain.persistent:
            raise lc.OperationError('domain %s is transient; only a defined domain can keep a lifecycle record'
                                    % domain.name)
        self.domain = domain
        self.before = copy.deepcopy(domain.record or _record.empty())
        owner = self.before.get('project')
        wanted = opts.changes.get('project')
        if 'project' in opts.changes and owner and owner != wanted and not opts.force:
            raise lc.OperationError('domain %s belongs to project %s; moving it to %s needs force=true'
                                    % (domain.name, owner, wanted))
        for guard, cleared in (('locked', 'unlocking it'), ('protected', 'removing its protection')):
            # Setting a guard needs nothing; dropping one is an admin override, like moving a domain.
            if opts.changes.get(guard) is False and self.before.get(guard) and not opts.force:
                reason = ' (%s)' % self.before['lock_reason'] if guard == 'locked' and self.before.get('lock_reason') else ''
                raise lc.OperationError('domain %s is %s%s; %s needs force=true; nothing was changed'
                                        % (domain.name, guard, reason, cleared))
        self.after = copy.deepcopy(self.before)
        self.after.update(opts.changes)
        self.changed = self.after != self.before or domain.record is None
        self.fields = sorted(k for k in opts.changes if self.before.get(k) != self.after.get(k))
        self.before_view = _views.describe(domain)
        self.after_view = self._view_of(self.after)

    def _view_of(self, record):
        shown = copy.copy(self.domain)
        shown.record = record
        return _views.describe(shown)

    def write(self):
        """Write the record; the view after then shows the host and generation the write stamped."""
        hv.write_record(self.domain, self.after)
        self.after_view = self._view_of(self.after)

    def result(self):
        return lc.result_for(self.domain, self.changed, before=self.before_view if self.changed else None,
                             after=self.after_view if self.changed else None, record=self.after_view)


def change(ctx, domain, opts):
    if ctx.check_mode:
        return Plan(ctx.fresh(domain), opts).result()
    with ctx.lock(domain):
        plan = Plan(ctx.fresh(domain), opts)
        if plan.changed:
            plan.write()
            ctx.event('instance.update', plan.domain, result='success', changed=plan.fields)
        return plan.result()
