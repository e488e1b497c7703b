# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""scripts/cpu_by_process.py, the measurement behind docs/testing.md's "Where the CPU goes": it puts each process
in the right kind and counts a busy command's CPU to that command's kind."""

from __future__ import absolute_import, division, print_function

import os
import subprocess
import sys

SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), 'scripts')
sys.path.insert(0, SCRIPTS)

import cpu_by_process  # noqa: E402


def test_each_process_of_a_test_run_is_put_in_its_kind():
    kind = cpu_by_process.kind
    assert kind(['/work/.venv/bin/python', '/work/.venv/bin/ansible-playbook', 'play.yml']) == \
        'ansible-playbook (controller and its workers)'
    assert kind(['/work/.venv/bin/python']) == 'module (python)'  # a pipelined module reads its payload on stdin
    assert kind(['/usr/bin/python3', '/root/.ansible/tmp/x/AnsiballZ_vm_info.py']) == 'module (python)'
    assert kind(['/usr/bin/qemu-system-x86_64', '-name', 'guest=g1']) == 'qemu'
    assert kind(['/opt/cinder/bin/python', '/opt/cinder/bin/cinder-volume', '--config-file', 'x']) == 'cinder'
    assert kind(['/work/.venv/bin/python', '-m', 'pytest', 'tests/integration']) == 'pytest'
    assert kind(['/usr/sbin/libvirtd', '-d']) == 'libvirtd'
    assert kind(['/usr/bin/python3', 'scripts/other.py', '--x']) == 'python other.py'
    assert kind(['/usr/bin/python3', '-c', 'print(1)']) == 'python -c'
    assert kind(['/usr/bin/python3', '-m', 'http.server']) == 'python -m http.server'
    assert kind([]) == 'kernel threads'


def test_a_busy_command_is_counted_to_its_kind_and_its_exit_code_kept():
    # One CPU second, however busy the machine is (the sampler may miss up to one interval of it).
    busy = 'import time\nwhile time.process_time() < 1.0: pass\nraise SystemExit(3)'
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, 'cpu_by_process.py'), '--interval', '0.1', '--',
                           sys.executable, '-c', busy], capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 3, proc.stderr
    rows = [line.split() for line in proc.stdout.splitlines() if line.rstrip().endswith('  python -c')]
    assert rows, proc.stdout
    assert 0.8 <= float(rows[0][0]) <= 1.3, proc.stdout
    assert 'cores busy on average' in proc.stdout


def test_no_command_is_refused_naming_what_is_missing():
    proc = subprocess.run([sys.executable, os.path.join(SCRIPTS, 'cpu_by_process.py')], capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2
    assert 'no command given' in proc.stderr
