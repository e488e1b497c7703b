# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Who holds a domain: every record write names the host that made it and moves the generation forward."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._record import RecordError

HOST = {'uuid': '88dc30c7-1bec-456d-b194-7254d74f571d', 'hostname': 'hv2'}


def listed(conn, name):
    return dict((d.name, d) for d in hv.list_domains(conn))[name]


def xml_with(inner):
    return "<lifecycle version='1'><vm_state>active</vm_state>%s</lifecycle>" % inner


def test_host_and_generation_read_back_as_written():
    record = _record.empty()
    record.update(vm_state='active', project='web', generation=7, host=dict(HOST))
    assert _record.parse('web01', _record.serialize(record)) == record


def test_a_record_written_before_hosts_were_named_reads_with_no_host_and_no_generation():
    record = _record.parse('web01', xml_with(''))
    assert record['host'] is None
    assert record['generation'] is None


def test_the_first_write_is_generation_one_and_names_this_host(conn):
    domain = listed(conn, 'test')
    record = _record.empty()
    record.update(vm_state='active', project='web')
    hv.write_record(domain, record)
    stored = listed(conn, 'test').record
    assert stored['generation'] == 1
    # test:///default reports no host UUID (no <uuid> in its capabilities, none in its sysinfo): null, not made up.
    assert stored['host'] == {'uuid': None, 'hostname': conn.getHostname()}


def test_every_write_moves_the_generation_forward_even_from_an_old_copy(conn):
    domain = listed(conn, 'test')
    record = _record.empty()
    record.update(vm_state='active')
    hv.write_record(domain, record)
    hv.write_record(domain, record)
    stale = _record.empty()  # a caller holding a copy read before both writes
    stale.update(vm_state='stopped')
    hv.write_record(listed(conn, 'test'), stale)
    assert listed(conn, 'test').record['generation'] == 3


def test_vm_info_shows_host_and_generation(conn):
    domain = listed(conn, 'test')
    record = _record.empty()
    record.update(vm_state='active', project='web')
    hv.write_record(domain, record)
    view = _views.describe(listed(conn, 'test'))
    assert view['generation'] == 1
    assert view['host']['hostname'] == conn.getHostname()


def test_an_unmanaged_domain_shows_no_host_and_no_generation(conn):
    view = _views.describe(listed(conn, 'test'))
    assert (view['host'], view['generation']) == (None, None)


def test_the_host_uuid_comes_from_the_capabilities_first():
    class Conn(object):
        def getURI(self):
            return 'fake:///capabilities-%s' % id(self)

        def getCapabilities(self):
            return '<capabilities><host><uuid>88DC30C7-1BEC-456D-B194-7254D74F571D</uuid></host></capabilities>'

        def getSysinfo(self, flags):
            raise AssertionError('not asked when the capabilities name the host')

        def getHostname(self):
            return 'hv2'

    # A stand-in connection (no libvirt driver lets a test choose the host UUID it reports).
    assert hv.host_identity(Conn()) == HOST


def test_the_host_uuid_falls_back_to_the_sysinfo_system_uuid():
    class Conn(object):
        def getURI(self):
            return 'fake:///sysinfo-%s' % id(self)

        def getCapabilities(self):
            return '<capabilities><host><cpu/></host></capabilities>'

        def getSysinfo(self, flags):
            return ("<sysinfo type='smbios'><system><entry name='uuid'>%s</entry></system></sysinfo>" % HOST['uuid'])

        def getHostname(self):
            return 'hv2'

    # A stand-in connection, as above.
    assert hv.host_identity(Conn()) == HOST


@pytest.mark.parametrize('inner, field', [
    ('<generation>-1</generation>', 'generation'),
    ('<generation>two</generation>', 'generation'),
    ('<generation>1.5</generation>', 'generation'),
    ("<host uuid='not-a-uuid' hostname='hv2'/>", 'host/uuid'),
    ("<host uuid='88dc30c7-1bec-456d-b194-7254d74f571d'/>", 'host/hostname'),
    ("<host hostname='hv 2'/>", 'host/hostname'),
    ("<host hostname='-hv2'/>", 'host/hostname'),
    ("<host hostname='hv2' rack='r1'/>", 'host'),
    ("<host hostname='hv2'><uuid>x</uuid></host>", 'host'),
    ("<host hostname='hv2'/><host hostname='hv3'/>", 'host'),
])
def test_a_hand_edited_host_or_generation_is_refused_naming_domain_and_field(inner, field):
    with pytest.raises(RecordError) as info:
        _record.parse('web01', xml_with(inner))
    message = str(info.value)
    assert message.startswith('domain web01: ')
    assert 'field %s ' % field in message


def test_a_tie_is_never_undefined_by_the_sweep_on_any_host():
    # No copy is authoritative: undefining every stale one would leave the domain defined nowhere.
    import datetime
    from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
    from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
    now = _record.utcnow()
    view = {'uuid': 'u1', 'name': 'web', 'vm_state': 'soft_deleted', 'power_state': 'shutoff', 'managed': True,
            'task_state': None, 'reclaim_interval': 3600,
            'deleted_at': _record.format_time(now - datetime.timedelta(hours=2)),
            'reclaim_at': _record.format_time(now - datetime.timedelta(hours=1))}
    others = [{'host': 'hv3', 'name': 'web', 'vm_state': 'soft_deleted', 'power_state': 'shutoff'}]
    tie = {'reason': 'no authoritative copy (the copies tie)', 'authoritative': None, 'others': others}
    behind = dict(tie, reason='stale copy: the authoritative copy is hv3/web', authoritative='hv3')
    for stale, verdict in ((tie, eligible.SKIP), (behind, eligible.UNDEFINE)):
        fleet_view = fleet.FleetView({'stale': {'u1': stale}, 'complete': True}, {'hostname': 'hv2'})
        assert eligible.eligibility(view, eligible.Clock(now), fleet_view) == (verdict, stale['reason'])


@pytest.mark.parametrize('guard, why', [
    ({'protected': True}, 'protected'),
    ({'locked': True, 'lock_reason': 'INC-7'}, 'locked (INC-7)'),
    ({'power_state': 'running'}, 'it was started after its soft delete'),
])
def test_the_sweep_applies_the_guards_before_undefining_a_stale_copy(guard, why):
    # vm_terminate's stale-copy path refuses a protected copy; the sweep's undefined it unguarded. The safer reading
    # wins: a protected, locked or running stale copy keeps its definition, and the reason says both things.
    import datetime
    from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
    from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
    now = _record.utcnow()
    view = {'uuid': 'u1', 'name': 'web', 'vm_state': 'soft_deleted', 'power_state': 'shutoff', 'managed': True,
            'task_state': None, 'reclaim_interval': 3600,
            'deleted_at': _record.format_time(now - datetime.timedelta(hours=2)),
            'reclaim_at': _record.format_time(now - datetime.timedelta(hours=1))}
    view.update(guard)
    others = [{'host': 'hv3', 'name': 'web', 'vm_state': 'soft_deleted', 'power_state': 'shutoff'}]
    behind = {'reason': 'stale copy: the authoritative copy is hv3/web', 'authoritative': 'hv3', 'others': others}
    fleet_view = fleet.FleetView({'stale': {'u1': behind}, 'complete': True}, {'hostname': 'hv2'})
    verdict, reason = eligible.eligibility(view, eligible.Clock(now), fleet_view)
    assert verdict == eligible.SKIP
    assert reason.startswith(behind['reason'] + '; ')
    assert why in reason


def test_a_tie_in_the_trash_is_reclaimed_once_and_only_when_every_copy_has_expired():
    # Rule 9: the index picked hv2 to reclaim the tied domain; hv3's copy loses its definition only. Neither acts while
    # the other copy has not expired, in whatever order the two hosts' sweeps run.
    import datetime
    from ansible_collections.deferred.libvirt.plugins.module_utils import _fleet as fleet
    from ansible_collections.deferred.libvirt.plugins.module_utils import _eligibility as eligible
    now = _record.utcnow()
    past, future = (_record.format_time(now + datetime.timedelta(hours=h)) for h in (-1, 1))

    def view(reclaim_at):
        return {'uuid': 'u1', 'name': 'web', 'vm_state': 'soft_deleted', 'power_state': 'shutoff', 'managed': True,
                'task_state': None, 'deleted_at': _record.format_time(now - datetime.timedelta(hours=2)),
                'reclaim_at': reclaim_at}

    def other(host, reclaim_at):
        return {'host': host, 'name': 'web', 'vm_state': 'soft_deleted', 'power_state': 'shutoff', 'generation': 3,
                'reclaim_at': reclaim_at}

    why = 'the copies tie at generation 3; every copy is soft-deleted and shut off, so the fleet reclaims it once, on hv2'
    clock = eligible.Clock(now)
    for hv3_expiry, verdict in ((past, eligible.DUE), (future, eligible.KEPT)):
        chosen = fleet.FleetView({'stale': {}, 'complete': True,
                                  'reclaim_here': {'u1': {'reason': why, 'others': [other('hv3', hv3_expiry)]}}},
                                 {'hostname': 'hv2'})
        got, reason = eligible.eligibility(view(past), clock, chosen)
        assert got == verdict
        if verdict == eligible.KEPT:
            assert reason.endswith('it waits until every copy has expired (hv3/web reclaim_at %s)' % future)
    tied = {'reason': 'tied copy: ' + why, 'authoritative': 'hv2', 'tie': True, 'others': [other('hv2', past)]}
    other_host = fleet.FleetView({'stale': {'u1': tied}, 'complete': True}, {'hostname': 'hv3'})
    assert eligible.eligibility(view(past), clock, other_host) == (eligible.UNDEFINE, tied['reason'])
    waiting = dict(tied, others=[other('hv2', future)])
    other_host = fleet.FleetView({'stale': {'u1': waiting}, 'complete': True}, {'hostname': 'hv3'})
    assert eligible.eligibility(view(past), clock, other_host)[0] == eligible.KEPT
