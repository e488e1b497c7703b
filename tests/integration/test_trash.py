# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash in the operator's words on the real hypervisor: the trash playbook's lines, the report page (overdue
apart from due soon, sizes, who deleted each domain, its restore command, the project filter) in chromium, and the
empty_trash playbook (confirmation, check mode, the real run), each run as an operator runs it."""

import json
import os
import shutil

import guests
from fleet_support import named_task, new_project, run_playbook, task_on, wait_past, write_inventory
from test_report import CHROMIUM, CHROMIUM_ARGS

IMAGES = '/var/lib/libvirt/images'
ACTOR = 'alice@awx'


def ok(result):
    assert not result.get('failed'), result
    return result


def soft_delete(ansible, inventory, name, project, interval, user='alice', actor=ACTOR):
    """Give the domain its owner, then soft-delete it as the AWX user ``actor`` (as AWX's job passes it)."""
    ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_attributes', name=name, project=project, user=user))
    play = {'hosts': 'hv1', 'gather_facts': False, 'tasks': [{'name': 'soft delete', 'deferred.libvirt.vm_soft_delete': {
        'uri': '{{ deferred_libvirt_uri }}', 'state_dir': '{{ deferred_libvirt_state_dir }}', 'name': name,
        'reclaim_interval': interval}}]}
    result = ok(run_playbook(ansible, [play], inventory, env={'DEFERRED_LIBVIRT_ACTOR': actor}).task(0, 'hv1'))
    return result['instances'][0]['reclaim_at']


def test_the_trash_in_the_operators_words_on_the_page_and_in_the_trash_playbook(ansible, make_guest, state_dir,
                                                                                tmp_path, scratch):
    from playwright.sync_api import sync_playwright
    inventory = write_inventory(str(tmp_path / 'inventory.json'), None, state_dir, hosts_over_ssh=())
    project, other = new_project(), new_project()
    disk = guests.make_disk(scratch(IMAGES, 'late.qcow2'), size='64M')
    late, late_uuid = make_guest('late', start=False, disks=[{'path': disk, 'target': 'vdb'}])
    soon, soon_uuid = make_guest('soon', start=False)
    theirs, theirs_uuid = make_guest('theirs', start=False)
    late_at = soft_delete(ansible, inventory, late, project, '2s')
    soft_delete(ansible, inventory, soon, project, '2h')
    soft_delete(ansible, inventory, theirs, other, '3d', user='bob', actor='bob')
    wait_past(late_at)

    # The trash playbook: one line per domain of the project, in the operator's words.
    shown = run_playbook(ansible, 'deferred.libvirt.trash', inventory, extra_vars=[{'project': project}])
    assert shown.rc == 0, shown.stdout[-3000:]
    lines = named_task(shown, 'Show the trash', 'hv1')['msg']
    size = os.stat(disk).st_blocks * 512
    restore = 'ansible-playbook -i INVENTORY deferred.libvirt.restore -e names=%s -e project=%s' % (late_uuid, project)
    [line] = [item for item in lines if item.startswith('hv1/%s ' % late)]
    assert line.startswith('hv1/%s (project %s, owner alice): overdue by ' % (late, project)), line
    assert ' on disk, deleted by %s at ' % ACTOR in line and line.endswith('; restore: ' + restore)
    assert [item.split(' ')[0] for item in lines] == ['hv1/%s' % late, 'hv1/%s' % soon]
    assert all(theirs not in item for item in lines)

    # The report over every project: overdue apart from due soon, the size, who deleted it, how to restore it.
    dest = str(tmp_path / 'report')
    report = run_playbook(ansible, 'deferred.libvirt.report', inventory, extra_vars=[{'report_dest': dest}])
    assert report.rc == 0, report.stdout[-3000:]
    with open(os.path.join(dest, 'trash-report.json')) as handle:
        data = json.load(handle)
    items = dict((i['name'], i) for i in data['trash'])
    assert (items[late]['overdue'], items[late]['due_soon'], items[soon]['overdue'], items[soon]['due_soon']) == (
        True, False, False, True)
    assert items[late]['disk_bytes'] == size > 0 and items[late]['deleted_by'] == ACTOR
    assert items[late]['restore_command'] == restore
    assert late in [i['name'] for i in data['overdue']] and late not in [i['name'] for i in data['due_soon']]
    assert data['projects'][project]['disk_bytes'] == size and data['totals']['disk_bytes'] >= size

    profile = str(tmp_path / 'chromium-profile')
    errors = []
    visible = 'rows => rows.filter(r => r.offsetParent !== null).map(r => r.getAttribute("data-uuid"))'
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.on('pageerror', lambda exc: errors.append(str(exc)))
            page.goto('file://' + os.path.join(dest, 'trash-report.html'))
            page.wait_for_load_state('load')
            overdue, due = page.inner_text('#overdue'), page.inner_text('#due-soon')
            row = page.inner_text('#trash tr[data-uuid="%s"]' % late_uuid)
            before = page.eval_on_selector_all('#trash tbody tr', visible)
            page.select_option('#project-filter', project)
            mine = page.eval_on_selector_all('#trash tbody tr', visible)
            projects = page.eval_on_selector_all('#projects tbody tr', 'rows => rows.filter(r => r.offsetParent '
                                                 '!== null).map(r => r.getAttribute("data-project"))')
            page.select_option('#project-filter', '')
            after = page.eval_on_selector_all('#trash tbody tr', visible)
        finally:
            browser.close()
            shutil.rmtree(profile, ignore_errors=True)
    assert errors == []
    assert late in overdue and soon not in overdue
    assert soon in due and late not in due
    assert ACTOR in row and restore in row and 'alice' in row
    assert set([late_uuid, soon_uuid, theirs_uuid]) <= set(before)
    assert set([late_uuid, soon_uuid]) <= set(mine) and theirs_uuid not in mine
    assert projects == [project]
    assert set(before) == set(after)


def test_empty_trash_asks_for_the_project_twice_shows_what_it_would_do_then_terminates_only_that_trash(
        ansible, make_guest, hypervisor, state_dir, tmp_path, scratch):
    inventory = write_inventory(str(tmp_path / 'inventory.json'), None, state_dir, hosts_over_ssh=())
    project, other = new_project(), new_project()
    disk = guests.make_disk(scratch(IMAGES, 'gone.qcow2'))
    gone, dummy = make_guest('gone', start=False, disks=[{'path': disk, 'target': 'vdb'}])
    held, dummy = make_guest('held', start=False)
    kept, dummy = make_guest('kept', start=False)
    theirs, dummy = make_guest('theirs', start=False)
    soft_delete(ansible, inventory, gone, project, '7d')
    soft_delete(ansible, inventory, held, project, '7d')
    ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_attributes', name=held, locked=True,
               lock_reason='legal hold'))
    ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_attributes', name=kept, project=project))
    soft_delete(ansible, inventory, theirs, other, '7d')
    names = [gone, held, kept, theirs]

    def defined():
        return sorted(n for n in names if n in [d.name() for d in hypervisor.listAllDomains()])

    # Without the confirmation, or with another project's name as confirmation: refused, nothing changed.
    for extra in ({'project': project}, {'project': project, 'confirm': other}):
        refused = run_playbook(ansible, 'deferred.libvirt.empty_trash', inventory, extra_vars=[extra])
        assert refused.rc != 0
        msg = named_task(refused, 'Ask for the confirmation', 'hv1')['msg']
        assert 'confirm with -e confirm=%s' % project in msg and msg.endswith('nothing was changed')
        assert defined() == sorted(names) and os.path.exists(disk)

    # --check: what a real run would terminate, and what it keeps; nothing changed.
    check = run_playbook(ansible, 'deferred.libvirt.empty_trash', inventory, extra_vars=[{'project': project}],
                         check=True)
    assert check.rc == 0, check.stdout[-3000:]
    said = named_task(check, 'Say what was terminated (or would be, under --check) and what was kept', 'hv1')['msg']
    assert said == ['hv1/%s: would terminate; disks deleted: %s' % (gone, disk), 'kept (protected or locked): hv1/%s' % held]
    assert defined() == sorted(names) and os.path.exists(disk)

    real = run_playbook(ansible, 'deferred.libvirt.empty_trash', inventory,
                        extra_vars=[{'project': project, 'confirm': project}])
    assert real.rc == 0, real.stdout[-3000:]
    said = named_task(real, 'Say what was terminated (or would be, under --check) and what was kept', 'hv1')['msg']
    assert said == ['hv1/%s: terminated; disks deleted: %s' % (gone, disk), 'kept (protected or locked): hv1/%s' % held]
    assert defined() == sorted([held, kept, theirs]) and not os.path.exists(disk)
    states = dict((i['name'], i['vm_state']) for i in ok(task_on(
        ansible, inventory, 'hv1', 'deferred.libvirt.vm_info', include_deleted=True, project=project))['instances'])
    assert states == {gone: 'deleted', held: 'soft_deleted', kept: 'stopped'}

    # Again: the trash of the project holds nothing more to terminate (the locked domain is still kept).
    again = run_playbook(ansible, 'deferred.libvirt.empty_trash', inventory,
                         extra_vars=[{'project': project, 'confirm': project}])
    assert again.rc == 0, again.stdout[-3000:]
    said = named_task(again, 'Say what was terminated (or would be, under --check) and what was kept', 'hv1')['msg']
    assert said == ['the trash of project %s holds nothing to terminate' % project,
                    'kept (protected or locked): hv1/%s' % held]
