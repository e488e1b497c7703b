# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The floor of the scale benchmark: a plain libvirt-python loop doing the sweep's reads, and its reclaim.

Usage: python floor.py read|check|real PREFIX [URI]

Per domain, the reads vm_info needs: state, persistence, managed save and
the inactive XML (size, disks and the lifecycle record, parsed). check also
finds the soft-deleted domains whose reclaim_at has passed; real destroys
those whose name starts with PREFIX, deletes their pool volumes and
undefines them. Nothing else: no lock, no tombstone, no journal, no check
that a disk is shared, no Cinder. Prints one JSON line.
"""

import json
import sys
import time
import xml.etree.ElementTree as ET

import libvirt

NS = 'urn:deferred-libvirt:lifecycle:1'
UNDEFINE = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
            | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM | libvirt.VIR_DOMAIN_UNDEFINE_CHECKPOINTS_METADATA)


def main():
    mode, prefix = sys.argv[1], sys.argv[2]
    uri = sys.argv[3] if len(sys.argv) > 3 else 'qemu:///system'
    libvirt.registerErrorHandler(lambda _c, _e: None, None)
    conn = libvirt.open(uri)
    now = time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())
    seen, due, reclaimed = 0, [], 0
    for dom in conn.listAllDomains():
        try:
            state = dom.info()[0]
            dom.isPersistent()
            dom.hasManagedSaveImage(0)
            root = ET.fromstring(dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE))
        except libvirt.libvirtError:
            continue  # other users' domains come and go
        seen += 1
        record = root.find('metadata/{%s}lifecycle' % NS)
        if mode == 'read' or record is None:
            continue
        if record.findtext('{%s}vm_state' % NS) != 'soft_deleted':
            continue
        if (record.findtext('{%s}reclaim_at' % NS) or '9') >= now:
            continue
        name = root.findtext('name')
        due.append(name)
        if mode != 'real' or not name.startswith(prefix):
            continue
        if state in (libvirt.VIR_DOMAIN_RUNNING, libvirt.VIR_DOMAIN_PAUSED):
            dom.destroy()
        for source in root.findall('devices/disk/source'):
            if source.get('pool') and source.get('volume'):
                conn.storagePoolLookupByName(source.get('pool')).storageVolLookupByName(source.get('volume')).delete(0)
            elif source.get('file'):
                conn.storageVolLookupByPath(source.get('file')).delete(0)
        dom.undefineFlags(UNDEFINE)
        reclaimed += 1
    print(json.dumps({'domains': seen, 'due': len(due), 'reclaimed': reclaimed}))


if __name__ == '__main__':
    main()
