# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Hand edits and surprising names against the real hypervisor (issue 12, items 14, 16 and 17).

- A lifecycle record edited by hand into values Python itself cannot hold (a time that leaves the calendar once
  turned into UTC, a number of thousands of digits, a field that holds an element) is that domain's error,
  naming the domain and the field: every other domain of the host is still listed, soft-deleted, restored and
  reclaimed in the same run.
- A UUID selects the domain that has it, not a domain named like it; a key that is one domain's name and another
  domain's UUID is refused as ambiguous, and nothing changes.
- vm_attributes clears locked or protected only with force; the journal names the OS user beside the actor the
  caller claims.

Records are planted the way an operator's hand edit leaves them: ``virsh metadata --set --config``.
"""

import os
import pwd
import subprocess
import sys
import uuid as uuidlib

import libvirt
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'reliability'))

import guests  # noqa: E402
import support  # noqa: E402
from results import only  # noqa: E402

SD, RS, RC = 'deferred.libvirt.vm_soft_delete', 'deferred.libvirt.vm_restore', 'deferred.libvirt.vm_reclaim'
AT, INFO = 'deferred.libvirt.vm_attributes', 'deferred.libvirt.vm_info'
URI = 'qemu:///system'


def new_project():
    return 'hi%s' % uuidlib.uuid4().hex[:10]


def virsh_set_record(name, text):
    """The operator's hand edit: ``virsh metadata NAME --uri NS --key deferred --set TEXT --config``."""
    done = subprocess.run(['virsh', '-c', URI, 'metadata', name, '--uri', support.NAMESPACE, '--key', 'deferred',
                           '--set', text, '--config'], capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr


def definition(hypervisor, name):
    dom = hypervisor.lookupByName(name)
    return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), dom.state()[0]


# (suffix, the record's inner XML, the field the error must name). Each is a value the checks used to miss:
# the first three raised OverflowError or ValueError out of the listing of the whole host.
BROKEN = [
    ('year1', '<vm_state>soft_deleted</vm_state><deleted_at>0001-01-01T00:00:00+05:00</deleted_at>'
              '<reclaim_at>2024-01-01T00:00:00Z</reclaim_at>', 'deleted_at'),
    ('year9999', '<vm_state>soft_deleted</vm_state><deleted_at>2024-01-01T00:00:00Z</deleted_at>'
                 '<reclaim_at>9999-12-31T23:00:00-05:00</reclaim_at>', 'reclaim_at'),
    ('digits', '<vm_state>stopped</vm_state><reclaim_interval>%s</reclaim_interval>' % ('7' * 5000), 'reclaim_interval'),
    ('negative', '<vm_state>stopped</vm_state><shutdown_timeout>-30</shutdown_timeout>', 'shutdown_timeout'),
    ('element', '<vm_state>stopped</vm_state><locked><yes/></locked>', 'locked'),
]


def test_one_malformed_record_never_stops_the_host(ansible, make_guest, hypervisor, prefix):
    project = new_project()
    stop, dummy = make_guest('stop', kind='bios', start=False)
    trash, trash_uuid = make_guest('trash', kind='bios', start=False)
    due, due_uuid = make_guest('due', kind='bios', start=False)
    support.set_record(hypervisor.lookupByName(stop), support.record_xml(vm_state='stopped', project=project))
    support.set_record(hypervisor.lookupByName(trash), support.soft_deleted_record(project, reclaim_in=86400))
    support.set_record(hypervisor.lookupByName(due), support.soft_deleted_record(project, reclaim_in=-60))
    broken = {}
    for suffix, dummy_xml, field in BROKEN:
        broken[suffix] = make_guest(suffix, kind='bios', start=False)[0]
    everyone = [stop, trash, due] + list(broken.values())
    try:
        # Planted last and removed first: until every branch has this fix, such a record stops other listings.
        for suffix, inner, field in BROKEN:
            virsh_set_record(broken[suffix], '<lifecycle version="1">%s<project>%s</project></lifecycle>'
                             % (inner, project))
        before = dict((name, definition(hypervisor, name)) for name in broken.values())
        tasks = [
            {'name': 'info', INFO: {'name': everyone}, 'ignore_errors': True},
            {'name': 'soft delete', SD: {'name': [stop, broken['year1']]}, 'ignore_errors': True},
            {'name': 'restore', RS: {'name': [trash, broken['year9999']]}, 'ignore_errors': True},
            {'name': 'reclaim', RC: {'project': project}, 'ignore_errors': True},
        ]
        shown, soft, back, sweep = ansible.playbook(tasks).tasks()
        after = dict((name, definition(hypervisor, name)) for name in broken.values())
    finally:
        for name in broken.values():
            guests.destroy_all(hypervisor, name)
    assert 'instances' in shown, shown
    views = dict((v['name'], v) for v in shown['instances'])
    assert sorted(views) == sorted(everyone), shown
    for suffix, dummy_xml, field in BROKEN:
        view = views[broken[suffix]]
        assert view['vm_state'] == 'error', view
        assert view['metadata_error'].startswith('domain %s: lifecycle metadata field %s ' % (broken[suffix], field)), view
    assert len(views[broken['digits']]['metadata_error']) < 300, 'the 5000 digits are shown in full'
    # The good domains went through in the same run; the broken ones failed on their own, naming the field.
    by_name = dict((i['name'], i) for i in soft['instances'])
    assert by_name[stop]['action'] == 'soft_deleted' and not by_name[stop].get('failed'), soft
    assert by_name[broken['year1']]['failed'] and 'deleted_at' in by_name[broken['year1']]['msg'], soft
    by_name = dict((i['name'], i) for i in back['instances'])
    assert by_name[trash]['action'] == 'restored' and not by_name[trash].get('failed'), back
    assert by_name[broken['year9999']]['failed'] and 'reclaim_at' in by_name[broken['year9999']]['msg'], back
    assert not sweep.get('failed'), sweep
    assert [r['uuid'] for r in sweep['reclaimed']] == [due_uuid], sweep
    assert support.read_record(hypervisor, due_uuid) is None
    assert support.read_record(hypervisor, trash_uuid)['power_state'] == 'running'
    # Nothing was done to a domain whose record is broken: definition (record included) and power state as planted.
    assert after == before, 'a domain with a broken record was changed'


@pytest.fixture
def look_alike(hypervisor, make_guest):
    """look_alike(name_of) -> (victim name, victim uuid, impostor uuid): an impostor named name_of(victim's UUID).

    Both are shut off and in one project; the impostor (whose name has no test prefix) is removed afterwards.
    """
    made = []

    def make(name_of):
        project = new_project()
        victim, victim_uuid = make_guest('victim', kind='bios', start=False)
        impostor = name_of(victim_uuid)
        made.append(impostor)
        impostor_uuid = guests.define_guest(hypervisor, impostor, kind='bios', start=False).UUIDString()
        for name in (victim, impostor):
            support.set_record(hypervisor.lookupByName(name), support.record_xml(vm_state='stopped', project=project))
        return victim, victim_uuid, impostor_uuid
    yield make
    for name in made:
        guests.destroy_all(hypervisor, name)


def test_a_uuid_selects_its_own_domain_not_one_named_like_it(ansible, hypervisor, look_alike, state_dir):
    victim, victim_uuid, impostor_uuid = look_alike(lambda uuid: uuid)
    impostor_before = definition(hypervisor, victim_uuid)
    inst = only(ansible.task(SD, name=victim_uuid))
    assert (inst['name'], inst['uuid'], inst['action']) == (victim, victim_uuid, 'soft_deleted'), inst
    assert support.read_record(hypervisor, victim_uuid)['record']['vm_state'] == 'soft_deleted'
    assert definition(hypervisor, victim_uuid) == impostor_before, 'the domain named like the UUID was changed'


def test_a_key_that_is_one_domains_name_and_another_domains_uuid_is_refused_as_ambiguous(
        ansible, hypervisor, look_alike, state_dir):
    victim, victim_uuid, impostor_uuid = look_alike(lambda uuid: uuid.upper())
    key = victim_uuid.upper()
    before = (definition(hypervisor, victim), definition(hypervisor, key), support.snapshot_files(state_dir))
    result = ansible.task(SD, name=key)
    assert result.get('failed'), result
    assert ('ambiguous: %s is the name of one domain (UUID %s) and the UUID of another (named %s)'
            % (key, impostor_uuid, victim)) in result['msg'], result['msg']
    assert 'nothing was changed' in result['msg'], result['msg']
    after = (definition(hypervisor, victim), definition(hypervisor, key), support.snapshot_files(state_dir))
    assert after == before, 'a domain or the state_dir changed'


@pytest.mark.parametrize('guard', ['locked', 'protected'])
def test_clearing_locked_or_protected_needs_force_and_the_journal_names_the_os_user(
        ansible, make_guest, hypervisor, state_dir, guard):
    name, uuid = make_guest('g', kind='bios', start=False)
    only(ansible.task(AT, name=name, project=new_project(), **{guard: True}))  # setting a guard needs no force
    assert support.read_record(hypervisor, uuid)['record'][guard] == 'true'
    before = (definition(hypervisor, name), support.snapshot_files(state_dir))
    refused = ansible.task(AT, name=name, **{guard: False})
    assert refused.get('failed'), refused
    [inst] = refused['instances']
    assert 'domain %s is %s' % (name, guard) in inst['msg'] and 'needs force=true' in inst['msg'], inst
    assert (definition(hypervisor, name), support.snapshot_files(state_dir)) == before, 'refused, yet changed'
    done = only(ansible.task(AT, name=name, force=True, env={'DEFERRED_LIBVIRT_ACTOR': 'awx:mallory'},
                             **{guard: False}))
    assert done['changed'] and support.read_record(hypervisor, uuid)['record'][guard] == 'false', done
    [event] = [e for e in ansible.events() if e['event_type'] == 'instance.update' and e['actor'] == 'awx:mallory']
    assert event['os_user'] == pwd.getpwuid(os.getuid()).pw_name, event
    assert event['payload']['changed'] == [guard], event
