# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The collection's errors (_errors.py): "nothing was changed" said once, and every refusal a DeferredError.

unchanged() is the one place that tells the operator nothing was changed; it
must say it once however many layers pass the error up, and keep the extra
keys of the result (a refused restore's quota figures). Every exception class
of module_utils is a DeferredError, so the engine reports it as a refusal with
its message, not as a bug with a traceback.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib
import inspect
import os
import pkgutil

from ansible_collections.deferred.libvirt.plugins import module_utils
from ansible_collections.deferred.libvirt.plugins.module_utils import _errors as errors
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota


def test_unchanged_says_nothing_was_changed_after_the_message():
    said = errors.unchanged(errors.InputError('parallel must be 1 or more'))
    assert str(said) == 'parallel must be 1 or more; nothing was changed'


def test_unchanged_twice_says_it_once():
    once = errors.unchanged(errors.InputError('unknown domain web09'))
    assert str(errors.unchanged(once)) == 'unknown domain web09; nothing was changed'
    assert str(errors.unchanged(once)).count(errors.NOTHING_CHANGED) == 1


def test_unchanged_leaves_a_message_that_already_says_so_as_it_is():
    exc = errors.StateDirError('state_dir /x is not a directory; nothing was changed')
    assert errors.unchanged(exc) is exc


def test_unchanged_keeps_the_class_and_the_result_extras_and_leaves_the_original_alone():
    exc = quota.QuotaError('restore of web01 is over quota', quota={'over': ['cores']}, changed=False)
    said = errors.unchanged(exc)
    assert said.__class__ is quota.QuotaError  # the very class, not a subclass or a parent
    assert said.result == {'quota': {'over': ['cores']}, 'changed': False}
    assert str(said) == 'restore of web01 is over quota; nothing was changed'
    assert str(exc) == 'restore of web01 is over quota'


def test_a_deferred_error_carries_its_message_and_result():
    exc = errors.DeferredError('domain web01 is locked', changed=True)
    assert (str(exc), exc.result) == ('domain web01 is locked', {'changed': True})
    assert errors.DeferredError().result == {}


def module_utils_modules():
    """Every module of plugins/module_utils (subpackages included), imported."""
    path = os.path.dirname(module_utils.__file__)
    for info in pkgutil.walk_packages([path], prefix=module_utils.__name__ + '.'):
        yield importlib.import_module(info.name)


def test_every_exception_class_of_module_utils_is_a_deferred_error():
    defined, not_ours = [], []
    for module in module_utils_modules():
        for name, cls in inspect.getmembers(module, inspect.isclass):
            if cls.__module__ == module.__name__ and issubclass(cls, BaseException):
                defined.append(name)
                if not issubclass(cls, errors.DeferredError):
                    not_ours.append('%s.%s' % (module.__name__.rsplit('.', 2)[-1], name))
    assert not_ours == [], 'exceptions an operation would report as a bug, with a traceback: %s' % not_ours
    # The walk reaches every layer (so this cannot pass by finding nothing).
    for name in ('DeferredError', 'InputError', 'RecordError', 'SelectionError', 'QuotaError', 'TombstoneError',
                 'LockTimeout', 'CinderUnavailable', 'HypervisorError', 'OperationError'):
        assert name in defined, name
