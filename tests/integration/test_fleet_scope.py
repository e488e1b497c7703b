# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rule 12 on the real fleet (issue 23, items 1 and 7): the fleet is declared (the inventory group hypervisors), not
inferred from the play, and a disk kept while a host did not report is never leaked.

hv1 (qemu:///system, local), hv2 and hv3 (further libvirtds over SSH) see /srv/shared-images. A sweep over part of
the fleet (``--limit hv2``, or a play of one host out of a group of three, as an AWX slice's play is) still reads
every host of the group, so it keeps every disk another host uses and reclaims no stale copy. A sweep while hv3
cannot be reached keeps the shared disk of what it reclaims as pending work in the tombstone, and the next sweep
with every host reporting deletes it and finishes the tombstone.
"""

import glob
import os
import subprocess

import libvirt
import pytest
import yaml

import cinder_helpers as ch
import guests
from fleet_support import (SHARED_DIR, named_task, new_project, run_playbook, task_on, wait_past, write_inventory)

ATTRS = 'deferred.libvirt.vm_attributes'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
INFO = 'deferred.libvirt.vm_info'
INACTIVE_XML = libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE


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


GROUP_VARS = {'deferred_libvirt_instance_dirs': ['/var/lib/libvirt/images', SHARED_DIR]}


def inventory_of(tmp_path, fleet, state_dir, cloud, name='inventory.json', broken=None, slice_of=None):
    """hv1 (local), hv2 and hv3 in the group hypervisors; ``broken``: a host whose SSH port is a closed one;
    ``slice_of``: a group ``slice1`` holding only that host (the play of one AWX slice)."""
    path = write_inventory(str(tmp_path / name), fleet, state_dir, hosts_over_ssh=('hv2', 'hv3'), local=True,
                           group_vars=dict(GROUP_VARS, deferred_libvirt_cloud=cloud))
    if broken or slice_of:
        import json
        with open(path) as handle:
            data = json.load(handle)
        hosts = data['all']['children']['hypervisors']['hosts']
        if broken:
            hosts[broken]['ansible_port'] = 9  # discard: nothing listens there, the connection is refused
            hosts[broken]['ansible_ssh_common_args'] = (hosts[broken].get('ansible_ssh_common_args') or '') + \
                ' -o ConnectTimeout=5 -o ConnectionAttempts=1'
        if slice_of:
            data['all']['children']['slice1'] = {'hosts': {slice_of: {}}}
        with open(path, 'w') as handle:
            json.dump(data, handle, indent=1)
    return path


def ok(result):
    assert not result.get('failed'), result
    return result


def expire_on(ansible, inventory, host, name, project):
    ok(task_on(ansible, inventory, host, ATTRS, name=name, project=project, user='alice'))
    return ok(task_on(ansible, inventory, host, SOFT_DELETE, name=name, project=project,
                      reclaim_interval='1s'))['instances'][0]


def summary_of(result):
    """The run's summary, from the first host of the play (run_once)."""
    for play in result.data['plays']:
        for task in play['tasks']:
            if task['name'].endswith(' : Sum up the run over every host'):
                for host_result in task['hosts'].values():
                    if 'reclaim_summary' in (host_result.get('ansible_facts') or {}):
                        return host_result['ansible_facts']['reclaim_summary']
    raise AssertionError('the summary did not run: %s' % result.stdout[-3000:])


def defined(host, name):
    return name in [d.name() for d in host.conn.listAllDomains()]


@pytest.mark.fleet_rules
@pytest.mark.parametrize('scope', ['limit', 'slice'])
def test_a_sweep_over_part_of_the_fleet_keeps_every_disk_another_host_uses_and_reclaims_no_stale_copy(
        ansible, fleet, hv2, hv3, shared, tmp_path, state_dir, cloud, scope):
    project = new_project()
    inventory = inventory_of(tmp_path, fleet, state_dir, cloud, slice_of='hv2' if scope == 'slice' else None)
    # web: expired on hv2; its disk is also the disk of a domain on hv3.
    web_disk = shared('web')
    web, dummy = hv2.make('web', start=False, disks=[{'path': web_disk, 'target': 'vdb'}])
    hv3.make('reader', start=False, disks=[{'path': web_disk, 'target': 'vdb'}])
    # db: soft-deleted on hv2 (its record names hv2), its definition copied to hv3 and started there: hv3's runs.
    db_disk = shared('db')
    db, dummy = hv2.make('db', start=False, disks=[{'path': db_disk, 'target': 'vdb'}])
    expire_on(ansible, inventory, 'hv2', db, project)
    hv3.conn.defineXML(hv2.conn.lookupByName(db).XMLDesc(INACTIVE_XML))
    hv3.conn.lookupByName(db).create()
    wait_past(expire_on(ansible, inventory, 'hv2', web, project)['reclaim_at'])

    if scope == 'limit':
        result = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[{'reclaim_project': project}],
                              args=['--limit', 'hv2'])
    else:  # the play holds one host, the fleet group three
        result = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory,
                              extra_vars=[{'reclaim_project': project, 'deferred_libvirt_hosts': 'slice1'}])
    summary = summary_of(result)

    assert [r['name'] for r in summary['reclaimed']] == [web], summary['lines']
    # Rule 10: hv3/reader uses web's disk; rule 9: hv3's copy of db runs, hv2's is stale.
    assert os.path.exists(web_disk) and os.path.exists(db_disk)
    assert defined(hv2, db) and defined(hv3, db)
    [skipped] = [s for s in summary['skipped'] if s['name'] == db]
    assert 'stale copy' in skipped['reason'] and 'hv3' in skipped['reason']
    reclaimed = named_task(result, 'Sweep the hypervisor', 'hv2')
    [kept] = [r for r in reclaimed['reclaimed'] if r['name'] == web][0]['disks_kept']
    assert 'hv3' in kept['reason'] and reclaimed['fleet'] == {'given': True, 'complete': True, 'missing': [], 'gaps': []}
    assert summary['fleet_complete'] is True


@pytest.mark.fleet_rules
def test_a_disk_kept_while_a_host_was_unreachable_is_deleted_by_the_next_complete_sweep(
        ansible, fleet, hv2, shared, tmp_path, state_dir, cloud):
    project = new_project()
    good = inventory_of(tmp_path, fleet, state_dir, cloud)
    down = inventory_of(tmp_path, fleet, state_dir, cloud, name='down.json', broken='hv3')
    disk = shared('app')
    app, uuid = hv2.make('app', start=False, disks=[{'path': disk, 'target': 'vdb'}])
    wait_past(expire_on(ansible, good, 'hv2', app, project)['reclaim_at'])

    first = run_playbook(ansible, 'deferred.libvirt.reclaim', down, extra_vars=[{'reclaim_project': project}])
    summary = summary_of(first)

    # Reclaimed, but its disk in the shared directory, which hv3 might use, is kept as pending work: said, not leaked.
    assert [r['name'] for r in summary['reclaimed']] == [app], summary['lines']
    assert not defined(hv2, app) and os.path.exists(disk)
    assert summary['fleet_missing'] == ['hv3'] and any(line.startswith('FLEET INDEX INCOMPLETE: hv3')
                                                       for line in summary['lines'])
    assert [(p['name'], p['disks']) for p in summary['disks_pending']] == [(app, [disk])]
    info = ok(task_on(ansible, good, 'hv2', INFO, name=uuid, include_deleted=True))['instances'][0]
    assert info['vm_state'] == 'deleted' and [d['path'] for d in info['disks_pending']] == [disk]

    second = run_playbook(ansible, 'deferred.libvirt.reclaim', good, extra_vars=[{'reclaim_project': project}])
    summary = summary_of(second)

    assert not os.path.exists(disk), summary['lines']
    assert summary['fleet_complete'] is True and summary['disks_pending'] == []
    info = ok(task_on(ansible, good, 'hv2', INFO, name=uuid, include_deleted=True))['instances'][0]
    assert info['disks_pending'] == []
    tomb = os.path.join(state_dir, 'hv2', 'tombstones', 'finished', '%s.json' % uuid)
    assert os.path.exists(tomb), 'the tombstone is finished once its disk is gone'


def scoped(ansible, inventory, playbook, extra, scope):
    """``playbook`` over part of the fleet: ``--limit hv2``, or the play of the AWX slice holding hv2 alone."""
    if scope == 'limit':
        return run_playbook(ansible, playbook, inventory, extra_vars=[extra], args=['--limit', 'hv2'])
    return run_playbook(ansible, playbook, inventory, extra_vars=[dict(extra, deferred_libvirt_hosts='slice1')])


@pytest.mark.fleet_rules
@pytest.mark.cinder
@pytest.mark.security  # rule 12 at the --limit and AWX-slice scopes: the newest line runs it too
@pytest.mark.parametrize('scope', ['limit', 'slice'])
def test_rule12_over_part_of_the_fleet_with_a_host_unreachable_an_attachment_no_host_can_be_placed_for_waits(
        ansible, fleet, hv2, shared, tmp_path, state_dir, cloud, prefix, scope):
    """docs/lifecycle.md: while the index is incomplete "an attachment whose host is not this hypervisor is never
    detached, and one held by a host the index cannot place stays pending until a sweep with a complete index".
    Over part of the fleet (``--limit hv2``, or the play of one AWX slice holding hv2) while hv3 cannot be reached,
    the index is incomplete whatever the play holds: terminate.yml refuses by name before anything changes (the name
    may be on hv3 too), and the sweep reclaims the expired domain on hv2 but leaves the attachment of an unknown host
    attached, pending; this host's own is detached. The next sweep with every host reporting settles the rest."""
    project = new_project()
    good = inventory_of(tmp_path, fleet, state_dir, cloud)
    down = inventory_of(tmp_path, fleet, state_dir, cloud, name='down.json', broken='hv3',
                        slice_of='hv2' if scope == 'slice' else None)
    cinder = ch.connect()
    try:
        name, uuid = hv2.make('web', start=False, disks=[{'path': shared('web'), 'target': 'vdb'}])
        theirs = ch.create_volume(prefix + 'theirs', 1, conn=cinder).id
        mine = ch.create_volume(prefix + 'mine', 1, conn=cinder).id
        ch.attach_like_nova(theirs, uuid, mountpoint='/dev/vdc', conn=cinder,
                            connector=dict(ch.DEFAULT_CONNECTOR, host='hv-not-in-the-index'))
        ch.attach_like_nova(mine, uuid, mountpoint='/dev/vdd', conn=cinder,
                            connector=dict(ch.DEFAULT_CONNECTOR, host='hv2'))

        refused = scoped(ansible, down, 'deferred.libvirt.terminate', {'names': name, 'project': project}, scope)
        assert refused.rc != 0
        said = named_task(refused, 'Locate every named domain on its host (unknown, ambiguous or foreign names fail '
                                   'here)', 'hv2')['msg']
        assert 'the fleet state is incomplete' in said and 'hv3' in said and 'nothing was changed' in said, said
        assert defined(hv2, name) and [a.volume_id for a in ch.attachments_for(uuid, conn=cinder)] != []

        wait_past(expire_on(ansible, good, 'hv2', name, project)['reclaim_at'])
        swept = scoped(ansible, down, 'deferred.libvirt.reclaim', {'reclaim_project': project}, scope)

        assert summary_of(swept)['fleet_missing'] == ['hv3']
        [done] = [r for r in named_task(swept, 'Sweep the hypervisor', 'hv2')['reclaimed'] if r['uuid'] == uuid]
        assert not defined(hv2, name) and done['volumes_detached'] == [mine], done
        [waiting] = done['volumes_pending']
        assert waiting['id'] == theirs and 'incomplete fleet index cannot place' in waiting['error'], done
        assert ch.volume_status(theirs, conn=cinder) == 'in-use' and ch.volume_status(mine, conn=cinder) == 'available'

        settled = run_playbook(ansible, 'deferred.libvirt.reclaim', good, extra_vars=[{'reclaim_project': project}])
        assert summary_of(settled)['fleet_complete'] is True
        assert ch.volume_status(theirs, conn=cinder) == 'available' and ch.attachments_for(uuid, conn=cinder) == []
        tomb = os.path.join(state_dir, 'hv2', 'tombstones', 'finished', '%s.json' % uuid)
        assert os.path.exists(tomb), 'the tombstone is finished once no volume waits'
    finally:
        ch.cleanup(prefix, conn=cinder)
