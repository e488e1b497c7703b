# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The docs follow Ansible's module format checklist, as ansible-doc shows them: every module and role renders, every
option described in full, no null defaults, computed role defaults said, related modules linked, the collection's
authors named; and the shipped files point at nothing outside the collection (the rules are in docs/rules.md)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import re
import subprocess
import sys

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(ROOT, 'plugins', 'modules')) if f.startswith('vm_'))
ROLES = sorted(d for d in os.listdir(os.path.join(ROOT, 'roles')) if os.path.isdir(os.path.join(ROOT, 'roles', d, 'meta')))
# What a role option without a default must say instead: what applies when it is not set.
UNSET_WORDS = re.compile(r'Defaults? to|[Nn]ull (for|keeps|never|\(the default\))|[Nn]ot set|[Uu]nset|When not (set|given)')


def ansible_doc(collections_path, *args):
    tool = os.path.join(os.path.dirname(sys.executable), 'ansible-doc')
    if not os.path.exists(tool):
        pytest.fail('ansible-doc is not installed beside this Python (bash scripts/venv.sh installs it)', pytrace=False)
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=collections_path, ANSIBLE_NOCOLOR='1')
    out = subprocess.run([tool] + list(args), env=env, capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    return out


@pytest.fixture(scope='module')
def module_docs(collections_path):
    out = ansible_doc(collections_path, '--json', *['deferred.libvirt.%s' % m for m in MODULES])
    return dict((name.split('.')[-1], data['doc']) for name, data in json.loads(out.stdout).items())


@pytest.fixture(scope='module')
def role_docs(collections_path):
    out = ansible_doc(collections_path, '-t', 'role', '--json', *['deferred.libvirt.%s' % r for r in ROLES])
    return dict((name.split('.')[-1], data['entry_points']) for name, data in json.loads(out.stdout).items())


def galaxy_authors():
    with open(os.path.join(ROOT, 'galaxy.yml')) as handle:
        return yaml.safe_load(handle)['authors']


def options_of(options, path=''):
    for name, spec in (options or {}).items():
        yield path + name, spec
        for sub in ('suboptions', 'options'):
            yield from options_of(spec.get(sub), path + name + '.')


def text_of(description):
    return ' '.join(description) if isinstance(description, list) else (description or '')


def test_every_module_and_role_renders_in_ansible_doc(collections_path):
    for module in MODULES:
        out = ansible_doc(collections_path, 'deferred.libvirt.%s' % module)
        for section in ('OPTIONS', 'EXAMPLES', 'RETURN VALUES', 'SEE ALSO', 'AUTHOR'):
            assert section in out.stdout, '%s: no %s in ansible-doc' % (module, section)
    for role in ROLES:
        out = ansible_doc(collections_path, '-t', 'role', 'deferred.libvirt.%s' % role)
        # Newer ansible-doc marks entry point names (*main*, or bold on a terminal).
        assert re.search(r'ENTRY POINT: \W*main\b', re.sub(r'\x1b\[[0-9;]*m', '', out.stdout)), role


def test_every_module_option_is_described_in_full(module_docs):
    # A module that overrides a shared option (name) replaces its whole description: it must say everything.
    for module, doc in module_docs.items():
        for name, spec in options_of(doc['options']):
            assert len(text_of(spec.get('description'))) >= 10, '%s: option %s is not described' % (module, name)
        if 'name' in doc['options']:
            assert 'by name or UUID' in text_of(doc['options']['name']['description']), module


def test_no_module_or_role_option_documents_a_null_default(module_docs, role_docs):
    for module, doc in module_docs.items():
        for name, spec in options_of(doc['options']):
            assert not ('default' in spec and spec['default'] is None), '%s: %s has default null' % (module, name)
    for role, entries in role_docs.items():
        for entry, doc in entries.items():
            for name, spec in options_of(doc.get('options')):
                assert not ('default' in spec and spec['default'] is None), '%s.%s: %s default null' % (role, entry, name)


def test_a_role_option_without_a_default_says_what_applies_when_it_is_not_set(role_docs):
    # ansible-doc prints "default: null" for every such option: the description must say what really applies.
    for role, entries in role_docs.items():
        for entry, doc in entries.items():
            for name, spec in (doc.get('options') or {}).items():
                if 'default' in spec or spec.get('required'):
                    continue
                assert UNSET_WORDS.search(text_of(spec.get('description'))), \
                    '%s.%s: %s has no default and does not say what applies when it is not set' % (role, entry, name)


def test_every_module_links_its_related_modules(module_docs):
    for module, doc in module_docs.items():
        targets = [item.get('module') for item in doc.get('seealso') or []]
        assert targets, '%s has no seealso' % module
        for target in targets:
            assert target.startswith('deferred.libvirt.') and target.split('.')[-1] in MODULES, (module, target)
            assert target.split('.')[-1] != module, module


def test_modules_and_roles_name_the_collections_authors(module_docs, role_docs):
    authors = galaxy_authors()
    for module, doc in module_docs.items():
        author = doc['author'] if isinstance(doc['author'], list) else [doc['author']]
        # validate-modules takes "Name (@github)" or "Name (!UNKNOWN)": the collection has no GitHub handle yet.
        assert [re.sub(r' \((@[\w-]+|!UNKNOWN)\)$', '', a) for a in author] == authors, module
    for role, entries in role_docs.items():
        for entry, doc in entries.items():
            assert doc.get('author') == authors, '%s.%s' % (role, entry)


def shipped_text_files():
    listed = subprocess.run(['git', 'ls-files', 'plugins', 'roles', 'playbooks', 'docs', 'meta', 'README.md'],
                            cwd=ROOT, capture_output=True, text=True, check=True).stdout.split()
    for path in listed:
        if path.endswith(('.py', '.yml', '.yaml', '.md', '.j2', '.json', '.html', '.txt', '.sh')):
            yield path


def test_nothing_the_collection_ships_refers_to_a_file_outside_it():
    outside = re.compile(r'spec rules? \d|shared/spec\.md|\.\./shared/|/work/shared')
    found = []
    for path in shipped_text_files():
        with open(os.path.join(ROOT, path), encoding='utf-8') as handle:
            for number, line in enumerate(handle, 1):
                if outside.search(line):
                    found.append('%s:%d: %s' % (path, number, line.strip()))
    assert not found, '\n'.join(found)


def test_every_rule_the_docs_refer_to_is_in_docs_rules_md():
    with open(os.path.join(ROOT, 'docs', 'rules.md'), encoding='utf-8') as handle:
        rules = set(int(n) for n in re.findall(r'^(\d+)\. \*\*', handle.read(), re.M))
    assert rules == set(range(1, 14))
    cited = set()
    for path in shipped_text_files():
        with open(os.path.join(ROOT, path), encoding='utf-8') as handle:
            for match in re.finditer(r'\b[Rr]ules? (\d+)(?:(?:, | and |-)(\d+))*', handle.read()):
                cited.update(int(n) for n in match.groups() if n)
    assert cited and cited <= rules, sorted(cited - rules)


def test_every_option_a_module_doc_points_at_is_one_of_its_own(module_docs):
    # O(force) in a shared fragment names an option that a module extending it may not have (vm_reclaim has none).
    for module, doc in module_docs.items():
        text = json.dumps(dict((k, v) for k, v in doc.items() if k != 'plainexamples'))
        for ref in re.findall(r'\bO\(([^)#=]+)(?:=[^)]*)?\)', text):
            top = re.split(r'[.\[]', ref)[0]
            assert top in doc['options'], '%s: O(%s) names no option of this module' % (module, ref)


def test_every_section_a_message_points_to_is_in_that_doc():
    """A message that sends the operator to a part of the docs (docs/lifecycle.md, "Fleets") names a heading, or the
    bold lead of a list item, that the doc has: a warning of vm_reclaim named a section docs/lifecycle.md never had."""
    import ast
    pointer = re.compile(r'(docs/[\w/.-]+\.md)[^"\n]{0,12}"([^"]+)"')
    found, wrong = 0, []
    for base in ('plugins', 'roles'):
        for folder, dummy, files in os.walk(os.path.join(ROOT, base)):
            for name in (f for f in files if f.endswith('.py')):
                path = os.path.join(folder, name)
                with open(path) as handle:
                    tree = ast.parse(handle.read(), path)
                for node in ast.walk(tree):
                    if not (isinstance(node, ast.Constant) and isinstance(node.value, str)):
                        continue
                    for doc, title in pointer.findall(node.value):
                        found += 1
                        with open(os.path.join(ROOT, doc)) as handle:
                            text = handle.read()
                        heading = re.search(r'^#+ %s\s*$' % re.escape(title), text, re.M)
                        lead = re.search(r'^\s*[-*] \*\*%s\.?\*\*' % re.escape(title), text, re.M)
                        if not (heading or lead):
                            wrong.append('%s:%d: %s has no "%s"' % (os.path.relpath(path, ROOT), node.lineno, doc, title))
    assert found >= 2, 'no message points to a part of the docs: the pattern no longer finds them'
    assert not wrong, '\n'.join(wrong)
