# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The fleet_slices action: build the fleet index once on the control node and hand each host its slice in a file.

Its documentation is plugins/modules/fleet_slices.py. It reads each fleet host's result once
(``hostvars[host][var]``), builds the index with plugin_utils/_fleet_index.py, writes one slice per host
(plugin_utils/_fleet_handover.py) and returns only small things, so no per-host task has to reference the index.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.parsing.convert_bool import boolean
from ansible.plugins.action import ActionBase

from ansible_collections.deferred.libvirt.plugins.plugin_utils import _fleet_handover as handover
from ansible_collections.deferred.libvirt.plugins.plugin_utils._unsafe import unsafe


class ActionModule(ActionBase):

    TRANSFERS_FILES = False
    _VALID_ARGS = frozenset(('hosts', 'var', 'run', 'fleet', 'dest', 'index', 'remove'))

    def run(self, tmp=None, task_vars=None):
        result = super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        if args.get('remove'):
            try:
                result['removed'] = handover.remove_slices(to_text(args['remove']))
            except handover.HandoverError as exc:
                result.update(failed=True, msg='fleet_slices: %s' % to_text(exc))
            result['changed'] = False
            return result
        hosts = args.get('hosts')
        if isinstance(hosts, (str, bytes)) or not isinstance(hosts, (list, tuple)) or not hosts:
            result.update(failed=True, msg='fleet_slices: hosts must be a non-empty list of inventory hosts (the declared '
                                           'fleet); nothing was changed')
            return result
        var = to_text(args.get('var') or 'state_facts_vm_info')
        run = args.get('run')
        try:
            index = handover.build((task_vars or {}).get('hostvars') or {}, [to_text(h) for h in hosts], var,
                                   run=None if run in (None, '') else to_text(run), fleet=args.get('fleet') or None)
            directory = handover.write_slices(index, to_text(args['dest']) if args.get('dest') else None)
        except (handover.HandoverError, OSError, IOError) as exc:
            result.update(failed=True, msg='fleet_slices: %s' % to_text(exc))
            return result
        summary = handover.summary(index, directory)
        if boolean(args.get('index', False), strict=False):
            summary['index'] = index  # for a play that needs the whole index once (fleet_locate), never per host
        result.update(unsafe(summary))
        result['changed'] = False
        return result
