# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Rule 11 on the real hypervisor: a sweep whose clock has jumped forward (libfaketime under the whole
ansible-playbook run, as a wrong RTC at boot or an NTP step would) reclaims nothing early."""

import glob

import pytest

from results import only

SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
RECLAIM = 'deferred.libvirt.vm_reclaim'
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
