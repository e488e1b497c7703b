# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Storage ownership's file reading: backing chains read from qcow2 headers, missing files named."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

import pytest


from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import HypervisorError


# -- backing files ------------------------------------------------------------------

needs_qemu_img = pytest.mark.usefixtures('qemu_img')  # fails, never skips, without qemu-img (tests/unit/conftest.py)


def qemu_img(*args):
    subprocess.run(['qemu-img'] + list(args), check=True, capture_output=True)


@needs_qemu_img
def test_the_backing_chain_lists_the_disk_then_its_backing_files(tmp_path):
    base, top = str(tmp_path / 'base.qcow2'), str(tmp_path / 'top.qcow2')
    qemu_img('create', '-q', '-f', 'qcow2', base, '1M')
    qemu_img('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top)
    assert storage.backing_chain(top) == [(base, base)]


@needs_qemu_img
def test_a_missing_backing_file_is_named_in_one_line(tmp_path):
    base, top = str(tmp_path / 'base.qcow2'), str(tmp_path / 'top.qcow2')
    qemu_img('create', '-q', '-f', 'qcow2', base, '1M')
    qemu_img('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top)
    os.unlink(base)
    with pytest.raises(HypervisorError) as err:
        storage.backing_chain(top, strict=True)
    assert str(err.value) == 'disk file %s: backing file %s cannot be opened: No such file or directory' % (top, base)


def test_a_missing_disk_file_is_named(tmp_path):
    with pytest.raises(HypervisorError) as err:
        storage.backing_chain(str(tmp_path / 'gone.qcow2'), strict=True)
    assert str(err.value) == 'disk file %s does not exist' % (tmp_path / 'gone.qcow2')
