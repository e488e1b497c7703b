# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything that talks to Cinder: find a server's attachments, detach, delete volumes marked delete_on_termination.

Nova's _cleanup_volumes order: detach every volume (attachment delete, or the
legacy detach for volumes attached before the attachments API), then delete
those marked delete_on_termination and wait until they are gone. Whatever
cannot be done now is returned as pending, never dropped (spec rule 5).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import time

try:
    import openstack
    import openstack.exceptions
    HAS_OPENSTACKSDK = True
except ImportError:
    openstack = None
    HAS_OPENSTACKSDK = False

DEFAULT_WAIT = 120


class CinderUnavailable(Exception):
    """Cinder cannot be reached or configured; the work stays pending."""


def configured(params):
    return bool(params.get('cloud') or params.get('auth'))


def connect(params):
    """An openstacksdk connection from the module's openstack options (the same names as openstack.cloud)."""
    if not HAS_OPENSTACKSDK:
        raise CinderUnavailable('openstacksdk is not installed (pip install openstacksdk)')
    cloud = params.get('cloud')
    kwargs = {}
    if isinstance(cloud, dict):
        kwargs.update(cloud)
    elif cloud:
        kwargs['cloud'] = cloud
    for option, key in (('auth', 'auth'), ('auth_type', 'auth_type'), ('region_name', 'region_name'),
                        ('interface', 'interface'), ('validate_certs', 'verify'), ('ca_cert', 'cacert'),
                        ('api_timeout', 'api_timeout')):
        if params.get(option) is not None:
            kwargs[key] = params[option]
    try:
        return openstack.connect(**kwargs)
    except Exception as exc:  # openstacksdk raises many kinds for bad config
        raise CinderUnavailable('cannot configure the Cinder connection: %s' % _safe(exc))


def _safe(exc):
    """An error text without anything that could carry a token (headers, URLs with credentials)."""
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    return text[:300]


def _not_found(exc):
    return HAS_OPENSTACKSDK and isinstance(exc, openstack.exceptions.ResourceNotFound)


def server_attachments(conn, server_uuid):
    """Cinder's attachments of ``server_uuid``: {volume_id: [attachment_id, ...]}."""
    try:
        found = {}
        for att in conn.block_storage.attachments(instance_id=server_uuid):
            found.setdefault(att.volume_id, []).append(att.id)
        return found
    except Exception as exc:
        raise CinderUnavailable('cannot list Cinder attachments of %s: %s' % (server_uuid, _safe(exc)))


def settle(conn, server_uuid, volumes, wait_timeout=DEFAULT_WAIT):
    """Detach ``volumes`` from ``server_uuid`` and delete those marked delete_on_termination.

    ``volumes`` are dicts with id and delete_on_termination (the record's list
    and whatever Cinder says is attached). Returns (done, pending): done items
    say what happened to each volume, pending ones carry the error. Raises
    CinderUnavailable when Cinder cannot even list the attachments.
    """
    attached = server_attachments(conn, server_uuid)
    known = set(v['id'] for v in volumes)
    volumes = list(volumes) + [{'id': vid, 'target': None, 'delete_on_termination': False, 'discovered': True}
                               for vid in sorted(attached) if vid not in known]
    done, pending = [], []
    for vol in volumes:
        try:
            outcome = _settle_one(conn, server_uuid, vol, attached.get(vol['id'], []), wait_timeout)
            done.append(dict(vol, **outcome))
        except Exception as exc:
            pending.append(dict(vol, error='volume %s: %s' % (vol['id'], _safe(exc))))
    return done, pending


def _settle_one(conn, server_uuid, vol, attachment_ids, wait_timeout):
    bs = conn.block_storage
    outcome = {'detached': False, 'deleted': False, 'kept': False, 'missing': False}
    for att_id in attachment_ids:
        try:
            bs.delete_attachment(att_id)
            outcome['detached'] = True
        except Exception as exc:
            if not _not_found(exc):
                raise
    try:
        volume = bs.get_volume(vol['id'])
    except Exception as exc:
        if _not_found(exc):
            outcome['missing'] = True
            outcome['deleted'] = bool(vol.get('delete_on_termination'))
            return outcome
        raise
    # Volumes attached before the attachments API know the server only in their own attachments list.
    for legacy in volume.attachments or []:
        if legacy.get('server_id') == server_uuid and legacy.get('attachment_id') not in attachment_ids:
            bs.detach_volume(volume, legacy.get('attachment_id'))
            outcome['detached'] = True
    if not vol.get('delete_on_termination'):
        outcome['kept'] = True
        return outcome
    volume = _wait_not_busy(bs, volume, wait_timeout)
    try:
        bs.delete_volume(volume)
    except Exception as exc:
        if not _not_found(exc):
            raise
    bs.wait_for_delete(volume, interval=0.5, wait=wait_timeout)
    outcome['deleted'] = True
    return outcome


def _wait_not_busy(bs, volume, wait_timeout):
    """Wait until a detach has brought the volume out of in-use/detaching, so Cinder accepts the delete."""
    deadline = time.monotonic() + wait_timeout
    while volume.status in ('in-use', 'detaching', 'attaching', 'reserved') and time.monotonic() < deadline:
        time.sleep(0.3)
        volume = bs.get_volume(volume.id)
    return volume
