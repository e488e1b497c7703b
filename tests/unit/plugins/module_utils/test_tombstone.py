# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tombstone (_tombstone.py): its schema, when it is finished, whose it is, what a terminate writes first.

validate_tombstone accepts every tombstone the collection writes and refuses
a malformed one naming the field (a hand-edited or foreign file is reported,
never acted on); finished() needs Cinder asked; foreign() leaves another
host's tombstones alone; naming a finished tombstone again is a no-op.
Tombstones are made by a real terminate on test:///default where it matters.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import json
import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError, StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._state import StateDir

from ops_support import context, only, run

UUID = '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00'
VOLUME = '5b7c1d2e-3f4a-4b5c-8d6e-7f8091a2b3c4'


def written(tmp_path):
    """Every tombstone file the state_dir holds, as {path: data}."""
    found = {}
    for path in glob.glob(str(tmp_path / 'state' / 'tombstones' / '*' / '*.json')):
        with open(path) as handle:
            found[path] = json.load(handle)
    return found


def well_formed():
    """A tombstone as a finished terminate leaves it (every field the schema checks, with a value it accepts)."""
    return {
        'name': 'web01', 'uuid': UUID, 'project': 'web', 'user': 'alice', 'request_id': 'req-1',
        'host_uri': 'qemu:///system', 'status': 'terminated', 'vcpus': 2, 'memory_mb': 2048,
        'undefine_flags': ['VIR_DOMAIN_UNDEFINE_NVRAM'], 'revision': 3, 'cinder_checked': True,
        'deleted_at': '2024-01-01T00:00:00Z', 'reclaim_at': '2024-01-02T00:00:00Z', 'started_at': '2024-01-02T00:00:01Z',
        'terminated_at': '2024-01-02T00:00:02Z', 'finished_at': '2024-01-02T00:00:03Z',
        'volumes': [{'id': VOLUME, 'delete_on_termination': True}], 'volumes_pending': [],
        'volumes_done': [{'id': VOLUME, 'deleted': True}], 'disks_deleted': ['/var/lib/libvirt/images/web01.qcow2'],
        'disks_kept': [{'path': '/srv/shared.iso', 'reason': 'outside the instance directories'}], 'disks': [],
        'history': [{'action': 'soft_delete', 'at': '2024-01-01T00:00:00Z'}],
    }


# -- the schema ---------------------------------------------------------------------------------------------------------

def test_the_tombstones_a_terminate_writes_pass_the_schema(conn, define, tmp_path):
    define('web01')
    instance = only(run(terminate, conn, tmp_path, name=['web01'])[0])
    state = StateDir(str(tmp_path / 'state'))
    tomb = state.read_tombstone(instance['uuid'])
    with state.lock(tomb['uuid'], timeout=5, name='web01'):
        state.write_tombstone(dict(tomb, cinder_checked=True))  # as a later run with Cinder finishes it
    files = written(tmp_path)
    assert [os.path.basename(p) for p in files] == ['%s.json' % instance['uuid']]
    for path, data in files.items():
        assert tombstones.validate_tombstone(data, instance['uuid'], path) is data
        assert tombstones.finished(data)


def test_a_well_formed_tombstone_is_returned_as_it_is():
    tomb = well_formed()
    assert tombstones.validate_tombstone(tomb, UUID, '/state/%s.json' % UUID) is tomb


MALFORMED = [
    ('name', ''), ('name', 42), ('project', ['web']), ('user', 7), ('request_id', {'id': 1}), ('host_uri', 1),
    ('status', 'gone'), ('vcpus', -1), ('vcpus', True), ('vcpus', '2'), ('memory_mb', 2 ** 60),
    ('undefine_flags', [1, 2]), ('revision', 1.5), ('cinder_checked', 'yes'), ('deleted_at', 'yesterday'),
    ('reclaim_at', '0001-01-01T00:00:00+05:00'), ('started_at', 12), ('terminated_at', 'x' * 65),
    ('finished_at', '2024-13-01T00:00:00Z'), ('volumes', [{'id': '../../etc'}]), ('volumes_pending', [{'size': 1}]),
    ('volumes_done', 'v'), ('disks_deleted', [{'path': '/x'}]), ('disks_kept', [1]), ('disks', {}),
    ('history', ['soft_delete']),
]


@pytest.mark.parametrize('field,value', MALFORMED, ids=['%s=%s' % (f, json.dumps(v)[:20]) for f, v in MALFORMED])
def test_a_malformed_field_is_refused_naming_the_field_and_the_file(field, value):
    tomb = dict(well_formed(), **{field: value})
    path = '/state/tombstones/pending/%s.json' % UUID
    with pytest.raises(tombstones.TombstoneError) as err:
        tombstones.validate_tombstone(tomb, UUID, path)
    assert str(err.value).startswith('tombstone %s: field %s is ' % (path, field)), str(err.value)


def test_a_tombstone_that_is_not_an_object_is_refused():
    with pytest.raises(tombstones.TombstoneError) as err:
        tombstones.validate_tombstone([well_formed()], UUID, '/state/x.json')
    assert str(err.value) == 'tombstone /state/x.json is not a JSON object'


@pytest.mark.parametrize('uuid', [None, 'web01', UUID.upper(), UUID + ' '])
def test_a_uuid_that_is_not_a_lowercase_uuid_is_refused(uuid):
    with pytest.raises(tombstones.TombstoneError) as err:
        tombstones.validate_tombstone(dict(well_formed(), uuid=uuid), UUID, '/state/x.json')
    assert 'uuid %s is not a UUID' % json.dumps(uuid) in str(err.value)


def test_a_tombstone_whose_uuid_is_not_its_file_name_is_refused():
    other = '11111111-2222-4333-8444-555555555555'
    with pytest.raises(tombstones.TombstoneError) as err:
        tombstones.validate_tombstone(well_formed(), other, '/state/%s.json' % other)
    assert 'uuid %s does not match its file name; refusing to act on it' % UUID in str(err.value)


def test_a_refused_tombstone_is_a_state_dir_error_worded_for_the_operator():
    assert issubclass(tombstones.TombstoneError, StateDirError) and issubclass(tombstones.TombstoneError, DeferredError)


# -- finished -----------------------------------------------------------------------------------------------------------

def test_a_tombstone_that_never_says_it_asked_cinder_is_not_finished():
    # vm_reclaim used to read a missing cinder_checked as checked, vm_terminate as unchecked: unchecked wins.
    assert not tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': []})
    assert tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': [], 'cinder_checked': True})
    assert not tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': [{'id': 'v'}],
                                    'cinder_checked': True})


@pytest.mark.parametrize('status', ['deleting', 'undefined', None])
def test_a_tombstone_not_yet_terminated_is_not_finished_even_with_cinder_asked(status):
    assert not tombstones.finished(dict(well_formed(), status=status))


def test_cinder_checked_must_be_true_itself_not_just_truthy():
    assert not tombstones.finished(dict(well_formed(), cinder_checked='true'))
    assert not tombstones.finished(dict(well_formed(), cinder_checked=1))


# -- foreign ------------------------------------------------------------------------------------------------------------

HERE = {'uuid': 'AAAAAAAA-0000-4000-8000-000000000001', 'hostname': 'kvm1'}


def test_a_tombstone_without_a_host_is_this_hosts():
    assert not tombstones.foreign(well_formed(), HERE)
    assert not tombstones.foreign(dict(well_formed(), host=None), HERE)
    assert not tombstones.foreign(dict(well_formed(), host={'uuid': 'x'}), None)


def test_a_tombstone_naming_this_hosts_uuid_whatever_the_case_is_this_hosts():
    assert not tombstones.foreign(dict(well_formed(), host={'uuid': HERE['uuid'].lower(), 'hostname': 'other'}), HERE)


def test_a_tombstone_written_before_libvirtd_made_up_a_new_host_uuid_is_still_this_hosts():
    """Rule 5: where the machine has no SMBIOS UUID, libvirtd makes up a new host UUID at every start; the tombstones
    the host wrote before are still its own to finish (a sweep that left them as another host's leaked their
    volumes, seed 1 of the randomized trial), tied to it by its full hostname as its records are."""
    before_restart = {'uuid': 'bbbbbbbb-0000-4000-8000-000000000002', 'hostname': 'KVM1'}
    assert not tombstones.foreign(dict(well_formed(), host=before_restart), HERE)


def test_a_tombstone_naming_another_host_uuid_and_hostname_is_foreign():
    assert tombstones.foreign(dict(well_formed(), host={'uuid': 'bbbbbbbb-0000-4000-8000-000000000002',
                                                        'hostname': 'kvm2'}), HERE)
    # Full hostnames only: kvm1.dc2 is not kvm1.dc1.
    assert tombstones.foreign(dict(well_formed(), host={'uuid': 'bbbbbbbb-0000-4000-8000-000000000002',
                                                        'hostname': 'kvm1.dc2'}), dict(HERE, hostname='kvm1.dc1'))


def test_without_host_uuids_the_hostname_decides():
    assert not tombstones.foreign(dict(well_formed(), host={'hostname': 'kvm1'}), HERE)
    assert tombstones.foreign(dict(well_formed(), host={'hostname': 'kvm2'}), {'hostname': 'kvm1'})


# -- initial: what a terminate writes first ---------------------------------------------------------------------------

def test_the_first_tombstone_describes_the_domain_and_all_its_volumes_as_pending(conn, define, tmp_path):
    define('web01', vcpus=2, memory_mib=512)
    record = dict(_record.empty(), project='web', user='alice',
                  volumes=[{'id': VOLUME, 'target': 'vdb', 'delete_on_termination': True}])
    domain = hv.refresh(conn, conn.lookupByName('web01'))
    ctx = context(conn, tmp_path)
    tomb = tombstones.initial(ctx, domain, record)
    assert (tomb['name'], tomb['uuid'], tomb['project'], tomb['user']) == ('web01', domain.uuid, 'web', 'alice')
    assert (tomb['vcpus'], tomb['memory_mb']) == (2, 512)
    assert (tomb['status'], tomb['terminated_at'], tomb['cinder_checked']) == ('deleting', None, False)
    assert [v['id'] for v in tomb['volumes_pending']] == [VOLUME] and tomb['volumes_done'] == []
    assert (tomb['request_id'], tomb['host_uri'], tomb['host']) == (ctx.request_id, 'test:///default', ctx.host)
    assert not tombstones.finished(tomb)
    assert tombstones.validate_tombstone(tomb, domain.uuid, 'initial') is tomb
    tomb['volumes_pending'][0]['error'] = 'Cinder is down'
    assert 'error' not in record['volumes'][0] and 'error' not in tomb['volumes'][0]  # copies, not the record's own


# -- naming a terminated domain again -----------------------------------------------------------------------------------

def test_naming_a_finished_tombstone_is_a_noop_that_says_when_it_was_terminated(conn, tmp_path):
    ctx = context(conn, tmp_path)
    answer = tombstones.answer_when_named(ctx, well_formed(), cinder.Options())
    assert answer == {'name': 'web01', 'uuid': UUID, 'changed': False, 'action': 'none',
                      'msg': 'already terminated at 2024-01-02T00:00:02Z'}
    assert ctx.state.read_events() == []


def test_naming_a_tombstone_cinder_was_never_asked_about_without_cinder_is_a_noop_that_says_so(conn, tmp_path):
    ctx = context(conn, tmp_path)
    answer = tombstones.answer_when_named(ctx, dict(well_formed(), cinder_checked=False), cinder.Options())
    assert (answer['changed'], answer['action'], answer['cinder_checked']) == (False, 'none', False)
    assert answer['msg'].startswith('already terminated at 2024-01-02T00:00:02Z; Cinder has not been asked')


# -- the story a restore of a terminated domain tells ----------------------------------------------------------------

def _reclaimed_tombstone(**more):
    tomb = {
        'name': 'vol01', 'uuid': '3f1c2a10-1b2d-4e5f-8a9b-0c1d2e3f4a5b', 'project': 'web', 'status': 'terminated',
        'request_id': 'req-sweep', 'terminated_at': '2026-01-02T03:00:00Z', 'started_at': '2026-01-02T02:59:59Z',
        'deleted_at': '2025-12-26T03:00:00Z', 'reclaim_at': '2026-01-02T03:00:00Z', 'cinder_checked': True,
        'disks_deleted': ['/var/lib/libvirt/images/vol01.qcow2'],
        'disks_kept': [{'path': '/srv/shared/base.qcow2', 'reason': 'shared with domain(s) db01'}],
        'volumes_done': [{'id': 'vol-a', 'detached': True, 'deleted': True},
                         {'id': 'vol-b', 'detached': True, 'deleted': False},
                         {'id': 'vol-c', 'kept': True, 'detached': False, 'deleted': False}],
        'volumes_pending': [{'id': 'vol-d', 'error': 'Cinder answered 503'}],
        'history': [{'action': 'soft_delete', 'request_id': 'req-soft', 'result': 'success'},
                    {'action': 'reclaim', 'request_id': 'req-sweep', 'result': 'success'}],
    }
    tomb.update(more)
    return tomb


def test_the_story_of_a_reclaimed_domain_says_when_by_whom_and_what_was_deleted_kept_and_pending():
    told = tombstones.story(_reclaimed_tombstone(), {'req-sweep': 'timer', 'req-soft': 'alice'})
    assert told['msg'] == (
        'domain vol01 (uuid 3f1c2a10-1b2d-4e5f-8a9b-0c1d2e3f4a5b, project web) was reclaimed at 2026-01-02T03:00:00Z by '
        'request req-sweep (actor timer) and cannot be restored; it had been soft-deleted at 2025-12-26T03:00:00Z by '
        'request req-soft (actor alice), to be reclaimed at 2026-01-02T03:00:00Z; deleted: disk(s) '
        '/var/lib/libvirt/images/vol01.qcow2; volume(s) vol-a; kept: disk(s) /srv/shared/base.qcow2 (shared with '
        'domain(s) db01); volume(s) vol-b, detached and kept in Cinder; volume(s) vol-c, left attached where another '
        'host holds them; still pending (the next vm_reclaim sweep finishes it): volume(s) vol-d')
    assert (told['how'], told['action']) == ('reclaimed', 'reclaim')
    assert (told['actor'], told['soft_delete_actor']) == ('timer', 'alice')
    assert (told['volumes_deleted'], told['volumes_detached'], told['volumes_kept'], told['volumes_pending']) == (
        ['vol-a'], ['vol-b'], ['vol-c'], ['vol-d'])


def test_the_story_takes_the_actor_the_tombstone_recorded_over_the_journal():
    told = tombstones.story(_reclaimed_tombstone(actor='awx:bob'), {'req-sweep': 'root'})
    assert told['actor'] == 'awx:bob' and 'by request req-sweep (actor awx:bob)' in told['msg']


def test_the_story_of_a_terminate_never_soft_deleted_without_a_journal_says_what_it_does_not_know():
    tomb = _reclaimed_tombstone(deleted_at=None, reclaim_at=None, history=[
        {'action': 'terminate', 'request_id': 'req-sweep', 'result': 'success'}], volumes_done=[], volumes_pending=[],
        disks_kept=[], cinder_checked=False)
    told = tombstones.story(tomb)
    assert told['how'] == 'terminated' and 'soft-deleted' not in told['msg']
    assert 'by request req-sweep (actor not recorded)' in told['msg']
    assert 'kept: no disk or volume; Cinder has not been asked about its volumes yet' in told['msg']


def test_the_story_of_an_interrupted_terminate_says_it_is_being_terminated():
    told = tombstones.story(_reclaimed_tombstone(status='deleting', terminated_at=None))
    assert 'is being terminated: it began at 2026-01-02T02:59:59Z by request req-sweep' in told['msg']


def test_a_terminate_records_its_actor_in_the_tombstone(conn, define, tmp_path, monkeypatch):
    define('web01')
    monkeypatch.setenv('DEFERRED_LIBVIRT_ACTOR', 'awx:carol')
    [instance] = run(terminate, conn, tmp_path, name=['web01'])[0]['instances']
    state = StateDir(str(tmp_path / 'state'))
    assert state.read_tombstone(instance['uuid'])['actor'] == 'awx:carol'
