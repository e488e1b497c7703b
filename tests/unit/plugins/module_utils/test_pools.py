# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Networks, pools and volumes around a domain, against libvirt's test driver (its default-pool is a dir pool)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

# Imported so that the unit stage, which runs in the test bed's venv, fails (never skips) without libvirt.
import libvirt  # noqa: F401  # pylint: disable=unused-import
import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _pools
from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import HypervisorError

VOLUME_XML = "<volume><name>%s</name><capacity unit='bytes'>1048576</capacity></volume>"


@pytest.fixture
def pool(conn):
    return conn.storagePoolLookupByName('default-pool')


def test_a_volume_path_is_read_through_its_pool(conn, pool):
    pool.createXML(VOLUME_XML % 'disk1.img', 0)
    assert _pools.volume_path(conn, 'default-pool', 'disk1.img') == '/default-pool/disk1.img'
    assert _pools.Pools(conn).volume('default-pool', 'disk1.img').path() == '/default-pool/disk1.img'


def test_a_dir_pool_names_a_volume_path_without_asking_for_the_volume(conn):
    # Offline: the pool's target and the volume's name, even for a volume libvirt does not list (yet).
    assert _pools.volume_path_offline(conn, 'default-pool', 'not-there.img') == '/default-pool/not-there.img'


def test_an_unknown_pool_is_named_in_the_error(conn):
    with pytest.raises(HypervisorError) as err:
        _pools.Pools(conn).volume('no-such-pool', 'disk1.img')
    assert 'volume disk1.img in pool no-such-pool' in str(err.value)


def test_a_volume_is_deleted_through_its_pool(conn, pool):
    vol = pool.createXML(VOLUME_XML % 'gone.img', 0)
    assert _pools.volume_by_path(conn, vol.path()) is not None
    assert _pools.delete_volume(conn, vol.path()) is None
    assert _pools.volume_by_path(conn, '/default-pool/gone.img') is None


def test_the_networks_of_a_domain_are_started_and_named(conn):
    net = conn.networkLookupByName('default')
    net.destroy()
    domain = hv.refresh(conn, conn.lookupByName('test'))
    assert _pools.ensure_networks(conn, domain) == ['default']
    assert net.isActive()
    assert _pools.ensure_networks(conn, domain) == []


def test_a_missing_network_is_named_with_the_domain(conn):
    domain = hv.refresh(conn, conn.lookupByName('test'))
    domain.root.find("devices/interface/source").set('network', 'nowhere')
    with pytest.raises(HypervisorError) as err:
        _pools.ensure_networks(conn, domain)
    assert str(err.value) == 'domain test: network nowhere does not exist'
