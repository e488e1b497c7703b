# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The docs say what the code does: the state table and the file map of docs/lifecycle.md, and the test map of
docs/testing.md, are generated from the code (_states.py, the docstring of every file)."""

import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, 'scripts'))

import gen_lifecycle_doc  # noqa: E402


def test_lifecycle_doc_state_table_matches_the_state_machine():
    with open(gen_lifecycle_doc.DOC) as handle:
        text = handle.read()
    assert gen_lifecycle_doc.render(text, gen_lifecycle_doc.load_states()) == text, \
        'docs/lifecycle.md is out of date: run python scripts/gen_lifecycle_doc.py'


def test_every_file_of_plugins_has_its_line_in_where_things_are():
    with open(gen_lifecycle_doc.DOC) as handle:
        text = handle.read()
    listed = text.split(gen_lifecycle_doc.FILES_BEGIN, 1)[1].split(gen_lifecycle_doc.FILES_END, 1)[0]
    assert listed.strip() == gen_lifecycle_doc.file_map(), \
        'docs/lifecycle.md "Where things are" is out of date: run python scripts/gen_lifecycle_doc.py'
    for path in gen_lifecycle_doc.python_files('plugins'):
        assert gen_lifecycle_doc.summary(os.path.join(gen_lifecycle_doc.ROOT, path)) != '(no docstring)', '%s has no docstring saying what it is' % path


def test_every_test_file_has_its_line_in_docs_testing():
    with open(gen_lifecycle_doc.TESTING) as handle:
        text = handle.read()
    assert gen_lifecycle_doc.render_testing(text) == text, \
        'docs/testing.md is out of date: run python scripts/gen_lifecycle_doc.py'


def test_every_module_has_rendered_docs_examples_and_return_values():
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=os.path.join(ROOT, 'build', 'collections'))
    link = os.path.join(ROOT, 'build', 'collections', 'ansible_collections', 'deferred', 'libvirt')
    if not os.path.exists(link):
        os.makedirs(os.path.dirname(link), exist_ok=True)
        os.symlink(ROOT, link)
    doc = os.path.join(os.path.dirname(sys.executable), 'ansible-doc')
    for module in ('vm_info', 'vm_attributes', 'vm_soft_delete', 'vm_restore', 'vm_terminate', 'vm_reclaim'):
        out = subprocess.run([doc, 'deferred.libvirt.%s' % module], env=env, capture_output=True, text=True, check=False)
        assert out.returncode == 0, out.stderr
        for section in ('OPTIONS', 'EXAMPLES', 'RETURN VALUES'):
            assert section in out.stdout, '%s: no %s in ansible-doc output' % (module, section)
