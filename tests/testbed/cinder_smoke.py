# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Smoke test of the test bed's Cinder, done the way Nova would.

Run with a Python that has openstacksdk, after ``cinder.sh up``:
    python tests/testbed/cinder_smoke.py
Exits non-zero on the first failed check.
"""

import sys
import time
import uuid

import cinder_helpers as ch

PREFIX = 'testbed-smoke-'


class Timer(object):
    def __init__(self):
        self.rows = []

    def __call__(self, label, func, *args, **kwargs):
        start = time.monotonic()
        result = func(*args, **kwargs)
        took = time.monotonic() - start
        self.rows.append((label, took))
        print('%-34s %6.3f s' % (label, took), flush=True)
        return result


def check(cond, message):
    if not cond:
        print('FAILED: ' + message, file=sys.stderr)
        sys.exit(1)


def main():
    timer = Timer()
    conn = timer('connect', ch.connect)
    ch.cleanup(PREFIX, conn=conn)
    server = str(uuid.uuid4())
    run = uuid.uuid4().hex[:8]

    vol_a = timer('create volume a', ch.create_volume,
                  PREFIX + run + '-a', 1, conn=conn)
    vol_b = timer('create volume b', ch.create_volume,
                  PREFIX + run + '-b', 1, conn=conn)
    check(vol_a.status == 'available', 'volume a is %s' % vol_a.status)

    att_a = timer('attach a (create/update/complete)', ch.attach_like_nova,
                  vol_a.id, server, '/dev/vdb', conn=conn)
    att_b = timer('attach b (create/update/complete)', ch.attach_like_nova,
                  vol_b.id, server, '/dev/vdc', conn=conn)
    for vol in (vol_a, vol_b):
        status = ch.volume_status(vol.id, conn=conn)
        check(status == 'in-use', 'volume %s is %s' % (vol.id, status))
    check(att_a.connection_info is not None, 'no connection_info')

    found = timer('list attachments by instance', ch.attachments_for,
                  server, conn=conn)
    check({a.id for a in found} == {att_a.id, att_b.id},
          'attachments for %s: %s' % (server, [a.id for a in found]))
    check(all(a.volume_id in (vol_a.id, vol_b.id) for a in found),
          'attachments name other volumes')
    check(ch.attachments_for(str(uuid.uuid4()), conn=conn) == [],
          'another server has attachments')

    for att in found:
        timer('delete attachment', ch.detach, att.id, conn=conn)
    for vol in (vol_a, vol_b):
        timer('wait available', ch.wait_for_volume_status,
              vol.id, 'available', conn=conn)
    check(ch.attachments_for(server, conn=conn) == [],
          'attachments left after delete')

    timer('delete volume a (until gone)', ch.delete_volume, vol_a.id,
          conn=conn)
    check(ch.volume_status(vol_a.id, conn=conn) is None, 'volume a remains')
    status = ch.volume_status(vol_b.id, conn=conn)
    check(status == 'available', 'volume b is %s' % status)

    timer('cleanup', ch.cleanup, PREFIX, conn=conn)
    check(ch.volume_status(vol_b.id, conn=conn) is None, 'volume b remains')
    total = sum(took for _label, took in timer.rows)
    print('smoke OK in %.2f s' % total)


if __name__ == '__main__':
    main()
