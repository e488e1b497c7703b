# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The restore onto another host, checked on the control node: does the target see every disk, as the same file?

restore_move_plan lists, for the located domains, the disks each would take
along and the (host, path) pairs to stat on the source and on the target;
restore_move_check compares those stat results, so that a restore elsewhere is
refused before anything changes when the target would see a copy, another file
or nothing at a disk's path.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.errors import AnsibleFilterError
from ansible.module_utils.common.text.converters import to_text

from ansible_collections.deferred.libvirt.plugins.plugin_utils._hostvars import host_vars


def restore_move_plan(located, hostvars, target, result_var='state_facts_vm_info'):
    """What restoring the located domains on ``target`` moves: per domain on another host, its disk paths, and
    the (host, path) pairs to stat on both the source and the target before anything changes.

    ``located`` is fleet_locate's or quota_check's result (instances with their host). Returns ``moves``
    (host, name, uuid, paths), ``by_source`` (source host -> UUIDs), ``local`` (UUIDs already on the target) and
    ``stats`` (host, path, role: source or target).
    """
    target = to_text(target)
    if target not in (hostvars or {}):
        raise AnsibleFilterError('restore_host %s is no host of the inventory; nothing was changed' % target)
    plan = {'target': target, 'moves': [], 'by_source': {}, 'local': [], 'stats': []}
    for item in (located or {}).get('instances') or (located or {}).get('restore') or []:
        if item.get('vm_state') not in (None, 'soft_deleted'):
            continue
        if item['host'] == target:
            plan['local'].append(item['uuid'])
            continue
        result = host_vars(hostvars, item['host']).get(result_var) or {}
        views = [v for v in result.get('instances') or [] if (v.get('uuid') or '').lower() == item['uuid'].lower()]
        if not views:
            raise AnsibleFilterError('%s (%s) is not in the vm_info result of %s; nothing was changed'
                                     % (item.get('name'), item['uuid'], item['host']))
        paths = []
        for disk in views[0].get('disks') or []:
            # The disk, then every backing file of its chain where vm_info reports one: each must be the same file.
            for each in [disk] + list(disk.get('chain') or []):
                path = each.get('path') if isinstance(each, dict) else each
                if path and path not in paths:
                    paths.append(path)
        plan['moves'].append({'host': item['host'], 'name': item.get('name'), 'uuid': item['uuid'], 'paths': paths})
        plan['by_source'].setdefault(item['host'], []).append(item['uuid'])
        for path in paths:
            plan['stats'].append({'host': item['host'], 'path': path, 'role': 'source', 'uuid': item['uuid']})
            plan['stats'].append({'host': target, 'path': path, 'role': 'target', 'uuid': item['uuid']})
    return plan


def _stat_of(results, host, path):
    for result in results or []:
        item = result.get('item') or {}
        if item.get('host') == host and item.get('path') == path:
            if result.get('failed') or result.get('unreachable') or 'stat' not in result:
                return None, to_text(result.get('msg') or 'could not be read')
            return result['stat'], None
    return None, 'was not checked'


def restore_move_check(plan, stat_results):
    """Whether the target of ``plan`` sees every disk of every move as the same file its source does (the same
    inode, size and modification time: a copy, or another file at the same path, is not the same file).

    ``stat_results`` are the results of ansible.builtin.stat run on each of ``plan.stats`` (delegated to its host).
    Returns ok, problems (one per disk) and message (naming the disks and the target, ending in "nothing was
    changed" when not ok).
    """
    target = plan['target']
    problems = []
    for move in plan.get('moves') or []:
        for path in move['paths']:
            source, why_source = _stat_of(stat_results, move['host'], path)
            there, why_there = _stat_of(stat_results, target, path)
            what = '%s (disk of %s on %s)' % (path, move.get('name') or move['uuid'], move['host'])
            if source is None or not source.get('exists'):
                problems.append('%s: %s on %s itself' % (what, why_source or 'missing', move['host']))
            elif there is None:
                problems.append('%s: %s on %s' % (what, why_there, target))
            elif not there.get('exists'):
                problems.append('%s: missing on %s' % (what, target))
            else:
                differs = [k for k in ('inode', 'size', 'mtime') if source.get(k) != there.get(k)]
                if differs:
                    problems.append('%s: on %s it is another file (%s differ)' % (what, target, ', '.join(differs)))
    if problems:
        message = ('cannot restore onto %s: it does not see every disk as the same file: %s; nothing was changed'
                   % (target, '; '.join(problems)))
    else:
        message = 'restore onto %s: %d domain(s) move there; every disk is the same file on both hosts' % (
            target, len(plan.get('moves') or []))
    return {'ok': not problems, 'problems': problems, 'message': message}
