# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""No leak (issue 23, item 7): a disk a terminate kept only because the fleet index was incomplete stays pending in
the tombstone, is shown by vm_info, and the next sweep with a complete index deletes it if it is then safe; a missing
host counts as another hypervisor for Cinder attachments. On test:///default with real files."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json
import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _engine as engine
from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _locality
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _info as info
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

NOW = _record.utcnow()
PAST = NOW - datetime.timedelta(hours=1)


@pytest.fixture(autouse=True)
def images_on_a_network_filesystem(tmp_path, monkeypatch):
    """The images directory as an sshfs mount (this host's mountinfo says so): a disk there is not provably local,
    so an incomplete index keeps it (a local disk it would delete, as test_locality.py shows)."""
    images = tmp_path / 'images'
    images.mkdir()
    st = os.stat(str(images))
    text = '\n'.join(['27 1 254:0 / / rw,relatime - ext4 /dev/vda rw',
                      '41 27 %d:%d / %s rw,nosuid - fuse.sshfs root@hv2:/export rw,allow_other'
                      % (os.major(st.st_dev), os.minor(st.st_dev), images)])
    real = _locality.Mounts
    monkeypatch.setattr(_locality, 'Mounts', lambda text_=None: real(text if text_ is None else text_))


def context(conn, tmp_path, **params):
    params.setdefault('instance_dirs', [str(tmp_path / 'images')])
    return engine.Context(conn, uri='test:///default', state=StateDir(str(tmp_path / 'state'), create=True),
                          project=None, lock_timeout=5, params=params)


def sweep(conn, tmp_path, fleet_slice):
    ctx = context(conn, tmp_path, fleet=fleet_slice)
    return reclaim.run(ctx, reclaim.options(ctx.params))


def a_slice(complete, missing=()):
    """This host's slice, bound to it as fleet_index_for binds one (test:///default answers with this machine's
    hostname): a module refuses a slice for another hypervisor, or an old one."""
    import libvirt
    me = hv.host_identity(libvirt.open('test:///default'))
    entry = dict(fleet.host_entry(me), complete=complete)
    return fleet.make_slice('hv2', entry, list(missing), [me], fleet='hypervisors',
                            built_at=_record.format_time(_record.utcnow()))


def expired_domain_with_disk(conn, define, tmp_path, name='web01'):
    images = tmp_path / 'images'
    images.mkdir(exist_ok=True)
    path = images / ('%s.img' % name)
    path.write_bytes(b'\0' * 512)
    define(name, devices='<disk type="file" device="disk"><source file="%s"/><target dev="vda"/></disk>' % path)
    record = _record.empty()
    record.update(vm_state='soft_deleted', project='web', soft_delete_mode='shutdown',
                  deleted_at=_record.format_time(PAST - datetime.timedelta(days=1)), reclaim_at=_record.format_time(PAST))
    hv.write_record(hv.refresh(conn, conn.lookupByName(name)), record)
    return str(path), conn.lookupByName(name).UUIDString()


def tomb_of(tmp_path, uuid):
    return StateDir(str(tmp_path / 'state')).read_tombstone(uuid)


def test_a_disk_kept_while_a_host_did_not_report_stays_pending_until_a_complete_sweep_deletes_it(conn, define, tmp_path):
    disk, uuid = expired_domain_with_disk(conn, define, tmp_path)

    first = sweep(conn, tmp_path, a_slice(False, ['hv3']))
    # The domain is reclaimed; its disk, which a host that did not report could reach, is kept, as pending work.
    assert [r['name'] for r in first['extra']['reclaimed']] == ['web01'] and os.path.exists(disk)
    assert first['extra']['fleet'] == {'given': True, 'complete': False, 'missing': ['hv3'], 'gaps': ['hv3 did not report']}
    assert [(p['name'], p['disks']) for p in first['extra']['disks_pending']] == [('web01', [disk])]
    assert first['extra']['summary']['disks_pending'] == 1
    tomb = tomb_of(tmp_path, uuid)
    assert [d['path'] for d in tomb['disks_pending']] == [disk] and not tombstones.finished(tomb)
    # vm_info shows the pending disk of the terminated domain.
    ctx = context(conn, tmp_path, include_deleted=True)
    [gone] = [i for i in info.run(ctx, info.options(ctx.params))['instances'] if i['name'] == 'web01']
    assert gone['vm_state'] == 'deleted' and [d['path'] for d in gone['disks_pending']] == [disk]

    # Still incomplete: still pending, nothing deleted, and the sweep says why.
    again = sweep(conn, tmp_path, a_slice(False, ['hv3']))
    assert os.path.exists(disk) and [p['name'] for p in again['extra']['disks_pending']] == ['web01']
    assert 'hv3' in again['extra']['disks_pending'][0]['reason']

    # Complete: the disk is deleted, and nothing is pending any more.
    done = sweep(conn, tmp_path, a_slice(True))
    assert not os.path.exists(disk)
    assert done['extra']['disks_settled'] == [{'name': 'web01', 'uuid': uuid, 'disks_deleted': [disk]}]
    tomb = tomb_of(tmp_path, uuid)
    assert tomb['disks_pending'] == [] and disk in tomb['disks_deleted']
    # Without Cinder ever asked it still waits for Cinder (rule 5), but no longer for its disks.
    assert tombstones.finished(dict(tomb, cinder_checked=True))


def test_a_pending_disk_is_never_deleted_by_a_run_without_a_fleet_view(conn, define, tmp_path):
    disk, uuid = expired_domain_with_disk(conn, define, tmp_path)
    sweep(conn, tmp_path, a_slice(False, ['hv3']))
    alone = sweep(conn, tmp_path, None)
    assert os.path.exists(disk) and [d['path'] for d in tomb_of(tmp_path, uuid)['disks_pending']] == [disk]
    # Rule 12: the sweep with a slice recorded the fleet this host belongs to; a run alone says so.
    assert 'this host belongs to fleet' in alone['extra']['disks_pending'][0]['reason']


def test_a_pending_disk_is_never_deleted_by_a_run_without_a_fleet_view_on_a_host_of_no_fleet(conn, define, tmp_path):
    disk, uuid = expired_domain_with_disk(conn, define, tmp_path)
    sweep(conn, tmp_path, a_slice(False, ['hv3']))
    os.unlink(str(tmp_path / 'state' / 'fleet.json'))  # the operator took the host out of the fleet
    alone = sweep(conn, tmp_path, None)
    assert os.path.exists(disk) and [d['path'] for d in tomb_of(tmp_path, uuid)['disks_pending']] == [disk]
    assert 'no fleet view' in alone['extra']['disks_pending'][0]['reason']


def test_a_pending_disk_that_a_domain_now_uses_is_never_deleted(conn, define, tmp_path):
    disk, uuid = expired_domain_with_disk(conn, define, tmp_path)
    sweep(conn, tmp_path, a_slice(False, ['hv3']))
    define('web02', devices='<disk type="file" device="disk"><source file="%s"/><target dev="vda"/></disk>' % disk)

    sweep(conn, tmp_path, a_slice(True))

    assert os.path.exists(disk)
    tomb = tomb_of(tmp_path, uuid)
    # Not pending any more: web02 owns it now, and its own terminate decides.
    assert tomb['disks_pending'] == [] and 'web02' in tomb['disks_kept'][-1]['reason']


def test_a_pending_disk_replaced_by_another_file_is_not_deleted(conn, define, tmp_path):
    disk, uuid = expired_domain_with_disk(conn, define, tmp_path)
    sweep(conn, tmp_path, a_slice(False, ['hv3']))
    # Another file put in its place (made while the old one still exists, so it is surely another inode).
    with open(disk + '.new', 'wb') as handle:
        handle.write(b'someone else\'s')
    os.rename(disk + '.new', disk)

    sweep(conn, tmp_path, a_slice(True))

    assert os.path.exists(disk)
    tomb = tomb_of(tmp_path, uuid)
    assert tomb['disks_pending'] == [] and 'replaced' in tomb['disks_kept'][-1]['reason']


def test_while_the_index_is_incomplete_every_host_but_this_one_holds_its_own_cinder_attachments():
    incomplete = fleet.FleetView(dict(a_slice(False, ['hv3']), hypervisors=[{'hostname': 'hv2'}, {'hostname': 'hv4'}]),
                                 {'hostname': 'hv2'})
    others = incomplete.foreign_hosts()
    assert 'hv3' in others and 'hv4.example' in others and 'unknown-host' in others
    assert 'hv2' not in others and 'hv2.example' not in others
    # hv3 did not report, hv4 did: theirs. A name the index cannot place may be hv3's: it stays pending.
    assert not others.uncertain('hv3') and not others.uncertain('hv4') and others.uncertain('unknown-host')
    complete = fleet.FleetView(dict(a_slice(True), hypervisors=[{'hostname': 'hv2'}, {'hostname': 'hv4'}]),
                               {'hostname': 'hv2'})
    assert set(complete.foreign_hosts()) == set(['hv4']) and not complete.foreign_hosts().every


def test_a_fleet_json_that_cannot_be_read_counts_as_a_fleet_and_the_run_says_why(conn, define, tmp_path):
    disk, uuid = expired_domain_with_disk(conn, define, tmp_path)
    sweep(conn, tmp_path, a_slice(False, ['hv3']))
    with open(str(tmp_path / 'state' / 'fleet.json'), 'w') as handle:
        handle.write('{not json')
    alone = sweep(conn, tmp_path, None)
    assert os.path.exists(disk)
    reason = alone['extra']['disks_pending'][0]['reason']
    assert 'fleet membership file' in reason and 'is not JSON' in reason and 'may belong to a fleet' in reason


def test_rule12_a_run_with_a_slice_records_the_fleet_and_a_check_mode_run_records_nothing(conn, define, tmp_path):
    ctx = context(conn, tmp_path, fleet=a_slice(True))
    ctx.check_mode = True
    reclaim.run(ctx, reclaim.options(ctx.params))
    assert not os.path.exists(str(tmp_path / 'state' / 'fleet.json'))

    sweep(conn, tmp_path, a_slice(True))

    with open(str(tmp_path / 'state' / 'fleet.json')) as handle:
        [(key, entry)] = json.load(handle).items()
    assert key == ctx.host_key() and entry['fleet'] == 'hypervisors' and entry['since']
