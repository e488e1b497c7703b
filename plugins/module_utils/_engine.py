# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every operation runs on: the Context, the selection snapshot, the guards, the fan-out, and the locked step.

The locked step is ``carry_out(ctx, domain, plan_for)``, written once for
soft delete, restore, terminate and attributes. Each of them decides through
a Plan (built from the domain's fresh read under its lock) and carry_out does
the rest in the same order for all: check mode reports the plan; otherwise
lock, read, plan, NOOP reports, START takes the task_state with a
compare-and-set and writes the start event, RESUME goes on, then the work,
the compare-and-set to the state it leaves, and on error the roll-back.

Engine layer: imports the clients and the model, never an operation.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import time
import traceback
from collections import namedtuple
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _selection
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError, StateDirError, unchanged
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._locks import LOCK_TIMEOUT
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
from ansible_collections.deferred.libvirt.plugins.module_utils._options import PARALLEL
from ansible_collections.deferred.libvirt.plugins.module_utils._states import (
    NOOP, RESUME, START, InvalidState, decide, effective_vm_state)

# How long a roll-back waits for a restarted libvirtd to answer again (a restart takes a few seconds).
RECONNECT_WAIT = 30


class OperationError(DeferredError):
    """An operation refused or failed for one domain; the message names the domain and the reason."""


class Skip(DeferredError):
    """The domain no longer qualifies (for example it was restored meanwhile); nothing was changed."""


class Selected(namedtuple('Selected', 'domain tombstone view')):
    """One selected item: a live ``domain`` or a terminated domain's ``tombstone`` (the other is None), with its view."""

    __slots__ = ()

    @property
    def name(self):
        return self.view['name']

    @property
    def uuid(self):
        return self.view['uuid']


def guard(domain, operation, project=None, force=False, check_protected=True):
    """Refuse ``operation`` on ``domain`` for any reason the operator must fix first; returns its record."""
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


def stale_copy_refused(domain, stale, operation, why):
    """Rule 9: the refusal of ``operation`` on the stale copy ``domain`` (``stale``: FleetView.stale's entry), saying
    why it is stale and ``why`` it is refused; ``why`` may name ``{where}``, the host that holds the authoritative copy."""
    where = stale.get('authoritative') or 'the host that should keep it'
    return OperationError('domain %s is a %s; %s refuses it%s' % (domain.name, stale['reason'], operation,
                                                                  why.replace('{where}', where)))


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
    when the operation needs none), ``project`` the run's project scope (the
    guards refuse other projects' domains). ``params`` are the task's raw
    options, kept for the module base and tests: operations read their typed
    options instead. ``host_lock_dir`` is the host-wide lock directory of a StateDir this
    Context opens (None: the default one). ``warnings`` collects what the task result should warn about.
    """

    def __init__(self, conn, uri='qemu:///system', state=None, request_id='req-test', check_mode=False, project=None,
                 lock_timeout=LOCK_TIMEOUT, params=None, parallel=PARALLEL, verbosity=0, no_log_values=None,
                 state_dir=None, host_lock_dir=None):
        self.conn = conn
        self.uri = uri
        self.host_lock_dir = host_lock_dir
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
        self.state_dir = state.path if state is not None else (state_dir or self.params.get('state_dir'))
        self._host = None

    @property
    def host(self):
        """This hypervisor's identity ({uuid, hostname}), read once per run."""
        if self._host is None:
            self._host = hv.host_identity(self.conn)
        return self._host

    def host_key(self):
        """This hypervisor's key in the state_dir's per-host files (clock.json, fleet.json): its full hostname."""
        host = self.host or {}
        return (host.get('hostname') or host.get('uuid') or self.uri or '').lower()

    def open_state(self, create=False):
        """The run's StateDir, opened now for an operation that needs it only sometimes (vm_info include_deleted)."""
        if self.state is None:
            try:
                # Its lock files name this connection, so a sweep of another connection leaves them alone.
                self.state = StateDir(self.state_dir, create=create, host_lock_dir=self.host_lock_dir,
                                      connection=self.uri)
            except StateDirError as exc:
                raise unchanged(exc)
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

    def fresh_stopped(self, domain, managed_save):
        """Re-read the record of a domain this run has just stopped (under its lock): what fresh() says, from one
        call instead of four (hv.reread_stopped)."""
        current = hv.reread_stopped(domain, managed_save)
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
    """A per-domain result: the record after, and a diff (of the operator's fields only) when asked."""
    result = {'name': domain.name, 'uuid': domain.uuid, 'changed': changed}
    result.update(extra)
    if before is not None or after is not None:
        result['diff'] = {'before_header': domain.name, 'after_header': domain.name,
                          'before': _views.for_diff(before), 'after': _views.for_diff(after)}
    return result


# -- the locked step ------------------------------------------------------------------------------------------------

class Plan(object):
    """What one operation will do to one domain, decided once from its fresh read (under its lock).

    The protocol carry_out drives: ``decision`` (START, RESUME or NOOP: the
    constructor applies the guards and the state table), ``report()`` (the
    check-mode or no-op result), ``apply(ctx)`` (the work; returns the record
    to leave, written with a compare-and-set from ``held``, or None when
    there is none), ``roll_back(ctx, exc)`` (undo what it can; returns the
    exception to raise), ``finish(ctx)`` (under the lock, after the work:
    the result) and ``released(ctx, result)`` (after the lock).
    """

    decision = START
    domain = None
    # The task_state held while working, taken from one of ``expected``; None: nothing is held (no compare-and-set).
    held = None
    expected = (None,)
    # Prefix of the start and end events (instance.<event>.start) and of the fail points (<faults>.after_start).
    event = None
    faults = None
    # The fail point an interrupted run reaches when it picks the work up again (None: there is none).
    resume_fault = None
    # The read the record to leave is written against (set by apply; None: read again).
    after = None
    started = None

    def report(self):
        raise NotImplementedError

    def start_updates(self):
        return {'task_state': self.held}

    def start_payload(self):
        return {}

    def apply(self, ctx):
        return None

    def roll_back(self, ctx, exc):
        return exc

    def finish(self, ctx):
        return None

    def released(self, ctx, result):
        return result


def already_gone(domain):
    """What a terminate reports for a domain that was undefined before it got the lock."""
    return result_for(domain, False, action='none', msg='already gone')


def carry_out(ctx, domain, plan_for, when_gone=None):
    """Decide with ``plan_for(fresh domain)`` and carry the plan out under the domain's lock; its result dict.

    ``when_gone(domain)`` answers for a domain undefined meanwhile (default: OperationError, it disappeared).
    """
    started = time.monotonic()

    def read():
        current = hv.refresh(ctx.conn, domain.dom)
        if current is None:
            if when_gone is None:
                raise OperationError('domain %s disappeared while the operation waited for it' % domain.name)
            return None
        return current

    if ctx.check_mode:
        current = read()
        return when_gone(domain) if current is None else plan_for(current).report()
    with ctx.lock(domain):
        current = read()
        if current is None:
            return when_gone(domain)
        plan = plan_for(current)
        plan.started = started
        if plan.decision == NOOP:
            return plan.report()
        if plan.decision == START and plan.held is not None:
            ctx.compare_and_set(plan.domain, plan.expected, plan.start_updates(), current=plan.domain)  # read just above
            ctx.event('instance.%s.start' % plan.event, plan.domain, **plan.start_payload())
            failpoint('%s.after_start' % plan.faults)
        elif plan.decision == RESUME and plan.resume_fault:
            failpoint(plan.resume_fault)
        try:
            leaves = plan.apply(ctx)
            if leaves is not None:
                ctx.compare_and_set(plan.domain, (plan.held,), leaves, current=plan.after)
        except Exception as exc:
            raise plan.roll_back(ctx, exc)
        result = plan.finish(ctx)
    return plan.released(ctx, result)


def put_back(ctx, domain, record_for, event, exc):
    """A roll-back's write: ``record_for(current)`` gives (domain read, record) to save, then the end event.

    Returns None when rolled back, else why not (the record then still holds its task_state: a re-run finishes it).
    """
    try:
        current = ctx.fresh_or_reconnect(domain)  # libvirtd may have been restarted under us
        current, record = record_for(current)
        ctx.save(current, record)
    except Exception as err:
        return str(err) or err.__class__.__name__
    try:
        ctx.event('instance.%s.end' % event, domain, result='error', message=str(exc))
    except Exception:
        pass  # the record is rolled back; a full state_dir must not hide that
    return None


# -- selection and fan-out -------------------------------------------------------------------------------------------

def snapshot(ctx):
    """Every domain of the hypervisor, with its vm_info view: [Selected]."""
    try:
        domains = hv.list_domains(ctx.conn)
    except hv.HypervisorError:
        raise
    except Exception as exc:  # libvirtError while listing: the daemon went away
        raise hv.HypervisorError('cannot list domains on %s: %s' % (ctx.uri, exc))
    return [Selected(d, None, _views.describe(d)) for d in domains]


def select(items, selection):
    """The Selected items ``selection`` (an _options.Selection) names; SelectionError (nothing changed) if bad."""
    try:
        chosen = _selection.select([i.view for i in items], names=selection.names, query=selection.query,
                                   project=selection.project)
    except _selection.SelectionError as exc:
        raise unchanged(exc)
    by_uuid = dict((i.uuid, i) for i in items)
    return [by_uuid[v['uuid']] for v in chosen]


def _expected(exc):
    """Whether an exception is one the collection (or the platform) raises on purpose, not a bug."""
    if isinstance(exc, (DeferredError, EnvironmentError)):
        return True
    return hv.libvirt is not None and isinstance(exc, hv.libvirt.libvirtError)


def run_each(ctx, items, work, label=lambda item: item.name):
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
