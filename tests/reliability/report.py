# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the reliability, bad-input and security trials and rewrite the table in docs/reliability.md.

    .venv/bin/python tests/reliability/report.py              # run everything, then rewrite the table
    .venv/bin/python tests/reliability/report.py --table-only # rewrite the table from the last run's records
    .venv/bin/python tests/reliability/report.py -- -k races  # extra pytest arguments after --

Each test records what it tried and what it saw (build/reliability/<suite>.jsonl,
see trials.py); this script only runs them and turns those records into the
table. The run needs the test bed (tests/testbed/hypervisor.sh up, cinder.sh up)
and root; it restarts libvirtd and stops Cinder for a few seconds at the end.
"""

import argparse
import datetime
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import trials  # noqa: E402

DOC = os.path.join(ROOT, 'docs', 'reliability.md')
START, END = '<!-- reliability-table:start -->', '<!-- reliability-table:end -->'
TESTS = ['tests/reliability', 'tests/integration/test_bad_input.py', 'tests/integration/test_security.py']
TITLES = [
    ('faults', 'Module process killed (SIGKILL) at a step, then one re-run'),
    ('daemons', 'libvirtd restarted, Cinder stopped'),
    ('state_dir', 'state_dir not writable or full'),
    ('races', 'Races: two ansible-playbook runs started together'),
    ('bad_input', 'Bad input (nothing changed unless said)'),
    ('security', 'Security'),
]


def run(pytest_args):
    for suite in trials.SUITES:
        path = os.path.join(trials.OUT, '%s.jsonl' % suite)
        if os.path.exists(path):
            os.unlink(path)
    began = time.monotonic()
    cmd = [sys.executable, '-m', 'pytest', '-q', '-p', 'no:cacheprovider', '-p', 'no:warnings'] + TESTS + pytest_args
    print('+ ' + ' '.join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    return rc, time.monotonic() - began


def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def table(seconds=None, rc=None):
    lines = []
    total = passed = 0
    for suite, title in TITLES:
        rows = sorted(trials.read(suite), key=lambda r: (999 if r.get('order') is None else r['order'], r.get('at')))
        if not rows:
            continue
        lines += ['', '### %s' % title, '', '| fault or input | trials | outcome |', '|---|---:|---|']
        for row in rows:
            total += 1
            passed += bool(row['passed'])
            mark = '' if row['passed'] else '**FAILED** '
            lines.append('| %s | %s | %s%s |' % (_cell(row['fault']), row['trials'], mark, _cell(row['outcome'])))
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    head = ['', '%d of %d cases as expected; generated %s by `tests/reliability/report.py`%s.' % (
        passed, total, when, ' after a %d min run' % round(seconds / 60.0) if seconds else '')]
    if rc not in (None, 0):
        head.append('')
        head.append('The test run exited with status %s: see the FAILED rows.' % rc)
    return '\n'.join(head + lines) + '\n'


def write(text):
    with open(DOC) as handle:
        doc = handle.read()
    if START not in doc or END not in doc:
        raise SystemExit('%s has no %s ... %s markers' % (DOC, START, END))
    before, rest = doc.split(START, 1)
    dummy, after = rest.split(END, 1)
    with open(DOC, 'w') as handle:
        handle.write(before + START + '\n' + text + END + after)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n', maxsplit=1)[0])
    parser.add_argument('--table-only', action='store_true', help='only rewrite the table from the last records')
    parser.add_argument('pytest_args', nargs='*', help='extra pytest arguments (after --)')
    args = parser.parse_args()
    rc = seconds = None
    if not args.table_only:
        rc, seconds = run(args.pytest_args)
    write(table(seconds, rc))
    print('rewrote the table in %s' % os.path.relpath(DOC, ROOT))
    return rc or 0


if __name__ == '__main__':
    sys.exit(main())
