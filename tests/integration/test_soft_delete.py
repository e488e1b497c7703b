# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_soft_delete on the real hypervisor with real QEMU guests, as an operator runs it.

Guests of kind ``acpi`` power off on the ACPI power button; ``noacpi`` guests
ignore it, so only a destroy stops them. A test usually runs its set-up
(vm_attributes), the soft delete and the vm_info that checks it as tasks of
one playbook: one ansible start-up instead of three on a busy 2-core host.
"""

import datetime
import os
import subprocess

import libvirt
import pytest

import guests
from results import NS, only

SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
INFO = 'deferred.libvirt.vm_info'
ATTRS = 'deferred.libvirt.vm_attributes'
FAILPOINT = 'DEFERRED_LIBVIRT_FAILPOINT'
SEVEN_DAYS = datetime.timedelta(days=7)


def when(text):
    return datetime.datetime.strptime(text, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)


def play(ansible, *steps):
    """Run the steps as the tasks of one playbook; their results, in order.

    A step is (module, args) or (module, args, task keywords). Every task runs
    even when one before it failed (ignore_errors), so a refused soft delete
    is followed by the vm_info that shows nothing changed.
    """
    tasks = []
    for step in steps:
        task = {'name': step[0], step[0]: step[1], 'ignore_errors': True}
        if len(step) > 2:
            task.update(step[2])
        tasks.append(task)
    results = ansible.playbook(tasks).tasks()
    assert len(results) == len(steps), results
    return results


def ok(result):
    assert not result.get('failed'), result
    return result


def power(conn, name):
    return conn.lookupByName(name).state()[0]


def event_types(events, uuid):
    return [e['event_type'] for e in events if e['uuid'] == uuid]


def assert_unchanged(ansible, hypervisor, before, after, state):
    """The record and power state are as they were, and no soft delete was journalled for the domain."""
    for field in ('vm_state', 'task_state', 'deleted_at', 'reclaim_at', 'history', 'locked', 'protected', 'project'):
        assert after[field] == before[field], field
    assert power(hypervisor, before['name']) == state
    assert not [e for e in ansible.events() if e['uuid'] == before['uuid'] and e['event_type'].startswith(
        ('instance.soft_delete', 'instance.shutdown'))]


# -- the clean shutdown ------------------------------------------------------------------------------


def test_acpi_guest_shuts_down_cleanly_and_is_soft_deleted(ansible, make_guest, hypervisor):
    name, uuid = make_guest('a', kind='acpi')
    attrs, result, after = play(ansible, (ATTRS, {'name': name, 'project': 'web'}),
                                (SOFT_DELETE, {'name': name, 'project': 'web'}),
                                (INFO, {'name': name}))
    ok(attrs)
    inst = only(result)
    assert inst['changed'] is True and inst['action'] == 'soft_deleted'
    assert inst['clean_shutdown'] is True
    assert inst['shutdown_attempts'] >= 1
    assert power(hypervisor, name) == libvirt.VIR_DOMAIN_SHUTOFF
    record = only(after)
    assert (record['vm_state'], record['task_state'], record['power_state']) == ('soft_deleted', None, 'shutoff')
    assert record['deleted_at'] == inst['deleted_at']
    assert when(record['reclaim_at']) - when(record['deleted_at']) == SEVEN_DAYS
    assert record['soft_delete_mode'] == 'shutdown'
    last = record['history'][-1]
    assert (last['action'], last['result'], last['request_id']) == ('soft_delete', 'success', result['request_id'])


def test_a_guest_shutdown_is_seen_through_libvirts_stopped_event_not_a_poll(ansible, make_guest, hypervisor):
    name, uuid = make_guest('e', kind='acpi')
    [result] = play(ansible, (SOFT_DELETE, {'name': name}))
    inst = only(ok(result))
    assert (inst['action'], inst['clean_shutdown'], inst['shutdown_attempts']) == ('soft_deleted', True, 1)
    # The STOPPED lifecycle event ended the wait (a poll would say poll), and the guest is off.
    assert inst['shutdown_seen_by'] == 'event'
    assert power(hypervisor, name) == libvirt.VIR_DOMAIN_SHUTOFF
    assert inst['record']['power_state'] == 'shutoff'


def test_soft_delete_journals_nova_events_with_request_id_project_and_result(ansible, make_guest):
    name, uuid = make_guest('a', kind='acpi')
    attrs, result = play(ansible, (ATTRS, {'name': name, 'project': 'web'}), (SOFT_DELETE, {'name': name}))
    ok(attrs)
    events = ansible.events(ok(result)['request_id'])
    assert [e['event_type'] for e in events] == [
        'instance.soft_delete.start', 'instance.shutdown.start', 'instance.shutdown.end', 'instance.soft_delete.end']
    for event in events:
        assert (event['domain'], event['uuid'], event['project']) == (name, uuid, 'web')
        assert event['actor']
    ends = dict((e['event_type'], e) for e in events if e['event_type'].endswith('.end'))
    assert ends['instance.shutdown.end']['result'] == 'success'
    assert ends['instance.shutdown.end']['payload']['clean_shutdown'] is True
    assert ends['instance.soft_delete.end']['result'] == 'success'
    assert events[0]['payload']['reclaim_at'] == only(result)['reclaim_at']


def test_guest_ignoring_acpi_is_destroyed_after_its_own_shutdown_timeout(ansible, make_guest, hypervisor):
    name, uuid = make_guest('n', kind='noacpi')
    # The domain's own 5 s wins over the 60 s default; no shutdown_timeout on the task.
    attrs, result, after = play(ansible, (ATTRS, {'name': name, 'project': 'web', 'shutdown_timeout': 5}),
                                (SOFT_DELETE, {'name': name, 'shutdown_retry_interval': 2}),
                                (INFO, {'name': name}))
    ok(attrs)
    inst = only(result)
    assert inst['action'] == 'soft_deleted'
    assert inst['clean_shutdown'] is False and inst['shutdown_seen_by'] is None
    assert inst['shutdown_timeout'] == 5
    assert 5 <= inst['shutdown_seconds'] < 60
    assert power(hypervisor, name) == libvirt.VIR_DOMAIN_SHUTOFF
    # Re-sent every 2 s until the 5 s passed, visible in the result and in the journal.
    sent = inst['shutdown_sent_at']
    assert len(sent) == inst['shutdown_attempts'] >= 2
    assert all(later - earlier >= 2 for earlier, later in zip(sent, sent[1:]))
    events = dict((e['event_type'], e) for e in ansible.events(result['request_id']))
    assert events['instance.shutdown.start']['payload']['shutdown_timeout'] == 5
    assert events['instance.shutdown.end']['payload']['clean_shutdown'] is False
    assert events['instance.shutdown.end']['payload']['sent_at'] == sent
    assert only(after)['vm_state'] == 'soft_deleted'


def test_several_guests_shut_down_together_with_one_result_each_and_usage_drops(ansible, make_guest, hypervisor):
    acpi, acpi_uuid = make_guest('a', kind='acpi')
    stubborn, stubborn_uuid = make_guest('n', kind='noacpi')
    kept, dummy = make_guest('k', start=False)
    everyone = [acpi, stubborn, kept]
    attrs, timeout, before = play(ansible, (ATTRS, {'name': everyone, 'project': 'batch'}),
                                  (ATTRS, {'name': stubborn, 'shutdown_timeout': 5}),
                                  (INFO, {'name': everyone}))
    ok(attrs), ok(timeout)
    assert ok(before)['usage'] == {'batch': {'instances': 3, 'cores': 3, 'ram_mb': 384}}

    result, after = play(ansible, (SOFT_DELETE, {'name': [acpi, stubborn], 'project': 'batch',
                                                 'shutdown_retry_interval': 2}),
                         (INFO, {'name': everyone}))
    by_name = dict((i['name'], i) for i in ok(result)['instances'])
    assert set(by_name) == {acpi, stubborn}
    assert by_name[acpi]['clean_shutdown'] is True and by_name[stubborn]['clean_shutdown'] is False
    assert all(i['action'] == 'soft_deleted' and i['failed'] is False for i in by_name.values())
    # Concurrent, not one after the other: each guest's shutdown began before the other's ended.
    order = [(e['event_type'], e['uuid']) for e in ansible.events(result['request_id'])]
    for one, other in ((acpi_uuid, stubborn_uuid), (stubborn_uuid, acpi_uuid)):
        assert order.index(('instance.shutdown.start', one)) < order.index(('instance.shutdown.end', other))
    assert ok(after)['usage'] == {'batch': {'instances': 1, 'cores': 1, 'ram_mb': 128}}
    assert power(hypervisor, acpi) == power(hypervisor, stubborn) == libvirt.VIR_DOMAIN_SHUTOFF


# -- states and guards ---------------------------------------------------------------------------------


def test_soft_deleting_again_keeps_deleted_at_and_reclaim_at(ansible, make_guest):
    name, dummy = make_guest('s', start=False)
    # A later run with another interval must neither reset the clock nor move reclaim_at.
    first, again, after = play(ansible, (SOFT_DELETE, {'name': name}),
                               (SOFT_DELETE, {'name': name, 'reclaim_interval': '1h'}),
                               (INFO, {'name': name}))
    first = only(first)
    inst = only(again)
    assert again['changed'] is False and inst['changed'] is False
    assert inst['action'] == 'none'
    assert (inst['deleted_at'], inst['reclaim_at']) == (first['deleted_at'], first['reclaim_at'])
    record = only(after)
    assert (record['deleted_at'], record['reclaim_at']) == (first['deleted_at'], first['reclaim_at'])
    assert [h['action'] for h in record['history']] == ['soft_delete']
    assert ansible.events(again['request_id']) == []


def test_locked_domain_is_refused_and_left_running(ansible, make_guest, hypervisor):
    name, dummy = make_guest('l', kind='acpi')
    attrs, before, result, after = play(ansible, (ATTRS, {'name': name, 'locked': True, 'lock_reason': 'INC-42'}),
                                        (INFO, {'name': name}),
                                        (SOFT_DELETE, {'name': name}),
                                        (INFO, {'name': name}))
    ok(attrs)
    assert result['failed'] is True
    [inst] = result['instances']
    assert inst['failed'] is True
    assert name in inst['msg'] and 'locked' in inst['msg'] and 'INC-42' in inst['msg'] and 'force' in inst['msg']
    assert_unchanged(ansible, hypervisor, only(before), only(after), libvirt.VIR_DOMAIN_RUNNING)


def test_locked_domain_is_soft_deleted_with_force(ansible, make_guest):
    name, dummy = make_guest('l', start=False)
    attrs, result, after = play(ansible, (ATTRS, {'name': name, 'locked': True}),
                                (SOFT_DELETE, {'name': name, 'force': True}),
                                (INFO, {'name': name}))
    ok(attrs)
    assert only(result)['action'] == 'soft_deleted'
    record = only(after)
    assert record['vm_state'] == 'soft_deleted' and record['locked'] is True


def test_protected_domain_is_refused_even_with_force(ansible, make_guest, hypervisor):
    name, dummy = make_guest('p', start=False)
    attrs, before, result, after = play(ansible, (ATTRS, {'name': name, 'protected': True}),
                                        (INFO, {'name': name}),
                                        (SOFT_DELETE, {'name': name, 'force': True}),
                                        (INFO, {'name': name}))
    ok(attrs)
    assert result['failed'] is True
    assert name in result['msg'] and 'protected' in result['msg']
    assert_unchanged(ansible, hypervisor, only(before), only(after), libvirt.VIR_DOMAIN_SHUTOFF)


def test_domain_of_another_project_is_refused(ansible, make_guest, hypervisor):
    name, dummy = make_guest('w', start=False)
    attrs, before, result, after = play(ansible, (ATTRS, {'name': name, 'project': 'alpha'}),
                                        (INFO, {'name': name}),
                                        (SOFT_DELETE, {'name': name, 'project': 'beta'}),
                                        (INFO, {'name': name}))
    ok(attrs)
    assert result['failed'] is True
    assert name in result['msg'] and 'beta' in result['msg'] and 'alpha' in result['msg']
    assert_unchanged(ansible, hypervisor, only(before), only(after), libvirt.VIR_DOMAIN_SHUTOFF)


def test_domain_with_another_task_in_progress_is_refused(ansible, make_guest, hypervisor):
    name, dummy = make_guest('r', start=False)
    subprocess.run(['virsh', '-c', 'qemu:///system', 'metadata', name, '--uri', NS, '--key', 'deferred', '--config',
                    '--set', '<lifecycle version="1"><vm_state>soft_deleted</vm_state><task_state>restoring'
                    '</task_state><deleted_at>2030-01-01T00:00:00Z</deleted_at><reclaim_at>2030-01-08T00:00:00Z'
                    '</reclaim_at></lifecycle>'], check=True, capture_output=True)
    before, result, after = play(ansible, (INFO, {'name': name}), (SOFT_DELETE, {'name': name}),
                                 (INFO, {'name': name}))
    assert result['failed'] is True
    assert name in result['msg'] and 'restoring' in result['msg']
    assert_unchanged(ansible, hypervisor, only(before), only(after), libvirt.VIR_DOMAIN_SHUTOFF)


def test_paused_guest_is_soft_deleted(ansible, make_guest, hypervisor):
    name, dummy = make_guest('z', kind='acpi')
    hypervisor.lookupByName(name).suspend()
    before, result, after = play(ansible, (INFO, {'name': name}), (SOFT_DELETE, {'name': name}),
                                 (INFO, {'name': name}))
    assert only(before)['vm_state'] == 'paused'
    assert only(result)['action'] == 'soft_deleted'
    assert power(hypervisor, name) == libvirt.VIR_DOMAIN_SHUTOFF
    assert only(after)['vm_state'] == 'soft_deleted'
    [start] = [e for e in ansible.events(result['request_id']) if e['event_type'] == 'instance.shutdown.start']
    assert start['payload']['power_state'] == 'paused'


def test_stopped_guest_is_soft_deleted_without_a_shutdown(ansible, make_guest):
    name, dummy = make_guest('o', start=False)
    result, after = play(ansible, (SOFT_DELETE, {'name': name}), (INFO, {'name': name}))
    inst = only(result)
    assert inst['action'] == 'soft_deleted'
    assert inst['shutdown_attempts'] == 0
    assert only(after)['vm_state'] == 'soft_deleted'


# -- check and diff mode -----------------------------------------------------------------------------


def test_check_mode_reports_reclaim_at_and_changes_nothing(ansible, make_guest, hypervisor):
    name, dummy = make_guest('c', kind='acpi')
    asked = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)
    before, result, after = play(ansible, (INFO, {'name': name}),
                                 (SOFT_DELETE, {'name': name, 'reclaim_interval': '2d'}, {'check_mode': True}),
                                 (INFO, {'name': name}))
    inst = only(result)
    assert result['changed'] is True and inst['action'] == 'would_soft_delete'
    reclaim_at = when(inst['reclaim_at'])
    assert asked + datetime.timedelta(days=2) <= reclaim_at <= asked + datetime.timedelta(days=2, minutes=10)
    assert_unchanged(ansible, hypervisor, only(before), only(after), libvirt.VIR_DOMAIN_RUNNING)
    assert only(after)['managed'] is False


def test_check_mode_diff_of_managed_save_shows_the_saved_image(ansible, make_guest, hypervisor):
    name, dummy = make_guest('c', kind='acpi')
    result = ansible.task(SOFT_DELETE, name=name, check=True, diff=True, mode='managed_save')
    [diff] = ok(result)['diff']
    assert (diff['before']['managed_save'], diff['after']['managed_save']) == (False, True)
    assert diff['after']['soft_delete_mode'] == 'managed_save'
    assert power(hypervisor, name) == libvirt.VIR_DOMAIN_RUNNING
    assert hypervisor.lookupByName(name).hasManagedSaveImage(0) == 0


def test_diff_mode_shows_the_record_before_and_after(ansible, make_guest):
    name, dummy = make_guest('d', start=False)
    attrs, result = play(ansible, (ATTRS, {'name': name, 'project': 'web'}),
                         (SOFT_DELETE, {'name': name}, {'diff': True}))
    ok(attrs)
    [diff] = ok(result)['diff']
    assert diff['before']['vm_state'] == 'stopped' and diff['before']['deleted_at'] is None
    assert diff['after']['vm_state'] == 'soft_deleted'
    assert diff['after']['deleted_at'] == result['instances'][0]['deleted_at']
    assert diff['after']['project'] == 'web'


# -- managed save, durations -------------------------------------------------------------------------


def test_managed_save_mode_keeps_the_guest_memory_in_a_managed_save_image(ansible, make_guest, hypervisor):
    name, dummy = make_guest('m', kind='acpi')
    result, after = play(ansible, (SOFT_DELETE, {'name': name, 'mode': 'managed_save'}), (INFO, {'name': name}))
    inst = only(result)
    assert inst['action'] == 'soft_deleted' and inst['mode'] == 'managed_save'
    assert inst['shutdown_seen_by'] is None  # saved, not shut down: no wait
    assert hypervisor.lookupByName(name).hasManagedSaveImage(0) == 1
    record = only(after)
    assert (record['vm_state'], record['power_state'], record['managed_save'], record['soft_delete_mode']) == \
        ('soft_deleted', 'shutoff', True, 'managed_save')


def test_managed_save_mode_of_a_stopped_guest_records_a_plain_shutdown(ansible, make_guest):
    name, dummy = make_guest('m', start=False)
    result, after = play(ansible, (SOFT_DELETE, {'name': name, 'mode': 'managed_save'}), (INFO, {'name': name}))
    assert only(result)['mode'] == 'shutdown'
    record = only(after)
    assert (record['vm_state'], record['managed_save'], record['soft_delete_mode']) == \
        ('soft_deleted', False, 'shutdown')


def test_domain_reclaim_interval_wins_over_the_module_option(ansible, make_guest):
    own, dummy = make_guest('own', start=False)
    plain, dummy = make_guest('plain', start=False)
    attrs, result, after = play(ansible, (ATTRS, {'name': own, 'reclaim_interval': '3d'}),
                                (SOFT_DELETE, {'name': [own, plain], 'reclaim_interval': '1d'}),
                                (INFO, {'name': [own, plain]}))
    ok(attrs)
    reported = dict((i['name'], i['reclaim_at']) for i in ok(result)['instances'])
    records = dict((i['name'], i) for i in ok(after)['instances'])
    for name, days in ((own, 3), (plain, 1)):
        record = records[name]
        assert when(record['reclaim_at']) - when(record['deleted_at']) == datetime.timedelta(days=days)
        assert record['reclaim_at'] == reported[name]


@pytest.mark.parametrize('option, value, says', [
    ('reclaim_interval', 'soon', 'not a duration'),
    ('shutdown_timeout', -5, 'negative'),
    ('shutdown_retry_interval', 0, 'more than zero'),
])
def test_invalid_duration_fails_and_changes_nothing(ansible, make_guest, hypervisor, option, value, says):
    name, dummy = make_guest('v', start=False)
    before, result, after = play(ansible, (INFO, {'name': name}), (SOFT_DELETE, {'name': name, option: value}),
                                 (INFO, {'name': name}))
    assert result['failed'] is True
    assert option in result['msg'] and says in result['msg']
    assert_unchanged(ansible, hypervisor, only(before), only(after), libvirt.VIR_DOMAIN_SHUTOFF)


# -- recovery and terminate ------------------------------------------------------------------------


def test_interrupted_soft_delete_is_finished_by_the_next_run(ansible, make_guest, hypervisor):
    name, uuid = make_guest('i', kind='acpi')
    # The fail point SIGKILLs the module right after the record says soft_deleting.
    killed, halfway = play(ansible, (SOFT_DELETE, {'name': name},
                                     {'environment': {FAILPOINT: 'soft_delete.after_start'}}),
                           (INFO, {'name': name}))
    assert killed['failed'] is True
    halfway = only(halfway)
    assert halfway['task_state'] == 'soft_deleting' and halfway['deleted_at']
    assert power(hypervisor, name) == libvirt.VIR_DOMAIN_RUNNING

    again, after = play(ansible, (SOFT_DELETE, {'name': name}), (INFO, {'name': name}))
    inst = only(again)
    assert inst['changed'] is True and inst['resumed'] is True
    assert inst['deleted_at'] == halfway['deleted_at'] and inst['reclaim_at'] == halfway['reclaim_at']
    record = only(after)
    assert (record['vm_state'], record['task_state']) == ('soft_deleted', None)
    assert record['deleted_at'] == halfway['deleted_at']
    assert power(hypervisor, name) == libvirt.VIR_DOMAIN_SHUTOFF
    assert event_types(ansible.events(), uuid).count('instance.soft_delete.start') == 1
    assert event_types(ansible.events(), uuid)[-1] == 'instance.soft_delete.end'


def test_reclaim_interval_zero_terminates_the_domain_after_a_clean_shutdown(ansible, make_guest, hypervisor):
    name, uuid = make_guest('t', kind='acpi')
    attrs, result = play(ansible, (ATTRS, {'name': name, 'project': 'web'}),
                         (SOFT_DELETE, {'name': name, 'reclaim_interval': 0, 'allow_terminate': True}))
    ok(attrs)
    inst = only(result)
    assert inst['action'] == 'terminated'
    assert inst['clean_shutdown'] is True
    with pytest.raises(libvirt.libvirtError):
        hypervisor.lookupByName(name)
    tomb = ansible.tombstone(uuid)
    assert (tomb['name'], tomb['project']) == (name, 'web') and tomb['terminated_at']
    # As Nova's delete writes them: the guest's power-off between the delete's start and end.
    assert [e['event_type'] for e in ansible.events(result['request_id'])] == [
        'instance.delete.start', 'instance.shutdown.start', 'instance.shutdown.end', 'instance.delete.end']


def test_reclaim_interval_zero_without_allow_terminate_leaves_the_running_guest_and_its_disks(
        ansible, make_guest, hypervisor, scratch):
    """Issue 25 item 3: a soft delete with retention 0 destroyed the VM for good, silently. Without allow_terminate it
    is refused, naming the domain, and nothing is shut down or deleted; with it, it terminates and says so loudly."""
    disk = guests.make_disk(scratch('/var/lib/libvirt/images', 'data.qcow2'))
    name, uuid = make_guest('t', kind='acpi', disks=[{'path': disk, 'target': 'vdb'}])
    refused, info = play(ansible, (SOFT_DELETE, {'name': name, 'reclaim_interval': '0s', 'shutdown_timeout': 30}),
                         (INFO, {'name': name}))
    assert refused['failed'] is True
    assert name in refused['msg'] and 'terminates at once' in refused['msg'] and 'allow_terminate' in refused['msg']
    assert 'nothing was changed (no domain was shut down)' in refused['msg']
    assert refused['refused'] == [name]
    assert power(hypervisor, name) == libvirt.VIR_DOMAIN_RUNNING
    assert only(info)['vm_state'] == 'active' and os.path.exists(disk)
    assert ansible.tombstone(uuid) is None and ansible.events(refused['request_id']) == []

    done = ansible.task(SOFT_DELETE, name=name, reclaim_interval='0s', shutdown_timeout=30,
                        instance_dirs=['/var/lib/libvirt/images'], allow_terminate=True)
    inst = only(done)
    assert inst['action'] == 'terminated' and inst['disks_deleted'] == [disk]
    assert 'TERMINATED, not soft-deleted' in inst['msg']
    assert any('%s was TERMINATED' % name in w for w in done['warnings']), done.get('warnings')
    assert not os.path.exists(disk)
    with pytest.raises(libvirt.libvirtError):
        hypervisor.lookupByName(name)


def test_reclaim_interval_zero_again_reports_already_terminated(ansible, make_guest):
    name, uuid = make_guest('t', start=False)
    only(ansible.task(SOFT_DELETE, name=name, reclaim_interval=0, allow_terminate=True))
    tomb = ansible.tombstone(uuid)
    again = ansible.task(SOFT_DELETE, name=name, reclaim_interval=0, allow_terminate=True)
    inst = only(again)
    assert again['changed'] is False and inst['action'] == 'none'
    assert 'already terminated' in inst['msg']
    assert ansible.tombstone(uuid) == tomb
    assert ansible.events(again['request_id']) == []


def test_soft_deleting_a_terminated_domain_is_an_error(ansible, make_guest):
    name, uuid = make_guest('t', start=False)
    terminated, result = play(ansible, ('deferred.libvirt.vm_terminate', {'name': name}), (SOFT_DELETE, {'name': name}))
    ok(terminated)
    assert result['failed'] is True
    assert name in result['msg'] and 'terminated' in result['msg']
    assert ansible.events(result['request_id']) == []
