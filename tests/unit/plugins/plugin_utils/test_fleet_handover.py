# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The flat handover of the fleet index: one read per host, one private file per host's slice, compact cached records.

The index and slices it hands over are exactly fleet_index's and fleet_index_for's (the same scenarios decide the
same way); what changes is that no host's task ever holds the whole index.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import json
import os
import stat

import pytest

from ansible_collections.deferred.libvirt.plugins.plugin_utils import _fleet_handover as handover
from ansible_collections.deferred.libvirt.plugins.plugin_utils._fleet_index import fleet_index, fleet_index_for

from test_fleet_index import UUID, copy_, hostvars

BACKED = {'target': 'vda', 'path': '/srv/overlay.qcow2', 'st_dev': 1, 'st_ino': 2, 'device': 'disk', 'type': 'file',
          'bus': 'virtio', 'size': 123, 'backing_chain': [{'path': '/srv/golden.qcow2', 'st_dev': 1, 'st_ino': 3,
                                                          'format': 'qcow2', 'size': 9}]}


class CountingHostvars(dict):
    """hostvars that count how often each host's vars are asked for."""

    def __init__(self, *args):
        super(CountingHostvars, self).__init__(*args)
        self.reads = {}

    def __getitem__(self, host):
        self.reads[host] = self.reads.get(host, 0) + 1
        return dict.__getitem__(self, host)


def _records(run='42', **hosts):
    return dict((h, {handover.RECORD_VAR: handover.record(v['state_facts_vm_info'], h, run)})
                for h, v in hostvars(**hosts).items())


def test_the_record_keeps_exactly_what_the_index_reads_and_builds_the_same_index():
    views = dict(hv2=[copy_(), copy_(name='db', uuid='0' * 8 + UUID[8:], disks=())], hv3=[copy_(vm_state='soft_deleted')])
    views['hv2'][1]['disks'] = [dict(BACKED)]
    views['hv2'][0]['console'] = 'big data the index never reads'
    full = fleet_index(hostvars(**views), ['hv2', 'hv3'])
    compact = handover.build(_records(**views), ['hv2', 'hv3'], handover.RECORD_VAR, run='42')
    for key in ('stale', 'conflicts', 'shared_disks', 'missing', 'complete', 'lines'):
        assert compact[key] == full[key], key
    record = _records(**views)['hv2'][handover.RECORD_VAR]
    assert record['run'] == '42' and record['host'] == 'hv2' and record['hypervisor']['hostname'] == 'hv2'
    assert 'console' not in record['instances'][0]
    assert record['instances'][1]['disks'] == [{'target': 'vda', 'path': '/srv/overlay.qcow2', 'st_dev': 1, 'st_ino': 2,
                                                'backing_chain': [{'path': '/srv/golden.qcow2', 'st_dev': 1, 'st_ino': 3}]}]


def test_a_failed_result_gives_a_record_that_says_why_and_the_host_is_missing():
    record = handover.record({'failed': True, 'msg': 'cannot connect to qemu:///system'}, 'hv3', '42')
    assert 'instances' not in record and record['msg'] == 'cannot connect to qemu:///system'
    records = _records(hv2=[copy_()])
    records['hv3'] = {handover.RECORD_VAR: record}
    index = handover.build(records, ['hv2', 'hv3'], handover.RECORD_VAR, run='42')
    assert not index['complete'] and index['missing'] == {'hv3': 'cannot connect to qemu:///system'}


def test_a_record_without_a_run_id_is_refused():
    with pytest.raises(handover.HandoverError, match='no fleet run id'):
        handover.record({'instances': []}, 'hv2', '')


def test_a_record_of_another_run_or_none_counts_as_missing_saying_which_run():
    records = _records(run='41', hv2=[copy_()], hv3=[copy_()])
    records['hv3'][handover.RECORD_VAR]['run'] = '42'
    records['hv4'] = {}
    index = handover.build(records, ['hv2', 'hv3', 'hv4'], handover.RECORD_VAR, run='42')
    assert not index['complete']
    assert index['missing']['hv2'].startswith('its cached record is from fleet run 41')
    assert 'not this run 42' in index['missing']['hv2']
    assert index['missing']['hv4'] == 'no cached record of this fleet run 42 (did the gather job run over it?)'
    assert list(index['hosts']) == ['hv3']


def test_each_hosts_vars_are_read_once_however_large_the_fleet():
    views = dict(('hv%d' % i, []) for i in (2, 3))
    records = CountingHostvars(_records(**views))
    handover.build(records, sorted(views), handover.RECORD_VAR, run='42')
    assert records.reads == {'hv2': 1, 'hv3': 1}


def test_each_slice_goes_to_a_private_file_named_by_digest_and_reads_back_as_fleet_index_for_made_it(tmp_path):
    index = handover.build(_records(hv2=[copy_()], hv3=[copy_()]), ['hv2', 'hv3'], handover.RECORD_VAR, run='42',
                           fleet='hypervisors')
    directory = handover.write_slices(index)
    try:
        assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
        names = sorted(os.listdir(directory))
        assert names == sorted([handover.slice_name('hv2'), handover.slice_name('hv3')])
        assert not any('hv' in n for n in names)
        for name in names:
            assert stat.S_IMODE(os.stat(os.path.join(directory, name)).st_mode) == 0o600
        part = handover.read_slice(directory, 'hv3')
        assert part == json.loads(json.dumps(dict(fleet_index_for(index, 'hv3'), run='42')))
        assert part['fleet'] == 'hypervisors' and part['run'] == '42' and UUID in part['stale']
        assert handover.read_slice(directory, 'hv9') is None  # no report, no slice
    finally:
        for name in os.listdir(directory):
            os.unlink(os.path.join(directory, name))
        os.rmdir(directory)
    given = handover.write_slices(index, str(tmp_path / 'slices'))
    assert stat.S_IMODE(os.stat(given).st_mode) == 0o700 and handover.read_slice(given, 'hv2')['host'] == 'hv2'


def test_a_host_name_with_a_path_in_it_cannot_leave_the_directory(tmp_path):
    assert '/' not in handover.slice_name('../../etc/passwd') and handover.slice_name('a').endswith('.json')
    assert handover.read_slice(str(tmp_path), '../../etc/passwd') is None


def test_a_slice_file_that_is_no_json_is_an_error_naming_the_host(tmp_path):
    (tmp_path / handover.slice_name('hv2')).write_text(u'{not json')
    with pytest.raises(handover.HandoverError, match='fleet slice of hv2 .* is no JSON'):
        handover.read_slice(str(tmp_path), 'hv2')


def test_the_summary_is_small_whatever_the_fleet():
    index = handover.build(_records(hv2=[copy_()], hv3=[copy_()]), ['hv2', 'hv3'], handover.RECORD_VAR, run='42')
    small = handover.summary(index, '/tmp/x')
    assert set(small) == set(['dir', 'lines', 'complete', 'missing', 'built_at', 'run', 'fleet', 'counts'])
    assert small['counts'] == {'hosts': 2, 'domains': 1, 'stale': 1, 'conflicts': 0, 'shared_disks': 1, 'missing': 0,
                               'aliases': 0}


def test_removing_the_slices_removes_only_slice_files_and_then_the_directory(tmp_path):
    index = handover.build(_records(hv2=[copy_()], hv3=[copy_()]), ['hv2', 'hv3'], handover.RECORD_VAR, run='42')
    directory = handover.write_slices(index, str(tmp_path / 'a'))
    assert handover.remove_slices(directory) is True and not os.path.exists(directory)
    assert handover.remove_slices(directory) is False  # already gone
    kept = handover.write_slices(index, str(tmp_path / 'b'))
    (tmp_path / 'b' / 'notes.txt').write_text(u'an operator put this here')
    assert handover.remove_slices(kept) is False
    assert os.listdir(kept) == ['notes.txt']


# -- state_facts_index_only: vm_info asked for the index's fields only ------------------------------------------------

def _index_fields():
    """What the index reads of a domain: the record's keys, the disks (with their backing files), the pending work."""
    return set(handover.VIEW_KEYS) | set(['disks', 'disks_pending', 'volumes_pending'])


def test_the_fields_the_role_and_the_gather_playbook_ask_vm_info_for_are_what_the_index_reads():
    """Invariant: a report cut to state_facts_index_fields (the reclaim role) or to fleet_gather.yml's fields still holds
    everything the fleet index reads, so the sweep's safety does not depend on which of the two gathered it."""
    import yaml
    root = os.path.join(os.path.dirname(handover.__file__), '..', '..')
    with open(os.path.join(root, 'roles', 'state_facts', 'vars', 'main.yml')) as handle:
        role = yaml.safe_load(handle)['state_facts_index_fields']
    with open(os.path.join(root, 'playbooks', 'fleet_gather.yml')) as handle:
        gather = [t for t in yaml.safe_load(handle)[0]['tasks'] if 'deferred.libvirt.vm_info' in t][0]
    assert set(role) == _index_fields() and len(role) == len(set(role))
    assert gather['deferred.libvirt.vm_info']['fields'] == role


def test_an_index_of_reports_cut_to_the_index_fields_is_the_index_of_the_whole_reports():
    """Invariant: vm_info's projection to state_facts_index_fields changes nothing the index decides (stale copies,
    conflicts, shared disks and backing files, pending disks and volumes, every host's slice)."""
    from ansible_collections.deferred.libvirt.plugins.module_utils._views import project_fields
    tomb = copy_(name='old', uuid='1' * 8 + UUID[8:], vm_state='deleted', disks=())
    tomb['disks_pending'] = [dict(BACKED, path='/srv/pending.qcow2', st_ino=7)]
    tomb['volumes_pending'] = [{'id': 'vol-1', 'delete_on_termination': True}]
    views = dict(hv2=[copy_(reclaim_at='2026-11-01T00:00:00Z'), copy_(name='db', uuid='0' * 8 + UUID[8:], disks=()), tomb],
                 hv3=[copy_(vm_state='soft_deleted', power_state='shutoff', task_state='moving',
                            reclaim_at='2026-11-02T00:00:00Z')])
    views['hv2'][1]['disks'] = [dict(BACKED)]
    views['hv3'][0]['disks'] = [dict(BACKED, path='/srv/other.qcow2', st_ino=5)]
    views['hv2'][0]['console'] = 'big data the index never reads'
    full = fleet_index(hostvars(**views), ['hv2', 'hv3'])
    cut = dict((h, [project_fields(v, sorted(_index_fields())) for v in vs]) for h, vs in views.items())
    assert 'console' not in cut['hv2'][0] and full['shared_disks']
    assert fleet_index(hostvars(**cut), ['hv2', 'hv3']) == full
    for host in ('hv2', 'hv3'):
        assert fleet_index_for(fleet_index(hostvars(**cut), ['hv2', 'hv3']), host) == fleet_index_for(full, host)
