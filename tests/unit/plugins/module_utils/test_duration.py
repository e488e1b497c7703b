# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Durations as operators write them in reclaim_interval, shutdown_timeout and friends."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._duration import (
    MAX_SECONDS, DurationError, format_duration, parse_duration)


@pytest.mark.parametrize('value, seconds', [
    (0, 0),
    (90, 90),
    ('90', 90),
    ('90s', 90),
    ('15m', 900),
    ('12h', 43200),
    ('7d', 604800),
    ('2w', 1209600),
    ('1h30m', 5400),
    ('1d12h', 129600),
    (' 15m ', 900),
    ('15M', 900),
    ('1h 30m', 5400),
])
def test_seconds_and_unit_strings_are_read_as_whole_seconds(value, seconds):
    assert parse_duration(value, 'reclaim_interval') == seconds


@pytest.mark.parametrize('value, seconds', [
    (1.4, 1),
    (59.6, 60),
    ('2.5', 2),
    ('1.5h', 5400),
    ('0.5m', 30),
])
def test_fractional_durations_round_to_whole_seconds(value, seconds):
    assert parse_duration(value, 'shutdown_timeout') == seconds


def test_no_value_means_no_duration():
    assert parse_duration(None, 'reclaim_interval') is None


@pytest.mark.parametrize('value', [-1, -0.5, '-5', '-5m', float('-inf')])
def test_negative_durations_are_refused_naming_the_option(value):
    with pytest.raises(DurationError) as err:
        parse_duration(value, 'shutdown_timeout')
    assert str(err.value).startswith('shutdown_timeout: ')


def test_negative_number_message_says_it_is_negative():
    with pytest.raises(DurationError) as err:
        parse_duration(-5, 'shutdown_timeout')
    assert str(err.value) == 'shutdown_timeout: -5 is negative; a duration must be zero or more'


@pytest.mark.parametrize('value', [True, False])
def test_booleans_are_not_durations(value):
    with pytest.raises(DurationError) as err:
        parse_duration(value, 'reclaim_interval')
    assert str(err.value) == ('reclaim_interval: %r is not a duration (use seconds or a string such as 90s, 15m, 12h, 7d)'
                              % value)


@pytest.mark.parametrize('value', ['soon', '5x', '', 'm', '1h30', '3 days', '1e3', 'h1', '1..5m', [60], {'h': 1},
                                   float('nan')])
def test_garbage_is_refused_naming_the_option(value):
    with pytest.raises(DurationError) as err:
        parse_duration(value, 'reclaim_interval')
    assert str(err.value).startswith('reclaim_interval: ')


def test_garbage_message_shows_the_value_and_the_accepted_forms():
    with pytest.raises(DurationError) as err:
        parse_duration('3x', 'reclaim_interval')
    assert str(err.value) == "reclaim_interval: '3x' is not a duration (use seconds or a string such as 90s, 15m, 12h, 7d)"


@pytest.mark.parametrize('value', [MAX_SECONDS + 1, '3651d', '522w', float('inf')])
def test_durations_over_ten_years_are_refused_as_typos(value):
    with pytest.raises(DurationError) as err:
        parse_duration(value, 'reclaim_interval')
    assert str(err.value).startswith('reclaim_interval: ')
    assert 'longer than the maximum of %d seconds' % MAX_SECONDS in str(err.value)


def test_exactly_ten_years_is_accepted():
    assert parse_duration('3650d', 'reclaim_interval') == MAX_SECONDS


@pytest.mark.parametrize('value', [0, '0', '0s', '0m0s'])
def test_zero_is_refused_where_a_duration_must_be_positive(value):
    with pytest.raises(DurationError) as err:
        parse_duration(value, 'shutdown_retry_interval', allow_zero=False)
    assert str(err.value) == 'shutdown_retry_interval: must be more than zero'


def test_a_fraction_that_rounds_to_zero_is_refused_where_zero_is():
    with pytest.raises(DurationError) as err:
        parse_duration(0.4, 'shutdown_retry_interval', allow_zero=False)
    assert str(err.value) == 'shutdown_retry_interval: must be more than zero'


def test_zero_is_accepted_where_it_means_at_once():
    assert parse_duration('0s', 'shutdown_timeout') == 0


@pytest.mark.parametrize('seconds, text', [
    (None, None), (0, '0s'), (45, '45s'), (90, '90s'), (900, '15m'), (5400, '90m'), (43200, '12h'),
    (86400, '1d'), (604800, '1w'),
])
def test_format_gives_the_shortest_exact_spelling(seconds, text):
    assert format_duration(seconds) == text


@pytest.mark.parametrize('seconds', [1, 59, 61, 3599, 3660, 86399, 90061, 604800 * 3])
def test_formatted_durations_read_back_to_the_same_seconds(seconds):
    assert parse_duration(format_duration(seconds), 'x') == seconds
