# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the run as one JSON document with wall-clock times per task and host, for the benchmarks to read."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = '''
name: bench_json
type: stdout
short_description: the run as one JSON document, with task timings
description: Prints plays, tasks and per-host results, each with start and end times (time.time()), as JSON at the end.
'''

import json
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'bench_json'

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.started = time.time()
        self.plays = []

    def v2_playbook_on_play_start(self, play):
        self.plays.append({'name': play.get_name(), 'start': time.time(), 'tasks': []})

    def v2_playbook_on_task_start(self, task, is_conditional):
        self.plays[-1]['tasks'].append({'name': task.get_name(), 'start': time.time(), 'hosts': {}})

    def v2_runner_on_start(self, host, task):
        tasks = self.plays[-1]['tasks'] if self.plays else []
        if tasks:
            tasks[-1].setdefault('host_start', {})[host.get_name()] = time.time()

    def _record(self, result, **extra):
        data = dict(result._result)
        data.update(extra)
        data['_end'] = time.time()
        self.plays[-1]['tasks'][-1]['hosts'][result._host.get_name()] = data

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
        self._display.display(json.dumps({'start': self.started, 'end': time.time(), 'plays': self.plays,
                                          'stats': summary}, default=str))
