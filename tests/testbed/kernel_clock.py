# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The kernel's clock as tests need it: its synchronised flag (adjtimex's STA_UNSYNC, the one NTP, chrony and
timesyncd clear), set for a test and put back, and a process that sees a fresh boot.

The flag is this machine's kernel's own (the test bed is a VM of its own): the collection reads it, so a test sets
it with adjtimex(ADJ_STATUS) as an NTP daemon would, with a maximum error of zero so that the kernel does not set
STA_UNSYNC again on its own (it does once the error passes 16 s, growing 500 us a second) during the test.

A reboot cannot happen under a running test run. What a process sees of one is a new boot id and a boot clock
(CLOCK_BOOTTIME, /proc/uptime) that starts again near zero: ``as_if_rebooted`` runs a command in a mount namespace
with another boot id bound over /proc/sys/kernel/random/boot_id and a time namespace whose boot clock is shifted back
(util-linux's unshare), the real kernel interfaces the collection reads, no stand-in of ours.
"""

import contextlib
import ctypes
import ctypes.util
import os
import uuid

ADJ_MAXERROR, ADJ_ESTERROR, ADJ_STATUS = 0x0004, 0x0008, 0x0010
STA_UNSYNC = 0x0040
BOOT_ID = '/proc/sys/kernel/random/boot_id'


class _Timex(ctypes.Structure):
    _fields_ = [('modes', ctypes.c_uint), ('offset', ctypes.c_long), ('freq', ctypes.c_long),
                ('maxerror', ctypes.c_long), ('esterror', ctypes.c_long), ('status', ctypes.c_int),
                ('rest', ctypes.c_long * 40)]


def _adjtimex(timex):
    libc = ctypes.CDLL(ctypes.util.find_library('c') or 'libc.so.6', use_errno=True)
    if libc.adjtimex(ctypes.byref(timex)) < 0:
        raise OSError(ctypes.get_errno(), 'adjtimex: %s' % os.strerror(ctypes.get_errno()))
    return timex


def read():
    """(synchronised, status, maxerror) of the kernel's clock."""
    timex = _adjtimex(_Timex())
    return not (timex.status & STA_UNSYNC), timex.status, timex.maxerror


def _set(status, maxerror, esterror=0):
    timex = _Timex()
    timex.modes = ADJ_STATUS | ADJ_MAXERROR | ADJ_ESTERROR
    timex.status, timex.maxerror, timex.esterror = status, maxerror, esterror
    _adjtimex(timex)


@contextlib.contextmanager
def synchronised(flag):
    """The kernel's clock called synchronised (True) or not (False) while the block runs; put back afterwards."""
    dummy, status, maxerror = read()
    try:
        set_synchronised(flag)
        assert read()[0] is flag, 'the kernel did not take its clock status'
        yield
    finally:
        _set(status, maxerror, 16000000 if status & STA_UNSYNC else 0)


def boot_seconds():
    with open('/proc/uptime') as handle:
        return float(handle.read().split()[0])


def as_if_rebooted(argv, directory, up_for=20):
    """``argv`` wrapped so that it runs as on a host booted ``up_for`` seconds ago: a new boot id (a file in
    ``directory`` bound over the kernel's) and the boot clock shifted back to about ``up_for`` seconds."""
    path = os.path.join(directory, 'boot_id-%s' % uuid.uuid4().hex[:8])
    with open(path, 'w') as handle:
        handle.write('%s\n' % uuid.uuid4())
    shift = int(boot_seconds()) - up_for
    return ['unshare', '--mount', '--time', '--boottime', str(-shift), '--fork', '/bin/sh', '-c',
            'mount --bind "$0" %s && exec "$@"' % BOOT_ID, path] + list(argv)


def faketime_env(offset):
    """The environment that makes a process see its wall clock ``offset`` away (libfaketime, e.g. '+10d'), its
    monotonic and boot clocks untouched (as a stepped wall clock leaves them)."""
    import glob
    found = glob.glob('/usr/lib/*/faketime/libfaketimeMT.so.1')
    assert found, 'libfaketime is not installed (tests/testbed/hypervisor.sh installs the faketime package)'
    return {'LD_PRELOAD': found[0], 'FAKETIME': offset, 'FAKETIME_DONT_FAKE_MONOTONIC': '1'}


def set_synchronised(flag):
    """Call the kernel's clock synchronised (True) or not (False) from now on (inside ``synchronised``, which puts
    the flag back at its end)."""
    dummy, status, dummy = read()
    if flag:
        _set(status & ~STA_UNSYNC, 0)
    else:
        _set(status | STA_UNSYNC, 16000000, 16000000)
