# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_terminate (force delete): the shared terminate work (``_termination``) for every selected domain.

A named terminated domain selects its tombstone, so a re-run is a no-op (or
finishes the Cinder work left pending).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options_
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _termination as termination

ARGUMENT_SPEC = options_.spec(options_.Selection, options_.Shutdown, *termination.GROUPS)


class TerminateOptions(object):
    def __init__(self, selection, termination_opts):
        self.selection = selection
        self.terminate = termination_opts


def options(params, no_log_values=None):
    """TerminateOptions from the task's options; DeferredError naming the option when one cannot be read."""
    return TerminateOptions(options_.Selection.read(params), termination.read(params, no_log_values))


def run(ctx, opts):
    """vm_terminate: terminate every selected domain; a named terminated domain is a no-op or finishes its pending work."""
    items = engine.snapshot(ctx)
    fleet_view = termination.fleet_view(ctx, opts.terminate)
    index = storage.Index(ctx.conn, [i.domain for i in items], fleet_view)
    # Names of terminated domains select their tombstone, so a re-run is a no-op (or finishes pending work).
    items = termination.with_terminated(ctx, items, names=opts.selection.names)
    chosen = engine.select(items, opts.selection)

    def work(item):
        if item.domain is None:
            return termination.answer_for_terminated(ctx, item.tombstone, opts.terminate, fleet_view)
        return termination.terminate(ctx, item.domain, opts.terminate, index)

    return engine.outcome(engine.run_each(ctx, chosen, work), 'vm_terminate')
