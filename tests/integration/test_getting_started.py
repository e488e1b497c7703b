# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""docs/getting-started.md, followed step by step on the test bed: every block the page marks ``step`` is run in
order, as written, in a fresh directory, against an inventory of the page's layout (its group, host names and
variables) whose hosts are the test bed's hypervisors (hv1.example.com is this machine's libvirtd, hv2.example.com
the fleet's hv2 over SSH). The page's guest, web01, is a real QEMU guest on hv1.

What the test adds to the page is only what the test bed needs: how each host is reached (local, or SSH to hv2's
port), a state directory per host, and, for the timer, paths that keep the role out of the machine's /etc (extra
vars on the command). A page whose commands fail, or say something else than what the operator is told, fails it.
"""

import json
import os
import re
import subprocess

import pytest
import yaml

import guests
from fleet_support import PYTHON, fleet_up, ssh_host_vars

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAGE = os.path.join(ROOT, 'docs', 'getting-started.md')
STEP = re.compile(r'<!-- step: (file (?P<path>\S+)|run(?P<timer> timer)?) -->\n```(?P<lang>\w+)\n(?P<body>.*?)```',
                  re.S)


def steps():
    with open(PAGE) as handle:
        return [(m.group('path'), bool(m.group('timer')), m.group('body')) for m in STEP.finditer(handle.read())]


@pytest.fixture
def web01(hypervisor):
    guests.destroy_all(hypervisor, 'web01')
    name = guests.define_guest(hypervisor, 'web01', start=True).name()
    yield name
    guests.destroy_all(hypervisor, 'web01')


def test_the_page_has_the_steps_the_test_follows():
    found = steps()
    files = [path for path, dummy, dummy in found if path]
    assert files == ['inventory/hypervisors.yml', 'timer.yml']
    assert len([1 for path, dummy, dummy in found if not path]) == 6


def test_getting_started_followed_step_by_step_on_the_test_bed(web01, hypervisor, tmp_path):
    fleet = fleet_up()
    work = tmp_path / 'operator'
    work.mkdir()
    collections = tmp_path / 'collections'
    env = dict(os.environ, PATH='%s:%s' % (os.path.dirname(PYTHON), os.environ['PATH']), CHECKOUT=ROOT,
               ANSIBLE_COLLECTIONS_PATH=str(collections), ANSIBLE_NOCOLOR='1', ANSIBLE_HOST_KEY_CHECKING='False')
    for key in ('ANSIBLE_CALLBACK_PLUGINS', 'ANSIBLE_STDOUT_CALLBACK', 'ANSIBLE_CONFIG'):
        env.pop(key, None)
    timer_base = tmp_path / 'timer'
    timer_vars = {
        'reclaim_timer_script': str(timer_base / 'bin' / 'reclaim'),
        'reclaim_timer_lock_file': str(timer_base / 'reclaim.lock'),
        'reclaim_timer_unit_dir': str(timer_base / 'units'),
        'reclaim_timer_cron_file': str(timer_base / 'cron.d' / 'reclaim'),
        'reclaim_timer_log_file': str(timer_base / 'log' / 'reclaim.log'),
        'reclaim_timer_logrotate_dir': str(timer_base / 'logrotate.d'),
        'reclaim_timer_extra_vars_file': str(timer_base / 'etc' / 'reclaim.vars.json'),
        'reclaim_timer_skip_count_file': str(timer_base / 'reclaim.skipped'),
        'reclaim_timer_clock_file': str(timer_base / 'state' / 'clock'),
        'reclaim_timer_backend': 'cron', 'reclaim_timer_manage_cron': False,
        'reclaim_timer_extra_vars': {'reclaim_project': 'web'},
    }
    for key in ('reclaim_timer_script', 'reclaim_timer_cron_file'):
        os.makedirs(os.path.dirname(timer_vars[key]), exist_ok=True)
    (tmp_path / 'timer-vars.json').write_text(json.dumps(timer_vars))

    outputs = []
    for path, timer, body in steps():
        if path:
            text = body
            if path == 'inventory/hypervisors.yml':
                text = inventory_of_the_test_bed(body, fleet, str(tmp_path / 'state'))
            target = work / path
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(text)
            continue
        for line in body.strip().splitlines():
            command = line + (' -e @%s' % (tmp_path / 'timer-vars.json') if timer else '')
            proc = subprocess.run(['bash', '-c', command], cwd=str(work), env=env, capture_output=True, text=True,
                                  timeout=900, check=False)
            assert proc.returncode == 0, '%s\n%s\n%s' % (line, proc.stdout[-4000:], proc.stderr[-2000:])
            outputs.append((line, proc.stdout))

    # What the operator is told the commands do, they do: the ad hoc soft delete and restore ...
    soft = [out for line, out in outputs if 'vm_soft_delete' in line][0]
    assert '"soft_deleted"' in soft and '"reclaim_at"' in soft
    restored = [out for line, out in outputs if 'vm_restore' in line][0]
    assert '"action": "restored"' in restored
    assert "web01" in [out for line, out in outputs if 'soft_deleted' in line and 'vm_info' in line][0]
    # ... the playbooks, which leave web01 soft-deleted on hv1 ...
    assert len([line for line, dummy in outputs if 'deferred.libvirt.soft_delete' in line]) == 2
    assert not hypervisor.lookupByName(web01).isActive()
    # ... the timer, whose script sweeps the fleet (web01 is not due: kept) ...
    with open(timer_vars['reclaim_timer_cron_file']) as handle:
        assert timer_vars['reclaim_timer_script'] in handle.read()
    sweep = subprocess.run([timer_vars['reclaim_timer_script']], env=env, capture_output=True, text=True,
                           timeout=900, check=False)
    log = sweep.stdout  # the cron entry appends this to the log file; run by hand, it is the command's output
    assert sweep.returncode == 0, log[-4000:] + sweep.stderr[-2000:]
    assert 'reclaimed 0, failed 0, skipped 0, kept 1' in log, log[-4000:]
    assert web01 in [d.name() for d in hypervisor.listAllDomains()]
    # ... and the report, which lists web01 in the trash.
    with open(str(work / 'trash' / 'trash-report.json')) as handle:
        report = handle.read()
    assert 'web01' in report
    assert os.path.getsize(str(work / 'trash' / 'trash-report.html')) > 0


def inventory_of_the_test_bed(page_inventory, fleet, state_root):
    """The page's inventory with the test bed's way to each host added: same group, host names and variables."""
    data = yaml.safe_load(page_inventory)
    group = data['hypervisors']
    assert sorted(group['hosts']) == ['hv1.example.com', 'hv2.example.com']
    reach = {
        'hv1.example.com': {'ansible_connection': 'local', 'ansible_python_interpreter': PYTHON},
        'hv2.example.com': dict((k, v) for k, v in ssh_host_vars(fleet, 'hv2', '').items()
                                if k.startswith('ansible_') or k == 'deferred_libvirt_uri'),
    }
    for host in group['hosts']:
        group['hosts'][host] = dict(reach[host], deferred_libvirt_state_dir=os.path.join(state_root, host))
    # The page's group variables stay, except how to log in (the test bed's hosts are reached as above).
    for key in ('ansible_user', 'ansible_become'):
        group['vars'].pop(key)
    return yaml.safe_dump(data)
