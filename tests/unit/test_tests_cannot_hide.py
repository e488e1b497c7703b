# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No test hides: on the test bed a test that cannot have what it needs fails, and any skip shows in the log."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ast
import os
import re
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Every way a pytest test can step aside instead of failing.
HIDING = re.compile(r'pytest\.skip\b|\.skipif\b|mark\.skip\b|importorskip|xfail')


def python_files(top):
    for base, dirs, files in os.walk(top):
        dirs[:] = [d for d in dirs if d not in ('__pycache__', 'output')]
        for name in files:
            if name.endswith('.py'):
                yield os.path.join(base, name)


def test_no_test_skips_or_expects_to_fail():
    # CI is the test bed and has every part (Cinder, tmpfs, qemu-img, libvirt-python): what is missing must fail.
    here = os.path.abspath(__file__)
    found = []
    for path in python_files(os.path.join(ROOT, 'tests')):
        if os.path.abspath(path) == here:
            continue
        with open(path) as handle:
            for number, line in enumerate(handle, 1):
                if HIDING.search(line):
                    found.append('%s:%d: %s' % (os.path.relpath(path, ROOT), number, line.strip()))
    assert not found, 'tests that skip instead of failing:\n' + '\n'.join(found)


# What a test writes on the line above a Popen whose output may go to a pipe, followed by why it cannot fill it: the
# test reads it line by line as it runs, or the command prints a line or two.
PIPE_REASON = '# pipe: '


def test_no_test_waits_for_a_command_whose_output_sits_in_an_unread_pipe():
    """A pipe holds 64 KiB; a command that prints more before it is read stops until it is, and a test that waits for
    it (or for another command first) hangs: the two racing restores of test_fleet_safety.py printed 60 KB and hung
    600 s beside another test. A background command's output goes to files (tests/testbed/together.py), unless the
    command prints a line or two, or the test reads it as it runs, and the line above says which ("# pipe: ...")."""
    found = []
    for path in python_files(os.path.join(ROOT, 'tests')):
        with open(path) as handle:
            source = handle.read()
        lines = source.splitlines()
        for node in ast.walk(ast.parse(source, path)):
            if not (isinstance(node, ast.Call) and getattr(node.func, 'attr', getattr(node.func, 'id', '')) == 'Popen'):
                continue
            piped = [k.arg for k in node.keywords if k.arg in ('stdout', 'stderr')
                     and isinstance(k.value, ast.Attribute) and k.value.attr == 'PIPE']
            if piped and PIPE_REASON not in lines[node.lineno - 2]:
                found.append('%s:%d: %s to a pipe' % (os.path.relpath(path, ROOT), node.lineno, ' and '.join(piped)))
    assert not found, 'commands whose output can fill a pipe nobody reads:\n' + '\n'.join(found)


def test_every_pytest_run_of_the_suite_lists_its_skips():
    with open(os.path.join(ROOT, 'scripts', 'test.sh')) as handle:
        calls = [line.strip() for line in handle if re.match(r'\s*run_pytest\s', line)]
    assert calls, 'scripts/test.sh runs no pytest stage'
    assert [c for c in calls if ' -rs ' not in c + ' '] == []
    with open(os.path.join(ROOT, 'tests', 'reliability', 'report.py')) as handle:
        assert "'-rs'" in handle.read()


def test_an_unknown_stage_is_refused_before_anything_runs():
    # A mistyped stage ("integartion") ran nothing and printed "all tests passed": a run that proved nothing passed.
    proc = subprocess.run(['bash', os.path.join(ROOT, 'scripts', 'test.sh'), 'unit', 'integartion'],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "no stage named 'integartion'" in proc.stderr and 'Nothing was run' in proc.stderr
    assert '==' not in proc.stdout and 'passed' not in proc.stdout


RECLAIM_MODULES = ('deferred.libvirt.vm_reclaim', 'vm_reclaim')


def _reclaim_names(tree):
    """The module-level names a test file binds to vm_reclaim's name (RC = ..., or SD, RC = (..., ...))."""
    names = set()
    for node in tree.body:
        if not isinstance(node, ast.Assign):
            continue
        for target in node.targets:
            pairs = []
            if isinstance(target, ast.Name):
                pairs = [(target, node.value)]
            elif isinstance(target, ast.Tuple) and isinstance(node.value, ast.Tuple):
                pairs = list(zip(target.elts, node.value.elts))
            names |= set(t.id for t, v in pairs if isinstance(t, ast.Name) and isinstance(v, ast.Constant)
                         and v.value in RECLAIM_MODULES)
    return names


def _is_reclaim(node, names):
    return (isinstance(node, ast.Name) and node.id in names) or (isinstance(node, ast.Constant)
                                                                 and node.value in RECLAIM_MODULES)


def _marked_exclusive(decorators):
    return any('exclusive' in ast.unparse(d) for d in decorators)


def test_no_test_beside_another_sweeps_the_whole_hypervisor():
    """Integration tests run several at a time (docs/testing.md) and every test's guests are on the same hypervisor: a
    vm_reclaim without a project reclaims the expired guests of the test beside it, which then fails (a sweep of
    test_state_dir_trust.py reclaimed the guests test_timer.py's cron was to sweep). A sweep in a test is of the test's
    own project, or a check mode one, or the test is marked exclusive and runs alone."""
    found = []
    for path in python_files(os.path.join(ROOT, 'tests', 'integration')):
        with open(path) as handle:
            tree = ast.parse(handle.read(), path)
        names = _reclaim_names(tree)
        if _marked_exclusive(n.value for n in tree.body if isinstance(n, ast.Assign)
                             and any(getattr(t, 'id', '') == 'pytestmark' for t in n.targets)):
            continue
        for test in tree.body:
            if not isinstance(test, ast.FunctionDef) or _marked_exclusive(test.decorator_list):
                continue
            for node in ast.walk(test):
                args = None
                if (isinstance(node, ast.Call) and getattr(node.func, 'attr', '') == 'task' and node.args
                        and _is_reclaim(node.args[0], names)):
                    args = dict((k.arg, k.value) for k in node.keywords)
                    checked = 'check' in args and getattr(args['check'], 'value', False) is True
                    if 'project' not in args and not checked:
                        found.append('%s:%d' % (os.path.relpath(path, ROOT), node.lineno))
                elif isinstance(node, ast.Dict):
                    for key, value in zip(node.keys, node.values):
                        if key is not None and _is_reclaim(key, names) and isinstance(value, ast.Dict) and \
                                'project' not in [getattr(k, 'value', None) for k in value.keys]:
                            found.append('%s:%d' % (os.path.relpath(path, ROOT), node.lineno))
    assert not found, 'sweeps of the whole hypervisor in tests that run beside others:\n' + '\n'.join(found)
