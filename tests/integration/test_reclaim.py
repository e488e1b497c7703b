# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_reclaim on the real hypervisor: the sweep a timer runs, as an operator sees it.

Every test owns a project and scopes every sweep to it, so a sweep never
touches another test's domains on the shared hypervisor. Guests are defined
shut off (soft-deleting a shut-off guest needs no shutdown), so only the
restore-versus-reclaim tests boot one.
"""

import os
import re
import subprocess
import sys
import threading
import time
import uuid as uuidlib

import libvirt
import pytest

import guests
from fleet_support import wait_past
from results import NS, Paused, info

RECLAIM = 'deferred.libvirt.vm_reclaim'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
ATTRS = 'deferred.libvirt.vm_attributes'
INFO = 'deferred.libvirt.vm_info'
RESTORE = 'deferred.libvirt.vm_restore'
IMAGES = '/var/lib/libvirt/images'
FAILPOINT = 'DEFERRED_LIBVIRT_FAILPOINT'
FAILPOINT_PAUSE = 'DEFERRED_LIBVIRT_FAILPOINT_PAUSE'
# Generous: several colleagues boot TCG guests on the same two cores.
BOOT_TIMEOUT = 180


# -- helpers -------------------------------------------------------------------------------------------------------

@pytest.fixture
def project():
    """A project of this test alone: every sweep here is scoped to it."""
    return 'rc%s' % uuidlib.uuid4().hex[:10]


def soft_deleted(ansible, make_guest, suffix, project, interval, **guest):
    """A shut-off guest of ``project``, soft-deleted with ``interval``; returns (name, uuid, reclaim_at)."""
    name, uuid = make_guest(suffix, start=False, **guest)
    owned, result = ansible.tasks((ATTRS, {'name': name, 'project': project, 'user': 'alice'}),
                                  (SOFT_DELETE, {'name': name, 'project': project, 'reclaim_interval': interval}))
    assert not owned.get('failed'), owned
    assert not result.get('failed'), result
    [inst] = result['instances']
    return name, uuid, inst['reclaim_at']


def sweep(ansible, project, check=False, env=None, **args):
    return ansible.task(RECLAIM, check=check, env=env, project=project, **args)


def exists(conn, name):
    try:
        conn.lookupByName(name)
        return True
    except libvirt.libvirtError:
        return False


def record_of(name):
    """The lifecycle record as `virsh metadata` shows it."""
    return subprocess.run(['virsh', '-c', 'qemu:///system', 'metadata', name, '--uri', NS, '--config'],
                          check=True, capture_output=True, text=True).stdout


def set_record(name, xml):
    """Write the lifecycle record by hand, as an operator with `virsh metadata --set` would."""
    subprocess.run(['virsh', '-c', 'qemu:///system', 'metadata', name, '--uri', NS, '--key', 'deferred',
                    '--set', xml, '--config'], check=True, capture_output=True, text=True)


def by_name(items):
    return dict((i['name'], i) for i in items)


def reclaim_events(ansible, request_id):
    return [e for e in ansible.events(request_id) if e['event_type'] == 'instance.reclaim']


@pytest.fixture
def immutable(prefix):
    """immutable(suffix) makes a disk file in the images directory that nothing may delete (chattr +i);
    the flag is cleared and the file removed afterwards."""
    made = []

    def make(suffix):
        path = os.path.join(IMAGES, prefix + suffix + '.qcow2')
        guests.make_disk(path)
        made.append(path)
        chattr = subprocess.run(['chattr', '+i', path], capture_output=True, text=True, check=False)
        if chattr.returncode != 0:
            pytest.fail('chattr +i does not work on %s (%s): this test needs a file system with the immutable '
                        'attribute, such as ext4' % (IMAGES, chattr.stderr.strip()))
        return path
    yield make
    for path in made:
        if os.path.exists(path):
            subprocess.run(['chattr', '-i', path], check=False)
            os.unlink(path)


# -- what expires goes, the rest stays ------------------------------------------------------------------------------

def test_expired_domain_is_reclaimed_and_unexpired_one_kept(ansible, make_guest, hypervisor, project):
    old, old_uuid, old_at = soft_deleted(ansible, make_guest, 'old', project, '2s')
    new, new_uuid, new_at = soft_deleted(ansible, make_guest, 'new', project, '1h')
    wait_past(old_at)

    result = sweep(ansible, project)

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert [(r['name'], r['reclaim_at'], r['project']) for r in result['reclaimed']] == [(old, old_at, project)]
    [kept] = result['kept']
    assert (kept['name'], kept['reclaim_at']) == (new, new_at)
    assert 3000 < kept['expires_in'] <= 3600
    assert result['summary'] == {'reclaimed': 1, 'failed': 0, 'skipped': 0, 'kept': 1, 'pending': 0, 'finished': 0,
                                 'disks_pending': 0}
    assert not exists(hypervisor, old)
    assert info(ansible, new)['vm_state'] == 'soft_deleted'
    tomb = ansible.tombstone(old_uuid)
    assert tomb['status'] == 'terminated' and tomb['terminated_at']
    assert tomb['history'][-1]['action'] == 'reclaim'


def test_reclaim_writes_an_instance_reclaim_event_per_domain(ansible, make_guest, project):
    name, uuid, reclaim_at = soft_deleted(ansible, make_guest, 'a', project, '2s')
    wait_past(reclaim_at)

    result = sweep(ansible, project)

    assert not result.get('failed'), result
    [event] = reclaim_events(ansible, result['request_id'])
    assert (event['domain'], event['uuid'], event['project'], event['result']) == (name, uuid, project, 'success')
    assert event['payload']['reclaim_at'] == reclaim_at
    assert event['actor'] and event['host']
    types = [e['event_type'] for e in ansible.events(result['request_id'])]
    assert types == ['instance.delete.start', 'instance.delete.end', 'instance.reclaim']


def test_second_sweep_changes_nothing(ansible, make_guest, project):
    name, uuid, reclaim_at = soft_deleted(ansible, make_guest, 'a', project, '2s')
    wait_past(reclaim_at)
    first = sweep(ansible, project)
    assert [r['name'] for r in first['reclaimed']] == [name], first

    second = sweep(ansible, project)

    assert not second.get('failed'), second
    assert second['changed'] is False
    assert second['reclaimed'] == [] and second['instances'] == [] and second['finished_tombstones'] == []


def test_sweep_of_a_project_leaves_other_projects_alone(ansible, make_guest, hypervisor, project):
    other = project + 'x'
    mine, mine_uuid, mine_at = soft_deleted(ansible, make_guest, 'mine', project, '2s')
    theirs, theirs_uuid, theirs_at = soft_deleted(ansible, make_guest, 'theirs', other, '2s')
    wait_past(max(mine_at, theirs_at))

    result = sweep(ansible, project)

    assert [r['name'] for r in result['reclaimed']] == [mine], result
    assert exists(hypervisor, theirs)
    assert theirs not in [k['name'] for k in result['kept'] + result['skipped_domains']]


# -- rule 1: an incomplete or unreadable record is reported, never reclaimed ----------------------------------

@pytest.mark.parametrize('field', ['reclaim_at', 'deleted_at'])
def test_soft_deleted_domain_missing_a_date_is_reported_and_never_reclaimed(ansible, make_guest, hypervisor,
                                                                            project, field):
    name, uuid, reclaim_at = soft_deleted(ansible, make_guest, 'a', project, '2s')
    xml = record_of(name)
    set_record(name, re.sub(r'\s*<%s>[^<]*</%s>' % (field, field), '', xml))
    assert info(ansible, name)['anomalies'] == ['%s is missing' % field]
    wait_past(reclaim_at)

    result = sweep(ansible, project)

    assert not result.get('failed'), result
    assert result['reclaimed'] == [] and result['changed'] is False
    [skipped] = result['skipped_domains']
    assert (skipped['name'], skipped['uuid']) == (name, uuid)
    assert '%s is missing' % field in skipped['reason'] and 'never reclaimed' in skipped['reason']
    assert any(name in w and '%s is missing' % field in w for w in result['warnings'])
    assert exists(hypervisor, name)
    assert info(ansible, name)['vm_state'] == 'soft_deleted'
    [event] = reclaim_events(ansible, result['request_id'])
    assert (event['domain'], event['result']) == (name, 'skipped')


def test_domain_with_an_unreadable_reclaim_at_is_reported_and_never_reclaimed(ansible, make_guest, hypervisor,
                                                                              project):
    name, uuid, reclaim_at = soft_deleted(ansible, make_guest, 'a', project, '2s')
    xml = record_of(name)
    set_record(name, xml.replace('<reclaim_at>%s</reclaim_at>' % reclaim_at, '<reclaim_at>yesterday</reclaim_at>'))
    wait_past(reclaim_at)

    # An unreadable record has no readable project either: only an unscoped sweep sees it. Check mode, so this
    # sweep of the whole shared hypervisor changes nothing of anyone else's.
    result = ansible.task(RECLAIM, check=True)

    assert not result.get('failed'), result
    assert name not in [r['name'] for r in result['reclaimed']]
    [skipped] = [s for s in result['skipped_domains'] if s['name'] == name]
    assert "'yesterday'" in skipped['reason'] and 'reclaim_at' in skipped['reason']
    assert 'cannot be read' in skipped['reason']
    assert any(name in w and 'yesterday' in w for w in result['warnings'])
    assert exists(hypervisor, name)


# -- one failure never stops the sweep ------------------------------------------------------------------------------

def test_failing_domain_does_not_stop_the_sweep(ansible, make_guest, hypervisor, project, immutable):
    disk = immutable('stuck')
    stuck, stuck_uuid, stuck_at = soft_deleted(ansible, make_guest, 'stuck', project, '2s',
                                               disks=[{'path': disk, 'target': 'vdb'}])
    fine, fine_uuid, fine_at = soft_deleted(ansible, make_guest, 'fine', project, '2s')
    wait_past(max(stuck_at, fine_at))

    result = sweep(ansible, project)

    assert result['failed'] is True
    assert [r['name'] for r in result['reclaimed']] == [fine]
    assert not exists(hypervisor, fine)
    [failed] = result['failed_domains']
    assert (failed['name'], failed['uuid']) == (stuck, stuck_uuid)
    assert 'Operation not permitted' in failed['msg'] and stuck in failed['msg']
    assert stuck in result['msg']
    assert exists(hypervisor, stuck) and os.path.exists(disk)
    assert info(ansible, stuck)['task_state'] == 'deleting'
    events = dict((e['domain'], e['result']) for e in reclaim_events(ansible, result['request_id']))
    assert events == {stuck: 'error', fine: 'success'}


def test_domain_that_failed_is_finished_by_the_next_sweep(ansible, make_guest, hypervisor, project, immutable):
    disk = immutable('stuck')
    stuck, stuck_uuid, stuck_at = soft_deleted(ansible, make_guest, 'stuck', project, '2s',
                                               disks=[{'path': disk, 'target': 'vdb'}])
    wait_past(stuck_at)
    first = sweep(ansible, project)
    assert [f['name'] for f in first['failed_domains']] == [stuck], first
    subprocess.run(['chattr', '-i', disk], check=True)

    second = sweep(ansible, project)

    assert not second.get('failed'), second
    [done] = second['reclaimed']
    assert done['name'] == stuck and done['disks_deleted'] == [disk]
    assert not exists(hypervisor, stuck) and not os.path.exists(disk)
    assert ansible.tombstone(stuck_uuid)['status'] == 'terminated'


# -- guards -------------------------------------------------------------------------------------------------------

def test_protected_and_locked_domains_are_skipped_with_why(ansible, make_guest, hypervisor, project):
    kept, kept_uuid, kept_at = soft_deleted(ansible, make_guest, 'prot', project, '2s')
    held, held_uuid, held_at = soft_deleted(ansible, make_guest, 'lock', project, '2s')
    assert not ansible.task(ATTRS, name=kept, protected=True).get('failed')
    assert not ansible.task(ATTRS, name=held, locked=True, lock_reason='legal hold').get('failed')
    wait_past(max(kept_at, held_at))

    result = sweep(ansible, project)

    assert not result.get('failed'), result
    assert result['reclaimed'] == []
    reasons = dict((s['name'], s['reason']) for s in result['skipped_domains'])
    assert reasons == {kept: 'protected', held: 'locked (legal hold)'}
    assert exists(hypervisor, kept) and exists(hypervisor, held)


# -- check mode and limit -----------------------------------------------------------------------------------------

def test_check_mode_lists_what_would_be_reclaimed_and_when_the_rest_expires(ansible, make_guest, hypervisor,
                                                                            project):
    old, old_uuid, old_at = soft_deleted(ansible, make_guest, 'old', project, '2s')
    new, new_uuid, new_at = soft_deleted(ansible, make_guest, 'new', project, '2h')
    wait_past(old_at)

    result = sweep(ansible, project, check=True)

    assert not result.get('failed'), result
    assert result['changed'] is True
    assert [(r['name'], r['reclaim_at']) for r in result['reclaimed']] == [(old, old_at)]
    assert [i['action'] for i in result['instances']] == ['would_terminate']
    assert [(k['name'], k['reclaim_at']) for k in result['kept']] == [(new, new_at)]
    assert 7000 < result['kept'][0]['expires_in'] <= 7200
    assert exists(hypervisor, old) and info(ansible, old)['vm_state'] == 'soft_deleted'
    assert ansible.events(result['request_id']) == []
    assert ansible.tombstone(old_uuid) is None


def test_limit_reclaims_the_longest_expired_first_and_leaves_the_rest(ansible, make_guest, hypervisor, project):
    first, first_uuid, first_at = soft_deleted(ansible, make_guest, 'first', project, '2s')
    time.sleep(1.1)  # reclaim_at has whole seconds: make the order certain
    second, second_uuid, second_at = soft_deleted(ansible, make_guest, 'second', project, '2s')
    assert first_at < second_at
    wait_past(second_at)

    result = sweep(ansible, project, limit=1)

    assert not result.get('failed'), result
    assert [r['name'] for r in result['reclaimed']] == [first]
    [left] = result['skipped_domains']
    assert left['name'] == second and 'limit of 1' in left['reason']
    assert not exists(hypervisor, first) and exists(hypervisor, second)
    assert [r['name'] for r in sweep(ansible, project, limit=1)['reclaimed']] == [second]


def test_negative_limit_is_refused(ansible, project):
    result = sweep(ansible, project, limit=-1)
    assert result['failed'] is True
    assert result['msg'] == 'limit must be 0 or more, got -1; nothing was changed'


# -- rule 5: pending Cinder work in tombstones ---------------------------------------------------------------

@pytest.mark.cinder
@pytest.mark.ansible_lines
def test_pending_cinder_work_in_a_tombstone_is_finished(collection, hypervisor, state_dir, make_guest, prefix,
                                                        project):
    """A terminate run without Cinder (no cloud given) leaves the volume work pending in the tombstone; the next
    sweep, with Cinder, detaches and deletes the volume and closes the tombstone."""
    import cinder_helpers as ch
    from conftest import Runner
    status = subprocess.run(['bash', os.path.join(os.path.dirname(guests.__file__), 'cinder.sh'), 'status'],
                            capture_output=True, text=True, check=False)
    if status.returncode != 0:
        pytest.fail('the test bed Cinder is not running (tests/testbed/cinder.sh up):\n%s' % status.stdout)
    ansible = Runner(collection, state_dir, env={'OS_CLIENT_CONFIG_FILE': ch.CLOUDS_YAML})
    conn = ch.connect()
    try:
        name, uuid = make_guest('a', start=False)
        volume = ch.create_volume(prefix + 'vol', 1, conn=conn).id
        ch.attach_like_nova(volume, uuid, conn=conn)
        result = ansible.task(ATTRS, name=name, project=project,
                              volumes=[{'id': volume, 'target': 'vdb', 'delete_on_termination': True}])
        assert not result.get('failed'), result
        result = ansible.task('deferred.libvirt.vm_terminate', name=name, project=project)
        assert not result.get('failed'), result
        assert [v['id'] for v in ansible.tombstone(uuid)['volumes_pending']] == [volume]
        assert ch.volume_status(volume, conn=conn) == 'in-use'

        result = sweep(ansible, project, cloud=ch.CLOUD)

        assert not result.get('failed'), result
        # The list an operator registers, on every ansible-core line; ``finished`` has it only before 2.19, where
        # Ansible began to read a result's ``finished`` as its async flag.
        assert result['finished_tombstones'] == [{'name': name, 'uuid': uuid}]
        from ansible.release import __version__
        before_2_19 = tuple(int(part) for part in __version__.split('.')[:2]) < (2, 19)
        assert result['finished'] == ([{'name': name, 'uuid': uuid}] if before_2_19 else True)
        assert result['pending'] == []
        [inst] = result['instances']
        assert inst['action'] == 'pending_finished' and inst['volumes_deleted'] == [volume]
        assert ch.volume_status(volume, conn=conn) is None
        tomb = ansible.tombstone(uuid)
        assert tomb['status'] == 'terminated' and tomb['volumes_pending'] == []
        [end] = [e for e in ansible.events(result['request_id']) if e['event_type'] == 'instance.delete.end']
        assert (end['domain'], end['result'], end['payload']['action']) == (name, 'success', 'pending_finished')
        assert not sweep(ansible, project, cloud=ch.CLOUD)['changed']
    finally:
        ch.cleanup(prefix, conn=conn)


def test_pending_work_without_cinder_stays_pending_and_is_reported(ansible, make_guest, state_dir, project):
    """No Cinder to ask: the tombstone keeps its work and every sweep reports it (the volume id is never
    created in a Cinder; the record only names it)."""
    name, uuid = make_guest('a', start=False)
    volume = str(uuidlib.uuid4())
    result = ansible.task(ATTRS, name=name, project=project, volumes=[{'id': volume, 'delete_on_termination': True}])
    assert not result.get('failed'), result
    assert not ansible.task('deferred.libvirt.vm_terminate', name=name, project=project).get('failed')

    result = sweep(ansible, project)

    assert not result.get('failed'), result
    [pending] = result['pending']
    assert (pending['name'], pending['uuid']) == (name, uuid)
    assert [v['id'] for v in pending['volumes']] == [volume]
    assert 'Cinder is not configured' in pending['volumes'][0]['error']
    assert result['finished_tombstones'] == []
    assert [v['id'] for v in ansible.tombstone(uuid)['volumes_pending']] == [volume]


# -- rule 4: restore and reclaim of the same domain are serialised --------------------------------------------

def test_domain_restored_while_the_sweep_waits_is_not_reclaimed(ansible, make_guest, hypervisor, project, tmp_path):
    name, uuid, reclaim_at = soft_deleted(ansible, make_guest, 'a', project, '2s')
    wait_past(reclaim_at)
    # The sweep has chosen the domain and stops just before taking its lock; a restore gets in first.
    paused = Paused(ansible, tmp_path, 'reclaim.before_lock', RECLAIM, project=project)
    restored = ansible.task(RESTORE, name=name, project=project, start_timeout=BOOT_TIMEOUT)
    assert not restored.get('failed'), restored
    assert restored['instances'][0]['action'] == 'restored'

    result = paused.resume()

    assert not result.get('failed'), result
    assert result['reclaimed'] == []
    [skipped] = result['skipped_domains']
    assert skipped['name'] == name and 'no longer soft-deleted' in skipped['reason']
    assert exists(hypervisor, name)
    assert hypervisor.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    view = info(ansible, name)
    assert (view['vm_state'], view['task_state']) == ('active', None)
    assert ansible.tombstone(uuid) is None
    assert [e['result'] for e in reclaim_events(ansible, result['request_id'])] == ['skipped']


def test_restore_during_a_reclaim_finds_the_domain_gone_and_changes_nothing(ansible, make_guest, hypervisor,
                                                                            project, tmp_path):
    name, uuid, reclaim_at = soft_deleted(ansible, make_guest, 'a', project, '2s')
    wait_past(reclaim_at)
    # The sweep holds the domain's lock and has set task_state deleting when it stops; the restore comes then.
    paused = Paused(ansible, tmp_path, 'terminate.after_start', RECLAIM, project=project)
    restore = {}
    thread = threading.Thread(target=lambda: restore.update(
        ansible.task(RESTORE, name=name, project=project, start_timeout=BOOT_TIMEOUT)))
    thread.start()
    time.sleep(5)  # let the restore reach the domain (it refuses at once, or waits for the lock)

    result = paused.resume()
    thread.join(600)

    assert restore['failed'] is True
    assert name in restore['msg']
    assert not result.get('failed'), result
    assert [r['name'] for r in result['reclaimed']] == [name]
    assert not exists(hypervisor, name)
    assert not [e for e in ansible.events() if e['event_type'].startswith('instance.restore')]


def test_one_hypervisor_listed_twice_in_the_inventory_reclaims_its_domain_once_with_its_disk(
        ansible, make_guest, project, scratch, state_dir, tmp_path):
    """The same libvirtd under two inventory names (by name and by address, or in two groups): the fleet index must
    see one domain, not two tied copies of it. Were it two copies, the sweep would keep the domain for ever, or undefine
    its only definition as a 'stale copy' and leave its disk behind with no tombstone."""
    from fleet_support import named_task, run_playbook, write_inventory
    disk = scratch(IMAGES, 'twice.qcow2')
    guests.make_disk(disk)
    name, uuid, reclaim_at = soft_deleted(ansible, make_guest, 'twice', project, '2s',
                                          disks=[{'path': disk, 'target': 'vdb'}])
    wait_past(reclaim_at)
    local = {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
             'deferred_libvirt_uri': 'qemu:///system', 'deferred_libvirt_state_dir': state_dir}
    inventory = write_inventory(str(tmp_path / 'inventory.json'), {}, state_dir, hosts_over_ssh=(), local=False,
                                extra_hosts={'hv1': dict(local), 'hv1-again': dict(local)})

    result = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}])

    assert result.rc == 0, result.stdout[-3000:]
    shown = named_task(result, 'Show the stale copies, conflicts and shared disks the sweep leaves alone, and hosts '
                               'listed twice', 'hv1')
    index_lines = '\n'.join(shown.get('msg') or [])
    assert 'hv1-again is the same hypervisor as hv1' in index_lines
    sweeps = [named_task(result, 'Sweep the hypervisor', host) for host in ('hv1', 'hv1-again')]
    reclaimed = [d['name'] for s in sweeps for d in s.get('reclaimed') or []]
    assert reclaimed == [name], sweeps
    assert not [d for s in sweeps for d in s.get('stale_undefined') or []]
    assert not os.path.exists(disk)
    [tomb] = ansible.task(INFO, name=[name], include_deleted=True)['instances']
    assert (tomb['vm_state'], tomb['uuid']) == ('deleted', uuid)
