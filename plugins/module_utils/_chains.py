# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Backing chains, read one way only: from the image headers, one small read per file (rule 10 of docs/rules.md).

Terminate's ownership checks and the host's disk index (_storage), restore's
disk checks and vm_info's report of each disk's chain (which the fleet index
on the control node reads, so a file another host's domain reaches through a
backing chain is never deleted) all walk a chain here.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import errno
import json
import os
import struct

from ansible_collections.deferred.libvirt.plugins.module_utils._hypervisor import HypervisorError

QCOW2_MAGIC = b'QFI\xfb'
# Image formats that can name a backing file but whose headers are not read here: a chain through one is unknown.
UNREAD_FORMATS = ((b'QED\x00', 'qed'), (b'KDMV', 'vmdk'))
# The most backing files followed below a disk; deeper chains are not something libvirt builds.
MAX_CHAIN = 16


class ChainUnreadable(HypervisorError):
    """A backing chain that cannot be followed: what it reaches is unknown."""


def _header(handle):
    """(format, backing name) of an opened image: ('qcow2', name or ''), or (another format, '') when the file holds
    no backing name this reads. ChainUnreadable for a format that may have a backing file not read here."""
    header = handle.read(20)
    if header[:4] != QCOW2_MAGIC:
        for magic, fmt in UNREAD_FORMATS:
            if header[:len(magic)] == magic:
                raise ChainUnreadable('%s is a %s image, whose backing file is not read' % (handle.name, fmt))
        return 'raw', ''
    if len(header) < 20:
        raise ChainUnreadable('%s: its qcow2 header is cut short' % handle.name)
    offset = struct.unpack('>Q', header[8:16])[0]
    size = struct.unpack('>I', header[16:20])[0]
    if not offset or not size:
        return 'qcow2', ''
    if size > 4096:
        raise ChainUnreadable('%s: its backing file name is %d bytes long' % (handle.name, size))
    handle.seek(offset)
    return 'qcow2', handle.read(size).decode('utf-8', 'replace')


def _json_filename(name):
    """The file a json: backing name opens (QEMU's pseudo-protocol), or None; ChainUnreadable when it cannot be read."""
    try:
        spec = json.loads(name[len('json:'):])
    except ValueError:
        raise ChainUnreadable('backing name %r cannot be parsed' % name[:200])
    while isinstance(spec, dict):
        for key in ('file.filename', 'filename'):
            if isinstance(spec.get(key), str):
                return spec[key]
        spec = spec.get('file') or spec.get('backing')
    if isinstance(spec, str):
        return spec
    raise ChainUnreadable('backing name %r names no file' % name[:200])


def walk(path, strict=False):
    """``path`` and every file behind it, in the order QEMU opens them: [[name as opened, real path, format]].

    A relative backing name is resolved against the directory of the name the
    image was opened by, as QEMU does (not against where a symbolic link
    leads). A ``json:`` backing name is followed to the file it opens; other
    protocols (nbd:, rbd:) reach no local file and end the chain. The format
    of a file that could not be opened is None. With ``strict``, a missing
    image in the chain raises HypervisorError naming it; otherwise the chain
    stops there. A chain that cannot be read (an unreadable image, a format
    whose backing file is not read, more than MAX_CHAIN backing files) raises
    ChainUnreadable: what it reaches is unknown.
    """
    files = [[path, os.path.realpath(path), None]]
    seen = set([files[0][1]])
    while True:
        current = files[-1][0]
        try:
            with open(current, 'rb') as handle:
                fmt, name = _header(handle)
        except (IOError, OSError) as exc:
            if exc.errno == errno.ENOENT and not strict:
                break
            if strict:
                if current == path:
                    raise HypervisorError('disk file %s does not exist' % path)
                raise HypervisorError('disk file %s: backing file %s cannot be opened: %s'
                                      % (path, current, exc.strerror or exc))
            raise ChainUnreadable('%s cannot be read: %s' % (current, exc.strerror or exc))
        files[-1][2] = fmt
        if not name:
            break
        if name.startswith('json:'):
            name = _json_filename(name)
        elif ':' in name.split('/', 1)[0]:
            break  # a protocol (nbd:, rbd:), not a local file
        opened = name if name.startswith('/') else os.path.join(os.path.dirname(current), name)
        real = os.path.realpath(opened)
        if real in seen:
            break  # a loop: every file of it is listed already
        if len(files) > MAX_CHAIN:
            raise ChainUnreadable('the backing chain of %s is deeper than %d images' % (path, MAX_CHAIN))
        seen.add(real)
        files.append([opened, real, None])
    return files


def backing_chain(path, strict=False):
    """The backing files below ``path`` (not itself), as (name as QEMU opens it, real path) pairs (see walk)."""
    return [(opened, real) for opened, real, dummy in walk(path, strict)[1:]]


def backing_files(path):
    """Real paths of the backing chain below ``path``, read from the image headers (ChainUnreadable if it cannot be)."""
    return [real for dummy, real in backing_chain(path)]


def describe_chain(path):
    """vm_info's report of the chain below a disk at ``path``: (format of the disk, [backing file], error or None).

    Each backing file: its path as QEMU opens it, its format (None when it cannot be opened) and its identity
    (``st_dev``/``st_ino``, None when it cannot be stat'ed). A chain that cannot be read is reported by the error
    (and whatever was read before it), never raised.
    """
    try:
        files = walk(path)
    except HypervisorError as exc:
        return None, [], str(exc)
    chain = []
    for opened, dummy, fmt in files[1:]:
        try:
            st = os.stat(opened)
            dev, ino = st.st_dev, st.st_ino
        except OSError:
            dev = ino = None
        chain.append({'path': opened, 'format': fmt, 'st_dev': dev, 'st_ino': ino})
    return files[0][2], chain, None
