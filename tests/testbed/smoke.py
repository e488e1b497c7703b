# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Smoke check of the real test bed: an ACPI guest honours shutdown, a
guest without acpid ignores it. Exits non-zero on failure."""

import sys
import time

import libvirt

import guests

PREFIX = "deferred-smoke-"
ACPI_LIMIT = 15.0  # seconds from first shutdown() to shut off
NOACPI_HOLD = 10.0  # seconds the noacpi guest must keep running


def main():
    t = time.monotonic()
    guests.ensure_testbed()
    print(f"testbed up: {time.monotonic() - t:.2f}s")
    conn = guests.connect()
    guests.destroy_all(conn, PREFIX)
    ok = True
    try:
        doms, started = {}, {}
        for kind in ("acpi", "noacpi"):
            name = PREFIX + kind
            t = time.monotonic()
            doms[kind] = guests.define_guest(conn, name, kind=kind, wait_ready=False)
            started[kind] = time.monotonic()
            print(f"{kind}: define+start {started[kind] - t:.2f}s")
        for kind in doms:
            guests.wait_ready(PREFIX + kind)
            print(f"{kind}: ready {time.monotonic() - started[kind]:.2f}s after start")

        t0 = time.monotonic()
        # A shutdown sent before acpid runs is lost, so re-send every second.
        acpi_off = None
        last_sent = {}
        while time.monotonic() - t0 < NOACPI_HOLD:
            now = time.monotonic()
            for kind, dom in doms.items():
                if kind == "acpi" and acpi_off is not None:
                    continue
                if now - last_sent.get(kind, -1e9) >= 1.0:
                    try:
                        dom.shutdown()
                        last_sent[kind] = now
                    except libvirt.libvirtError:
                        pass
            if acpi_off is None and doms["acpi"].state()[0] == libvirt.VIR_DOMAIN_SHUTOFF:
                acpi_off = time.monotonic() - t0
                print(f"acpi: shut off {acpi_off:.2f}s after the first shutdown()")
            if doms["noacpi"].state()[0] != libvirt.VIR_DOMAIN_RUNNING:
                print("noacpi: FAILED, left running state", doms["noacpi"].state())
                ok = False
                break
            time.sleep(0.1)

        if acpi_off is None or acpi_off > ACPI_LIMIT:
            print(f"acpi: FAILED, not shut off within {NOACPI_HOLD:.0f}s")
            ok = False
        if ok:
            up = guests.uptime_seen(PREFIX + "noacpi")
            print(f"noacpi: still running after {NOACPI_HOLD:.0f}s of shutdown() calls, "
                  f"guest uptime {up}")
            if up is None or up < NOACPI_HOLD:
                print("noacpi: FAILED, uptime lines missing or too low")
                ok = False
    finally:
        t = time.monotonic()
        removed = guests.destroy_all(conn, PREFIX)
        print(f"cleanup of {len(removed)} domains: {time.monotonic() - t:.2f}s")
        conn.close()
    print("smoke: OK" if ok else "smoke: FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
