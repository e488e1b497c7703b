# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Power actions on a domain: the power state, destroy, the clean shutdown (ACPI, re-sent, then destroy; the stop
seen through libvirt's lifecycle event, polled as a fallback), start and the wait for running, managed save."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import threading
import time

from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import (
    call, error_code, events_running, HypervisorError, libvirt, POWER_STATES)


# Seconds between power-state polls while waiting for a shutdown or a start. Polling every 0.2 s saw an ACPI
# shutdown ~0.35 s later than polling every 0.05 s did (bench/, overhead); 0.1 s is within 0.05 s of that.
POLL = 0.1
# With libvirt's lifecycle events, the wait for a shutdown returns on the domain's STOPPED event; the power state
# is still read every EVENT_POLL seconds, for an event that never comes (a connection without events, a lost one).
EVENT_POLL = 0.5


class StopWatch(object):
    """The STOPPED (or UNDEFINED) lifecycle event of one domain, when its connection delivers events.

    ``active`` says whether it listens; ``wait(seconds)`` returns True as soon
    as the event came (and forgets it, so a guest that starts again is waited
    for anew), else False after ``seconds``. ``close()`` stops listening.
    """

    def __init__(self, dom):
        self._seen = threading.Event()
        self._conn = None
        self._id = None
        if not events_running():
            return
        try:
            conn = dom.connect()
            self._id = conn.domainEventRegisterAny(dom, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._event, None)
            self._conn = conn
        except libvirt.libvirtError:
            self._id = None  # the driver has no events: the caller polls

    @property
    def active(self):
        return self._id is not None

    def _event(self, _conn, _dom, event, _detail, _opaque):
        if event in (libvirt.VIR_DOMAIN_EVENT_STOPPED, libvirt.VIR_DOMAIN_EVENT_UNDEFINED):
            self._seen.set()

    def wait(self, seconds):
        seen = self._seen.wait(seconds)
        self._seen.clear()
        return seen

    def close(self):
        if self._id is None:
            return
        try:
            self._conn.domainEventDeregisterAny(self._id)
        except libvirt.libvirtError:
            pass  # the connection went away: its callbacks went with it
        self._id = None


def power_state(dom):
    try:
        return POWER_STATES.get(dom.state()[0], 'nostate')
    except libvirt.libvirtError as exc:
        if error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
            return 'gone'
        raise HypervisorError('cannot read the power state of %s: %s' % (dom.name(), exc.get_error_message()))


def destroy(dom):
    """Power the domain off at once; a domain already off is fine."""
    if power_state(dom) in ('shutoff', 'gone'):
        return
    try:
        dom.destroy()
    except libvirt.libvirtError as exc:
        if power_state(dom) in ('shutoff', 'gone'):
            return
        raise HypervisorError('domain %s: destroy failed: %s' % (dom.name(), exc.get_error_message()))


def clean_shutdown(dom, timeout, retry_interval, on_attempt=None, clock=time.monotonic, sleep=time.sleep, state=None,
                   events=None):
    """Shut the guest down the way Nova's _clean_shutdown does, but waiting for ACPI first.

    Sends an ACPI shutdown, re-sends it every ``retry_interval`` seconds (a
    shutdown sent before the guest listens is lost) and destroys the domain
    when ``timeout`` passes. A timeout of 0 destroys at once. ``state`` is the
    power state the caller has just read (else it is read here). The wait
    returns on the domain's STOPPED lifecycle event when libvirt delivers
    events (``events``: None uses them with the real clock, a test's clock
    polls), reading the power state every EVENT_POLL seconds for an event
    that never comes; without events it polls every POLL seconds. Returns a
    dict: clean_shutdown, attempts, seconds, was (the power state before) and
    seen_by (how the stop was seen: event, poll, or None when there was no
    wait).
    """
    started = clock()
    state = power_state(dom) if state is None else state
    if state in ('shutoff', 'gone'):
        return {'clean_shutdown': True, 'attempts': 0, 'seconds': 0.0, 'was': state, 'seen_by': None}
    if state == 'crashed':
        destroy(dom)
        return {'clean_shutdown': False, 'attempts': 0, 'seconds': round(clock() - started, 2), 'was': state,
                'seen_by': None}
    current = state
    if state in ('paused', 'pmsuspended'):
        # A paused guest cannot see the power button: let it run so it can shut down itself.
        try:
            dom.resume()
        except libvirt.libvirtError:
            pass
        current = None
    attempts = 0
    if timeout > 0:
        if events is None:
            events = sleep is time.sleep
        # Listening before the first shutdown is sent, so its STOPPED event cannot come before we listen.
        watch = StopWatch(dom) if events else None
        try:
            next_send = started
            deadline = started + timeout
            seen_by = 'poll'
            while True:
                # Read the state first: libvirt can block this call while QEMU handles the power-down. (The first
                # pass uses the state just read.)
                current = power_state(dom) if current is None else current
                now = clock()
                if current in ('shutoff', 'gone'):
                    return {'clean_shutdown': True, 'attempts': attempts, 'seconds': round(now - started, 2),
                            'was': state, 'seen_by': seen_by}
                if now >= deadline:
                    break
                if now >= next_send:
                    attempts += 1
                    if on_attempt:
                        on_attempt(attempts, round(now - started, 2))
                    try:
                        dom.shutdown()
                    except libvirt.libvirtError:
                        if power_state(dom) in ('shutoff', 'gone'):
                            current = None
                            continue
                    next_send = now + max(retry_interval, POLL)
                if watch is not None and watch.active:
                    # Until the event, the next re-send or the deadline, whichever is first.
                    now = clock()
                    pause = max(0.0, min(EVENT_POLL, next_send - now, deadline - now))
                    seen_by = 'event' if watch.wait(pause) else 'poll'
                else:
                    sleep(min(POLL, max(0.0, deadline - clock())))
                current = None
        finally:
            if watch is not None:
                watch.close()
    destroy(dom)
    return {'clean_shutdown': False, 'attempts': attempts, 'seconds': round(clock() - started, 2), 'was': state,
            'seen_by': None}


def wait_running(dom, timeout, clock=time.monotonic, sleep=time.sleep):
    """Wait until the domain runs; raise HypervisorError when ``timeout`` passes first."""
    deadline = clock() + timeout
    while True:
        state = power_state(dom)
        if state == 'running':
            return
        if state in ('crashed', 'gone'):
            raise HypervisorError('domain %s: %s while starting' % (dom.name(), state))
        if clock() >= deadline:
            raise HypervisorError('domain %s: not running %ds after start (power state %s)' % (dom.name(), timeout, state))
        sleep(POLL)


def start(dom, discard_saved=False):
    flags = libvirt.VIR_DOMAIN_START_FORCE_BOOT if discard_saved else 0
    call('start', dom.name(), dom.createWithFlags, flags)


def managed_save(dom):
    call('managed save', dom.name(), dom.managedSave, 0)
