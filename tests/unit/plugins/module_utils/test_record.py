# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lifecycle record: its XML form, libvirt metadata, and strict reading of hand-edited records."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import xml.etree.ElementTree as ET

import libvirt
import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._record import RecordError


def full_record():
    record = _record.empty()
    record.update({
        'vm_state': 'soft_deleted',
        'task_state': None,
        'deleted_at': '2024-05-01T10:00:00Z',
        'reclaim_at': '2024-05-08T10:00:00Z',
        'soft_delete_mode': 'shutdown',
        'project': 'web',
        'user': 'alice',
        'locked': True,
        'lock_reason': 'INC-1234 under investigation',
        'protected': False,
        'reclaim_interval': 604800,
        'shutdown_timeout': 120,
        'volumes': [
            {'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'target': 'vdb', 'delete_on_termination': True},
            {'id': '7f3c2a10-1b2d-4e5f-8a9b-0c1d2e3f4a5b', 'target': 'vdc', 'delete_on_termination': False},
        ],
        'history': [
            {'action': 'soft_delete', 'request_id': 'req-1', 'start': '2024-05-01T09:59:30Z',
             'finish': '2024-05-01T10:00:00Z', 'result': 'success', 'message': None},
        ],
    })
    return record


def set_metadata(dom, text, namespace=_record.NAMESPACE):
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, _record.PREFIX, namespace,
                    libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def listed(conn, name):
    return dict((d.name, d) for d in hv.list_domains(conn))[name]


# -- round trip -----------------------------------------------------------------

def test_a_full_record_reads_back_as_written():
    record = full_record()
    assert _record.parse('web01', _record.serialize(record)) == record


def test_an_empty_record_reads_back_as_written():
    assert _record.parse('web01', _record.serialize(_record.empty())) == _record.empty()


def test_a_volume_without_target_reads_back_without_target():
    record = _record.empty()
    record['volumes'] = [{'id': '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00', 'target': None, 'delete_on_termination': False}]
    assert _record.parse('db01', _record.serialize(record)) == record


def test_times_are_kept_as_utc_with_a_z():
    record = _record.empty()
    record['deleted_at'] = '2024-05-01T12:00:00+02:00'
    assert _record.parse('web01', _record.serialize(record))['deleted_at'] == '2024-05-01T10:00:00Z'


def test_history_keeps_only_the_last_twenty_actions():
    record = _record.empty()
    for n in range(25):
        record = _record.add_history(record, 'restore', 'req-%d' % n, '2024-05-01T10:00:00Z', 'success')
    history = _record.parse('web01', _record.serialize(record))['history']
    assert len(history) == _record.HISTORY_KEEP == 20
    assert history[0]['request_id'] == 'req-5'
    assert history[-1]['request_id'] == 'req-24'


def test_add_history_leaves_the_given_record_alone():
    record = _record.empty()
    _record.add_history(record, 'restore', 'req-1', '2024-05-01T10:00:00Z', 'success')
    assert record['history'] == []


# -- in libvirt metadata --------------------------------------------------------

def test_a_record_set_in_persistent_metadata_is_seen_by_list_domains(conn):
    record = full_record()
    set_metadata(conn.lookupByName('test'), _record.serialize(record))
    domain = listed(conn, 'test')
    assert domain.managed
    assert domain.metadata_error is None
    assert domain.record == record


def test_the_record_is_visible_the_way_virsh_metadata_shows_it(conn):
    dom = conn.lookupByName('test')
    set_metadata(dom, _record.serialize(full_record()))
    text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, _record.NAMESPACE, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    root = ET.fromstring(text)
    assert root.tag == 'lifecycle'
    assert root.get('version') == '1'
    assert root.findtext('vm_state') == 'soft_deleted'


def test_write_record_on_a_running_domain_reaches_the_persistent_definition(conn):
    domain = listed(conn, 'test')
    assert domain.power_state == 'running'
    record = full_record()
    hv.write_record(domain, record)
    inactive = conn.lookupByName('test').XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    assert 'urn:deferred-libvirt:lifecycle:1' in inactive
    assert listed(conn, 'test').record == record


def test_a_domain_without_a_record_is_unmanaged(conn):
    domain = listed(conn, 'test')
    assert not domain.managed
    assert domain.record is None
    assert domain.metadata_error is None


def test_metadata_of_other_tools_is_not_mistaken_for_a_record(conn):
    conn.lookupByName('test').setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, '<instance><name>x</name></instance>',
                                          'nova', 'http://openstack.org/xmlns/libvirt/nova/1.1',
                                          libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    domain = listed(conn, 'test')
    assert not domain.managed
    assert domain.metadata_error is None


# -- malformed records ------------------------------------------------------------

VOL = '0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00'
MALFORMED = [
    ('wrong-root', '<state version="1"><vm_state>active</vm_state></state>',
     'root element is <state>, expected <lifecycle>'),
    ('wrong-version', '<lifecycle version="2"/>', "version '2' is not supported"),
    ('no-version', '<lifecycle><vm_state>active</vm_state></lifecycle>', 'version None is not supported'),
    ('unknown-field', '<lifecycle version="1"><colour>red</colour></lifecycle>', 'unknown field(s) colour'),
    ('bad-vm-state', '<lifecycle version="1"><vm_state>gone</vm_state></lifecycle>', "vm_state 'gone' is not one of"),
    ('bad-task-state', '<lifecycle version="1"><task_state>sleeping</task_state></lifecycle>',
     "task_state 'sleeping' is not one of"),
    ('bad-deleted-at', '<lifecycle version="1"><deleted_at>yesterday</deleted_at></lifecycle>',
     "field deleted_at is 'yesterday', not a UTC ISO 8601 time"),
    ('reclaim-at-without-zone', '<lifecycle version="1"><reclaim_at>2024-05-08T10:00:00</reclaim_at></lifecycle>',
     'field reclaim_at is'),
    ('impossible-date', '<lifecycle version="1"><reclaim_at>2024-13-40T10:00:00Z</reclaim_at></lifecycle>',
     'not a UTC ISO 8601 time'),
    ('locked-not-bool', '<lifecycle version="1"><locked>yes</locked></lifecycle>',
     "field locked is 'yes', not true or false"),
    ('protected-not-bool', '<lifecycle version="1"><protected>maybe</protected></lifecycle>',
     "field protected is 'maybe', not true or false"),
    ('interval-not-seconds', '<lifecycle version="1"><reclaim_interval>7d</reclaim_interval></lifecycle>',
     "field reclaim_interval is '7d', not a whole number of seconds"),
    ('bad-soft-delete-mode', '<lifecycle version="1"><soft_delete_mode>hibernate</soft_delete_mode></lifecycle>',
     "soft_delete_mode 'hibernate' is not one of"),
    ('bad-volume-id', '<lifecycle version="1"><volumes><volume id="../../etc/passwd"/></volumes></lifecycle>',
     "a volume without a valid id ('../../etc/passwd')"),
    ('volume-without-id', '<lifecycle version="1"><volumes><volume target="vdb"/></volumes></lifecycle>',
     'a volume without a valid id (None)'),
    ('volume-delete-not-bool',
     '<lifecycle version="1"><volumes><volume id="%s" delete_on_termination="perhaps"/></volumes></lifecycle>' % VOL,
     "field volumes/delete_on_termination is 'perhaps'"),
    ('duplicate-field', '<lifecycle version="1"><vm_state>active</vm_state><vm_state>soft_deleted</vm_state></lifecycle>',
     'field vm_state appears twice'),
    # Values a hand edit produces that Python itself cannot hold (issue 12, item 14): each is this domain's error.
    ('year-1-with-positive-offset', '<lifecycle version="1"><deleted_at>0001-01-01T00:00:00+05:00</deleted_at></lifecycle>',
     "field deleted_at is '0001-01-01T00:00:00+05:00', not a UTC ISO 8601 time between the years 1 and 9999"),
    ('year-9999-with-negative-offset',
     '<lifecycle version="1"><reclaim_at>9999-12-31T23:00:00-05:00</reclaim_at></lifecycle>',
     "field reclaim_at is '9999-12-31T23:00:00-05:00', not a UTC ISO 8601 time"),
    ('interval-of-5000-digits', '<lifecycle version="1"><reclaim_interval>%s</reclaim_interval></lifecycle>' % ('9' * 5000),
     "field reclaim_interval is '%s... (5000 characters), not a whole number" % ('9' * 39)),
    ('timeout-longer-than-any-duration', '<lifecycle version="1"><shutdown_timeout>999999999999</shutdown_timeout></lifecycle>',
     'field shutdown_timeout is \'999999999999\', not a whole number of seconds from 0 to 315360000'),
    ('interval-in-other-digits', '<lifecycle version="1"><reclaim_interval>\u0663\u0666</reclaim_interval></lifecycle>',
     'field reclaim_interval is'),
    ('interval-with-sign', '<lifecycle version="1"><reclaim_interval>+60</reclaim_interval></lifecycle>',
     "field reclaim_interval is '+60'"),
    ('negative-interval', '<lifecycle version="1"><reclaim_interval>-60</reclaim_interval></lifecycle>',
     "field reclaim_interval is '-60'"),
    ('field-holding-an-element', '<lifecycle version="1"><project><name>web</name></project></lifecycle>',
     'field project holds element <name>, not a value'),
    ('time-holding-an-element', '<lifecycle version="1"><deleted_at><now/></deleted_at></lifecycle>',
     'field deleted_at holds element <now>'),
    ('volumes-holding-something-else', '<lifecycle version="1"><volumes><disk id="%s"/></volumes></lifecycle>' % VOL,
     'field volumes holds <disk>, not <volume>'),
    ('volume-listed-twice',
     '<lifecycle version="1"><volumes><volume id="%s"/><volume id="%s"/></volumes></lifecycle>' % (VOL, VOL.upper()),
     'field volumes lists volume %s twice' % VOL.upper()),
    ('history-holding-something-else', '<lifecycle version="1"><history><note>hi</note></history></lifecycle>',
     'field history holds <note>, not <action>'),
]


@pytest.mark.parametrize('text, reason', [(t, r) for _i, t, r in MALFORMED], ids=[i for i, _t, _r in MALFORMED])
def test_a_malformed_record_is_a_record_error_naming_the_domain(text, reason):
    with pytest.raises(RecordError) as err:
        _record.parse('web01', text)
    assert str(err.value).startswith('domain web01: lifecycle metadata ')
    assert reason in str(err.value)


@pytest.mark.parametrize('text, reason', [(t, r) for _i, t, r in MALFORMED], ids=[i for i, _t, _r in MALFORMED])
def test_a_malformed_record_in_libvirt_is_reported_not_raised(conn, text, reason):
    set_metadata(conn.lookupByName('test'), text)
    domain = listed(conn, 'test')
    assert domain.record is None
    assert domain.metadata_error.startswith('domain test: lifecycle metadata ')
    assert reason in domain.metadata_error


def test_a_record_that_is_not_xml_is_a_record_error():
    with pytest.raises(RecordError) as err:
        _record.parse('web01', 'vm_state=active')
    assert str(err.value).startswith('domain web01: lifecycle metadata is not well-formed XML')


def test_a_record_under_another_version_of_the_namespace_is_an_error_not_unmanaged(conn):
    set_metadata(conn.lookupByName('test'), '<lifecycle version="2"><vm_state>active</vm_state></lifecycle>',
                 namespace='urn:deferred-libvirt:lifecycle:2')
    domain = listed(conn, 'test')
    assert domain.record is None
    assert domain.metadata_error == ('domain test: lifecycle metadata is in namespace urn:deferred-libvirt:lifecycle:2; '
                                     'this collection reads urn:deferred-libvirt:lifecycle:1')


def test_a_record_with_times_at_the_ends_of_the_calendar_reads_back_as_written():
    text = ('<lifecycle version="1"><vm_state>soft_deleted</vm_state><deleted_at>0001-01-01T05:00:00+05:00</deleted_at>'
            '<reclaim_at>9999-12-31T23:59:59Z</reclaim_at></lifecycle>')
    record = _record.parse('web01', text)
    # Four year digits: strftime('%Y') would write year 1 as '1', which does not read back.
    assert (record['deleted_at'], record['reclaim_at']) == ('0001-01-01T00:00:00Z', '9999-12-31T23:59:59Z')
    assert _record.parse('web01', _record.serialize(record)) == record
    assert _record.anomalies(record) == []


def test_parse_time_refuses_what_it_cannot_hold_with_a_value_error():
    for text in ('0001-01-01T00:00:00+05:00', '9999-12-31T23:00:00-05:00', None, 17):
        with pytest.raises(ValueError):
            _record.parse_time(text)


def test_parse_raises_only_record_errors_whatever_the_element_holds():
    # A case no check names still comes out as this domain's RecordError, never as another exception.
    class Odd(ET.Element):
        def get(self, *args):
            raise OverflowError('odd')
    element = Odd('lifecycle', {'version': '1'})
    with pytest.raises(RecordError) as err:
        _record.parse('web01', element)
    assert str(err.value).startswith('domain web01: lifecycle metadata cannot be read (OverflowError: odd)')


def test_a_bad_record_on_one_domain_does_not_hide_the_others(conn, define):
    define('web01')
    set_metadata(conn.lookupByName('test'), '<lifecycle version="1"><locked>yes</locked></lifecycle>')
    set_metadata(conn.lookupByName('web01'), _record.serialize(full_record()))
    domains = dict((d.name, d) for d in hv.list_domains(conn))
    assert domains['test'].metadata_error
    assert domains['web01'].record == full_record()


# -- anomalies ----------------------------------------------------------------

def soft_deleted(**fields):
    record = _record.empty()
    record.update(vm_state='soft_deleted', deleted_at='2024-05-01T10:00:00Z', reclaim_at='2024-05-08T10:00:00Z')
    record.update(fields)
    return record


def test_a_complete_soft_deleted_record_has_no_anomalies():
    assert _record.anomalies(soft_deleted()) == []


def test_soft_deleted_without_deleted_at_is_an_anomaly():
    assert _record.anomalies(soft_deleted(deleted_at=None)) == ['deleted_at is missing']


def test_soft_deleted_without_reclaim_at_is_an_anomaly():
    assert _record.anomalies(soft_deleted(reclaim_at=None)) == ['reclaim_at is missing']


def test_soft_deleted_without_either_time_lists_both():
    assert _record.anomalies(soft_deleted(deleted_at=None, reclaim_at=None)) == [
        'deleted_at is missing', 'reclaim_at is missing']


def test_reclaim_at_before_deleted_at_is_an_anomaly():
    assert _record.anomalies(soft_deleted(reclaim_at='2024-04-01T10:00:00Z')) == ['reclaim_at is before deleted_at']


def test_an_active_record_without_times_is_normal():
    record = _record.empty()
    record['vm_state'] = 'active'
    assert _record.anomalies(record) == []


def test_anomalies_are_read_from_a_record_stored_in_libvirt(conn):
    record = soft_deleted(reclaim_at=None)
    set_metadata(conn.lookupByName('test'), _record.serialize(record))
    assert _record.anomalies(listed(conn, 'test').record) == ['reclaim_at is missing']


def test_empty_gives_independent_records():
    first = _record.empty()
    second = _record.empty()
    first['volumes'].append({'id': VOL})
    assert second['volumes'] == []
    assert copy.deepcopy(second) == _record.empty()


def test_the_actor_of_an_action_reads_back_and_older_entries_have_none():
    record = _record.add_history(full_record(), 'soft_delete', 'req-2', '2024-05-02T00:00:00Z', 'success',
                                 actor='alice@awx')
    back = _record.parse('web01', _record.serialize(record))
    assert back['history'][-1]['actor'] == 'alice@awx'
    assert 'actor' not in back['history'][0]
