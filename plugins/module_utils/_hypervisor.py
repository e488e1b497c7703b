# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The libvirt client: connections, domain snapshots (listing, refresh, look-up), the metadata record write,
the host's identity, defining and undefining. Power actions are in _power.py, networks and storage in _pools.py."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import threading
import xml.etree.ElementTree as ET

try:
    import libvirt
    HAS_LIBVIRT = True
except ImportError:
    libvirt = None
    HAS_LIBVIRT = False

from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

POWER_STATES = {
    0: 'nostate', 1: 'running', 2: 'blocked', 3: 'paused',
    4: 'shutdown', 5: 'shutoff', 6: 'crashed', 7: 'pmsuspended',
}


class HypervisorError(DeferredError):
    """A libvirt failure, worded for the operator."""


def _quiet(_ctx, _err):
    # libvirt-python prints every failed call to stderr; we raise instead.
    return None


# libvirt's default event loop, run in a daemon thread once per process: None (not tried yet), True or False.
_EVENTS = {'running': None}
_EVENTS_LOCK = threading.Lock()


def start_events():
    """Run libvirt's default event loop in a daemon thread (once per process); whether it runs.

    Connections opened after this deliver domain events (a shutdown is seen
    through its STOPPED event, _power.StopWatch). A connection opened before
    it may deliver none: the callers that wait for events poll as well.
    """
    with _EVENTS_LOCK:
        if _EVENTS['running'] is None:
            try:
                libvirt.virEventRegisterDefaultImpl()
                thread = threading.Thread(target=_run_events, name='libvirt-events')
                thread.daemon = True
                thread.start()
                _EVENTS['running'] = True
            except Exception:  # no event loop: every wait polls, as it did before events
                _EVENTS['running'] = False
        return _EVENTS['running']


def events_running():
    """Whether libvirt's event loop runs in this process (start_events)."""
    return bool(_EVENTS['running'])


def _run_events():
    while True:
        if libvirt.virEventRunDefaultImpl() < 0:
            _EVENTS['running'] = False
            return


def open_connection(uri):
    """Open ``uri`` or raise HypervisorError saying why it did not answer."""
    if not HAS_LIBVIRT:
        raise HypervisorError('the libvirt Python bindings are not installed (pip install libvirt-python)')
    libvirt.registerErrorHandler(_quiet, None)
    start_events()  # before the open: only a connection opened after it delivers events
    try:
        return libvirt.open(uri)
    except libvirt.libvirtError as exc:
        raise HypervisorError('cannot connect to the hypervisor at %s: %s' % (uri, exc.get_error_message()))


def error_code(exc):
    return exc.get_error_code() if hasattr(exc, 'get_error_code') else None


class Domain(object):
    """A snapshot of one domain: what libvirt says plus its parsed lifecycle record."""

    def __init__(self, dom, xml, power_state, persistent=True, managed_save=False):
        self.dom = dom
        self.root = ET.fromstring(xml)
        self.name = self.root.findtext('name')
        self.uuid = self.root.findtext('uuid')
        self.power_state = power_state
        self.persistent = persistent
        self.managed_save = managed_save
        self.record = None
        self.metadata_error = None
        try:
            element = _record.find_in_domain_xml(self.name, self.root)
            if element is not None:
                self.record = _record.parse(self.name, element)
        except _record.RecordError as exc:
            self.metadata_error = str(exc)

    @property
    def managed(self):
        return self.record is not None

    @property
    def vcpus(self):
        text = self.root.findtext('vcpu')
        return int(text) if text else None

    @property
    def memory_mb(self):
        node = self.root.find('memory')
        if node is None:
            return None
        factor = {'b': 1.0 / 1048576, 'bytes': 1.0 / 1048576, 'kib': 1.0 / 1024, 'k': 1.0 / 1024,
                  'mib': 1, 'm': 1, 'gib': 1024, 'g': 1024, 'tib': 1048576, 't': 1048576}
        return int(int(node.text) * factor.get((node.get('unit') or 'KiB').lower(), 1.0 / 1024))

    def disks(self):
        """Disks of the persistent definition: target, device, type, path or pool/volume, backing format."""
        found = []
        for disk in self.root.findall('devices/disk'):
            source = disk.find('source')
            target = disk.find('target')
            driver = disk.find('driver')
            item = {
                'target': target.get('dev') if target is not None else None,
                'device': disk.get('device', 'disk'),
                'type': disk.get('type', 'file'),
                'format': driver.get('type') if driver is not None else None,
                'readonly': disk.find('readonly') is not None,
                'shareable': disk.find('shareable') is not None,
                'path': None, 'pool': None, 'volume': None,
            }
            if source is not None:
                item['path'] = source.get('file') or source.get('dev') or source.get('dir')
                item['pool'] = source.get('pool')
                item['volume'] = source.get('volume')
                if item['type'] == 'network':
                    item['path'] = '%s:%s' % (source.get('protocol'), source.get('name'))
            found.append(item)
        return found

    def networks(self):
        return sorted(set(i.find('source').get('network') for i in self.root.findall("devices/interface[@type='network']")
                          if i.find('source') is not None))

    def boot_files(self):
        """Kernel, initrd and loader files the domain needs to start."""
        files = []
        for tag in ('os/kernel', 'os/initrd', 'os/loader'):
            text = self.root.findtext(tag)
            if text:
                files.append(text.strip())
        return files

    def has_nvram(self):
        osnode = self.root.find('os')
        if osnode is None:
            return False
        loader = osnode.find('loader')
        pflash = loader is not None and loader.get('type') == 'pflash'
        return osnode.find('nvram') is not None or osnode.get('firmware') == 'efi' or pflash

    def has_tpm(self):
        return self.root.find('devices/tpm') is not None

    def nvram_file(self):
        """The domain's own NVRAM file (UEFI variables), when its definition names one."""
        text = self.root.findtext('os/nvram')
        return text.strip() if text and text.strip() else None

    def tpm_state(self):
        """Whether the domain has an emulated TPM, whose state libvirt keeps on the host (swtpm), not in a disk."""
        return self.root.find("devices/tpm/backend[@type='emulator']") is not None


def nvram_disk(path):
    """A domain's NVRAM file shaped as a file disk (target and device ``nvram``): vm_info lists it with the disks, and
    the ownership checks read it as one (another domain, or another copy of this one, may name the same file)."""
    return {'target': 'nvram', 'device': 'nvram', 'type': 'file', 'format': 'raw', 'readonly': False,
            'shareable': False, 'path': path, 'pool': None, 'volume': None}


def _list_set(conn, flag):
    try:
        return set(d.UUIDString() for d in conn.listAllDomains(flag))
    except libvirt.libvirtError:
        return set()


def list_domains(conn):
    """Every domain on ``conn`` as Domain snapshots, with a fixed, small number of calls per domain."""
    try:
        stats = conn.getAllDomainStats(libvirt.VIR_DOMAIN_STATS_STATE)
        states = dict((d.UUIDString(), POWER_STATES.get(s.get('state.state'), 'nostate')) for d, s in stats)
        doms = [d for d, dummy in stats]
    except libvirt.libvirtError:
        doms = conn.listAllDomains(0)
        states = dict((d.UUIDString(), POWER_STATES.get(d.state()[0], 'nostate')) for d in doms)
    transient = _list_set(conn, libvirt.VIR_CONNECT_LIST_DOMAINS_TRANSIENT)
    saved = _list_set(conn, libvirt.VIR_CONNECT_LIST_DOMAINS_MANAGEDSAVE)
    found = []
    for dom in doms:
        uuid = dom.UUIDString()
        try:
            xml = dom.XMLDesc(0 if uuid in transient else libvirt.VIR_DOMAIN_XML_INACTIVE)
        except libvirt.libvirtError:
            continue  # undefined while we listed
        found.append(Domain(dom, xml, states.get(uuid, 'nostate'), uuid not in transient, uuid in saved))
    return found


def refresh(conn, dom):
    """A fresh snapshot of one domain (after a change, or under a lock)."""
    try:
        persistent = bool(dom.isPersistent())
        xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE if persistent else 0)
        state = POWER_STATES.get(dom.state()[0], 'nostate')
        saved = bool(dom.hasManagedSaveImage(0)) if persistent else False
    except libvirt.libvirtError as exc:
        if error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise HypervisorError('domain %s: cannot read it from libvirt: %s' % (dom.name(), exc.get_error_message()))
    return Domain(dom, xml, state, persistent, saved)


def reread_stopped(domain, managed_save):
    """``domain`` read again after this run stopped it: None when it no longer exists.

    One call (its definition, which holds the record another writer may have
    changed meanwhile) instead of refresh's four: the power state (shutoff)
    and the managed-save image are what the stop itself established, and a
    domain that is no longer persistent has no inactive definition to read.
    """
    try:
        xml = domain.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
    except libvirt.libvirtError as exc:
        if error_code(exc) in (libvirt.VIR_ERR_NO_DOMAIN, libvirt.VIR_ERR_OPERATION_INVALID):
            return None
        raise HypervisorError('domain %s: cannot read it from libvirt: %s' % (domain.name, exc.get_error_message()))
    return Domain(domain.dom, xml, 'shutoff', True, managed_save)


def lookup(conn, uuid):
    """Look a domain up by UUID; None when it no longer exists."""
    try:
        return conn.lookupByUUIDString(uuid)
    except libvirt.libvirtError as exc:
        if error_code(exc) == libvirt.VIR_ERR_NO_DOMAIN:
            return None
        raise HypervisorError('cannot look up domain %s: %s' % (uuid, exc.get_error_message()))


# Host identity per connection URI: it does not change while a module runs.
_HOSTS = {}


def host_identity(conn):
    """{'uuid', 'hostname'} of the hypervisor behind ``conn``: the host UUID of its capabilities (libvirtd.conf's
    host_uuid, else the SMBIOS one), else the system UUID of its sysinfo, else None; and its hostname."""
    key = conn.getURI()
    if key in _HOSTS:
        return dict(_HOSTS[key])
    uuid = None
    try:
        uuid = ET.fromstring(conn.getCapabilities()).findtext('host/uuid')
    except (libvirt.libvirtError, ET.ParseError):
        pass
    if not uuid:
        try:
            uuid = ET.fromstring(conn.getSysinfo(0)).findtext("system/entry[@name='uuid']")
        except (libvirt.libvirtError, ET.ParseError):
            pass
    try:
        hostname = conn.getHostname()
    except libvirt.libvirtError as exc:
        raise HypervisorError('cannot read the hypervisor\'s hostname: %s' % exc.get_error_message())
    _HOSTS[key] = {'uuid': uuid.strip().lower() if uuid and uuid.strip() else None, 'hostname': hostname}
    return dict(_HOSTS[key])


def write_record(domain, record, keep_host=False):
    """Store ``record`` in the persistent definition (and the live one while it runs).

    Every write names this hypervisor in ``host`` and moves ``generation`` one
    past the stored record's (both set in ``record`` itself), so two copies of
    one domain on two hosts can be told apart. ``keep_host``: the stored
    record's host stays, for a write that must not claim the domain for this
    hypervisor (an attribute change on a stale copy, rule 9).
    """
    _record.stamp(record, domain.record, host_identity(domain.dom.connect()), keep_host=keep_host)
    text = _record.serialize(record)
    flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
    try:
        if domain.dom.isActive():
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        domain.dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, _record.PREFIX, _record.NAMESPACE, flags)
    except libvirt.libvirtError as exc:
        if flags & libvirt.VIR_DOMAIN_AFFECT_LIVE:
            try:
                # The guest may have stopped between the check and the write.
                domain.dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, _record.PREFIX, _record.NAMESPACE,
                                       libvirt.VIR_DOMAIN_AFFECT_CONFIG)
                domain.record = record
                return
            except libvirt.libvirtError as exc2:
                exc = exc2
        raise HypervisorError('domain %s: cannot write the lifecycle record: %s' % (domain.name, exc.get_error_message()))
    domain.record = record


def call(what, name, fn, *args):
    try:
        return fn(*args)
    except libvirt.libvirtError as exc:
        raise HypervisorError('domain %s: %s failed: %s' % (name, what, exc.get_error_message()))


def live_domain(dom):
    """The running definition of an active domain (it may hold disks hot-plugged without --config), else None."""
    try:
        if not dom.isActive():
            return None
        return Domain(dom, dom.XMLDesc(0), 'running')
    except libvirt.libvirtError:
        return None


def running_domains(conn):
    """Every active domain with its running definition (what its QEMU has open); [] when libvirt cannot list them."""
    try:
        doms = conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
    except libvirt.libvirtError:
        return []
    return [d for d in (live_domain(dom) for dom in doms) if d is not None]


def listed_uuids(conn):
    """The UUIDs of every domain libvirt knows now."""
    try:
        return set(d.UUIDString() for d in conn.listAllDomains(0))
    except libvirt.libvirtError as exc:
        raise HypervisorError('cannot list domains: %s' % exc.get_error_message())


def definition(domain):
    """The persistent definition of ``domain`` with everything in it (secrets, metadata), to define it elsewhere."""
    try:
        return domain.dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE | libvirt.VIR_DOMAIN_XML_SECURE)
    except libvirt.libvirtError as exc:
        raise HypervisorError('domain %s: cannot read its definition: %s' % (domain.name, exc.get_error_message()))


def define(conn, xml):
    try:
        return conn.defineXML(xml)
    except libvirt.libvirtError as exc:
        raise HypervisorError('cannot define the domain here: %s' % exc.get_error_message())


def undefine_moved_flags(domain):
    """The flags that undefine a domain defined on another host now: its NVRAM file and its TPM state stay (the new
    host boots with them), only the snapshot metadata and saved memory, which cannot come along, go."""
    flags = libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA | getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_KEEP_NVRAM', 0)
    flags |= getattr(libvirt, 'VIR_DOMAIN_UNDEFINE_KEEP_TPM', 0)
    if domain.managed_save:
        flags |= libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
    return flags


def undefine_moved(domain):
    """Undefine a domain that was defined on another host: its NVRAM file and TPM state stay (they may be shared)."""
    call('undefine after the move', domain.name, domain.dom.undefineFlags, undefine_moved_flags(domain))


def undefine_flags(domain, keep_nvram=False, keep_tpm=False):
    """The undefine flags this domain needs, built from libvirt's constants.

    ``keep_nvram``/``keep_tpm``: the NVRAM file or the TPM state stays (another domain, or another copy of this one,
    may still use it), else libvirt deletes it with the definition.
    """
    flags = 0
    names = []
    if domain.managed_save:
        names.append('VIR_DOMAIN_UNDEFINE_MANAGED_SAVE')
    try:
        if domain.dom.snapshotNum(0) > 0:
            names.append('VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA')
    except libvirt.libvirtError:
        pass
    try:
        if hasattr(domain.dom, 'listAllCheckpoints') and domain.dom.listAllCheckpoints(0):
            names.append('VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA')
    except libvirt.libvirtError:
        pass
    if domain.has_nvram():
        names.append('VIR_DOMAIN_UNDEFINE_KEEP_NVRAM' if keep_nvram else 'VIR_DOMAIN_UNDEFINE_NVRAM')
    if domain.has_tpm():
        names.append('VIR_DOMAIN_UNDEFINE_KEEP_TPM' if keep_tpm else 'VIR_DOMAIN_UNDEFINE_TPM')
    for name in names:
        flags |= getattr(libvirt, name, 0)
    return flags, [n for n in names if hasattr(libvirt, n)]


def undefine(domain, keep_nvram=False, keep_tpm=False):
    """Undefine with every flag the domain needs; drop only flags the hypervisor rejects as unsupported.

    Returns the flag names finally used.
    """
    flags, names = undefine_flags(domain, keep_nvram, keep_tpm)
    while True:
        try:
            domain.dom.undefineFlags(flags)
            return names
        except libvirt.libvirtError as exc:
            code = error_code(exc)
            if code == libvirt.VIR_ERR_NO_DOMAIN:
                return names
            if code in (libvirt.VIR_ERR_INVALID_ARG, libvirt.VIR_ERR_NO_SUPPORT, libvirt.VIR_ERR_ARGUMENT_UNSUPPORTED) and names:
                # Optional extras (checkpoints, TPM) first; managed save and snapshots are what most drivers know.
                dropped = names.pop()
                flags &= ~getattr(libvirt, dropped)
                continue
            raise HypervisorError('domain %s: undefine failed: %s' % (domain.name, exc.get_error_message()))
