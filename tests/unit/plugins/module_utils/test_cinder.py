# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What of _cinder.py needs no live Cinder: when Cinder is configured, the Options of a run, secrets kept out of output.

No cloud and no auth means Cinder is not configured (its work stays pending,
never dropped); every secret of a configuration is found for Ansible to mask,
and an error text from openstacksdk is cut to its first line. The connection
is made without a request (openstacksdk authenticates on first use), so no
Cinder is needed; one test uses a stub connection for what openstacksdk would
raise, and says so. Detach, delete and the attachments Cinder reports are
tested in tests/integration against a real Cinder.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

SERVER = '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00'
AUTH = {'auth_url': 'http://127.0.0.1:9/v3', 'username': 'alice', 'password': 'hunter2', 'project_name': 'web',
        'user_domain_name': 'Default', 'project_domain_name': 'Default'}


@pytest.fixture
def no_clouds(tmp_path, monkeypatch):
    """openstacksdk with an empty clouds.yaml and no OS_* variables: only what the test gives it."""
    for name in list(os.environ):
        if name.startswith('OS_'):
            monkeypatch.delenv(name)
    config = tmp_path / 'clouds.yaml'
    config.write_text('clouds: {}\n')
    monkeypatch.setenv('OS_CLIENT_CONFIG_FILE', str(config))


# -- configured ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize('params', [{}, {'cloud': None, 'auth': None}, {'cloud': '', 'auth': {}},
                                    {'region_name': 'RegionOne', 'auth_type': 'password', 'validate_certs': False}])
def test_without_a_cloud_or_auth_cinder_is_not_configured(params):
    assert not cinder.configured(params)
    assert not cinder.Options(params).configured


@pytest.mark.parametrize('params', [{'cloud': 'devstack'}, {'cloud': {'auth': AUTH}}, {'auth': AUTH}])
def test_a_cloud_or_auth_configures_cinder(params):
    assert cinder.configured(params)
    assert cinder.Options(params).configured


def test_options_without_params_are_not_configured_and_wait_the_default():
    opts = cinder.Options()
    assert not opts.configured
    assert opts.wait_timeout == cinder.DEFAULT_WAIT and opts.no_log_values == set()


def test_options_keep_only_the_connection_options():
    opts = cinder.Options({'cloud': 'devstack', 'name': ['web01'], 'volume_wait_timeout': 30, 'region_name': 'R'})
    assert sorted(opts.params) == sorted(cinder.CONNECTION_KEYS)
    assert (opts.params['cloud'], opts.params['region_name'], opts.params['auth']) == ('devstack', 'R', None)


def test_a_cloud_given_as_a_dict_has_its_password_masked_at_once():
    masked = set(['already'])
    cinder.Options({'cloud': {'auth': AUTH, 'region_name': 'R'}}, no_log_values=masked)
    assert masked == set(['already', 'hunter2'])


# -- the connection, made without a request -----------------------------------------------------------------------------

def test_a_cloud_that_clouds_yaml_does_not_have_is_cinder_unavailable(no_clouds):
    with pytest.raises(cinder.CinderUnavailable) as err:
        cinder.Options({'cloud': 'no-such-cloud-h5'}).connection()
    assert str(err.value).startswith('cannot configure the Cinder connection: ')
    assert 'no-such-cloud-h5' in str(err.value)
    assert isinstance(err.value, DeferredError)


def test_the_connection_is_made_once_masks_the_secrets_and_has_a_default_api_timeout(no_clouds):
    masked = set()
    opts = cinder.Options({'auth': dict(AUTH, password='s3cret'), 'auth_type': 'password', 'region_name': 'R'},
                          no_log_values=masked)
    conn = opts.connection()
    assert opts.connection() is conn
    assert 's3cret' in masked
    assert conn.config.config['api_timeout'] == cinder.DEFAULT_API_TIMEOUT
    assert conn.config.config['region_name'] == 'R'


def test_an_api_timeout_given_is_kept(no_clouds):
    conn = cinder.Options({'auth': AUTH, 'auth_type': 'password', 'api_timeout': 7}).connection()
    assert conn.config.config['api_timeout'] == 7


# -- secrets ------------------------------------------------------------------------------------------------------------

def test_secrets_finds_every_secret_string_nested_or_not():
    config = {'auth': {'password': 'p1', 'token': 't1', 'application_credential_secret': 's1', 'passcode': '123456',
                       'username': 'alice', 'auth_url': 'https://keystone'},
              'key': 'k1', 'clouds': {'a': {'auth': {'Password': 'P2'}}}, 'region_name': 'R'}
    assert cinder.secrets(config) == set(['p1', 't1', 's1', '123456', 'k1', 'P2'])


def test_secrets_leaves_out_file_names_ids_names_and_empty_or_non_string_values():
    config = {'key_file': '/etc/ssl/k.pem', 'keyfile': '/k', 'token_id': 'tid', 'key_name': 'mykey', 'password': '',
              'api_key': None, 'token_expiry': 3600, 'cert': '/etc/ssl/c.pem'}
    assert cinder.secrets(config) == set()


def test_secrets_of_what_is_not_a_dict_are_none():
    assert cinder.secrets(None) == set() and cinder.secrets('password') == set() and cinder.secrets(['x']) == set()


# -- _safe: error texts -----------------------------------------------------------------------------------------------

def test_an_error_text_keeps_only_its_first_line():
    exc = Exception('401 Unauthorized\nX-Auth-Token: gAAAAAB-secret\nhttps://alice:hunter2@keystone/v3')
    assert cinder._safe(exc) == '401 Unauthorized'


def test_an_error_text_is_cut_to_300_characters_and_an_empty_one_names_its_class():
    assert cinder._safe(ValueError('x' * 1000)) == 'x' * 300
    assert cinder._safe(TimeoutError()) == 'TimeoutError'


class BrokenCinder(object):
    """A stub openstacksdk connection (no Cinder is needed to see what an error from one becomes)."""

    class block_storage(object):
        @staticmethod
        def attachments(instance_id):
            raise RuntimeError('Unable to establish connection\nheaders: {"X-Auth-Token": "gAAAAAB-secret"}')


def test_an_error_text_never_carries_the_credentials_of_a_url():
    # openstack.connect() failing names the auth URL; a user:password in it must not reach the task result.
    exc = Exception('Failed to connect to https://alice:hunter2@keystone:5000/v3: refused; retry token=abc123')
    text = cinder._safe(exc)
    assert 'hunter2' not in text and 'alice' not in text and 'abc123' not in text
    assert text.startswith('Failed to connect to https://***@keystone:5000/v3')


def test_cinder_that_cannot_list_attachments_is_unavailable_with_a_safe_message():
    with pytest.raises(cinder.CinderUnavailable) as err:
        cinder.server_attachments(BrokenCinder(), SERVER)
    assert str(err.value) == 'cannot list Cinder attachments of %s: Unable to establish connection' % SERVER
    assert 'gAAAAAB' not in str(err.value)


class OneVolume(object):
    """A stub openstacksdk block_storage holding one volume with the given legacy attachments."""

    def __init__(self, attachments):
        self.attachments = attachments

    def get_volume(self, volume_id):
        return self


def test_an_attachment_hv1_dc2_holds_is_not_detached_by_hv1_dc1():
    foreign = {'hv1.dc2'}
    held = OneVolume([{'attachment_id': 'a1', 'host_name': 'hv1.dc2'}])
    assert cinder._held_elsewhere(held, {'id': 'v'}, ['a1'], foreign) == 'hv1.dc2'
    mine = OneVolume([{'attachment_id': 'a1', 'host_name': 'hv1.dc1'}])
    assert cinder._held_elsewhere(mine, {'id': 'v'}, ['a1'], foreign) is None


def test_an_attachment_named_by_a_short_name_another_hypervisor_shares_is_kept():
    # Cinder's connector may send the short hostname: "hv1" may be hv1.dc2's, so it is never detached from here
    # (keeping it is the safe side; the operator detaches it).
    short = OneVolume([{'attachment_id': 'a1', 'host_name': 'hv1'}])
    assert cinder._held_elsewhere(short, {'id': 'v'}, ['a1'], {'hv1.dc2'}) == 'hv1'
    # A fleet that knows hv2 by its short name still recognises its FQDN.
    fqdn = OneVolume([{'attachment_id': 'a1', 'host_name': 'hv2.example.org'}])
    assert cinder._held_elsewhere(fqdn, {'id': 'v'}, ['a1'], {'hv2'}) == 'hv2.example.org'
    # A short name no other hypervisor has is this host's.
    own = OneVolume([{'attachment_id': 'a1', 'host_name': 'hv3'}])
    assert cinder._held_elsewhere(own, {'id': 'v'}, ['a1'], {'hv1.dc2'}) is None


class Recording(OneVolume):
    """OneVolume that records every detach: none may happen to an attachment another host may hold."""

    def __init__(self, attachments):
        super(Recording, self).__init__(attachments)
        self.detached = []

    def delete_attachment(self, attachment_id, ignore_missing=True):
        self.detached.append(attachment_id)

    def detach_volume(self, volume, attachment_id):
        self.detached.append(attachment_id)


class Conn(object):
    def __init__(self, block_storage):
        self.block_storage = block_storage


def test_rule12_while_the_index_is_incomplete_an_attachment_of_a_host_it_cannot_place_is_neither_detached_nor_settled():
    # docs/lifecycle.md: "a missing host counts as another hypervisor for Cinder attachments". The domain's own
    # earlier hosts (a move) once turned the incomplete index's "every other host" into the list of known hosts, so an
    # attachment of a host that did not report, under a name the index does not know, was detached.
    others = cinder.OtherHypervisors(['hv3', 'hv4'], mine=['hv2'], every=True)
    for own_hosts in ([], ['hv1']):
        foreign = others.without(own_hosts)
        unknown = Recording([{'attachment_id': 'a1', 'host_name': 'hv9'}])
        with pytest.raises(RuntimeError) as err:
            cinder._settle_one(Conn(unknown), SERVER, {'id': 'v'}, ['a1'], 1, foreign)
        assert 'incomplete fleet index cannot place' in str(err.value) and unknown.detached == []
        # A host that reported (or is missing by its inventory name) holds its own: kept, said, not detached.
        known = Recording([{'attachment_id': 'a1', 'host_name': 'hv3'}])
        assert cinder._settle_one(Conn(known), SERVER, {'id': 'v'}, ['a1'], 1, foreign)['kept'] is True
        assert known.detached == []
    # This hypervisor's own attachment, and one of a host the domain itself lived on, are the domain's: detached.
    for host in ('hv2', 'hv1'):
        own = Recording([{'attachment_id': 'a1', 'host_name': host}])
        outcome = cinder._settle_one(Conn(own), SERVER, {'id': 'v'}, ['a1'], 1, others.without(['hv1']))
        assert outcome['detached'] is True and own.detached == ['a1']


def test_secrets_of_a_cloud_config_are_tokens_and_passwords_not_names_or_urls():
    config = {
        'auth_type': 'password',
        'auth': {'auth_url': 'https://keystone.example:5000/v3', 'username': 'ops', 'password': 's3cret',
                 'project_name': 'admin', 'project_id': 'abc123', 'token': 'tok-1',
                 'application_credential_secret': 'acs-1'},
        'region_name': 'RegionOne',
    }
    assert cinder.secrets(config) == set(['s3cret', 'tok-1', 'acs-1'])


# -- check: a wrong configuration found before anything is destroyed ---------------------------------------------------

def test_an_unknown_cloud_is_a_configuration_refused_naming_the_cloud(no_clouds):
    with pytest.raises(cinder.CinderConfigError) as err:
        cinder.Options({'cloud': 'nosuchcloud'}).check()
    assert str(err.value).startswith('the Cinder configuration (cloud nosuchcloud) is refused: cannot configure the '
                                     'Cinder connection: ')


def test_an_unreachable_keystone_is_a_configuration_refused(no_clouds):
    with pytest.raises(cinder.CinderConfigError) as err:
        cinder.Options({'auth': AUTH, 'auth_type': 'password', 'api_timeout': 5}).check()
    text = str(err.value)
    assert text.startswith('the Cinder configuration (the auth given (http://127.0.0.1:9/v3)) is refused: '
                           'authentication failed: ')
    assert 'hunter2' not in text


def test_missing_auth_is_a_configuration_refused(no_clouds):
    auth = dict(AUTH)
    del auth['password']
    with pytest.raises(cinder.CinderConfigError, match='is refused: authentication failed: '):
        cinder.Options({'auth': auth, 'auth_type': 'password'}).check()


class Answering(object):
    """A stub openstacksdk connection whose token works and whose Cinder answers one read with ``status`` (or raises
    ``error``): what check() makes of each answer, without a Cinder."""

    def __init__(self, status=200, error=None):
        self.calls = 0
        outer = self

        class Response(object):
            status_code = status
            reason = 'Bad Request'

            @staticmethod
            def json():
                return {'badRequest': {'code': status, 'message': 'Malformed request url'}}

        class BlockStorage(object):
            @staticmethod
            def get(path):
                outer.calls += 1
                if error is not None:
                    raise error
                return Response()

        self.block_storage = BlockStorage()

    def authorize(self):
        return 'token'


def checked(conn):
    opts = cinder.Options({'cloud': 'devstack'})
    opts._conn = conn
    return opts


def test_a_cinder_that_refuses_a_read_is_a_configuration_refused_with_its_reason():
    with pytest.raises(cinder.CinderConfigError) as err:
        checked(Answering(status=400)).check()
    assert str(err.value) == ('the Cinder configuration (cloud devstack) is refused: Cinder refused a read of the '
                              'volumes (HTTP 400: Malformed request url)')


@pytest.mark.parametrize('conn', [Answering(status=503), Answering(error=RuntimeError('Connection refused'))])
def test_a_cinder_that_does_not_answer_is_transient_not_a_configuration_error(conn):
    # Rule 5: Cinder down is no reason to keep a domain; its volume work stays pending in the tombstone.
    reason = checked(conn).check()
    assert reason.startswith('Cinder answered HTTP 503') or reason.startswith('Cinder does not answer: Connection')


def test_a_working_configuration_is_checked_once_per_run():
    conn = Answering()
    opts = checked(conn)
    assert opts.check() is None and opts.check() is None
    assert conn.calls == 1


def test_the_cinder_configuration_is_described_without_its_secrets():
    assert cinder.describe({'cloud': 'devstack'}) == 'cloud devstack'
    assert cinder.describe({'cloud': {'auth': AUTH}}) == 'the cloud given as a dict (http://127.0.0.1:9/v3)'
    assert 'hunter2' not in cinder.describe({'auth': AUTH})


def test_other_hypervisors_are_one_kind_whether_the_index_is_complete_or_not():
    """Every caller hands settle() the same kind of thing (FleetView.foreign_hosts, or hostnames, or nothing); the
    complete and the incomplete index differ only by ``every``, and both keep it through ``without``."""
    complete = cinder.OtherHypervisors(['HV3.example', 'hv4'])
    assert complete.holds('hv3.example') and complete.holds('hv3') and complete.holds('hv4.dc1')
    assert not complete.holds('hv2.example') and not complete.uncertain('hv9') and bool(complete)
    assert not cinder.OtherHypervisors.of(()) and not cinder.OtherHypervisors.of(None).holds('hv3')
    assert cinder.OtherHypervisors.of(complete) is complete
    assert not complete.without(['hv3.example']).holds('hv3.example') and not complete.without(['hv3']).every
    incomplete = cinder.OtherHypervisors(['hv3'], mine=['hv2.example'], every=True)
    assert incomplete.holds('hv9') and incomplete.uncertain('hv9') and not incomplete.uncertain('HV3')
    assert not incomplete.holds('HV2.example')
    # A bare hv2 may be this host's or a missing host's: kept, the safe side.
    assert incomplete.holds('hv2') and incomplete.uncertain('hv2')
    # The domain's own earlier host stops being another's, and the index stays incomplete.
    moved = incomplete.without(['hv9.example'])
    assert moved.every and not moved.holds('hv9') and moved.uncertain('hv7')
