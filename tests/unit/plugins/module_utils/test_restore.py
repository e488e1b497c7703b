# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_restore's operation (_ops/_restore.py) on test:///default: back to running, refused over quota, check mode.

Run through a plain Context (ops_support.py): a refused restore changes nothing, and check mode reports the record
the real restore leaves. A domain that was reclaimed or terminated is refused with what became of it (when, by which
request and actor, what was deleted and kept), not as an unknown name.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import datetime
import json

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _attributes as attributes
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _reclaim as reclaim
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _restore as restore
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete

from ops_support import FUTURE, PAST, only, put, record_of, run, set_text, soft_deleted_record


def test_restore_brings_a_soft_deleted_domain_back_to_running(conn, define, tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'])
    instance = only(run(restore, conn, tmp_path, name=['web01'])[0])
    record = record_of(conn, 'web01')
    assert instance['action'] == 'restored'
    assert (record['vm_state'], record['deleted_at'], record['reclaim_at']) == ('active', None, None)
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING


def test_restore_over_quota_is_refused_before_anything_changes(conn, define, tmp_path):
    define('web01', running=True, vcpus=2)
    run(soft_delete, conn, tmp_path, name=['web01'])
    run(attributes, conn, tmp_path, name=['web01'], project='web')
    before = record_of(conn, 'web01')
    with pytest.raises(quota.QuotaError) as err:
        run(restore, conn, tmp_path, name=['web01'], quota={'web': {'cores': 1}})
    assert 'over quota, nothing was changed' in str(err.value)
    assert err.value.result['quota']['over']
    assert record_of(conn, 'web01') == before


def test_restore_check_mode_matches_the_real_restore(conn, define, tmp_path):
    define('web01', running=True)
    run(soft_delete, conn, tmp_path, name=['web01'])
    would = only(run(restore, conn, tmp_path, check_mode=True, name=['web01'])[0])
    assert record_of(conn, 'web01')['vm_state'] == 'soft_deleted'
    did = only(run(restore, conn, tmp_path, name=['web01'])[0])
    for key in ('vm_state', 'task_state', 'deleted_at', 'reclaim_at', 'power_state'):
        assert would['record'][key] == did['record'][key], key


def _record_naming(conn, name, host):
    """The domain's soft-deleted record as a copy left by an offline migration carries it: naming ``host``."""
    record = soft_deleted_record(FUTURE)
    _record.stamp(record, record_of(conn, name), host)
    set_text(conn, name, _record.serialize(record))
    return record_of(conn, name)


HV2 = {'uuid': '88dc30c7-1bec-456d-b194-7254d74f571d', 'hostname': 'hv2.fleet.example'}


def test_restore_refuses_a_stale_copy_whose_record_names_another_host(conn, define, tmp_path):
    # Rule 9, ad hoc (no fleet view): the record's host decides. Booting this copy would make two writers of one disk.
    define('web01')
    before = _record_naming(conn, 'web01', HV2)
    [instance] = run(restore, conn, tmp_path, name=['web01'])[0]['instances']
    assert instance['failed']
    assert instance['msg'].startswith('domain web01 is a stale copy: its record names host hv2.fleet.example')
    assert 'restore refuses it' in instance['msg'] and 'force=true' in instance['msg']
    assert record_of(conn, 'web01') == before
    assert conn.lookupByName('web01').state()[0] == hv.libvirt.VIR_DOMAIN_SHUTOFF


def test_restore_refuses_a_copy_the_fleet_slice_calls_stale_and_force_says_what_it_overrode(conn, define, tmp_path):
    from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
    define('web01')
    run(soft_delete, conn, tmp_path, name=['web01'])
    uuid = conn.lookupByName('web01').UUIDString()
    me = hv.host_identity(conn)
    stale = fleet.stale_copy('stale copy: the authoritative copy is hv2/web01 (active, power running, generation 9) '
                             '(it runs)', 'hv2', [{'host': 'hv2', 'power_state': 'running'}], None,
                             host='hv3', name='web01', uuid=uuid)
    entry = dict(fleet.host_entry(me), stale={uuid: stale})
    part = fleet.make_slice('hv3', entry, {}, [me, HV2], fleet='hypervisors',
                            built_at=_record.format_time(_record.utcnow()))
    before = record_of(conn, 'web01')
    [refused] = run(restore, conn, tmp_path, name=['web01'], fleet=part)[0]['instances']
    assert refused['failed'] and 'the authoritative copy is hv2/web01' in refused['msg']
    assert 'Restore the authoritative copy on hv2 instead' in refused['msg']
    assert record_of(conn, 'web01') == before
    would = only(run(restore, conn, tmp_path, check_mode=True, name=['web01'], fleet=part, force=True)[0])
    assert would['overrode'] == stale['reason'] and would['authoritative'] == 'hv2'
    did = only(run(restore, conn, tmp_path, name=['web01'], fleet=part, force=True)[0])
    assert did['action'] == 'restored' and did['overrode'] == stale['reason']
    assert 'overriding rule 9' in did['warnings'][0]


def test_restore_refuses_a_slice_built_for_another_host_before_anything_changes(conn, define, tmp_path):
    from ansible_collections.deferred.libvirt.plugins.module_utils import _errors
    from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
    define('web01')
    run(soft_delete, conn, tmp_path, name=['web01'])
    part = fleet.make_slice('hv2', fleet.host_entry(HV2), {}, [HV2], fleet='hypervisors',
                            built_at=_record.format_time(_record.utcnow()))
    before = record_of(conn, 'web01')
    with pytest.raises(_errors.DeferredError, match='the fleet slice was built for hv2 .* not this host'):
        run(restore, conn, tmp_path, name=['web01'], fleet=part)
    assert record_of(conn, 'web01') == before


def _disk_domain(define, tmp_path, name):
    images = tmp_path / 'images'
    images.mkdir(exist_ok=True)
    path = images / ('%s.img' % name)
    path.write_bytes(b'disk')
    define(name, devices='<disk type="file" device="disk"><source file="%s"/><target dev="vda"/></disk>' % path)
    return str(path)


def _journal(tmp_path):
    return [json.loads(line) for line in (tmp_path / 'state' / 'events.jsonl').read_text().splitlines()]


def test_restore_of_a_reclaimed_domain_says_when_by_which_request_and_what_was_deleted(conn, define, tmp_path,
                                                                                       monkeypatch):
    disk = _disk_domain(define, tmp_path, 'vol01')
    monkeypatch.setenv('DEFERRED_LIBVIRT_ACTOR', 'alice')
    run(soft_delete, conn, tmp_path, name=['vol01'], reclaim_interval='1h')
    record = record_of(conn, 'vol01')
    put(conn, 'vol01', dict(record, deleted_at=_record.format_time(PAST - datetime.timedelta(hours=1)),
                            reclaim_at=_record.format_time(PAST)))
    record = record_of(conn, 'vol01')
    monkeypatch.setenv('DEFERRED_LIBVIRT_ACTOR', 'timer')
    swept, dummy = run(reclaim, conn, tmp_path)
    assert [r['name'] for r in swept['extra']['reclaimed']] == ['vol01']
    journal_before = _journal(tmp_path)
    sweep_request = [e['request_id'] for e in journal_before if e['event_type'] == 'instance.delete.start'][0]
    soft_request = [e['request_id'] for e in journal_before if e['event_type'] == 'instance.soft_delete.start'][0]

    with pytest.raises(DeferredError) as err:
        run(restore, conn, tmp_path, name=['vol01'])
    msg = str(err.value)
    assert 'no domain named' not in msg, msg
    assert msg.startswith('domain vol01 (uuid ') and ' was reclaimed at ' in msg, msg
    assert 'by request %s (actor timer) and cannot be restored' % sweep_request in msg, msg
    assert 'soft-deleted at %s by request %s (actor alice)' % (record['deleted_at'], soft_request) in msg, msg
    assert 'deleted: disk(s) %s' % disk in msg and msg.endswith('; nothing was changed'), msg
    [story] = err.value.result['terminated']
    assert (story['name'], story['how'], story['request_id'], story['actor']) == ('vol01', 'reclaimed', sweep_request,
                                                                                  'timer')
    assert (story['soft_delete_request_id'], story['soft_delete_actor']) == (soft_request, 'alice')
    assert story['disks_deleted'] == [disk] and story['disks_kept'] == [] and story['volumes_pending'] == []
    assert story['terminated_at'] and story['deleted_at'] == record['deleted_at']
    assert _journal(tmp_path) == journal_before  # nothing written


def test_restore_of_a_terminated_domain_and_an_unknown_name_says_both_and_changes_nothing(conn, define, tmp_path):
    define('web01')
    define('web02', running=True)
    run(soft_delete, conn, tmp_path, name=['web02'])
    run(terminate, conn, tmp_path, name=['web01'])
    before = record_of(conn, 'web02')
    with pytest.raises(DeferredError) as err:
        run(restore, conn, tmp_path, name=['web02', 'web01', 'nosuch'])
    msg = str(err.value)
    assert 'domain web01 (uuid ' in msg and ' was terminated at ' in msg, msg
    assert "no domain named nosuch on this hypervisor" in msg and 'web01,' not in msg, msg
    assert msg.endswith('nothing was changed'), msg
    assert [s['how'] for s in err.value.result['terminated']] == ['terminated']
    assert record_of(conn, 'web02') == before  # web02, which could be restored, was not: the batch is refused


def test_restore_of_an_unknown_name_still_says_no_domain_named(conn, define, tmp_path):
    with pytest.raises(DeferredError, match='no domain named nosuch on this hypervisor'):
        run(restore, conn, tmp_path, name=['nosuch'])


def _disk(path, *flags):
    return ("<disk type='file' device='disk'><driver name='qemu' type='raw'/><source file='%s'/>"
            "<target dev='vda' bus='virtio'/>%s</disk>" % (path, ''.join('<%s/>' % f for f in flags)))


def test_restore_refuses_a_disk_a_running_domain_writes_to_naming_that_domain(conn, define, tmp_path):
    # QEMU would refuse the boot on its image lock ("Failed to get "write" lock"), naming only the file: the restore
    # says which running domain holds it, and the domain stays soft-deleted with its dates.
    shared = tmp_path / 'shared.img'
    shared.write_bytes(b'\0' * 512)
    define('web01', running=True, devices=_disk(shared))
    define('web02', running=True, devices=_disk(shared))
    run(soft_delete, conn, tmp_path, name=['web02'])
    before = record_of(conn, 'web02')
    [instance] = run(restore, conn, tmp_path, name=['web02'])[0]['instances']
    assert instance['failed']
    web01 = conn.lookupByName('web01').UUIDString()
    assert ('domain web02: disk vda (%s) is in use: running domain web01 (uuid %s) writes to it' % (shared, web01)
            in instance['msg']), instance['msg']
    after = record_of(conn, 'web02')
    assert (after['vm_state'], after['task_state'], after['deleted_at'], after['reclaim_at']) == (
        'soft_deleted', None, before['deleted_at'], before['reclaim_at'])
    assert (after['history'][-1]['action'], after['history'][-1]['result']) == ('restore', 'error')
    assert conn.lookupByName('web02').state()[0] == hv.libvirt.VIR_DOMAIN_SHUTOFF


@pytest.mark.parametrize('mine, theirs, running', [
    ((), (), False),                        # the other domain is shut off: nothing holds the file
    (('shareable',), ('shareable',), True),  # both share it: QEMU takes no exclusive lock
    (('readonly',), (), True),              # this domain only reads it
])
def test_restore_boots_when_no_running_domain_writes_to_its_disks_alone(conn, define, tmp_path, mine, theirs, running):
    shared = tmp_path / 'shared.img'
    shared.write_bytes(b'\0' * 512)
    define('web01', running=running, devices=_disk(shared, *theirs))
    define('web02', running=True, devices=_disk(shared, *mine))
    run(soft_delete, conn, tmp_path, name=['web02'])
    assert only(run(restore, conn, tmp_path, name=['web02'])[0])['action'] == 'restored'
    assert conn.lookupByName('web02').state()[0] == hv.libvirt.VIR_DOMAIN_RUNNING
