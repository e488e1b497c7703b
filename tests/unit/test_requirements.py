# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What a hypervisor is told to install: the modules' Python packages with the control node's pins, and no
ansible-core (requirements-hypervisor.txt against requirements.txt)."""

import os

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def pins(name):
    with open(os.path.join(ROOT, name)) as handle:
        lines = [line.strip() for line in handle if line.strip() and not line.startswith('#')]
    return dict((line.split('>')[0].split('<')[0].split('=')[0], line) for line in lines)


def test_a_hypervisor_installs_no_ansible_core_and_the_same_pins_as_the_control_node():
    hypervisor, control = pins('requirements-hypervisor.txt'), pins('requirements.txt')
    assert 'ansible-core' not in hypervisor
    assert hypervisor == dict((k, v) for k, v in control.items() if k != 'ansible-core')
