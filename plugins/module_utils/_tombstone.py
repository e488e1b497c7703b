# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The tombstone, in one place: what it may contain, when it is finished, how it is made, settled and finished.

A tombstone is the JSON file a terminate leaves in ``state_dir`` (the store, ``_state_dir``, keeps and reads them; the
retention prunes the finished ones); this file says what one is and what each operation does with it.

A terminate writes the tombstone before anything is destroyed and updates it
as work finishes, so a domain is never gone without one and a volume is never
forgotten (rule 5 of docs/rules.md). Every module that meets a terminated domain calls
this file: vm_info shows it, vm_terminate and vm_soft_delete (with
reclaim_interval 0) treat its name as a no-op or finish its pending work, and
vm_reclaim finishes every tombstone with work left.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import copy
import json
import re

try:
    from urllib.parse import urlsplit
except ImportError:  # Python 2 (ansible-test's old controllers import module_utils too)
    from urlparse import urlsplit

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError, NOTHING_CHANGED, StateDirError
from ansible_collections.deferred.libvirt.plugins.module_utils._faults import failpoint


UUID_RE = re.compile(r'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$')
VOLUME_ID_RE = re.compile(r'^[0-9A-Za-z][0-9A-Za-z._-]{0,254}$')
STATUSES = ('deleting', 'undefined', 'terminated')
MAX_INT = 2 ** 53


class TombstoneError(StateDirError):
    """A tombstone on disk is not one this collection wrote; it is reported, never used."""


def is_uuid(value):
    return isinstance(value, str) and UUID_RE.match(value) is not None


# -- what a tombstone may contain ---------------------------------------------------------------------------------------

def _is_int(value, low=0, high=MAX_INT):
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _valid_time(value):
    if value is None:
        return True
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        _record.parse_time(value)
        return True
    except (ValueError, OverflowError, TypeError):
        return False


def _valid_volumes(value):
    if value is None:
        return True
    if not isinstance(value, list):
        return False
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get('id'), str) or not VOLUME_ID_RE.match(item['id']):
            return False
    return True


def _list_of(kind):
    return lambda v: v is None or (isinstance(v, list) and all(isinstance(i, kind) for i in v))


def _opt(kind):
    return lambda v: v is None or isinstance(v, kind)


FIELD_CHECKS = (
    ('name', lambda v: isinstance(v, str) and 0 < len(v) <= 4096, 'a domain name'),
    ('project', _opt(str), 'a string or null'),
    ('user', _opt(str), 'a string or null'),
    ('request_id', _opt(str), 'a string or null'),
    ('actor', _opt(str), 'a string or null'),
    ('host_uri', _opt(str), 'a string or null'),
    ('status', lambda v: v is None or v in STATUSES, 'one of %s' % ', '.join(STATUSES)),
    ('vcpus', lambda v: v is None or _is_int(v), 'a count'),
    ('memory_mb', lambda v: v is None or _is_int(v), 'a size in MiB'),
    ('undefine_flags', lambda v: v is None or _is_int(v) or _list_of(str)(v), 'a list of flag names'),
    ('revision', lambda v: v is None or _is_int(v), 'an integer'),
    ('cinder_checked', _opt(bool), 'true or false'),
    ('no_cinder', _opt(bool), 'true or false'),
    ('deleted_at', _valid_time, 'a UTC ISO 8601 time'),
    ('reclaim_at', _valid_time, 'a UTC ISO 8601 time'),
    ('started_at', _valid_time, 'a UTC ISO 8601 time'),
    ('terminated_at', _valid_time, 'a UTC ISO 8601 time'),
    ('finished_at', _valid_time, 'a UTC ISO 8601 time'),
    ('volumes', _valid_volumes, 'a list of volumes with a Cinder id each'),
    ('volumes_pending', _valid_volumes, 'a list of volumes with a Cinder id each'),
    ('volumes_done', _valid_volumes, 'a list of volumes with a Cinder id each'),
    ('disks_deleted', _list_of(str), 'a list of paths'),
    ('disks_kept', _list_of((dict, str)), 'a list'),
    ('disks_pending', _list_of(dict), 'a list of disks'),
    ('disks', _list_of((dict, str)), 'a list'),
    ('history', _list_of(dict), 'a list of actions'),
    ('record_host', _opt(dict), 'a host or null'),
)


def validate_tombstone(data, file_uuid, path):
    """Return ``data`` if it is a tombstone this collection could have written for ``file_uuid``; else TombstoneError."""
    if not isinstance(data, dict):
        raise TombstoneError('tombstone %s is not a JSON object' % path)
    uuid = data.get('uuid')
    if not is_uuid(uuid):
        raise TombstoneError('tombstone %s: uuid %s is not a UUID' % (path, json.dumps(uuid)[:80]))
    if uuid != file_uuid:
        raise TombstoneError('tombstone %s: uuid %s does not match its file name; refusing to act on it'
                             % (path, uuid))
    for field, check, what in FIELD_CHECKS:
        if field in data and not check(data[field]):
            raise TombstoneError('tombstone %s: field %s is %s, not %s' % (path, field, json.dumps(data[field])[:80], what))
    return data


def finished(tomb):
    """Nothing left to do: undefined, no pending volume, no pending disk, and Cinder asked, or the fleet declared it
    has no Cinder (``no_cinder``: cinder false); the state_dir keeps it with the finished."""
    # A tombstone that never says it asked Cinder has not: only a real answer from Cinder marks it checked (rule 5).
    # A disk kept only because the fleet index was incomplete is work left too (disks_pending): the next sweep with
    # a complete index deletes it if it is then safe, so it is never forgotten.
    # A stale copy's undefine (``stale_copy``) asks nothing of Cinder: its volumes are the other copy's (rule 9).
    done = tomb.get('status') == 'terminated' and not tomb.get('volumes_pending') and not tomb.get('disks_pending')
    return done and (tomb.get('cinder_checked') is True or tomb.get('no_cinder') is True or bool(tomb.get('stale_copy')))


PENDING_DISK_KEYS = ('target', 'path', 'pool', 'volume', 'real_path', 'type', 'st_dev', 'st_ino', 'reason')


def pending_disks(kept, disks=(), identities=None):
    """The disks of ``kept`` (a terminate's disks_kept) kept for now only (``kept_for_now``: another host could reach
    them and the fleet index was incomplete). They stay in the tombstone as ``disks_pending`` until a sweep with a
    complete index. ``disks``: the domain's disks (for each one's type); ``identities``: real path -> (device, inode)
    of the file as it was when it was kept, so a file put in its place later is never taken for it."""
    types = dict((d.get('target'), d.get('type')) for d in disks or [])
    pending = []
    for item in kept or []:
        if not item.get('kept_for_now'):
            continue
        entry = dict((k, item.get(k)) for k in PENDING_DISK_KEYS if item.get(k) is not None)
        entry.setdefault('type', types.get(item.get('target')) or ('volume' if item.get('volume') else 'file'))
        ident = (identities or {}).get(item.get('real_path'))
        if isinstance(ident, tuple):
            entry['st_dev'], entry['st_ino'] = ident
        pending.append(entry)
    return pending


def foreign(tomb, host):
    """Whether another hypervisor wrote ``tomb`` (a state_dir shared by several hosts): only it finishes its work.

    The tombstone is this host's when it names this host's UUID or its full hostname, as a record is
    (_record.names_host): libvirt makes up a new host UUID at every start where the machine has no SMBIOS UUID, and a
    tombstone written before such a restart is still this host's to finish (rule 5), never another's to leave alone.
    A tombstone without a host is from before tombstones named one: this host's.
    """
    theirs = tomb.get('host')
    if not theirs or not host:
        return False
    return not _record.names_host(theirs, host)


def terminated_to_select(state, live, host=None, names=None, every=False):
    """The tombstones a selection may name beside the live domains: those whose UUID is not in ``live``, as
    [(tombstone, view)].

    So a terminated domain can be named: a re-run of a terminate finds it
    instead of "unknown domain". Only the tombstones with work left and those
    ``names`` names are read (the finished ones are many); ``every`` reads
    them all (vm_info include_deleted). Another host's tombstones are left out.
    """
    listed = state.tombstones_list() if every else state.tombstones_for(names)
    tombs = dict((t.get('uuid'), t) for t in listed
                 if t.get('uuid') and t.get('uuid') not in live and not foreign(t, host))
    return [(t, _views.describe_tombstone(t)) for t in tombs.values()]


def waits_for_cinder(tomb, cinder_opts):
    """Nothing recorded is pending, but Cinder was never asked (no cloud given then) and cannot be asked now either.

    Only a real answer from Cinder marks a tombstone checked (rule 5 of docs/rules.md): a
    volume attached in Cinder but missing from the record is found by the
    first run that has Cinder. A run of a fleet declared without Cinder (cinder false) finishes it instead.
    """
    settled = tomb.get('volumes_pending') or tomb.get('cinder_checked') or tomb.get('no_cinder')
    return not settled and not cinder_opts.configured and not cinder_opts.absent


NO_CINDER_ADVICE = ('a fleet without Cinder declares cinder: false (the playbooks and roles: deferred_libvirt_cinder: '
                    'false), and its terminated domains then finish at once')


def refuse_volumes_without_cinder(name, volumes, cinder_opts, what='its lifecycle record lists'):
    """A fleet declared without Cinder (cinder false) never leaves a volume silently pending: DeferredError."""
    if cinder_opts.absent and volumes:
        raise DeferredError(
            'domain %s: %s Cinder volume(s) %s, but cinder is false (this fleet declares no Cinder); %s. Give the '
            'Cinder options (cloud or auth) for it, or, if they are not Cinder volumes, clear them with vm_attributes '
            'volumes=[]' % (name, what, ', '.join(v.get('id') or '?' for v in volumes), NOTHING_CHANGED))


def for_sweep(state, live, cinder_opts, project=None, host=None):
    """For one reclaim sweep: (tombstones with work left whose domain is gone, those waiting for a run with Cinder,
    tombstones that cannot be read, tombstones with work left that another host wrote). Another host's tombstones in
    a shared state_dir are left to that host, and reported: a host whose hostname changed since its terminate and
    whose libvirtd made up a new host UUID no longer knows them for its own, and only the report says so."""
    work, waiting, bad, theirs = [], [], [], []
    for tomb in state.pending_tombstones():
        if tomb.get('error'):
            bad.append(tomb)
        elif foreign(tomb, host):
            if not finished(tomb) and (project is None or tomb.get('project') == project):
                theirs.append(tomb)
        elif tomb.get('uuid') not in live and not finished(tomb) and (project is None or tomb.get('project') == project):
            # Pending disks need no Cinder: such a tombstone is worked on in every sweep (and still reported as
            # waiting for Cinder when it is).
            if waits_for_cinder(tomb, cinder_opts):
                waiting.append(tomb)
                if tomb.get('disks_pending'):
                    work.append(tomb)
            else:
                work.append(tomb)
    return work, waiting, bad, theirs


def for_terminate(ctx, domain, record):
    """The tombstone a terminate of the live ``domain`` writes before it destroys anything.

    Its own interrupted terminate (task_state deleting, tombstone still
    deleting) is picked up again (rule 7). Any other tombstone of the same
    UUID is an earlier domain (the same XML defined again, a template with a
    fixed <uuid>, a definition restored from backup): the new tombstone
    describes this domain, keeps the earlier one as history in ``previous``,
    and takes over whatever Cinder work the earlier one still had, so no
    volume of either is forgotten (rule 5).
    """
    existing = ctx.state.read_tombstone(domain.uuid)
    if existing and record.get('task_state') == 'deleting' and existing.get('status') == 'deleting':
        return existing
    tomb = initial(ctx, domain, record)
    if existing:
        # The earlier tombstone moves to the state_dir's history (whole); the new one names it.
        ctx.state.archive_tombstone(domain.uuid)
        earlier = dict((k, existing.get(k)) for k in ('name', 'project', 'user', 'request_id', 'terminated_at', 'status',
                                                      'cinder_checked'))
        tomb['previous'] = list(existing.get('previous') or []) + [earlier]
        if not finished(existing):
            known = set(v['id'] for v in tomb['volumes_pending'])
            tomb['volumes_pending'] += [dict(v) for v in existing.get('volumes_pending') or [] if v.get('id') not in known]
    return tomb


def initial(ctx, domain, record):
    """The tombstone of ``domain``, written before a terminate destroys anything."""
    return {
        'name': domain.name, 'uuid': domain.uuid, 'project': record.get('project'), 'user': record.get('user'),
        'vcpus': domain.vcpus, 'memory_mb': domain.memory_mb, 'deleted_at': record.get('deleted_at'),
        'reclaim_at': record.get('reclaim_at'), 'request_id': ctx.request_id, 'status': 'deleting',
        'started_at': _record.format_time(_record.utcnow()), 'terminated_at': None, 'host_uri': ctx.uri,
        'volumes': copy.deepcopy(record.get('volumes') or []),
        'volumes_pending': [dict(v) for v in record.get('volumes') or []],
        'cinder_checked': False, 'volumes_done': [], 'disks_deleted': [], 'disks_kept': [], 'host': ctx.host,
        'history': copy.deepcopy(record.get('history') or []),
        # The host the record named when the terminate began (another one after a migration that kept the record):
        # with the history's moves, the domain's own earlier hosts, whose Cinder attachments are its own (rule 5).
        'record_host': copy.deepcopy(record.get('host')),
    }


_URI_HOST = re.compile(r'[A-Za-z][A-Za-z0-9+.-]*://[^/\s]*')


def earlier_hosts(tomb):
    """The hostnames the domain of ``tomb`` lived on before this host: the host its record named at terminate, and
    the source of every move in its history (\"from qemu+ssh://hv2/system\"). A Cinder attachment naming one of them
    is the domain's own, left from before it moved, not another hypervisor's."""
    names = []
    record_host = tomb.get('record_host')
    if isinstance(record_host, dict) and isinstance(record_host.get('hostname'), str):
        names.append(record_host['hostname'])
    for entry in tomb.get('history') or []:
        if not isinstance(entry, dict) or entry.get('action') != 'move' or not isinstance(entry.get('message'), str):
            continue
        for uri in _URI_HOST.findall(entry['message']):
            try:
                host = urlsplit(uri).hostname
            except ValueError:
                host = None
            if host and host not in names:
                names.append(host)
    return names


def _disk_path(item):
    return (item.get('path') or item.get('real_path') or '?') if isinstance(item, dict) else str(item)


def _ids(items):
    return [v.get('id') for v in items or [] if isinstance(v, dict) and v.get('id')]


def _listed(things, most=10):
    things = list(things)
    shown = ', '.join(things[:most])
    return shown + (' and %d more' % (len(things) - most) if len(things) > most else '')


def _by(request_id, actor):
    if not request_id:
        return 'by an unrecorded request'
    return 'by request %s (actor %s)' % (request_id, actor or 'not recorded')


def story(tomb, actors=None):
    """What became of the terminated domain of ``tomb``, for an operator who asks for it back (vm_restore).

    ``actors``: request id -> actor, from the event journal, for the requests the tombstone names (its own
    ``actor`` wins for the terminate). Returns a dict of structured keys (how: reclaimed or terminated, when, by which
    request and actor, the soft delete before it, the disks and volumes deleted, kept and pending) and ``msg``.
    """
    actors = actors or {}
    history = [h for h in tomb.get('history') or [] if isinstance(h, dict)]
    request_id = tomb.get('request_id')
    ending = [h for h in history if h.get('request_id') == request_id and request_id]
    action = ending[-1].get('action') if ending else None
    how = 'reclaimed' if action == 'reclaim' else 'terminated'
    soft = [h for h in history if h.get('action') == 'soft_delete' and h.get('result') == 'success']
    soft_request = soft[-1].get('request_id') if soft else None
    done = [v for v in tomb.get('volumes_done') or [] if isinstance(v, dict)]
    out = {
        'name': tomb.get('name'), 'uuid': tomb.get('uuid'), 'project': tomb.get('project'), 'how': how,
        'action': action, 'status': tomb.get('status'), 'terminated_at': tomb.get('terminated_at'),
        'started_at': tomb.get('started_at'), 'request_id': request_id,
        'actor': tomb.get('actor') or actors.get(request_id),
        'deleted_at': tomb.get('deleted_at'), 'reclaim_at': tomb.get('reclaim_at'),
        'soft_delete_request_id': soft_request, 'soft_delete_actor': actors.get(soft_request) if soft_request else None,
        'disks_deleted': [str(d) for d in tomb.get('disks_deleted') or []],
        'disks_kept': [{'path': _disk_path(d), 'reason': d.get('reason') if isinstance(d, dict) else None}
                       for d in tomb.get('disks_kept') or [] if not (isinstance(d, dict) and d.get('kept_for_now'))],
        'disks_pending': [_disk_path(d) for d in tomb.get('disks_pending') or []],
        'volumes_deleted': [v['id'] for v in done if v.get('deleted') and v.get('id')],
        'volumes_detached': [v['id'] for v in done if v.get('detached') and not v.get('deleted') and v.get('id')],
        'volumes_kept': [v['id'] for v in done if v.get('kept') and not v.get('detached') and v.get('id')],
        'volumes_pending': _ids(tomb.get('volumes_pending')),
        'cinder_checked': tomb.get('cinder_checked') is True,
    }
    if tomb.get('status') == 'deleting':
        said = ['domain %s (uuid %s) is being terminated: it began at %s %s and was interrupted; it cannot be '
                'restored (vm_terminate or the next vm_reclaim sweep finishes it)'
                % (out['name'], out['uuid'], out['started_at'] or 'an unrecorded time', _by(request_id, out['actor']))]
    else:
        said = ['domain %s (uuid %s%s) was %s at %s %s and cannot be restored'
                % (out['name'], out['uuid'], ', project %s' % out['project'] if out['project'] else '', how,
                   out['terminated_at'] or 'an unrecorded time', _by(request_id, out['actor']))]
    if out['deleted_at']:
        said.append('it had been soft-deleted at %s%s, to be reclaimed at %s'
                    % (out['deleted_at'], ' ' + _by(soft_request, out['soft_delete_actor']) if soft_request else '',
                       out['reclaim_at'] or 'an unrecorded time'))
    deleted = []
    if out['disks_deleted']:
        deleted.append('disk(s) %s' % _listed(out['disks_deleted']))
    if out['volumes_deleted']:
        deleted.append('volume(s) %s' % _listed(out['volumes_deleted']))
    said.append('deleted: %s' % ('; '.join(deleted) if deleted else 'no disk or volume'))
    kept = []
    if out['disks_kept']:
        shown = ['%s (%s)' % (d['path'], d['reason']) if d['reason'] else d['path'] for d in out['disks_kept']]
        kept.append('disk(s) %s' % _listed(shown))
    if out['volumes_detached']:
        kept.append('volume(s) %s, detached and kept in Cinder' % _listed(out['volumes_detached']))
    if out['volumes_kept']:
        kept.append('volume(s) %s, left attached where another host holds them' % _listed(out['volumes_kept']))
    said.append('kept: %s' % ('; '.join(kept) if kept else 'no disk or volume'))
    pending = []
    if out['volumes_pending']:
        pending.append('volume(s) %s' % _listed(out['volumes_pending']))
    if out['disks_pending']:
        pending.append('disk(s) %s' % _listed(out['disks_pending']))
    if pending:
        said.append('still pending (the next vm_reclaim sweep finishes it): %s' % '; '.join(pending))
    elif not out['cinder_checked'] and tomb.get('status') != 'deleting':
        said.append('Cinder has not been asked about its volumes yet')
    out['msg'] = '; '.join(said)
    return out


def answer_when_named(ctx, tomb, cinder_opts, foreign_hosts=(), hold=None):
    """What naming a terminated domain again does: nothing when it is finished, else finish its pending work."""
    ident = {'name': tomb.get('name'), 'uuid': tomb.get('uuid')}
    if finished(tomb):
        return dict(ident, changed=False, action='none', msg='already terminated at %s' % tomb.get('terminated_at'))
    if tomb.get('status') == 'terminated' and tomb.get('cinder_checked') and not tomb.get('volumes_pending'):
        return dict(ident, changed=False, action='none', disks_pending=tomb.get('disks_pending'),
                    msg='already terminated at %s; disk(s) %s were kept because the fleet index was incomplete: the '
                        'next vm_reclaim sweep with a complete fleet index deletes what is then safe'
                        % (tomb.get('terminated_at'), ', '.join(d.get('path') or '?' for d in tomb['disks_pending'])))
    if waits_for_cinder(tomb, cinder_opts):
        return dict(ident, changed=False, action='none', cinder_checked=False,
                    msg='already terminated at %s; Cinder has not been asked about its volumes yet (no cloud was given): '
                        'the next vm_reclaim or vm_terminate with Cinder options does that' % tomb.get('terminated_at'))
    return finish_left_work(ctx, tomb, cinder_opts, foreign_hosts, hold)


def finish_left_work(ctx, tomb, cinder_opts, foreign_hosts=(), hold=None):
    """Finish (or in check mode, report) the Cinder work a terminate left in ``tomb``; a per-domain result."""
    ident = {'name': tomb.get('name'), 'uuid': tomb.get('uuid')}
    refuse_volumes_without_cinder(tomb.get('name'), tomb.get('volumes_pending'), cinder_opts,
                                  'its tombstone has pending')
    if ctx.check_mode:
        return dict(ident, changed=True, action='would_finish_pending', volumes_pending=tomb.get('volumes_pending'))
    summary, changed = complete_gone(ctx, tomb, cinder_opts, foreign_hosts, hold)
    return dict(summary, action='pending_finished', changed=changed, **ident)


def settle_volumes(ctx, tomb, cinder_opts, foreign_hosts=(), hold=None):
    """Finish the Cinder work of a tombstone as far as Cinder lets us; the tombstone keeps what is left.

    ``foreign_hosts``: the other hypervisors of the play (FleetView.foreign_hosts): an attachment they hold is theirs.
    ``hold``: why the recorded volumes wait (FleetView.volumes_held: a copy of the domain on another host lists them,
    or the index cannot tell): Cinder is not asked, nothing is detached or deleted, and they stay pending with that
    reason for a sweep whose index shows no copy left.

    Runs under the domain's lock (the domain is gone, the UUID's lock remains)
    and takes the volume work from the tombstone on disk, so a terminate and a
    reclaim sweep finishing the same tombstone never both work on a volume.
    ``tomb`` is updated in place.
    """
    summary = {'volumes_detached': [], 'volumes_deleted': [], 'volumes_kept': [], 'volumes_pending': []}
    with ctx.state.lock(tomb['uuid'], timeout=ctx.lock_timeout, name=tomb.get('name')):
        on_disk = ctx.state.read_tombstone(tomb['uuid'])
        if on_disk:
            for key in ('volumes_pending', 'volumes_done', 'cinder_checked', 'disks_pending', 'disks_deleted',
                        'disks_kept', 'volumes_held'):
                if key in on_disk or key in tomb:
                    tomb[key] = on_disk.get(key)
            if on_disk.get('status') == 'terminated':
                tomb['status'] = 'terminated'
        pending = tomb.get('volumes_pending') or []
        if cinder_opts.absent and not pending:
            # Declared without Cinder: nothing to ask, and nothing recorded to settle; the tombstone may finish.
            tomb['no_cinder'] = True
        elif not cinder_opts.configured:
            # Only a real answer from Cinder marks the tombstone checked: a volume attached in Cinder but missing
            # from the record is found by the first run that has Cinder.
            for vol in pending:
                vol['error'] = NOT_CONFIGURED
            tomb['cinder_checked'] = bool(tomb.get('cinder_checked'))
        elif hold and pending:
            # Rules 10 and 12: another copy of the domain may still use them; kept whole until no copy is left.
            for vol in pending:
                vol['error'] = 'waits: %s' % hold
            tomb['volumes_held'] = summary['volumes_held'] = hold
        elif pending or not tomb.get('cinder_checked'):
            tomb.pop('volumes_held', None)
            try:
                done, left = cinder.settle(cinder_opts.connection(), tomb['uuid'], pending, cinder_opts.wait_timeout,
                                           foreign_hosts=foreign_hosts, own_hosts=earlier_hosts(tomb))
                failpoint('terminate.after_cinder')
                tomb['cinder_checked'] = True
            except cinder.CinderUnavailable as exc:
                done, left = [], [dict(v, error=str(exc)) for v in pending]
                summary['cinder_error'] = str(exc)
            tomb['volumes_done'] = (tomb.get('volumes_done') or []) + done
            tomb['volumes_pending'] = left
            pending = left
            for item in done:
                for flag, key in (('detached', 'volumes_detached'), ('deleted', 'volumes_deleted'), ('kept', 'volumes_kept')):
                    if item.get(flag):
                        summary[key].append(item['id'])
        # terminated: the domain and its disks are gone and no recorded volume is pending (finished() also needs
        # cinder_checked: Cinder's own list of attachments seen).
        if not tomb.get('volumes_pending') and tomb.get('status') == 'undefined':
            tomb['status'] = 'terminated'
        ctx.state.write_tombstone(tomb)
    summary['volumes_pending'] = [dict((k, v[k]) for k in ('id', 'delete_on_termination', 'error') if k in v)
                                  for v in pending]
    return summary


def complete_gone(ctx, tomb, cinder_opts, foreign_hosts=(), hold=None):
    """Finish what a terminate left in the tombstone of a domain that is gone; returns (summary, changed).

    A run killed after undefine (or Cinder being down) leaves the delete
    without its end in the journal: this run writes it, so the journal tells
    how it finished.
    """
    was = (tomb.get('status'), len(tomb.get('volumes_pending') or []), bool(tomb.get('no_cinder')))
    if tomb.get('status') == 'deleting':
        # Killed between undefine and the tombstone update: the domain is gone, so it was undefined.
        tomb.update(status='undefined', terminated_at=tomb.get('terminated_at') or _record.format_time(_record.utcnow()))
    summary = settle_volumes(ctx, tomb, cinder_opts, foreign_hosts, hold)
    summary.pop('cinder_error', None)
    changed = (tomb.get('status'), len(tomb.get('volumes_pending') or []), bool(tomb.get('no_cinder'))) != was or bool(
        summary['volumes_detached'] or summary['volumes_deleted'] or summary['volumes_kept'])
    if changed and not ctx.check_mode:
        ctx.state.event('instance.delete.end', ctx.request_id, domain=tomb.get('name'), uuid=tomb.get('uuid'),
                        project=tomb.get('project'), result='pending' if tomb.get('volumes_pending') else 'success',
                        action='pending_finished', volumes_deleted=summary['volumes_deleted'],
                        volumes_detached=summary['volumes_detached'],
                        volumes_pending=[v['id'] for v in summary['volumes_pending']])
    return summary, changed


NOT_CONFIGURED = 'Cinder is not configured for this run (no cloud or auth)'


def volumes_to_settle(server_uuid, volumes, cinder_opts):
    """Check mode: (volumes a terminate would settle, volumes it would leave pending with their error, warnings), as
    the real run with the same options does: the record's plus those Cinder says are attached (read only)."""
    if cinder_opts.absent:
        return [], [], []
    if not cinder_opts.configured:
        return [], [dict(v, error=NOT_CONFIGURED) for v in volumes], []
    try:
        return cinder.plan(cinder_opts.connection(), server_uuid, volumes), [], []
    except cinder.CinderUnavailable as exc:
        return [], [dict(v, error=str(exc)) for v in volumes], [
            'Cinder cannot be asked which volumes are attached (%s): a terminate now leaves the recorded volumes '
            'pending in the tombstone, for the next vm_reclaim' % exc]
