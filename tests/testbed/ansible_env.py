# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The environment every ansible and ansible-playbook run of the tests and the benchmarks gets, written once."""

import os


def ansible_env(collections, python, callback, callback_dir, **more):
    """os.environ plus: this collection's install, a JSON stdout callback, no prompts, no noise, ``python`` for modules."""
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': collections,
        'ANSIBLE_STDOUT_CALLBACK': callback,
        'ANSIBLE_CALLBACK_PLUGINS': callback_dir,
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_HOST_KEY_CHECKING': 'False',
        'ANSIBLE_RETRY_FILES_ENABLED': 'False',
        'ANSIBLE_DEPRECATION_WARNINGS': 'False',
        'ANSIBLE_LOCALHOST_WARNING': 'False',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': 'False',
        'ANSIBLE_PYTHON_INTERPRETER': python,
    })
    env.update(more)
    return env


def pipelining():
    """ANSIBLE_PIPELINING for the test runs: ``True`` unless TEST_ANSIBLE_PIPELINING is ``0``.

    With pipelining a task over SSH is one ssh command that feeds the module to Python's stdin, instead of five (a
    remote temporary directory, the module copied with sftp, chmod, the run, the clean-up): measured on the test bed's
    hv2, 5 vm_info tasks took 4.5 s instead of 9.4 s, and the fleet tests run most of their tasks over SSH. Modules
    run the same either way; the jobs run the way AWX runs them (tests/integration/test_awx_runner.py,
    test_fleet_workflow.py) get Ansible's default (no pipelining) from ansible-runner, and
    ``TEST_ANSIBLE_PIPELINING=0 bash scripts/test.sh integration`` runs the whole stage without it.
    """
    return 'False' if os.environ.get('TEST_ANSIBLE_PIPELINING', '1') in ('0', 'false', 'False', 'no') else 'True'
