# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the tests read from a module's result, written once for every test file."""

# The lifecycle record's namespace, as `virsh metadata` shows it.
NS = 'urn:deferred-libvirt:lifecycle:1'
INFO = 'deferred.libvirt.vm_info'


def only(result):
    """The one per-domain result of a task that must not have failed."""
    assert not result.get('failed'), result
    [inst] = result['instances']
    return inst


def info(ansible, name):
    """vm_info's record of one domain."""
    return only(ansible.task(INFO, name=name))
