# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What vm_info reports of a domain or a tombstone (_views), and quota usage of views."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

import libvirt  # noqa: F401 (the unit stage runs in the test bed's venv: no libvirt is a failure, not a skip)
import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _chains
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _pools
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _record

from views_support import by_name, described_fleet, owned


@pytest.fixture
def fleet(conn, define):
    """A host with: test (unmanaged, running), web01 (web, running 2 vCPU/1 GiB), web02 (web, soft-deleted),
    web03 (web, being deleted), db01 (data, stopped 4 vCPU/4 GiB)."""
    return described_fleet(conn, define)


# -- describe -------------------------------------------------------------------

def test_an_unmanaged_domain_is_reported_with_its_state_from_libvirt(fleet):
    test = by_name(fleet, 'test')
    assert test['managed'] is False
    assert test['vm_state'] == 'active'
    assert test['power_state'] == 'running'
    assert test['project'] is None
    assert (test['vcpus'], test['memory_mb']) == (2, 8192)
    assert test['disks'] == [{'target': 'vda', 'device': 'disk', 'type': 'file', 'path': '/guest/diskimage1',
                              'pool': None, 'volume': None, 'st_dev': None, 'st_ino': None, 'allocated_bytes': None,
                              'counts_on_disk': True}]


def test_a_soft_deleted_domain_is_reported_with_its_retention(fleet):
    web02 = by_name(fleet, 'web02')
    assert web02['managed'] is True
    assert web02['vm_state'] == 'soft_deleted'
    assert web02['power_state'] == 'shutoff'
    assert (web02['deleted_at'], web02['reclaim_at']) == ('2024-05-01T10:00:00Z', '2024-05-08T10:00:00Z')
    assert web02['anomalies'] == []


def test_a_domain_with_a_malformed_record_is_reported_in_error(conn):
    conn.lookupByName('test').setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT,
                                          '<lifecycle version="1"><locked>yes</locked></lifecycle>',
                                          _record.PREFIX, _record.NAMESPACE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    view = _views.describe(hv.list_domains(conn)[0])
    assert view['vm_state'] == 'error'
    assert view['managed'] is False
    assert view['metadata_error'] == "domain test: lifecycle metadata field locked is 'yes', not true or false"


def test_a_soft_deleted_record_without_reclaim_at_is_reported_as_an_anomaly(conn):
    dom = hv.list_domains(conn)[0]
    hv.write_record(dom, owned('web', vm_state='soft_deleted', deleted_at='2024-05-01T10:00:00Z'))
    view = _views.describe(hv.list_domains(conn)[0])
    assert view['anomalies'] == ['reclaim_at is missing']


def test_a_tombstone_is_reported_as_deleted():
    view = _views.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'terminated_at': '2024-05-09T00:00:00Z',
                                      'volumes_pending': [{'id': 'v-1', 'delete_on_termination': True}]})
    assert view['vm_state'] == 'deleted'
    assert view['power_state'] == 'gone'
    assert view['terminated_at'] == '2024-05-09T00:00:00Z'
    assert view['volumes_pending'] == [{'id': 'v-1', 'delete_on_termination': True}]


# -- select by name -------------------------------------------------------------

def test_usage_counts_per_project_and_leaves_out_soft_deleted_and_deleting_domains(fleet):
    assert _views.usage(fleet) == {
        'web': {'instances': 1, 'cores': 2, 'ram_mb': 1024},
        'data': {'instances': 1, 'cores': 4, 'ram_mb': 4096},
    }


def test_usage_leaves_out_domains_without_a_project(fleet):
    assert 'None' not in _views.usage(fleet) and None not in _views.usage(fleet)


def test_usage_of_tombstones_is_nothing():
    assert _views.usage([_views.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'vcpus': 2})]) == {}


def test_usage_counts_nothing_for_sizes_that_are_not_counts():
    # Views from hand-edited tombstones or odd definitions: usage neither raises nor counts them negative.
    views = [{'project': 'web', 'vm_state': 'active', 'vcpus': vcpus, 'memory_mb': memory}
             for vcpus, memory in ((-4, -1024), ('lots', None), (True, 1.5), (2, 512))]
    assert _views.usage(views) == {'web': {'instances': 4, 'cores': 2, 'ram_mb': 512}}


def test_a_tombstone_with_sizes_that_are_not_counts_is_described_without_them():
    view = _views.describe_tombstone({'name': 'old01', 'uuid': 'u-1', 'project': 'web', 'vcpus': '-2', 'memory_mb': -5})
    assert (view['vcpus'], view['memory_mb']) == (None, None)


# -- backing chains (rule 10: the fleet index keeps every file a chain reaches) -----------------------------------

needs_qemu_img = pytest.mark.usefixtures('qemu_img')  # fails, never skips, without qemu-img (tests/unit/conftest.py)


def image(path, *args):
    """qemu-img create [ARGS] PATH: a real image file, its header written by QEMU's own tool."""
    path = str(path)
    size = [] if '-b' in args and '-u' not in args else ['1M']
    subprocess.run(['qemu-img', 'create', '-q'] + list(args) + [path] + size, check=True, capture_output=True)
    return path


def disk_xml(path, target='vdb'):
    return "<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='%s'/><target dev='%s'/></disk>" % (
        path, target)


def chain_view(conn, name):
    [domain] = [d for d in hv.list_domains(conn) if d.name == name]
    return _views.add_backing_chains(_views.describe(domain), _pools.Pools(conn).path_offline)


def file_of(path, fmt):
    st = os.stat(path)
    return {'path': path, 'format': fmt, 'st_dev': st.st_dev, 'st_ino': st.st_ino}


@needs_qemu_img
def test_vm_info_reports_every_file_a_disk_opens_behind_it_in_order_with_its_identity(conn, define, tmp_path):
    base = image(tmp_path / 'golden.raw', '-f', 'raw')
    image(tmp_path / 'middle.qcow2', '-f', 'qcow2', '-b', base, '-F', 'raw')
    os.mkdir(str(tmp_path / 'vm'))
    top = image(tmp_path / 'vm' / 'top.qcow2', '-f', 'qcow2', '-b', '../middle.qcow2', '-F', 'qcow2')
    define('web', devices=disk_xml(top))

    [vdb] = [d for d in chain_view(conn, 'web')['disks'] if d['target'] == 'vdb']

    # A relative name is opened from the directory of the image naming it, as QEMU does.
    assert vdb['backing_chain'] == [file_of(str(tmp_path / 'vm' / '../middle.qcow2'), 'qcow2'), file_of(base, 'raw')]
    assert vdb['backing_chain_error'] is None
    st = os.stat(top)
    assert (vdb['st_dev'], vdb['st_ino'], vdb['file_path']) == (st.st_dev, st.st_ino, top)


@needs_qemu_img
def test_a_backing_file_that_is_gone_is_listed_without_an_identity(conn, define, tmp_path):
    base = image(tmp_path / 'base.qcow2', '-f', 'qcow2')
    top = image(tmp_path / 'top.qcow2', '-f', 'qcow2', '-b', base, '-F', 'qcow2')
    os.unlink(base)
    define('web', devices=disk_xml(top))

    [vdb] = [d for d in chain_view(conn, 'web')['disks'] if d['target'] == 'vdb']

    assert vdb['backing_chain'] == [{'path': base, 'format': None, 'st_dev': None, 'st_ino': None}]
    assert vdb['backing_chain_error'] is None


@needs_qemu_img
def test_a_chain_that_cannot_be_read_is_reported_on_the_disk_not_raised(conn, define, tmp_path):
    # -u: qemu-img writes the name without opening it, as a hand edit or a foreign tool could.
    garbled = image(tmp_path / 'garbled.qcow2', '-f', 'qcow2', '-u', '-b', 'json:{not json', '-F', 'qcow2')
    define('web', devices=disk_xml(garbled) + disk_xml(image(tmp_path / 'fine.qcow2', '-f', 'qcow2'), 'vdc'))

    disks = dict((d['target'], d) for d in chain_view(conn, 'web')['disks'])

    assert disks['vdb']['backing_chain'] == []
    assert disks['vdb']['backing_chain_error'] == "backing name 'json:{not json' cannot be parsed"
    assert (disks['vdc']['backing_chain'], disks['vdc']['backing_chain_error']) == ([], None)


@needs_qemu_img
def test_a_chain_deeper_than_the_cap_is_reported_as_unreadable(conn, define, tmp_path):
    below = image(tmp_path / 'layer0.qcow2', '-f', 'qcow2')
    for layer in range(1, _chains.MAX_CHAIN + 2):
        below = image(tmp_path / ('layer%d.qcow2' % layer), '-f', 'qcow2', '-b', below, '-F', 'qcow2')
    define('web', devices=disk_xml(below))

    [vdb] = [d for d in chain_view(conn, 'web')['disks'] if d['target'] == 'vdb']

    assert vdb['backing_chain_error'] == 'the backing chain of %s is deeper than %d images' % (below, _chains.MAX_CHAIN)


@needs_qemu_img
def test_a_chain_exactly_as_deep_as_the_cap_is_read_whole(tmp_path):
    below = image(tmp_path / 'layer0.qcow2', '-f', 'qcow2')
    for layer in range(1, _chains.MAX_CHAIN + 1):
        below = image(tmp_path / ('layer%d.qcow2' % layer), '-f', 'qcow2', '-b', below, '-F', 'qcow2')
    dummy, chain, error = _chains.describe_chain(below)
    assert (len(chain), error) == (_chains.MAX_CHAIN, None)


@needs_qemu_img
def test_a_pool_volume_is_followed_from_the_file_its_pool_resolves_it_to(conn, define, tmp_path):
    pool = conn.storagePoolDefineXML("<pool type='dir'><name>chains</name><target><path>%s</path></target></pool>"
                                     % tmp_path, 0)
    pool.create(0)
    base = image(tmp_path / 'golden.qcow2', '-f', 'qcow2')
    top = image(tmp_path / 'web.qcow2', '-f', 'qcow2', '-b', base, '-F', 'qcow2')
    define('web', devices="<disk type='volume' device='disk'><source pool='chains' volume='web.qcow2'/>"
                          "<target dev='vdb'/></disk>")

    [vdb] = [d for d in chain_view(conn, 'web')['disks'] if d['target'] == 'vdb']

    st = os.stat(top)
    assert (vdb['path'], vdb['file_path'], vdb['st_dev'], vdb['st_ino']) == (None, top, st.st_dev, st.st_ino)
    assert vdb['backing_chain'] == [file_of(base, 'qcow2')]


def test_a_volume_whose_pool_is_gone_says_so_instead_of_a_chain(conn, define):
    define('web', devices="<disk type='volume' device='disk'><source pool='nowhere' volume='web.qcow2'/>"
                          "<target dev='vdb'/></disk>")

    [vdb] = [d for d in chain_view(conn, 'web')['disks'] if d['target'] == 'vdb']

    assert vdb['backing_chain'] is None
    assert vdb['backing_chain_error'].startswith('volume web.qcow2 in pool nowhere: ')


def test_a_disk_that_is_no_file_has_no_chain(conn, define):
    define('web', devices="<disk type='network' device='disk'><source protocol='nbd' name='web'>"
                          "<host name='127.0.0.1' port='10809'/></source><target dev='vdb'/></disk>")

    [vdb] = [d for d in chain_view(conn, 'web')['disks'] if d['target'] == 'vdb']

    assert (vdb['file_path'], vdb['backing_chain'], vdb['backing_chain_error']) == (None, None, None)


def test_allocated_bytes_of_a_sparse_image_is_what_it_holds_not_its_virtual_size(tmp_path):
    image = tmp_path / 'disk.img'
    with open(str(image), 'wb') as handle:
        handle.write(b'x' * (1 << 20))
        handle.truncate(1 << 30)
    allocated = _views.allocated_bytes(str(image))
    assert (1 << 20) <= allocated < (1 << 30) // 2
    assert _views.allocated_bytes(str(tmp_path / 'gone.img')) is None
    assert _views.allocated_bytes(str(tmp_path)) is None


def test_disk_bytes_sums_the_writable_disks_that_could_be_read():
    view = {'disks': [{'device': 'disk', 'allocated_bytes': 1000, 'counts_on_disk': True},
                      {'device': 'disk', 'allocated_bytes': None, 'counts_on_disk': True},
                      {'device': 'cdrom', 'allocated_bytes': 5000, 'counts_on_disk': False},
                      {'device': 'disk', 'allocated_bytes': 7000, 'counts_on_disk': False},
                      {'device': 'disk', 'allocated_bytes': 24}]}
    assert _views.disk_bytes(view) == 1024
    assert _views.disk_bytes({'disks': [{'device': 'disk', 'allocated_bytes': None}]}) is None
    assert _views.disk_bytes({'disks': []}) is None


def test_fields_are_every_key_of_a_live_view_and_a_tombstone(conn, define):
    define('web01')
    view = _views.describe(hv.list_domains(conn)[0])
    tomb = _views.describe_tombstone({'name': 'old', 'uuid': 'u'})
    assert set(view) <= set(_views.FIELDS) and set(tomb) <= set(_views.FIELDS)
    assert _views.unknown_fields(['name', 'owner']) == ['owner']
    assert _views.project_fields(view, ['name', 'terminated_at']) == {'name': view['name'], 'terminated_at': None}
