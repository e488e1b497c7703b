# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which domains a task means: names or UUIDs (exact, refused when ambiguous), a JMESPath query, a project scope.

Works on views (``_views.describe``), the same for a hypervisor's domains and for a fleet's: the control node's
``fleet_locate`` resolves names with ``resolve`` too.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

try:
    import jmespath
    HAS_JMESPATH = True
except ImportError:
    jmespath = None
    HAS_JMESPATH = False

from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

# The most names one call takes; more is a runaway variable, not a request.
MAX_NAMES = 10000


class SelectionError(DeferredError):
    """The selection names something that is not there or not the caller's; nothing was changed."""


def _project_of(view):
    return view.get('project')


def select(views, names=None, query=None, project=None, what='domain'):
    """Pick the views named by ``names`` (names or UUIDs) or matched by ``query``, within ``project``.

    A named domain that does not exist, or that belongs to another project, is
    an error. Returns views in the order named (or the query's order).
    """
    if names is not None:
        if len(names) == 0:
            raise SelectionError('name is an empty list: name at least one domain, or use query')
        if len(names) > MAX_NAMES:
            raise SelectionError('name lists %d domains; at most %d are taken in one call' % (len(names), MAX_NAMES))
        # Names match exactly, as libvirt's do; only UUIDs ignore case.
        by_name, by_uuid = {}, {}
        for view in views:
            by_name.setdefault(view['name'], view)
            if view.get('uuid'):
                by_uuid.setdefault(view['uuid'].lower(), view)
        chosen, missing, foreign, ambiguous, seen = [], [], [], [], set()
        for raw in names:
            key = str(raw).strip()
            view, doubt = resolve(key, by_name, by_uuid)
            if doubt:
                ambiguous.append(doubt)
                continue
            if view is None:
                missing.append(key)
                continue
            if project is not None and _project_of(view) != project:
                foreign.append('%s (project %s)' % (view['name'], _project_of(view) or 'none'))
                continue
            if view['uuid'] not in seen:
                seen.add(view['uuid'])
                chosen.append(view)
        problems = []
        if ambiguous:
            problems.append('ambiguous: %s; name the domain by its exact UUID instead'
                            % '; '.join(_shown(ambiguous, quote=False)))
        if missing:
            problems.append('no %s named %s on this hypervisor' % (what, ', '.join(_shown(missing))))
        if foreign:
            problems.append('not in project %s: %s' % (project, ', '.join(_shown(foreign))))
        if problems:
            raise SelectionError('; '.join(problems))
        return chosen
    scoped = [v for v in views if project is None or _project_of(v) == project]
    if query is None:
        return scoped
    return run_query(scoped, query)


def resolve(key, by_name, by_uuid):
    """(view, None) for the domain ``key`` names, (None, why) when it names two, (None, None) when none.

    One host's domains have unique names and UUIDs: ``by_name`` and ``by_uuid`` (lowercase) map each to its view.
    The rules are ``matches``'.
    """
    named = by_name.get(key)
    owner = by_uuid.get(key.lower())
    views, doubt = matches(key, [named] if named is not None else [], [owner] if owner is not None else [])
    if doubt:
        return None, '%s is %s' % (_shown([key])[0], doubt)
    return (views[0] if views else None), None


def matches(key, named, owners):
    """(views, None): every view ``key`` names; ([], why) when it names two domains in two ways.

    ``named`` are the views named ``key`` exactly (names match exactly, as libvirt's do), ``owners`` those whose
    UUID is ``key`` when letter case is ignored. A key that is a domain's UUID exactly as libvirt writes it selects
    that domain, even when another domain is named that text: a name never takes a UUID over. A key that is one
    domain's name and, only when letter case is ignored, another's UUID names either: it is refused. On one host
    that leaves one view at most; over a fleet several views (copies of one domain, or namesakes on several
    hosts) are the caller's to tell apart.
    """
    if any(v.get('uuid') == key for v in owners):
        return list(owners), None
    lowered = key.lower()
    others = [v for v in named if (v.get('uuid') or '').lower() != lowered]
    if owners and others:
        return [], ('the name of one domain (UUID %s) and the UUID of another (named %s)'
                    % (others[0].get('uuid'), _shown([owners[0].get('name')])[0]))
    return list(named) + [v for v in owners if not any(v is n for n in named)], None


def _shown(items, most=10, quote=True):
    # Quoted when it would otherwise read wrong: empty, or with characters a shell or an XML reader would eat.
    if quote:
        items = [repr(i) if not i or any(c in i for c in '\n\r\t<>&;|$`') else i for i in items]
    if len(items) > most:
        return items[:most] + ['and %d more' % (len(items) - most)]
    return items


def run_query(views, query):
    """Apply a JMESPath expression to the list of records; it must yield records, names or UUIDs."""
    return domains_of(query_result(views, query), views, query)


def query_result(views, query):
    """What the JMESPath expression ``query`` gives over ``views``, as is (a pure function of the records)."""
    if not HAS_JMESPATH:
        raise SelectionError('query needs the jmespath Python package (pip install jmespath)')
    try:
        return jmespath.search(query, views)
    except jmespath.exceptions.JMESPathError as exc:
        raise SelectionError('query %r is not a valid JMESPath expression: %s' % (query, exc))


def domains_of(result, views, query):
    """The views a query's ``result`` names (records, names or UUIDs); SelectionError for anything else."""
    if result is None:
        return []
    if isinstance(result, dict):
        result = [result]
    if not isinstance(result, list):
        raise SelectionError('query %r gives %s, not a list of domains' % (query, type(result).__name__))
    by_uuid = dict((v['uuid'], v) for v in views)
    by_name = dict((v['name'], v) for v in views)
    chosen, seen = [], set()
    for item in result:
        view = None
        if isinstance(item, dict) and item.get('uuid') in by_uuid:
            view = by_uuid[item['uuid']]
        elif isinstance(item, str):
            view = by_uuid.get(item) or by_name.get(item)
        if view is None:
            raise SelectionError('query %r gives %r, which is not a domain record, name or UUID (project scope applies)'
                                 % (query, item if not isinstance(item, dict) else 'a record without a known uuid'))
        if view['uuid'] not in seen:
            seen.add(view['uuid'])
            chosen.append(view)
    return chosen
