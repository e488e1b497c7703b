# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""ansible-doc shows vm_info and vm_attributes whole: shared options from the fragments, return values uncut."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import importlib
import json
import os
import subprocess
import sys

import pytest
import yaml

MODULES = ('vm_info', 'vm_attributes')
RETURN_KEYS = set(['description', 'returned', 'type', 'elements', 'sample', 'contains', 'version_added'])


def walk_returns(values, path=''):
    for name, spec in values.items():
        yield path + name, spec
        yield from walk_returns(spec.get('contains') or {}, path + name + '.')


@pytest.mark.parametrize('module', MODULES)
def test_every_return_value_is_described_in_full(module):
    # An unquoted comma in a one-line {description: ...} cuts the text and makes a bogus key.
    returns = yaml.safe_load(importlib.import_module('ansible_collections.deferred.libvirt.plugins.modules.%s' % module).RETURN)
    for name, spec in walk_returns(returns):
        assert set(spec) <= RETURN_KEYS, '%s: %s' % (name, sorted(set(spec) - RETURN_KEYS))
        assert spec['description'], name


@pytest.fixture(scope='module')
def docs(collections_path):
    ansible_doc = os.path.join(os.path.dirname(sys.executable), 'ansible-doc')
    if not os.path.exists(ansible_doc):
        pytest.fail('ansible-doc is not installed beside this Python (bash scripts/venv.sh installs it)', pytrace=False)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR='1')
    out = subprocess.run([ansible_doc, '--json'] + ['deferred.libvirt.%s' % m for m in MODULES],
                         env=env, capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


@pytest.mark.parametrize('module', MODULES)
def test_ansible_doc_shows_the_shared_connection_and_selection_options(docs, module):
    options = docs['deferred.libvirt.%s' % module]['doc']['options']
    assert set(['uri', 'state_dir', 'name', 'query', 'project']) <= set(options)
    assert options['uri']['default'] == 'qemu:///system'
    assert options['state_dir']['default'] == '/var/lib/deferred-libvirt'


def test_ansible_doc_shows_vm_info_as_read_only(docs):
    attributes = docs['deferred.libvirt.vm_info']['doc']['attributes']
    assert attributes['check_mode']['support'] == 'full'
    assert attributes['diff_mode']['support'] == 'none'


def test_ansible_doc_shows_vm_attributes_own_project_meaning(docs):
    doc = docs['deferred.libvirt.vm_attributes']['doc']
    assert doc['options']['project']['description'][0].startswith('The project that owns the domain')
    assert doc['options']['project']['type'] == 'str'
    assert doc['attributes']['diff_mode']['support'] == 'full'
