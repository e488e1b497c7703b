# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rule 11 on the real hypervisor: a sweep whose clock has jumped forward (libfaketime under the whole
ansible-playbook run, as a wrong RTC at boot or an NTP step would) reclaims nothing early."""

import datetime
import glob
import time

import pytest

import kernel_clock
from results import only

SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
RECLAIM = 'deferred.libvirt.vm_reclaim'

# Rule 11 is a safety rule: it holds on the newest ansible-core line too (the security-newest stage).
pytestmark = pytest.mark.security
ATTRS = 'deferred.libvirt.vm_attributes'


@pytest.fixture(scope='module')
def faketime():
    found = glob.glob('/usr/lib/*/faketime/libfaketimeMT.so.1')
    if not found:
        pytest.fail('libfaketime is not installed (tests/testbed/hypervisor.sh installs the faketime package)')
    return found[0]


def jumped(ansible, faketime, offset, module, **args):
    """Run one module task whose own process sees a clock ``offset`` away (the task's environment, as a host whose
    clock jumped would); ansible-playbook itself keeps the real clock."""
    env = {'LD_PRELOAD': faketime, 'FAKETIME': offset, 'FAKETIME_DONT_FAKE_MONOTONIC': '1'}
    return ansible.playbook([{'name': module, module: args, 'environment': env}]).task(0)


def test_a_clock_jumped_a_year_forward_reclaims_nothing_and_says_why(ansible, make_guest, hypervisor, faketime):
    name, uuid = make_guest('a', start=False)
    project = name.rsplit('-', 1)[0]
    only(ansible.task(ATTRS, name=name, project=project))
    only(ansible.task(SOFT_DELETE, name=name, reclaim_interval='1d'))

    sweep = jumped(ansible, faketime, '+400d', RECLAIM, project=project)

    assert not sweep.get('failed'), sweep
    assert sweep['reclaimed'] == []
    [skipped] = sweep['skipped_domains']
    assert skipped['uuid'] == uuid and 'clock may have jumped forward' in skipped['reason']
    assert hypervisor.lookupByName(name)


def test_a_record_written_by_a_clock_ahead_of_the_sweeps_is_not_reclaimed(ansible, make_guest, hypervisor, faketime):
    name, uuid = make_guest('a', start=False)
    project = name.rsplit('-', 1)[0]
    only(ansible.task(ATTRS, name=name, project=project))
    # Soft-deleted by a host whose clock ran two days ahead, with a retention of one day.
    only(jumped(ansible, faketime, '+2d', SOFT_DELETE, name=name, reclaim_interval='1d'))

    sweep = ansible.task(RECLAIM, project=project)

    assert not sweep.get('failed'), sweep
    assert sweep['reclaimed'] == []
    [skipped] = sweep['skipped_domains']
    assert skipped['uuid'] == uuid and 'in the future of this host' in skipped['reason']
    assert hypervisor.lookupByName(name)


def test_a_wall_clock_stepped_forward_within_one_boot_reclaims_nothing_in_a_7_day_trash(
        ansible, make_guest, hypervisor, faketime):
    # Ten days forward is within the plausible lateness of a 7-day retention (24 intervals, at most 30 days), so the
    # overdue rule alone let every domain of the trash become due. The boot clock cannot be stepped: the sweep
    # compares its advance with the wall clock's since the last sweep (issue 24, item 5).
    name, uuid = make_guest('a', start=False)
    project = name.rsplit('-', 1)[0]
    only(ansible.task(ATTRS, name=name, project=project))
    only(ansible.task(SOFT_DELETE, name=name, reclaim_interval='7d'))
    # Records this sweep's wall and boot clocks (max_overdue 0: whatever an earlier test left, this clock is taken).
    first = ansible.task(RECLAIM, project=project, max_overdue=0)
    assert not first.get('failed') and first['reclaimed'] == [], first

    stepped = jumped(ansible, faketime, '+10d', RECLAIM, project=project)

    assert not stepped.get('failed'), stepped
    assert stepped['reclaimed'] == []
    assert stepped['clock']['state'] == 'stepped_forward' and stepped['clock']['blocks'] is True
    assert stepped['clock']['step_seconds'] > 9 * 86400
    assert 'stepped' in stepped['clock']['message'] and 'forward' in stepped['clock']['message']
    [skipped] = [s for s in stepped['skipped_domains'] if s['uuid'] == uuid]
    assert 'stepped' in skipped['reason']
    assert hypervisor.lookupByName(name)


def test_a_wall_clock_stepped_back_is_reported_and_reclaims_nothing_early(ansible, make_guest, hypervisor, faketime):
    name, uuid = make_guest('a', start=False)
    project = name.rsplit('-', 1)[0]
    only(ansible.task(ATTRS, name=name, project=project))
    only(ansible.task(SOFT_DELETE, name=name, reclaim_interval='1d'))
    assert not ansible.task(RECLAIM, project=project, max_overdue=0).get('failed')

    back = jumped(ansible, faketime, '-3d', RECLAIM, project=project)

    assert not back.get('failed'), back
    assert back['clock']['state'] == 'stepped_back' and back['clock']['blocks'] is False
    assert back['reclaimed'] == []
    assert hypervisor.lookupByName(name)


@pytest.mark.parametrize('synchronised, reclaimed', [(False, False), (True, True)])
def test_after_a_reboot_the_kernels_synchronised_flag_decides(ansible, make_guest, hypervisor, tmp_path, synchronised,
                                                              reclaimed):
    # A reboot (another boot id) leaves nothing to compare the wall clock with: an unsynchronised clock reclaims
    # nothing, a synchronised one falls back to the overdue rule. The sweep runs as on a host that has just booted
    # (another boot id, a boot clock near zero: mount and time namespaces) with the kernel's own synchronised flag
    # set as NTP sets it (kernel_clock).
    name, uuid = make_guest('a', start=False)
    project = name.rsplit('-', 1)[0]
    only(ansible.task(ATTRS, name=name, project=project))
    reclaim_at = only(ansible.task(SOFT_DELETE, name=name, reclaim_interval='20s'))['reclaim_at']
    before = ansible.task(RECLAIM, project=project, max_overdue=0)  # the boot before: records its clocks
    assert not before.get('failed') and before['reclaimed'] == [], before
    when = datetime.datetime.strptime(reclaim_at, '%Y-%m-%dT%H:%M:%SZ').replace(tzinfo=datetime.timezone.utc)
    time.sleep(max(0.0, (when - datetime.datetime.now(datetime.timezone.utc)).total_seconds()) + 1.1)

    with kernel_clock.synchronised(synchronised):
        after = ansible.playbook([{'name': RECLAIM, RECLAIM: {'project': project}}],
                                 wrap=lambda argv: kernel_clock.as_if_rebooted(argv, str(tmp_path))).task(0)

    assert not after.get('failed'), after
    assert after['clock']['state'] == ('rebooted' if reclaimed else 'rebooted_unsynchronised')
    assert [r['uuid'] for r in after['reclaimed']] == ([uuid] if reclaimed else [])
