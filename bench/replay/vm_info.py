# -*- coding: utf-8 -*-
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Benchmark 9 only: vm_info replayed (bench/hosts_replay.py), nothing runs on the host. Never part of the collection."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys

from ansible.plugins.action import ActionBase

sys.path.insert(0, os.environ['BENCH_DIR'])
import hosts_replay  # noqa: E402


class ActionModule(ActionBase):
    def run(self, tmp=None, task_vars=None):
        super(ActionModule, self).run(tmp, task_vars)
        args = self._task.args
        return hosts_replay.vm_info(task_vars['bench_host_index'], args.get('fields'), args.get('facts', True))
