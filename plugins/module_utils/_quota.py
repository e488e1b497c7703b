# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Per-project quota: limits, usage and a batch of requests, checked before anything changes (Nova's 403)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

RESOURCES = ('instances', 'cores', 'ram_mb')
UNLIMITED = -1


class QuotaError(DeferredError):
    """A batch does not fit; the message names project, resource, limit, usage and request."""


def validate_limits(limits):
    """Raise QuotaError on limits that are not ``{project: {resource: int >= -1}}``."""
    if not isinstance(limits, dict):
        raise QuotaError('quota must be a dict of project -> limits, got %s' % type(limits).__name__)
    for project, entry in limits.items():
        if not isinstance(entry, dict):
            raise QuotaError('quota for project %s must be a dict of limits, got %s' % (project, type(entry).__name__))
        for resource, value in entry.items():
            if resource not in RESOURCES:
                raise QuotaError('quota for project %s: unknown resource %s (known: %s)'
                                 % (project, resource, ', '.join(RESOURCES)))
            if isinstance(value, bool) or not isinstance(value, int) or value < UNLIMITED:
                raise QuotaError('quota for project %s: %s must be a whole number, -1 for unlimited; got %r'
                                 % (project, resource, value))


def limits_for(limits, project):
    """The project's own entry if it is listed, else the ``default`` entry; a resource left out is unlimited."""
    entry = limits.get(project) if project in limits else limits.get('default')
    entry = entry or {}
    return dict((r, entry.get(r, UNLIMITED)) for r in RESOURCES)


def request_of(instances):
    """Per project, what restoring ``instances`` (dicts with project, vcpus, memory_mb) would add."""
    wanted = {}
    for item in instances:
        entry = wanted.setdefault(item.get('project'), dict((r, 0) for r in RESOURCES))
        entry['instances'] += 1
        entry['cores'] += item.get('vcpus') or 0
        entry['ram_mb'] += item.get('memory_mb') or 0
    return wanted


def usage_of(usage, request):
    """The usage of the projects in ``request`` only (zero where none is known)."""
    return dict((project, dict((r, int(((usage or {}).get(project) or {}).get(r) or 0)) for r in RESOURCES))
                for project in request)


def check(limits, usage, request):
    """Return the list of overruns (dicts); empty when the whole batch fits."""
    validate_limits(limits)
    over = []
    for project in sorted(request, key=lambda p: p or ''):
        mine = limits_for(limits, project)
        used = (usage or {}).get(project) or {}
        for resource in RESOURCES:
            limit = mine[resource]
            if limit == UNLIMITED:
                continue
            have = int(used.get(resource) or 0)
            want = request[project][resource]
            if have + want > limit:
                over.append({'project': project, 'resource': resource, 'limit': limit, 'usage': have, 'request': want})
    return over


def describe(over):
    """One sentence per overrun, naming project, resource, limit, usage and request."""
    return '; '.join('project %s is over quota for %s: limit %d, usage %d, request %d'
                     % (o['project'] if o['project'] is not None else '(none)', o['resource'], o['limit'], o['usage'],
                        o['request']) for o in over)
