# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark 9 runs for hours per ansible-core line at 5,000 hosts: BENCH_HOSTS_LINES picks the lines, and a line
that does not exist is refused, naming it and the real ones, before anything runs."""

from __future__ import absolute_import, division, print_function

import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'bench'))

import b_hosts  # noqa: E402


def test_every_line_runs_unless_one_is_named(monkeypatch):
    monkeypatch.delenv('BENCH_HOSTS_LINES', raising=False)
    assert [name for name, dummy in b_hosts.lines()] == ['2.16', 'newest']
    monkeypatch.setenv('BENCH_HOSTS_LINES', 'newest')
    assert [name for name, venv in b_hosts.lines()] == ['newest']
    assert b_hosts.lines()[0][1].endswith('.venv-newest')


def test_a_line_that_does_not_exist_is_refused_before_anything_runs(monkeypatch):
    monkeypatch.setenv('BENCH_HOSTS_LINES', 'newest,2.17')

    def must_not_run(*args, **kwargs):
        raise AssertionError('the benchmark started with a line that does not exist')

    monkeypatch.setattr(b_hosts.b_control, 'templates', must_not_run)
    with pytest.raises(SystemExit) as raised:
        b_hosts.run([100])
    message = str(raised.value)
    assert "no ansible-core line named '2.17'" in message
    assert 'the lines are 2.16, newest' in message and 'Nothing was run' in message
