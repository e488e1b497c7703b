# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The doors an operator worries about: what terminate may delete, project scoping, secrets, the state_dir.

All against the real libvirtd (and the real Cinder for the secrets), through
ansible-playbook as an operator runs it.
"""

import glob
import json
import os
import pwd
import stat
import sys
import uuid as uuidlib

import libvirt
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'reliability'))

import guests  # noqa: E402
import support  # noqa: E402
import trials  # noqa: E402

SD, RS, TM, RC, INFO = ('deferred.libvirt.vm_soft_delete', 'deferred.libvirt.vm_restore',
                        'deferred.libvirt.vm_terminate', 'deferred.libvirt.vm_reclaim', 'deferred.libvirt.vm_info')
IMAGES = support.IMAGES


@pytest.fixture
def scratch(prefix, hypervisor):
    """Files this test puts in the images directory (named with its prefix) are removed afterwards."""
    yield lambda suffix: os.path.join(IMAGES, prefix + suffix)
    for path in glob.glob(os.path.join(IMAGES, prefix + '*')):
        if os.path.islink(path) or os.path.isfile(path):
            os.unlink(path)
    try:
        hypervisor.storagePoolLookupByName('default').refresh(0)
    except libvirt.libvirtError:
        pass


def _definition(hypervisor, uuid):
    dom = hypervisor.lookupByUUIDString(uuid)
    return dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), dom.state()[0]


# -- rule 6: terminate deletes only what the domain owns ----------------------------------------------------------------

def test_terminate_deletes_only_storage_the_domain_owns_and_reports_the_rest(
        ansible, make_guest, hypervisor, scratch, tmp_path):
    with trials.case('security', 'vm_terminate of a domain whose disks point outside the instance dirs, through '
                     'symlinks and .., or at another domain\'s disks', order=10) as case:
        outside = tmp_path / 'outside'
        (outside / 'sub').mkdir(parents=True)
        own = guests.make_disk(scratch('own.qcow2'))
        base = guests.make_disk(scratch('base.qcow2'))
        overlay = guests.make_disk(scratch('overlay.qcow2'), size=None, backing=base)
        external = guests.make_disk(str(outside / 'external.qcow2'))
        linked = guests.make_disk(str(outside / 'linked.qcow2'))
        os.symlink(linked, scratch('link.qcow2'))
        dotdot_target = guests.make_disk(str(outside / 'dotdot.qcow2'))
        dotdot = IMAGES + '/../../../..' + dotdot_target
        os.symlink(str(outside / 'sub'), scratch('dir'))
        in_linked_dir = guests.make_disk(str(outside / 'sub' / 'indir.qcow2'))
        shared = guests.make_disk(scratch('shared.qcow2'))
        b_disk = guests.make_disk(scratch('b.qcow2'))
        os.symlink(b_disk, scratch('to-b.qcow2'))
        disks = [own, overlay, external, scratch('link.qcow2'), dotdot, os.path.join(scratch('dir'), 'indir.qcow2'),
                 shared, scratch('to-b.qcow2')]
        name, uuid = make_guest('a', kind='bios', start=False,
                                disks=[{'path': p, 'target': 'vd%s' % chr(ord('b') + i)} for i, p in enumerate(disks)])
        b_name, b_uuid = make_guest('b', kind='bios', start=False,
                                    disks=[{'path': shared, 'target': 'vdb'}, {'path': b_disk, 'target': 'vdc'}])
        b_before = _definition(hypervisor, b_uuid)

        result = ansible.task(TM, name=name)
        assert not result.get('failed'), result
        [inst] = result['instances']
        assert sorted(inst['disks_deleted']) == sorted([own, overlay]), inst
        kept = dict((k['path'], k['reason']) for k in inst['disks_kept'])
        assert sorted(kept) == sorted(disks[2:]), inst['disks_kept']
        for path in (external, scratch('link.qcow2'), dotdot, os.path.join(scratch('dir'), 'indir.qcow2')):
            assert 'outside the instance directories' in kept[path], (path, kept[path])
        assert b_name in kept[shared] and b_name in kept[scratch('to-b.qcow2')], kept
        # Everything not owned is still there, including the backing file of the deleted overlay.
        survivors = [base, external, linked, dotdot_target, in_linked_dir, shared, b_disk, scratch('link.qcow2'),
                     scratch('to-b.qcow2')]
        assert [p for p in survivors if not os.path.exists(p)] == []
        assert [p for p in (own, overlay) if os.path.exists(p)] == []
        assert _definition(hypervisor, b_uuid) == b_before
        case.outcome = 'deleted only its own file and its own overlay (not the overlay\'s backing file); kept and ' \
                       'reported 6: outside the instance dirs, a symlink out, a .. path, a file under a symlinked ' \
                       'dir, a disk shared with another domain, a symlink to that domain\'s disk'


# -- project scoping ----------------------------------------------------------------------------------------------------

SELECTORS = [
    ('name', 'by name', lambda d: {'name': d['name']}),
    ('uuid', 'by UUID', lambda d: {'name': d['uuid']}),
    ('uuid_upper', 'by UUID in upper case', lambda d: {'name': d['uuid'].upper()}),
    ('padded', 'by name with spaces around it', lambda d: {'name': '  %s  ' % d['name']}),
    ('mixed_list', 'in a list with an own domain', lambda d: {'name': [d['own'], d['name']]}),
    ('query_literal', 'by a query giving its UUID as a literal', lambda d: {'query': '[`"%s"`]' % d['uuid']}),
    ('query_forged', 'by a query forging its record', lambda d: {
        'query': '[`{"uuid": "%s", "name": "%s", "project": "%s"}`]' % (d['uuid'], d['name'], d['caller'])}),
    ('query_name', 'by a query on its name', lambda d: {'query': "[?name=='%s']" % d['name']}),
]


@pytest.fixture
def two_projects(make_guest, hypervisor, prefix):
    tag = prefix.rstrip('-').rsplit('-', 1)[-1]
    owner, caller = 'sec-owner-' + tag, 'sec-caller-' + tag
    found = {'owner': owner, 'caller': caller}
    for key, record in (('stopped', support.record_xml(project=owner)),
                        ('trash', support.soft_deleted_record(owner, reclaim_in=86400)),
                        ('own', support.record_xml(project=caller))):
        name, uuid = make_guest(key, kind='bios', start=False)
        support.set_record(hypervisor.lookupByUUIDString(uuid), record)
        found[key] = {'name': name, 'uuid': uuid}
    return found


# Rule 8 on both ansible-core lines (the security-newest stage runs it on the newest).
@pytest.mark.security
@pytest.mark.parametrize('selector_id,how,selector', SELECTORS, ids=[s[0] for s in SELECTORS])
def test_project_scoping_cannot_be_bypassed(ansible, hypervisor, two_projects, selector_id, how, selector):
    with trials.case('security', 'another project\'s domain selected %s (soft delete, restore, terminate, info)' % how,
                     order=20 + [s[0] for s in SELECTORS].index(selector_id)) as case:
        p = two_projects
        stopped = dict(p['stopped'], own=p['own']['name'], caller=p['caller'])
        trash = dict(p['trash'], own=p['own']['name'], caller=p['caller'])
        keys = ('stopped', 'trash', 'own')
        before = dict((k, _definition(hypervisor, p[k]['uuid'])) for k in keys)
        tasks = [{'name': module, module: dict(selector(target), project=p['caller']), 'ignore_errors': True}
                 for module, target in ((SD, stopped), (TM, stopped), (RS, trash), (INFO, stopped))]
        results = ansible.playbook(tasks).tasks()
        outcomes = set()
        for task, result in zip(tasks, results):
            if selector_id == 'query_name':
                # The query only ever sees the caller's own project: an empty selection, nothing done.
                assert not result.get('failed') and result['instances'] == [], (task, result)
                outcomes.add('empty selection')
            else:
                assert result.get('failed'), (task, result)
                assert 'not in project' in result['msg'] or 'project scope applies' in result['msg'], result['msg']
                outcomes.add('refused')
        assert dict((k, _definition(hypervisor, p[k]['uuid'])) for k in keys) == before
        case.outcome = '%s by all 4 modules, nothing changed: "%s"' % (
            '/'.join(sorted(outcomes)), results[0].get('msg', '').replace(p['stopped']['name'], '<name>').replace(
                p['stopped']['uuid'], '<uuid>').replace(p['caller'], '<caller>').replace(p['owner'], '<owner>'))


def test_reclaim_of_one_project_never_touches_another_projects_expired_domain(ansible, hypervisor, two_projects):
    with trials.case('security', 'vm_reclaim of one project next to another project\'s expired domain', order=30) as case:
        p = two_projects
        expired = p['trash']['uuid']
        support.set_record(hypervisor.lookupByUUIDString(expired), support.soft_deleted_record(p['owner'], reclaim_in=-1))
        before = _definition(hypervisor, expired)
        sweep = ansible.task(RC, project=p['caller'])
        assert not sweep.get('failed'), sweep
        listed = [e['uuid'] for key in ('reclaimed', 'skipped_domains', 'kept', 'pending', 'finished_tombstones')
                  for e in sweep[key]]
        assert expired not in listed and sweep['instances'] == [], sweep
        assert _definition(hypervisor, expired) == before
        case.outcome = 'not reclaimed, not even listed'


def test_a_terminated_domain_of_another_project_stays_out_of_reach(ansible, two_projects):
    with trials.case('security', 'another project\'s tombstone by name (terminate, info include_deleted)',
                     order=31) as case:
        p = two_projects
        gone = ansible.task(TM, name=p['stopped']['name'], project=p['owner'])
        assert not gone.get('failed'), gone
        results = ansible.playbook([
            {'name': 'terminate', TM: {'name': p['stopped']['name'], 'project': p['caller']}, 'ignore_errors': True},
            {'name': 'info', INFO: {'name': p['stopped']['uuid'], 'project': p['caller'], 'include_deleted': True},
             'ignore_errors': True},
        ]).tasks()
        for result in results:
            assert result.get('failed') and 'not in project' in result['msg'], result
        case.outcome = 'refused by both: "%s"' % results[0]['msg'].replace(p['stopped']['name'], '<name>').replace(
            p['caller'], '<caller>').replace(p['owner'], '<owner>')


# -- secrets ------------------------------------------------------------------------------------------------------------

def _cloud(token_or_none=None):
    endpoint = support.cinder_endpoint()
    cloud = {'auth_type': 'admin_token', 'block_storage_endpoint_override': endpoint,
             'block_storage_api_version': '3'}
    if token_or_none is not None:
        cloud['auth'] = {'endpoint': endpoint, 'token': token_or_none}
    return cloud


def _project_id():
    return support.cinder_endpoint().rstrip('/').rsplit('/', 1)[-1]


CREDENTIALS = [
    # (id, how the secret is passed, whether Cinder accepts it)
    ('token_in_cloud', 'a working token inside a cloud dict', True),
    ('wrong_token_in_auth', 'a wrong token in the auth option', False),
    ('password_keystone_down', 'a password for a Keystone that does not answer', False),
]


def _options(cred_id, secret):
    if cred_id == 'token_in_cloud':
        # noauth Cinder takes "<user>:<project>"; the secret is the user part, the project id is public.
        return {'cloud': _cloud('%s:%s' % (secret, _project_id()))}
    if cred_id == 'wrong_token_in_auth':
        return {'cloud': _cloud(), 'auth': {'endpoint': support.cinder_endpoint(),
                                            'token': '%s:%s' % (secret, uuidlib.uuid4().hex)}}
    return {'auth_type': 'password', 'auth': {'auth_url': 'http://127.0.0.1:1/v3', 'username': 'admin',
                                              'password': secret, 'project_name': 'admin',
                                              'user_domain_name': 'Default', 'project_domain_name': 'Default'}}


@pytest.mark.cinder
@pytest.mark.parametrize('cred_id,how,works', CREDENTIALS, ids=[c[0] for c in CREDENTIALS])
def test_no_secret_is_written_anywhere(ansible, make_guest, hypervisor, state_dir, prefix, tmp_path, cred_id, how,
                                       works):
    support.require_cinder()
    cinder = support.Cinder()
    try:
        with trials.case('security', 'secret in results, events, tombstones, logs at -vvvv: %s' % how,
                         order=40 + [c[0] for c in CREDENTIALS].index(cred_id)) as case:
            secret = 'Sekr1t%s' % uuidlib.uuid4().hex
            project = 'sec-' + prefix.rstrip('-').rsplit('-', 1)[-1]
            name, uuid = make_guest('v', kind='bios', start=False)
            vol = cinder.volume(name + '-drop')
            cinder.attach(vol, uuid)
            support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(
                project=project, volumes=[{'id': vol, 'target': 'vdb', 'delete_on_termination': True}]))
            options = _options(cred_id, secret)
            results = str(tmp_path / 'results.json')
            log = str(tmp_path / 'ansible.log')
            tasks = [
                # A wrong credential is refused before the domain is touched (a configuration error): the play goes on.
                {'name': 'terminate', TM: dict(options, name=name, project=project), 'register': 'terminate',
                 'ignore_errors': not works},
                {'name': 'sweep', RC: dict(options, project=project), 'register': 'sweep', 'ignore_errors': True},
                {'name': 'info', INFO: {'name': name, 'project': project, 'include_deleted': True}, 'register': 'info'},
                {'name': 'save', 'ansible.builtin.copy': {
                    'dest': results, 'content': '{{ {"terminate": terminate, "sweep": sweep, "info": info} | to_json }}'}},
            ]
            run = support.Background(ansible, tasks, extra_args=['-vvvv'], env={
                'ANSIBLE_STDOUT_CALLBACK': 'default', 'ANSIBLE_LOG_PATH': log, 'ANSIBLE_LOAD_CALLBACK_PLUGINS': '0'})
            rc, out, err = run.wait(raw=True)
            assert rc == 0, (out[-3000:], err[-3000:])
            with open(results) as handle:
                saved = json.load(handle)
            inst = saved['terminate']['instances'][0]
            if works:
                assert inst['action'] == 'terminated', inst
                assert inst['volumes_deleted'] == [vol], inst
            else:
                assert inst['failed'] and 'is refused' in inst['msg'] and 'nothing was changed' in inst['msg'], inst
                assert support.read_record(hypervisor, uuid) is not None and cinder.state(vol) == 'in-use'
            # Every place anything was written: the output as an operator sees it at -vvvv, ansible's log, the
            # registered results, the state_dir (journal, tombstones, locks), ansible's temp dir.
            places = {'stdout': out, 'stderr': err}
            for path in [log, results] + _files_under(state_dir) + _files_under(os.path.expanduser('~/.ansible/tmp')):
                with open(path, 'rb') as handle:
                    places[path] = handle.read().decode('utf-8', 'replace')
            leaks = sorted(where for where, text in places.items() if secret in text)
            assert leaks == [], 'the secret appears in %s' % leaks
            assert len(out) > 10000, 'the -vvvv output is suspiciously short'
            case.details['places_checked'] = len(places)
            case.outcome = '%s; the secret is in none of %d places checked (output at -vvvv, ansible log, ' \
                           'registered results, journal, tombstone, locks)' % (
                               'volume deleted' if works else 'refused before the domain was touched, volume in use',
                               len(places))
    finally:
        cinder.cleanup()


def _files_under(top):
    found = []
    for root, dummy, files in os.walk(top):
        found += [os.path.join(root, f) for f in files if os.path.isfile(os.path.join(root, f))]
    return found


# -- the state_dir ------------------------------------------------------------------------------------------------------

def test_state_dir_is_created_0700_and_its_files_0600_whatever_the_umask(ansible, make_guest, hypervisor, state_dir):
    with trials.case('security', 'state_dir and its files created under umask 000', order=50) as case:
        name, uuid = make_guest('a', kind='bios', start=False)
        other, other_uuid = make_guest('b', kind='bios', start=False)
        old = os.umask(0)
        try:
            results = ansible.playbook([{'name': 'sd', SD: {'name': name}}, {'name': 'tm', TM: {'name': other}}]).tasks()
        finally:
            os.umask(old)
        assert not any(r.get('failed') for r in results), results
        modes = {}
        for path in [state_dir] + [os.path.join(root, d) for root, dirs, dummy in os.walk(state_dir) for d in dirs]:
            modes[path] = stat.S_IMODE(os.lstat(path).st_mode)
            assert modes[path] == 0o700, (path, oct(modes[path]))
        files = _files_under(state_dir)
        assert {os.path.basename(f) for f in files} >= {'events.jsonl', '%s.lock' % uuid, '%s.json' % other_uuid}
        for path in files:
            modes[path] = stat.S_IMODE(os.lstat(path).st_mode)
            assert modes[path] == 0o600, (path, oct(modes[path]))
        case.outcome = '%d directories 0700, %d files 0600 (journal, locks, tombstone)' % (
            len(modes) - len(files), len(files))


NOBODY = pwd.getpwnam('nobody').pw_uid

UNSAFE = [
    # (id, what is wrong, how to make it, words the message must contain)
    ('dir_symlink', 'state_dir is a symlink', 'dir_symlink', ['symbolic link']),
    ('dir_foreign', 'state_dir owned by another user', 'dir_foreign', ['owned by uid %d' % NOBODY]),
    ('locks_symlink', 'locks/ is a symlink', 'locks_symlink', ['symbolic link', 'locks']),
    ('tombstones_foreign', 'tombstones/ owned by another user', 'tombstones_foreign',
     ['owned by uid %d' % NOBODY, 'tombstones']),
    ('journal_symlink', 'events.jsonl is a symlink', 'journal_symlink', ['symbolic link', 'events.jsonl']),
    ('journal_foreign', 'events.jsonl owned by another user', 'journal_foreign',
     ['owned by uid %d' % NOBODY, 'events.jsonl']),
    ('lock_symlink', 'the domain\'s lock file is a symlink', 'lock_symlink', ['symbolic link', '.lock']),
    ('lock_foreign', 'the domain\'s lock file owned by another user', 'lock_foreign',
     ['owned by uid %d' % NOBODY, '.lock']),
]


def _make_unsafe(how, state_dir, uuid, canary, tmp_path):
    real = str(tmp_path / 'real-state')
    for sub in ('', 'locks', 'tombstones'):
        os.makedirs(os.path.join(real if how == 'dir_symlink' else state_dir, sub), 0o700, exist_ok=True)
    if how == 'dir_symlink':
        os.symlink(real, state_dir)
    elif how == 'dir_foreign':
        os.chown(state_dir, NOBODY, -1)
    elif how == 'locks_symlink':
        os.rmdir(os.path.join(state_dir, 'locks'))
        os.symlink(real, os.path.join(state_dir, 'locks'))
    elif how == 'tombstones_foreign':
        os.chown(os.path.join(state_dir, 'tombstones'), NOBODY, -1)
    elif how == 'journal_symlink':
        os.symlink(canary, os.path.join(state_dir, 'events.jsonl'))
    elif how == 'journal_foreign':
        with open(os.path.join(state_dir, 'events.jsonl'), 'w') as handle:
            handle.write('')
        os.chown(os.path.join(state_dir, 'events.jsonl'), NOBODY, -1)
    elif how == 'lock_symlink':
        os.symlink(canary, os.path.join(state_dir, 'locks', '%s.lock' % uuid))
    elif how == 'lock_foreign':
        with open(os.path.join(state_dir, 'locks', '%s.lock' % uuid), 'w') as handle:
            handle.write('')
        os.chown(os.path.join(state_dir, 'locks', '%s.lock' % uuid), NOBODY, -1)


@pytest.mark.parametrize('unsafe_id,what,how,words', UNSAFE, ids=[u[0] for u in UNSAFE])
def test_an_unsafe_state_dir_is_refused_before_the_domain_changes(ansible, make_guest, hypervisor, state_dir, tmp_path,
                                                                  unsafe_id, what, how, words):
    with trials.case('security', 'unsafe state_dir: %s (vm_soft_delete)' % what,
                     order=60 + [u[0] for u in UNSAFE].index(unsafe_id)) as case:
        name, uuid = make_guest('a', kind='bios')
        canary = str(tmp_path / 'canary')
        with open(canary, 'w') as handle:
            handle.write('precious\n')
        _make_unsafe(how, state_dir, uuid, canary, tmp_path)
        before = _definition(hypervisor, uuid)
        result = ansible.task(SD, name=name, shutdown_timeout=0)
        assert result.get('failed'), result
        msg = result['msg']
        assert all(w in msg for w in words), msg
        assert _definition(hypervisor, uuid) == before, 'the domain changed'
        with open(canary) as handle:
            assert handle.read() == 'precious\n'
        case.outcome = 'refused, domain untouched, nothing written through the link: "%s"' % msg.replace(
            state_dir, '<state_dir>').replace(name, '<name>').replace(uuid, '<uuid>')
