# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 17: the state_dir does not grow for ever. Real guests, real libvirtd, through ansible-playbook.

- finished tombstones older than tombstone_retention are removed by the sweep (journaled), pending ones are kept;
- lock files of domains that are gone are removed while another run holds a live domain's lock;
- events.jsonl is rotated while two modules append, and every line is intact and none lost.
"""

import fcntl
import glob
import json
import os
import sys
import time
import uuid as uuidlib

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'reliability'))

import support  # noqa: E402
import cinder_helpers as ch  # noqa: E402

# A tombstone is finished only once Cinder has been asked about the server's attachments: these terminates ask it.
CLOUD_ENV = {'OS_CLIENT_CONFIG_FILE': ch.CLOUDS_YAML}

SD, TM, RC, INFO, ATTR = ('deferred.libvirt.vm_soft_delete', 'deferred.libvirt.vm_terminate',
                          'deferred.libvirt.vm_reclaim', 'deferred.libvirt.vm_info', 'deferred.libvirt.vm_attributes')
HOST_LOCKS = '/run/lock/deferred-libvirt'


@pytest.fixture(autouse=True)
def no_paused_module_left():
    yield
    support.kill_paused()


def _journal_lines(state_dir):
    """Every line of events.jsonl and of its rotated files, parsed (a split line fails here)."""
    lines = []
    for path in sorted(glob.glob(os.path.join(state_dir, 'events-*.jsonl'))) + [os.path.join(state_dir, 'events.jsonl')]:
        if not os.path.exists(path):
            continue
        with open(path, 'rb') as handle:
            data = handle.read()
        assert not data or data.endswith(b'\n'), '%s ends in the middle of a line' % path
        lines += [json.loads(line) for line in data.split(b'\n')[:-1]]
    return lines


def test_finished_tombstones_older_than_the_retention_are_removed_and_pending_ones_kept(
        ansible, make_guest, hypervisor, state_dir, project):
    done, done_uuid = make_guest('done', kind='bios', start=False)
    busy, busy_uuid = make_guest('busy', kind='bios', start=False)
    # Its sweeps are of its own project: one of the whole hypervisor would reclaim the expired guests of the tests
    # beside it (the tombstones keep the project the record had).
    assert not ansible.task(ATTR, name=done, project=project).get('failed')
    vol = str(uuidlib.uuid4())
    assert not ansible.task(ATTR, name=busy, project=project,
                            volumes=[{'id': vol, 'delete_on_termination': True}]).get('failed')
    # With Cinder, done's tombstone is finished (Cinder asked, nothing attached); without, busy's volume stays pending.
    gone = ansible.task(TM, name=[done], cloud='testbed', env=CLOUD_ENV)
    assert not gone.get('failed'), gone
    gone = ansible.task(TM, name=[busy])
    assert not gone.get('failed'), gone

    kept = ansible.task(RC, project=project, tombstone_retention='1d')
    assert not kept.get('failed'), kept
    assert kept['retention']['tombstones_removed'] == []
    info = ansible.task(INFO, include_deleted=True)
    ours = [i for i in info['instances'] if i['name'] in (done, busy)]  # other tests' domains share the host
    assert sorted(i['name'] for i in ours if i['vm_state'] == 'deleted') == sorted([done, busy])

    time.sleep(2.5)
    sweep = ansible.task(RC, project=project, tombstone_retention=1)
    assert not sweep.get('failed'), sweep
    assert [(t['name'], t['uuid']) for t in sweep['retention']['tombstones_removed']] == [(done, done_uuid)]
    info = ansible.task(INFO, include_deleted=True)
    assert [i['name'] for i in info['instances'] if i['vm_state'] == 'deleted' and i['name'] in (done, busy)] == [busy]
    assert ansible.tombstone(done_uuid) is None
    assert [v['id'] for v in ansible.tombstone(busy_uuid)['volumes_pending']] == [vol]
    purges = [e for e in ansible.events() if e['event_type'] == 'instance.purge']
    assert [(e['domain'], e['uuid'], e['request_id'], e['result']) for e in purges] == [
        (done, done_uuid, sweep['request_id'], 'success')]
    # A pending tombstone is never removed, whatever its age and the retention.
    again = ansible.task(RC, project=project, tombstone_retention=0)
    assert again['retention']['tombstones_removed'] == [] and ansible.tombstone(busy_uuid) is not None


def test_check_mode_shows_which_tombstones_would_go_and_removes_none(ansible, make_guest, state_dir, project):
    name, uuid = make_guest('a', kind='bios', start=False)
    # Of its own project: not the other tests' tombstones in check mode either.
    assert not ansible.task(ATTR, name=name, project=project).get('failed')
    assert not ansible.task(TM, name=name, cloud='testbed', env=CLOUD_ENV).get('failed')
    time.sleep(1.5)
    dry = ansible.playbook([{'name': 'dry', RC: {'project': project, 'tombstone_retention': 1}}], check=True).task(0)
    assert [t['uuid'] for t in dry['retention']['tombstones_removed']] == [uuid]
    assert ansible.tombstone(uuid) is not None


# Alone (exclusive): the host's lock directory is every test's, and another test's sweep prunes it too.
@pytest.mark.exclusive
def test_lock_files_of_gone_domains_are_removed_while_another_run_holds_a_live_domains_lock(
        ansible, make_guest, hypervisor, state_dir, tmp_path):
    live, live_uuid = make_guest('live', kind='bios')
    gone, gone_uuid = make_guest('gone', kind='bios', start=False)
    assert not ansible.task(TM, name=gone, cloud='testbed', env=CLOUD_ENV).get('failed')
    ancient = str(uuidlib.uuid4())  # a domain terminated long ago by an earlier version: only its lock file is left
    with open(os.path.join(state_dir, 'locks', '%s.lock' % ancient), 'w') as handle:
        handle.write('1\n')
    gone_files = [os.path.join(d, '%s.lock' % gone_uuid) for d in (HOST_LOCKS, os.path.join(state_dir, 'locks'))]
    assert all(os.path.exists(p) for p in gone_files)

    run, pid = support.run_paused(ansible, [{'name': 'sd', SD: {'name': live, 'shutdown_timeout': 0}}],
                                  'soft_delete.after_start', str(tmp_path))
    try:
        began = time.monotonic()
        sweep = ansible.task(RC, lock_timeout=60)
        took = time.monotonic() - began
        assert not sweep.get('failed'), sweep
        removed = set(sweep['retention']['locks_removed'])
        assert set(gone_files) | {os.path.join(state_dir, 'locks', '%s.lock' % ancient)} <= removed, removed
        assert not any(os.path.exists(p) for p in gone_files)
        live_files = [os.path.join(d, '%s.lock' % live_uuid) for d in (HOST_LOCKS, os.path.join(state_dir, 'locks'))]
        assert not removed & set(live_files)
        for path in live_files:  # still there, and still held by the paused run
            fd = os.open(path, os.O_RDONLY)
            try:
                with pytest.raises(BlockingIOError):
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            finally:
                os.close(fd)
        assert took < 30, 'the sweep waited for the held lock (%.1f s)' % took
    finally:
        support.resume(pid)
    done = run.wait()
    assert not done.task(0).get('failed'), done.task(0)
    assert support.read_record(hypervisor, live_uuid)['record']['vm_state'] == 'soft_deleted'


def test_the_journal_rotated_while_two_modules_append_keeps_every_line_whole(ansible, make_guest, state_dir, project):
    names = [make_guest('g%d' % n, kind='bios', start=False)[0] for n in range(6)]
    rounds = 6
    writers = [support.Background(ansible, [{'name': 'attrs', ATTR: {'name': group, 'lock_reason': 'round {{ item }}'},
                                             'loop': list(range(rounds))}])
               for group in (names[:3], names[3:])]
    sweeps = []
    # A project of nothing: the journal is the host's whatever the project, and no other test's guest is reclaimed.
    while any(w.proc.poll() is None for w in writers) or not sweeps:
        sweep = ansible.task(RC, project=project, journal_rotate_size=0)
        assert not sweep.get('failed'), sweep
        sweeps.append(sweep['retention']['journal_rotated'])
    for writer in writers:
        result = writer.wait()
        assert not result.task(0).get('failed'), [item.get('msg') for item in result.task(0).get('results', [])]
    rotated = [s for s in sweeps if s]
    assert len(rotated) >= 2, sweeps
    assert sorted(glob.glob(os.path.join(state_dir, 'events-*.jsonl'))) == sorted(rotated)
    lines = _journal_lines(state_dir)
    for name in names:
        updates = [e for e in lines if e['event_type'] == 'instance.update' and e['domain'] == name]
        assert len(updates) == rounds, (name, len(updates))
    # The sweeps' own lines are there too: nothing was lost at a rotation.
    assert len([e for e in lines if e['event_type'] == 'instance.update']) == 6 * rounds
