# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared fixtures: the collection on sys.path, libvirt's test driver, and running modules through ansible."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import gc
import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(ROOT, 'build', 'collections')
LINK = os.path.join(COLLECTIONS, 'ansible_collections', 'deferred', 'libvirt')


def _collection_path():
    """Make ansible_collections.deferred.libvirt importable from this work tree (build/ is git-ignored)."""
    if os.path.islink(LINK) and os.path.realpath(LINK) != os.path.realpath(ROOT):
        os.unlink(LINK)  # left by another checkout: tests must run this tree's code
    if not os.path.lexists(LINK):
        os.makedirs(os.path.dirname(LINK), exist_ok=True)
        try:
            os.symlink(ROOT, LINK)
        except FileExistsError:  # another run made it meanwhile
            pass
    if os.path.realpath(LINK) != os.path.realpath(ROOT):
        raise pytest.UsageError('%s is not a link to %s: remove it and run again' % (LINK, ROOT))
    if COLLECTIONS not in sys.path:
        sys.path.insert(0, COLLECTIONS)


_collection_path()

try:
    import libvirt
except ImportError:
    libvirt = None


@pytest.fixture(autouse=True)
def host_lock_dir(tmp_path, monkeypatch):
    """Every unit test's host-wide lock directory is its own, inside its tmp_path: a test never creates, locks or
    removes anything in the host's real one (/run/lock/deferred-libvirt), which the host's real runs share.

    Through the environment, so the modules a test runs in a child process (ansible, a lock holder) use it too.
    """
    from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir import _locks
    path = str(tmp_path / 'host-locks')
    monkeypatch.setenv(_locks.HOST_LOCK_DIR_ENV, path)
    return path


@pytest.fixture(scope='session')
def collections_path():
    """The directory to put on sys.path of a child Python so it imports this collection."""
    return COLLECTIONS


TEST_URI = 'test:///default'
# The domain every fresh test:///default connection starts with.
DEFAULT_DOMAIN = 'test'


def _quiet(_ctx, _err):
    return None


def _state(connection):
    """What tells a fresh test:///default from a used one."""
    found = []
    for dom in connection.listAllDomains(0):
        found.append((dom.name(), dom.state()[0], dom.hasManagedSaveImage(0), dom.snapshotNum(0),
                      '<metadata>' in dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)))
    return sorted(found)


def _fresh():
    return [(DEFAULT_DOMAIN, libvirt.VIR_DOMAIN_RUNNING, 0, 0, False)]


def _reset(connection):
    """Undo what an earlier test left behind.

    Needed only after a failure: its traceback keeps libvirt objects, and so
    the shared test:///default state, alive.
    """
    for dom in connection.listAllDomains(0):
        if dom.isActive():
            dom.destroy()
        if dom.name() != DEFAULT_DOMAIN:
            if dom.isPersistent():
                dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA)
            continue
        for snap in dom.listAllSnapshots(0):
            snap.delete(0)
        if dom.hasManagedSaveImage(0):
            dom.managedSaveRemove(0)
        metadata = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)).find('metadata')
        for child in (metadata if metadata is not None else []):
            dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, None, None, child.tag[1:].split('}')[0],
                            libvirt.VIR_DOMAIN_AFFECT_CONFIG)
        dom.create()


@pytest.fixture
def conn():
    """A fresh test:///default hypervisor: only the running domain ``test``.

    The test driver keeps one shared state for test:///default while any
    connection to it is open, and starts afresh once all are closed: so every
    test closes its connection and drops the objects holding it.
    """
    if libvirt is None:
        # scripts/venv.sh always installs it: a unit stage without it is broken, not partly done.
        pytest.fail('libvirt-python is not installed (bash scripts/venv.sh installs it)', pytrace=False)
    libvirt.registerErrorHandler(_quiet, None)
    gc.collect()
    connection = libvirt.open(TEST_URI)
    if _state(connection) != _fresh():
        _reset(connection)
    assert _state(connection) == _fresh(), 'test:///default is not fresh: %s' % _state(connection)
    yield connection
    connection.close()
    gc.collect()


def domain_xml(name, memory_mib=256, vcpus=1, on_poweroff='destroy', os_extra='', devices=''):
    """A minimal domain definition for the test driver."""
    return ('<domain type="test"><name>%s</name><memory unit="MiB">%d</memory><vcpu>%d</vcpu>'
            '<os><type>hvm</type>%s</os><on_poweroff>%s</on_poweroff><devices>%s</devices></domain>'
            % (name, memory_mib, vcpus, os_extra, on_poweroff, devices))


@pytest.fixture
def define(conn):
    """define(name, running=False, **xml_options) -> virDomain, defined on the test hypervisor."""
    def _define(name, running=False, **kwargs):
        dom = conn.defineXML(domain_xml(name, **kwargs))
        if running:
            dom.create()
        return dom
    return _define


# -- running modules as Ansible does ------------------------------------------

def _ansible():
    beside = os.path.join(os.path.dirname(sys.executable), 'ansible')
    return beside if os.path.exists(beside) else shutil.which('ansible')


class ModuleRun(object):
    """The outcome of one ad-hoc module run as the operator sees it: exit code, status, the host result, output."""

    def __init__(self, rc, status, result, stdout, stderr):
        self.rc = rc
        self.status = status
        self.result = result
        self.stdout = stdout
        self.stderr = stderr

    @property
    def failed(self):
        return self.status == 'FAILED!'

    @property
    def msg(self):
        return self.result.get('msg')


_HOST_LINE = re.compile(r'^localhost \| (?P<status>[A-Z!]+) => ', re.M)


def _host_result(stdout):
    """Status and result from the minimal callback's ``localhost | STATUS => {json}``."""
    match = _HOST_LINE.search(stdout)
    if match is None:
        return None, None
    result, _end = json.JSONDecoder().raw_decode(stdout[match.end():])
    return match.group('status'), result


@pytest.fixture
def run_module(tmp_path, host_lock_dir):
    """run_module(module, args_dict, check=False, diff=False) -> ModuleRun.

    Runs ``ansible localhost -m deferred.libvirt.<module> -a '<json>'`` with
    this Python as the module's interpreter and reads what it prints, as an
    operator's ad-hoc command would.
    """
    ansible = _ansible()
    if ansible is None:
        pytest.fail('the ansible command is not installed (bash scripts/venv.sh installs it)', pytrace=False)
    home = tmp_path / 'ansible-home'
    config = tmp_path / 'ansible.cfg'
    config.write_text('[defaults]\n')
    env = dict(os.environ)
    env.update({
        'ANSIBLE_COLLECTIONS_PATH': COLLECTIONS,
        'ANSIBLE_CONFIG': str(config),
        'ANSIBLE_HOME': str(home),
        'ANSIBLE_LOCAL_TEMP': str(home / 'tmp'),
        'ANSIBLE_REMOTE_TEMP': str(home / 'remote'),
        'ANSIBLE_NOCOLOR': '1',
        'ANSIBLE_FORCE_COLOR': '0',
        'ANSIBLE_LOCALHOST_WARNING': '0',
        'ANSIBLE_INVENTORY_UNPARSED_WARNING': '0',
        'ANSIBLE_LOAD_CALLBACK_PLUGINS': '1',
        'ANSIBLE_STDOUT_CALLBACK': 'ansible.builtin.minimal',
    })

    def _run(module, args, check=False, diff=False):
        cmd = [ansible, 'localhost', '-m', 'deferred.libvirt.%s' % module, '-a', json.dumps(args),
               '-e', 'ansible_python_interpreter=%s' % sys.executable]
        if check:
            cmd.append('--check')
        if diff:
            cmd.append('--diff')
        proc = subprocess.run(cmd, cwd=str(tmp_path), env=env, capture_output=True, text=True, timeout=120, check=False)
        status, result = _host_result(proc.stdout)
        assert result is not None, 'no result from ansible (rc %d):\n%s\n%s' % (proc.returncode, proc.stdout, proc.stderr)
        return ModuleRun(proc.returncode, status, result, proc.stdout, proc.stderr)

    return _run


@pytest.fixture
def run_in_process(capsys):
    """run_in_process(module_name, args_dict) -> result dict, running the module's main() in this process.

    For what ad-hoc runs cannot show on the test driver: its state lives only
    as long as a connection is open, so a test holding ``conn`` sees what one
    run left for the next.
    """
    import importlib
    from ansible.module_utils import basic

    def _run(module, args):
        main = importlib.import_module('ansible_collections.deferred.libvirt.plugins.modules.%s' % module).main
        try:
            from ansible.module_utils.testing import patch_module_args
            patcher = patch_module_args(args)
        except ImportError:  # ansible-core before 2.19
            from unittest import mock
            patcher = mock.patch.object(basic, '_ANSIBLE_ARGS', json.dumps({'ANSIBLE_MODULE_ARGS': args}).encode())
        capsys.readouterr()
        with patcher:
            with pytest.raises(SystemExit):
                main()
        return json.loads(capsys.readouterr().out)

    return _run


@pytest.fixture
def qemu_img():
    """The path of qemu-img; the unit stage runs after tests/testbed/hypervisor.sh, which installs it, so none fails."""
    path = shutil.which('qemu-img')
    if path is None:
        pytest.fail('qemu-img is not installed (tests/testbed/hypervisor.sh up installs qemu-utils)', pytrace=False)
    return path
