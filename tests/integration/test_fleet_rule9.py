# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rule 9 at any scope (issue 23) on the real fleet: a bound slice, a restore that respects the authoritative copy,
Cinder attachments after a move, ties, and one guarded path for every way a domain is deleted.

hv2 and hv3 are the test bed's independent hypervisors (tests/testbed/fleet.sh), reached over SSH as production
playbooks reach them; stale copies are made as operators make them, with ``virsh migrate --offline --persistent``.
Each test asserts what the operator sees (the task's message) and that nothing changed where it must not.
"""

import base64
import glob
import json
import os
import shutil
import subprocess

import libvirt
import pytest
import yaml

import cinder_helpers as ch
import guests
from fleet_support import (SHARED_DIR, adhoc_on, migrate, named_task, run_playbook, task_on, wait_past,
                           write_inventory)

ATTRS = 'deferred.libvirt.vm_attributes'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
RESTORE = 'deferred.libvirt.vm_restore'
RECLAIM = 'deferred.libvirt.vm_reclaim'
INFO = 'deferred.libvirt.vm_info'
DEFAULTS = {'group/deferred.libvirt.all': {'uri': "{{ deferred_libvirt_uri }}",
                                           'state_dir': "{{ deferred_libvirt_state_dir }}"}}


@pytest.fixture
def shared(prefix):
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
    with open(ch.CLOUDS_YAML) as handle:
        return yaml.safe_load(handle)['clouds']['testbed']


@pytest.fixture
def inventory(fleet, state_dir, tmp_path, cloud):
    return write_inventory(str(tmp_path / 'inventory.json'), fleet, state_dir, hosts_over_ssh=('hv2', 'hv3'),
                           local=False, group_vars={'deferred_libvirt_cloud': cloud,
                                                    'deferred_libvirt_instance_dirs': ['/var/lib/libvirt/images',
                                                                                       SHARED_DIR]})


def ok(result):
    assert not result.get('failed'), result
    return result


def owned(ansible, inventory, host, name, project, **more):
    ok(task_on(ansible, inventory, host, ATTRS, name=name, project=project, user='alice', **more))


def soft_delete(ansible, inventory, host, name, project, interval='1h'):
    return ok(task_on(ansible, inventory, host, SOFT_DELETE, name=name, project=project,
                      reclaim_interval=interval))['instances'][0]


def record_on(ansible, inventory, host, name):
    result = ok(task_on(ansible, inventory, host, INFO))
    found = [i for i in result['instances'] if i['name'] == name]
    return found[0] if found else None


def disk(path, target='vdb'):
    return {'path': path, 'target': target}


def running(host, name):
    try:
        return host.conn.lookupByName(name).state()[0] == libvirt.VIR_DOMAIN_RUNNING
    except libvirt.libvirtError:
        return False


def copied_to_hv3(ansible, inventory, hv2, shared, project):
    """web on hv2 with a disk in the shared directory, owned, and the copy an offline migration that kept its source
    left on hv3 (its record names hv2): (disk path, name, uuid)."""
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    migrate('hv2', 'hv3', name, '--offline', '--persistent')
    return path, name, uuid


def web_with_volume(ansible, inventory, hv2, shared, project, prefix, cinder):
    """web on hv2 (a disk in the shared directory), owned, with a delete_on_termination Cinder volume attached as
    Nova attaches one while it runs on hv2: (disk path, name, uuid, volume id). The caller cleans Cinder up."""
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    volume = ch.create_volume(prefix + 'vol', 1, conn=cinder).id
    ch.attach_like_nova(volume, uuid, mountpoint='/dev/vdc', conn=cinder, connector=dict(ch.DEFAULT_CONNECTOR, host='hv2'))
    owned(ansible, inventory, 'hv2', name, project,
          volumes=[{'id': volume, 'target': 'vdc', 'delete_on_termination': True}])
    return path, name, uuid, volume


def slice_play(on_host, module, args, slice_expr):
    """A play over the fleet that indexes it (state_facts), then runs ``module`` on ``on_host`` with ``slice_expr``
    as its fleet option."""
    task = {'name': 'the task under test', module: dict(args, fleet=slice_expr), 'when': 'inventory_hostname == %r'
            % on_host, 'ignore_errors': True}
    return [{'hosts': 'hypervisors', 'gather_facts': False, 'module_defaults': DEFAULTS,
             'roles': [{'role': 'deferred.libvirt.state_facts', 'vars': {'state_facts_show': False}}],
             'tasks': [task]}]


# -- item 6: a bound slice (rule 12) ---------------------------------------------------------------------------

def test_a_foreign_or_stale_slice_is_refused_and_nothing_changes(ansible, inventory, hv2, shared, project):
    # An expired soft-deleted domain on hv2 that a sweep would terminate: only a slice fit for hv2 may drive that.
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    reclaim_at = soft_delete(ansible, inventory, 'hv2', name, project, '2s')['reclaim_at']
    wait_past(reclaim_at)
    before = record_on(ansible, inventory, 'hv2', name)
    sweep_args = {'project': project}

    # hv3's slice handed to hv2 (a playbook bug, or an ad hoc call with the wrong host's variable).
    foreign = run_playbook(ansible, slice_play(
        'hv2', RECLAIM, sweep_args, "{{ state_facts_index | deferred.libvirt.fleet_index_for('hv3') }}"), inventory)
    refused = named_task(foreign, 'the task under test', 'hv2')
    assert refused['failed'], refused
    assert refused['msg'].startswith('the fleet slice was built for hv3 (hostname hv3, host UUID ')
    assert 'not this host hv2 (hostname hv2, host UUID ' in refused['msg']
    assert refused['msg'].endswith('nothing was changed')

    # hv2's own slice, but from an index built 22 minutes ago (a cached index, a long-paused workflow).
    old = run_playbook(ansible, slice_play(
        'hv2', RECLAIM, sweep_args,
        "{{ state_facts_index | deferred.libvirt.fleet_index_for('hv2') | combine({'built_at': "
        "lookup('ansible.builtin.pipe', \"date -u -d '22 minutes ago' +%Y-%m-%dT%H:%M:%SZ\")}) }}"), inventory)
    refused = named_task(old, 'the task under test', 'hv2')
    assert refused['failed'], refused
    assert ', 22m ago, older than fleet_max_age 15m: ' in refused['msg']
    assert 'rebuild the index' in refused['msg'] and refused['msg'].endswith('nothing was changed')

    # A hand-made dict is no slice at all.
    hand = run_playbook(ansible, slice_play('hv2', RECLAIM, sweep_args, {'stale': {}, 'complete': True}), inventory)
    refused = named_task(hand, 'the task under test', 'hv2')
    assert refused['failed'] and 'not a fleet slice built by fleet_index_for' in refused['msg']

    # Nothing changed: the domain, its record and its disk are all there.
    assert hv2.exists(name) and os.path.exists(path)
    assert record_on(ansible, inventory, 'hv2', name) == before

    # And the slice fit for hv2, fresh, does the sweep's work.
    fresh = run_playbook(ansible, slice_play(
        'hv2', RECLAIM, sweep_args, "{{ state_facts_index | deferred.libvirt.fleet_index_for(inventory_hostname) }}"),
        inventory)
    done = named_task(fresh, 'the task under test', 'hv2')
    assert not done.get('failed'), done
    assert [r['name'] for r in done['reclaimed']] == [name]
    assert not hv2.exists(name)


# -- item 3: restore respects rule 9 ----------------------------------------------------------------------------------

def test_an_ad_hoc_restore_of_a_stale_copy_is_refused_and_changes_nothing(ansible, inventory, hv2, hv3, shared, project):
    # The copy an offline migration left on hv3 still names hv2, where the authoritative copy is: booting it would
    # put two writers on one qcow2.
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    soft_delete(ansible, inventory, 'hv2', name, project)
    migrate('hv2', 'hv3', name, '--offline', '--persistent')
    before = record_on(ansible, inventory, 'hv3', name)
    assert before['host']['hostname'] == 'hv2'

    result = task_on(ansible, inventory, 'hv3', RESTORE, name=name)  # ad hoc: no fleet view

    assert result['failed']
    [instance] = result['instances']
    assert instance['failed']
    assert instance['msg'].startswith('domain %s is a stale copy: its record names host hv2, not this one' % name)
    assert 'restore refuses it' in instance['msg'] and 'force=true' in instance['msg']
    assert record_on(ansible, inventory, 'hv3', name) == before
    assert not running(hv3, name) and not running(hv2, name)

    # Through the restore playbook (the fleet slice): the authoritative copy on hv2 is the one that comes back.
    played = run_playbook(ansible, 'deferred.libvirt.restore', inventory,
                          extra_vars=[{'names': [name], 'project': project}])
    assert played.rc == 0, played.stdout[-3000:]
    assert running(hv2, name) and not running(hv3, name)


# Rule 9 ad hoc: marked security so the newest ansible-core line runs it too (security-newest).
@pytest.mark.security
def test_a_forced_ad_hoc_terminate_of_a_moved_domain_the_record_calls_stale_leaves_its_tombstone_and_storage(
        ansible, inventory, hv2, hv3, shared, project, state_dir):
    # Found by the randomized trial (seed 1, step 28; rule 7, every terminated domain has a tombstone): a domain
    # moved by an offline migration with --undefinesource keeps a record naming hv2. Ad hoc on hv3 (no fleet view)
    # the record is all vm_terminate sees: force undefines it as a stale copy (rule 9: no disk, volume or attachment
    # touched), though it was the only copy. The operator is told, and a tombstone on hv3 keeps what was left.
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    migrate('hv2', 'hv3', name, '--offline', '--persistent', '--undefinesource')
    assert not hv2.exists(name) and hv3.exists(name)

    result = ok(task_on(ansible, inventory, 'hv3', 'deferred.libvirt.vm_terminate', name=name, project=project,
                        force=True))

    [instance] = result['instances']
    assert (instance['action'], instance['authoritative']) == ('undefined_stale_copy', 'hv2')
    assert not hv3.exists(name) and os.path.exists(path)
    assert any('no other copy of %s was seen' % name in w and path in w for w in result['warnings']), result['warnings']
    info = ok(task_on(ansible, inventory, 'hv3', INFO, name=name, include_deleted=True))
    [gone] = [i for i in info['instances'] if i['uuid'] == uuid]
    assert gone['vm_state'] == 'deleted', gone
    slurped = ok(task_on(ansible, inventory, 'hv3', 'ansible.builtin.slurp',
                         src=os.path.join(state_dir, 'hv3', 'tombstones', 'finished', '%s.json' % uuid)))
    data = json.loads(base64.b64decode(slurped['content']))
    assert data['stale_copy']['authoritative'] == 'hv2' and [d['path'] for d in data['disks_kept']] == [path]


# Rule 9 ad hoc: marked security so the newest ansible-core line runs it too (security-newest).
@pytest.mark.security
def test_an_ad_hoc_soft_delete_of_a_stale_copy_is_refused_and_its_record_still_names_the_other_host(
        ansible, inventory, hv2, hv3, shared, project):
    # Found by the randomized trial (seed 1, step 73; invariant 2, no volume attached to a defined domain is deleted):
    # a soft delete of the copy an offline migration left on hv3 rewrote its record to name hv3, and hv3's terminate
    # then took it for the authoritative copy and deleted the volume hv2's running copy uses. Refused now, as terminate
    # and restore refuse a stale copy; the record still names hv2, so that terminate is refused too.
    path, name, uuid = copied_to_hv3(ansible, inventory, hv2, shared, project)
    hv2.conn.lookupByName(name).create()
    before = record_on(ansible, inventory, 'hv3', name)

    result = task_on(ansible, inventory, 'hv3', SOFT_DELETE, name=name, project=project)

    [instance] = result['instances']
    assert instance['failed'] and 'soft delete refuses it' in instance['msg'], instance
    assert instance['msg'].startswith('domain %s is a stale copy: its record names host hv2, not this one' % name)
    assert record_on(ansible, inventory, 'hv3', name) == before
    terminated = task_on(ansible, inventory, 'hv3', 'deferred.libvirt.vm_terminate', name=name, project=project)
    assert terminated['failed'] and 'refuses it' in terminated['instances'][0]['msg']
    assert hv3.exists(name) and running(hv2, name) and os.path.exists(path)
    hv2.conn.lookupByName(name).destroy()


# -- item 8: rule 5 after a move --------------------------------------------------------------------------------------

@pytest.mark.cinder
def test_a_moved_domains_volume_attached_on_its_old_host_is_settled(
        ansible, inventory, hv2, hv3, shared, project, prefix):
    # The volume was attached while the domain ran on hv2 (Cinder's attachment names hv2). The domain moved to hv3;
    # hv2 is another hypervisor of the fleet, but that attachment is the domain's own: a terminate on hv3 detaches and
    # deletes the delete_on_termination volume instead of leaving it attached to a deleted server.
    cinder = ch.connect()
    try:
        path, name, uuid, volume = web_with_volume(ansible, inventory, hv2, shared, project, prefix, cinder)
        migrate('hv2', 'hv3', name, '--offline', '--persistent', '--undefinesource')
        assert not hv2.exists(name) and hv3.exists(name)

        result = run_playbook(ansible, 'deferred.libvirt.terminate', inventory,
                              extra_vars=[{'names': [name], 'project': project}])

        assert result.rc == 0, result.stdout[-3000:]
        assert not hv3.exists(name)
        assert ch.volume_status(volume, conn=cinder) is None, 'the delete_on_termination volume is still there'
        assert ch.attachments_for(uuid, conn=cinder) == []
    finally:
        ch.cleanup(prefix, conn=cinder)


@pytest.mark.cinder
@pytest.mark.security  # rule 10 at the fleet and ad hoc scopes: the newest line runs it too
def test_rule10_a_volume_another_copy_lists_waits_until_no_copy_is_left(
        ansible, inventory, hv2, hv3, shared, project, prefix, state_dir, cloud):
    # Found by the randomized trial (seed 2, step 98; tests/trial/replays/seed2-step98-volume-of-a-stale-copy.json):
    # an offline migration copies web, with its delete_on_termination volume, from hv2 to hv3, and an ad hoc
    # reclaim_interval 0 soft delete on hv2 deleted the volume hv3's copy still lists.
    cinder = ch.connect()
    try:
        path, name, uuid, volume = web_with_volume(ansible, inventory, hv2, shared, project, prefix, cinder)
        # A sweep of the fleet: each host learns the fleet it belongs to (its state_dir's fleet.json).
        assert run_playbook(ansible, 'deferred.libvirt.reclaim', inventory,
                            extra_vars=[{'reclaim_project': project}]).rc == 0
        migrate('hv2', 'hv3', name, '--offline', '--persistent')

        # Ad hoc on hv2, with no slice of the index: the domain goes, its volume waits, whole.
        rc, done = adhoc_on(ansible, inventory, 'hv2', SOFT_DELETE, {
            'name': name, 'project': project, 'reclaim_interval': 0, 'allow_terminate': True, 'cloud': cloud,
            'state_dir': os.path.join(state_dir, 'hv2'), 'instance_dirs': ['/var/lib/libvirt/images', SHARED_DIR]})

        assert rc == 0, done
        [result] = done['instances']
        assert result['action'] == 'terminated' and not hv2.exists(name) and hv3.exists(name)
        assert [v['id'] for v in result['volumes_pending']] == [volume] and result['volumes_deleted'] == []
        assert 'this host belongs to fleet' in result['volumes_held'], result
        assert any('neither detached nor deleted' in w for w in done.get('warnings') or []), done
        assert ch.volume_status(volume, conn=cinder) == 'in-use' and len(ch.attachments_for(uuid, conn=cinder)) == 1
        assert os.path.exists(path), 'the shared disk hv3\'s copy opens is gone'

        # The fleet sweep sees the copy on hv3: the volume still waits, and the sweep says why.
        swept = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}])
        assert swept.rc == 0, swept.stdout[-3000:]
        assert ch.volume_status(volume, conn=cinder) == 'in-use'
        with open(os.path.join(state_dir, 'hv2', 'tombstones', 'pending', '%s.json' % uuid)) as handle:
            tomb = json.load(handle)
        assert tomb['volumes_held'] == 'another copy of this domain lists them: %s on hv3 (stopped)' % name, tomb

        # The operator removes the stale copy (definition only, rule 9); the next sweep settles the volume.
        ok(task_on(ansible, inventory, 'hv3', 'deferred.libvirt.vm_terminate', name=name, force=True, cloud=cloud))
        assert not hv3.exists(name)
        swept = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}])
        assert swept.rc == 0, swept.stdout[-3000:]
        assert ch.volume_status(volume, conn=cinder) is None, 'the delete_on_termination volume is still there'
        assert ch.attachments_for(uuid, conn=cinder) == []
    finally:
        ch.cleanup(prefix, conn=cinder)


@pytest.mark.cinder
@pytest.mark.security  # rule 12 at the ad hoc scope: the newest line runs it too
def test_rule12_an_attachment_of_a_host_an_incomplete_index_cannot_place_waits_for_a_complete_one(
        ansible, inventory, hv2, shared, project, prefix, state_dir, cloud):
    # docs/lifecycle.md: while the index is incomplete "an attachment whose host is not this hypervisor is never
    # detached, and one held by a host the index cannot place stays pending until a sweep with a complete index".
    # An ad hoc run on a host that knows its fleet works as with an incomplete index (rule 12).
    cinder = ch.connect()
    try:
        path = shared('web')
        name, uuid = hv2.make('web', start=False, disks=[disk(path)])
        owned(ansible, inventory, 'hv2', name, project)  # no volume recorded: Cinder's list is all there is
        theirs = ch.create_volume(prefix + 'theirs', 1, conn=cinder).id
        mine = ch.create_volume(prefix + 'mine', 1, conn=cinder).id
        ch.attach_like_nova(theirs, uuid, mountpoint='/dev/vdc', conn=cinder,
                            connector=dict(ch.DEFAULT_CONNECTOR, host='hv-not-in-the-index'))
        ch.attach_like_nova(mine, uuid, mountpoint='/dev/vdd', conn=cinder, connector=dict(ch.DEFAULT_CONNECTOR, host='hv2'))
        assert run_playbook(ansible, 'deferred.libvirt.reclaim', inventory,
                            extra_vars=[{'reclaim_project': project}]).rc == 0  # hv2 learns its fleet

        rc, done = adhoc_on(ansible, inventory, 'hv2', 'deferred.libvirt.vm_terminate', {
            'name': name, 'project': project, 'cloud': cloud, 'state_dir': os.path.join(state_dir, 'hv2')})

        assert rc == 0, done
        [result] = done['instances']
        assert result['action'] == 'terminated' and not hv2.exists(name), result
        assert result['volumes_detached'] == [mine], result
        [waiting] = result['volumes_pending']
        assert waiting['id'] == theirs and 'hv-not-in-the-index' in waiting['error'], result
        assert 'incomplete fleet index cannot place' in waiting['error'], result
        assert ch.volume_status(theirs, conn=cinder) == 'in-use' and ch.volume_status(mine, conn=cinder) == 'available'

        # A sweep of the whole fleet has a complete index: no hypervisor of it holds the attachment, so it is the
        # domain's own, detached and kept (not marked delete_on_termination).
        swept = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}])
        assert swept.rc == 0, swept.stdout[-3000:]
        assert ch.volume_status(theirs, conn=cinder) == 'available' and ch.attachments_for(uuid, conn=cinder) == []
        with open(os.path.join(state_dir, 'hv2', 'tombstones', 'finished', '%s.json' % uuid)) as handle:
            assert json.load(handle)['volumes_pending'] == []
    finally:
        ch.cleanup(prefix, conn=cinder)


# -- item 9: ties -----------------------------------------------------------------------------------------------------

def test_a_tie_of_two_copies_in_the_trash_is_reclaimed_once(ansible, inventory, hv2, hv3, shared, project, state_dir):
    # One UUID on hv2 and hv3, both soft-deleted and expired, both records naming their own host at one generation:
    # no copy is authoritative. One sweep of the fleet reclaims it once: one tombstone, the disk deleted once, no
    # definition left anywhere, nothing failed.
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    reclaim_at = soft_delete(ansible, inventory, 'hv2', name, project, '2s')['reclaim_at']
    migrate('hv2', 'hv3', name, '--offline', '--persistent')
    for host in ('hv2', 'hv3'):  # one more write on each: each record names its own host, at the same generation
        # (force: an attribute write claims a copy whose record names another host only when forced)
        ok(task_on(ansible, inventory, host, ATTRS, name=name, user='bob', force=True))
    on2, on3 = record_on(ansible, inventory, 'hv2', name), record_on(ansible, inventory, 'hv3', name)
    assert (on2['host']['hostname'], on3['host']['hostname']) == ('hv2', 'hv3')
    assert on2['generation'] == on3['generation']
    wait_past(reclaim_at)

    result = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}])

    assert result.rc == 0, result.stdout[-3000:]
    summary = named_task(result, 'Sum up the run over every host', 'hv2')['ansible_facts']['reclaim_summary']
    assert summary['failed'] == []
    assert [(r['name'], r['uuid']) for r in summary['reclaimed']] == [(name, uuid)]
    assert not hv2.exists(name) and not hv3.exists(name)
    assert not os.path.exists(path)
    tombstones = glob.glob(os.path.join(state_dir, '*', 'tombstones', '*', '%s.json' % uuid))
    assert len(tombstones) == 1 and '/hv2/' in tombstones[0]


def sweep_hv2_at(ansible, inventory, project, state_dir, name, uuid, scope):
    """``name`` soft-deleted on hv2 and expired, then swept at ``scope``: the whole fleet, reclaim.yml --limit hv2, or
    vm_reclaim ad hoc on hv2 after a sweep of the fleet (hv2 then knows the fleet it belongs to, rule 12). Returns
    (hv2's entry for the domain: the module's instance ad hoc, the role's reclaimed entry otherwise; the playbook run,
    or None ad hoc)."""
    if scope == 'adhoc':
        assert run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}]).rc == 0
    wait_past(soft_delete(ansible, inventory, 'hv2', name, project, '2s')['reclaim_at'])
    if scope == 'adhoc':
        rc, swept = adhoc_on(ansible, inventory, 'hv2', RECLAIM, {
            'project': project, 'state_dir': os.path.join(state_dir, 'hv2'),
            'instance_dirs': ['/var/lib/libvirt/images', SHARED_DIR]})
        assert rc == 0, swept
        [item] = [r for r in swept['instances'] if r['uuid'] == uuid]
        assert item['action'] == 'terminated', item
        return item, None
    result = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}],
                          args=('--limit', 'hv2') if scope == 'limit' else ())
    assert result.rc == 0, result.stdout[-3000:]
    [item] = named_task(result, 'Sweep the hypervisor', 'hv2')['reclaimed']
    return item, result


@pytest.mark.security  # rule 10 at the fleet, --limit and ad hoc scopes: the newest line runs it too
@pytest.mark.parametrize('scope', ['fleet', 'limit', 'adhoc'])
def test_rule10_the_sweep_keeps_a_disk_a_stale_copy_of_the_same_domain_still_opens(
        ansible, inventory, hv2, hv3, shared, project, state_dir, scope):
    # Found by the randomized trial (seed 3, step 14; tests/trial/replays/seed3-step14-disk-of-a-stale-copy.json): an
    # offline migration leaves a copy of web on hv3 (its record names hv2, it is not in the trash); web is soft-deleted
    # on hv2 and expires. The fleet sweep reclaims hv2's copy, the authoritative one, but the disk hv3's copy opens is
    # kept and named with that copy (rule 10: any domain on any host), and hv3's copy stays defined. The same at every
    # scope an operator runs: the whole fleet, reclaim.yml --limit hv2 (hv3 read outside the play), and vm_reclaim ad
    # hoc on hv2 (no slice: a member of a fleet keeps every disk another host could reach).
    path, name, uuid = copied_to_hv3(ansible, inventory, hv2, shared, project)

    item, result = sweep_hv2_at(ansible, inventory, project, state_dir, name, uuid, scope)

    assert hv3.exists(name) and not hv2.exists(name) and os.path.exists(path), item
    [kept] = item['disks_kept']
    if scope == 'adhoc':
        # No slice on a member of the fleet: the domain is reclaimed, the shared disk is kept, pending in its tombstone
        # for a sweep with the whole fleet's index, and the reason says so.
        assert item['disks_deleted'] == []
        assert kept['path'] == path and kept['kept_for_now'] and 'this run has none' in kept['reason'], kept
        assert [d['path'] for d in item['disks_pending']] == [path]
        return
    summary = named_task(result, 'Sum up the run over every host', 'hv2')['ansible_facts']['reclaim_summary']
    assert [(r['name'], r['uuid']) for r in summary['reclaimed']] == [(name, uuid)]
    assert kept['path'] == path and '%s on hv3 (a copy of this domain, stopped)' % name in kept['reason'], kept


def nvram_copied_to_hv3(ansible, inventory, hv2, shared, project):
    """web on hv2 with its disk and its NVRAM file (UEFI variables) in the shared directory, owned, and the copy an
    offline migration that kept its source left on hv3, whose definition names the same two files: (nvram, name,
    uuid)."""
    path = shared('web')
    nvram = path[:-len('.qcow2')] + '_VARS.fd'
    shutil.copyfile(guests.OVMF_VARS, nvram)
    name, uuid = hv2.make('web', start=False, disks=[disk(path)], nvram=nvram)
    owned(ansible, inventory, 'hv2', name, project)
    migrate('hv2', 'hv3', name, '--offline', '--persistent')
    return nvram, name, uuid


@pytest.mark.security  # rule 10 for the NVRAM file, at the fleet, --limit and ad hoc scopes: the newest line runs it too
@pytest.mark.parametrize('scope', ['fleet', 'limit', 'adhoc'])
def test_rule10_the_sweep_keeps_an_nvram_file_a_stale_copy_of_the_same_domain_still_names(
        ansible, inventory, hv2, hv3, shared, project, state_dir, scope):
    # The NVRAM file is a file the domain references like its disks (the trial's invariant 1). libvirt deletes it on
    # undefine with VIR_DOMAIN_UNDEFINE_NVRAM, which the terminate always asked for: the copy of web an offline
    # migration left on hv3 lost its UEFI variables when the sweep reclaimed hv2's copy. Now the sweep keeps the file
    # while another domain on any host names it (VIR_DOMAIN_UNDEFINE_KEEP_NVRAM) and reports it kept, with its user.
    nvram, name, uuid = nvram_copied_to_hv3(ansible, inventory, hv2, shared, project)

    item, dummy = sweep_hv2_at(ansible, inventory, project, state_dir, name, uuid, scope)

    if scope == 'adhoc':
        assert 'VIR_DOMAIN_UNDEFINE_KEEP_NVRAM' in item['undefine_flags'], item
        assert 'VIR_DOMAIN_UNDEFINE_NVRAM' not in item['undefine_flags'], item
    assert not hv2.exists(name) and hv3.exists(name)
    assert os.path.exists(nvram), item
    [kept] = [k for k in item['disks_kept'] if k['path'] == nvram]
    assert kept['target'] == 'nvram', kept
    if scope == 'adhoc':
        assert kept['kept_for_now'] and 'this run has none' in kept['reason'], kept
    else:
        assert '%s on hv3 (a copy of this domain, stopped)' % name in kept['reason'], kept


@pytest.mark.security  # rule 9 for the NVRAM file: the newest line runs it too
def test_undefining_a_stale_copy_keeps_the_nvram_file_the_authoritative_copy_boots_with(
        ansible, inventory, hv2, hv3, shared, project):
    # Rule 9: a stale copy loses its definition only. Its undefine asked libvirt for VIR_DOMAIN_UNDEFINE_NVRAM and so
    # deleted the UEFI variables of the copy its record names, on hv2.
    nvram, name, uuid = nvram_copied_to_hv3(ansible, inventory, hv2, shared, project)

    done = ok(task_on(ansible, inventory, 'hv3', 'deferred.libvirt.vm_terminate', name=name, project=project,
                      force=True))['instances'][0]

    assert done['action'] == 'undefined_stale_copy', done
    assert not hv3.exists(name) and hv2.exists(name)
    assert os.path.exists(nvram)
    assert 'VIR_DOMAIN_UNDEFINE_NVRAM' not in done['undefine_flags'], done


# -- item 5: one guarded path -----------------------------------------------------------------------------------------

def test_a_reclaim_interval_0_soft_delete_keeps_a_disk_another_hosts_domain_uses(
        ansible, inventory, hv2, hv3, shared, project):
    # soft_delete.yml with reclaim_interval 0 is a terminate: it gets this host's slice of the fleet index, as
    # terminate.yml does. A disk a domain on hv3 also uses stays, named with its user; the domain's own disk goes.
    both, own = shared('both'), shared('own')
    name, uuid = hv2.make('web', start=False, disks=[disk(both), disk(own, 'vdc')])
    other, dummy = hv3.make('db', start=False, disks=[disk(both)])
    owned(ansible, inventory, 'hv2', name, project)

    result = run_playbook(ansible, 'deferred.libvirt.soft_delete', inventory,
                          extra_vars=[{'names': [name], 'project': project, 'reclaim_interval': 0,
                                       'deferred_libvirt_allow_terminate': True}])

    assert result.rc == 0, result.stdout[-3000:]
    [done] = named_task(result, 'Soft delete the domains on their hosts', 'hv2')['instances']
    assert done['action'] == 'terminated'
    assert done['disks_deleted'] == [own] and not os.path.exists(own)
    [kept] = done['disks_kept']
    assert kept['path'] == both and other in kept['reason'] and 'hv3' in kept['reason']
    assert os.path.exists(both) and hv3.exists(other) and not hv2.exists(name)


def test_the_sweep_leaves_a_stale_copy_locked_after_the_index_was_built(ansible, inventory, hv2, hv3, shared, project):
    # Every copy is in the trash and expired, so the sweep would undefine hv3's stale copy; an operator locks that copy
    # after the index was built (in the same play, between the index and the sweep). Under its lock the sweep reads the
    # copy again and applies the guards: the definition stays, and the skip says why.
    path = shared('web')
    name, uuid = hv2.make('web', start=False, disks=[disk(path)])
    owned(ansible, inventory, 'hv2', name, project)
    reclaim_at = soft_delete(ansible, inventory, 'hv2', name, project, '2s')['reclaim_at']
    migrate('hv2', 'hv3', name, '--offline', '--persistent')
    ok(task_on(ansible, inventory, 'hv2', ATTRS, name=name, user='bob'))  # hv2's copy is the newer: authoritative
    wait_past(reclaim_at)
    play = [{'hosts': 'hypervisors', 'gather_facts': False, 'module_defaults': DEFAULTS,
             'roles': [{'role': 'deferred.libvirt.state_facts', 'vars': {'state_facts_show': False}}],
             'tasks': [
                 {'name': 'Lock the stale copy after the index was built',
                  ATTRS: {'name': name, 'locked': True, 'lock_reason': 'INC-9'}, 'when': "inventory_hostname == 'hv3'"},
                 {'name': 'the sweep under test',
                  RECLAIM: {'project': project,
                            'fleet': "{{ state_facts_index | deferred.libvirt.fleet_index_for(inventory_hostname) }}"},
                  'when': "inventory_hostname == 'hv3'"}]}]

    result = run_playbook(ansible, play, inventory)

    assert result.rc == 0, result.stdout[-3000:]
    swept = named_task(result, 'the sweep under test', 'hv3')
    assert swept['stale_undefined'] == [] and swept['reclaimed'] == []
    [skipped] = [s for s in swept['skipped_domains'] if s['name'] == name]
    assert 'locked (INC-9)' in skipped['reason']
    assert hv3.exists(name) and hv2.exists(name) and os.path.exists(path)
