# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The option groups: each one's read() gives typed values, and bad input is refused naming the option."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import DurationError
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError, InputError, unchanged
from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import HypervisorError
from ansible_collections.deferred.libvirt.plugins.module_utils._quota import QuotaError

VOLUME = '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00'


def test_a_spec_is_composed_of_groups_with_the_connection_first():
    spec = options.spec(options.Selection, options.Lifecycle, {'extra': dict(type='str')})
    assert set(['uri', 'state_dir', 'cinder', 'name', 'query', 'project', 'force', 'lock_timeout', 'parallel',
                'extra']) == set(spec)


def test_every_module_takes_the_cinder_declaration_so_module_defaults_of_the_group_can_set_it():
    from ansible_collections.deferred.libvirt.plugins.module_utils._ops import (
        _attributes, _info, _reclaim, _restore, _soft_delete, _terminate)
    for op in (_attributes, _info, _reclaim, _restore, _soft_delete, _terminate):
        assert op.ARGUMENT_SPEC['cinder'] == dict(type='bool'), op.__name__


def test_the_cinder_declaration_is_read_as_true_false_or_not_said():
    assert options.CinderDeclaration.read({}).declared is None
    assert options.Cinder.read({'cinder': False}).absent is True
    assert options.Cinder.read({'cinder': True, 'cloud': 'devstack'}).declared is True
    assert options.Cinder.read({'cloud': 'devstack'}).declared is None


def test_a_fleet_declared_without_cinder_refuses_cinder_options_naming_the_cloud():
    with pytest.raises(InputError, match=r'^cinder is false \(this fleet has no Cinder\) but Cinder options were given '
                                         r'\(cloud devstack\): drop one of them$'):
        options.Cinder.read({'cinder': False, 'cloud': 'devstack'})


def test_a_fleet_declared_with_cinder_refuses_a_run_without_cinder_options():
    with pytest.raises(InputError, match='^cinder is true .* neither cloud nor auth was given'):
        options.Cinder.read({'cinder': True, 'cloud': None, 'auth': None})


def test_connection_and_selection_read_what_was_given():
    assert options.Connection.read({}).uri == 'qemu:///system'
    chosen = options.Selection.read({'name': ['a'], 'project': 'web'})
    assert (chosen.names, chosen.query, chosen.project) == (['a'], None, 'web')
    assert options.Selection.read({'project': 'web'}, scoped=False).project is None


def test_lifecycle_reads_lock_timeout_as_seconds_and_refuses_parallel_below_one():
    lifecycle = options.Lifecycle.read({'lock_timeout': '2m', 'force': True})
    assert (lifecycle.lock_timeout, lifecycle.force, lifecycle.parallel) == (120, True, options.PARALLEL)
    with pytest.raises(InputError, match='^parallel must be 1 or more, got 0$'):
        options.Lifecycle.read({'parallel': 0})
    with pytest.raises(DurationError, match='^lock_timeout: '):
        options.Lifecycle.read({'lock_timeout': 'soon'})


def test_storage_refuses_a_system_directory():
    assert options.Storage.read({'instance_dirs': ['/srv/vm']}).instance_dirs == ['/srv/vm']
    with pytest.raises(HypervisorError, match='instance_dirs: /var is a system directory'):
        options.Storage.read({'instance_dirs': ['/var']})


def test_cinder_fleet_and_retention_groups():
    assert options.Cinder.read({}).configured is False
    assert options.Cinder.read({'volume_wait_timeout': '2m'}).wait_timeout == 120
    with pytest.raises(DurationError, match='volume_wait_timeout: must be more than zero'):
        options.Cinder.read({'volume_wait_timeout': 0})
    assert options.Fleet.read({}).index is None
    assert options.Retention.read({'tombstone_retention': 'never'}).tombstone_retention is None
    with pytest.raises(InputError, match='journal_rotate_size'):
        options.Retention.read({'journal_rotate_size': 'big'})


def test_shutdown_and_soft_delete_groups():
    stop = options.Shutdown.read({'shutdown_timeout': '1m'})
    assert (stop.timeout, stop.retry_interval) == (60, options.DEFAULT_RETRY_INTERVAL)
    with pytest.raises(DurationError, match='shutdown_retry_interval: must be more than zero'):
        options.Shutdown.read({'shutdown_retry_interval': 0})
    own = options.SoftDelete.read({})
    assert (own.reclaim_interval, own.mode) == (options.DEFAULT_RECLAIM_INTERVAL, 'shutdown')


def test_restore_group_checks_move_from_and_the_quota_before_anything():
    assert options.Restore.read({}).start_timeout == options.DEFAULT_START_TIMEOUT
    with pytest.raises(InputError, match='^move_from needs name: say which domains to bring here$'):
        options.Restore.read({'move_from': 'qemu+ssh://hv2/system'})
    with pytest.raises(QuotaError, match='unknown resource disks.*; nothing was changed$'):
        options.Restore.read({'quota': {'web': {'disks': 1}}})


def test_reclaim_group_refuses_a_negative_limit():
    own = options.Reclaim.read({'limit': 3, 'max_overdue': 0})
    assert (own.limit, own.max_overdue, own.clock_tolerance) == (3, 0, options.DEFAULT_CLOCK_TOLERANCE)
    with pytest.raises(InputError, match='^limit must be 0 or more, got -1$'):
        options.Reclaim.read({'limit': -1})


def test_attributes_group_reads_the_changes_and_refuses_a_bad_volume():
    own = options.Attributes.read({'locked': False, 'reclaim_interval': 'default', 'shutdown_timeout': '1m',
                                   'volumes': [{'id': VOLUME, 'delete_on_termination': True}]})
    assert own.changes == {'locked': False, 'lock_reason': None, 'reclaim_interval': None, 'shutdown_timeout': 60,
                           'volumes': [{'id': VOLUME, 'target': None, 'delete_on_termination': True}]}
    with pytest.raises(InputError, match="^volumes: '../etc/passwd' is not a Cinder volume id$"):
        options.Attributes.read({'volumes': [{'id': '../etc/passwd'}]})
    with pytest.raises(InputError, match='is listed twice'):
        options.Attributes.read({'volumes': [{'id': VOLUME}, {'id': VOLUME}]})


def test_info_group():
    assert options.Info.read({'include_deleted': True}).include_deleted is True


def test_nothing_was_changed_is_said_once_and_keeps_the_class_and_result():
    said = unchanged(InputError('limit must be 0 or more, got -1', quota={'x': 1}))
    assert str(said) == 'limit must be 0 or more, got -1; nothing was changed'
    assert isinstance(said, InputError) and said.result == {'quota': {'x': 1}}
    assert str(unchanged(said)) == str(said)
    assert str(unchanged(DeferredError('over quota, nothing was changed: x'))) == 'over quota, nothing was changed: x'
