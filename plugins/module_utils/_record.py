# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The lifecycle record: one XML element in the domain's persistent libvirt metadata.

It is written with virDomainSetMetadata under NAMESPACE, so ``virsh metadata
DOMAIN --uri NAMESPACE`` shows it and it travels with the domain. Parsing is
strict: anything a hand edit can break raises RecordError naming the domain
and the field, never a traceback.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import datetime
import re
import xml.etree.ElementTree as ET

from ansible_collections.deferred.libvirt.plugins.module_utils._states import VM_STATES, TASK_STATES
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import MAX_SECONDS
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

NAMESPACE_BASE = 'urn:deferred-libvirt:lifecycle:'
NAMESPACE = NAMESPACE_BASE + '1'
PREFIX = 'deferred'
ELEMENT = 'lifecycle'
VERSION = '1'
HISTORY_KEEP = 20

# Fields kept in the record, with their type; the order is the XML order.
FIELDS = (
    ('vm_state', 'str'),
    ('task_state', 'str'),
    ('deleted_at', 'time'),
    ('reclaim_at', 'time'),
    ('soft_delete_mode', 'str'),
    ('project', 'str'),
    ('user', 'str'),
    ('locked', 'bool'),
    ('lock_reason', 'str'),
    ('protected', 'bool'),
    ('reclaim_interval', 'int'),
    ('shutdown_timeout', 'int'),
    ('generation', 'int'),
)
SOFT_DELETE_MODES = ('shutdown', 'managed_save')
VOLUME_ATTRS = ('id', 'target', 'delete_on_termination')
HISTORY_ATTRS = ('action', 'request_id', 'start', 'finish', 'result', 'message', 'actor')
UUIDISH = re.compile(r'^[0-9a-fA-F-]{1,64}$')
# The hypervisor that last wrote the record: libvirt's host UUID (absent where libvirt knows none) and hostname.
HOST_ATTRS = ('uuid', 'hostname')
_HOST_UUID = re.compile(r'^[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}$')
_HOSTNAME = re.compile(r'^[A-Za-z0-9_]([A-Za-z0-9._-]{0,252}[A-Za-z0-9_])?$')
INT_MEANING = {'generation': 'a whole number (the count of writes)'}
# A whole number of seconds as the record stores it: ASCII digits only, never more than a duration may be.
SECONDS = re.compile(r'^[0-9]{1,12}$')


class RecordError(DeferredError, ValueError):
    """A lifecycle record that cannot be read: the message names the domain and what is wrong."""


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0)


def format_time(value):
    """UTC ISO 8601 with a Z, to the second; always four year digits, so parse_time reads it back."""
    if value is None:
        return None
    value = value.astimezone(datetime.timezone.utc)
    # Not strftime('%Y'): it writes year 1 as '1', which is not ISO 8601 and does not read back.
    return '%04d-%02d-%02dT%02d:%02d:%02dZ' % (
        value.year, value.month, value.day, value.hour, value.minute, value.second)


def parse_time(text):
    """Parse ISO 8601 into an aware UTC datetime; raise ValueError on anything else.

    A time whose UTC value falls outside years 1-9999 (year 1 with a positive
    offset, year 9999 with a negative one) is a ValueError too, not an
    OverflowError.
    """
    if not isinstance(text, str):
        raise ValueError('%r is not a time' % (text,))
    text = text.strip()
    if text.endswith('Z') or text.endswith('z'):
        text = text[:-1] + '+00:00'
    try:
        value = datetime.datetime.fromisoformat(text)
        if value.tzinfo is None:
            raise ValueError('%r has no time zone' % text)
        return value.astimezone(datetime.timezone.utc)
    except OverflowError:
        raise ValueError('%r is outside the years 1 to 9999 in UTC' % text)


def empty():
    """A fresh record for a domain that was never managed."""
    record = dict((name, None) for name, dummy in FIELDS)
    record.update(locked=False, protected=False, volumes=[], history=[], host=None)
    return record


def _bool(domain, field, text):
    if text in ('true', '1'):
        return True
    if text in ('false', '0'):
        return False
    raise RecordError('domain %s: lifecycle metadata field %s is %r, not true or false' % (domain, field, text))


def parse(domain, text):
    """Parse the metadata element (text or an ElementTree element) of ``domain`` into a record dict.

    Raises RecordError and nothing else, whatever the element holds: one
    domain's broken record must never stop the listing of the host.
    """
    try:
        return _parse(domain, text)
    except RecordError:
        raise
    except Exception as exc:  # a case the checks below do not name: still this domain's error, not the host's
        raise RecordError('domain %s: lifecycle metadata cannot be read (%s: %s)'
                          % (domain, exc.__class__.__name__, exc))


def _text_of(domain, name, child):
    """The text of a field element; one with child elements is not a value."""
    if len(child):
        raise RecordError('domain %s: lifecycle metadata field %s holds element <%s>, not a value'
                          % (domain, name, child[0].tag.split('}', 1)[-1]))
    return (child.text or '').strip()


def _parse(domain, text):
    if isinstance(text, ET.Element):
        root = text
    else:
        try:
            root = ET.fromstring(text)
        except ET.ParseError as exc:
            raise RecordError('domain %s: lifecycle metadata is not well-formed XML (%s)' % (domain, exc))
    tag = root.tag.split('}', 1)[-1]
    if tag != ELEMENT:
        raise RecordError('domain %s: lifecycle metadata root element is <%s>, expected <%s>' % (domain, tag, ELEMENT))
    version = root.get('version')
    if version != VERSION:
        raise RecordError('domain %s: lifecycle metadata version %r is not supported (this collection reads version %s)'
                          % (domain, version, VERSION))
    record = empty()
    children = {}
    for child in root:
        name = child.tag.split('}', 1)[-1]
        if name in children:
            raise RecordError('domain %s: lifecycle metadata field %s appears twice' % (domain, name))
        children[name] = child
    known = set(name for name, dummy in FIELDS) | set(['volumes', 'history', 'host'])
    unknown = sorted(set(children) - known)
    if unknown:
        raise RecordError('domain %s: lifecycle metadata has unknown field(s) %s' % (domain, ', '.join(unknown)))
    for name, kind in FIELDS:
        if name not in children:
            continue
        value = _text_of(domain, name, children[name])
        if value == '':
            record[name] = False if kind == 'bool' else None
            continue
        if kind == 'bool':
            record[name] = _bool(domain, name, value)
        elif kind == 'int':
            # Digits only (int() takes '+1', ' 1', Arabic-Indic digits, and refuses more than 4300 digits with
            # ValueError); never more than the longest duration the options take.
            if not SECONDS.match(value) or int(value) > MAX_SECONDS:
                raise RecordError('domain %s: lifecycle metadata field %s is %s, not %s from 0 to %d'
                                  % (domain, name, _short(value), INT_MEANING.get(name, 'a whole number of seconds'),
                                     MAX_SECONDS))
            record[name] = int(value)
        elif kind == 'time':
            try:
                record[name] = format_time(parse_time(value))
            except ValueError:
                raise RecordError('domain %s: lifecycle metadata field %s is %s, not a UTC ISO 8601 time '
                                  'between the years 1 and 9999' % (domain, name, _short(value)))
        else:
            record[name] = value
    if record['vm_state'] is not None and record['vm_state'] not in VM_STATES:
        raise RecordError('domain %s: lifecycle metadata vm_state %r is not one of %s'
                          % (domain, record['vm_state'], ', '.join(VM_STATES)))
    if record['task_state'] not in TASK_STATES:
        raise RecordError('domain %s: lifecycle metadata task_state %r is not one of %s'
                          % (domain, record['task_state'], ', '.join(t for t in TASK_STATES if t)))
    if record['soft_delete_mode'] is not None and record['soft_delete_mode'] not in SOFT_DELETE_MODES:
        raise RecordError('domain %s: lifecycle metadata soft_delete_mode %r is not one of %s'
                          % (domain, record['soft_delete_mode'], ', '.join(SOFT_DELETE_MODES)))
    if 'volumes' in children:
        seen = set()
        for item in children['volumes']:
            tag = item.tag.split('}', 1)[-1]
            if tag != 'volume':
                raise RecordError('domain %s: lifecycle metadata field volumes holds <%s>, not <volume>' % (domain, tag))
            vid = item.get('id')
            if not vid or not UUIDISH.match(vid):
                raise RecordError('domain %s: lifecycle metadata has a volume without a valid id (%s)'
                                  % (domain, _short(vid)))
            if vid.lower() in seen:
                raise RecordError('domain %s: lifecycle metadata field volumes lists volume %s twice' % (domain, vid))
            seen.add(vid.lower())
            record['volumes'].append({
                'id': vid,
                # serialize() writes a missing target as target='': read it back as none.
                'target': item.get('target') or None,
                'delete_on_termination': _bool(domain, 'volumes/delete_on_termination',
                                               item.get('delete_on_termination', 'false')),
            })
    if 'host' in children:
        record['host'] = _parse_host(domain, children['host'])
    if 'history' in children:
        for item in children['history']:
            tag = item.tag.split('}', 1)[-1]
            if tag != 'action':
                raise RecordError('domain %s: lifecycle metadata field history holds <%s>, not <action>' % (domain, tag))
            # actor (who ran it) is written since 0.2.0; older entries read back without it.
            record['history'].append(dict((attr, item.get(attr)) for attr in HISTORY_ATTRS
                                          if attr != 'actor' or item.get(attr) is not None))
    return record


def _parse_host(domain, element):
    unknown = sorted(set(element.keys()) - set(HOST_ATTRS))
    if unknown or len(element):
        raise RecordError('domain %s: lifecycle metadata field host has unknown part(s) %s'
                          % (domain, ', '.join(unknown + [c.tag for c in element])))
    uuid = element.get('uuid') or None
    hostname = element.get('hostname')
    if uuid is not None and not _HOST_UUID.match(uuid):
        raise RecordError('domain %s: lifecycle metadata field host/uuid is %r, not a host UUID' % (domain, uuid))
    if not hostname or not _HOSTNAME.match(hostname):
        raise RecordError('domain %s: lifecycle metadata field host/hostname is %r, not a hostname' % (domain, hostname))
    return {'uuid': uuid.lower() if uuid else None, 'hostname': hostname}


def names_host(written_by, me):
    """Whether ``written_by`` (the {uuid, hostname} a record or tombstone names as its writer) is the hypervisor ``me``:
    the same host UUID, or the same full hostname (case ignored, never a short name: hv1.dc1 and hv1.dc2 are two
    hosts). Either is enough: libvirt makes up a new host UUID at every start where the machine has no SMBIOS UUID
    (nor host_uuid in libvirtd.conf), so after a restart of libvirtd only the hostname still ties what the host wrote
    to it; the hypervisors of a fleet have distinct hostnames (docs/lifecycle.md)."""
    written_by, me = written_by or {}, me or {}
    if written_by.get('uuid') and me.get('uuid') and written_by['uuid'].lower() == me['uuid'].lower():
        return True
    theirs, mine = written_by.get('hostname'), me.get('hostname')
    return bool(theirs and mine) and theirs.lower() == mine.lower()


def stamp(record, previous, host, keep_host=False):
    """Mark ``record`` (in place) as written now by ``host``: generation one past the stored one's.

    ``previous`` is the record as stored before this write (None for the first);
    the larger of its generation and ``record``'s own counts, so a caller that
    writes twice from one copy still moves the generation forward each time.
    ``keep_host``: the stored record's host stays (a write that must not claim
    the domain for this host, rule 9).
    """
    before = max((previous or {}).get('generation') or 0, record.get('generation') or 0)
    record['generation'] = before + 1
    if keep_host and (previous or {}).get('host'):
        record['host'] = dict(previous['host'])
    else:
        record['host'] = dict(host) if host else None
    return record


def _short(value, most=40):
    """A value as a message shows it: quoted, and cut when a hand edit made it thousands of characters long."""
    shown = repr(value)
    if len(shown) > most:
        shown = '%s... (%d characters)' % (shown[:most], len(value))
    return shown


def find_in_domain_xml(domain, domain_root):
    """Return the record element inside a parsed domain XML, None when there is none.

    A record under another version of our namespace is an error rather than
    "unmanaged": an older or newer collection manages this domain.
    """
    metadata = domain_root.find('metadata')
    if metadata is None:
        return None
    for child in metadata:
        if not child.tag.startswith('{' + NAMESPACE_BASE):
            continue
        namespace = child.tag[1:].split('}', 1)[0]
        if namespace != NAMESPACE:
            raise RecordError('domain %s: lifecycle metadata is in namespace %s; this collection reads %s'
                              % (domain, namespace, NAMESPACE))
        return child
    return None


def anomalies(record):
    """What is wrong with a well-formed record that makes reclaiming it unsafe (rule 1 of docs/rules.md)."""
    found = []
    if record.get('vm_state') == 'soft_deleted':
        for field in ('deleted_at', 'reclaim_at'):
            if not record.get(field):
                found.append('%s is missing' % field)
        times = {}
        for field in ('deleted_at', 'reclaim_at'):
            if record.get(field):
                try:
                    times[field] = parse_time(record[field])
                except ValueError:
                    found.append('%s is not a time' % field)
        if len(times) == 2 and times['reclaim_at'] < times['deleted_at']:
            found.append('reclaim_at is before deleted_at')
    return found


def serialize(record):
    """The metadata element text for ``record``, without prefix or xmlns (libvirt adds both)."""
    root = ET.Element(ELEMENT, {'version': VERSION})
    for name, kind in FIELDS:
        value = record.get(name)
        child = ET.SubElement(root, name)
        if value is None:
            continue
        if kind == 'bool':
            child.text = 'true' if value else 'false'
        else:
            child.text = str(value)
    volumes = ET.SubElement(root, 'volumes')
    for vol in record.get('volumes') or []:
        ET.SubElement(volumes, 'volume', {
            'id': vol['id'],
            'target': vol.get('target') or '',
            'delete_on_termination': 'true' if vol.get('delete_on_termination') else 'false',
        })
    host = record.get('host')
    if host:
        ET.SubElement(root, 'host', dict((k, host[k]) for k in HOST_ATTRS if host.get(k)))
    history = ET.SubElement(root, 'history')
    for item in (record.get('history') or [])[-HISTORY_KEEP:]:
        ET.SubElement(history, 'action', dict((k, str(v)) for k, v in item.items() if v is not None))
    return ET.tostring(root, encoding='unicode')


def add_history(record, action, request_id, start, result, message=None, actor=None):
    """Append one finished action, keeping the last HISTORY_KEEP; ``actor``: who ran it (the journal's actor)."""
    record = copy.deepcopy(record)
    entry = {'action': action, 'request_id': request_id, 'start': start, 'finish': format_time(utcnow()),
             'result': result, 'message': message}
    if actor:
        entry['actor'] = actor
    record['history'] = (record.get('history') or []) + [entry]
    record['history'] = record['history'][-HISTORY_KEEP:]
    return record
