# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_reclaim's sweep (_ops/_reclaim.py) on test:///default: what it reclaims, keeps and skips, and why.

Run through a plain Context (ops_support.py) over records written by hand: expired, not yet due, locked or
protected, unreadable, and times no clock should be trusted with (rule 11); check mode changes nothing.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _restore as restore
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete

from ops_support import FUTURE, NOW, PAST, context, only, put, record_of, run, set_text, soft_deleted_record


def test_the_sweep_reclaims_the_expired_and_keeps_the_rest(conn, define, tmp_path):
    for name in ('old', 'new', 'held'):
        define(name)
    put(conn, 'old', soft_deleted_record(PAST))
    put(conn, 'new', soft_deleted_record(FUTURE))
    put(conn, 'held', soft_deleted_record(PAST, locked=True, lock_reason='legal hold'))
    outcome, dummy = run(reclaim, conn, tmp_path)
    extra = outcome['extra']
    assert [r['name'] for r in extra['reclaimed']] == ['old']
    assert [k['name'] for k in extra['kept']] == ['new']
    assert [(s['name'], s['reason']) for s in extra['skipped_domains']] == [('held', 'locked (legal hold)')]
    assert sorted(d.name() for d in conn.listAllDomains(0)) == ['held', 'new', 'test']


def test_the_sweep_in_check_mode_changes_nothing_and_names_what_it_would_reclaim(conn, define, tmp_path):
    define('old')
    put(conn, 'old', soft_deleted_record(PAST))
    outcome, dummy = run(reclaim, conn, tmp_path, check_mode=True)
    assert [i['action'] for i in outcome['instances']] == ['would_terminate']
    assert 'old' in [d.name() for d in conn.listAllDomains(0)]


@pytest.mark.parametrize('guard', [{'locked': True}, {'protected': True}])
def test_an_interrupted_reclaim_of_a_locked_or_protected_domain_is_left_alone(conn, define, tmp_path, guard):
    # The sweep's selection used to resume it and the check under the lock to skip it (or not): both now skip.
    define('old')
    put(conn, 'old', soft_deleted_record(PAST, task_state='deleting', **guard))
    view = [s.view for s in engine.snapshot(context(conn, tmp_path)) if s.view['name'] == 'old'][0]
    assert eligible.eligibility(view, NOW)[0] == eligible.SKIP
    outcome, dummy = run(reclaim, conn, tmp_path)
    assert outcome['extra']['reclaimed'] == [] and 'old' in [d.name() for d in conn.listAllDomains(0)]


def test_eligibility_under_the_lock_is_the_sweeps_own(conn, define, tmp_path):
    define('old')
    put(conn, 'old', soft_deleted_record(PAST))
    domain = hv.refresh(conn, conn.lookupByName('old'))
    reclaim.still_due(NOW)(domain)  # due: no Skip
    put(conn, 'old', dict(record_of(conn, 'old'), vm_state='active', deleted_at=None, reclaim_at=None))
    with pytest.raises(engine.Skip) as err:
        reclaim.still_due(NOW)(hv.refresh(conn, conn.lookupByName('old')))
    assert 'no longer soft-deleted' in str(err.value)


def test_a_record_python_cannot_hold_stops_only_its_own_domain(conn, define, tmp_path):
    for name in ('bad', 'old', 'new', 'live'):
        define(name)
    set_text(conn, 'bad', '<lifecycle version="1"><vm_state>soft_deleted</vm_state>'
                          '<deleted_at>0001-01-01T00:00:00+05:00</deleted_at><reclaim_at>2024-01-01T00:00:00Z</reclaim_at>'
                          '<project>web</project></lifecycle>')
    put(conn, 'old', soft_deleted_record(PAST))
    put(conn, 'new', soft_deleted_record(FUTURE))
    put(conn, 'live', dict(_record.empty(), vm_state='stopped', project='web'))
    only(run(soft_delete, conn, tmp_path, name=['live'])[0])
    only(run(restore, conn, tmp_path, name=['new'])[0])
    outcome, ctx = run(reclaim, conn, tmp_path)
    assert [r['name'] for r in outcome['extra']['reclaimed']] == ['old']
    [skipped] = [s for s in outcome['extra']['skipped_domains'] if s['name'] == 'bad']
    assert 'domain bad: lifecycle metadata field deleted_at' in skipped['reason']
    assert any('bad skipped' in w for w in ctx.warnings)
    assert 'bad' in [d.name() for d in conn.listAllDomains(0)]


# -- rule 11: no clock trusted blindly --------------------------------------------------------------------------------

def test_a_deleted_at_in_the_future_of_this_host_is_never_reclaimed(conn, define, tmp_path):
    define('ahead')
    record = soft_deleted_record(PAST)
    # Another host's clock, or ours set back: written two hours from now, due a minute after that.
    record['deleted_at'] = _record.format_time(NOW + datetime.timedelta(hours=2))
    record['reclaim_at'] = _record.format_time(NOW + datetime.timedelta(hours=2, minutes=1))
    put(conn, 'ahead', record)
    outcome, dummy = run(reclaim, conn, tmp_path)
    [skipped] = outcome['extra']['skipped_domains']
    assert skipped['name'] == 'ahead' and 'in the future of this host' in skipped['reason']
    assert 'ahead' in [d.name() for d in conn.listAllDomains(0)]


def test_a_reclaim_at_implausibly_far_behind_is_never_reclaimed_until_the_operator_says_so(conn, define, tmp_path):
    define('ancient')
    put(conn, 'ancient', soft_deleted_record(NOW - datetime.timedelta(days=400)))
    outcome, dummy = run(reclaim, conn, tmp_path)
    [skipped] = outcome['extra']['skipped_domains']
    assert 'clock may have jumped forward' in skipped['reason']
    outcome, dummy = run(reclaim, conn, tmp_path, max_overdue=0)
    assert [r['name'] for r in outcome['extra']['reclaimed']] == ['ancient']


def _plant_last_sweep(ctx, wall, boot_seconds, boot_id):
    """clock.json as a last sweep of this host left it."""
    ctx.state.write_clock(ctx.host_key(), {'wall': _record.format_time(wall), 'boot_seconds': boot_seconds,
                                           'boot_id': boot_id})


def test_a_clock_stepped_10_days_forward_reclaims_nothing_in_a_7_day_trash(conn, define, tmp_path):
    # Issue 24, item 5: the overdue rule allows 24 intervals (capped at 30 days), so a clock stepped 10 days forward
    # made every domain of a 7-day trash due. The boot clock saw only an hour pass since the last sweep.
    define('web')
    now = _record.utcnow()
    record = soft_deleted_record(now + datetime.timedelta(days=1))
    record.update(deleted_at=_record.format_time(now - datetime.timedelta(days=10)),
                  reclaim_at=_record.format_time(now - datetime.timedelta(days=3)))
    put(conn, 'web', record)
    ctx = context(conn, tmp_path)
    here = eligible.clock_sample(now)
    _plant_last_sweep(ctx, now - datetime.timedelta(days=10), here['boot_seconds'] - 3600, here['boot_id'])
    before = ctx.state.read_clock(ctx.host_key())
    outcome = reclaim.run(ctx, reclaim.options(ctx.params))
    extra = outcome['extra']
    assert extra['reclaimed'] == []
    assert extra['clock']['state'] == 'stepped_forward' and extra['clock']['blocks']
    assert abs(extra['clock']['step_seconds'] - (10 * 86400 - 3600)) < 120
    [skip] = extra['skipped_domains']
    assert skip['name'] == 'web' and 'stepped 9d forward' in skip['reason']
    assert any('stepped 9d forward' in w for w in ctx.warnings)
    assert [e['result'] for e in ctx.state.read_events() if e['event_type'] == 'reclaim.clock'] == ['stepped_forward']
    assert 'web' in [d.name() for d in conn.listAllDomains(0)]
    # The last good sample is kept: the next sweep still sees the step.
    assert ctx.state.read_clock(ctx.host_key()) == before
    # Once the clock is checked, one sweep with max_overdue 0 takes it as it is and reclaims.
    outcome, ctx = run(reclaim, conn, tmp_path, max_overdue=0)
    assert [r['name'] for r in outcome['extra']['reclaimed']] == ['web']
    assert ctx.state.read_clock(ctx.host_key())['boot_id'] == here['boot_id']


def test_a_reboot_onto_an_unsynchronised_clock_reclaims_nothing(conn, define, tmp_path, monkeypatch):
    define('web')
    put(conn, 'web', soft_deleted_record(PAST))
    ctx = context(conn, tmp_path)
    now = _record.utcnow()
    _plant_last_sweep(ctx, now - datetime.timedelta(hours=1), 10.0, 'another-boot')
    # The kernel's flag as a process reads it (the real one is set in tests/integration/test_clocks.py).
    monkeypatch.setattr(eligible, 'time_synchronised', lambda: (False, None))
    outcome = reclaim.run(ctx, reclaim.options(ctx.params))
    assert outcome['extra']['reclaimed'] == [] and outcome['extra']['clock']['state'] == 'rebooted_unsynchronised'
    monkeypatch.setattr(eligible, 'time_synchronised', lambda: (True, None))
    outcome, dummy = run(reclaim, conn, tmp_path)
    assert [r['name'] for r in outcome['extra']['reclaimed']] == ['web']
    assert outcome['extra']['clock']['state'] == 'rebooted'


def test_tombstones_with_work_left_that_other_hosts_wrote_are_listed_untouched_and_a_never_seen_host_is_warned_of(
        conn, tmp_path):
    """Rule 5 in a state_dir shared by several hosts: another host's tombstone is that host's to finish, and the sweep
    says it saw it. A host renamed while libvirt made up a new host UUID finds its own earlier tombstones that way:
    their host never ran a sweep here, so the result warns, with the way to claim them back."""
    ctx = context(conn, tmp_path)
    volume = {'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'delete_on_termination': True, 'error': 'Cinder is down'}
    renamed = {'name': 'web01', 'uuid': '0a1b2c3d-0000-4000-8000-000000000001', 'project': 'web', 'status': 'terminated',
               'terminated_at': '2026-11-30T10:00:00Z', 'volumes_pending': [volume],
               'host': {'uuid': 'bbbbbbbb-0000-4000-8000-000000000002', 'hostname': 'kvm-old.example.com'}}
    neighbour = dict(renamed, name='web02', uuid='0a1b2c3d-0000-4000-8000-000000000002',
                     host={'uuid': 'cccccccc-0000-4000-8000-000000000003', 'hostname': 'kvm2.example.com'})
    done = dict(neighbour, name='web03', uuid='0a1b2c3d-0000-4000-8000-000000000003', volumes_pending=[],
                cinder_checked=True)
    for tomb in (renamed, neighbour, done):
        ctx.state.write_tombstone(dict(tomb))
    ctx.state.write_clock('kvm2.example.com', eligible.clock_sample(NOW))  # kvm2 sweeps this state_dir too
    before = dict((t['uuid'], ctx.state.read_tombstone(t['uuid'])) for t in (renamed, neighbour))
    outcome, ctx = run(reclaim, conn, tmp_path)
    listed = outcome['extra']['tombstones_of_other_hosts']
    assert [(t['name'], t['host'], t['host_uuid'], t['volumes_pending'], t['disks_pending']) for t in listed] == [
        ('web01', 'kvm-old.example.com', 'bbbbbbbb-0000-4000-8000-000000000002', 1, 0),
        ('web02', 'kvm2.example.com', 'cccccccc-0000-4000-8000-000000000003', 1, 0)]
    # Untouched: not finished, not worked on, not counted as this host's pending work.
    assert dict((u, ctx.state.read_tombstone(u)) for u in before) == before
    assert outcome['extra']['pending'] == [] and outcome['extra']['finished_tombstones'] == []
    warned = [w for w in ctx.warnings if 'tombstone of' in w]
    assert len(warned) == 1 and 'web01' in warned[0] and 'kvm-old.example.com' in warned[0], ctx.warnings
    assert 'never run a sweep on this state_dir' in warned[0] and 'host_uuid in libvirtd.conf' in warned[0]
