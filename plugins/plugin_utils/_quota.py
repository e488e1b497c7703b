# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Quota on the control node: a batch of restores checked against per-project limits, and the lock that serialises it.

quota_check finds the named domains with fleet_locate and checks restoring
them against the limits with fleet usage, by the same code vm_restore uses
(module_utils/_quota.py), so a role refuses a batch before anything changes;
quota_lock_name names the file that keeps two such checks of one project from
interleaving.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import hashlib
import re

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota_rules
from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_state import fleet_locate
from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import without_gc_pauses

RESOURCES = quota_rules.RESOURCES


@without_gc_pauses
def quota_check(fleet, limits, names, project=None, index=None):
    """Check restoring the named domains against per-project ``limits`` with fleet usage (soft-deleted excluded).

    Returns fits, over (each with project, resource, limit, usage, request),
    message, the request and usage per project, and the plan: by_host (UUIDs
    to restore on each host) and noop (named domains that are not soft-deleted).
    """
    located = fleet_locate(fleet, names, project, index)
    limits = dict(limits or {})
    try:
        quota_rules.validate_limits(limits)
    except quota_rules.QuotaError as exc:
        raise AnsibleFilterError('%s; nothing was changed' % exc)
    restore, noop = [], []
    for item in located['instances']:
        (restore if item.get('vm_state') == 'soft_deleted' else noop).append(item)
    request = quota_rules.request_of(restore)
    usage = fleet.get('usage') or {}
    over = quota_rules.check(limits, usage, request)
    by_host = {}
    for item in restore:
        by_host.setdefault(item['host'], []).append(item['uuid'])
    projects = sorted(request, key=lambda p: p or '')
    return {
        'fits': not over,
        'over': over,
        'message': quota_rules.describe(over) + '; nothing was changed' if over else
        'the batch fits: %s' % ('; '.join('project %s requests %s' % (
            p, ', '.join('%s %d' % (r, request[p][r]) for r in RESOURCES)) for p in projects) or 'nothing to restore'),
        'request': request,
        'usage': dict((p, usage.get(p) or dict((r, 0) for r in RESOURCES)) for p in projects),
        'limits': dict((p, quota_rules.limits_for(limits, p)) for p in projects),
        'restore': restore,
        'noop': noop,
        'by_host': by_host,
    }


def quota_lock_name(project):
    """The file name of a project's quota lock: readable, and distinct for projects a path could not tell apart."""
    text = to_text(project) if project else 'none'
    readable = re.sub(r'[^A-Za-z0-9._-]', '_', text)[:64]
    return 'quota-%s-%s.lock' % (readable, hashlib.sha1(text.encode('utf-8')).hexdigest()[:8])
