# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt client against libvirt's test driver: undefine flags, disks, sizes, listing, refresh."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


import libvirt
import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv

from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import HypervisorError


def power(dom):
    return hv.POWER_STATES[dom.state()[0]]


def refreshed(conn, name):
    return hv.refresh(conn, conn.lookupByName(name))


# -- undefine -------------------------------------------------------------------

def test_a_plain_domain_needs_no_undefine_flags(conn, define):
    define('plain')
    assert hv.undefine_flags(refreshed(conn, 'plain')) == (0, [])


def test_a_managed_save_image_adds_the_managed_save_flag(conn):
    conn.lookupByName('test').managedSave(0)
    domain = refreshed(conn, 'test')
    assert domain.managed_save is True
    assert hv.undefine_flags(domain) == (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE, ['VIR_DOMAIN_UNDEFINE_MANAGED_SAVE'])


def test_a_domain_with_a_managed_save_image_is_undefined_with_it(conn):
    conn.lookupByName('test').managedSave(0)
    assert hv.undefine(refreshed(conn, 'test')) == ['VIR_DOMAIN_UNDEFINE_MANAGED_SAVE']
    assert hv.lookup(conn, '6695eb01-f6a4-8304-79aa-97f2502e193f') is None


def test_the_managed_save_flag_is_what_lets_libvirt_undefine(conn):
    dom = conn.lookupByName('test')
    dom.managedSave(0)
    with pytest.raises(libvirt.libvirtError):
        dom.undefineFlags(0)


def test_snapshot_metadata_adds_the_snapshot_flag_and_undefine_succeeds(conn, define):
    dom = define('snappy')
    dom.snapshotCreateXML('<domainsnapshot><name>before-upgrade</name></domainsnapshot>', 0)
    domain = refreshed(conn, 'snappy')
    assert hv.undefine_flags(domain) == (libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA,
                                         ['VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA'])
    assert hv.undefine(domain) == ['VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA']
    assert 'snappy' not in [d.name() for d in conn.listAllDomains(0)]


def test_managed_save_and_snapshots_together_give_both_flags(conn):
    dom = conn.lookupByName('test')
    dom.snapshotCreateXML('<domainsnapshot><name>s1</name></domainsnapshot>', 0)
    dom.managedSave(0)
    flags, names = hv.undefine_flags(refreshed(conn, 'test'))
    assert flags == libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    assert names == ['VIR_DOMAIN_UNDEFINE_MANAGED_SAVE', 'VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA']


def test_a_flag_the_hypervisor_does_not_support_is_dropped_and_undefine_succeeds(conn, define):
    # The test driver rejects NVRAM as an unsupported flag; real drivers need it for UEFI guests.
    define('uefi', os_extra='<loader readonly="yes" type="pflash">/usr/share/OVMF/OVMF_CODE.fd</loader>'
                            '<nvram>/var/lib/libvirt/qemu/nvram/uefi_VARS.fd</nvram>')
    domain = refreshed(conn, 'uefi')
    assert domain.has_nvram()
    assert hv.undefine_flags(domain)[1] == ['VIR_DOMAIN_UNDEFINE_NVRAM']
    assert hv.undefine(domain) == []
    assert 'uefi' not in [d.name() for d in conn.listAllDomains(0)]


# -- what a domain is made of ---------------------------------------------------

DISKS = '''
<disk type="file" device="disk"><driver name="qemu" type="qcow2"/>
  <source file="/var/lib/libvirt/images/web01.qcow2"/><target dev="vda" bus="virtio"/></disk>
<disk type="block" device="disk"><driver name="qemu" type="raw"/>
  <source dev="/dev/vg0/web01-data"/><target dev="vdb" bus="virtio"/><shareable/></disk>
<disk type="volume" device="disk"><driver name="qemu" type="qcow2"/>
  <source pool="default" volume="web01-logs.qcow2"/><target dev="vdc" bus="virtio"/></disk>
<disk type="network" device="disk"><driver name="qemu" type="raw"/>
  <source protocol="rbd" name="volumes/volume-0d8e4c9e"><host name="ceph1" port="6789"/></source>
  <target dev="vdd" bus="virtio"/></disk>
<disk type="file" device="cdrom"><target dev="sda" bus="sata"/><readonly/></disk>
'''


def test_disks_are_read_from_the_persistent_definition(conn, define):
    define('web01', devices=DISKS)
    disks = refreshed(conn, 'web01').disks()
    assert [(d['target'], d['device'], d['type'], d['path'], d['pool'], d['volume'], d['format']) for d in disks] == [
        ('vda', 'disk', 'file', '/var/lib/libvirt/images/web01.qcow2', None, None, 'qcow2'),
        ('vdb', 'disk', 'block', '/dev/vg0/web01-data', None, None, 'raw'),
        ('vdc', 'disk', 'volume', None, 'default', 'web01-logs.qcow2', 'qcow2'),
        ('vdd', 'disk', 'network', 'rbd:volumes/volume-0d8e4c9e', None, None, 'raw'),
        ('sda', 'cdrom', 'file', None, None, None, None),
    ]
    assert [d['shareable'] for d in disks] == [False, True, False, False, False]
    assert [d['readonly'] for d in disks] == [False, False, False, False, True]


def test_the_default_domain_has_one_file_disk_and_the_default_network(conn):
    domain = refreshed(conn, 'test')
    assert [(d['target'], d['path']) for d in domain.disks()] == [('vda', '/guest/diskimage1')]
    assert domain.networks() == ['default']


def test_memory_and_vcpus_of_the_default_domain(conn):
    domain = refreshed(conn, 'test')
    assert (domain.vcpus, domain.memory_mb) == (2, 8192)


@pytest.mark.parametrize('memory, memory_mb', [
    ('<memory unit="KiB">1048576</memory>', 1024),
    ('<memory>524288</memory>', 512),
    ('<memory unit="MiB">2048</memory>', 2048),
    ('<memory unit="GiB">4</memory>', 4096),
    ('<memory unit="b">1073741824</memory>', 1024),
])
def test_memory_is_reported_in_mib_whatever_the_unit(memory, memory_mb):
    xml = '<domain type="kvm"><name>x</name><uuid>u</uuid>%s<vcpu>3</vcpu></domain>' % memory
    domain = hv.Domain(None, xml, 'shutoff')
    assert (domain.memory_mb, domain.vcpus) == (memory_mb, 3)


def test_a_defined_domain_reports_the_size_it_was_defined_with(conn, define):
    define('web01', vcpus=4, memory_mib=1536)
    assert (refreshed(conn, 'web01').vcpus, refreshed(conn, 'web01').memory_mb) == (4, 1536)


def test_boot_files_and_tpm_are_found(conn, define):
    define('web01', os_extra='<kernel>/boot/vmlinuz</kernel><initrd>/boot/initrd.img</initrd>',
           devices='<tpm model="tpm-crb"><backend type="emulator" version="2.0"/></tpm>')
    domain = hv.Domain(None, conn.lookupByName('web01').XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), 'shutoff')
    assert domain.boot_files() == ['/boot/vmlinuz', '/boot/initrd.img']
    assert domain.has_tpm()
    assert not domain.has_nvram()


# -- listing and connecting -------------------------------------------------------

def test_list_domains_reports_power_state_persistence_and_managed_save(conn, define):
    define('stopped01')
    conn.createXML('<domain type="test"><name>transient01</name><memory>65536</memory><os><type>hvm</type></os></domain>', 0)
    conn.lookupByName('test').managedSave(0)
    domains = dict((d.name, d) for d in hv.list_domains(conn))
    assert sorted(domains) == ['stopped01', 'test', 'transient01']
    assert (domains['stopped01'].power_state, domains['stopped01'].persistent) == ('shutoff', True)
    assert (domains['transient01'].power_state, domains['transient01'].persistent) == ('running', False)
    assert (domains['test'].power_state, domains['test'].managed_save) == ('shutoff', True)


def test_refresh_of_an_undefined_domain_is_none(conn, define):
    dom = define('brief')
    dom.undefine()
    assert hv.refresh(conn, dom) is None


def test_an_unreachable_hypervisor_is_reported_with_its_uri():
    uri = 'qemu+unix:///system?socket=/nonexistent'
    with pytest.raises(HypervisorError) as err:
        hv.open_connection(uri)
    assert str(err.value).startswith('cannot connect to the hypervisor at %s: ' % uri)
    assert '/nonexistent' in str(err.value)
