# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The execution environments in docs/ee/ give a build context that asks for every package the collection needs.

``ansible-builder create`` writes the build context; in the image build, its own
``introspect.py`` then reads the installed collection's meta/execution-environment.yml
and writes the requirement files that ``assemble`` and ``install-from-bindep``
install. These tests run both steps here as the build runs them (only the
container engine is missing) and read the result with bindep, for Debian and
RHEL-family images; the packages building libvirt-python needs are taken from
this Debian machine, where it was built (tests/testbed/hypervisor.sh).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import glob
import os
import re
import subprocess
import sys

import pytest
import yaml
from bindep.depends import Depends

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
FULL = os.path.join(ROOT, 'docs', 'ee', 'execution-environment.yml')
CONTROLLER = os.path.join(ROOT, 'docs', 'ee', 'execution-environment-controller.yml')
DEBIAN = ['platform:dpkg', 'platform:debian', 'platform:debian-bookworm']
RHEL = ['platform:rpm', 'platform:redhat', 'platform:centos', 'platform:rhel']


@pytest.fixture(scope='module')
def collections(tmp_path_factory):
    """The collection built and installed from this checkout, as check_galaxy leaves it in the image."""
    out = tmp_path_factory.mktemp('ee-collection')
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'build', ROOT, '--output-path', str(out)],
                   check=True, capture_output=True)
    tarball = glob.glob(str(out / 'deferred-libvirt-*.tar.gz'))[0]
    # --force: without it, a copy found in another collections path (ansible-lint's, ~/.ansible) means "nothing to do".
    subprocess.run([os.path.join(BIN, 'ansible-galaxy'), 'collection', 'install', tarball, '-p', str(out / 'c'), '--force'],
                   check=True, capture_output=True)
    return str(out / 'c')


def build_context(definition, collections, tmp_path):
    """ansible-builder create, then the Dockerfile's introspect step on the installed collection.

    Returns (Dockerfile text, requirements.txt lines, bindep.txt text) as the image build would have them.
    """
    context = tmp_path / 'context'
    proc = subprocess.run([os.path.join(BIN, 'ansible-builder'), 'create', '-f', definition, '-c', str(context)],
                          capture_output=True, text=True, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    dockerfile = (context / 'Dockerfile').read_text()
    line = [item for item in dockerfile.splitlines() if 'introspect.py introspect' in item]
    assert len(line) == 1, 'the build context no longer runs introspect: %s' % dockerfile
    args = line[0].split('introspect.py introspect', 1)[1].split()
    out = tmp_path / 'src'
    out.mkdir()
    args = [re.sub(r'=/tmp/src/', '=%s/' % out, a) for a in args]
    # The Dockerfile copies _build/<file> into the working directory before this step: run it there.
    proc = subprocess.run([sys.executable, str(context / '_build' / 'scripts' / 'introspect.py'), 'introspect']
                          + args + [collections], cwd=str(context / '_build'), capture_output=True, text=True,
                          check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    pip = (out / 'requirements.txt').read_text() if (out / 'requirements.txt').exists() else ''
    bindep = (out / 'bindep.txt').read_text() if (out / 'bindep.txt').exists() else ''
    pip = [re.split(r'[<>=!~ ;#\[]', item.strip(), maxsplit=1)[0].lower() for item in pip.splitlines()
           if item.strip() and not item.startswith('#')]
    return dockerfile, pip, bindep


def packages(bindep_text, platform, compile_profile):
    """The package names bindep installs on that platform, with or without the compile profile."""
    depends = Depends(bindep_text)
    profiles = platform + (['compile'] if compile_profile else [])
    names = set(rule[0] for rule in depends.active_rules(profiles))
    if compile_profile:
        return names
    return names - packages_only_for_compile(depends, platform)


def packages_only_for_compile(depends, platform):
    with_compile = set(rule[0] for rule in depends.active_rules(platform + ['compile']))
    # active_rules with no 'compile' profile still yields the compile-only rules only when no profile is selected.
    runtime = set(rule[0] for rule in depends.active_rules(platform + ['default']))
    return with_compile - runtime


def debian_package_of(path):
    proc = subprocess.run(['dpkg', '-S', os.path.realpath(path)], capture_output=True, text=True, check=False)
    assert proc.returncode == 0, 'no Debian package holds %s: %s' % (path, proc.stderr)
    return proc.stdout.split(':', 1)[0]


def debian_closure(names):
    """Every package the named Debian packages bring in (Depends and PreDepends, recursively)."""
    proc = subprocess.run(['apt-cache', 'depends', '--recurse', '--no-recommends', '--no-suggests', '--no-conflicts',
                           '--no-breaks', '--no-replaces', '--no-enhances'] + sorted(names),
                          capture_output=True, text=True, check=True)
    found = set()
    for line in proc.stdout.splitlines():
        line = line.strip()
        if line.startswith(('Depends:', 'PreDepends:')):
            line = line.split(':', 1)[1].strip()
        found.add(line.strip('<>').split(':')[0])
    return found


def test_full_ee_build_context_asks_for_what_building_libvirt_python_needs_on_debian(collections, tmp_path):
    dockerfile, pip, bindep = build_context(FULL, collections, tmp_path)
    assert 'libvirt-python' in pip and 'openstacksdk' in pip and 'jmespath' in pip
    assert 'ansible-core' not in pip, 'the image brings ansible-core, the collection must not pin it'
    compile_here = packages(bindep, DEBIAN, True)
    # What building libvirt-python needed on this machine, by the files it used: libvirt's header, pkg-config,
    # the C compiler, the Python headers and the C library's headers.
    # The Python headers are the system Python's (/usr/bin/python3), as an image's would be.
    include = subprocess.run(['/usr/bin/python3', '-c', 'import sysconfig; print(sysconfig.get_paths()["include"])'],
                             capture_output=True, text=True, check=True).stdout.strip()
    python_h = os.path.join(include, 'Python.h')
    needed = {debian_package_of(path) for path in ['/usr/include/libvirt/libvirt.h', '/usr/bin/pkg-config',
                                                   '/usr/bin/gcc', python_h, '/usr/include/stdio.h']}
    closure = debian_closure(compile_here)
    assert needed <= closure, 'bindep.txt brings in none of %s' % sorted(needed - closure)
    runtime = packages(bindep, DEBIAN, False)
    assert {'libvirt0', 'qemu-utils'} <= runtime
    assert not runtime & {'gcc', 'libvirt-dev', 'python3-dev', 'pkg-config'}, 'build packages left in the image'
    assert 'bindep.txt' in dockerfile and 'install-from-bindep' in dockerfile


def test_full_ee_build_context_asks_for_the_rhel_build_and_runtime_packages(collections, tmp_path):
    dummy, pip, bindep = build_context(FULL, collections, tmp_path)
    assert 'libvirt-python' in pip
    assert {'gcc', 'python3-devel', 'python3.11-devel', 'libvirt-devel', 'pkgconf-pkg-config'} <= \
        packages(bindep, RHEL, True)
    runtime = packages(bindep, RHEL, False)
    assert {'libvirt-libs', 'qemu-img'} <= runtime
    assert not runtime & {'gcc', 'libvirt-devel', 'python3-devel', 'pkgconf-pkg-config'}


def test_controller_only_ee_compiles_nothing(collections, tmp_path):
    dummy, pip, bindep = build_context(CONTROLLER, collections, tmp_path)
    assert pip == ['jmespath']
    for platform in (DEBIAN, RHEL):
        assert packages(bindep, platform, True) == set(), bindep


def test_fleet_filters_run_without_libvirt_python(collections):
    """The controller-only EE holds no libvirt-python: the filters must not import it (blocked here)."""
    code = ('import sys; sys.modules["libvirt"] = None; sys.modules["openstack"] = None\n'
            'from ansible_collections.deferred.libvirt.plugins.plugin_utils import _fleet_state\n'
            'import ansible_collections.deferred.libvirt.plugins.filter.fleet_state as f\n'
            'print(sorted(f.FilterModule().filters()))\n'
            'fleet = _fleet_state.fleet_state({"h": {"r": {"instances": []}}}, ["h"], result_var="r")\n'
            'print(fleet["missing"])\n')
    proc = subprocess.run([sys.executable, '-c', code], cwd=collections, capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=collections), check=False)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines()[0] == "['fleet_state']"


def test_ee_definitions_name_the_collection_and_the_supported_ansible_core():
    for path in (FULL, CONTROLLER):
        with open(path) as handle:
            data = yaml.safe_load(handle)
        assert data['version'] == 3
        assert data['dependencies']['galaxy']['collections'] == [{'name': 'deferred.libvirt'}]
        assert data['dependencies']['ansible_core']['package_pip'] == 'ansible-core>=2.16,<2.22'
