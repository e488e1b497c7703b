# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""engine.carry_out, the locked step every changing operation shares, on libvirt's test:///default driver.

A small Plan drives it here: NOOP reports, START takes the task_state and
writes the start event, RESUME goes on without either, a failure is rolled
back by the plan, and a guard refuses before anything changes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete
from ansible_collections.deferred.libvirt.plugins.module_utils._states import NOOP, RESUME, START


def context(conn, tmp_path, check_mode=False, project=None):
    state = StateDir(str(tmp_path / 'state'), create=not check_mode)
    return engine.Context(conn, uri='test:///default', state=state, check_mode=check_mode, project=project,
                          lock_timeout=5)


def domain(conn, name):
    return hv.refresh(conn, conn.lookupByName(name))


def events(ctx):
    return [e['event_type'] for e in ctx.state.read_events()]


class Probe(engine.Plan):
    """A plan that marks the record and says which of its steps ran."""

    held = 'soft_deleting'
    event = 'soft_delete'
    faults = 'soft_delete'

    def __init__(self, current, decision, fail=None):
        self.domain = current
        self.decision = decision
        self.fail = fail
        self.calls = []

    def report(self):
        self.calls.append('report')
        return {'name': self.domain.name, 'changed': False, 'action': 'none'}

    def apply(self, ctx):
        self.calls.append('apply')
        if self.fail:
            raise self.fail
        self.after = ctx.fresh(self.domain)
        return dict(self.domain.record, task_state=None, user='probe')

    def roll_back(self, ctx, exc):
        self.calls.append('roll_back')
        ctx.save(ctx.fresh(self.domain), dict(self.domain.record, task_state=None))
        return engine.OperationError('rolled back: %s' % exc)

    def finish(self, ctx):
        self.calls.append('finish')
        return {'name': self.domain.name, 'changed': True}


def carry(ctx, dom, decision, fail=None):
    made = []

    def plan_for(current):
        made.append(Probe(current, decision, fail))
        return made[0]

    return engine.carry_out(ctx, dom, plan_for), made[0]


def test_noop_reports_and_changes_nothing(conn, define, tmp_path):
    define('web01')
    ctx = context(conn, tmp_path)
    result, plan = carry(ctx, domain(conn, 'web01'), NOOP)
    assert plan.calls == ['report'] and result['action'] == 'none'
    assert domain(conn, 'web01').record is None and events(ctx) == []


def test_start_takes_the_task_state_writes_the_start_event_then_leaves_the_record(conn, define, tmp_path):
    define('web01')
    ctx = context(conn, tmp_path)
    result, plan = carry(ctx, domain(conn, 'web01'), START)
    assert plan.calls == ['apply', 'finish'] and result['changed']
    record = domain(conn, 'web01').record
    assert (record['task_state'], record['user']) == (None, 'probe')
    assert events(ctx) == ['instance.soft_delete.start']


def test_resume_goes_on_without_a_second_start(conn, define, tmp_path):
    define('web01')
    hv.write_record(domain(conn, 'web01'), dict(_record.empty(), task_state='soft_deleting'))
    ctx = context(conn, tmp_path)
    dummy, plan = carry(ctx, domain(conn, 'web01'), RESUME)
    assert plan.calls == ['apply', 'finish'] and events(ctx) == []
    assert domain(conn, 'web01').record['user'] == 'probe'


def test_a_failure_is_rolled_back_by_the_plan_and_raised_as_it_says(conn, define, tmp_path):
    define('web01')
    ctx = context(conn, tmp_path)
    with pytest.raises(engine.OperationError, match='rolled back: boom'):
        carry(ctx, domain(conn, 'web01'), START, fail=hv.HypervisorError('boom'))
    assert domain(conn, 'web01').record['task_state'] is None


def test_check_mode_reports_without_the_lock_or_a_write(conn, define, tmp_path):
    define('web01')
    ctx = context(conn, tmp_path, check_mode=True)
    result, plan = carry(ctx, domain(conn, 'web01'), START)
    assert plan.calls == ['report'] and domain(conn, 'web01').record is None


def test_another_operation_that_got_there_first_is_refused(conn, define, tmp_path):
    define('web01')
    hv.write_record(domain(conn, 'web01'), dict(_record.empty(), task_state='restoring'))
    with pytest.raises(engine.OperationError, match='another operation got there first'):
        carry(context(conn, tmp_path), domain(conn, 'web01'), START)


@pytest.mark.parametrize('record, words', [
    ({'locked': True, 'lock_reason': 'audit'}, 'is locked (audit); soft delete needs force=true'),
    ({'protected': True}, 'is protected; soft delete is refused'),
    ({'project': 'data'}, 'belongs to project data, not web'),
])
def test_a_guard_refuses_before_anything_changes(conn, define, tmp_path, record, words):
    define('web01', running=True)
    hv.write_record(domain(conn, 'web01'), dict(_record.empty(), **dict({'project': 'web'}, **record)))
    xml = conn.lookupByName('web01').XMLDesc(0)
    ctx = context(conn, tmp_path, project='web')
    opts = soft_delete.options({'name': ['web01'], 'instance_dirs': [str(tmp_path)]})
    with pytest.raises(engine.OperationError) as err:
        soft_delete.soft_delete(ctx, domain(conn, 'web01'), opts)
    assert words in str(err.value)
    assert conn.lookupByName('web01').XMLDesc(0) == xml and events(ctx) == []


def test_a_domain_gone_before_the_lock_is_answered_by_when_gone(conn, define, tmp_path):
    define('web01')
    dom = domain(conn, 'web01')
    conn.lookupByName('web01').undefine()
    result = engine.carry_out(context(conn, tmp_path), dom, lambda current: None, when_gone=engine.already_gone)
    assert (result['changed'], result['msg']) == (False, 'already gone')


def test_selected_items_name_their_domain_or_tombstone(conn, define, tmp_path):
    define('web01')
    [item] = engine.select(engine.snapshot(context(conn, tmp_path)),
                           type('Selection', (), dict(names=['web01'], query=None, project=None)))
    assert (item.name, item.tombstone, item.domain.name) == ('web01', None, 'web01')


# -- run_each: one result per item, a bug told apart from a refusal ----------------------------------------

def test_an_unexpected_exception_is_reported_as_a_bug_with_its_traceback(conn, tmp_path):
    def broken(item):
        return {}['uuid']
    [result] = engine.run_each(context(conn, tmp_path), [('x', None)], broken, label=lambda item: item[0])
    assert result['failed'] and 'a bug in deferred.libvirt' in result['msg'] and "KeyError" in result['msg']
    assert 'Traceback' in result['exception']


def test_a_refusal_is_reported_with_its_message_only(conn, tmp_path):
    def refused(item):
        raise engine.OperationError('domain x is locked')
    [result] = engine.run_each(context(conn, tmp_path), [('x', None)], refused, label=lambda item: item[0])
    assert result['msg'] == 'domain x is locked' and 'exception' not in result
