# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""The modules' options, one typed group each: its argument spec, its checks, and ``read(params)``.

A module's argument spec is composed of groups (``spec``); an operation
reads the groups it takes once, before anything changes, and gets plain
objects with attributes: no operation reads the task's parameters itself.
Bad input raises an InputError (or the reader's own DeferredError) naming the
option; the module base adds that nothing was changed.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

from ansible_collections.deferred.libvirt.plugins.module_utils import _cinder as cinder
from ansible_collections.deferred.libvirt.plugins.module_utils._eligibility import DEFAULT_CLOCK_TOLERANCE
from ansible_collections.deferred.libvirt.plugins.module_utils import _quota as quota
from ansible_collections.deferred.libvirt.plugins.module_utils import _record
from ansible_collections.deferred.libvirt.plugins.module_utils import _retention as retention
from ansible_collections.deferred.libvirt.plugins.module_utils import _storage as storage
from ansible_collections.deferred.libvirt.plugins.module_utils import _views
from ansible_collections.deferred.libvirt.plugins.module_utils._duration import parse_duration
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import InputError, unchanged
from ansible_collections.deferred.libvirt.plugins.module_utils._state_dir._locks import LOCK_TIMEOUT

# Waiting dominates (shutdowns, boots), not CPU: this many domains at once by default (the parallel option's).
PARALLEL = 16
DEFAULT_RECLAIM_INTERVAL = 7 * 86400
DEFAULT_SHUTDOWN_TIMEOUT = 60
DEFAULT_RETRY_INTERVAL = 10
DEFAULT_START_TIMEOUT = 300
DEFAULT_MAX_OVERDUE = '30d'
DEFAULT_FLEET_MAX_AGE = '15m'


def param(params, name, default):
    """The option's value, or its default when not given (so operations run from plain dicts too)."""
    value = params.get(name)
    return default if value is None else value


class Group(object):
    """One option group: ARGSPEC, and ``read(params)`` giving an instance whose attributes are the typed values."""

    ARGSPEC = {}

    def __init__(self, **values):
        self.__dict__.update(values)

    def __repr__(self):
        return '%s(%s)' % (self.__class__.__name__, ', '.join('%s=%r' % kv for kv in sorted(self.__dict__.items())))


def spec(*groups):
    """One argument spec from the connection group, the fleet's Cinder declaration (every module takes both, so
    module_defaults for group/deferred.libvirt.all can set them) and ``groups`` (Group classes or plain dicts);
    later ones win."""
    merged = dict(Connection.ARGSPEC)
    merged.update(CinderDeclaration.ARGSPEC)
    for group in groups:
        merged.update(group if isinstance(group, dict) else group.ARGSPEC)
    return merged


class Connection(Group):
    """Where the hypervisor and the state_dir are."""

    ARGSPEC = dict(
        uri=dict(type='str', default='qemu:///system'),
        state_dir=dict(type='path', default='/var/lib/deferred-libvirt'),
    )

    @classmethod
    def read(cls, params):
        return cls(uri=param(params, 'uri', 'qemu:///system'), state_dir=params.get('state_dir'))


class CinderDeclaration(Group):
    """Whether the fleet has Cinder, declared once for every module (module_defaults): ``cinder`` true, false, or
    not said (None). False: terminated domains finish at once, a domain with recorded volumes is refused."""

    ARGSPEC = dict(cinder=dict(type='bool'))

    @classmethod
    def read(cls, params):
        declared = params.get('cinder')
        given = cinder.configured(params)
        if declared is False and given:
            raise InputError('cinder is false (this fleet has no Cinder) but Cinder options were given (%s): drop '
                             'one of them' % cinder.describe(params))
        return cls(declared=declared)


class Selection(Group):
    """Which domains: names or UUIDs, or a JMESPath query, within a project."""

    ARGSPEC = dict(
        name=dict(type='list', elements='str', aliases=['names']),
        query=dict(type='str'),
        project=dict(type='str'),
    )
    # Checked by AnsibleModule for a module that takes both.
    MUTUALLY_EXCLUSIVE = [['name', 'query']]

    @classmethod
    def read(cls, params, scoped=True):
        """``scoped`` False: the project option is not a scope (vm_attributes sets the owner with it)."""
        return cls(names=params.get('name'), query=params.get('query'),
                   project=params.get('project') if scoped else None)


class Lifecycle(Group):
    """What every changing operation shares: force past a lock, how long to wait for one, how many at once."""

    ARGSPEC = dict(
        force=dict(type='bool', default=False),
        lock_timeout=dict(type='raw', default=LOCK_TIMEOUT),
        parallel=dict(type='int', default=PARALLEL),
    )

    @classmethod
    def read(cls, params):
        parallel = params.get('parallel')
        if parallel is not None and parallel < 1:
            raise InputError('parallel must be 1 or more, got %d' % parallel)
        return cls(force=bool(params.get('force')),
                   lock_timeout=parse_duration(param(params, 'lock_timeout', LOCK_TIMEOUT), 'lock_timeout'),
                   parallel=parallel or PARALLEL)


class Storage(Group):
    """The instance directories: a file disk below one of them is the domain's own (rule 6 of docs/rules.md)."""

    ARGSPEC = dict(instance_dirs=dict(type='list', elements='path', default=storage.DEFAULT_INSTANCE_DIRS))

    @classmethod
    def read(cls, params):
        return cls(instance_dirs=storage.instance_dirs(params.get('instance_dirs')))


class Cinder(Group):
    """How to reach Cinder (openstack.cloud's option names) and how long to wait for a volume."""

    ARGSPEC = cinder.ARGS

    @classmethod
    def read(cls, params, no_log_values=None):
        """The run's cinder.Options (its connection is made on first use), with the fleet's declaration."""
        wait = parse_duration(param(params, 'volume_wait_timeout', cinder.DEFAULT_WAIT), 'volume_wait_timeout',
                              allow_zero=False)
        declared = CinderDeclaration.read(params).declared
        if declared is True and not cinder.configured(params):
            raise InputError('cinder is true (this fleet has Cinder) but neither cloud nor auth was given: say which '
                             'cloud to use, or declare cinder: false for a fleet without Cinder')
        return cinder.Options(params, wait, no_log_values, declared=declared)


class Fleet(Group):
    """The fleet option: fleet_index_for's output for this host, or None (rules 9 and 10), and how old it may be
    (fleet_max_age, 0: no limit; rule 12). Whether the slice is this host's and fresh is checked against the host's
    identity (``fleet.check_slice``), once the hypervisor is connected."""

    ARGSPEC = dict(fleet=dict(type='dict'), fleet_max_age=dict(type='raw', default=DEFAULT_FLEET_MAX_AGE),
                   fleet_required=dict(type='bool', default=False), fleet_run=dict(type='str'))

    @classmethod
    def read(cls, params):
        # fleet_required: a slice handed over from another job (the fleet workflow) that is missing, foreign or stale
        # makes the run one with an incomplete index (fleet.view_for) instead of a refusal or the single-host view.
        return cls(index=params.get('fleet'),
                   max_age=parse_duration(param(params, 'fleet_max_age', DEFAULT_FLEET_MAX_AGE), 'fleet_max_age'),
                   required=bool(params.get('fleet_required')), run=params.get('fleet_run') or None)


class Retention(Group):
    """The state_dir's own retention (vm_reclaim)."""

    ARGSPEC = retention.RETENTION_ARGS

    @classmethod
    def read(cls, params):
        """A RetentionOptions; InputError naming the option on bad input."""
        try:
            return retention.RetentionOptions.from_params(params)
        except retention.RetentionError as exc:
            raise InputError(str(exc))


class Shutdown(Group):
    """How a guest is stopped: a clean shutdown bounded by shutdown_timeout, the ACPI request repeated."""

    ARGSPEC = dict(
        shutdown_timeout=dict(type='raw'),
        shutdown_retry_interval=dict(type='raw', default=DEFAULT_RETRY_INTERVAL),
    )

    @classmethod
    def read(cls, params):
        return cls(timeout=parse_duration(params.get('shutdown_timeout'), 'shutdown_timeout'),
                   retry_interval=parse_duration(param(params, 'shutdown_retry_interval', DEFAULT_RETRY_INTERVAL),
                                                 'shutdown_retry_interval', allow_zero=False))


class SoftDelete(Group):
    """vm_soft_delete's own options (with the Shutdown group's)."""

    ARGSPEC = dict(
        reclaim_interval=dict(type='raw', default='7d'),
        mode=dict(type='str', default='shutdown', choices=list(_record.SOFT_DELETE_MODES)),
        # An effective reclaim_interval of 0 terminates at once: only with this confirmation.
        allow_terminate=dict(type='bool', default=False),
    )

    @classmethod
    def read(cls, params):
        return cls(reclaim_interval=parse_duration(param(params, 'reclaim_interval', DEFAULT_RECLAIM_INTERVAL),
                                                   'reclaim_interval'),
                   mode=params.get('mode') or 'shutdown', allow_terminate=bool(params.get('allow_terminate')))


class Restore(Group):
    """vm_restore's own options."""

    ARGSPEC = dict(
        quota=dict(type='dict'),
        usage=dict(type='dict'),
        start_timeout=dict(type='raw', default=DEFAULT_START_TIMEOUT),
        hard_reboot=dict(type='bool', default=False),
        move_from=dict(type='str'),
        move_to=dict(type='str'),
    )

    @classmethod
    def read(cls, params):
        own = cls(start_timeout=parse_duration(param(params, 'start_timeout', DEFAULT_START_TIMEOUT), 'start_timeout',
                                               allow_zero=False),
                  hard_reboot=bool(params.get('hard_reboot')), quota=params.get('quota'), usage=params.get('usage'),
                  move_from=params.get('move_from'), move_to=params.get('move_to'))
        if own.move_from is not None and params.get('name') is None:
            raise InputError('move_from needs name: say which domains to bring here')
        if own.move_to is not None and params.get('name') is None:
            raise InputError('move_to needs name: say which domains to mark as moving')
        if own.move_to is not None and own.move_from is not None:
            raise InputError('move_to and move_from are the two ends of a move: give move_to on the host that holds '
                             'the domain and move_from on the host it moves to, never both in one task')
        if own.quota is not None:
            try:
                quota.validate_limits(own.quota)
                if own.usage is not None:
                    quota.validate_limits(own.usage)
            except quota.QuotaError as exc:
                raise unchanged(exc)
        return own


class Reclaim(Group):
    """vm_reclaim's own options: how many, and what the sweep trusts of its clock (rule 11 of docs/rules.md)."""

    ARGSPEC = dict(
        project=dict(type='str'),
        limit=dict(type='int'),
        clock_tolerance=dict(type='raw', default=DEFAULT_CLOCK_TOLERANCE),
        max_overdue=dict(type='raw', default=DEFAULT_MAX_OVERDUE),
    )

    @classmethod
    def read(cls, params):
        limit = params.get('limit')
        if limit is not None and limit < 0:
            raise InputError('limit must be 0 or more, got %d' % limit)
        return cls(limit=limit, project=params.get('project'),
                   clock_tolerance=parse_duration(param(params, 'clock_tolerance', DEFAULT_CLOCK_TOLERANCE),
                                                  'clock_tolerance'),
                   max_overdue=parse_duration(param(params, 'max_overdue', DEFAULT_MAX_OVERDUE), 'max_overdue'))


class Attributes(Group):
    """vm_attributes' own options: the record fields to set (``project`` here sets the owner)."""

    SIMPLE = ('project', 'user', 'locked', 'lock_reason', 'protected')
    DURATIONS = ('reclaim_interval', 'shutdown_timeout')
    ARGSPEC = dict(
        project=dict(type='str'),
        user=dict(type='str'),
        locked=dict(type='bool'),
        lock_reason=dict(type='str'),
        protected=dict(type='bool'),
        reclaim_interval=dict(type='raw'),
        shutdown_timeout=dict(type='raw'),
        volumes=dict(type='list', elements='dict', options=dict(
            id=dict(type='str', required=True),
            target=dict(type='str'),
            delete_on_termination=dict(type='bool', default=False),
        )),
        force=dict(type='bool', default=False),
    )

    @classmethod
    def read(cls, params):
        """The record fields to set, from the options given; durations parsed (None clears)."""
        changes = {}
        for option in cls.SIMPLE:
            if params.get(option) is not None:
                changes[option] = params[option]
        if params.get('locked') is False and params.get('lock_reason') is None:
            # As Nova's unlock: the reason goes with the lock.
            changes['lock_reason'] = None
        for option in cls.DURATIONS:
            value = params.get(option)
            if value is None:
                continue
            changes[option] = None if str(value).strip().lower() == 'default' else parse_duration(value, option)
        if params.get('volumes') is not None:
            seen = set()
            volumes = []
            for vol in params['volumes']:
                if not vol.get('id') or not _record.UUIDISH.match(vol['id']):
                    raise InputError('volumes: %r is not a Cinder volume id' % vol.get('id'))
                if vol['id'] in seen:
                    raise InputError('volumes: %s is listed twice' % vol['id'])
                seen.add(vol['id'])
                volumes.append({'id': vol['id'], 'target': vol.get('target'),
                                'delete_on_termination': bool(vol.get('delete_on_termination'))})
            changes['volumes'] = volumes
        return cls(changes=changes, force=bool(params.get('force')))


class Info(Group):
    """vm_info's own option."""

    ARGSPEC = dict(include_deleted=dict(type='bool', default=False),
                   fields=dict(type='list', elements='str'),
                   facts=dict(type='bool', default=True))

    @classmethod
    def read(cls, params):
        fields = params.get('fields')
        if fields is not None:
            fields = [str(f).strip() for f in fields]
            unknown = _views.unknown_fields(fields)
            if not fields or unknown:
                raise InputError('fields: %s; the fields are %s' % (
                    'unknown field(s) %s' % ', '.join(repr(f) for f in unknown) if unknown else 'an empty list',
                    ', '.join(_views.FIELDS)))
            fields = list(dict.fromkeys(fields))
        return cls(include_deleted=bool(params.get('include_deleted')), fields=fields,
                   facts=params.get('facts') is not False)
