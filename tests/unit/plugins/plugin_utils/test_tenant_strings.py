# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tenant strings are never code: every filter's result stays data when a later task reads it.

The lock reason below is what a tenant can set with vm_attributes; the sweep
writes it into last_sweep.json, the report slurps it back. On ansible-core
2.16 to 2.18 a plain string holding ``{{ ... }}`` in a variable is templated
again when a later task reads the variable; these tests read the filters'
results through the Templar the way the next task does.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import importlib
import os

from ansible.parsing.dataloader import DataLoader
from ansible.template import Templar

try:  # ansible-core 2.19 and later template only what is trusted: the playbook's own expression is
    from ansible.template import trust_as_template
except ImportError:  # 2.16 to 2.18
    def trust_as_template(text):
        return text

from report_samples import NOW, SWEEP_RESULT, fleet, sweep, view

FILTERS = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))), 'plugins', 'filter')
CODE = "INC-1 {{ 6 * 7 }} {% if true %}ran{% endif %}"


def _filter(name):
    module = importlib.import_module('ansible_collections.deferred.libvirt.plugins.filter.%s' % name)
    return module.FilterModule().filters()[name]


def _read_back(value, expression):
    """``expression`` over a variable holding ``value``, as the next task's template reads it."""
    return Templar(loader=DataLoader(), variables={'data': value}).template(trust_as_template(expression))


def test_every_filter_marks_its_result_unsafe():
    names = sorted(os.path.basename(p)[:-3] for p in glob.glob(os.path.join(FILTERS, '*.py')))
    assert len(names) >= 17
    plain = [n for n in names if not getattr(_filter(n), 'unsafe_result', False)]
    assert plain == [], 'filters whose results a later task would template again: %s' % plain


def test_lock_reason_from_last_sweep_is_never_templated_by_the_next_task():
    record = sweep(dict(SWEEP_RESULT, skipped_domains=[
        {'name': 'held', 'uuid': 'uuid-held', 'project': 'web', 'reason': 'locked: %s' % CODE}]))
    # The trash is empty: nothing else in the report is unsafe (the case that ran the tenant's lookup).
    data = _filter('trash_report')(fleet(hv1=([], record)), ['hv1'], now=NOW)
    assert _read_back(data, '{{ data.skipped[0].reason }}') == 'locked: %s' % CODE
    page = _filter('trash_report_html')(data)
    assert CODE in _read_back(page, '{{ data }}')


def test_names_projects_and_users_stay_verbatim_through_the_report_and_the_summary():
    views = [view('n' + CODE, project='p' + CODE, user='u' + CODE, locked=True, lock_reason=CODE)]
    data = _filter('trash_report')(fleet(hv1=(views, None)), ['hv1'], now=NOW)
    item = _read_back(data, '{{ data.trash[0] }}')
    assert (item['name'], item['project'], item['user'], item['lock_reason']) == (
        'n' + CODE, 'p' + CODE, 'u' + CODE, CODE)
    page = _filter('trash_report_html')(data)
    assert _read_back(page, '{{ data }}') == page


def test_the_trash_lines_keep_tenant_strings_verbatim_and_never_in_the_restore_command():
    views = [view('n' + CODE, project='p' + CODE, user='u' + CODE,
                  history=[{'action': 'soft_delete', 'result': 'success', 'actor': 'a' + CODE}])]
    [line] = _read_back(_filter('trash')(fleet(hv1=(views, None)), ['hv1'], now=NOW), '{{ data }}')
    assert line.startswith('hv1/n%s (project p%s, owner u%s): ' % (CODE, CODE, CODE))
    assert 'deleted by a%s at ' % CODE in line
    # The UUID of a hand-edited record is not a plain one: no command is made of it.
    assert line.endswith('name it to the restore playbook (its UUID is not a plain one)')


def test_a_tenant_project_never_becomes_part_of_a_restore_command():
    views = [view('n', uuid='4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50', project='p' + CODE)]
    data = _filter('trash_report')(fleet(hv1=(views, None)), ['hv1'], now=NOW)
    command = _read_back(data, '{{ data.trash[0].restore_command }}')
    assert command == 'ansible-playbook -i INVENTORY deferred.libvirt.restore -e names=4b1e0c7a-2f6e-4c0b-9a55-1c0d2b3e4f50'
    assert _read_back(data, '{{ data.trash[0].project }}') == 'p' + CODE


def test_the_lines_of_what_was_terminated_keep_tenant_strings_verbatim():
    hostvars = {'hv1': {'empty_trash_result': {'instances': [
        {'name': 'n' + CODE, 'action': 'terminated', 'disks_deleted': ['/img/' + CODE]}]}}}
    [line] = _read_back(_filter('terminated_lines')(hostvars, ['hv1']), '{{ data }}')
    assert line == 'hv1/n%s: terminated; disks deleted: /img/%s' % (CODE, CODE)
