# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tenant strings are never code: Jinja planted in what a tenant can write never runs on the control node.

A tenant sets the user and lock reason with vm_attributes; the sweep writes a
locked, expired domain's lock reason into last_sweep.json as its skip reason;
the report slurps it back. Each playbook runs as an operator runs it against
the local hypervisor; no marker file may appear, and the strings come out
verbatim in the report's page and JSON. Domain names cannot carry the code:
the collection's name rule (and libvirt's) refuses ``{`` ``}`` ``%`` and spaces.
"""

import json
import os
import re
from xml.sax.saxutils import quoteattr

import libvirt

import pytest

from fleet_support import named_task, new_project, run_playbook, task_on, wait_past, write_inventory

pytestmark = pytest.mark.security


def _code(marker):
    return "INC-1 {{ lookup('pipe', 'touch %s') }} {%% set x = lookup('pipe', 'touch %s') %%}" % (marker, marker)


def set_attributes(ansible, inventory, tmp_path, **args):
    """vm_attributes on hv1 with every value !unsafe, as a tenant's own string reaches the module (never templated)."""
    lines = ['- hosts: hv1', '  gather_facts: false', '  tasks:', '    - deferred.libvirt.vm_attributes:',
             '        uri: "{{ deferred_libvirt_uri }}"', '        state_dir: "{{ deferred_libvirt_state_dir }}"']
    lines += ['        %s: !unsafe %s' % (key, json.dumps(value)) for key, value in args.items()]
    path = str(tmp_path / 'attributes.yml')
    with open(path, 'w') as handle:
        handle.write('\n'.join(lines) + '\n')
    return run_playbook(ansible, path, inventory).task(0, 'hv1')


def ok(result):
    assert not result.get('failed'), result
    return result


# Alone (exclusive): its report of every project would list other tests' domains too.
@pytest.mark.exclusive
def test_tenant_strings_never_run_as_jinja_in_any_playbook(ansible, make_guest, state_dir, tmp_path):
    marker = str(tmp_path / 'tenant-marker')
    code = _code(marker)
    inventory = write_inventory(str(tmp_path / 'inventory.json'), None, state_dir, hosts_over_ssh=())
    project, other = new_project(), new_project()
    held, dummy = make_guest('held', start=False)
    bystander, dummy = make_guest('other', start=False)
    ok(set_attributes(ansible, inventory, tmp_path, name=held, project=project, user=code))
    ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_attributes', name=bystander, project=other,
               user='bob'))
    deleted = run_playbook(ansible, 'deferred.libvirt.soft_delete', inventory, extra_vars=[
        {'names': [held], 'project': project, 'reclaim_interval': '2s'}])
    assert deleted.rc == 0, deleted.stdout
    ok(set_attributes(ansible, inventory, tmp_path, name=held, locked=True, lock_reason=code))
    info = ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_info', name=held))
    wait_past(info['instances'][0]['reclaim_at'])
    assert not os.path.exists(marker), 'the test planted the strings through a template'
    swept = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory)
    with open(os.path.join(state_dir, 'hv1', 'last_sweep.json')) as handle:
        skipped = json.load(handle)['skipped']
    assert [s['reason'] for s in skipped if s['name'] == held] == ['locked (%s)' % code], (skipped, swept.stdout)
    # Every report: the whole fleet, the tenant's project, and another project (which must not see the reason).
    for report_project, dest in ((None, 'all'), (project, 'mine'), (other, 'theirs')):
        extra = {'report_dest': str(tmp_path / dest)}
        if report_project:
            extra['report_project'] = report_project
        report = run_playbook(ansible, 'deferred.libvirt.report', inventory, extra_vars=[extra])
        assert report.rc in (0, 2), report.stdout
        with open(str(tmp_path / dest / 'trash-report.json')) as handle:
            data = json.load(handle)
        reasons = [s['reason'] for s in data['skipped']]
        if report_project == other:
            assert reasons == [] and code not in json.dumps(data)
        else:
            assert reasons == ['locked (%s)' % code], reasons
            assert [t['user'] for t in data['trash'] if t['name'] == held] == [code]
    # The trash playbook prints the owner and the lock reason verbatim.
    shown = run_playbook(ansible, 'deferred.libvirt.trash', inventory)
    assert shown.rc == 0, shown.stdout[-3000:]
    [line] = [item for item in named_task(shown, 'Show the trash', 'hv1')['msg'] if item.startswith('hv1/%s ' % held)]
    assert line.startswith('hv1/%s (project %s, owner %s): never reclaimed as it is (locked (%s)' % (
        held, project, code, code)), line
    restored = run_playbook(ansible, 'deferred.libvirt.restore', inventory, extra_vars=[
        {'names': [held], 'project': project, 'force': True}])
    terminated = run_playbook(ansible, 'deferred.libvirt.terminate', inventory, extra_vars=[
        {'names': [held], 'project': project, 'force': True}])
    assert not os.path.exists(marker), 'a tenant string ran on the control node:\n%s\n%s\n%s' % (
        swept.stdout[-3000:], restored.stdout[-3000:], terminated.stdout[-3000:])


def hand_edit_history(dom, message):
    """Add a history entry carrying ``message`` to the domain's record, as an operator's virsh metadata edit would."""
    namespace = 'urn:deferred-libvirt:lifecycle:1'
    text = dom.metadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, namespace, libvirt.VIR_DOMAIN_AFFECT_CONFIG)
    # libvirt gives the element back with its namespace; it takes it without (it adds prefix and xmlns itself).
    text = re.sub(r'\sxmlns(:\w+)?="[^"]*"', '', re.sub(r'(</?)\w+:', r'\1', text))
    entry = '<action action="note" request_id="req-hand" result="error" message=%s/>' % quoteattr(message)
    if re.search(r'<history\s*/>', text):
        text = re.sub(r'<history\s*/>', '<history>%s</history>' % entry, text)
    else:
        text = text.replace('</history>', entry + '</history>')
    dom.setMetadata(libvirt.VIR_DOMAIN_METADATA_ELEMENT, text, 'deferred', namespace, libvirt.VIR_DOMAIN_AFFECT_CONFIG)


def test_a_project_and_a_hand_edited_history_message_that_are_code_never_run(
        ansible, make_guest, hypervisor, state_dir, tmp_path):
    # The project a domain is given, a history message edited by hand into its record (virsh metadata), and the
    # domain's own name (libvirt takes braces and spaces in a name): all reach every fleet fact, the sweep's record
    # and the report. None is ever templated: the name comes out as it was given, not as 49.
    marker = str(tmp_path / 'tenant-marker')
    code = _code(marker)
    inventory = write_inventory(str(tmp_path / 'inventory.json'), None, state_dir, hosts_over_ssh=())
    held, uuid = make_guest('proj{{ 7 * 7 }}', start=False)
    ok(set_attributes(ansible, inventory, tmp_path, name=uuid, project=code, user='alice'))
    ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_soft_delete', name=uuid, reclaim_interval='2s'))
    hand_edit_history(hypervisor.lookupByName(held), code)
    info = ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_info', name=uuid))
    assert info['instances'][0]['name'] == held
    assert info['instances'][0]['project'] == code and info['instances'][0]['history'][-1]['message'] == code
    wait_past(info['instances'][0]['reclaim_at'])
    ok(set_attributes(ansible, inventory, tmp_path, name=uuid, locked=True, lock_reason='INC-2'))
    assert not os.path.exists(marker), 'the test planted the strings through a template'

    swept = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory)
    report = run_playbook(ansible, 'deferred.libvirt.report', inventory,
                          extra_vars=[{'report_dest': str(tmp_path / 'r')}])
    with open(str(tmp_path / 'r' / 'trash-report.json')) as handle:
        data = json.load(handle)
    assert [t['project'] for t in data['trash'] if t['name'] == held] == [code]
    with open(os.path.join(state_dir, 'hv1', 'last_sweep.json')) as handle:
        assert held in [s['name'] for s in json.load(handle)['skipped']]
    # The trash playbook: the project verbatim in the line, and never in the restore command it prints.
    shown = run_playbook(ansible, 'deferred.libvirt.trash', inventory)
    assert shown.rc == 0, shown.stdout[-3000:]
    [line] = [item for item in named_task(shown, 'Show the trash', 'hv1')['msg'] if item.startswith('hv1/%s ' % held)]
    assert line.startswith('hv1/%s (project %s, owner alice): ' % (held, code)), line
    assert line.endswith('; restore: ansible-playbook -i INVENTORY deferred.libvirt.restore -e names=%s' % uuid), line
    # By UUID: extra vars on the command line are the operator's own input, which Ansible templates by design.
    terminated = run_playbook(ansible, 'deferred.libvirt.terminate', inventory, extra_vars=[
        {'names': [uuid], 'force': True}])

    assert not os.path.exists(marker), 'a tenant string ran on the control node:\n%s\n%s\n%s\n%s' % (
        swept.stdout[-3000:], report.stdout[-3000:], shown.stdout[-3000:], terminated.stdout[-3000:])
    assert terminated.rc == 0, terminated.stdout[-3000:]
    assert held not in [d.name() for d in hypervisor.listAllDomains()]
