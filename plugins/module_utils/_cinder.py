# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Everything that talks to Cinder: find a server's attachments, detach, delete volumes marked delete_on_termination.

Nova's _cleanup_volumes order: detach every volume (attachment delete, or the
legacy detach for volumes attached before the attachments API), then delete
those marked delete_on_termination and wait until they are gone. Whatever
cannot be done now is returned as pending, never dropped (rule 5 of docs/rules.md).
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

# openstacksdk takes about half a second to import: only runs that talk to Cinder pay for it (see _sdk).
_SDK = {}

DEFAULT_WAIT = 120
DEFAULT_API_TIMEOUT = 60
# Seconds between looks at a volume being detached or deleted.
POLL = 0.1
# How many volumes of one domain are detached and deleted at once (a guest seldom has more: one wave, so settling
# 16 volumes costs about what the slowest of them costs, where Cinder itself works in parallel).
PARALLEL_VOLUMES = 16
# And how many across the whole run: a sweep settles several domains at once, and must not ask a Cinder API for
# hundreds of volumes at the same moment.
RUN_VOLUMES = 16
_RUN_SLOTS = threading.BoundedSemaphore(RUN_VOLUMES)


class CinderUnavailable(DeferredError):
    """Cinder cannot be reached or configured; the work stays pending."""


class CinderConfigError(CinderUnavailable):
    """The Cinder configuration itself is wrong (an unknown cloud, missing or refused auth, an unreachable Keystone):
    found before anything is destroyed, it refuses the terminate of a domain with volumes to settle."""


# The openstacksdk options of every module that touches Cinder (the same names as openstack.cloud's).
ARGS = dict(
    cloud=dict(type='raw'),
    auth=dict(type='dict', no_log=True),
    auth_type=dict(type='str'),
    region_name=dict(type='str'),
    interface=dict(type='str', choices=['admin', 'internal', 'public'], aliases=['endpoint_type']),
    validate_certs=dict(type='bool', aliases=['verify']),
    ca_cert=dict(type='str', aliases=['cacert']),
    api_timeout=dict(type='int'),
    volume_wait_timeout=dict(type='raw', default=DEFAULT_WAIT),
)
CONNECTION_KEYS = ('cloud', 'auth', 'auth_type', 'region_name', 'interface', 'validate_certs', 'ca_cert', 'api_timeout')


def configured(params):
    return bool(params.get('cloud') or params.get('auth'))


def describe(params):
    """The Cinder configuration in the operator's words, for a message: which cloud (never a secret)."""
    cloud = params.get('cloud')
    if isinstance(cloud, dict):
        url = (cloud.get('auth') or {}).get('auth_url') or (cloud.get('auth') or {}).get('endpoint')
        return 'the cloud given as a dict%s' % (' (%s)' % _safe(url) if url else '')
    if cloud:
        return 'cloud %s' % cloud
    url = (params.get('auth') or {}).get('auth_url') or (params.get('auth') or {}).get('endpoint')
    return 'the auth given%s' % (' (%s)' % _safe(url) if url else '')


class Options(object):
    """The Cinder settings of one run; the connection is made once, on first use, and shared by every domain."""

    def __init__(self, params=None, wait_timeout=DEFAULT_WAIT, no_log_values=None, declared=None):
        self.params = dict((k, (params or {}).get(k)) for k in CONNECTION_KEYS)
        self.wait_timeout = wait_timeout
        # The fleet's declaration (the cinder option): True has Cinder, False has none, None said nothing.
        self.declared = declared
        # The module's set of values Ansible masks in its output; Cinder secrets are added when they are read.
        self.no_log_values = no_log_values if no_log_values is not None else set()
        if isinstance(self.params.get('cloud'), dict):
            # A cloud given as a dict carries its token or password in a raw option: mask them in all output.
            self.no_log_values.update(secrets(self.params['cloud']))
        self._lock = threading.Lock()
        self._conn = None
        self._checked = None

    @property
    def configured(self):
        return configured(self.params)

    @property
    def absent(self):
        """The fleet declared it has no Cinder (cinder: false)."""
        return self.declared is False

    def describe(self):
        return describe(self.params)

    def check(self):
        """Before anything is destroyed: the configuration works (once per run). CinderConfigError naming the cloud
        when it does not: an unknown cloud, missing or refused auth, an unreachable Keystone, no block-storage
        endpoint. Returns None, or the reason when Cinder itself does not answer (down, overloaded): that is
        transient, and a terminate then leaves its volume work pending (rule 5)."""
        with self._lock:
            if self._checked is None:
                self._checked = _check(self)
        verdict, reason = self._checked
        if verdict == 'refused':
            raise CinderConfigError('the Cinder configuration (%s) is refused: %s' % (self.describe(), reason))
        return reason

    def connection(self):
        """The run's openstacksdk connection; CinderUnavailable when it cannot be configured (asked again next time)."""
        with self._lock:
            if self._conn is None:
                self._conn = connect(self.params, self.no_log_values)
            return self._conn


def _check(opts):
    """('ok', None), ('unavailable', reason) or ('refused', reason): connect, authenticate, and one read of Cinder."""
    try:
        conn = opts._conn or connect(opts.params, opts.no_log_values)
        opts._conn = conn
    except CinderUnavailable as exc:
        return 'refused', str(exc)
    try:
        conn.authorize()  # a token from Keystone (admin_token and noauth clouds make no request here)
    except Exception as exc:  # unknown user, wrong password, missing options, Keystone unreachable
        return 'refused', 'authentication failed: %s' % _safe(exc)
    try:
        answer = conn.block_storage.get('/volumes?limit=1')
    except Exception as exc:
        if exc.__class__.__name__ in ('EndpointNotFound', 'EmptyCatalog'):
            return 'refused', 'no block-storage endpoint: %s' % _safe(exc)
        # Cinder does not answer (connection refused, timeout): the service, not the configuration.
        return 'unavailable', 'Cinder does not answer: %s' % _safe(exc)
    status = getattr(answer, 'status_code', 200)
    if 400 <= status < 500:
        # A plain read refused: the token, the project or the endpoint is not this cloud's.
        return 'refused', 'Cinder refused a read of the volumes (HTTP %d: %s)' % (status, _safe(_reason(answer)))
    if status >= 500:
        return 'unavailable', 'Cinder answered HTTP %d' % status
    return 'ok', None


def _reason(answer):
    try:
        body = answer.json()
        for value in body.values():
            if isinstance(value, dict) and value.get('message'):
                return value['message']
    except Exception:
        pass
    return getattr(answer, 'reason', '') or 'no reason given'


def connect(params, no_log_values=None):
    """An openstacksdk connection from the module's openstack options (the same names as openstack.cloud).

    Secrets of the configuration (from ``auth``, a ``cloud`` dict or clouds.yaml)
    are added to ``no_log_values``, so Ansible masks them wherever they would
    show. Without an ``api_timeout``, requests time out after DEFAULT_API_TIMEOUT
    seconds: a hung Cinder must leave pending work, not a hung terminate.
    """
    openstack = _sdk()
    if openstack is None:
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
        conn = openstack.connect(**kwargs)
    except Exception as exc:  # openstacksdk raises many kinds for bad config
        raise CinderUnavailable('cannot configure the Cinder connection: %s' % _safe(exc))
    if no_log_values is not None:
        no_log_values.update(secrets(conn.config.config))
    # The session is made on first use, so this still applies.
    if conn.config.config.get('api_timeout') is None:
        conn.config.config['api_timeout'] = DEFAULT_API_TIMEOUT
    return conn


SECRET_KEYS = ('password', 'token', 'secret', 'passcode', 'key')


def secrets(config):
    """Every secret string in an openstacksdk configuration (nested dicts included), to mask in output."""
    found = set()
    if isinstance(config, dict):
        for key, value in config.items():
            if isinstance(value, dict):
                found |= secrets(value)
            elif isinstance(value, str) and value and any(word in str(key).lower() for word in SECRET_KEYS) \
                    and not str(key).lower().endswith(('_file', 'file', '_id', '_name')):
                found.add(value)
    return found


# user:password@ in a URL, and key=value or key: value pairs whose key names a secret.
_URL_CREDENTIALS = re.compile(r'(?<=://)[^/@\s]+@')
_SECRET_PAIRS = re.compile(r'\b((?:%s)\w*(?:\s*=\s*|:\s+))[^\s,;&]+' % '|'.join(SECRET_KEYS), re.I)


def _safe(exc):
    """An error text without anything that could carry a token: its first line only (headers follow), credentials
    of a URL and secret-looking key=value pairs masked."""
    text = str(exc).splitlines()[0] if str(exc) else exc.__class__.__name__
    text = _SECRET_PAIRS.sub(r'\1***', _URL_CREDENTIALS.sub('***@', text))
    return text[:300]


def _sdk():
    """The openstack package, imported on first use; None when openstacksdk is not installed."""
    if 'module' not in _SDK:
        try:
            import openstack
            import openstack.exceptions  # noqa: F401 (used as openstack.exceptions)
            _SDK['module'] = openstack
        except ImportError:
            _SDK['module'] = None
    return _SDK['module']


def _not_found(exc):
    openstack = _SDK.get('module')
    return openstack is not None and isinstance(exc, openstack.exceptions.ResourceNotFound)


def server_attachments(conn, server_uuid):
    """Cinder's attachments of ``server_uuid``: {volume_id: [attachment_id, ...]}."""
    try:
        found = {}
        for att in conn.block_storage.attachments(instance_id=server_uuid):
            # Checked here too: a Cinder that ignored the filter must not make us detach other servers' volumes.
            if att.instance == server_uuid:
                found.setdefault(att.volume_id, []).append(att.id)
        return found
    except Exception as exc:
        raise CinderUnavailable('cannot list Cinder attachments of %s: %s' % (server_uuid, _safe(exc)))


def settle(conn, server_uuid, volumes, wait_timeout=DEFAULT_WAIT, foreign_hosts=(), own_hosts=()):
    """Detach ``volumes`` from ``server_uuid`` and delete those marked delete_on_termination.

    ``volumes`` are dicts with id and delete_on_termination (the record's list);
    volumes Cinder says are attached to the server but the list lacks are added,
    to be detached and kept. Returns (done, pending): done items say what
    happened to each volume (detached, deleted, kept, missing, seconds),
    pending ones carry the error. Raises CinderUnavailable when Cinder cannot
    even list the attachments; then nothing was changed.

    ``foreign_hosts``: the other hypervisors of the fleet (OtherHypervisors, or their hostnames); an attachment one of
    them holds is theirs (rule 10).
    ``own_hosts``: hosts this domain itself lived on before (a move, a migration): an attachment naming one of them
    is the domain's own, left from before it moved, and is settled like any other (rule 5).
    """
    attached = server_attachments(conn, server_uuid)
    foreign_hosts = OtherHypervisors.of(foreign_hosts).without(own_hosts)
    known = set(v['id'] for v in volumes)
    volumes = list(volumes) + [{'id': vid, 'target': None, 'delete_on_termination': False, 'discovered': True}
                               for vid in sorted(attached) if vid not in known]

    def one(vol):
        began = time.monotonic()
        try:
            with _RUN_SLOTS:
                outcome = _settle_one(conn, server_uuid, vol, attached.get(vol['id'], []), wait_timeout, foreign_hosts)
            return True, dict(vol, seconds=round(time.monotonic() - began, 3), **outcome)
        except Exception as exc:  # one volume's failure stays pending and never stops the others
            return False, dict(vol, error='volume %s: %s' % (vol['id'], _safe(exc)))

    # Cinder does the waiting (detach, delete): the volumes of one domain are settled at once, a few at a time.
    if len(volumes) > 1:
        with ThreadPoolExecutor(max_workers=min(PARALLEL_VOLUMES, len(volumes))) as pool:
            outcomes = list(pool.map(one, volumes))
    else:
        outcomes = [one(vol) for vol in volumes]
    done = [item for ok, item in outcomes if ok]
    pending = [item for ok, item in outcomes if not ok]
    return done, pending


def plan(conn, server_uuid, volumes):
    """Check mode: what settle() would do, from a read-only look at Cinder's attachments."""
    attached = server_attachments(conn, server_uuid)
    known = set(v['id'] for v in volumes)
    every = list(volumes) + [{'id': vid, 'delete_on_termination': False, 'discovered': True}
                             for vid in sorted(attached) if vid not in known]
    return every


class OtherHypervisors(object):
    """The other hypervisors of the fleet, as Cinder's attachments name them: an attachment one of them holds is
    theirs, never detached or deleted from here (rule 10).

    ``known``: their hostnames (full, short or inventory names). With a complete fleet index they are all there is.
    ``every`` (an incomplete index, rule 12): a host that did not report may be under any name, so every host that
    is none of ``mine`` (this hypervisor's full hostnames) counts as another one, and a name outside ``known`` is
    ``uncertain``: its attachment is neither detached nor settled, and stays pending for a sweep with a complete index.
    """

    def __init__(self, known=(), mine=(), every=False):
        self.known = frozenset(name.lower() for name in known if name)
        self.mine = frozenset(name.lower() for name in mine if name)
        self.every = bool(every)

    @classmethod
    def of(cls, hosts):
        """``hosts`` as OtherHypervisors: itself, else a plain collection of hostnames (a complete index; none: ())."""
        return hosts if isinstance(hosts, cls) else cls(hosts or ())

    def holds(self, host):
        """Whether Cinder's attachment host name ``host`` may be one of them. With a complete index: one of ``known``
        by the same name, or, where either side is a short name (Cinder's connector may send one), the same first
        label; hv1.dc1 is not hv1.dc2, but a bare hv1 may be hv1.dc2's, and an attachment that may be another
        hypervisor's is kept (the safe side: the operator detaches it). With an incomplete one: any host not this one."""
        host = (host or '').lower()
        if not host:
            return False
        if self.every:
            return host not in self.mine and host.split('.')[0] not in self.mine
        for other in self.known:
            if host == other or (('.' not in host or '.' not in other) and host.split('.')[0] == other.split('.')[0]):
                return True
        return False

    __contains__ = holds

    def uncertain(self, host):
        """Whether ``host`` may be a host of the fleet that did not report: held by another, and by none it knows."""
        host = (host or '').lower()
        return self.every and self.holds(host) and host not in self.known and host.split('.')[0] not in self.known

    def without(self, own_hosts):
        """The same, less the hosts the domain itself lived on (``own_hosts``, by full or short name): an attachment
        naming one of them is the domain's own, left from before it moved, never another hypervisor's (rule 5)."""
        own = set()
        for host in own_hosts or ():
            if host:
                own.update([host.lower(), host.lower().split('.')[0]])
        return OtherHypervisors([k for k in self.known if k not in own and k.split('.')[0] not in own],
                                self.mine | own, self.every)

    def __bool__(self):
        return self.every or bool(self.known)

    __nonzero__ = __bool__

    def __iter__(self):
        return iter(sorted(self.known))

    def __len__(self):
        return len(self.known)

    def __repr__(self):
        return 'OtherHypervisors(%r, every=%r)' % (sorted(self.known), self.every)


def _held_elsewhere(bs, vol, attachment_ids, foreign_hosts):
    """The other hypervisor of the fleet that holds one of the attachments (Cinder's host_name of it), else None."""
    foreign_hosts = OtherHypervisors.of(foreign_hosts)
    if not foreign_hosts or not attachment_ids:
        return None
    try:
        volume = bs.get_volume(vol['id'])
    except Exception as exc:
        if _not_found(exc):
            return None
        raise
    for legacy in volume.attachments or []:
        host = legacy.get('host_name')
        ours = legacy.get('attachment_id') in attachment_ids
        if ours and host and foreign_hosts.holds(host):
            return host
    return None


def _settle_one(conn, server_uuid, vol, attachment_ids, wait_timeout, foreign_hosts=()):
    bs = conn.block_storage
    outcome = {'detached': False, 'deleted': False, 'kept': False, 'missing': False}
    foreign_hosts = OtherHypervisors.of(foreign_hosts)
    holder = _held_elsewhere(bs, vol, attachment_ids, foreign_hosts)
    if holder and foreign_hosts.uncertain(holder):
        # The fleet index is incomplete and this host is none of the fleet's: it may be one that did not report.
        raise RuntimeError('attached on host %s, which the incomplete fleet index cannot place; neither detached nor '
                           'deleted, left pending until a sweep with a complete fleet index' % holder)
    if holder:
        # Rule 10: another hypervisor of the fleet has this volume attached (the same server UUID running there).
        outcome.update(kept=True, note='attached on hypervisor %s; neither detached nor deleted' % holder)
        return outcome
    for att_id in attachment_ids:
        # ignore_missing: an attachment another run already deleted is fine.
        bs.delete_attachment(att_id, ignore_missing=True)
        outcome['detached'] = True
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
    # Reached by a volume to delete only, between its detach and its delete (the volumes of a domain are settled at
    # once: a volume that is only detached may be done, or not yet detached, when this one gets here).
    failpoint('terminate.after_detach')
    volume = _wait_not_busy(bs, volume, server_uuid, wait_timeout)
    others = sorted(set(a.get('server_id') for a in volume.attachments or [] if a.get('server_id') != server_uuid))
    if others:
        # Marked for deletion with this domain, but now in use by another server: never delete that.
        outcome.update(kept=True, note='attached to server(s) %s; not deleted' % ', '.join(str(o) for o in others))
        return outcome
    if volume.status != 'deleting':  # a delete asked for by an earlier, interrupted run is under way
        try:
            bs.delete_volume(volume)
        except Exception as exc:
            if not _not_found(exc):
                raise
    # Cinder's own delete takes ~0.15 s: poll at its pace, not at seconds (a poll is one cheap GET).
    bs.wait_for_delete(volume, interval=POLL, wait=wait_timeout)
    outcome['deleted'] = True
    return outcome


def _wait_not_busy(bs, volume, server_uuid, wait_timeout):
    """Wait until our detach has brought the volume out of in-use/detaching, so Cinder accepts the delete.

    A volume still attached to another server is returned at once, as it is.
    """
    deadline = time.monotonic() + wait_timeout
    while volume.status in ('in-use', 'detaching', 'attaching', 'reserved') and time.monotonic() < deadline:
        if any(a.get('server_id') != server_uuid for a in volume.attachments or []):
            break
        time.sleep(POLL)
        volume = bs.get_volume(volume.id)
    return volume
