# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each reliability test records what it tried and what it saw, one JSON line per case.

Lines go to build/reliability/<suite>.jsonl; tests/reliability/report.py reads
them and rewrites the table in docs/reliability.md. A case that fails records
its failure too, so the table never shows a pass that did not happen.
"""

import json
import os
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.environ.get('DEFERRED_RELIABILITY_OUT', os.path.join(ROOT, 'build', 'reliability'))
SUITES = ('faults', 'daemons', 'state_dir', 'races', 'bad_input', 'security')


class Case(object):
    """``with case('faults', 'soft delete killed after_start') as c: ...; c.outcome = '...'``"""

    def __init__(self, suite, fault, trials=1, order=None):
        self.suite = suite
        self.fault = fault
        self.trials = trials
        self.order = order
        self.outcome = None
        self.details = {}
        self.started = None

    def __enter__(self):
        self.started = time.monotonic()
        return self

    def __exit__(self, exc_type, exc, tb):
        passed = exc_type is None
        if passed:
            outcome = self.outcome or 'as expected'
        else:
            first = (str(exc) or exc_type.__name__).strip().splitlines()
            outcome = 'FAILED: %s' % (first[0][:300] if first else exc_type.__name__)
        write(self.suite, {
            'fault': self.fault, 'trials': self.trials, 'outcome': outcome, 'passed': passed,
            'details': self.details, 'order': self.order,
            'seconds': round(time.monotonic() - self.started, 1),
        })
        return False


def case(suite, fault, trials=1, order=None):
    return Case(suite, fault, trials, order)


def write(suite, item):
    os.makedirs(OUT, exist_ok=True)
    item = dict(item, suite=suite, at=time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime()))
    with open(os.path.join(OUT, '%s.jsonl' % suite), 'a') as handle:
        handle.write(json.dumps(item, sort_keys=True, default=str) + '\n')


def read(suite):
    path = os.path.join(OUT, '%s.jsonl' % suite)
    if not os.path.exists(path):
        return []
    with open(path) as handle:
        return [json.loads(line) for line in handle if line.strip()]
