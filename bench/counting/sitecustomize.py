# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Count the libvirt calls a process makes, for the benchmarks (bench/lib.py puts this directory on PYTHONPATH).

Only active when BENCH_LIBVIRT_COUNT names a directory: then every method of
libvirt-python's connection, domain, pool and volume classes (and
libvirt.open*) is wrapped to count its calls, and at exit the counts are
written to that directory as <pid>.json. A process that made no libvirt
call writes nothing (the Ansible controller, say). The wrapper adds about a
microsecond a call; the timed runs of the benchmarks never have it.

Calls answered inside the client library, with no RPC to libvirtd, are
counted apart (LOCAL): a virDomain object carries its name, UUID and id.
"""

import os

_DIR = os.environ.get('BENCH_LIBVIRT_COUNT')

LOCAL = frozenset(['virDomain.name', 'virDomain.UUIDString', 'virDomain.UUID', 'virDomain.ID', 'virDomain.connect',
                   'virStoragePool.name', 'virStoragePool.UUIDString', 'virStoragePool.connect',
                   'virStorageVol.name', 'virStorageVol.key', 'virStorageVol.path', 'virStorageVol.connect',
                   'virConnect.getURI'])


def _install(directory):
    import atexit
    import functools
    import json
    import threading

    try:
        import libvirt
    except ImportError:
        return
    counts = {}
    lock = threading.Lock()

    def wrap(label, fn):
        @functools.wraps(fn)
        def counted(*args, **kwargs):
            with lock:
                counts[label] = counts.get(label, 0) + 1
            return fn(*args, **kwargs)
        return counted

    for cls_name in ('virConnect', 'virDomain', 'virStoragePool', 'virStorageVol', 'virNetwork'):
        cls = getattr(libvirt, cls_name, None)
        if cls is None:
            continue
        for attr, value in list(vars(cls).items()):
            if attr.startswith('_') or not callable(value):
                continue
            setattr(cls, attr, wrap('%s.%s' % (cls_name, attr), value))
    for attr in ('open', 'openReadOnly', 'openAuth'):
        if hasattr(libvirt, attr):
            setattr(libvirt, attr, wrap('libvirt.%s' % attr, getattr(libvirt, attr)))

    def dump():
        if counts:
            with open(os.path.join(directory, '%d.json' % os.getpid()), 'w') as handle:
                json.dump(counts, handle)
    atexit.register(dump)


if _DIR:
    _install(_DIR)
