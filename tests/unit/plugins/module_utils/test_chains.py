# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backing chains (_chains.py) read from qcow2 headers one way: relative names, missing files named, raw files."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

import pytest


from ansible_collections.deferred.libvirt.plugins.module_utils import _chains
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
    assert _chains.backing_chain(top) == [(base, base)]


@needs_qemu_img
def test_a_missing_backing_file_is_named_in_one_line(tmp_path):
    base, top = str(tmp_path / 'base.qcow2'), str(tmp_path / 'top.qcow2')
    qemu_img('create', '-q', '-f', 'qcow2', base, '1M')
    qemu_img('create', '-q', '-f', 'qcow2', '-b', base, '-F', 'qcow2', top)
    os.unlink(base)
    with pytest.raises(HypervisorError) as err:
        _chains.backing_chain(top, strict=True)
    assert str(err.value) == 'disk file %s: backing file %s cannot be opened: No such file or directory' % (top, base)


def test_a_missing_disk_file_is_named(tmp_path):
    with pytest.raises(HypervisorError) as err:
        _chains.backing_chain(str(tmp_path / 'gone.qcow2'), strict=True)
    assert str(err.value) == 'disk file %s does not exist' % (tmp_path / 'gone.qcow2')


def qcow2(path, backing=None):
    cmd = ['qemu-img', 'create', '-q', '-f', 'qcow2']
    if backing:
        cmd += ['-b', backing, '-F', 'qcow2']
    subprocess.run(cmd + [str(path), '1M'], check=True)
    return str(path)


@needs_qemu_img
def test_backing_files_follow_a_relative_chain_to_real_paths(tmp_path):
    (tmp_path / 'sub').mkdir()
    base = qcow2(tmp_path / 'base.qcow2')
    middle = qcow2(tmp_path / 'sub' / 'middle.qcow2', backing='../base.qcow2')
    top = qcow2(tmp_path / 'top.qcow2', backing='sub/middle.qcow2')
    assert _chains.backing_files(top) == [os.path.realpath(middle), os.path.realpath(base)]


@needs_qemu_img
def test_backing_files_of_an_image_without_backing_is_empty(tmp_path):
    assert _chains.backing_files(qcow2(tmp_path / 'alone.qcow2')) == []


def test_backing_files_of_a_raw_or_missing_file_is_empty(tmp_path):
    raw = tmp_path / 'raw.img'
    raw.write_bytes(b'\0' * 4096)
    assert _chains.backing_files(str(raw)) == []
    assert _chains.backing_files(str(tmp_path / 'missing.qcow2')) == []
