# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Helpers for integration tests against the test bed's Cinder.

Start it first with ``tests/testbed/cinder.sh up``; it writes the clouds.yaml
used here. Every function takes an optional ``conn``; without one a shared
connection to the ``testbed`` cloud is used.
"""

import os
import time

import openstack
import openstack.config
from openstack import exceptions

CLOUDS_YAML = '/var/lib/deferred-libvirt-testbed/clouds.yaml'
CLOUD = 'testbed'

# What os-brick reports for a libvirt/KVM host, as Nova sends it; the fake
# driver sits on the LVM/iSCSI one, which refuses a connector with no
# initiator.
DEFAULT_CONNECTOR = {
    'initiator': 'iqn.1993-08.org.debian:01:deferred-libvirt-testbed',
    'platform': 'x86_64',
    'os_type': 'linux',
    'ip': '127.0.0.1',
    'host': 'deferred-libvirt-testbed',
    'multipath': False,
    'do_local_attach': False,
    'system uuid': '00000000-0000-0000-0000-000000000000',
}

_shared = None


def connect(cloud=CLOUD, config_file=None):
    """A new openstacksdk Connection to the test bed's Cinder."""
    path = (config_file or os.environ.get('OS_CLIENT_CONFIG_FILE')
            or CLOUDS_YAML)
    config = openstack.config.OpenStackConfig(config_files=[path])
    return openstack.connection.Connection(
        config=config.get_one(cloud=cloud))


def _bs(conn):
    global _shared
    if conn is None:
        if _shared is None:
            _shared = connect()
        conn = _shared
    return conn.block_storage


def create_volume(name, size=1, conn=None, timeout=60, **attrs):
    """Create a volume and wait until it is ``available``."""
    bs = _bs(conn)
    volume = bs.create_volume(name=name, size=size, **attrs)
    return bs.wait_for_status(volume, status='available',
                              failures=['error'], interval=0.2, wait=timeout)


def attach_like_nova(volume_id, server_uuid, mountpoint='/dev/vdb',
                     connector=None, conn=None):
    """Attach a volume to a server the way Nova does (attachments API).

    create (reserves the volume for the instance), update with the host's
    connector (exports it, returns connection_info), complete (volume
    ``in-use``). Returns the updated attachment.
    """
    bs = _bs(conn)
    attachment = bs.create_attachment(volume_id, instance=server_uuid)
    connector = dict(connector or DEFAULT_CONNECTOR)
    connector.setdefault('mountpoint', mountpoint)
    try:
        attachment = bs.update_attachment(attachment.id, connector=connector)
        bs.complete_attachment(attachment.id)
    except Exception:
        bs.delete_attachment(attachment.id, ignore_missing=True)
        raise
    return attachment


def attachments_for(server_uuid, conn=None):
    """The attachments (with details) whose instance is ``server_uuid``."""
    bs = _bs(conn)
    return [a for a in bs.attachments(instance_id=server_uuid)
            if a.instance == server_uuid]


def detach(attachment_id, conn=None):
    """Delete an attachment; the volume goes back to ``available``."""
    _bs(conn).delete_attachment(attachment_id, ignore_missing=True)


def volume_status(volume_id, conn=None):
    """The volume's status, or None when it does not exist."""
    try:
        return _bs(conn).get_volume(volume_id).status
    except exceptions.NotFoundException:
        return None


def wait_for_volume_status(volume_id, status, conn=None, timeout=60):
    """Wait until the volume has ``status``; returns the volume."""
    bs = _bs(conn)
    return bs.wait_for_status(bs.get_volume(volume_id), status=status,
                              failures=['error', 'error_deleting'],
                              interval=0.2, wait=timeout)


def delete_volume(volume_id, conn=None, wait=True, timeout=60, force=False):
    """Delete a volume (no-op when gone), by default waiting until it is."""
    bs = _bs(conn)
    try:
        volume = bs.get_volume(volume_id)
    except exceptions.NotFoundException:
        return
    bs.delete_volume(volume, ignore_missing=True, force=force)
    if wait:
        bs.wait_for_delete(volume, interval=0.2, wait=timeout)


def cleanup(prefix, conn=None, timeout=60):
    """Detach and delete every volume whose name starts with ``prefix``.

    Volumes stuck in a transitional state (a test stopped Cinder
    mid-operation) are reset first. Returns the ids deleted.
    """
    bs = _bs(conn)
    volumes = [v for v in bs.volumes(details=True)
               if (v.name or '').startswith(prefix)]
    for volume in volumes:
        for attachment in bs.attachments(volume_id=volume.id):
            bs.delete_attachment(attachment.id, ignore_missing=True)
    for volume in volumes:
        try:
            volume = bs.get_volume(volume.id)
        except exceptions.NotFoundException:
            continue
        if volume.status not in ('available', 'error', 'in-use',
                                 'error_deleting', 'deleting'):
            bs.reset_volume_status(volume, status='error',
                                   attach_status=None, migration_status=None)
        if volume.status != 'deleting':
            bs.delete_volume(volume, ignore_missing=True, force=True)
    deadline = time.time() + timeout
    for volume in volumes:
        bs.wait_for_delete(volume, interval=0.2,
                           wait=max(1, int(deadline - time.time())))
    return [v.id for v in volumes]
