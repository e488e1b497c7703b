# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""vm_info's operation (_ops/_info.py) on test:///default: a terminated domain listed from its tombstone when asked."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _info as info
from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _terminate as terminate

from ops_support import context, run


def test_info_includes_tombstones_when_asked(conn, define, tmp_path):
    define('web01')
    run(terminate, conn, tmp_path, name=['web01'])
    ctx = context(conn, tmp_path, name=['web01'])
    shown = info.run(ctx, info.options(dict(ctx.params, include_deleted=True)))
    assert [(i['name'], i['vm_state']) for i in shown['instances']] == [('web01', 'deleted')]
