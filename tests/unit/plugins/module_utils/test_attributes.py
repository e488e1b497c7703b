# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_attributes' operation (_ops/_attributes.py) on test:///default: guards, the journal's actor, check mode.

Run through a plain Context (ops_support.py): clearing locked or protected needs force, setting them does not,
the journal names the OS user beside the claimed actor, and check mode reports the record the real run writes.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _attributes as attributes

from ops_support import only, put, record_of, run, set_text


@pytest.mark.parametrize('guard', ['locked', 'protected'])
def test_attributes_clears_a_guard_only_with_force(conn, define, tmp_path, guard):
    define('web01')
    put(conn, 'web01', dict(_record.empty(), project='web', **{guard: True}))
    before = conn.lookupByName('web01').XMLDesc(0)
    with pytest.raises(DeferredError) as refusal:
        run(attributes, conn, tmp_path, name=['web01'], **{guard: False})
    assert str(refusal.value).endswith('nothing was changed')
    [refused] = refusal.value.result['instances']
    assert refused['failed'] and 'domain web01 is %s' % guard in refused['msg'] and 'needs force=true' in refused['msg']
    assert conn.lookupByName('web01').XMLDesc(0) == before
    done = only(run(attributes, conn, tmp_path, name=['web01'], force=True, **{guard: False})[0])
    assert done['changed'] and record_of(conn, 'web01')[guard] is False


@pytest.mark.parametrize('guard', ['locked', 'protected'])
def test_attributes_sets_a_guard_without_force(conn, define, tmp_path, guard):
    define('web01')
    only(run(attributes, conn, tmp_path, name=['web01'], **{guard: True})[0])
    assert record_of(conn, 'web01')[guard] is True


def test_the_journal_records_the_os_user_beside_the_claimed_actor(conn, define, tmp_path, monkeypatch):
    import pwd
    monkeypatch.setenv('DEFERRED_LIBVIRT_ACTOR', 'awx:mallory')
    define('web01')
    dummy, ctx = run(attributes, conn, tmp_path, name=['web01'], project='web')
    [event] = [e for e in ctx.state.read_events() if e['event_type'] == 'instance.update']
    assert (event['actor'], event['os_user']) == ('awx:mallory', pwd.getpwuid(os.getuid()).pw_name)


def test_attributes_check_mode_reports_the_change_and_writes_nothing(conn, define, tmp_path):
    define('web01')
    would = only(run(attributes, conn, tmp_path, check_mode=True, name=['web01'], project='web')[0])
    assert would['changed'] and would['record']['project'] == 'web'
    assert record_of(conn, 'web01') is None
    did = only(run(attributes, conn, tmp_path, name=['web01'], project='web')[0])
    stamped = ('host', 'generation')  # what the write itself adds: who wrote it, and the count of writes
    assert dict((k, v) for k, v in did['record'].items() if k not in stamped) == \
        dict((k, v) for k, v in would['record'].items() if k not in stamped)
    assert did['record']['generation'] == 1


def test_a_fleet_declared_without_cinder_refuses_to_record_volumes_and_changes_nothing(conn, define, tmp_path):
    from ansible_collections.deferred.libvirt.plugins.module_utils._errors import InputError
    define('web01')
    volumes = [{'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'target': 'vdb', 'delete_on_termination': True}]
    with pytest.raises(InputError, match=r'^volumes: cinder is false \(this fleet declares no Cinder\)'):
        run(attributes, conn, tmp_path, name=['web01'], volumes=volumes, cinder=False)
    assert not (record_of(conn, 'web01') or {}).get('volumes')
    # Clearing them is what such a fleet may do.
    assert only(run(attributes, conn, tmp_path, name=['web01'], volumes=[], cinder=False)[0])['failed'] is False


def test_an_attribute_change_on_a_copy_whose_record_names_another_host_keeps_that_host(conn, define, tmp_path):
    # Rule 9, the class of the trial's seed 1 step 73: every record write names the host that writes it, so locking or
    # relabelling a stale copy made its record name this host and the copy the authoritative one (whose terminate
    # deletes the other copy's disks and volumes). The change is made and the record still names the other host;
    # force=true claims the copy for this host.
    define('web01')
    record = dict(_record.empty(), project='web', generation=3, host={'uuid': None, 'hostname': 'hv9'})
    set_text(conn, 'web01', _record.serialize(record))
    locked = only(run(attributes, conn, tmp_path, name=['web01'], locked=True, lock_reason='INC-9')[0])
    after = record_of(conn, 'web01')
    assert locked['changed'] and after['locked'] and after['host']['hostname'] == 'hv9' and after['generation'] == 4
    only(run(attributes, conn, tmp_path, name=['web01'], user='bob', force=True)[0])
    claimed = record_of(conn, 'web01')
    assert claimed['user'] == 'bob' and claimed['host']['hostname'] != 'hv9' and claimed['generation'] == 5
