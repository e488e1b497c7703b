# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_reclaim_summary.py: one summary of a reclaim run from each host's vm_reclaim result.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.plugin_utils._reclaim_summary import reclaim_summary

NOW = '2024-05-01T12:00:00Z'


def test_reclaim_summary_adds_up_the_hosts_and_names_the_ones_not_swept():
    def result(reclaimed, kept=()):
        return {'reclaim_result': {
            'summary': {'reclaimed': len(reclaimed), 'failed': 0, 'skipped': 0, 'kept': len(kept), 'pending': 0,
                        'finished': 0},
            'reclaimed': [{'name': n, 'uuid': 'uuid-' + n} for n in reclaimed], 'failed_domains': [],
            'skipped_domains': [], 'pending': [], 'kept': list(kept)}}
    summary = reclaim_summary({'hv1': result(['a']), 'hv2': result(['b'], [{'name': 'c', 'reclaim_at': NOW}]),
                               'hv3': {'reclaim_result': {'unreachable': True, 'msg': 'ssh: connect refused'}}},
                              ['hv1', 'hv2', 'hv3'])
    assert summary['totals']['reclaimed'] == 2 and summary['totals']['kept'] == 1
    assert summary['not_swept'] == {'hv3': 'ssh: connect refused'} and summary['ok'] is False
    assert summary['lines'][0] == ('reclaimed 2, failed 0, skipped 0, kept 1, Cinder work pending 0, finished 0 '
                                   'on 2 host(s)')
    assert summary['lines'][-2:] == ['NOT SWEPT hv3: ssh: connect refused', 'next to expire: hv2/c at %s' % NOW]
