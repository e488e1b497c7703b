# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The base every module of the collection is built on: it turns the task into a Context and runs an operation.

A module file is its documentation, the operation's argument spec and one
call::

    LifecycleModule(operation.ARGUMENT_SPEC, require_selection=True).run(operation)

where ``operation`` is a file of ``_ops`` with ``options(params,
no_log_values)`` (the task's option groups read once, DeferredError on bad
input) and ``run(ctx, options)``. This file knows no operation; it is the one
place that says "nothing was changed" of bad input (``_errors.unchanged``).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import uuid as uuidlib

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _selection
from ansible_collections.deferred.libvirt.plugins.module_utils._engine import Context
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError, InputError, StateDirError, unchanged
from ansible_collections.deferred.libvirt.plugins.module_utils._options import Connection, Lifecycle, Selection
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir


class LifecycleModule(object):
    """An AnsibleModule with the collection's shared checks, the Context it builds, and per-domain results."""

    def __init__(self, argument_spec, require_selection=False, needs_state_dir=True):
        exclusive = Selection.MUTUALLY_EXCLUSIVE if 'name' in argument_spec and 'query' in argument_spec else []
        self.module = AnsibleModule(argument_spec=argument_spec, supports_check_mode=True,
                                    mutually_exclusive=exclusive)
        self.params = self.module.params
        self.request_id = 'req-%s' % uuidlib.uuid4()
        self.needs_state_dir = needs_state_dir
        if not hv.HAS_LIBVIRT:
            self.module.fail_json(msg=missing_required_lib('libvirt-python'))
        if self.params.get('query') is not None and not _selection.HAS_JMESPATH:
            self.module.fail_json(msg=missing_required_lib('jmespath'))
        if require_selection and self.params.get('name') is None and self.params.get('query') is None:
            self.module.fail_json(msg='name or query is required: say which domains to act on')

    def fail(self, msg, **kwargs):
        kwargs.setdefault('request_id', self.request_id)
        self.module.fail_json(msg=msg, **kwargs)

    def context(self):
        """The run as plain data: libvirt connected, state_dir checked (created unless in check mode)."""
        params = self.params
        lifecycle = Lifecycle.read(params)
        where = Connection.read(params)
        conn = hv.open_connection(where.uri)  # first: an unreachable hypervisor leaves no state_dir behind
        state = None
        if self.needs_state_dir:
            try:
                # The default host lock directory; lock files name the connection, so a sweep prunes only its own.
                state = StateDir(where.state_dir, create=not self.module.check_mode, connection=where.uri)
            except StateDirError as exc:
                raise unchanged(exc)
        # project: the run's scope for the guards (vm_attributes' own project option sets an owner, and guards nothing).
        return Context(conn, uri=where.uri, state=state, request_id=self.request_id, check_mode=self.module.check_mode,
                       project=params.get('project'), lock_timeout=lifecycle.lock_timeout, params=params,
                       parallel=lifecycle.parallel, verbosity=self.module._verbosity,
                       no_log_values=self.module.no_log_values, state_dir=where.state_dir)

    def run(self, operation):
        """Read the options, build the Context, run the operation and exit with its result."""
        try:
            try:
                opts = operation.options(self.params, self.module.no_log_values)
                ctx = self.context()
            except InputError as exc:
                raise unchanged(exc)
            result = operation.run(ctx, opts)
        except DeferredError as exc:
            self.fail(str(exc), **exc.result)
        for warning in ctx.warnings:
            self.module.warn(warning)
        if 'action' not in result:
            self.module.exit_json(**result)  # vm_info: a report, no per-domain actions
        self.finish(result['instances'], result['action'], **result['extra'])

    def finish(self, instances, action, **extra):
        """Exit with one result per domain; fail the task (after all were tried) if any domain failed."""
        changed = any(i.get('changed') for i in instances)
        failed = [i for i in instances if i.get('failed')]
        diffs = [i.pop('diff') for i in instances if 'diff' in i]
        for item in instances:
            for warning in item.get('warnings') or []:
                self.module.warn(warning)
        result = dict(changed=changed, instances=instances, request_id=self.request_id, **extra)
        if self.module._diff and diffs:
            result['diff'] = diffs
        if failed:
            msg = '%s failed for %d of %d domain(s): %s' % (
                action, len(failed), len(instances),
                '; '.join('%s: %s' % (i.get('name'), i.get('msg')) for i in failed[:10]))
            self.module.fail_json(msg=msg, **result)
        changes = sum(1 for i in instances if i.get('changed'))
        if self.module.check_mode:
            result['msg'] = '%s: %d domain(s), %d would change (check mode: nothing was changed)' % (
                action, len(instances), changes)
        else:
            result['msg'] = '%s: %d domain(s), %d changed' % (action, len(instances), changes)
        self.module.exit_json(**result)
