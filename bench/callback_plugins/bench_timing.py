# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Print the run's task timings as one small JSON document: per task, not per result (for runs over thousands of hosts)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = '''
name: bench_timing
type: stdout
short_description: task timings of a large run as one small JSON document
description:
  - Per play and task name, the first start, the last result and how many hosts were ok, failed, skipped or
    unreachable, plus the first few failure messages, the sweep results' reclaimed count and how many were handed a fleet slice; printed as JSON at the end.
  - Unlike bench_json it keeps no host's result, so its own cost does not grow with the size of the results.
'''

import json
import time

from ansible.plugins.callback import CallbackBase


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = 'stdout'
    CALLBACK_NAME = 'bench_timing'

    def __init__(self):
        super(CallbackModule, self).__init__()
        self.started = time.time()
        self.plays = []
        self.failures = []
        self.sweeps = {'hosts': 0, 'reclaimed': 0, 'fleet_given': 0}

    def v2_playbook_on_play_start(self, play):
        self.plays.append({'name': play.get_name(), 'start': time.time(), 'tasks': {}})

    def _task(self, name):
        tasks = self.plays[-1]['tasks']
        if name not in tasks:
            tasks[name] = {'start': time.time(), 'end': None, 'ok': 0, 'failed': 0, 'skipped': 0, 'unreachable': 0}
        return tasks[name]

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._task(task.get_name())

    def _record(self, result, kind):
        task = self._task(result._task.get_name())
        task[kind] += 1
        task['end'] = time.time()
        res = result._result
        if kind in ('failed', 'unreachable') and len(self.failures) < 5:
            self.failures.append({'task': result._task.get_name(), 'host': result._host.get_name(),
                                  'msg': str(res.get('msg'))[:500],
                                  'ignored': bool(result._task.ignore_errors or result._task.ignore_unreachable)})
        if kind == 'ok' and isinstance(res.get('reclaimed'), list) and 'summary' in res:
            self.sweeps['hosts'] += 1
            self.sweeps['reclaimed'] += len(res['reclaimed'])
            self.sweeps['fleet_given'] += 1 if (res.get('fleet') or {}).get('given') else 0

    def v2_runner_on_ok(self, result):
        self._record(result, 'ok')

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._record(result, 'failed')

    def v2_runner_on_skipped(self, result):
        self._record(result, 'skipped')

    def v2_runner_on_unreachable(self, result):
        self._record(result, 'unreachable')

    def v2_playbook_on_stats(self, stats):
        hosts = sorted(stats.processed.keys())
        failed = sorted(h for h in hosts if stats.summarize(h)['failures'] or stats.summarize(h)['unreachable'])
        self._display.display(json.dumps({'start': self.started, 'end': time.time(), 'plays': self.plays,
                                          'hosts': len(hosts), 'failed_hosts': failed[:10],
                                          'failed_count': len(failed), 'failures': self.failures,
                                          'sweeps': self.sweeps}, default=str))
