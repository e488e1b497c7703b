# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The layers of module_utils, with every import pointing one way (docs/lifecycle.md "Where things are").

A file may import its own layer and the layers below it, never one above: the libvirt and Cinder clients know no
record store, the model knows no engine, the engine no operation. A new file must be given its layer here.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))))
MODULE_UTILS = os.path.join(ROOT, 'plugins', 'module_utils')
PACKAGE = 'ansible_collections.deferred.libvirt.plugins.module_utils'

# Bottom first. A package (_state_dir, _ops) is one layer.
LAYERS = (
    ('base', ('_errors', '_faults', '_duration')),
    ('formats', ('_states', '_record')),
    ('clients', ('_hypervisor', '_power', '_pools', '_cinder')),
    ('model', ('_chains', '_views', '_selection', '_locality', '_storage', '_quota', '_fleet', '_tombstone',
               '_eligibility')),
    ('state_dir', ('_state_dir', '_retention')),
    ('options', ('_options',)),
    ('engine', ('_engine',)),
    ('operations', ('_ops',)),
    ('module base', ('_module',)),
)
LEVEL = dict((name, level) for level, (dummy, names) in enumerate(LAYERS) for name in names)


def files():
    for directory, dirs, names in os.walk(MODULE_UTILS):
        dirs[:] = [d for d in dirs if d != '__pycache__']
        for name in names:
            if name.endswith('.py'):
                yield os.path.join(directory, name)


def unit_of(path):
    """The layer unit of a file: its top-level name under module_utils (a package counts as one)."""
    rel = os.path.relpath(path, MODULE_UTILS).split(os.sep)
    return rel[0][:-3] if len(rel) == 1 else rel[0]


def imported_units(path):
    with open(path) as handle:
        tree = ast.parse(handle.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(PACKAGE):
            rest = node.module[len(PACKAGE):].lstrip('.')
            if rest:
                yield rest.split('.')[0], node.lineno
            else:
                for alias in node.names:
                    yield alias.name, node.lineno
        elif isinstance(node, ast.ImportFrom) and node.module and 'plugin_utils' in node.module:
            yield 'plugin_utils', node.lineno


def test_every_module_utils_file_has_a_layer():
    units = set(unit_of(path) for path in files() if os.path.basename(path) != '__init__.py' or unit_of(path) != '__init__')
    units.discard('__init__')
    assert sorted(units - set(LEVEL)) == [], 'give these files their layer in LAYERS'


def test_no_import_points_upward():
    upward = []
    for path in files():
        unit = unit_of(path)
        if unit == '__init__':
            continue
        for target, line in imported_units(path):
            if target == 'plugin_utils':
                upward.append('%s:%d imports plugin_utils (control-node code; modules run on hypervisors)'
                              % (os.path.relpath(path, ROOT), line))
            elif LEVEL.get(target, -1) > LEVEL[unit]:
                upward.append('%s:%d (%s) imports %s (%s)' % (
                    os.path.relpath(path, ROOT), line, LAYERS[LEVEL[unit]][0], target, LAYERS[LEVEL[target]][0]))
    assert upward == []


def test_the_layer_check_sees_an_upward_import(tmp_path):
    # The check itself can fail: an engine import in a model file is reported.
    path = tmp_path / '_views.py'
    path.write_text(u'from %s import _engine\n' % PACKAGE)
    assert list(imported_units(str(path))) == [('_engine', 1)]
    assert LEVEL['_engine'] > LEVEL['_views']
