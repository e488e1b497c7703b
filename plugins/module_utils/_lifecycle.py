# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every lifecycle operation shares: guards, the locked compare-and-set, events, history, fail points."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import time
import traceback
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _selection
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
# Imported for the operations, which call lc.failpoint: unused here.
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint  # noqa: F401  # pylint: disable=unused-import
from ansible_collections.deferred.libvirt.plugins.module_utils._journal import LOCK_TIMEOUT, StateDir, StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._states import decide, effective_vm_state, InvalidState

# How long a roll-back waits for a restarted libvirtd to answer again (a restart takes a few seconds).
RECONNECT_WAIT = 30
# Waiting dominates (shutdowns, boots), not CPU: this many domains at once by default (the parallel option's).
PARALLEL = 16


# Option groups every lifecycle module shares; each operation file adds its own (and storage's, Cinder's).
CONNECTION_ARGS = dict(
    uri=dict(type='str', default='qemu:///system'),
    state_dir=dict(type='path', default='/var/lib/deferred-libvirt'),
)
SELECTION_ARGS = dict(
    name=dict(type='list', elements='str', aliases=['names']),
    query=dict(type='str'),
    project=dict(type='str'),
)
LIFECYCLE_ARGS = dict(
    force=dict(type='bool', default=False),
    lock_timeout=dict(type='raw', default=LOCK_TIMEOUT),
    parallel=dict(type='int', default=PARALLEL),
)


def param(params, name, default):
    """The option's value, or its default when not given (so operations run from plain dicts too)."""
    value = params.get(name)
    return default if value is None else value


def spec(*groups):
    """One argument spec from option groups; later groups win."""
    merged = dict(CONNECTION_ARGS)
    for group in groups:
        merged.update(group)
    return merged


class OperationError(DeferredError):
    """An operation refused or failed for one domain; the message names the domain and the reason."""


class Skip(DeferredError):
    """The domain no longer qualifies (for example it was restored meanwhile); nothing was changed."""


def guard(domain, operation, project=None, force=False, check_protected=True):
    """Refuse ``operation`` on ``domain`` for any reason the operator must fix first."""
    if domain.metadata_error:
        raise OperationError('%s; nothing was changed (fix or remove it with virsh metadata %s --uri %s --remove)'
                             % (domain.metadata_error, domain.name, _record.NAMESPACE))
    if not domain.persistent:
        raise OperationError('domain %s is transient (not defined); %s needs a defined domain to keep its record'
                             % (domain.name, operation))
    record = domain.record or _record.empty()
    if project is not None and record.get('project') != project:
        raise OperationError('domain %s belongs to project %s, not %s' % (domain.name, record.get('project') or 'none', project))
    if check_protected and record.get('protected'):
        raise OperationError('domain %s is protected; %s is refused (clear it with vm_attributes protected=false)'
                             % (domain.name, operation))
    if record.get('locked') and not force:
        reason = record.get('lock_reason')
        raise OperationError('domain %s is locked%s; %s needs force=true' % (
            domain.name, ' (%s)' % reason if reason else '', operation))
    return record


def decision(domain, operation):
    """START, RESUME or NOOP for ``operation`` on ``domain``; OperationError on an invalid state."""
    record = domain.record or _record.empty()
    vm_state = effective_vm_state(record.get('vm_state'), domain.power_state)
    try:
        return decide(operation, vm_state, record.get('task_state'))
    except InvalidState as exc:
        raise OperationError('domain %s: %s' % (domain.name, exc))


class Context(object):
    """One module run as plain data: what every operation needs, built without Ansible.

    ``conn`` is the libvirt connection, ``state`` the checked StateDir (None
    when the operation needs none), ``params`` the task's option values.
    ``warnings`` collects what the task result should warn about.
    """

    def __init__(self, conn, uri='qemu:///system', state=None, request_id='req-test', check_mode=False, project=None,
                 lock_timeout=LOCK_TIMEOUT, params=None, parallel=PARALLEL, verbosity=0, no_log_values=None):
        self.conn = conn
        self.uri = uri
        self.state = state
        self.request_id = request_id
        self.check_mode = check_mode
        self.project = project
        self.lock_timeout = lock_timeout
        self.params = dict(params or {})
        self.parallel = parallel
        self.verbosity = verbosity
        self.no_log_values = no_log_values if no_log_values is not None else set()
        self.warnings = []
        self.state_dir = state.path if state is not None else self.params.get('state_dir')

    @property
    def host(self):
        """This hypervisor's identity ({uuid, hostname}), read once per run."""
        if getattr(self, '_host', None) is None:
            self._host = hv.host_identity(self.conn)
        return self._host

    def open_state(self, create=False):
        """The run's StateDir, opened now for an operation that needs it only sometimes (vm_info include_deleted)."""
        if self.state is None:
            try:
                self.state = StateDir(self.state_dir, create=create)
            except StateDirError as exc:
                raise StateDirError('%s; nothing was changed' % exc)
        return self.state

    def event(self, event_type, domain, result=None, **payload):
        if self.state is None or self.check_mode:
            return None
        record = domain.record or {}
        return self.state.event(event_type, self.request_id, domain=domain.name, uuid=domain.uuid,
                                project=record.get('project'), result=result, **payload)

    def lock(self, domain):
        return self.state.lock(domain.uuid, timeout=self.lock_timeout, name=domain.name)

    def fresh(self, domain):
        """Re-read the domain (under its lock) so decisions use the state of now."""
        current = hv.refresh(self.conn, domain.dom)
        if current is None:
            raise OperationError('domain %s disappeared while the operation waited for it' % domain.name)
        return current

    def fresh_or_reconnect(self, domain, wait=RECONNECT_WAIT):
        """fresh(), through a new connection when libvirtd went away under the old one (for roll-backs).

        Waits up to ``wait`` seconds for a restarted libvirtd; raises HypervisorError if it does not answer.
        """
        try:
            return self.fresh(domain)
        except hv.HypervisorError:
            if _alive(self.conn):
                raise
        deadline = time.monotonic() + wait
        while True:
            try:
                conn = hv.open_connection(self.uri)
                break
            except hv.HypervisorError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(1)
        self.conn = conn
        dom = hv.lookup(conn, domain.uuid)
        current = hv.refresh(conn, dom) if dom is not None else None
        if current is None:
            raise OperationError('domain %s disappeared while the operation waited for it' % domain.name)
        return current

    def save(self, domain, record):
        hv.write_record(domain, record)

    def compare_and_set(self, domain, expected_task_states, updates, current=None):
        """Set ``updates`` only if task_state is still one of ``expected_task_states``; return the new record.

        Called under the domain's lock; the re-read makes it safe against a
        run that changed the record between our selection and the lock.
        ``current`` is a snapshot the caller read under this same lock with
        nothing done since (so a second read would say the same); without it
        the domain is read again here.
        """
        current = self.fresh(domain) if current is None else current
        record = copy.deepcopy(current.record or _record.empty())
        if record.get('task_state') not in expected_task_states:
            raise OperationError('domain %s: task_state is %s, expected %s; another operation got there first'
                                 % (domain.name, record.get('task_state'), ' or '.join(str(s) for s in expected_task_states)))
        record.update(updates)
        self.save(current, record)
        domain.record = record
        return record


def _alive(conn):
    try:
        return bool(conn.isAlive())
    except Exception:  # a closed connection may raise instead of answering 0
        return False


def result_for(domain, changed, before=None, after=None, **extra):
    """A per-domain result: the record after, and a diff when asked."""
    result = {'name': domain.name, 'uuid': domain.uuid, 'changed': changed}
    result.update(extra)
    if before is not None or after is not None:
        result['diff'] = {'before_header': domain.name, 'after_header': domain.name,
                          'before': before or {}, 'after': after or {}}
    return result


# -- selection and fan-out -------------------------------------------------


def snapshot(ctx):
    """Every domain of the hypervisor, with its vm_info view: [(Domain, view)]."""
    try:
        domains = hv.list_domains(ctx.conn)
    except hv.HypervisorError:
        raise
    except Exception as exc:  # libvirtError while listing: the daemon went away
        raise hv.HypervisorError('cannot list domains on %s: %s' % (ctx.uri, exc))
    return [(d, _views.describe(d)) for d in domains]


def select(ctx, pairs, names=None, query=None, project=None):
    """The (Domain, view) pairs the selection names; SelectionError (nothing changed) on a bad selection."""
    views = [v for dummy, v in pairs]
    try:
        chosen = _selection.select(views, names=names, query=query, project=project)
    except _selection.SelectionError as exc:
        raise _selection.SelectionError('%s; nothing was changed' % exc)
    by_uuid = dict((v['uuid'], d) for d, v in pairs)
    return [(by_uuid[v['uuid']], v) for v in chosen]


def select_from_task(ctx, pairs):
    """select() with the task's own name, query and project options."""
    return select(ctx, pairs, names=ctx.params.get('name'), query=ctx.params.get('query'), project=ctx.project)


def _expected(exc):
    """Whether an exception is one the collection (or the platform) raises on purpose, not a bug."""
    if isinstance(exc, (DeferredError, EnvironmentError)):
        return True
    return hv.libvirt is not None and isinstance(exc, hv.libvirt.libvirtError)


def run_each(ctx, items, work, label=lambda item: item[0].name):
    """Run ``work(item)`` for every item, concurrently; one result dict per item, in order.

    ``work`` returns a result dict with at least ``changed``. A DeferredError
    (or a libvirt or OS error) becomes ``failed: true`` with its message; any
    other exception is a bug, and its result carries the traceback. Neither
    stops the other items.
    """
    def guarded(item):
        try:
            result = work(item)
        except Exception as exc:  # one domain's failure must not stop the others
            result = {'changed': False, 'failed': True, 'msg': str(exc) or exc.__class__.__name__}
            if isinstance(exc, DeferredError):
                result.update(exc.result)  # for example changed: true when something irreversible happened first
            if not _expected(exc):
                result['msg'] = 'unexpected %s: %s (a bug in deferred.libvirt; see exception)' % (
                    exc.__class__.__name__, exc)
                result['exception'] = traceback.format_exc()
            elif ctx.verbosity >= 3:
                result['exception'] = traceback.format_exc()
        result.setdefault('name', label(item))
        result.setdefault('failed', False)
        result.setdefault('msg', '')
        return result

    if not items:
        return []
    parallel = ctx.parallel or PARALLEL
    if len(items) == 1 or parallel == 1:
        return [guarded(i) for i in items]
    with ThreadPoolExecutor(max_workers=min(parallel, len(items))) as pool:
        return list(pool.map(guarded, items))


def outcome(instances, action, **extra):
    """What a run returns to the module base: the per-domain results and the task-level extras."""
    return dict(instances=instances, action=action, extra=extra)
