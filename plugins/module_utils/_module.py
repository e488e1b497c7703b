# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The base every module of the collection is built on: shared options, selection, fan-out, results."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import traceback
import uuid as uuidlib
from concurrent.futures import ThreadPoolExecutor

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _inventory as inv
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import DurationError, parse_duration
from ansible_collections.deferred.libvirt.plugins.module_utils._journal import StateDir, StateDirError

CONNECTION_ARGS = dict(
    uri=dict(type='str', default='qemu:///system'),
    state_dir=dict(type='path', default='/var/lib/deferred-libvirt'),
)
SELECTION_ARGS = dict(
    name=dict(type='list', elements='str', aliases=['names']),
    query=dict(type='str'),
    project=dict(type='str'),
)
OPENSTACK_ARGS = dict(
    cloud=dict(type='raw'),
    auth=dict(type='dict', no_log=True),
    auth_type=dict(type='str'),
    region_name=dict(type='str'),
    interface=dict(type='str', default='public', choices=['admin', 'internal', 'public'], aliases=['endpoint_type']),
    validate_certs=dict(type='bool', aliases=['verify']),
    ca_cert=dict(type='str', aliases=['cacert']),
    api_timeout=dict(type='int'),
)
LIFECYCLE_ARGS = dict(
    force=dict(type='bool', default=False),
    lock_timeout=dict(type='raw', default=120),
    parallel=dict(type='int', default=16),
)
TERMINATE_ARGS = dict(
    instance_dirs=dict(type='list', elements='path', default=['/var/lib/libvirt/images']),
    volume_wait_timeout=dict(type='raw', default=120),
)
# Waiting dominates (shutdowns, boots), not CPU: this many domains at once by default.
DEFAULT_PARALLEL = 16


class LifecycleModule(object):
    """An AnsibleModule with the collection's shared options and per-domain result handling."""

    def __init__(self, argument_spec, selection=True, require_selection=False, openstack=False,
                 lifecycle=False, terminate=False, mutually_exclusive=None, required_if=None):
        spec = dict(CONNECTION_ARGS)
        if selection:
            spec.update(SELECTION_ARGS)
        if lifecycle:
            spec.update(LIFECYCLE_ARGS)
        if terminate:
            spec.update(TERMINATE_ARGS)
            openstack = True
        if openstack:
            spec.update(OPENSTACK_ARGS)
        spec.update(argument_spec)
        exclusive = list(mutually_exclusive or [])
        if selection:
            exclusive.append(['name', 'query'])
        self.module = AnsibleModule(argument_spec=spec, supports_check_mode=True,
                                    mutually_exclusive=exclusive, required_if=required_if or [])
        self.params = self.module.params
        if openstack and isinstance(self.params.get('cloud'), dict):
            # A cloud given as a dict carries its token or password in a raw option: mask them in all output.
            from ansible_collections.deferred.libvirt.plugins.module_utils._cinder import secrets
            self.module.no_log_values.update(secrets(self.params['cloud']))
        self.check_mode = self.module.check_mode
        self.request_id = 'req-%s' % uuidlib.uuid4()
        self.require_selection = require_selection
        if not hv.HAS_LIBVIRT:
            self.module.fail_json(msg=missing_required_lib('libvirt-python'))
        if selection and self.params.get('query') is not None and not inv.HAS_JMESPATH:
            self.module.fail_json(msg=missing_required_lib('jmespath'))
        if require_selection and self.params.get('name') is None and self.params.get('query') is None:
            self.module.fail_json(msg='name or query is required: say which domains to act on')
        self._conn = None

    # -- inputs ------------------------------------------------------------

    def duration(self, option, allow_zero=True, value=None):
        """The option's value in seconds; fails the task, naming the option, when it cannot be read."""
        raw = self.params.get(option) if value is None else value
        try:
            return parse_duration(raw, option, allow_zero=allow_zero)
        except DurationError as exc:
            self.module.fail_json(msg=str(exc))

    def terminate_options(self, shutdown_timeout=None, shutdown_retry_interval=10):
        """TerminateOptions from the task's options (instance_dirs, Cinder, force)."""
        from ansible_collections.deferred.libvirt.plugins.module_utils._terminate import TerminateOptions
        if self.params.get('parallel') is not None and self.params['parallel'] < 1:
            self.fail('parallel must be 1 or more, got %d' % self.params['parallel'])
        for path in self.params['instance_dirs']:
            if not path.startswith('/'):
                self.fail('instance_dirs: %r is not an absolute path; nothing was changed' % path)
        return TerminateOptions(
            instance_dirs=self.params['instance_dirs'], shutdown_timeout=shutdown_timeout,
            shutdown_retry_interval=shutdown_retry_interval, force=self.params.get('force', False),
            cinder_params=dict((k, self.params.get(k)) for k in OPENSTACK_ARGS),
            volume_wait_timeout=self.duration('volume_wait_timeout', allow_zero=False),
            no_log_values=self.module.no_log_values)

    def fail(self, msg, **kwargs):
        kwargs.setdefault('request_id', self.request_id)
        self.module.fail_json(msg=msg, **kwargs)

    # -- connections -------------------------------------------------------

    def connect(self):
        """The shared libvirt connection; fails the task when the hypervisor does not answer."""
        if self._conn is None:
            self._conn = self.new_connection()
        return self._conn

    def new_connection(self):
        try:
            return hv.open_connection(self.params['uri'])
        except hv.HypervisorError as exc:
            self.fail(str(exc))

    def state_dir(self, create=None):
        """The checked state_dir; created (0700) unless in check mode."""
        if create is None:
            create = not self.check_mode
        try:
            return StateDir(self.params['state_dir'], create=create)
        except StateDirError as exc:
            self.fail(str(exc) + '; nothing was changed')

    # -- selection ---------------------------------------------------------

    def snapshot(self):
        """Every domain of the hypervisor, with its vm_info view."""
        try:
            domains = hv.list_domains(self.connect())
        except hv.HypervisorError as exc:
            self.fail(str(exc))
        except Exception as exc:  # libvirtError while listing: the daemon went away
            self.fail('cannot list domains on %s: %s' % (self.params['uri'], exc))
        return [(d, inv.describe(d)) for d in domains]

    def select(self, pairs=None, names=None, query=None):
        """The (Domain, view) pairs the task's name/query/project select; fails the task on a bad selection."""
        if pairs is None:
            pairs = self.snapshot()
        views = [v for dummy, v in pairs]
        try:
            chosen = inv.select(views, names=self.params.get('name') if names is None else names,
                                query=self.params.get('query') if query is None else query,
                                project=self.params.get('project'))
        except inv.SelectionError as exc:
            self.fail('%s; nothing was changed' % exc)
        by_uuid = dict((v['uuid'], d) for d, v in pairs)
        return [(by_uuid[v['uuid']], v) for v in chosen]

    # -- fan-out and results ------------------------------------------------

    def run_each(self, items, work, parallel=None, label=lambda item: item[0].name):
        """Run ``work(item)`` for every item, concurrently; one result dict per item, in order.

        ``work`` returns a result dict with at least ``changed``; an exception
        becomes ``failed: true`` with its message, and never stops the others.
        """
        parallel = parallel or self.params.get('parallel') or DEFAULT_PARALLEL

        def guarded(item):
            try:
                result = work(item)
            except Exception as exc:  # one domain's failure must not stop the others
                result = {'changed': False, 'failed': True, 'msg': str(exc) or exc.__class__.__name__}
                if self.module._verbosity >= 3:
                    result['exception'] = traceback.format_exc()
            result.setdefault('name', label(item))
            result.setdefault('failed', False)
            result.setdefault('msg', '')
            return result

        if not items:
            return []
        if len(items) == 1 or parallel == 1:
            return [guarded(i) for i in items]
        with ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
            return list(pool.map(guarded, items))

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
        result['msg'] = '%s: %d domain(s), %d changed' % (action, len(instances), sum(1 for i in instances if i.get('changed')))
        self.module.exit_json(**result)


def diff_of(name, before, after):
    return {'before_header': name, 'after_header': name, 'before': before or {}, 'after': after or {}}
