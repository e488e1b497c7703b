# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Every file of the repository says its licence (an SPDX header), and the licence text is there."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import subprocess

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPDX = 'SPDX-License-Identifier: GPL-3.0-or-later'
# Files that cannot carry a comment (JSON, images, the licence itself) or that a tool writes (antsibull-changelog).
EXEMPT = {'COPYING', 'CHANGELOG.rst', 'changelogs/changelog.yaml', 'changelogs/.plugin-cache.yaml'}


def repository_files():
    proc = subprocess.run(['git', '-C', ROOT, 'ls-files', '-z', '--cached', '--others', '--exclude-standard'],
                          capture_output=True, check=False)
    if proc.returncode == 0:
        return [p for p in proc.stdout.decode().split('\0') if p and os.path.isfile(os.path.join(ROOT, p))]
    found = []
    for top, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in ('.git', '.venv', '.venv-newest', 'build', '__pycache__', '.ansible')]
        found += [os.path.relpath(os.path.join(top, f), ROOT) for f in files]
    return found


def test_every_file_has_an_spdx_header():
    missing = []
    for path in repository_files():
        if path in EXEMPT or path.endswith(('.json', '.png')) or os.path.getsize(os.path.join(ROOT, path)) == 0:
            continue
        with open(os.path.join(ROOT, path), 'rb') as handle:
            head = handle.read(2048).decode('utf-8', 'replace')
        if SPDX not in head:
            missing.append(path)
    assert not missing, 'no "%s" in the first lines of: %s' % (SPDX, ', '.join(sorted(missing)))


def test_the_licence_text_is_the_gpl_3():
    with open(os.path.join(ROOT, 'COPYING')) as handle:
        text = handle.read()
    assert 'GNU GENERAL PUBLIC LICENSE' in text and 'Version 3, 29 June 2007' in text
    assert 'END OF TERMS AND CONDITIONS' in text
