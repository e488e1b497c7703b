#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_soft_delete
short_description: Soft delete libvirt domains, recoverable until their reclaim_at
version_added: 0.1.0
description:
  - Shuts each selected domain down the way a guest expects (an ACPI shutdown, re-sent every
    O(shutdown_retry_interval) until O(shutdown_timeout), then a destroy), or saves its memory with O(mode=managed_save),
    and marks it V(soft_deleted) with C(deleted_at) and a C(reclaim_at) fixed now. Its quota is released.
  - The domain stays defined and its disks and volumes are untouched, so M(deferred.libvirt.vm_restore) can bring it
    back until C(reclaim_at); then the reclaim sweep (M(deferred.libvirt.vm_reclaim)) terminates it.
  - Soft-deleting an already soft-deleted domain changes nothing and keeps its C(deleted_at) and C(reclaim_at); the
    retention clock is not reset.
  - A domain left in C(task_state=soft_deleting) by an interrupted run is finished by running the module again.
  - Many domains shut down concurrently, so a batch takes about as long as its slowest guest.
  - With an effective C(reclaim_interval) of V(0) (as Nova's C(reclaim_instance_interval=0)), the domain is terminated
    at once, as M(deferred.libvirt.vm_terminate) does, after the same clean shutdown, and only with
    O(allow_terminate=true). Without it the task is refused before anything changes, naming every domain of the batch
    an interval of V(0) would terminate (the task's, or a domain's own); no domain is shut down. With it, each
    terminated domain's result says so with a warning, C(action=terminated) and its C(msg).
  - Naming a terminated domain again later with C(reclaim_interval=0) is a no-op (C(already terminated)); naming a
    terminated domain with any other C(reclaim_interval) is an error, since it cannot be recovered.
  - That terminate checks the Cinder configuration as M(deferred.libvirt.vm_terminate) does, before the shutdown. A
    domain with volumes to settle and an unknown O(cloud), missing or refused authentication or an unreachable
    Keystone is refused and left as it was (still running). O(cinder=false) finishes a domain without volumes at once
    and refuses one with volumes.
extends_documentation_fragment:
  - deferred.libvirt.connection
  - deferred.libvirt.cinder
  - deferred.libvirt.connection.SELECTION
  - deferred.libvirt.lifecycle
  - deferred.libvirt.lifecycle.FORCE
  - deferred.libvirt.lifecycle.TERMINATE
  - deferred.libvirt.openstack
  - deferred.libvirt.fleet
  - deferred.libvirt.attributes
  - deferred.libvirt.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
    details:
      - Reports which domains would be soft-deleted and their C(reclaim_at).
      - With an effective C(reclaim_interval) of V(0), refused without O(allow_terminate) as a real run is; with it,
        C(action=would_terminate) and a warning that the domain would be terminated.
  diff_mode:
    support: full
options:
  name:
    description:
      - The domains to soft delete, by name or UUID; one or a list.
      - A name that matches no domain is an error, and so is a domain of another O(project); nothing is changed then.
      - Mutually exclusive with O(query); one of O(name) and O(query) is required.
  reclaim_interval:
    description:
      - How long a soft-deleted domain stays recoverable. The domain's own
        O(deferred.libvirt.vm_attributes#module:reclaim_interval) wins over this.
      - Seconds or a string such as V(90s), V(15m), V(12h), V(7d). V(0) (or V(0s), V(0d)) terminates at once, and
        only with O(allow_terminate=true).
    type: raw
    default: 7d
  allow_terminate:
    description:
      - Confirms that a domain whose effective C(reclaim_interval) is V(0) (this task's, or the domain's own set with
        M(deferred.libvirt.vm_attributes)) is terminated at once, with its disks and volumes, instead of soft-deleted.
      - When V(false) and the batch holds such a domain, the whole task is refused before anything changes, with the
        domains' names in the message and in C(refused).
      - Has no effect on domains with a C(reclaim_interval) above V(0).
    type: bool
    default: false
  shutdown_timeout:
    description:
      - How long to wait for the guest's own ACPI shutdown before destroying it. V(0) destroys at once.
      - When not set, the domain's own O(deferred.libvirt.vm_attributes#module:shutdown_timeout) applies, else 60 seconds.
    type: raw
  shutdown_retry_interval:
    description:
      - How often to re-send the ACPI shutdown while waiting; a shutdown sent before the guest listens is lost.
    type: raw
    default: 10
  mode:
    description:
      - V(shutdown) shuts the guest down. V(managed_save) saves its memory with libvirt's managed save instead, so a
        restore resumes it where it was.
    type: str
    choices: [shutdown, managed_save]
    default: shutdown
seealso:
  - module: deferred.libvirt.vm_restore
    description: Bring a soft-deleted domain back before its reclaim_at.
  - module: deferred.libvirt.vm_reclaim
    description: The sweep that terminates soft-deleted domains once their reclaim_at has passed.
  - module: deferred.libvirt.vm_terminate
    description: Terminate at once, without a retention window.
  - module: deferred.libvirt.vm_attributes
    description: Set a domain's own retention, lock or protection.
author:
  - deferred.libvirt developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Soft delete two guests, keep them for three days
  deferred.libvirt.vm_soft_delete:
    name: [web01, web02]
    project: web
    reclaim_interval: 3d

- name: Soft delete project ci's stopped and running guests, saving the memory of the running ones
  deferred.libvirt.vm_soft_delete:
    project: ci
    query: "[?vm_state=='stopped' || vm_state=='active']"
    mode: managed_save

- name: Delete a guest for good at once (reclaim_interval 0 needs allow_terminate)
  deferred.libvirt.vm_soft_delete:
    name: scratch01
    reclaim_interval: 0
    allow_terminate: true

- name: A guest that is slow to shut down
  deferred.libvirt.vm_soft_delete:
    name: db01
    shutdown_timeout: 5m
    shutdown_retry_interval: 30s
'''

RETURN = r'''
instances:
  description: One result per selected domain.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Domain name., type: str}
    uuid: {description: Domain UUID., type: str}
    changed: {description: "Whether the domain was (or would be, in check mode) soft-deleted.", type: bool}
    failed: {description: Whether this domain failed., type: bool}
    msg: {description: "Why it failed, or a note.", type: str}
    action:
      description:
        - V(soft_deleted), V(none) (already soft-deleted, or already terminated), V(would_soft_delete) (check mode).
        - With an effective C(reclaim_interval) of V(0) and O(allow_terminate), V(terminated) or V(would_terminate),
          with the fields M(deferred.libvirt.vm_terminate) returns, a warning and a C(msg) that say the domain was
          (or would be) terminated, not soft-deleted; or V(pending_finished) when a re-run finished the Cinder work of an
          earlier terminate.
      type: str
    resumed: {description: Whether this run finished an interrupted soft delete., type: bool}
    deleted_at: {description: When it was soft-deleted (UTC ISO 8601)., type: str}
    reclaim_at: {description: When the reclaim sweep may terminate it (UTC ISO 8601)., type: str}
    mode: {description: "How it was soft-deleted: V(managed_save) when its memory was saved, else V(shutdown).", type: str}
    clean_shutdown: {description: Whether the guest shut down by itself (false when it was destroyed)., type: bool}
    shutdown_attempts: {description: How many ACPI shutdowns were sent., type: int}
    shutdown_sent_at:
      description: When each ACPI shutdown was sent, in seconds after the shutdown began (re-sent every O(shutdown_retry_interval)).
      type: list
      elements: float
    shutdown_timeout: {description: "The shutdown timeout that applied, in seconds: the task's, else the domain's own, else 60.", type: int}
    shutdown_seconds: {description: How long the shutdown took., type: float}
    shutdown_seen_by:
      description:
        - How the end of the shutdown was seen. V(event) is libvirt's STOPPED lifecycle event, which ends the wait as
          soon as the domain stops. V(poll) is a read of the power state, made every 0.1 s when the connection
          delivers no events and every 0.5 s beside the event in case it never comes. Null when there was no
          wait (the domain was already off, was saved with managed save, or was destroyed at the timeout).
      type: str
      choices: [event, poll]
    seconds: {description: How long the whole soft delete of this domain took., type: float}
    record: {description: "The lifecycle record after, as M(deferred.libvirt.vm_info) reports it.", type: dict}
request_id:
  description: The id of this request, as in the event journal and the domains' history.
  returned: always
  type: str
refused:
  description:
    - The domains an effective C(reclaim_interval) of V(0) would have terminated, when the task was refused for want
      of O(allow_terminate); nothing was changed.
  returned: when refused for want of allow_terminate
  type: list
  elements: str
'''

from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _soft_delete as soft_delete
from ansible_collections.deferred.libvirt.plugins.module_utils._module import LifecycleModule


def main():
    LifecycleModule(soft_delete.ARGUMENT_SPEC, require_selection=True).run(soft_delete)


if __name__ == '__main__':
    main()
