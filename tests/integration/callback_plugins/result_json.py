# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the whole run as one JSON document (plays -> tasks -> hosts -> result), for the tests to read.

ansible-core ships no JSON stdout callback (ansible.posix has one), so the tests carry this small one.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = '''
name: result_json
type: stdout
short_description: the run as one JSON document
description: Prints plays, tasks and per-host results as JSON at the end of the run.
'''

import json

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'result_json'

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.plays = []
        self.stats = {}

    def v2_playbook_on_play_start(self, play):
        self.plays.append({'name': play.get_name(), 'tasks': []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        # Under the free strategy a task starts once per host, and results arrive while other tasks run:
        # results go to their own task's entry, found by its uuid.
        if not any(t['uuid'] == task._uuid for t in self.plays[-1]['tasks']):
            self.plays[-1]['tasks'].append({'name': task.get_name(), 'uuid': task._uuid, 'hosts': {}})

    def _record(self, result, **extra):
        data = dict(result._result)
        data.update(extra)
        tasks = self.plays[-1]['tasks']
        entry = next((t for t in reversed(tasks) if t['uuid'] == result._task._uuid), None)
        if entry is None:
            entry = {'name': result._task.get_name(), 'uuid': result._task._uuid, 'hosts': {}}
            tasks.append(entry)
        entry['hosts'][result._host.get_name()] = data

    def v2_runner_on_ok(self, result):
        self._record(result)

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, failed=True)

    def v2_runner_on_skipped(self, result):
        self._record(result, skipped=True)

    def v2_runner_on_unreachable(self, result):
        self._record(result, unreachable=True, failed=True)

    def v2_runner_item_on_ok(self, result):
        pass

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        summary = dict((h, stats.summarize(h)) for h in hosts)
        self._display.display(json.dumps({'plays': self.plays, 'stats': summary}, default=str))
