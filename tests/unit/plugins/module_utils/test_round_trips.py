# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""How often an operation goes back to libvirt for one domain, on the test:///default driver.

A soft delete or a restore reads the domain under its lock, and once more
after the long step (the shutdown, the boot) before writing the record: those
reads stay, they are what makes the compare-and-set safe. Any other read
repeats one just made. bench/ counts every call on a real libvirtd; here the
design is held to: the reads under the lock, and that the result reported
from them is what libvirt holds.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv

from ansible_collections.deferred.libvirt.plugins.module_utils import _pools

from ansible_collections.deferred.libvirt.plugins.module_utils import _power
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _restore as restore
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir


@pytest.fixture
def reads(monkeypatch):
    """Every re-read of one domain (hv.refresh, hv.reread_stopped) and every power-state call, as they happen."""
    seen = {'refresh': 0, 'state': 0, 'reread_stopped': 0}
    real_refresh = hv.refresh
    real_reread = hv.reread_stopped
    real_state = hv.libvirt.virDomain.state

    def counted_refresh(conn, dom):
        seen['refresh'] += 1
        return real_refresh(conn, dom)

    def counted_state(self, *args):
        seen['state'] += 1
        return real_state(self, *args)

    def counted_reread(domain, managed_save):
        seen['reread_stopped'] += 1
        return real_reread(domain, managed_save)

    monkeypatch.setattr(hv, 'refresh', counted_refresh)
    monkeypatch.setattr(hv, 'reread_stopped', counted_reread)
    monkeypatch.setattr(hv.libvirt.virDomain, 'state', counted_state)
    return seen


def run(operation, conn, tmp_path, **params):
    ctx = engine.Context(conn, uri='test:///default', state=StateDir(str(tmp_path / 'state'), create=True), lock_timeout=5,
                         params=dict(params, instance_dirs=[str(tmp_path)]))
    [instance] = operation.run(ctx, operation.options(ctx.params))['instances']
    assert not instance.get('failed'), instance
    return instance


def stored_view(conn, name):
    return _views.describe(hv.refresh(conn, conn.lookupByName(name)))


def test_a_soft_delete_reads_the_domain_under_its_lock_and_after_the_shutdown_only(conn, define, tmp_path, reads):
    define('web01', running=True)
    instance = run(soft_delete, conn, tmp_path, name=['web01'], shutdown_timeout=5)
    # Under the lock before deciding, and after the shutdown for the compare-and-set (its record only, the one
    # call reread_stopped makes): nothing in between.
    assert (reads['refresh'], reads['reread_stopped']) == (1, 1)
    # The reported record is the one libvirt now holds, although nothing read it back after the write.
    assert instance['record'] == stored_view(conn, 'web01')
    assert (instance['record']['power_state'], instance['record']['vm_state']) == ('shutoff', 'soft_deleted')


def test_a_record_changed_by_another_writer_during_the_shutdown_fails_the_soft_delete(conn, define, tmp_path,
                                                                                      monkeypatch):
    dom = define('web01', running=True)
    real_shutdown = _power.clean_shutdown

    def shutdown_while_another_writer_takes_it(*args, **kwargs):
        stopped = real_shutdown(*args, **kwargs)
        # A writer without this host's lock (an ad hoc move_from) takes the domain while it shuts down.
        theirs = hv.refresh(conn, dom)
        record = dict(theirs.record, task_state='moving')
        hv.write_record(theirs, record)
        return stopped

    monkeypatch.setattr(_power, 'clean_shutdown', shutdown_while_another_writer_takes_it)
    ctx = engine.Context(conn, uri='test:///default', state=StateDir(str(tmp_path / 'state'), create=True),
                         lock_timeout=5, params=dict(name=['web01'], shutdown_timeout=5))
    [instance] = soft_delete.run(ctx, soft_delete.options(ctx.params))['instances']
    assert instance['failed'] is True
    assert 'task_state is moving, expected soft_deleting; another operation got there first' in instance['msg']


def test_a_restore_reads_the_domain_under_its_lock_and_after_the_boot_only(conn, define, tmp_path, reads):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'], shutdown_timeout=5)
    reads['refresh'] = 0
    instance = run(restore, conn, tmp_path, name=['web01'])
    assert reads['refresh'] == 2
    assert instance['record'] == stored_view(conn, 'web01')
    assert (instance['record']['power_state'], instance['record']['vm_state']) == ('running', 'active')


def test_a_terminate_reads_the_domain_under_its_lock_and_after_the_destroy_only(conn, define, tmp_path, reads):
    define('web01', running=True)
    instance = run(terminate, conn, tmp_path, name=['web01'])
    assert reads['refresh'] == 2
    assert instance['action'] == 'terminated'
    assert 'web01' not in [d.name() for d in conn.listAllDomains(0)]


def test_a_clean_shutdown_given_the_state_just_read_does_not_ask_for_it_again(conn, define, reads):
    dom = define('web01', running=True)
    result = _power.clean_shutdown(dom, timeout=5, retry_interval=1, state='running')
    # One shutdown sent without asking first; the test driver is off at once, which the next look sees.
    assert (result['clean_shutdown'], result['attempts'], reads['state']) == (True, 1, 1)


def test_a_dir_pool_gives_its_volumes_paths_without_asking_per_volume(conn, monkeypatch):
    pools = _pools.Pools(conn)
    asked = []
    real = hv.libvirt.virStoragePool.storageVolLookupByName
    monkeypatch.setattr(hv.libvirt.virStoragePool, 'storageVolLookupByName',
                        lambda self, name: asked.append(name) or real(self, name))
    # test:///default has the dir pool default-pool, target /default-pool.
    assert pools.path_offline('default-pool', 'a.img') == '/default-pool/a.img'
    assert pools.path_offline('default-pool', 'b.img') == '/default-pool/b.img'
    assert asked == []
    with pytest.raises(hv.HypervisorError, match='volume x in pool nosuchpool'):
        pools.path_offline('nosuchpool', 'x')


def test_a_pool_volume_classified_as_owned_is_deleted_through_the_same_handle(conn, define, monkeypatch):
    pool = conn.storagePoolLookupByName('default-pool')
    pool.createXML('<volume><name>web01.img</name><capacity>1048576</capacity></volume>', 0)
    define('web01', devices='<disk type="volume" device="disk"><source pool="default-pool" volume="web01.img"/>'
                            '<target dev="vda"/></disk>')
    by_path = []
    real = hv.libvirt.virConnect.storageVolLookupByPath
    monkeypatch.setattr(hv.libvirt.virConnect, 'storageVolLookupByPath',
                        lambda self, path: by_path.append(path) or real(self, path))
    domain = hv.refresh(conn, conn.lookupByName('web01'))
    index = storage.Index(conn, hv.list_domains(conn))
    owned, kept = storage.classify_disks(conn, domain, ['/default-pool'], index)
    assert [o['real_path'] for o in owned] == ['/default-pool/web01.img'], [k['reason'] for k in kept]
    storage.delete_disk(conn, owned[0], ['/default-pool'])
    assert 'web01.img' not in pool.listVolumes()
    assert by_path == []  # the volume was found by its pool and name once, and deleted through that
