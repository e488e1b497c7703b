# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Bad input, table-driven: each kind gives a clear error naming the thing and the reason, and changes nothing.

Every case runs one playbook against three real (shut off) domains: vm_info,
the bad task (ignore_errors), vm_info again. "Nothing changed" is checked
three ways: the vm_info records before and after are equal, every domain's
libvirt definition (record included) and power state are byte-for-byte the
same, and the state_dir's journal and tombstones are unchanged.

A few inputs are not errors by design and the table says so: a soft-deleted
record without reclaim_at (or with reclaim_at before deleted_at) is never
reclaimed but reported by vm_reclaim (rule 1), and a project with no
domain selected by query is an empty selection (a fleet-wide playbook asks
every host). Wrong Cinder credentials are the one case where something does
change, on purpose (rule 5): see the last test.
"""

import json
import os
import sys
import uuid as uuidlib

import libvirt
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), 'reliability'))

import guests  # noqa: E402
import support  # noqa: E402
import trials  # noqa: E402

SD, RS, TM, RC = ('deferred.libvirt.vm_soft_delete', 'deferred.libvirt.vm_restore', 'deferred.libvirt.vm_terminate',
                  'deferred.libvirt.vm_reclaim')
AT, INFO = 'deferred.libvirt.vm_attributes', 'deferred.libvirt.vm_info'
UNKNOWN_UUID = '6f2c3c1e-1111-4222-8333-944455556666'

# (id, kind of input, module, args, words the message must contain). '{a}' '{b}' '{c}' are the three domains
# (a stopped, b soft-deleted, both in project {web}; c stopped in project {db}); '{a_uuid}' their UUIDs.
CASES = [
    ('xml_name', 'name with XML characters', SD, {'name': "<domain type='kvm'>&amp;"},
     ['no domain named', "<domain type='kvm'>&amp;"]),
    ('shell_name', 'name with shell characters', TM, {'name': 'x; rm -rf / #'}, ['no domain named', 'x; rm -rf / #']),
    ('subst_name', 'name with a command substitution', RS, {'name': '$(reboot)`id`'},
     ['no domain named', '$(reboot)`id`']),
    ('path_name', 'name with path characters', TM, {'name': '../../../etc/passwd'},
     ['no domain named', '../../../etc/passwd']),
    ('newline_name', 'name with a newline', SD, {'name': '{a}\nrm'}, ['no domain named', '\\n']),
    ('empty_name', 'empty name', TM, {'name': ['']}, ['no domain named', "''"]),
    ('unknown_uuid', 'UUID of no domain', TM, {'name': UNKNOWN_UUID}, ['no domain named', UNKNOWN_UUID]),
    ('one_unknown', 'one unknown name among known ones (all or nothing)', SD, {'name': ['{a}', 'ghost-{a}']},
     ['no domain named', 'ghost-']),
    ('empty_list', 'empty name list', SD, {'name': []}, ['name is an empty list']),
    ('huge_list', 'a list of 10,001 names', SD, {'name': ['n%05d' % i for i in range(10001)]},
     ['10001', 'at most 10000']),
    ('many_unknown', '500 unknown names', TM, {'name': ['ghost-%03d' % i for i in range(500)]},
     ['no domain named', 'and 490 more']),
    ('name_and_query', 'name together with query', SD, {'name': '{a}', 'query': '[]'},
     ['mutually exclusive', 'name', 'query']),
    ('no_selection', 'neither name nor query', TM, {}, ['name or query is required']),
    ('negative_interval', 'negative duration', SD, {'name': '{a}', 'reclaim_interval': -1},
     ['reclaim_interval', 'negative']),
    ('zero_start_timeout', 'zero where not allowed (start_timeout)', RS, {'name': '{b}', 'start_timeout': 0},
     ['start_timeout', 'more than zero']),
    ('zero_retry', 'zero where not allowed (shutdown_retry_interval)', SD,
     {'name': '{a}', 'shutdown_retry_interval': '0s'}, ['shutdown_retry_interval', 'more than zero']),
    ('absurd_interval', 'absurd duration (100000 days)', SD, {'name': '{a}', 'reclaim_interval': '100000d'},
     ['reclaim_interval', 'longer than the maximum']),
    ('word_duration', 'duration that is a word', SD, {'name': '{a}', 'shutdown_timeout': 'soon'},
     ['shutdown_timeout', 'soon', 'not a duration']),
    ('bool_duration', 'duration that is a boolean', SD, {'name': '{a}', 'reclaim_interval': True},
     ['reclaim_interval', 'not a duration']),
    ('negative_lock_timeout', 'negative lock_timeout', RS, {'name': '{b}', 'lock_timeout': '-5'},
     ['lock_timeout', 'negative']),
    ('attr_negative', 'negative per-domain reclaim_interval', AT, {'name': '{a}', 'reclaim_interval': '-1d'},
     ['reclaim_interval', 'negative']),
    ('bad_jmespath', 'invalid JMESPath', TM, {'query': "[?vm_state=='soft_deleted'"},
     ['not a valid JMESPath expression']),
    ('jmespath_number', 'JMESPath that gives a number', TM, {'query': 'length(@)'}, ['length(@)', 'not a list']),
    ('jmespath_forged', 'JMESPath that forges a record', TM, {'query': '[`{"uuid": "%s"}`]' % UNKNOWN_UUID},
     ['not a domain record']),
    ('wrong_type_int', 'wrong type (parallel: many)', TM, {'name': '{a}', 'parallel': 'many'}, ['parallel', 'int']),
    ('wrong_type_bool', 'wrong type (force: maybe)', SD, {'name': '{a}', 'force': 'maybe'}, ['force', 'bool']),
    ('wrong_type_dict', 'wrong type (name: a mapping)', SD, {'name': {'{a}': 1}}, ['name']),
    ('parallel_zero', 'parallel of zero', TM, {'name': '{a}', 'parallel': 0}, ['parallel', '1 or more']),
    ('limit_negative', 'negative limit', RC, {'project': '{web}', 'limit': -1}, ['limit', '0 or more']),
    ('unknown_option', 'unknown option', RS, {'name': '{b}', 'colour': 'blue'}, ['Unsupported parameters', 'colour']),
    ('bad_choice', 'value not among the choices (mode: hibernate)', SD, {'name': '{a}', 'mode': 'hibernate'},
     ['mode', 'hibernate']),
    ('unknown_project', 'unknown project with a name', SD, {'name': '{a}', 'project': 'nosuchproject'},
     ['not in project nosuchproject', '{a}']),
    ('other_project', "another project's domain by UUID", RS, {'name': '{b_uuid}', 'project': '{db}'},
     ['not in project', '{b}']),
    ('relative_instance_dir', 'relative instance_dirs', TM, {'name': '{a}', 'instance_dirs': ['images']},
     ['instance_dirs', 'not an absolute path']),
    ('quota_nonsense', 'quota limits that are not numbers', RS, {'name': '{b}', 'quota': {'{web}': {'cores': 'lots'}}},
     ['quota', 'cores', 'whole number']),
    ('volume_id', 'a volume id with path characters', AT, {'name': '{a}', 'volumes': [{'id': '../../x'}]},
     ['volumes', '../../x', 'not a Cinder volume id']),
    ('uri_refused', 'a uri that does not answer', SD, {'name': '{a}', 'uri': 'qemu+tcp://127.0.0.1:1/system'},
     ['cannot connect to the hypervisor', 'qemu+tcp://127.0.0.1:1/system']),
    ('uri_garbage', 'a uri that is not one', TM, {'name': '{a}', 'uri': 'nonsense:///nowhere'},
     ['cannot connect to the hypervisor', 'nonsense:///nowhere']),
    ('attr_batch', 'vm_attributes batch with one refused domain (all or nothing)', AT,
     {'name': ['{a}', '{b}', '{c}'], 'project': '{web}', 'user': 'mallory'},
     ['refused for 1 of 3', '{c}', 'belongs to project {db}', 'needs force=true', 'nothing was changed']),
]

# Lifecycle records edited by hand into nonsense: (id, kind, the record (or a namespace, record), module, args, words).
METADATA_CASES = [
    ('meta_namespace_v2', 'metadata in namespace version 2', ('urn:deferred-libvirt:lifecycle:2', 'a'), SD,
     {'name': '{a}'}, ['{a}', 'urn:deferred-libvirt:lifecycle:2', 'urn:deferred-libvirt:lifecycle:1']),
    ('meta_version_attr', 'metadata with version="2"', 'version', TM, {'name': '{a}'}, ['{a}', 'version', '2']),
    ('meta_bad_timestamp', 'deleted_at that is not a time', 'bad_time', RS, {'name': '{b}'},
     ['{b}', 'deleted_at', 'yesterday']),
    ('meta_bad_state', 'unknown vm_state', 'bad_state', TM, {'name': '{b}'}, ['{b}', 'vm_state', 'zombie']),
    ('meta_bad_bool', 'locked that is not a boolean', 'bad_bool', SD, {'name': '{a}'}, ['{a}', 'locked', 'maybe']),
    ('meta_unknown_field', 'an unknown field', 'unknown_field', RS, {'name': '{b}'}, ['{b}', 'unknown field', 'colour']),
]
# Not errors by design (rule 1): vm_reclaim reports them and leaves them alone.
REPORTED_CASES = [
    ('meta_no_reclaim_at', 'soft-deleted record without reclaim_at', 'no_reclaim_at', ['reclaim_at is missing']),
    ('meta_reclaim_before_deleted', 'reclaim_at before deleted_at', 'reclaim_before_deleted',
     ['reclaim_at is before deleted_at']),
]


class World(object):
    """Three shut-off domains with lifecycle records, written straight into libvirt (no journal entries).

    Made once for the whole table; reset() puts every record back before each case, and the vm_info records
    of that state are read once (baseline) and compared after every bad task.
    """

    def __init__(self, hypervisor, prefix):
        tag = prefix.rstrip('-').rsplit('-', 1)[-1]
        self.hypervisor = hypervisor
        self.prefix = prefix
        self.projects = {'web': 'bi-web-' + tag, 'db': 'bi-db-' + tag}
        self.names, self.uuids = {}, {}
        for key in ('a', 'b', 'c'):
            self.names[key] = prefix + key
            self.uuids[key] = guests.define_guest(hypervisor, self.names[key], kind='bios', start=False).UUIDString()
        self.records = {
            'a': support.record_xml(project=self.projects['web']),
            'b': support.soft_deleted_record(self.projects['web'], reclaim_in=86400),
            'c': support.record_xml(project=self.projects['db']),
        }
        self.reset()
        self.baseline = self.definitions()
        self.baseline_info = None

    def reset(self):
        for key, text in self.records.items():
            for namespace in (support.NAMESPACE, OTHER_NAMESPACE):
                try:
                    self.dom(key).setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, namespace,
                                              libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                except libvirt.libvirtError:
                    pass
            self.write(key, text)

    def dom(self, key):
        return self.hypervisor.lookupByUUIDString(self.uuids[key])

    def write(self, key, text, namespace=support.NAMESPACE):
        support.set_record(self.dom(key), text, namespace)

    def fill(self, value):
        """Replace the {a} {b_uuid} {web} placeholders in a case's args or words."""
        if isinstance(value, dict):
            return dict((self.fill(k), self.fill(v)) for k, v in value.items())
        if isinstance(value, list):
            return [self.fill(v) for v in value]
        if isinstance(value, str):
            for key in ('a', 'b', 'c'):
                value = value.replace('{%s_uuid}' % key, self.uuids[key]).replace('{%s}' % key, self.names[key])
            for key, project in self.projects.items():
                value = value.replace('{%s}' % key, project)
        return value

    def definitions(self):
        return dict((k, (self.dom(k).XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE), self.dom(k).state()[0]))
                    for k in ('a', 'b', 'c'))


OTHER_NAMESPACE = 'urn:deferred-libvirt:lifecycle:2'


@pytest.fixture(scope='module')
def state_dir(tmp_path_factory):
    """One state_dir for the whole table, so every case is checked against the same journal."""
    return str(tmp_path_factory.mktemp('bad-input') / 'state')


@pytest.fixture(scope='module')
def table_world(hypervisor):
    prefix = 'it-bad-input-%s-' % uuidlib.uuid4().hex[:4]
    made = World(hypervisor, prefix)
    yield made
    guests.destroy_all(hypervisor, prefix)


@pytest.fixture
def world(table_world, ansible):
    table_world.reset()
    assert table_world.definitions() == table_world.baseline, 'the previous case left a domain changed'
    if table_world.baseline_info is None:
        info = ansible.task(INFO, name=[table_world.names[k] for k in ('a', 'b', 'c')])
        assert not info.get('failed'), info
        table_world.baseline_info = info['instances']
    return table_world


def nonsense(world, which):
    """Hand-edit a record into nonsense; returns the domain key edited."""
    web = world.projects['web']
    if isinstance(which, tuple):
        namespace, key = which
        world.dom(key).setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, support.NAMESPACE,
                                   libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        world.write(key, support.record_xml(project=web), namespace)
        return key
    edits = {
        'version': ('a', support.record_xml(project=web, version='2')),
        'bad_time': ('b', support.record_xml(vm_state='soft_deleted', deleted_at='yesterday',
                                             reclaim_at=support.utc(3600), project=web)),
        'bad_state': ('b', support.record_xml(vm_state='zombie', project=web)),
        'bad_bool': ('a', support.record_xml(project=web, extra='<locked>maybe</locked>')),
        'unknown_field': ('b', support.record_xml(vm_state='soft_deleted', deleted_at=support.utc(-60),
                                                  reclaim_at=support.utc(3600), project=web,
                                                  extra='<colour>blue</colour>')),
        'no_reclaim_at': ('b', support.record_xml(vm_state='soft_deleted', deleted_at=support.utc(-7200), project=web)),
        'reclaim_before_deleted': ('b', support.record_xml(vm_state='soft_deleted', deleted_at=support.utc(-60),
                                                           reclaim_at=support.utc(-7200), project=web)),
    }
    key, text = edits[which]
    world.write(key, text)
    return key


def run_bad(ansible, world, state_dir, module, args, edited=False):
    """The bad task then vm_info in one playbook (vm_info first too when a case edited a record); checks that
    nothing changed and returns the bad task's result."""
    names = [world.names[k] for k in ('a', 'b', 'c')]
    definitions = world.definitions()
    files = support.snapshot_files(state_dir)
    tasks = [{'name': 'bad', module: world.fill(args), 'ignore_errors': True}, {'name': 'after', INFO: {'name': names}}]
    if edited:
        tasks.insert(0, {'name': 'before', INFO: {'name': names}})
    results = ansible.playbook(tasks).tasks()
    before = results.pop(0)['instances'] if edited else world.baseline_info
    bad, after = results
    assert not after.get('failed'), 'vm_info after the bad task failed: %s' % after
    assert after['instances'] == before, 'vm_info records changed'
    assert world.definitions() == definitions, 'a domain definition or power state changed'
    assert support.snapshot_files(state_dir) == files, 'the journal or a tombstone changed'
    return bad


def _refused(bad, words, world):
    assert bad.get('failed'), 'accepted: %s' % json.dumps(bad)[:2000]
    msg = bad['msg']
    missing = [w for w in world.fill(words) if w not in msg]
    assert not missing, 'message lacks %s: %s' % (missing, msg)
    return msg


@pytest.mark.parametrize('case_id,kind,module,args,words', CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_refused_with_a_clear_error_and_nothing_changed(ansible, world, state_dir, case_id, kind,
                                                                     module, args, words):
    with trials.case('bad_input', kind, order=CASES.index(next(c for c in CASES if c[0] == case_id))) as case:
        bad = run_bad(ansible, world, state_dir, module, args)
        msg = _refused(bad, words, world)
        case.outcome = _shown(module, msg, world)


@pytest.mark.parametrize('case_id,kind,which,module,args,words', METADATA_CASES, ids=[c[0] for c in METADATA_CASES])
def test_hand_edited_metadata_is_refused_with_a_clear_error_and_nothing_changed(ansible, world, state_dir, case_id,
                                                                                kind, which, module, args, words):
    with trials.case('bad_input', kind, order=100 + [c[0] for c in METADATA_CASES].index(case_id)) as case:
        key = nonsense(world, which)
        bad = run_bad(ansible, world, state_dir, module, args, edited=True)
        msg = _refused(bad, words, world)
        # vm_info still reports the domain, with the reason, instead of failing.
        info = ansible.task(INFO, name=world.names[key])
        assert not info.get('failed'), info
        assert info['instances'][0]['vm_state'] == 'error' and info['instances'][0]['metadata_error'], info
        case.outcome = _shown(module, msg, world) + '; vm_info reports it as vm_state error with the reason'


@pytest.mark.parametrize('case_id,kind,which,words', REPORTED_CASES, ids=[c[0] for c in REPORTED_CASES])
def test_incomplete_soft_deleted_record_is_never_reclaimed_only_reported(ansible, world, state_dir, case_id, kind,
                                                                         which, words):
    with trials.case('bad_input', kind + ' (vm_reclaim)', order=200) as case:
        key = nonsense(world, which)
        definitions = world.definitions()
        sweep = ansible.task(RC, project=world.projects['web'])
        assert not sweep.get('failed'), sweep
        assert sweep['reclaimed'] == [], sweep
        [skipped] = [s for s in sweep['skipped_domains'] if s['uuid'] == world.uuids[key]]
        assert all(w in skipped['reason'] for w in words), skipped
        assert world.definitions() == definitions
        case.outcome = 'not an error by design (rule 1): vm_reclaim leaves it alone and reports it: "%s"' % \
            skipped['reason']


def test_a_project_with_no_domains_selected_by_query_is_an_empty_selection(ansible, world, state_dir):
    with trials.case('bad_input', 'unknown project with a query', order=210) as case:
        bad = run_bad(ansible, world, state_dir, TM, {'project': 'nosuchproject', 'query': '[]'})
        assert not bad.get('failed') and bad['instances'] == [] and bad['changed'] is False, bad
        case.outcome = 'not an error by design: an empty selection, changed=false (fleet-wide runs ask every host)'


def _shown(module, msg, world):
    for key in ('a', 'b', 'c'):
        msg = msg.replace(world.names[key], '<%s>' % key).replace(world.uuids[key], '<%s-uuid>' % key)
    for key, project in world.projects.items():
        msg = msg.replace(project, '<%s>' % key)
    if len(msg) > 220:
        msg = msg[:220] + '...'
    return '%s: "%s"' % (module.split('.')[-1], msg)


@pytest.mark.cinder
def test_wrong_cinder_credentials_are_refused_before_the_domain_is_touched(
        ansible, make_guest, hypervisor, state_dir, prefix):
    """A configuration error is no transient error (rule 5 is for those): found before the destroy, it refuses the
    domain with nothing changed; the right credentials then terminate it and settle its volume."""
    support.require_cinder()
    cinder = support.Cinder()
    try:
        with trials.case('bad_input', 'Cinder credentials that are wrong (vm_terminate)', order=300) as case:
            project = 'bi-' + prefix.rstrip('-').rsplit('-', 1)[-1]
            name, uuid = make_guest('v', kind='bios', start=False)
            vol = cinder.volume(name + '-drop')
            cinder.attach(vol, uuid)
            support.set_record(hypervisor.lookupByUUIDString(uuid), support.record_xml(
                project=project, volumes=[{'id': vol, 'target': 'vdb', 'delete_on_termination': True}]))
            endpoint = support.cinder_endpoint()
            # The test bed's Cinder runs noauth: a token of another project is what a wrong credential looks like.
            wrong = {'auth_type': 'admin_token', 'block_storage_endpoint_override': endpoint,
                     'block_storage_api_version': '3',
                     'auth': {'endpoint': endpoint, 'token': 'intruder:%s' % uuidlib.uuid4().hex}}
            result = ansible.task(TM, name=name, project=project, cloud=wrong)
            assert result.get('failed'), result
            [inst] = result['instances']
            assert inst['failed'] and 'is refused' in inst['msg'], inst
            assert 'nothing was changed (not shut down, no disk deleted, no volume touched)' in inst['msg'], inst
            assert support.read_record(hypervisor, uuid) is not None
            assert support.tombstone(state_dir, uuid) is None
            assert cinder.state(vol) == 'in-use'
            # With the right credentials, the terminate goes through and deletes the volume.
            done = ansible.task(TM, env=support.cinder_env(), name=name, project=project, cloud=support.CLOUD)
            assert not done.get('failed'), done
            assert cinder.wait_state(vol, ('deleted',)) == 'deleted'
            case.outcome = 'refused, nothing changed: "%s"; vm_terminate with the right credentials then ' \
                           'terminated it and deleted the volume' % inst['msg'].replace(vol, '<volume>').replace(
                               uuid, '<uuid>').replace(name, '<name>')
    finally:
        cinder.cleanup()
