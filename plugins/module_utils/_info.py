# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_info: the lifecycle record of each selected domain (and of terminated ones), with per-project usage."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _lifecycle as lc
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones

ARGS = dict(include_deleted=dict(type='bool', default=False))
ARGUMENT_SPEC = lc.spec(lc.SELECTION_ARGS, ARGS)


def options(params, no_log_values=None):
    return bool(params.get('include_deleted'))


def run(ctx, include_deleted):
    """The records and usage, as the task result and as facts; changes nothing."""
    pairs = lc.snapshot(ctx)
    if include_deleted:
        pairs, dummy = tombstones.join(ctx.open_state(create=False), pairs, every=True)
    instances = [v for dummy, v in lc.select_from_task(ctx, pairs)]
    usage = _views.usage(instances)
    # Which hypervisor answered: the fleet index matches records' host against it (rule 9).
    return {'changed': False, 'instances': instances, 'usage': usage, 'hypervisor': hv.host_identity(ctx.conn),
            'ansible_facts': dict(deferred_libvirt_instances=instances, deferred_libvirt_usage=usage)}
