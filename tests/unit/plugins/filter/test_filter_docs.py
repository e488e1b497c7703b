# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every filter is documented the way ansible-doc and Galaxy's importer read it.

Both list a filter per file in plugins/filter/ and read its DOCUMENTATION from
the file named after it: a file that documents nothing shows up on Galaxy as an
undocumented filter, and a YAML file beside the code as a broken one. So each
filter has its own file, with DOCUMENTATION, EXAMPLES and RETURN and a
FilterModule that gives exactly that filter; shared code is in plugins/plugin_utils/.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import subprocess
import sys

import pytest

from conftest import COLLECTIONS, ROOT

FILTER_DIR = os.path.join(ROOT, 'plugins', 'filter')
NAMES = sorted(os.path.splitext(f)[0] for f in os.listdir(FILTER_DIR) if f.endswith('.py') and f != '__init__.py')


def ansible_doc(*args):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=COLLECTIONS, ANSIBLE_DEPRECATION_WARNINGS='False')
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-doc'), '-t', 'filter', '--json']
                          + list(args), env=env, capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def test_plugins_filter_holds_only_python_files():
    assert sorted(os.listdir(FILTER_DIR)) == sorted(n + '.py' for n in NAMES), \
        'plugins/filter/ must hold one .py file per filter (no YAML doc files, no shared code)'


def test_ansible_doc_lists_exactly_one_documented_filter_per_file():
    listed = ansible_doc('--list', 'deferred.libvirt')
    assert sorted(listed) == ['deferred.libvirt.%s' % n for n in NAMES]
    for name, summary in listed.items():
        assert summary and 'UNDOCUMENTED' not in summary.upper(), name


@pytest.mark.parametrize('name', NAMES)
def test_each_filter_has_documentation_examples_and_return(name):
    doc = ansible_doc('deferred.libvirt.' + name)['deferred.libvirt.' + name]
    assert doc['doc']['name'] == name
    assert doc['doc']['short_description']
    assert doc['doc']['options']['_input']['description']
    assert 'deferred.libvirt.' + name in doc['examples']
    assert doc['return']['_value']['description']
