# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Issue 12, items 10-13: the state_dir and the journal trust nothing on disk.

Each test plays the attack or the mistake against the real libvirtd (and the
real Cinder where a volume is at stake) through ansible-playbook, and asserts
what the operator sees and what is left on disk. Each one fails on the code
before the fix: the mode of a directory was not checked, a tombstone's uuid was
used as it was read, temporary files were opened by a fixed name, short writes
went unnoticed, and the per-domain lock lived in the caller's state_dir.
"""

import errno
import fcntl
import json
import os
import subprocess
import sys
import uuid as uuidlib

import libvirt
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'reliability'))

import support  # noqa: E402

from conftest import PYTHON, URI, Runner  # noqa: E402

SD, TM, RC, INFO, ATTR = ('deferred.libvirt.vm_soft_delete', 'deferred.libvirt.vm_terminate',
                          'deferred.libvirt.vm_reclaim', 'deferred.libvirt.vm_info', 'deferred.libvirt.vm_attributes')
HOST_LOCKS = '/run/lock/deferred-libvirt'


@pytest.fixture(autouse=True)
def no_paused_module_left():
    yield
    support.kill_paused()


def _definition(hypervisor, uuid):
    dom = hypervisor.lookupByUUIDString(uuid)
    return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), dom.state()[0]


def _all_files(top):
    found = []
    for root, dummy, files in os.walk(top):
        found += [os.path.join(root, f) for f in files]
    return sorted(found)


@pytest.fixture
def tiny_fs(tmp_path):
    """A 64 KiB tmpfs for the state_dir; the test bed runs as root, so a mount is the way to a full disk."""
    path = str(tmp_path / 'fs')
    os.mkdir(path)
    mounted = subprocess.run(['mount', '-t', 'tmpfs', '-o', 'size=64k,mode=0700', 'tmpfs', path],
                             capture_output=True, text=True, check=False)
    assert mounted.returncode == 0, 'the test bed must allow a tmpfs mount: %s' % mounted.stderr
    yield path
    subprocess.run(['umount', '-l', path], capture_output=True, check=False)


def _fill(path, leave_pages=0):
    """Fill the file system under ``path``, then give back ``leave_pages`` pages of 4 KiB."""
    filler = os.path.join(path, 'filler')
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (65536, 4096, 512, 64, 1):
            try:
                while True:
                    os.write(fd, b'\0' * size)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC, exc
        if leave_pages:
            os.ftruncate(fd, max(0, (os.fstat(fd).st_size // 4096 - leave_pages) * 4096))
    finally:
        os.close(fd)
    return filler


# -- 10: directories others can write to ------------------------------------------------------------------------------

UNSAFE_MODES = [('state_dir', '', 0o777), ('locks', 'locks', 0o770), ('tombstones', 'tombstones', 0o757),
                ('pending', 'tombstones/pending', 0o773)]


@pytest.mark.parametrize('what,sub,bits', UNSAFE_MODES, ids=[u[0] for u in UNSAFE_MODES])
def test_a_state_dir_others_can_write_to_is_refused_naming_path_and_mode(ansible, make_guest, hypervisor, state_dir,
                                                                         what, sub, bits):
    name, uuid = make_guest('a', kind='bios')
    for part in ('', 'locks', 'tombstones', 'tombstones/pending'):
        os.makedirs(os.path.join(state_dir, part), 0o700, exist_ok=True)
    path = os.path.join(state_dir, sub).rstrip('/')
    os.chmod(path, bits)
    before = _definition(hypervisor, uuid)
    result = ansible.task(SD, name=name, shutdown_timeout=0)
    assert result.get('failed'), result
    assert '%s is ' % path in result['msg'] and 'writable (mode %04o)' % bits in result['msg'], result['msg']
    assert 'nothing was changed' in result['msg']
    assert _definition(hypervisor, uuid) == before, 'the domain changed'
    assert not os.path.exists(os.path.join(state_dir, 'events.jsonl'))


def _namespaced_playbook(runner, tasks, setup):
    """ansible-playbook in a mount namespace of its own with a fresh tmpfs on /run/lock, after ``setup`` (sh) there:
    the host's real lock directory, which other runs use, is never touched."""
    play = {'hosts': 'localhost', 'gather_facts': False, 'connection': 'local', 'tasks': tasks,
            'module_defaults': {'group/deferred.libvirt.all': {'uri': URI, 'state_dir': runner.state_dir}}}
    path = os.path.join(runner.state_dir + '-plays', 'play-%s.json' % uuidlib.uuid4().hex[:8])
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, 'w') as handle:
        json.dump([play], handle)
    script = 'mount -t tmpfs -o mode=1777,size=1m deferred-lock /run/lock || exit 99; %s; exec "$@"' % setup
    cmd = ['unshare', '--mount', '--propagation', 'private', 'sh', '-c', script, 'sh',
           os.path.join(os.path.dirname(PYTHON), 'ansible-playbook'), path, '-i', 'localhost,']
    proc = subprocess.run(cmd, env=runner.env(), capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode != 99, 'the test bed must allow a private mount namespace: %s' % proc.stderr
    data = json.loads(proc.stdout)
    return [t['hosts']['localhost'] for p in data['plays'] for t in p['tasks']]


@pytest.mark.parametrize('setup,words', [
    ('mkdir -m 0777 /run/lock/deferred-libvirt', 'is group- and world-writable (mode 0777)'),
    ('mkdir -m 0700 /run/lock/deferred-libvirt && chown nobody /run/lock/deferred-libvirt', 'is owned by uid'),
    ('mkdir -m 0700 /tmp/elsewhere-$$ && ln -s /tmp/elsewhere-$$ /run/lock/deferred-libvirt', 'is a symbolic link'),
], ids=['world_writable', 'foreign', 'symlink'])
def test_an_unsafe_host_lock_directory_is_refused_before_the_domain_changes(
        ansible, make_guest, hypervisor, setup, words):
    name, uuid = make_guest('a', kind='bios')
    before = _definition(hypervisor, uuid)
    [result] = _namespaced_playbook(ansible, [{'name': 'sd', SD: {'name': name, 'shutdown_timeout': 0}}], setup)
    assert result.get('failed'), result
    assert 'host lock directory %s %s' % (HOST_LOCKS, words) in result['msg'], result['msg']
    assert _definition(hypervisor, uuid) == before


# -- 11: nothing read back from disk is trusted -----------------------------------------------------------------------

@pytest.mark.cinder
def test_a_tombstone_whose_uuid_is_not_its_file_name_never_reaches_cinder(ansible, state_dir, project):
    """A planted tombstone names a server it is not (a guest on another host): its volume is never touched."""
    assert support.cinder_answers(), 'the test bed Cinder must answer (tests/testbed/cinder.sh up)'
    cinder = support.Cinder()
    try:
        victim = str(uuidlib.uuid4())  # a server this host does not have: another hypervisor's guest
        vol = cinder.volume('trust-%s' % victim[:8])
        cinder.attach(vol, victim)
        planted = str(uuidlib.uuid4())
        os.makedirs(os.path.join(state_dir, 'tombstones'), 0o700, exist_ok=True)
        with open(os.path.join(state_dir, 'tombstones', '%s.json' % planted), 'w') as handle:
            json.dump({'name': 'innocent', 'uuid': victim, 'status': 'undefined', 'cinder_checked': False,
                       'terminated_at': support.utc(-60),
                       'volumes_pending': [{'id': vol, 'delete_on_termination': True}]}, handle)
        os.chmod(state_dir, 0o700)
        # Of a project of its own: a sweep of the whole hypervisor would reclaim the expired guests of the tests that
        # run beside this one. A tombstone that cannot be trusted is reported whatever the project.
        sweep = ansible.task(RC, cloud='testbed', env=support.cinder_env(), project=project)
        assert not sweep.get('failed'), sweep
        assert cinder.state(vol) == 'in-use' and cinder.attachments(victim) == [vol]
        [skipped] = [s for s in sweep['skipped_domains'] if 'tombstone' in s['reason']]
        assert 'does not match its file name' in skipped['reason'], skipped
        assert sweep['instances'] == []
    finally:
        cinder.cleanup()


def test_a_tombstone_uuid_never_becomes_a_path_outside_the_state_dir(ansible, state_dir, tmp_path, project):
    outside = tmp_path / 'outside'
    outside.mkdir()
    os.makedirs(os.path.join(state_dir, 'tombstones'), 0o700)
    os.chmod(state_dir, 0o700)
    planted = str(uuidlib.uuid4())
    with open(os.path.join(state_dir, 'tombstones', '%s.json' % planted), 'w') as handle:
        json.dump({'name': 'escape', 'uuid': '../../outside/x', 'status': 'undefined', 'cinder_checked': False,
                   'volumes_pending': []}, handle)
    sweep = ansible.task(RC, project=project)  # not the expired guests of other tests
    assert os.listdir(str(outside)) == [], 'a file was created outside the state_dir'
    assert not sweep.get('failed'), sweep
    assert any('is not a UUID' in s['reason'] for s in sweep['skipped_domains']), sweep['skipped_domains']


def test_a_symlinked_tombstone_is_never_read(ansible, state_dir, tmp_path):
    secret = tmp_path / 'secret.json'
    planted = str(uuidlib.uuid4())
    secret.write_text(json.dumps({'name': 'leak', 'uuid': planted, 'project': 'read-through-a-link',
                                  'status': 'terminated', 'cinder_checked': True, 'volumes_pending': []}))
    os.makedirs(os.path.join(state_dir, 'tombstones'), 0o700)
    os.chmod(state_dir, 0o700)
    os.symlink(str(secret), os.path.join(state_dir, 'tombstones', '%s.json' % planted))
    info = ansible.task(INFO, include_deleted=True)
    assert not info.get('failed'), info
    assert 'read-through-a-link' not in json.dumps(info)
    [entry] = [i for i in info['instances'] if i.get('metadata_error')]
    assert 'is a symbolic link' in entry['metadata_error']


def test_a_link_planted_at_a_tombstone_temp_name_is_never_written_through(ansible, make_guest, state_dir, tmp_path):
    name, uuid = make_guest('a', kind='bios', start=False)
    canary = tmp_path / 'canary'
    canary.write_text('precious\n')
    for sub in ('tombstones', 'tombstones/pending', 'tombstones/finished'):
        os.makedirs(os.path.join(state_dir, sub), 0o700, exist_ok=True)
    os.chmod(state_dir, 0o700)
    # Hard links (same file system): O_NOFOLLOW does not stop them, only O_EXCL on a name nobody can guess does.
    for sub in ('tombstones', 'tombstones/pending', 'tombstones/finished'):
        os.link(str(canary), os.path.join(state_dir, sub, '%s.json.tmp' % uuid))
    result = ansible.task(TM, name=name)
    assert not result.get('failed'), result
    assert canary.read_text() == 'precious\n'
    assert ansible.tombstone(uuid)['name'] == name


# -- 12: short writes ---------------------------------------------------------------------------------------------------

def _journal_is_whole(path):
    with open(path, 'rb') as handle:
        data = handle.read()
    assert data.endswith(b'\n'), 'the journal ends in the middle of a line: %r' % data[-120:]
    return [json.loads(line) for line in data.split(b'\n')[:-1]]


def test_a_journal_line_is_written_whole_or_the_operation_fails(ansible, make_guest, hypervisor, tiny_fs, tmp_path):
    state = os.path.join(tiny_fs, 'state')
    runner = Runner(ansible.collections, state)
    name, uuid = make_guest('a', kind='bios')
    support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(project='trust'))
    run, pid = support.run_paused(runner, [{'name': 'sd', SD: {'name': name, 'shutdown_timeout': 3,
                                                               'shutdown_retry_interval': 1}}],
                                  'soft_delete.after_start', str(tmp_path))
    try:
        # Leave 100 bytes in the journal's last page, then fill the disk: the next line fits only in part.
        journal = os.path.join(state, 'events.jsonl')
        size = os.path.getsize(journal)
        pad = (4096 - size % 4096) - 100
        if pad < 60:
            pad += 4096
        line = '{"event_type": "test.padding", "pad": "%s"}\n'
        with open(journal, 'a') as handle:
            handle.write(line % ('x' * (pad - len(line % ''))))
        _fill(tiny_fs)
    finally:
        support.resume(pid)
    [inst] = run.wait().task(0)['instances']
    assert inst['failed'] and 'No space left on device' in inst['msg'], inst
    events = _journal_is_whole(journal)
    assert [e['event_type'] for e in events][:2] == ['instance.soft_delete.start', 'test.padding'], events


# Alone (exclusive): its sweep is of the whole hypervisor, and must fail on this test's full state_dir alone.
@pytest.mark.exclusive
def test_a_truncated_tombstone_never_replaces_a_good_one(ansible, make_guest, tiny_fs):
    state = tiny_fs  # the mount point itself: the runner's play files (<state_dir>-plays) then live elsewhere
    runner = Runner(ansible.collections, state)
    name, uuid = make_guest('a', kind='bios', start=False)
    volumes = [{'id': str(uuidlib.uuid4()), 'delete_on_termination': True} for dummy in range(30)]
    assert not runner.task(ATTR, name=name, volumes=volumes).get('failed')
    gone = runner.task(TM, name=name)  # no Cinder: the volumes stay pending in the tombstone
    assert not gone.get('failed'), gone
    path = support.tombstone_path(state, uuid)
    good = open(path, 'rb').read()
    assert len(good) > 4096, 'the tombstone must need more than the one page left'
    _fill(tiny_fs, leave_pages=1)
    sweep = runner.task(RC)
    assert sweep.get('failed'), sweep
    assert 'instances' in sweep, sweep['msg']
    [inst] = sweep['instances']
    assert inst['failed'] and 'No space left on device' in inst['msg'], inst
    assert open(path, 'rb').read() == good
    assert [v['id'] for v in json.loads(good)['volumes_pending']] == [v['id'] for v in volumes]
    os.unlink(os.path.join(tiny_fs, 'filler'))
    again = runner.task(RC)
    assert not again.get('failed'), again
    assert len(runner.tombstone(uuid)['volumes_pending']) == 30


# -- 13: the per-domain lock does not depend on the state_dir ---------------------------------------------------------

def test_callers_with_different_state_dirs_serialise_on_one_domain(ansible, make_guest, hypervisor, tmp_path):
    name, uuid = make_guest('a', kind='bios')
    run, pid = support.run_paused(ansible, [{'name': 'sd', SD: {'name': name, 'shutdown_timeout': 0}}],
                                  'soft_delete.after_start', str(tmp_path))
    other = Runner(ansible.collections, str(tmp_path / 'another-state-dir'))
    try:
        result = other.task(TM, name=name, lock_timeout=2)
        assert result.get('failed'), result
        [inst] = result['instances']
        assert 'another operation has held its lock' in inst['msg'] and HOST_LOCKS in inst['msg'], inst
        assert support.read_record(hypervisor, uuid) is not None, 'terminated under a running soft delete'
        # The lock really is held, host-wide, by the paused run.
        fd = os.open(os.path.join(HOST_LOCKS, '%s.lock' % uuid), os.O_RDONLY)
        try:
            with pytest.raises(BlockingIOError):
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        finally:
            os.close(fd)
    finally:
        support.resume(pid)
    done = run.wait()
    assert not done.task(0).get('failed'), done.task(0)
    assert support.read_record(hypervisor, uuid)['record']['vm_state'] == 'soft_deleted'
