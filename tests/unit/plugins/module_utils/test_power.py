# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Power actions against libvirt's test driver: the clean shutdown (ACPI re-sent, then destroy), destroy, wait for running."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv

from ansible_collections.deferred.libvirt.plugins.module_utils import _power
from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import HypervisorError


class FakeClock(object):
    """A monotonic clock that moves only when the code under test sleeps."""

    def __init__(self):
        self.now = 0.0
        self.sleeps = 0

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps += 1
        # Rounded so that polls of _power.POLL seconds add up to exact multiples (30 polls of 0.1 s make 3 s).
        self.now = round(self.now + seconds, 6)


def power(dom):
    return hv.POWER_STATES[dom.state()[0]]


@pytest.fixture
def stubborn(define):
    """A running guest that ignores ACPI: the test driver restarts it instead of powering it off."""
    return define('stubborn', running=True, on_poweroff='restart')


# -- clean_shutdown -------------------------------------------------------------

def test_the_stubborn_guest_really_ignores_acpi_on_the_test_driver(stubborn):
    stubborn.shutdown()
    assert power(stubborn) == 'running'


def test_a_guest_that_honours_acpi_is_shut_down_cleanly_at_the_first_attempt(conn):
    dom = conn.lookupByName('test')
    fake = FakeClock()
    result = _power.clean_shutdown(dom, timeout=60, retry_interval=10, clock=fake.clock, sleep=fake.sleep)
    assert result == {'clean_shutdown': True, 'attempts': 1, 'seconds': _power.POLL, 'was': 'running',
                      'seen_by': 'poll'}
    assert power(dom) == 'shutoff'


def test_acpi_is_resent_every_retry_interval_then_the_guest_is_destroyed_at_the_timeout(stubborn):
    fake = FakeClock()
    attempts = []
    result = _power.clean_shutdown(stubborn, timeout=10, retry_interval=3, clock=fake.clock, sleep=fake.sleep,
                                   on_attempt=lambda n, at: attempts.append((n, at)))
    assert attempts == [(1, 0.0), (2, 3.0), (3, 6.0), (4, 9.0)]
    assert result == {'clean_shutdown': False, 'attempts': 4, 'seconds': 10.0, 'was': 'running', 'seen_by': None}
    assert power(stubborn) == 'shutoff'


def test_a_zero_retry_interval_sends_at_most_one_acpi_request_per_poll(stubborn):
    fake = FakeClock()
    result = _power.clean_shutdown(stubborn, timeout=1, retry_interval=0, clock=fake.clock, sleep=fake.sleep)
    assert 2 <= result['attempts'] <= 1 / _power.POLL
    assert result['clean_shutdown'] is False


def test_a_zero_timeout_destroys_at_once(stubborn):
    fake = FakeClock()
    result = _power.clean_shutdown(stubborn, timeout=0, retry_interval=3, clock=fake.clock, sleep=fake.sleep)
    assert result == {'clean_shutdown': False, 'attempts': 0, 'seconds': 0.0, 'was': 'running', 'seen_by': None}
    assert power(stubborn) == 'shutoff'
    assert fake.sleeps == 0


def test_a_guest_already_off_needs_no_shutdown(define):
    dom = define('idle')
    fake = FakeClock()
    result = _power.clean_shutdown(dom, timeout=60, retry_interval=10, clock=fake.clock, sleep=fake.sleep)
    assert result == {'clean_shutdown': True, 'attempts': 0, 'seconds': 0, 'was': 'shutoff', 'seen_by': None}


def test_a_paused_guest_is_resumed_so_it_can_see_the_power_button(conn):
    dom = conn.lookupByName('test')
    dom.suspend()
    assert power(dom) == 'paused'
    fake = FakeClock()
    result = _power.clean_shutdown(dom, timeout=60, retry_interval=10, clock=fake.clock, sleep=fake.sleep)
    assert result['clean_shutdown'] is True
    assert result['was'] == 'paused'
    assert power(dom) == 'shutoff'


def test_destroy_of_a_domain_already_off_is_fine(define):
    dom = define('idle')
    _power.destroy(dom)
    assert power(dom) == 'shutoff'


# -- the wait on libvirt's lifecycle events ------------------------------------

@pytest.fixture
def events():
    """libvirt's event loop, running in this process as the modules run it (hv.open_connection starts it)."""
    assert hv.start_events() is True
    return hv


def test_with_events_a_shutdown_is_seen_through_the_stopped_event_without_waiting_a_poll(conn, events):
    dom = conn.lookupByName('test')
    started = time.monotonic()
    result = _power.clean_shutdown(dom, timeout=60, retry_interval=10)
    assert result['clean_shutdown'] is True and result['attempts'] == 1
    assert result['seen_by'] == 'event'
    assert time.monotonic() - started < _power.EVENT_POLL
    assert power(dom) == 'shutoff'


def test_a_missed_stopped_event_is_caught_by_the_fallback_poll(conn, events, monkeypatch):
    monkeypatch.setattr(_power.StopWatch, '_event', lambda *args: None)  # the event is lost on its way
    monkeypatch.setattr(_power, 'EVENT_POLL', 0.05)
    dom = conn.lookupByName('test')
    result = _power.clean_shutdown(dom, timeout=60, retry_interval=10)
    assert result['clean_shutdown'] is True and result['attempts'] == 1
    assert result['seen_by'] == 'poll'
    assert power(dom) == 'shutoff'


def test_without_an_event_loop_the_wait_polls_as_before(conn, monkeypatch):
    monkeypatch.setattr(_power, 'events_running', lambda: False)
    dom = conn.lookupByName('test')
    watch = _power.StopWatch(dom)
    assert watch.active is False
    result = _power.clean_shutdown(dom, timeout=60, retry_interval=10)
    assert result['clean_shutdown'] is True and result['seen_by'] == 'poll'
    assert power(dom) == 'shutoff'


def test_a_driver_that_refuses_event_callbacks_leaves_the_wait_to_the_poll(conn, events, monkeypatch):
    class NoEvents(object):
        def domainEventRegisterAny(self, *args):
            raise hv.libvirt.libvirtError('this driver has no events')

    dom = conn.lookupByName('test')
    monkeypatch.setattr(hv.libvirt.virDomain, 'connect', lambda self: NoEvents())
    assert _power.StopWatch(dom).active is False


def test_with_events_a_deaf_guest_still_gets_its_resends_and_is_destroyed_at_the_timeout(stubborn, events):
    attempts = []
    started = time.monotonic()
    result = _power.clean_shutdown(stubborn, timeout=1, retry_interval=0.3,
                                   on_attempt=lambda n, at: attempts.append(at))
    assert result['clean_shutdown'] is False and result['seen_by'] is None
    assert len(attempts) == 4 and attempts[0] == 0.0
    assert all(0.25 <= later - earlier < 0.45 for earlier, later in zip(attempts, attempts[1:]))
    assert 1.0 <= time.monotonic() - started < 2.0
    assert power(stubborn) == 'shutoff'


def test_the_stop_watch_stops_listening_when_the_wait_ends(conn, events):
    dom = conn.lookupByName('test')
    watch = _power.StopWatch(dom)
    assert watch.active is True
    watch.close()
    assert watch.active is False
    dom.destroy()
    assert watch.wait(0.2) is False  # the callback was deregistered: the stop was not seen


# -- start and wait -------------------------------------------------------------

def test_wait_running_returns_once_the_domain_runs(define):
    dom = define('web01')
    _power.start(dom)
    fake = FakeClock()
    _power.wait_running(dom, 30, clock=fake.clock, sleep=fake.sleep)
    assert fake.now == 0.0


def test_wait_running_gives_up_at_the_timeout_naming_the_domain(define):
    dom = define('web01')
    fake = FakeClock()
    with pytest.raises(HypervisorError) as err:
        _power.wait_running(dom, 5, clock=fake.clock, sleep=fake.sleep)
    assert str(err.value) == 'domain web01: not running 5s after start (power state shutoff)'
    assert fake.now >= 5
