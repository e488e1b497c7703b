# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What every lifecycle operation shares: guards, the locked compare-and-set, events, history, fail points."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import os
import signal
import time

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _inventory as inv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._states import decide, effective_vm_state, InvalidState

FAILPOINT_ENV = 'DEFERRED_LIBVIRT_FAILPOINT'
# With this set to a file path, a fail point writes its pid there and stops (SIGSTOP) instead of dying, so a test
# can break something (a daemon, the state_dir) at that exact step and then let the module go on with SIGCONT.
FAILPOINT_PAUSE_ENV = 'DEFERRED_LIBVIRT_FAILPOINT_PAUSE'
# How long a roll-back waits for a restarted libvirtd to answer again (a restart takes a few seconds).
RECONNECT_WAIT = 30


class OperationError(Exception):
    """An operation refused or failed for one domain; the message names the domain and the reason."""


def failpoint(name):
    """Kill (or pause) this process at a named step when the tests ask for it (fault injection; off unless the env var is set)."""
    wanted = os.environ.get(FAILPOINT_ENV)
    if wanted and wanted in (name, name.split('.', 1)[-1]):
        pause_file = os.environ.get(FAILPOINT_PAUSE_ENV)
        if pause_file:
            with open(pause_file, 'w') as handle:
                handle.write('%d %s\n' % (os.getpid(), name))
            os.kill(os.getpid(), signal.SIGSTOP)
            return
        os.kill(os.getpid(), signal.SIGKILL)


def guard(domain, operation, project=None, force=False, check_protected=True):
    """Refuse ``operation`` on ``domain`` for any reason the operator must fix first."""
    if domain.record_error:
        raise OperationError('%s; nothing was changed (fix or remove it with virsh metadata %s --uri %s --remove)'
                             % (domain.record_error, domain.name, _record.NAMESPACE))
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


def plan(domain, operation):
    """START, RESUME or NOOP for ``operation`` on ``domain``; OperationError on an invalid state."""
    record = domain.record or _record.empty()
    vm_state = effective_vm_state(record.get('vm_state'), domain.power_state)
    try:
        return decide(operation, vm_state, record.get('task_state'))
    except InvalidState as exc:
        raise OperationError('domain %s: %s' % (domain.name, exc))


class Context(object):
    """One module run: the connection, the state dir, the request id and the options that apply to every domain."""

    def __init__(self, base, state_dir, lock_timeout=60.0):
        self.base = base
        self.conn = base.connect()
        self.uri = base.params['uri']
        self.state = state_dir
        self.request_id = base.request_id
        self.check_mode = base.check_mode
        self.lock_timeout = lock_timeout
        self.project = base.params.get('project')

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

    def compare_and_set(self, domain, expected_task_states, updates):
        """Set ``updates`` only if task_state is still one of ``expected_task_states``; return the new record.

        Called under the domain's lock; the re-read makes it safe against a
        run that changed the record between our selection and the lock.
        """
        current = self.fresh(domain)
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


def view(domain):
    return inv.describe(domain)
