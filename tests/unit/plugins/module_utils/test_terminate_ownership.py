# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Which storage a terminate may delete (spec rule 6), and which Cinder settings are secrets: the pure parts."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

import pytest

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage

needs_qemu_img = pytest.mark.usefixtures('qemu_img')  # fails, never skips, without qemu-img (tests/unit/conftest.py)


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
    assert storage.backing_files(top) == [os.path.realpath(middle), os.path.realpath(base)]


@needs_qemu_img
def test_backing_files_of_an_image_without_backing_is_empty(tmp_path):
    assert storage.backing_files(qcow2(tmp_path / 'alone.qcow2')) == []


def test_backing_files_of_a_raw_or_missing_file_is_empty(tmp_path):
    raw = tmp_path / 'raw.img'
    raw.write_bytes(b'\0' * 4096)
    assert storage.backing_files(str(raw)) == []
    assert storage.backing_files(str(tmp_path / 'missing.qcow2')) == []


@pytest.mark.parametrize('path, owned', [
    ('/var/lib/libvirt/images/a.qcow2', True),
    ('/var/lib/libvirt/images/sub/a.qcow2', True),
    ('/var/lib/libvirt/images', True),
    ('/var/lib/libvirt/images-other/a.qcow2', False),
    ('/var/lib/libvirt/a.qcow2', False),
])
def test_under_instance_dirs_is_by_path_component(path, owned):
    assert storage.under(path, ['/var/lib/libvirt/images']) is owned


def test_secrets_of_a_cloud_config_are_tokens_and_passwords_not_names_or_urls():
    config = {
        'auth_type': 'password',
        'auth': {'auth_url': 'https://keystone.example:5000/v3', 'username': 'ops', 'password': 's3cret',
                 'project_name': 'admin', 'project_id': 'abc123', 'token': 'tok-1',
                 'application_credential_secret': 'acs-1'},
        'region_name': 'RegionOne',
    }
    assert cinder.secrets(config) == set(['s3cret', 'tok-1', 'acs-1'])
