# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Guests with an emulated TPM 2.0 (swtpm) on the real hypervisor and the real fleet.

A TPM's state is not a disk: libvirt keeps it on the host, in /var/lib/libvirt/swtpm/UUID, made when the domain
first starts. It holds what the guest sealed (disk encryption keys, measured-boot secrets), so losing it early is
losing data, and keeping it after the domain is gone for good leaks a secret. The lifecycle treats it as the NVRAM
file: kept through a soft delete and a restore, deleted with the domain by a terminate and by the sweep
(VIR_DOMAIN_UNDEFINE_TPM), and a restore onto another host is refused unless that host has it.
"""

import os

import pytest

import guests
import test_fleet_safety as base
import test_fleet_scope as scoped_base
from fleet_support import named_task, new_project, run_playbook, task_on, wait_past
from results import only
from test_fleet_safety import ATTRS, BOOT_TIMEOUT, RESTORE, SOFT_DELETE, ok, owned, record_on, soft_delete

TERMINATE = 'deferred.libvirt.vm_terminate'
RECLAIM = 'deferred.libvirt.vm_reclaim'

# Losing a TPM state early loses what the guest sealed, keeping it leaks it: the newest ansible-core line runs these too.
pytestmark = pytest.mark.security

# The fleet fixtures as test_fleet_safety.py defines them.
shared, cloud, inventory = base.shared, base.cloud, base.inventory


def tpm_guest(make_guest, hypervisor, suffix, **kw):
    """A TPM guest, started once so that libvirt makes its TPM state (swtpm_setup runs before QEMU starts), then
    powered off: (name, uuid, state dir)."""
    name, uuid = make_guest(suffix, start=True, wait_ready=False, tpm=True, **kw)
    hypervisor.lookupByName(name).destroy()
    state = guests.tpm_state_dir(uuid)
    assert os.path.isdir(state) and os.listdir(state), 'libvirt made no TPM state for %s in %s' % (name, state)
    return name, uuid, state


def files_under(path):
    return sorted(os.path.relpath(os.path.join(base_, f), path) for base_, dummy, names in os.walk(path) for f in names)


def test_a_terminate_deletes_the_tpm_state_with_the_domain(ansible, make_guest, hypervisor):
    name, uuid, state = tpm_guest(make_guest, hypervisor, 'tpm')

    inst = only(ansible.task(TERMINATE, name=name))

    assert 'VIR_DOMAIN_UNDEFINE_TPM' in inst['undefine_flags'], inst
    assert name not in [d.name() for d in hypervisor.listAllDomains()]
    assert not os.path.exists(state), 'the TPM state of a terminated domain is left: %s' % files_under(state)
    assert ansible.tombstone(uuid)['undefine_flags'] == inst['undefine_flags']


def test_a_soft_delete_keeps_the_tpm_state_and_the_restored_guest_boots_with_it(
        ansible, make_guest, hypervisor, project):
    name, uuid, state = tpm_guest(make_guest, hypervisor, 'tpm')
    ok(ansible.task(ATTRS, name=name, project=project, user='alice'))
    sealed = files_under(state)

    [deleted] = ok(ansible.task(SOFT_DELETE, name=name, project=project, reclaim_interval='1h'))['instances']
    assert deleted['action'] == 'soft_deleted', deleted
    assert files_under(state) == sealed, 'the soft delete touched the TPM state'

    [restored] = ok(ansible.task(RESTORE, name=name, project=project, start_timeout=BOOT_TIMEOUT))['instances']
    assert restored['action'] == 'restored', restored
    dom = hypervisor.lookupByName(name)
    assert dom.isActive() and dom.XMLDesc(0).count("<backend type='emulator'") == 1
    assert files_under(state) == sealed, 'the restore started the guest without its TPM state'


def test_the_sweep_deletes_the_tpm_state_of_what_it_reclaims_and_keeps_the_rest(
        ansible, make_guest, hypervisor, project):
    gone, gone_uuid, gone_state = tpm_guest(make_guest, hypervisor, 'gone')
    kept, kept_uuid, kept_state = tpm_guest(make_guest, hypervisor, 'kept')
    for name in (gone, kept):
        ok(ansible.task(ATTRS, name=name, project=project, user='alice'))
    ok(ansible.task(SOFT_DELETE, name=kept, project=project, reclaim_interval='1h'))
    [expiring] = ok(ansible.task(SOFT_DELETE, name=gone, project=project, reclaim_interval='2s'))['instances']
    wait_past(expiring['reclaim_at'])

    swept = ok(ansible.task(RECLAIM, project=project))

    [reclaimed] = [r for r in swept['instances'] if r['uuid'] == gone_uuid]
    assert reclaimed['action'] == 'terminated' and 'VIR_DOMAIN_UNDEFINE_TPM' in reclaimed['undefine_flags'], reclaimed
    assert not os.path.exists(gone_state)
    assert os.path.isdir(kept_state) and os.listdir(kept_state), 'the sweep took the TPM state of a domain it kept'
    assert kept_uuid not in [r['uuid'] for r in swept['instances'] if r.get('action') == 'terminated']


@pytest.mark.fleet_rules
def test_a_restore_onto_a_host_without_the_tpm_state_is_refused_before_anything_changes(
        ansible, inventory, fleet, hv2, hv3, shared, project):
    """The disk is on shared storage and hv3 sees it; the TPM state is hv2's own (its /var/lib/libvirt). Moving the
    domain would start it on hv3 with a blank TPM, its sealed secrets left behind on hv2: refused, nothing changed."""
    name, uuid = hv2.make('tpm', start=True, wait_ready=False, tpm=True, disks=[base.disk(shared('tpm'))])
    hv2.conn.lookupByName(name).destroy()
    state = guests.tpm_state_dir(uuid, os.path.dirname(fleet['hv2']['images_from_main_namespace']))
    assert os.path.isdir(state), 'libvirt on hv2 made no TPM state in %s' % state
    owned(ansible, inventory, 'hv2', name, project)
    before = soft_delete(ansible, inventory, 'hv2', name, project)

    result = run_playbook(ansible, 'deferred.libvirt.restore', inventory, extra_vars=[
        {'names': name, 'project': project, 'restore_host': 'hv3', 'start_timeout': BOOT_TIMEOUT,
         'quota_limits': {'default': {'instances': 10}}}])

    assert result.rc != 0
    said = [i['msg'] for p in result.data['plays'] for t in p['tasks'] for r in t['hosts'].values()
            for item in (r.get('results') or [r]) for i in (item.get('instances') or []) if i.get('failed')]
    assert [m for m in said if 'its TPM state' in m and uuid in m and 'nothing was changed' in m], said
    assert not hv3.exists(name) and hv2.exists(name) and os.path.isdir(state)
    after = record_on(ansible, inventory, 'hv2', name)
    assert (after['vm_state'], after['deleted_at'], after['reclaim_at']) == (
        'soft_deleted', before['deleted_at'], before['reclaim_at'])


@pytest.mark.fleet_rules
@pytest.mark.parametrize('scope', ['limit', 'slice'])
def test_a_sweep_over_part_of_the_fleet_deletes_the_tpm_state_of_what_it_reclaims_and_keeps_the_rest(
        ansible, fleet, hv2, tmp_path, state_dir, cloud, scope):
    """The same rule at the scopes an operator runs short of the whole fleet: ``--limit hv2``, and the play of the AWX
    slice that holds hv2 alone. hv2's TPM states are its own (its /var/lib/libvirt): the reclaimed domain's goes with
    it, the one still in the trash keeps its own."""
    project = new_project()
    inventory = scoped_base.inventory_of(tmp_path, fleet, state_dir, cloud, slice_of='hv2' if scope == 'slice' else None)
    lib = os.path.dirname(fleet['hv2']['images_from_main_namespace'])
    made = {}
    for suffix in ('gone', 'kept'):
        name, uuid = hv2.make(suffix, start=True, wait_ready=False, tpm=True)
        hv2.conn.lookupByName(name).destroy()
        made[suffix] = (name, uuid, guests.tpm_state_dir(uuid, lib))
        assert os.listdir(made[suffix][2]), 'libvirt on hv2 made no TPM state for %s' % name
    gone, gone_uuid, gone_state = made['gone']
    kept, kept_state = made['kept'][0], made['kept'][2]
    ok(task_on(ansible, inventory, 'hv2', ATTRS, name=kept, project=project, user='alice'))
    ok(task_on(ansible, inventory, 'hv2', SOFT_DELETE, name=kept, project=project, reclaim_interval='1h'))
    wait_past(scoped_base.expire_on(ansible, inventory, 'hv2', gone, project)['reclaim_at'])

    result = scoped_base.scoped(ansible, inventory, 'deferred.libvirt.reclaim', {'reclaim_project': project}, scope)

    summary = scoped_base.summary_of(result)
    assert [r['name'] for r in summary['reclaimed']] == [gone], summary['lines']
    swept = named_task(result, 'Sweep the hypervisor', 'hv2')
    [reclaimed] = [r for r in swept['instances'] if r['uuid'] == gone_uuid]
    assert 'VIR_DOMAIN_UNDEFINE_TPM' in reclaimed['undefine_flags'], reclaimed
    assert not os.path.exists(gone_state)
    assert hv2.exists(kept) and os.listdir(kept_state), 'the sweep took the TPM state of a domain it kept'
