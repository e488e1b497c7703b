# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which storage a terminate may delete (rule 6): instance directories by path component (the rest of
_storage.py runs against libvirt in test_terminate.py, test_locality.py and the integration tests)."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage


@pytest.mark.parametrize('path, owned', [
    ('/var/lib/libvirt/images/a.qcow2', True),
    ('/var/lib/libvirt/images/sub/a.qcow2', True),
    ('/var/lib/libvirt/images', True),
    ('/var/lib/libvirt/images-other/a.qcow2', False),
    ('/var/lib/libvirt/a.qcow2', False),
])
def test_under_instance_dirs_is_by_path_component(path, owned):
    assert storage.under(path, ['/var/lib/libvirt/images']) is owned


@pytest.mark.parametrize('message, locked', [
    # QEMU's own words (raw_check_lock_bytes), as libvirt passes them on in a failed start.
    ('internal error: qemu unexpectedly closed the monitor: ... Failed to get "write" lock\n'
     'Is another process using the image [/srv/shared-images/g10.qcow2]?', True),
    ('Failed to get shared "write" lock', True),
    ('Failed to get "consistent read" lock', True),
    ('Cannot access storage file \'/srv/a.qcow2\': No such file or directory', False),
    ('operation failed: job: domain restore failed', False),
])
def test_image_locked_tells_qemus_image_lock_from_other_start_failures(message, locked):
    """A restore that fails on QEMU's image lock must not advise discarding saved memory: the lock is not in it."""
    assert storage.image_locked(Exception(message)) is locked
