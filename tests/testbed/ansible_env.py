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
