# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Each operation's run() on libvirt's test:///default driver, through a plain Context: no Ansible, no root, no libvirtd.

The behaviour against real QEMU guests is tested in tests/integration; here
the decisions are: what each operation does to the record, the journal and
the tombstones, that check mode reports exactly the decision the real run
carries out, and the tombstone and eligibility paths that used to be written
(and to disagree) in several places.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _attributes as attributes
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _info as info
from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _restore as restore
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir


def context(conn, tmp_path, check_mode=False, **params):
    state = StateDir(str(tmp_path / 'state'), create=not check_mode)
    params.setdefault('instance_dirs', [str(tmp_path / 'images')])
    return engine.Context(conn, uri='test:///default', state=state, check_mode=check_mode, project=params.get('project'),
                          lock_timeout=5, params=params)


def run(operation, conn, tmp_path, check_mode=False, **params):
    ctx = context(conn, tmp_path, check_mode=check_mode, **params)
    return operation.run(ctx, operation.options(ctx.params)), ctx


def only(outcome):
    [instance] = outcome['instances']
    assert not instance.get('failed'), instance
    return instance


def record_of(conn, name):
    return hv.refresh(conn, conn.lookupByName(name)).record


def soft_deleted_record(reclaim_at, project='web', **extra):
    """A soft-deleted record written by hand, as a sweep long after the soft delete finds it."""
    record = _record.empty()
    record.update(vm_state='soft_deleted', project=project, soft_delete_mode='shutdown',
                  deleted_at=_record.format_time(min(reclaim_at, NOW) - datetime.timedelta(days=1)),
                  reclaim_at=_record.format_time(reclaim_at), **extra)
    return record


def put(conn, name, record):
    hv.write_record(hv.refresh(conn, conn.lookupByName(name)), record)


NOW = _record.utcnow()
PAST = NOW - datetime.timedelta(hours=1)
FUTURE = NOW + datetime.timedelta(days=2)


# -- soft delete ----------------------------------------------------------------------------------------------------

def test_soft_delete_shuts_the_guest_down_and_fixes_reclaim_at(conn, define, tmp_path):
    define('web01', running=True)
    instance = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='2d')[0])
    record = record_of(conn, 'web01')
    assert (instance['action'], record['vm_state'], record['task_state']) == ('soft_deleted', 'soft_deleted', None)
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_SHUTOFF
    gap = _record.parse_time(record['reclaim_at']) - _record.parse_time(record['deleted_at'])
    assert gap == datetime.timedelta(days=2)


def test_soft_delete_again_is_a_noop_that_keeps_deleted_at(conn, define, tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='2d')
    first = record_of(conn, 'web01')
    again = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='9d')[0])
    assert (again['changed'], again['action']) == (False, 'none')
    assert record_of(conn, 'web01')['deleted_at'] == first['deleted_at']
    assert record_of(conn, 'web01')['reclaim_at'] == first['reclaim_at']


def test_soft_delete_check_mode_reports_the_decision_the_real_run_carries_out(conn, define, tmp_path):
    define('web01', running=True)
    xml_before = conn.lookupByName('web01').XMLDesc(0)
    would = only(run(soft_delete, conn, tmp_path, check_mode=True, name=['web01'], reclaim_interval='3d')[0])
    assert conn.lookupByName('web01').XMLDesc(0) == xml_before
    assert not os.path.exists(str(tmp_path / 'state'))
    did = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval='3d')[0])
    assert would['action'] == 'would_soft_delete' and did['action'] == 'soft_deleted'
    for key in ('vm_state', 'task_state', 'soft_delete_mode', 'power_state', 'managed_save', 'project'):
        assert would['record'][key] == did['record'][key], key
    assert would['mode'] == did['mode'] and would['shutdown_timeout'] == did['shutdown_timeout']


def test_soft_delete_of_a_terminated_domain_with_an_interval_is_refused(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    [instance] = run(soft_delete, conn, tmp_path, name=['web01'])[0]['instances']
    assert instance['failed'] and 'was terminated at' in instance['msg']


def test_soft_delete_with_reclaim_interval_zero_terminates(conn, define, tmp_path):
    define('web01', running=True)
    instance = only(run(soft_delete, conn, tmp_path, name=['web01'], reclaim_interval=0, shutdown_timeout=5)[0])
    assert instance['action'] == 'terminated'
    assert 'web01' not in [d.name() for d in conn.listAllDomains(0)]


# -- restore --------------------------------------------------------------------------------------------------------

def test_restore_brings_a_soft_deleted_domain_back_to_running(conn, define, tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'])
    instance = only(run(restore, conn, tmp_path, name=['web01'])[0])
    record = record_of(conn, 'web01')
    assert instance['action'] == 'restored'
    assert (record['vm_state'], record['deleted_at'], record['reclaim_at']) == ('active', None, None)
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING


def test_restore_over_quota_is_refused_before_anything_changes(conn, define, tmp_path):
    define('web01', running=True, vcpus=2)
    run(soft_delete, conn, tmp_path, name=['web01'])
    run(attributes, conn, tmp_path, name=['web01'], project='web')
    before = record_of(conn, 'web01')
    with pytest.raises(quota.QuotaError) as err:
        run(restore, conn, tmp_path, name=['web01'], quota={'web': {'cores': 1}})
    assert 'over quota, nothing was changed' in str(err.value)
    assert err.value.result['quota']['over']
    assert record_of(conn, 'web01') == before


def test_restore_check_mode_matches_the_real_restore(conn, define, tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'])
    would = only(run(restore, conn, tmp_path, check_mode=True, name=['web01'])[0])
    assert record_of(conn, 'web01')['vm_state'] == 'soft_deleted'
    did = only(run(restore, conn, tmp_path, name=['web01'])[0])
    for key in ('vm_state', 'task_state', 'deleted_at', 'reclaim_at', 'power_state'):
        assert would['record'][key] == did['record'][key], key


def _record_naming(conn, name, host):
    """The domain's soft-deleted record as a copy left by an offline migration carries it: naming ``host``."""
    record = soft_deleted_record(FUTURE)
    _record.stamp(record, record_of(conn, name), host)
    set_text(conn, name, _record.serialize(record))
    return record_of(conn, name)


HV2 = {'uuid': '88dc30c7-1bec-456d-b194-7254d74f571d', 'hostname': 'hv2.fleet.example'}


def test_restore_refuses_a_stale_copy_whose_record_names_another_host(conn, define, tmp_path):
    # Rule 9, ad hoc (no fleet view): the record's host decides. Booting this copy would make two writers of one disk.
    define('web01')
    before = _record_naming(conn, 'web01', HV2)
    [instance] = run(restore, conn, tmp_path, name=['web01'])[0]['instances']
    assert instance['failed']
    assert instance['msg'].startswith('domain web01 is a stale copy: its record names host hv2.fleet.example')
    assert 'restore refuses it' in instance['msg'] and 'force=true' in instance['msg']
    assert record_of(conn, 'web01') == before
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_SHUTOFF


def test_restore_refuses_a_copy_the_fleet_slice_calls_stale_and_force_says_what_it_overrode(conn, define, tmp_path):
    from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
    define('web01')
    run(soft_delete, conn, tmp_path, name=['web01'])
    uuid = conn.lookupByName('web01').UUIDString()
    me = hv.host_identity(conn)
    stale = fleet.stale_copy('stale copy: the authoritative copy is hv2/web01 (active, power running, generation 9) '
                             '(it runs)', 'hv2', [{'host': 'hv2', 'power_state': 'running'}], None,
                             host='hv3', name='web01', uuid=uuid)
    entry = dict(fleet.host_entry(me), stale={uuid: stale})
    part = fleet.make_slice('hv3', entry, {}, [me, HV2], fleet='hypervisors',
                            built_at=_record.format_time(_record.utcnow()))
    before = record_of(conn, 'web01')
    [refused] = run(restore, conn, tmp_path, name=['web01'], fleet=part)[0]['instances']
    assert refused['failed'] and 'the authoritative copy is hv2/web01' in refused['msg']
    assert 'Restore the authoritative copy on hv2 instead' in refused['msg']
    assert record_of(conn, 'web01') == before
    would = only(run(restore, conn, tmp_path, check_mode=True, name=['web01'], fleet=part, force=True)[0])
    assert would['overrode'] == stale['reason'] and would['authoritative'] == 'hv2'
    did = only(run(restore, conn, tmp_path, name=['web01'], fleet=part, force=True)[0])
    assert did['action'] == 'restored' and did['overrode'] == stale['reason']
    assert 'overriding rule 9' in did['warnings'][0]


def test_restore_refuses_a_slice_built_for_another_host_before_anything_changes(conn, define, tmp_path):
    from ansible_collections.deferred.libvirt.plugins.module_utils import _errors
    from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
    define('web01')
    run(soft_delete, conn, tmp_path, name=['web01'])
    part = fleet.make_slice('hv2', fleet.host_entry(HV2), {}, [HV2], fleet='hypervisors',
                            built_at=_record.format_time(_record.utcnow()))
    before = record_of(conn, 'web01')
    with pytest.raises(_errors.DeferredError, match='the fleet slice was built for hv2 .* not this host'):
        run(restore, conn, tmp_path, name=['web01'], fleet=part)
    assert record_of(conn, 'web01') == before


# -- terminate and tombstones ---------------------------------------------------------------------------------------

def disk_domain(define, tmp_path, name, inside=True):
    images = tmp_path / 'images'
    images.mkdir(exist_ok=True)
    path = (images if inside else tmp_path) / ('%s.img' % name)
    path.write_bytes(b'\0' * 512)
    define(name, devices='<disk type="file" device="disk"><source file="%s"/><target dev="vda"/></disk>' % path)
    return str(path)


def test_terminate_deletes_owned_disks_undefines_and_leaves_a_finished_tombstone(conn, define, tmp_path):
    owned = disk_domain(define, tmp_path, 'web01')
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert instance['action'] == 'terminated' and instance['disks_deleted'] == [os.path.realpath(owned)]
    assert not os.path.exists(owned)
    assert 'web01' not in [d.name() for d in conn.listAllDomains(0)]
    tomb = StateDir(str(tmp_path / 'state')).read_tombstone(instance['uuid'])
    # Gone with its disks, but without Cinder options nobody asked Cinder about attachments: not finished yet.
    assert tomb['status'] == 'terminated' and not tomb['cinder_checked'] and not tombstones.finished(tomb)


def test_a_terminate_without_cinder_leaves_the_check_to_the_next_run_with_cinder(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    again = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert (again['changed'], again['action'], again['cinder_checked']) == (False, 'none', False)
    assert 'Cinder has not been asked' in again['msg']
    sweep, dummy = run(reclaim, conn, tmp_path)
    assert sweep['instances'] == [] and [t['name'] for t in sweep['extra']['cinder_unchecked']] == ['web01']


def test_terminate_keeps_a_disk_outside_the_instance_directories(conn, define, tmp_path):
    foreign = disk_domain(define, tmp_path, 'web01', inside=False)
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert instance['disks_deleted'] == [] and os.path.exists(foreign)
    assert 'outside the instance directories' in instance['disks_kept'][0]['reason']


def test_terminate_check_mode_plans_the_disks_the_real_run_deletes(conn, define, tmp_path):
    disk_domain(define, tmp_path, 'web01')
    would = only(run(terminate, conn, tmp_path, check_mode=True, name=['web01'])[0])
    assert 'web01' in [d.name() for d in conn.listAllDomains(0)]
    did = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert would['action'] == 'would_terminate'
    assert would['disks_deleted'] == did['disks_deleted'] and would['disks_kept'] == did['disks_kept']


def test_naming_a_terminated_domain_again_is_a_noop(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    again = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert (again['changed'], again['action']) == (False, 'none')
    assert again['msg'].startswith('already terminated at ')


def test_a_tombstone_that_never_says_it_asked_cinder_is_not_finished():
    # vm_reclaim used to read a missing cinder_checked as checked, vm_terminate as unchecked: unchecked wins.
    assert not tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': []})
    assert tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': [], 'cinder_checked': True})
    assert not tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': [{'id': 'v'}],
                                    'cinder_checked': True})


def test_pending_volume_work_stays_in_the_tombstone_without_cinder(conn, define, tmp_path):
    define('web01')
    put(conn, 'web01', dict(_record.empty(), project='web',
                            volumes=[{'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'target': 'vdb',
                                      'delete_on_termination': True}]))
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    assert [v['id'] for v in instance['volumes_pending']] == ['0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00']
    sweep, dummy = run(reclaim, conn, tmp_path)
    assert sweep['extra']['pending'][0]['uuid'] == instance['uuid']
    assert sweep['extra']['finished'] == []


# -- reclaim --------------------------------------------------------------------------------------------------------

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


def set_text(conn, name, text):
    """A record as a hand edit leaves it, written straight into the definition."""
    conn.lookupByName(name).setMetadata(hv.libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, _record.PREFIX, _record.NAMESPACE,
                                        hv.libvirt.VIR_DOMAIN_AFFECT_CONFIG)


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


def test_eligibility_of_a_view_whose_reclaim_at_is_not_a_time_is_skip_not_an_exception():
    view = {'vm_state': 'soft_deleted', 'reclaim_at': '0001-01-01T00:00:00+05:00', 'anomalies': []}
    verdict, reason = eligible.eligibility(view, NOW)
    assert verdict == eligible.SKIP and 'not a time' in reason


# -- attributes, info, errors ----------------------------------------------------------------------------------------

@pytest.mark.parametrize('guard', ['locked', 'protected'])
def test_attributes_clears_a_guard_only_with_force(conn, define, tmp_path, guard):
    define('web01')
    put(conn, 'web01', dict(_record.empty(), project='web', **{guard: True}))
    before = conn.lookupByName('web01').XMLDesc(0)
    [refused] = run(attributes, conn, tmp_path, name=['web01'], **{guard: False})[0]['instances']
    assert refused['failed'] and 'domain web01 is %s' % guard in refused['msg'] and 'needs force=true' in refused['msg']
    assert conn.lookupByName('web01').XMLDesc(0) == before
    done = only(run(attributes, conn, tmp_path, name=['web01'], force=True, **{guard: False})[0])
    assert done['changed'] and record_of(conn, 'web01')[guard] is False


@pytest.mark.parametrize('guard', ['locked', 'protected'])
def test_attributes_sets_a_guard_without_force(conn, define, tmp_path, guard):
    define('web01')
    only(run(attributes, conn, tmp_path, name=['web01'], **{guard: True})[0])
    assert record_of(conn, 'web01')[guard] is True


def test_the_journal_records_the_os_user_beside_the_claimed_actor(conn, define, tmp_path, monkeypatch):
    import pwd
    monkeypatch.setenv('DEFERRED_LIBVIRT_ACTOR', 'awx:mallory')
    define('web01')
    dummy, ctx = run(attributes, conn, tmp_path, name=['web01'], project='web')
    [event] = [e for e in ctx.state.read_events() if e['event_type'] == 'instance.update']
    assert (event['actor'], event['os_user']) == ('awx:mallory', pwd.getpwuid(os.getuid()).pw_name)


def test_attributes_check_mode_reports_the_change_and_writes_nothing(conn, define, tmp_path):
    define('web01')
    would = only(run(attributes, conn, tmp_path, check_mode=True, name=['web01'], project='web')[0])
    assert would['changed'] and would['record']['project'] == 'web'
    assert record_of(conn, 'web01') is None
    did = only(run(attributes, conn, tmp_path, name=['web01'], project='web')[0])
    stamped = ('host', 'generation')  # what the write itself adds: who wrote it, and the count of writes
    assert dict((k, v) for k, v in did['record'].items() if k not in stamped) == \
        dict((k, v) for k, v in would['record'].items() if k not in stamped)
    assert did['record']['generation'] == 1


def test_info_includes_tombstones_when_asked(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    ctx = context(conn, tmp_path, name=['web01'])
    shown = info.run(ctx, info.options(dict(ctx.params, include_deleted=True)))
    assert [(i['name'], i['vm_state']) for i in shown['instances']] == [('web01', 'deleted')]


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


def test_a_sweep_two_days_late_for_an_hourly_retention_is_a_clock_jump_but_not_for_a_weekly_one():
    clock = eligible.Clock(NOW)
    hourly = {'vm_state': 'soft_deleted', 'anomalies': [], 'task_state': None,
              'deleted_at': _record.format_time(NOW - datetime.timedelta(hours=49)),
              'reclaim_at': _record.format_time(NOW - datetime.timedelta(hours=48))}
    assert eligible.eligibility(hourly, clock)[0] == eligible.SKIP
    weekly = dict(hourly, deleted_at=_record.format_time(NOW - datetime.timedelta(days=9)))
    assert eligible.eligibility(weekly, clock)[0] == eligible.DUE
