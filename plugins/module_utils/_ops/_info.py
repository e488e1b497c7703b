# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_info: the lifecycle record of each selected domain (and of terminated ones), with per-project usage."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _options as options_
from ansible_collections.deferred.libvirt.plugins.module_utils import _pools
from ansible_collections.deferred.libvirt.plugins.module_utils import _selection
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import unchanged
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _termination as termination

ARGUMENT_SPEC = options_.spec(options_.Selection, options_.Info)


class InfoOptions(object):
    def __init__(self, selection, include_deleted=False, fields=None, facts=True):
        self.selection = selection
        self.include_deleted = include_deleted
        self.fields = fields
        self.facts = facts


def options(params, no_log_values=None):
    own = options_.Info.read(params)
    return InfoOptions(options_.Selection.read(params), own.include_deleted, own.fields, own.facts)


def _select(items, selection):
    """(selected items, None), or ([], what the query gives) for a query that gives no domains but a projection
    (``[].[name, reclaim_at]``): vm_info changes nothing, so any JMESPath result over the project's records is
    returned as it is; the modules that change domains still take only records, names or UUIDs."""
    if selection.query is None:
        return engine.select(items, selection), None
    scoped = engine.select(items, options_.Selection(names=None, query=None, project=selection.project))
    views = [i.view for i in scoped]
    try:
        result = _selection.query_result(views, selection.query)
    except _selection.SelectionError as exc:
        raise unchanged(exc)
    try:
        chosen = _selection.domains_of(result, views, selection.query)
    except _selection.SelectionError as exc:
        if _names_a_domain_out_of_scope(result, items, scoped):
            # A literal or a forged record naming another project's domain is a selection, refused as the changing
            # modules refuse it, never answered as a projection (rule 8).
            raise unchanged(exc)
        return [], result
    by_uuid = dict((i.uuid, i) for i in scoped)
    return [by_uuid[v['uuid']] for v in chosen], None


def _names_a_domain_out_of_scope(result, items, scoped):
    """Whether a query's result names (by name or UUID, or as a record's uuid) a domain of this host that the
    project scope leaves out."""
    inside = set(i.uuid for i in scoped)
    outside = set()
    for item in items:
        if item.uuid not in inside:
            outside.update([item.uuid, item.view.get('name')])
    outside.discard(None)
    values = result if isinstance(result, list) else [result]
    for value in values:
        key = value.get('uuid') if isinstance(value, dict) else value
        if isinstance(key, str) and key in outside:
            return True
    return False


def run(ctx, opts):
    """The records and usage, as the task result and as facts; changes nothing."""
    items = engine.snapshot(ctx)
    if opts.include_deleted:
        ctx.open_state(create=False)
        items = termination.with_terminated(ctx, items, every=True, mine_only=False)
    selected, projection = _select(items, opts.selection)
    # Each live disk's backing chain (rule 10: the fleet index keeps every file a chain reaches), read for the selected
    # domains only, each pool looked up once; not when the fields asked for leave the disks out.
    if opts.fields is None or set(opts.fields) & set(['disks', 'disk_bytes']):
        pools = _pools.Pools(ctx.conn)
        for item in selected:
            if item.domain is not None:
                _views.add_backing_chains(item.view, pools.path_offline)
    instances = [i.view for i in selected]
    usage = _views.usage(instances)
    if opts.fields is not None:
        instances = [_views.project_fields(v, opts.fields) for v in instances]
    # Which hypervisor answered: the fleet index matches records' host against it (rule 9).
    result = {'changed': False, 'instances': instances, 'usage': usage, 'hypervisor': hv.host_identity(ctx.conn)}
    if opts.facts:
        # A second copy of every record in a registered result: a caller that registers it asks for none.
        result['ansible_facts'] = dict(deferred_libvirt_instances=instances, deferred_libvirt_usage=usage)
    if projection is not None:
        result['query_result'] = projection
    return result
