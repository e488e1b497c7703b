# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The one base exception of the collection's own refusals and failures.

Every error the collection raises on purpose (bad input, a refused
operation, a hypervisor or Cinder that does not answer, a state_dir that
cannot be used) is a DeferredError whose message is meant for the operator.
Anything else that escapes an operation is a bug: its result carries the
traceback.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy


class DeferredError(Exception):
    """A refusal or failure worded for the operator.

    ``result`` holds extra keys for the task result (for example the quota
    figures of a refused restore).
    """

    def __init__(self, msg='', **result):
        super(DeferredError, self).__init__(msg)
        self.result = result


class StateDirError(DeferredError):
    """The state directory cannot be used safely; nothing was changed."""


class InputError(DeferredError):
    """An option that cannot be used, refused before anything changed (the module base says so, through unchanged)."""


NOTHING_CHANGED = 'nothing was changed'


def unchanged(exc):
    """``exc`` with "; nothing was changed" after its message (the one place that says it), unless it says so already."""
    if NOTHING_CHANGED in str(exc):
        return exc
    # A copy of the same class, so callers still catch what they caught (SelectionError, StateDirError, QuotaError).
    said = copy.copy(exc)
    said.args = ('%s; %s' % (exc, NOTHING_CHANGED),)
    return said
