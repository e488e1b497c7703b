# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""A fleet with shared storage and migration (issue 13, rules 9-11 and the restore onto another host).

hv2 and hv3 are the two independent hypervisors of tests/testbed/fleet.sh, each with its own hostname and host
UUID, reached over SSH; both see /srv/shared-images, the same directory, as an NFS export would be seen, and
guests migrate between them with ``virsh migrate`` run on the source host, as an operator runs it. The playbooks
run over both as AWX runs them.

The first tests prove the test bed itself (distinct hosts, one shared file, migrations) and the record's host and
generation on real daemons. The tests marked ``fleet_rules`` are the issue's scenarios, through the roles and
playbooks: they assert what rules 9-11 promise. Every test runs by default; the marker runs the scenarios alone
(``pytest -m fleet_rules tests/integration/test_fleet_safety.py``).
"""

import glob
import json
import os
import signal
import subprocess
import time

import libvirt
import pytest
import yaml

import cinder_helpers as ch
import guests
from fleet_support import (ANSIBLE_PLAYBOOK, SHARED_DIR, host_identity, migrate, named_task, run_playbook, ssh, task_on,
                           tasks_on, wait_past, write_inventory)
from together import Started

ATTRS = 'deferred.libvirt.vm_attributes'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
RESTORE = 'deferred.libvirt.vm_restore'
INFO = 'deferred.libvirt.vm_info'
BOOT_TIMEOUT = 180
FAKETIME_LIB = '/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1'
INACTIVE_XML = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE

fleet_rules = pytest.mark.fleet_rules


@pytest.fixture
def shared(prefix):
    """shared('web') -> a new 16 MiB qcow2 image in the shared directory; every one with the prefix is removed after."""
    def make(suffix):
        return guests.make_disk(os.path.join(SHARED_DIR, '%s%s.qcow2' % (prefix, suffix)))
    yield make
    for path in glob.glob(os.path.join(SHARED_DIR, prefix + '*')):
        if os.path.isdir(path):
            subprocess.run(['rm', '-rf', '--one-file-system', path], check=False)
        else:
            os.unlink(path)


@pytest.fixture
def cloud():
    """The test bed's Cinder as a cloud dict: the hosts reach it without the control node's environment."""
    with open(ch.CLOUDS_YAML) as handle:
        return yaml.safe_load(handle)['clouds']['testbed']


@pytest.fixture
def inventory(fleet, state_dir, tmp_path, cloud):
    """hv2 and hv3 over SSH; the shared directory is an instance directory, so rule 6 alone would delete there."""
    return write_inventory(str(tmp_path / 'inventory.json'), fleet, state_dir, hosts_over_ssh=('hv2', 'hv3'),
                           local=False, group_vars={'deferred_libvirt_cloud': cloud,
                                                    'deferred_libvirt_instance_dirs': ['/var/lib/libvirt/images',
                                                                                       SHARED_DIR]})


def ok(result):
    assert not result.get('failed'), result
    return result


def owned(ansible, inventory, host, name, project, **more):
    ok(task_on(ansible, inventory, host, ATTRS, name=name, project=project, user='alice', **more))


def soft_delete(ansible, inventory, host, name, project, interval='1h', give_owner=False):
    """vm_soft_delete of ``name`` on ``host``; with ``give_owner``, owned() first, in the same play. Returns the
    domain's result."""
    steps = [(SOFT_DELETE, {'name': name, 'project': project, 'reclaim_interval': interval})]
    if give_owner:
        steps.insert(0, (ATTRS, {'name': name, 'project': project, 'user': 'alice'}))
    results = [ok(r) for r in tasks_on(ansible, inventory, host, *steps)]
    return results[-1]['instances'][0]


def record_on(ansible, inventory, host, name):
    """vm_info's record of ``name`` on ``host``, None when it is not defined there."""
    result = ok(task_on(ansible, inventory, host, INFO))
    found = [i for i in result['instances'] if i['name'] == name]
    return found[0] if found else None


def disk(path, target='vdb'):
    return {'path': path, 'target': target}


def copy_definition(source, target, name):
    """Define on ``target`` the definition (with its record) ``source`` has: what an operator does when a host died."""
    target.conn.defineXML(source.conn.lookupByName(name).XMLDesc(INACTIVE_XML))


def running(host, name):
    try:
        return host.conn.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    except libvirt.libvirtError:
        return False


def sweep(ansible, inventory, project, env=None, plays=None):
    result = run_playbook(ansible, plays or 'deferred.libvirt.reclaim', inventory,
                          extra_vars=[{'reclaim_project': project}], env=env)
    summary = named_task(result, 'Sum up the run over every host', 'hv2')['ansible_facts']['reclaim_summary']
    return result, summary


# -- the test bed ---------------------------------------------------------------------------------------------------

def test_fleet_hosts_have_their_own_hostname_and_host_uuid(fleet, hypervisor):
    identities = dict((host, host_identity(fleet, host)) for host in ('hv2', 'hv3'))

    assert identities['hv2'][1] == 'hv2' and identities['hv3'][1] == 'hv3'
    assert identities['hv2'][0] != identities['hv3'][0]
    assert identities['hv2'][0] == fleet['hv2']['host_uuid'] and identities['hv3'][0] == fleet['hv3']['host_uuid']
    assert hypervisor.getHostname() not in ('hv2', 'hv3')
    # Over SSH, by name, from the other host: how a migration reaches it.
    assert ssh('hv2', 'hostname; ssh hv3 hostname').stdout.split() == ['hv2', 'hv3']
    assert ssh('hv3', 'virsh -c qemu+ssh://hv2/system hostname').stdout.strip() == 'hv2'


def test_a_record_written_on_a_fleet_host_names_that_host(ansible, inventory, fleet, hv3, project):
    name, uuid = hv3.make('web', start=False)

    owned(ansible, inventory, 'hv3', name, project)
    first = record_on(ansible, inventory, 'hv3', name)
    owned(ansible, inventory, 'hv3', name, project, locked=True)
    second = record_on(ansible, inventory, 'hv3', name)
    info = ok(task_on(ansible, inventory, 'hv3', INFO, name=name))

    host_uuid, hostname = host_identity(fleet, 'hv3')
    assert first['host'] == {'uuid': host_uuid, 'hostname': 'hv3'} == second['host']
    assert (first['generation'], second['generation']) == (1, 2)
    assert info['hypervisor'] == {'uuid': host_uuid, 'hostname': 'hv3'}


def test_the_shared_directory_is_the_same_file_on_every_host(shared, prefix):
    path = shared('probe')
    with open(path, 'ab') as handle:
        handle.write(prefix.encode())

    seen = dict((host, ssh(host, 'stat -c "%%d %%i %%s" %s; md5sum < %s' % (path, path)).stdout.split())
                for host in ('hv2', 'hv3'))
    ssh('hv3', 'echo from-hv3 >> %s' % path)

    here = os.stat(path)
    assert seen['hv2'] == seen['hv3']
    assert seen['hv2'][:2] == [str(here.st_dev), str(here.st_ino)]
    with open(path, 'rb') as handle:
        assert handle.read().endswith(b'from-hv3\n')
    # Each host's own images directory stays its own.
    assert ssh('hv2', 'stat -c %i /var/lib/libvirt/images').stdout != ssh('hv3', 'stat -c %i /var/lib/libvirt/images').stdout


def test_offline_migration_without_undefinesource_leaves_a_copy_with_its_record_on_both_hosts(
        ansible, inventory, hv2, hv3, shared, project):
    name, uuid = hv2.make('web', start=False, disks=[disk(shared('web'))])
    soft_delete(ansible, inventory, 'hv2', name, project, give_owner=True)

    migrate('hv2', 'hv3', name, '--offline', '--persistent')

    on2, on3 = record_on(ansible, inventory, 'hv2', name), record_on(ansible, inventory, 'hv3', name)
    assert on2['uuid'] == on3['uuid'] == uuid
    assert on2['vm_state'] == on3['vm_state'] == 'soft_deleted'
    # The record travelled unchanged: it still names hv2, at the same generation. That is the stale copy.
    assert on2['host'] == on3['host'] and on3['host']['hostname'] == 'hv2'
    assert on2['generation'] == on3['generation']


def test_offline_migration_with_undefinesource_moves_the_domain(ansible, inventory, hv2, hv3, shared, project):
    name, uuid = hv2.make('web', start=False, disks=[disk(shared('web'))])
    owned(ansible, inventory, 'hv2', name, project)

    migrate('hv2', 'hv3', name, '--offline', '--persistent', '--undefinesource')

    assert not hv2.exists(name) and hv3.exists(name)
    assert record_on(ansible, inventory, 'hv3', name)['project'] == project


def test_live_migration_of_a_running_guest_needs_unsafe_and_keeps_it_running(hv2, hv3, shared):
    name, uuid = hv2.make('web', start=True, disks=[disk(shared('web'))])
    before = guests.uptime_seen(name) or 0

    refused = ssh('hv2', 'virsh migrate --live --persistent --undefinesource %s qemu+ssh://hv3/system' % name,
                  check=False)
    migrate('hv2', 'hv3', name, '--live', '--persistent', '--undefinesource', '--unsafe')
    time.sleep(2)

    # libvirt cannot tell that a bind-mounted (or NFS) directory is shared: without --unsafe it refuses.
    assert refused.returncode != 0 and 'unsafe' in refused.stderr.lower()
    assert not hv2.exists(name) and running(hv3, name)
    assert guests.uptime_seen(name) > before  # the same guest, not a fresh boot
    # And it still answers ACPI on its new host.
    hv3.conn.lookupByName(name).shutdown()
    deadline = time.monotonic() + 60
    while running(hv3, name) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not running(hv3, name)


# Alone (exclusive): the index covers every domain of the fleet, and its one stale copy must be this test's.
@pytest.mark.exclusive
def test_fleet_index_from_state_facts_finds_the_stale_copy_a_migration_left(
        ansible, inventory, hv2, hv3, shared, project):
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    migrate('hv2', 'hv3', name, '--offline', '--persistent')
    plays = [{'hosts': 'hypervisors', 'gather_facts': False,
              'roles': [{'role': 'deferred.libvirt.state_facts', 'vars': {'state_facts_project': project}}],
              'post_tasks': [{'name': 'Index the fleet', 'run_once': True, 'ansible.builtin.set_fact': {
                  'index': "{{ hostvars | deferred.libvirt.fleet_index(ansible_play_hosts_all) }}"}}]}]

    result = run_playbook(ansible, plays, inventory)

    assert result.rc == 0, result.stdout[-3000:]
    index = named_task(result, 'Index the fleet', 'hv2')['ansible_facts']['index']
    assert index['complete'] is True
    assert index['domains'][uuid.lower()]['authoritative'] == 'hv2'
    [stale] = index['stale']
    assert (stale['host'], stale['name'], stale['authoritative']) == ('hv3', name, 'hv2')
    # The two copies reference one file: rule 10 sees it as shared.
    shared_keys = [d['disk'] for d in index['shared_disks']]
    st = os.stat(path)
    assert sorted(shared_keys) == sorted(['path:' + path, 'file:%d:%d' % (st.st_dev, st.st_ino)])


# -- rule 9: one authoritative copy -----------------------------------------------------------------------------------

@fleet_rules
@pytest.mark.cinder
def test_stale_copy_left_by_a_migration_is_not_reclaimed_after_a_restore_on_the_new_host(
        ansible, inventory, hv2, hv3, shared, project, prefix):
    """The issue's first scenario, end to end through playbooks/reclaim.yml over both hosts."""
    cinder = ch.connect()
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    volume = ch.create_volume(prefix + 'vol', 1, conn=cinder).id
    try:
        owned(ansible, inventory, 'hv2', name, project,
              volumes=[{'id': volume, 'target': 'vdc', 'delete_on_termination': True}])
        reclaim_at = soft_delete(ansible, inventory, 'hv2', name, project, '2s')['reclaim_at']
        migrate('hv2', 'hv3', name, '--offline', '--persistent')
        # The copy on hv3 still names hv2: rule 9 makes a restore there refuse it unless the operator says so (force),
        # and the result says what was overridden.
        restored = ok(task_on(ansible, inventory, 'hv3', RESTORE, name=name, project=project,
                              start_timeout=BOOT_TIMEOUT, force=True))['instances'][0]
        assert 'its record names host hv2' in restored['overrode']
        # The new host attaches the volume, as Nova's compute on it would.
        ch.attach_like_nova(volume, uuid, mountpoint='/dev/vdc', conn=cinder,
                            connector=dict(ch.DEFAULT_CONNECTOR, host='hv3'))
        wait_past(reclaim_at)

        result, summary = sweep(ansible, inventory, project)

        assert result.rc == 0, result.stdout[-3000:]
        assert summary['reclaimed'] == []
        assert running(hv3, name) and os.path.exists(path)
        assert ch.volume_status(volume, conn=cinder) == 'in-use'
        assert len(ch.attachments_for(uuid, conn=cinder)) == 1
        [skipped] = [s for s in summary['skipped'] if s.get('name') == name]
        assert skipped['host'] == 'hv2'
        assert 'stale' in skipped['reason'] and 'hv3' in skipped['reason']
        assert hv2.exists(name)  # never reclaimed: only an operator's terminate with force undefines it
    finally:
        for attachment in ch.attachments_for(uuid, conn=cinder):
            ch.detach(attachment.id, conn=cinder)
        ch.cleanup(prefix, conn=cinder)


@fleet_rules
@pytest.mark.cinder
def test_one_uuid_soft_deleted_and_expired_on_two_hosts_is_reclaimed_once(
        ansible, inventory, hv2, hv3, shared, project, prefix, state_dir):
    cinder = ch.connect()
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    volume = ch.create_volume(prefix + 'vol', 1, conn=cinder).id
    try:
        ch.attach_like_nova(volume, uuid, mountpoint='/dev/vdc', conn=cinder,
                            connector=dict(ch.DEFAULT_CONNECTOR, host='hv2'))
        owned(ansible, inventory, 'hv2', name, project,
              volumes=[{'id': volume, 'target': 'vdc', 'delete_on_termination': True}])
        reclaim_at = soft_delete(ansible, inventory, 'hv2', name, project, '2s')['reclaim_at']
        copy_definition(hv2, hv3, name)
        wait_past(reclaim_at)

        result, summary = sweep(ansible, inventory, project)

        assert result.rc == 0, result.stdout[-3000:]
        assert [(r['name'], r['uuid']) for r in summary['reclaimed']] == [(name, uuid)]
        assert summary['failed'] == []
        assert not hv2.exists(name) and not hv3.exists(name)
        assert not os.path.exists(path)
        assert ch.volume_status(volume, conn=cinder) is None
        assert ch.attachments_for(uuid, conn=cinder) == []
        tombstones = glob.glob(os.path.join(state_dir, '*', 'tombstones', '*', '%s.json' % uuid))
        assert len(tombstones) == 1
    finally:
        ch.cleanup(prefix, conn=cinder)


# -- rule 10: shared storage ------------------------------------------------------------------------------------------

@fleet_rules
def test_a_disk_shared_by_domains_on_two_hosts_survives_the_terminate_of_either(
        ansible, inventory, hv2, hv3, shared, project):
    path = shared('data')
    a, a_uuid = hv2.make('a', start=False, disks=[disk(path)])
    b, b_uuid = hv3.make('b', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', a, project)
    owned(ansible, inventory, 'hv3', b, project)

    first = run_playbook(ansible, 'deferred.libvirt.terminate', inventory, extra_vars=[{'names': a, 'project': project}])

    assert first.rc == 0, first.stdout[-3000:]
    assert not hv2.exists(a) and hv3.exists(b)
    assert os.path.exists(path)
    done = named_task(first, 'Terminate the domains on their hosts', 'hv2')
    assert path in json.dumps(done), done  # reported as kept

    second = run_playbook(ansible, 'deferred.libvirt.terminate', inventory, extra_vars=[{'names': b, 'project': project}])

    assert second.rc == 0, second.stdout[-3000:]
    # Nothing references it any more: now it is b's own disk in an instance directory, and goes with it (rule 6).
    assert not hv3.exists(b) and not os.path.exists(path)


@fleet_rules
def test_a_golden_image_another_hosts_overlay_is_backed_by_survives_the_reclaim_of_its_own_domain(
        ansible, inventory, hv2, hv3, shared, project, prefix):
    """Rule 10 through backing chains: G is the disk of an expired domain on hv2 and the backing file of an overlay
    that a domain on hv3 uses. A whole-fleet sweep reclaims the expired domain but keeps G, naming its user."""
    golden = shared('golden')
    overlay = guests.make_disk(os.path.join(SHARED_DIR, '%soverlay.qcow2' % prefix), size=None, backing=golden)
    a, a_uuid = hv2.make('a', start=False, disks=[disk(golden)])
    b, b_uuid = hv3.make('b', start=False, disks=[disk(overlay)])
    owned(ansible, inventory, 'hv2', a, project)
    owned(ansible, inventory, 'hv3', b, project)
    reclaim_at = soft_delete(ansible, inventory, 'hv2', a, project, '2s')['reclaim_at']
    before = record_on(ansible, inventory, 'hv3', b)
    wait_past(reclaim_at)

    result, summary = sweep(ansible, inventory, project)

    assert result.rc == 0, result.stdout[-3000:]
    assert [r['name'] for r in summary['reclaimed']] == [a]
    assert not hv2.exists(a)
    # The golden image stays, and the sweep says who still reaches it, and how.
    assert os.path.exists(golden)
    [reclaimed] = summary['reclaimed']
    assert golden not in reclaimed['disks_deleted']
    [kept] = [k for k in reclaimed['disks_kept'] if k['path'] == golden]
    assert b in kept['reason'] and 'hv3' in kept['reason'] and 'backing file' in kept['reason'], kept
    # The overlay's domain is untouched: still defined, same record, its disk and chain intact.
    after = record_on(ansible, inventory, 'hv3', b)
    assert after['generation'] == before['generation'] and after['vm_state'] == before['vm_state']
    assert os.path.exists(overlay)
    [vdb] = [d for d in after['disks'] if d['path'] == overlay]
    st = os.stat(golden)
    assert [(f['path'], f['st_dev'], f['st_ino']) for f in vdb['backing_chain']] == [(golden, st.st_dev, st.st_ino)]
    assert subprocess.run(['qemu-img', 'check', overlay], capture_output=True, check=False).returncode == 0


# -- a state_dir shared by two hosts ----------------------------------------------------------------------------------

def shared_state_inventory(fleet, tmp_path, cloud, state):
    """hv2 and hv3 with one state_dir in the shared directory (write_inventory gives each its own)."""
    path = write_inventory(str(tmp_path / 'shared-state.json'), fleet, str(tmp_path / 'unused'),
                           hosts_over_ssh=('hv2', 'hv3'), local=False, group_vars={'deferred_libvirt_cloud': cloud})
    with open(path) as handle:
        inv = json.load(handle)
    for host in inv['all']['children']['hypervisors']['hosts'].values():
        host['deferred_libvirt_state_dir'] = state
    with open(path, 'w') as handle:
        json.dump(inv, handle)
    return path


@fleet_rules
@pytest.mark.cinder
def test_two_hosts_sharing_a_state_dir_lose_no_journal_line_and_finish_no_foreign_tombstone(
        ansible, fleet, tmp_path, cloud, hv2, hv3, shared, project, prefix):
    """Either the shared state_dir is refused with a clear message and nothing changes, or each host keeps to its
    own work: every journal line whole, and hv3's sweep leaves alone the tombstone of hv2's terminate in flight."""
    state = os.path.join(SHARED_DIR, prefix + 'state')
    inventory = shared_state_inventory(fleet, tmp_path, cloud, state)
    names = {}
    for host, guests_on in (('hv2', hv2), ('hv3', hv3)):
        names[host] = [guests_on.make('%s-%d' % (host, i), start=False)[0] for i in range(4)]
        for name in names[host]:
            owned(ansible, inventory, host, name, project)

    result = run_playbook(ansible, 'deferred.libvirt.soft_delete', inventory, extra_vars=[
        {'names': names['hv2'] + names['hv3'], 'project': project, 'reclaim_interval': '1h'}])

    refused = [h for h in ('hv2', 'hv3') if named_task(result, 'Soft delete the domains on their hosts', h).get('failed')]
    if refused:
        msg = named_task(result, 'Soft delete the domains on their hosts', refused[0])['msg']
        assert 'state_dir' in msg and ('shared' in msg or 'network' in msg), msg
        for host in ('hv2', 'hv3'):
            for name in names[host]:
                assert record_on(ansible, inventory, host, name)['vm_state'] == 'stopped'
        return
    assert result.rc == 0, result.stdout[-3000:]
    with open(os.path.join(state, 'events.jsonl')) as handle:
        lines = handle.read().splitlines()
    events = [json.loads(line) for line in lines]  # a torn or interleaved line fails here
    ends = [e for e in events if e['event_type'] == 'instance.soft_delete.end']
    assert sorted(e['domain'] for e in ends) == sorted(names['hv2'] + names['hv3'])
    assert set(e['host'] for e in ends) == set(['hv2', 'hv3'])

    # hv2's terminate stops (SIGSTOP) right after writing its tombstone, its domain still defined and the volume
    # still attached; hv3's sweep of the same state_dir runs meanwhile.
    cinder = ch.connect()
    victim, victim_uuid = hv2.make('victim', start=False)
    volume = ch.create_volume(prefix + 'vol', 1, conn=cinder).id
    try:
        ch.attach_like_nova(volume, victim_uuid, conn=cinder, connector=dict(ch.DEFAULT_CONNECTOR, host='hv2'))
        owned(ansible, inventory, 'hv2', victim, project,
              volumes=[{'id': volume, 'target': 'vdb', 'delete_on_termination': True}])
        pause = str(tmp_path / 'paused')
        play = [{'hosts': 'hv2', 'gather_facts': False,
                 'environment': {'DEFERRED_LIBVIRT_FAILPOINT': 'terminate.after_tombstone',
                                 'DEFERRED_LIBVIRT_FAILPOINT_PAUSE': pause},
                 'tasks': [{'name': 'terminate', 'deferred.libvirt.vm_terminate': {
                     'name': victim, 'project': project, 'cloud': '{{ deferred_libvirt_cloud }}',
                     'uri': '{{ deferred_libvirt_uri }}', 'state_dir': '{{ deferred_libvirt_state_dir }}'}}]}]
        path = os.path.join(ansible.state_dir + '-plays', 'paused-terminate.json')
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as handle:
            json.dump(play, handle)
        terminate = Started([ANSIBLE_PLAYBOOK, '-i', inventory, path], env=ansible.env())
        deadline = time.monotonic() + 120
        while not os.path.exists(pause) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert os.path.exists(pause), 'the terminate on hv2 never reached its tombstone'
        paused_pid = int(open(pause).read().split()[0])
        try:
            hv3_sweep = task_on(ansible, inventory, 'hv3', 'deferred.libvirt.vm_reclaim', project=project, cloud=cloud,
                                lock_timeout=10)
            assert hv2.exists(victim)
            assert ch.volume_status(volume, conn=cinder) == 'in-use'
            assert len(ch.attachments_for(victim_uuid, conn=cinder)) == 1
            assert victim_uuid not in [f.get('uuid') for f in hv3_sweep.get('finished_tombstones') or []]
            # hv2's work is none of hv3's business: not finished, and not failed either (waiting for hv2's lock).
            assert not hv3_sweep.get('failed'), hv3_sweep
            assert victim not in json.dumps(hv3_sweep.get('instances') or []), hv3_sweep
            # ... and said: hv3's sweep lists the tombstone as hv2's, with the volume that waits in it.
            theirs = [t for t in hv3_sweep['tombstones_of_other_hosts'] if t['uuid'] == victim_uuid]
            assert [(t['host'], t['volumes_pending']) for t in theirs] == [('hv2', 1)], hv3_sweep
        finally:
            os.kill(paused_pid, signal.SIGCONT)
            out, err = terminate.communicate(timeout=300)
        assert terminate.returncode == 0, out[-3000:]
        # The soft_delete.yml run above enrolled hv2 in the fleet (fleet.json), and this terminate has no slice of the
        # index (rule 12): the domain is gone, its volume waits whole for a sweep whose index shows no copy left.
        assert not hv2.exists(victim) and ch.volume_status(volume, conn=cinder) == 'in-use'
        assert len(ch.attachments_for(victim_uuid, conn=cinder)) == 1
        assert 'this host belongs to fleet' in ' '.join((out + err).split()), (out + err)[-3000:]
    finally:
        ch.cleanup(prefix, conn=cinder)


# -- rule 11: clocks --------------------------------------------------------------------------------------------------

@fleet_rules
def test_a_clock_stepped_forward_reclaims_nothing_early(ansible, inventory, hv2, project):
    name, uuid = hv2.make('web', start=False)
    soft_delete(ansible, inventory, 'hv2', name, project, '1h', give_owner=True)
    stepped = {'LD_PRELOAD': FAKETIME_LIB, 'FAKETIME': '+2d'}
    plays = [{'hosts': 'hypervisors', 'gather_facts': False, 'environment': stepped,
              'pre_tasks': [{'name': 'Read the stepped clock', 'ansible.builtin.command': 'date -u +%s',
                             'changed_when': False}],
              'roles': ['deferred.libvirt.reclaim']}]

    result, summary = sweep(ansible, inventory, project, plays=plays)

    # The sweep really ran two days ahead (a wrong RTC at boot, an NTP step) ...
    assert int(named_task(result, 'Read the stepped clock', 'hv2')['stdout']) - time.time() > 47 * 3600
    # ... and reclaimed nothing. The fleet slice the control node built a moment ago is two days old to the stepped
    # clock, so the host refuses it (rule 12) and says its clock may run ahead; had it taken it, a reclaim_at 47
    # intervals behind is implausible (rule 11): either way the domain is reported, not acted on.
    assert summary['reclaimed'] == []
    assert hv2.exists(name)
    assert record_on(ansible, inventory, 'hv2', name)['vm_state'] == 'soft_deleted'
    reasons = [s['reason'] for s in summary['skipped'] if s.get('name') == name] + [
        summary['not_swept'].get('hv2') or '']
    assert any('clock' in reason for reason in reasons), summary


# -- restore onto another host ----------------------------------------------------------------------------------------

@fleet_rules
def test_restore_onto_another_host_with_shared_storage_moves_the_domain_there(ansible, inventory, hv2, hv3, shared,
                                                                              project):
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    before = soft_delete(ansible, inventory, 'hv2', name, project, give_owner=True)
    generation = record_on(ansible, inventory, 'hv2', name)['generation']

    result = run_playbook(ansible, 'deferred.libvirt.restore', inventory, extra_vars=[
        {'names': name, 'project': project, 'restore_host': 'hv3', 'start_timeout': BOOT_TIMEOUT,
         'quota_limits': {'default': {'instances': 10}}}])

    assert result.rc == 0, result.stdout[-3000:]
    assert not hv2.exists(name) and running(hv3, name)
    record = record_on(ansible, inventory, 'hv3', name)
    assert record['uuid'] == uuid and record['vm_state'] == 'active'
    assert record['host']['hostname'] == 'hv3' and record['generation'] > generation
    assert before['deleted_at'] and os.path.exists(path)


@fleet_rules
def test_restore_by_name_of_a_domain_a_migration_copied_restores_the_authoritative_copy_only(
        ansible, inventory, hv2, hv3, shared, project):
    """One UUID on two hosts is one domain with a stale copy, not two domains with one name: the playbook finds
    the copy rule 9 says is authoritative (hv2's record names hv2) and leaves the copy on hv3 as it is."""
    name, uuid = hv2.make('web', start=False, disks=[disk(shared('web'))])
    soft_delete(ansible, inventory, 'hv2', name, project, give_owner=True)
    migrate('hv2', 'hv3', name, '--offline', '--persistent')

    result = run_playbook(ansible, 'deferred.libvirt.restore', inventory, extra_vars=[
        {'names': name, 'project': project, 'start_timeout': BOOT_TIMEOUT,
         'quota_limits': {'default': {'instances': 10}}}])

    assert result.rc == 0, result.stdout[-3000:]
    assert running(hv2, name) and record_on(ansible, inventory, 'hv2', name)['vm_state'] == 'active'
    stale = record_on(ansible, inventory, 'hv3', name)
    assert (stale['uuid'], stale['vm_state'], stale['power_state']) == (uuid, 'soft_deleted', 'shutoff')


@fleet_rules
def test_restore_onto_a_host_that_cannot_see_the_disks_is_refused_before_anything_changes(
        ansible, inventory, fleet, hv2, hv3, project, prefix):
    # A disk in hv2's own images directory: hv3 has a directory at that path, but not this file.
    local = os.path.join(fleet['hv2']['images_from_main_namespace'], prefix + 'local.qcow2')
    guests.make_disk(local)
    seen_by_hv2 = os.path.join('/var/lib/libvirt/images', os.path.basename(local))
    try:
        name, uuid = hv2.make('web', start=False, disks=[disk(seen_by_hv2)])
        before = soft_delete(ansible, inventory, 'hv2', name, project, give_owner=True)

        result = run_playbook(ansible, 'deferred.libvirt.restore', inventory, extra_vars=[
            {'names': name, 'project': project, 'restore_host': 'hv3',
             'quota_limits': {'default': {'instances': 10}}}])

        assert result.rc != 0
        failed = [t['hosts'][h] for p in result.data['plays'] for t in p['tasks'] for h in t['hosts']
                  if t['hosts'][h].get('failed')]
        assert failed and seen_by_hv2 in failed[0]['msg'] and 'hv3' in failed[0]['msg'], failed
        assert 'nothing was changed' in failed[0]['msg']
        assert not hv3.exists(name)
        after = record_on(ansible, inventory, 'hv2', name)
        assert (after['vm_state'], after['deleted_at'], after['reclaim_at']) == (
            'soft_deleted', before['deleted_at'], before['reclaim_at'])
    finally:
        os.unlink(local)


@fleet_rules
def test_two_restores_at_once_cannot_together_exceed_the_project_quota(ansible, inventory, hv2, hv3, project):
    x, x_uuid = hv2.make('x', start=False)
    y, y_uuid = hv3.make('y', start=False)
    owned(ansible, inventory, 'hv2', x, project)
    owned(ansible, inventory, 'hv3', y, project)
    soft_delete(ansible, inventory, 'hv2', x, project)
    soft_delete(ansible, inventory, 'hv3', y, project)
    limits = {project: {'instances': 1}}
    runs = []
    for name in (x, y):
        cmd = [ANSIBLE_PLAYBOOK, '-i', inventory,
               'deferred.libvirt.restore', '-e', json.dumps({'names': name, 'project': project,
                                                             'quota_limits': limits, 'start_timeout': BOOT_TIMEOUT})]
        runs.append(Started(cmd, env=ansible.env()))
    outcomes = [(run.wait(timeout=600), run.output()[0]) for run in runs]

    assert sorted(rc == 0 for rc, dummy in outcomes) == [False, True], [o[1][-2000:] for o in outcomes]
    assert [running(hv2, x), running(hv3, y)].count(True) == 1
    refused = [out for rc, out in outcomes if rc != 0][0]
    assert 'over quota for instances: limit 1, usage 1, request 1' in refused


# -- live migration while both hosts sweep ----------------------------------------------------------------------------

@fleet_rules
def test_live_migration_of_a_restored_guest_while_both_hosts_sweep(ansible, inventory, hv2, hv3, shared, project,
                                                                   state_dir):
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    reclaim_at = soft_delete(ansible, inventory, 'hv2', name, project, '2s', give_owner=True)['reclaim_at']
    ok(task_on(ansible, inventory, 'hv2', RESTORE, name=name, project=project, start_timeout=BOOT_TIMEOUT))
    wait_past(reclaim_at)
    cmd = [ANSIBLE_PLAYBOOK, '-i', inventory,
           'deferred.libvirt.reclaim', '-e', json.dumps({'reclaim_project': project})]
    sweeps = [Started(cmd, env=ansible.env())]

    migrate('hv2', 'hv3', name, '--live', '--persistent', '--undefinesource', '--unsafe')
    sweeps.append(Started(cmd, env=ansible.env()))
    results = [(s.wait(timeout=600), s.output()[0]) for s in sweeps]

    assert [rc for rc, dummy in results] == [0, 0], [out[-2000:] for dummy, out in results]
    assert not hv2.exists(name) and running(hv3, name) and os.path.exists(path)
    record = record_on(ansible, inventory, 'hv3', name)
    assert record['vm_state'] == 'active'
    for host in ('hv2', 'hv3'):
        events = os.path.join(state_dir, host, 'events.jsonl')
        if os.path.exists(events):
            with open(events) as handle:
                assert not [line for line in handle if '"instance.reclaim"' in line and uuid in line]
