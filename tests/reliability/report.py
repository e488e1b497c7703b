# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Run the reliability, bad-input and security trials and rewrite the table in docs/reliability.md.

    .venv/bin/python tests/reliability/report.py              # run everything, then rewrite the table
    .venv/bin/python tests/reliability/report.py --table-only # rewrite the table from the last run's records
    .venv/bin/python tests/reliability/report.py -- -k races  # extra pytest arguments after --

Each test records what it tried and what it saw (build/reliability/<suite>.jsonl,
see trials.py); this script only runs them and turns those records into the
table. A test that was skipped recorded nothing, so the script also reads
pytest's own JUnit report of the run (build/reliability/junit.xml): every
skipped test is counted as a case that did not run and listed with its reason,
and the headline never says "N of N" over cases that did not run. The run needs the test bed (tests/testbed/hypervisor.sh up, cinder.sh up)
and root; it restarts libvirtd and stops Cinder for a few seconds at the end.
"""

import argparse
import datetime
import os
import subprocess
import sys
import time
import xml.etree.ElementTree as ET

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import trials  # noqa: E402

DOC = os.path.join(ROOT, 'docs', 'reliability.md')
JUNIT = os.path.join(trials.OUT, 'junit.xml')
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
    if os.path.exists(JUNIT):
        os.unlink(JUNIT)
    began = time.monotonic()
    cmd = [sys.executable, '-m', 'pytest', '-q', '-rs', '-p', 'no:cacheprovider', '-p', 'no:warnings',
           '--junitxml', JUNIT] + TESTS + pytest_args
    print('+ ' + ' '.join(cmd), flush=True)
    rc = subprocess.call(cmd, cwd=ROOT)
    return rc, time.monotonic() - began


def _cell(text):
    return str(text).replace('|', '\\|').replace('\n', ' ')


def skipped_tests(path=None):
    """[(test id, reason)] of the tests pytest skipped in the last run; None when there is no report of it."""
    path = path or JUNIT
    if not os.path.exists(path):
        return None
    found = []
    for case in ET.parse(path).getroot().iter('testcase'):
        skip = case.find('skipped')
        if skip is not None:
            name = '%s::%s' % (case.get('classname'), case.get('name'))
            found.append((name, (skip.get('message') or skip.text or '').strip()))
    return found


def table(seconds=None, rc=None, skipped=None):
    """The markdown table; ``skipped`` is skipped_tests() of the run (None: unknown, said so in the headline)."""
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
    # A skipped test recorded no row: it is a case that did not run, counted in the total and never as expected.
    total += len(skipped or [])
    if skipped:
        lines += ['', '### Skipped: did not run', '', '| test | reason |', '|---|---|']
        lines += ['| %s | %s |' % (_cell(name), _cell(why)) for name, why in skipped]
    when = datetime.datetime.now(datetime.timezone.utc).strftime('%Y-%m-%d %H:%M UTC')
    if skipped is None:
        ran = 'skipped tests unknown (no JUnit report of the run)'
    else:
        ran = '%d skipped (did not run)' % len(skipped)
    head = ['', '%d of %d cases as expected, %s; generated %s by `tests/reliability/report.py`%s.' % (
        passed, total, ran, when, ' after a %d min run' % round(seconds / 60.0) if seconds else '')]
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
    write(table(seconds, rc, skipped_tests()))
    print('rewrote the table in %s' % os.path.relpath(DOC, ROOT))
    return rc or 0


if __name__ == '__main__':
    sys.exit(main())
