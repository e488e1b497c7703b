# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Real QEMU/TCG test guests for integration tests, the demo and benchmarks.

The guests have no disk to boot: Debian's cloud kernel plus a busybox
initramfs (see build_guest.sh). They print a ready line and then their
uptime every second on the serial console, which is a file on the host.
"""

import json
import os
import re
import subprocess
import time
from xml.sax.saxutils import escape, quoteattr

import libvirt

TESTBED_DIR = os.environ.get("DEFERRED_TESTBED_DIR", "/var/lib/deferred-libvirt-testbed")
GUEST_DIR = os.path.join(TESTBED_DIR, "guest")
CONSOLE_DIR = os.path.join(TESTBED_DIR, "console")
SCRIPT_DIR = os.path.dirname(os.path.abspath(__file__))
URI = "qemu:///system"

READY_LINE = "DEFERRED-GUEST-READY"
CMDLINE = "console=ttyS0 quiet panic=-1"
KINDS = ("acpi", "noacpi", "bios")

# Debian's ovmf; the non-secure-boot build runs on the default i440fx machine.
OVMF_CODE = "/usr/share/OVMF/OVMF_CODE_4M.fd"
OVMF_VARS = "/usr/share/OVMF/OVMF_VARS_4M.fd"
NVRAM_DIR = "/var/lib/libvirt/qemu/nvram"

UNDEFINE_FLAGS = (
    libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA
    | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM
    | libvirt.VIR_DOMAIN_UNDEFINE_TPM
)

_UPTIME_RE = re.compile(r"^uptime (\d+(?:\.\d+)?)\s*$", re.M)


def _quiet_errors(_ctx, _err):
    """libvirt-python prints every failed call to stderr; the exception is enough."""


def connect(uri=URI):
    """Open a connection with libvirt's stderr error printing silenced."""
    libvirt.registerErrorHandler(_quiet_errors, None)
    return libvirt.open(uri)


def ensure_testbed():
    """Start the hypervisor and build the guest files (both idempotent)."""
    subprocess.run(["bash", os.path.join(SCRIPT_DIR, "hypervisor.sh"), "up"], check=True)
    subprocess.run(["bash", os.path.join(SCRIPT_DIR, "build_guest.sh")], check=True)


def console_log(name):
    return os.path.join(CONSOLE_DIR, f"{name}.log")


def nvram_path(name):
    return os.path.join(NVRAM_DIR, f"{name}_VARS.fd")


# An emulated TPM 2.0 (swtpm): libvirt keeps its state on the host, in a directory named after the domain's UUID,
# made when the domain first starts and deleted by an undefine with VIR_DOMAIN_UNDEFINE_TPM.
TPM_XML = "<tpm model='tpm-crb'><backend type='emulator' version='2.0'/></tpm>"


def tpm_state_dir(uuid, lib_dir="/var/lib/libvirt"):
    """The TPM state of the domain ``uuid`` on a host whose /var/lib/libvirt is ``lib_dir`` (a fleet host's is
    FLEET_DIR/HOST/lib seen from the machine)."""
    return os.path.join(lib_dir, "swtpm", uuid)


def _disk_xml(disk):
    target = disk.get("target", "vdb")
    fmt = disk.get("format", "qcow2")
    kind = disk.get("type", "file")
    if kind == "file":
        source = f"<source file={quoteattr(disk['path'])}/>"
    elif kind == "volume":
        source = (
            f"<source pool={quoteattr(disk.get('pool', 'default'))}"
            f" volume={quoteattr(disk['volume'])}/>"
        )
    else:
        raise ValueError(f"unsupported disk type {kind!r}")
    return (
        f"<disk type='{kind}' device='disk'>"
        f"<driver name='qemu' type={quoteattr(fmt)}/>"
        f"{source}"
        f"<target dev={quoteattr(target)} bus='virtio'/>"
        f"</disk>"
    )


def _interface_xml(network):
    return (
        "<interface type='network'>"
        f"<source network={quoteattr(network)}/>"
        "<model type='virtio'/>"
        "</interface>"
    )


def guest_xml(name, kind="acpi", memory_mb=None, vcpus=1, disks=(), interfaces=(),
              kernel=None, initrd=None, nvram=False, extra_devices="", tpm=False):
    """Domain XML for a TCG guest.

    kind: 'acpi' powers off on the ACPI power button, 'noacpi' ignores it
    (no acpid), 'bios' has no kernel at all and sits in the BIOS, ignoring
    ACPI too and never printing the ready line. nvram=True boots through
    OVMF (UEFI) with a per-domain NVRAM file; undefine it with
    VIR_DOMAIN_UNDEFINE_NVRAM. nvram='/some/path' does the same with the
    NVRAM file at that path (on shared storage, say) instead. tpm=True adds
    an emulated TPM 2.0 (TPM_XML), whose state libvirt keeps in
    tpm_state_dir(uuid).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    if memory_mb is None:
        # OVMF faults while loading the kernel with 128 MiB; 256 MiB boots.
        memory_mb = 256 if nvram else 128
    if memory_mb < 128:
        raise ValueError("the guest kernel does not boot with less than 128 MiB")
    os_parts = ["<type arch='x86_64'>hvm</type>"]
    if nvram:
        os_parts.append(f"<loader readonly='yes' type='pflash'>{OVMF_CODE}</loader>")
        path = nvram if isinstance(nvram, str) else nvram_path(name)
        os_parts.append(f"<nvram template='{OVMF_VARS}'>{escape(path)}</nvram>")
    if kind == "bios":
        os_parts.append("<boot dev='hd'/>")
    else:
        kernel = kernel or os.path.join(GUEST_DIR, "vmlinuz")
        initrd = initrd or os.path.join(GUEST_DIR, f"initrd-{kind}.img")
        os_parts.append(f"<kernel>{escape(kernel)}</kernel>")
        os_parts.append(f"<initrd>{escape(initrd)}</initrd>")
        os_parts.append(f"<cmdline>{CMDLINE}</cmdline>")
    log = quoteattr(console_log(name))
    devices = "".join(_disk_xml(d) for d in disks)
    devices += "".join(_interface_xml(n) for n in interfaces)
    if tpm:
        devices += TPM_XML
    return f"""<domain type='qemu'>
  <name>{escape(name)}</name>
  <memory unit='MiB'>{int(memory_mb)}</memory>
  <vcpu>{int(vcpus)}</vcpu>
  <os>
    {''.join(os_parts)}
  </os>
  <features><acpi/></features>
  <on_poweroff>destroy</on_poweroff>
  <on_reboot>restart</on_reboot>
  <on_crash>destroy</on_crash>
  <devices>
    <serial type='file'>
      <source path={log} append='off'/>
      <target port='0'/>
    </serial>
    <console type='file'>
      <source path={log} append='off'/>
      <target type='serial' port='0'/>
    </console>
    <memballoon model='none'/>
    {devices}
    {extra_devices}
  </devices>
</domain>
"""


def define_guest(conn, name, kind="acpi", start=True, wait_ready=None, **kw):
    """Define (and by default start) a guest; wait for its ready line.

    wait_ready defaults to True for kernel guests and False for 'bios',
    which never prints one.
    """
    os.makedirs(CONSOLE_DIR, exist_ok=True)
    dom = conn.defineXML(guest_xml(name, kind=kind, **kw))
    if wait_ready is None:
        wait_ready = kind != "bios"
    if start:
        dom.create()
        if wait_ready:
            _wait_ready(name)
    return dom


def _read_log(name):
    try:
        with open(console_log(name), "r", errors="replace") as f:
            return f.read()
    except FileNotFoundError:
        return ""


def wait_ready(name, timeout=60, count=1):
    """Wait until the console log shows the ready line `count` times.

    The log is truncated whenever a QEMU process starts, a restore from a
    managed save included (a restored guest prints no new ready line, only
    uptime lines that carry on from before the save). A reset or reboot
    inside the same QEMU process appends, so pass count=2 to wait for the
    rebooted guest. Returns the seconds waited.
    """
    t0 = time.monotonic()
    deadline = t0 + timeout
    while True:
        if _read_log(name).count(READY_LINE) >= count:
            return time.monotonic() - t0
        if time.monotonic() >= deadline:
            tail = _read_log(name)[-500:]
            raise TimeoutError(
                f"guest {name} not ready after {timeout}s; console tail: {tail!r}"
            )
        time.sleep(0.1)


_wait_ready = wait_ready  # define_guest's argument shadows the name


def uptime_seen(name):
    """Last uptime (seconds, float) the guest printed, or None."""
    values = _UPTIME_RE.findall(_read_log(name))
    return float(values[-1]) if values else None


def destroy_all(conn, prefix):
    """Destroy and undefine every domain whose name starts with prefix."""
    removed = []
    for dom in conn.listAllDomains():
        name = dom.name()
        if not name.startswith(prefix):
            continue
        try:
            if dom.isActive():
                dom.destroy()
        except libvirt.libvirtError:
            pass
        try:
            dom.undefineFlags(UNDEFINE_FLAGS)
        except libvirt.libvirtError:
            # A transient domain is already gone after destroy.
            if _exists(conn, name):
                raise
        try:
            os.unlink(console_log(name))
        except FileNotFoundError:
            pass
        removed.append(name)
    return removed


def _exists(conn, name):
    try:
        conn.lookupByName(name)
        return True
    except libvirt.libvirtError:
        return False


def make_disk(path, size="16M", fmt="qcow2", backing=None):
    """Create an image file with qemu-img; returns its path."""
    cmd = ["qemu-img", "create", "-q", "-f", fmt]
    if backing:
        info = json.loads(subprocess.run(
            ["qemu-img", "info", "--output=json", backing],
            check=True, capture_output=True, text=True).stdout)
        cmd += ["-b", os.path.abspath(backing), "-F", info["format"]]
    cmd += [path]
    if size is not None:
        cmd.append(str(size))
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return path


def make_pool_volume(conn, pool="default", name=None, size_mb=16, fmt="qcow2"):
    """Create a volume in a storage pool; returns the virStorageVol."""
    if not name:
        raise ValueError("name is required")
    p = conn.storagePoolLookupByName(pool)
    xml = f"""<volume>
  <name>{escape(name)}</name>
  <capacity unit='MiB'>{int(size_mb)}</capacity>
  <target><format type={quoteattr(fmt)}/></target>
</volume>"""
    return p.createXML(xml, 0)
