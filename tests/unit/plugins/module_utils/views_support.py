# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""What the views and selection tests share: a host with owned, soft-deleted and unmanaged domains, and look-ups."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils import _hypervisor as hv
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _views


def owned(project, **fields):
    record = _record.empty()
    record['project'] = project
    record.update(fields)
    return record


def described_fleet(conn, define):
    """A host with: test (unmanaged, running), web01 (web, running 2 vCPU/1 GiB), web02 (web, soft-deleted),
    web03 (web, being deleted), db01 (data, stopped 4 vCPU/4 GiB)."""
    define('web01', running=True, vcpus=2, memory_mib=1024)
    define('web02', vcpus=1, memory_mib=512)
    define('web03', vcpus=1, memory_mib=512)
    define('db01', vcpus=4, memory_mib=4096)
    records = {
        'web01': owned('web', vm_state='active'),
        'web02': owned('web', vm_state='soft_deleted', deleted_at='2024-05-01T10:00:00Z',
                       reclaim_at='2024-05-08T10:00:00Z'),
        'web03': owned('web', vm_state='soft_deleted', task_state='deleting', deleted_at='2024-05-01T10:00:00Z',
                       reclaim_at='2024-05-02T10:00:00Z'),
        'db01': owned('data', vm_state='stopped'),
    }
    domains = dict((d.name, d) for d in hv.list_domains(conn))
    for name, record in records.items():
        hv.write_record(domains[name], record)
    return [_views.describe(d) for d in hv.list_domains(conn)]


def names(views):
    return [v['name'] for v in views]


def by_name(views, name):
    return [v for v in views if v['name'] == name][0]
