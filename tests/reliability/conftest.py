# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Reliability suite: the integration harness (real ansible-playbook, libvirtd, QEMU, Cinder) plus fault tools.

Fixtures come from tests/integration/conftest.py, loaded under another name;
``hypervisor`` is replaced by a connection that reopens itself, because the
daemon tests restart libvirtd under it. Tests marked ``restarts_daemon`` run
after all others (they take libvirtd or Cinder away for a few seconds).
"""

import importlib.util
import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(ROOT, 'tests', 'testbed'))

_spec = importlib.util.spec_from_file_location('deferred_integration_harness',
                                               os.path.join(ROOT, 'tests', 'integration', 'conftest.py'))
harness = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(harness)

import guests  # noqa: E402
import support  # noqa: E402

collection = harness.collection
state_dir = harness.state_dir
ansible = harness.ansible
prefix = harness.prefix
make_guest = harness.make_guest


def pytest_configure(config):
    config.addinivalue_line('markers', 'cinder: needs the real Cinder test service (tests/testbed/cinder.sh)')
    config.addinivalue_line('markers', 'restarts_daemon: restarts libvirtd or stops Cinder for a few seconds; runs last')
    config.addinivalue_line('markers', 'slow_trials: many repeated trials (races); deselect with -m "not slow_trials"')


def pytest_collection_modifyitems(session, config, items):
    # Daemon restarts disturb everything else that runs at the same time: keep them at the very end.
    items.sort(key=lambda item: 1 if item.get_closest_marker('restarts_daemon') else 0)


@pytest.fixture(scope='session')
def hypervisor():
    guests.ensure_testbed()
    conn = support.ReconnectingConnection(harness.URI)
    yield conn
    try:
        conn.close()
    except Exception:
        pass


@pytest.fixture(autouse=True)
def no_paused_module_left():
    """A test that fails while a module it paused is stopped must not leave it holding the domain's lock."""
    yield
    support.kill_paused()


@pytest.fixture
def cinder():
    """The real Cinder; every volume a test creates is removed afterwards."""
    support.require_cinder()
    client = support.Cinder()
    yield client
    if support.cinder_answers():
        client.cleanup()


@pytest.fixture
def project(prefix):
    """A project of this test only: vm_reclaim runs are scoped to it, so they never touch anyone else's domains."""
    return 'rel-' + prefix.rstrip('-').rsplit('-', 1)[-1]


@pytest.fixture
def images(hypervisor, prefix):
    """images.file('x') / images.volume('y'): a qcow2 disk of this test in the default pool; leftovers removed after."""
    class Images(object):
        def file(self, suffix, directory=support.IMAGES, **kw):
            return guests.make_disk(os.path.join(directory, prefix + suffix + '.qcow2'), **kw)

        def volume(self, suffix):
            return guests.make_pool_volume(hypervisor, 'default', name=prefix + suffix + '.qcow2').path()

    yield Images()
    for entry in os.listdir(support.IMAGES):
        if entry.startswith(prefix):
            os.unlink(os.path.join(support.IMAGES, entry))
    try:
        hypervisor.storagePoolLookupByName('default').refresh(0)
    except Exception:
        pass
