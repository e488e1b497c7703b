# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Quota: per-project limits, the default entry, -1 unlimited, a batch checked as one, the message."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._quota import (
    QuotaError, check, describe, limits_for, request_of, usage_of, validate_limits)

SMALL = {'project': 'web', 'vcpus': 1, 'memory_mb': 128}
BIG = {'project': 'web', 'vcpus': 4, 'memory_mb': 4096}


def test_a_listed_project_uses_its_own_limits():
    limits = {'web': {'instances': 10, 'cores': 20, 'ram_mb': 32768}, 'default': {'instances': 1}}
    assert limits_for(limits, 'web') == {'instances': 10, 'cores': 20, 'ram_mb': 32768}


def test_a_project_not_listed_gets_the_default_entry():
    limits = {'web': {'instances': 10}, 'default': {'instances': 2, 'cores': 4, 'ram_mb': 1024}}
    assert limits_for(limits, 'ci') == {'instances': 2, 'cores': 4, 'ram_mb': 1024}


def test_domains_with_no_project_get_the_default_entry():
    assert limits_for({'default': {'instances': 2}}, None)['instances'] == 2


def test_a_listed_project_does_not_inherit_from_default_and_a_missing_resource_is_unlimited():
    limits = {'web': {'instances': 10}, 'default': {'instances': 2, 'cores': 4, 'ram_mb': 1024}}
    assert limits_for(limits, 'web') == {'instances': 10, 'cores': -1, 'ram_mb': -1}


def test_no_entry_and_no_default_is_unlimited():
    assert limits_for({'web': {'instances': 1}}, 'ci') == {'instances': -1, 'cores': -1, 'ram_mb': -1}
    assert check({'web': {'instances': 1}}, {}, request_of([dict(SMALL, project='ci')] * 50)) == []


def test_minus_one_is_unlimited_whatever_the_usage():
    limits = {'web': {'instances': -1, 'cores': -1, 'ram_mb': -1}}
    usage = {'web': {'instances': 10 ** 6, 'cores': 10 ** 6, 'ram_mb': 10 ** 9}}
    assert check(limits, usage, request_of([BIG])) == []


def test_request_adds_instances_cores_and_ram_per_project():
    request = request_of([SMALL, BIG, {'project': 'ci', 'vcpus': 2, 'memory_mb': 512}])
    assert request == {'web': {'instances': 2, 'cores': 5, 'ram_mb': 4224},
                       'ci': {'instances': 1, 'cores': 2, 'ram_mb': 512}}


def test_request_of_a_domain_with_unknown_size_counts_the_instance_only():
    assert request_of([{'project': 'web', 'vcpus': None, 'memory_mb': None}]) == {
        'web': {'instances': 1, 'cores': 0, 'ram_mb': 0}}


def test_exactly_at_the_limit_fits():
    limits = {'web': {'instances': 2, 'cores': 2, 'ram_mb': 256}}
    usage = {'web': {'instances': 1, 'cores': 1, 'ram_mb': 128}}
    assert check(limits, usage, request_of([SMALL])) == []


def test_one_over_the_limit_is_an_overrun_naming_everything():
    limits = {'web': {'instances': 2, 'cores': 2, 'ram_mb': 256}}
    usage = {'web': {'instances': 2, 'cores': 1, 'ram_mb': 128}}
    assert check(limits, usage, request_of([SMALL])) == [
        {'project': 'web', 'resource': 'instances', 'limit': 2, 'usage': 2, 'request': 1}]


def test_every_resource_over_is_reported():
    limits = {'web': {'instances': 1, 'cores': 1, 'ram_mb': 1024}}
    over = check(limits, {}, request_of([BIG]))
    assert [(o['resource'], o['limit'], o['usage'], o['request']) for o in over] == [
        ('cores', 1, 0, 4), ('ram_mb', 1024, 0, 4096)]


def test_a_batch_that_fits_one_at_a_time_is_refused_together():
    limits = {'default': {'instances': 3}}
    usage = {'web': {'instances': 2}}
    assert check(limits, usage, request_of([SMALL])) == []
    assert check(limits, usage, request_of([SMALL, dict(SMALL)])) == [
        {'project': 'web', 'resource': 'instances', 'limit': 3, 'usage': 2, 'request': 2}]


def test_one_project_over_does_not_hide_another_that_fits():
    limits = {'web': {'instances': 1}, 'ci': {'instances': 5}}
    over = check(limits, {}, request_of([SMALL, dict(SMALL), dict(SMALL, project='ci')]))
    assert [o['project'] for o in over] == ['web']


def test_usage_of_another_project_does_not_count():
    limits = {'default': {'instances': 1}}
    assert check(limits, {'ci': {'instances': 99}}, request_of([SMALL])) == []


def test_message_names_project_resource_limit_usage_and_request():
    over = [{'project': 'web', 'resource': 'cores', 'limit': 20, 'usage': 18, 'request': 4},
            {'project': None, 'resource': 'instances', 'limit': 1, 'usage': 1, 'request': 1}]
    assert describe(over) == ('project web is over quota for cores: limit 20, usage 18, request 4; '
                              'project (none) is over quota for instances: limit 1, usage 1, request 1')


def test_usage_of_reports_only_the_projects_of_the_batch_with_zeros_where_unknown():
    usage = {'web': {'instances': 3, 'cores': 6}, 'ci': {'instances': 9, 'cores': 9, 'ram_mb': 9}}
    assert usage_of(usage, request_of([SMALL, dict(SMALL, project='new')])) == {
        'web': {'instances': 3, 'cores': 6, 'ram_mb': 0}, 'new': {'instances': 0, 'cores': 0, 'ram_mb': 0}}


@pytest.mark.parametrize('limits, words', [
    ([1, 2], ['quota must be a dict']),
    ({'web': 5}, ['web', 'must be a dict']),
    ({'web': {'disks': 1}}, ['web', 'unknown resource disks', 'instances, cores, ram_mb']),
    ({'web': {'cores': 'lots'}}, ['web', 'cores', 'whole number', "'lots'"]),
    ({'web': {'cores': 1.5}}, ['cores', 'whole number']),
    ({'web': {'cores': True}}, ['cores', 'whole number']),
    ({'web': {'cores': -2}}, ['cores', '-1 for unlimited', '-2']),
])
def test_malformed_limits_are_refused_with_a_clear_message(limits, words):
    with pytest.raises(QuotaError) as caught:
        validate_limits(limits)
    for word in words:
        assert word in str(caught.value)


def test_check_refuses_malformed_limits_too():
    with pytest.raises(QuotaError):
        check({'web': {'instances': '3'}}, {}, request_of([SMALL]))


def test_zero_allows_nothing():
    assert check({'web': {'instances': 0}}, {}, request_of([SMALL]))[0]['limit'] == 0
