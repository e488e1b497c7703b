#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later

from __future__ import absolute_import, division, print_function
__metaclass__ = type

DOCUMENTATION = r'''
module: vm_attributes
short_description: Set what the deferred-delete lifecycle needs to know about libvirt domains
version_added: 0.1.0
description:
  - Sets the owner, guards, per-domain durations and Cinder volumes in the lifecycle record of each selected domain,
    kept in the domain's persistent libvirt metadata. A domain without a record gets one (it becomes managed).
  - Only the options given are changed; the others keep their values.
  - Unlike the other modules, O(project) here B(sets) the owning project rather than limiting the selection. Moving a
    domain that already belongs to another project needs O(force=true).
  - Setting O(locked) or O(protected) needs nothing; clearing either one on a domain that has it needs O(force=true),
    so a guard is never dropped by a task that only meant to change something else.
  - A write names this hypervisor as the record's host, except on a stale copy (a record naming another host), whose
    record keeps naming that host, so locking or relabelling the wrong copy never makes it the authoritative one
    (rule 9). O(force=true) claims such a copy for this hypervisor.
  - The event journal records the OS user that ran the task (C(os_user)) beside the actor the caller claims
    (C(actor), from the E(DEFERRED_LIBVIRT_ACTOR) environment variable, for example an AWX user).
extends_documentation_fragment:
  - deferred.libvirt.connection
  - deferred.libvirt.cinder
  - deferred.libvirt.connection.SELECTION
  - deferred.libvirt.attributes
  - deferred.libvirt.attributes.ACTIONGROUP
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
options:
  name:
    description:
      - The domains to change, by name or UUID; one or a list.
      - A name that matches no domain is an error; nothing is changed then.
      - Mutually exclusive with O(query); one of O(name) and O(query) is required.
  project:
    description:
      - The project that owns the domain, for quota and scoping. Does not limit the selection in this module.
  user:
    description:
      - The user that owns the domain.
    type: str
  locked:
    description:
      - Lock the domain against lifecycle operations. A locked domain is soft-deleted, restored or terminated only with
        O(deferred.libvirt.vm_soft_delete#module:force=true) (an admin override); the reclaim sweep skips it.
    type: bool
  lock_reason:
    description:
      - Why the domain is locked, shown in errors. Unlocking with O(locked=false) clears it unless it is given too.
      - Unlocking a locked domain needs O(force=true).
    type: str
  protected:
    description:
      - Protect the domain from deletion. Nothing soft-deletes, terminates or reclaims a protected domain, not even with
        C(force).
      - Removing the protection (O(protected=false) on a protected domain) needs O(force=true).
    type: bool
  reclaim_interval:
    description:
      - The domain's own retention after a soft delete, winning over the module default of
        M(deferred.libvirt.vm_soft_delete). Seconds or a string such as V(90s), V(15m), V(12h), V(7d).
      - V(default) removes the domain's own value.
    type: raw
  shutdown_timeout:
    description:
      - The domain's own time to wait for an ACPI shutdown before destroying it. Seconds or a duration string;
        V(0) destroys at once. V(default) removes the domain's own value.
    type: raw
  volumes:
    description:
      - The Cinder volumes of the domain, replacing the list in the record. V([]) clears it.
    type: list
    elements: dict
    suboptions:
      id:
        description: Cinder volume id.
        type: str
        required: true
      target:
        description: Target device of the volume in the guest, for example V(vdb).
        type: str
      delete_on_termination:
        description: Whether terminating the domain deletes the volume (else it is detached and kept).
        type: bool
        default: false
  force:
    description:
      - Allow moving a domain from one project to another, unlocking a locked domain (O(locked=false)) and removing
        a domain's protection (O(protected=false)). Without it those are refused for that domain and nothing is
        changed.
      - On a copy whose record names another hypervisor, make the record name this one (claim the copy as the
        authoritative one); without it the record keeps the other host.
    type: bool
    default: false
seealso:
  - module: deferred.libvirt.vm_info
    description: Read the lifecycle records this module writes.
  - module: deferred.libvirt.vm_soft_delete
    description: Soft delete a domain, with the retention set here.
  - module: deferred.libvirt.vm_terminate
    description: Terminate a domain and its recorded Cinder volumes.
author:
  - deferred.libvirt developers (!UNKNOWN)
'''

EXAMPLES = r'''
- name: Adopt two domains into project web, with a retention of three days
  deferred.libvirt.vm_attributes:
    name: [web01, web02]
    project: web
    user: alice
    reclaim_interval: 3d

- name: Lock one of them, so nothing deletes it without force
  deferred.libvirt.vm_attributes:
    name: web02
    locked: true
    lock_reason: keep until the migration is done

- name: Lock against accidental deletion during an incident
  deferred.libvirt.vm_attributes:
    name: web01
    locked: true
    lock_reason: INC-1234 under investigation

- name: Unlock it again when the incident is closed (clearing a guard needs force)
  deferred.libvirt.vm_attributes:
    name: web01
    locked: false
    force: true

- name: Record the Cinder volumes Nova-style
  deferred.libvirt.vm_attributes:
    name: db01
    volumes:
      - id: 0d8e4c9e-6f1a-4c8e-9d63-5a3b2e9e1f00
        target: vdb
        delete_on_termination: true
      - id: 7f3c2a10-1b2d-4e5f-8a9b-0c1d2e3f4a5b
        target: vdc
'''

RETURN = r'''
instances:
  description: One result per domain, with the record after the change.
  returned: always
  type: list
  elements: dict
  contains:
    name: {description: Domain name., type: str}
    uuid: {description: Domain UUID., type: str}
    changed: {description: "Whether the record changed (or would, in check mode).", type: bool}
    failed: {description: Whether this domain failed., type: bool}
    msg: {description: Why it failed., type: str}
    record: {description: "The lifecycle record after the change, as M(deferred.libvirt.vm_info) reports it.", type: dict}
request_id:
  description: The id of this request, as in the event journal.
  returned: always
  type: str
'''

from ansible_collections.deferred.libvirt.plugins.module_utils._ops import _attributes as attributes
from ansible_collections.deferred.libvirt.plugins.module_utils._module import LifecycleModule


def main():
    LifecycleModule(attributes.ARGUMENT_SPEC, require_selection=True).run(attributes)


if __name__ == '__main__':
    main()
