# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim_timer role: what it installs, and that what it installs really sweeps the fleet.

This machine has no systemd as PID 1, so the systemd units are checked with
``systemd-analyze verify`` (the systemd package is installed, not booted) and
the cron path runs for real: the command of the cron entry is run exactly as
cron runs it, and once the system's own cron daemon runs the sweep on its
schedule. Every sweep is scoped to the test's project (an extra var baked into
the timer's command) and uses the two-host fleet of fleet_support.py. The
systemd units running under a real systemd are tested in tests/systemd/.
"""

import fcntl
import json
import os
import re
import threading
import shutil
import stat
import subprocess
import time
import uuid as uuidlib

import pytest

import kernel_clock
from fleet_support import (Hv2Guests, fleet_up, new_project, run_as_operator, run_playbook, task_on, wait_past,
                           write_inventory)

ATTRS = 'deferred.libvirt.vm_attributes'
SOFT_DELETE = 'deferred.libvirt.vm_soft_delete'
# What cron gives a job: the PATH of the cron file, HOME and SHELL, nothing of the test's environment.
CRON_ENV_KEYS = ('SHELL', 'PATH')


@pytest.fixture(scope='module')
def fleet(hypervisor):
    return fleet_up()


@pytest.fixture
def hv2(fleet, prefix):
    guests2 = Hv2Guests(fleet, prefix)
    yield guests2
    guests2.close()


@pytest.fixture
def inventory(fleet, state_dir, tmp_path):
    return write_inventory(str(tmp_path / 'inventory.json'), fleet, state_dir)


@pytest.fixture
def project():
    return new_project()


@pytest.fixture
def timer_name():
    return 'deferred-libvirt-reclaim-t%s' % uuidlib.uuid4().hex[:8]


def timer_play(tmp_path, inventory, project, timer_name, **role_vars):
    """The role's vars (files under tmp_path unless role_vars say otherwise) and a play applying it on the control node."""
    base = str(tmp_path / 'timer')
    os.makedirs(base, exist_ok=True)
    args = {
        'reclaim_timer_name': timer_name,
        'reclaim_timer_inventory': inventory,
        'reclaim_timer_extra_vars': {'reclaim_project': project},
        'reclaim_timer_script': os.path.join(base, 'bin', timer_name),
        'reclaim_timer_lock_file': os.path.join(base, timer_name + '.lock'),
        'reclaim_timer_unit_dir': os.path.join(base, 'units'),
        'reclaim_timer_cron_file': os.path.join(base, 'cron.d', timer_name),
        'reclaim_timer_log_file': os.path.join(base, 'log', timer_name + '.log'),
        'reclaim_timer_logrotate_dir': os.path.join(base, 'logrotate.d'),
        'reclaim_timer_manage_cron': False,
        'reclaim_timer_extra_vars_file': os.path.join(base, 'etc', timer_name + '.vars.json'),
        'reclaim_timer_skip_count_file': os.path.join(base, timer_name + '.skipped'),
        'reclaim_timer_clock_file': os.path.join(base, 'state', 'clock'),
    }
    args.update(role_vars)
    for key in ('reclaim_timer_script', 'reclaim_timer_cron_file'):
        os.makedirs(os.path.dirname(args[key]), exist_ok=True)
    play = [{'hosts': 'localhost', 'connection': 'local', 'gather_facts': False,
             'roles': [{'role': 'deferred.libvirt.reclaim_timer', 'vars': args}]}]
    return args, play


def install(ansible, tmp_path, inventory, project, timer_name, **role_vars):
    """Run the reclaim_timer role on the control node; files go under tmp_path unless role_vars say otherwise."""
    args, play = timer_play(tmp_path, inventory, project, timer_name, **role_vars)
    result = run_playbook(ansible, play, 'localhost,')
    assert result.rc == 0, result.stdout[-4000:]
    return args, result


def expired_on_both_hosts(ansible, inventory, make_guest, hv2, project):
    """One domain per host, soft-deleted 2 s ago and so due; returns their names after reclaim_at has passed."""
    a, a_uuid = make_guest('a', start=False)
    b, b_uuid = hv2.make('b')
    last = None
    for host, name in (('hv1', a), ('hv2', b)):
        result = task_on(ansible, inventory, host, ATTRS, name=name, project=project)
        assert not result.get('failed'), result
        result = task_on(ansible, inventory, host, SOFT_DELETE, name=name, project=project, reclaim_interval='2s')
        assert not result.get('failed'), result
        last = result['instances'][0]['reclaim_at']
    wait_past(last)
    return a, b


def cron_line(path):
    """(schedule, user, command) of the one job line of a cron.d file, and its variables."""
    variables, jobs = {}, []
    with open(path) as handle:
        for line in handle:
            line = line.strip()
            if not line or line.startswith('#'):
                continue
            if '=' in line.split()[0]:
                key, value = line.split('=', 1)
                variables[key] = value
                continue
            fields = line.split(None, 6)
            jobs.append((' '.join(fields[:5]), fields[5], fields[6]))
    [job] = jobs
    return job, variables


def run_as_cron(command, variables, clock=None, wrap=None):
    """Run a cron job's command as cron does: /bin/sh -c, with only the cron file's variables, HOME and LOGNAME.
    ``clock``: libfaketime's variables (a wall clock stepped on this host); ``wrap``: a function of the argv (a run
    on a host that has just rebooted, kernel_clock.as_if_rebooted)."""
    env = dict((k, variables[k]) for k in CRON_ENV_KEYS if k in variables)
    env.update(HOME='/root', LOGNAME='root')
    env.update(clock or {})
    argv = [variables.get('SHELL', '/bin/sh'), '-c', command]
    return subprocess.run(wrap(argv) if wrap else argv, env=env, capture_output=True, text=True, timeout=900,
                          check=False)


def domain_names(conn):
    return [d.name() for d in conn.listAllDomains()]


# -- systemd --------------------------------------------------------------------------------------------------------

def test_systemd_units_pass_systemd_analyze_verify(ansible, tmp_path, inventory, project, timer_name):
    analyze = shutil.which('systemd-analyze')
    if analyze is None:
        pytest.fail('systemd-analyze is missing: apt-get install --no-install-recommends systemd (it installs '
                    'without becoming the init)')
    args, result = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='systemd',
                           reclaim_timer_on_calendar='*:0/10', reclaim_timer_randomized_delay=30)
    units = [os.path.join(args['reclaim_timer_unit_dir'], timer_name + suffix) for suffix in ('.service', '.timer')]

    verify = subprocess.run([analyze, 'verify'] + units, capture_output=True, text=True, check=False)

    assert verify.returncode == 0, verify.stderr
    assert verify.stderr == '' and verify.stdout == ''
    with open(units[0]) as handle:
        service = handle.read()
    with open(units[1]) as handle:
        timer = handle.read()
    assert 'ExecStart=%s\n' % args['reclaim_timer_script'] in service
    assert 'Type=oneshot\n' in service and 'StandardOutput=journal\n' in service
    assert 'SyslogIdentifier=%s\n' % timer_name in service
    assert 'OnCalendar=*:0/10\n' in timer and 'RandomizedDelaySec=30\n' in timer
    assert 'Unit=%s.service\n' % timer_name in timer and 'WantedBy=timers.target' in timer
    assert not os.path.exists(args['reclaim_timer_cron_file'])


def test_systemd_units_are_written_but_not_enabled_without_a_running_systemd(ansible, tmp_path, inventory,
                                                                             project, timer_name):
    if os.path.isdir('/run/systemd/system'):
        pytest.fail('this test is for a machine where systemd is not the running init')
    args, result = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='systemd')

    shown = [t for p in result.data['plays'] for t in p['tasks']
             if t['name'].endswith('Say that the units are not enabled without a running systemd')]
    assert shown and 'not enabled' in shown[0]['hosts']['localhost']['msg']
    assert [t['name'] for p in result.data['plays'] for t in p['tasks'] if 'Enable and start' in t['name']
            and not t['hosts']['localhost'].get('skipped')] == []


# -- cron -----------------------------------------------------------------------------------------------------------

def test_auto_chooses_cron_where_systemd_is_not_the_init_and_the_entry_is_exact(ansible, tmp_path, inventory,
                                                                                project, timer_name):
    if os.path.isdir('/run/systemd/system'):
        pytest.fail('this test is for a machine where systemd is not the running init')
    args, result = install(ansible, tmp_path, inventory, project, timer_name)

    with open(args['reclaim_timer_cron_file']) as handle:
        entry = handle.read()
    assert entry == (
        '#\n# Ansible managed\n#\n'
        '# The deferred.libvirt reclaim sweep; the script never runs two sweeps at once (flock).\n'
        'SHELL=/bin/sh\n'
        'PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin\n'
        '*/15 * * * * root %s >>%s 2>&1\n' % (args['reclaim_timer_script'], args['reclaim_timer_log_file']))
    assert oct(os.stat(args['reclaim_timer_cron_file']).st_mode & 0o777) == '0o644'
    assert os.access(args['reclaim_timer_script'], os.X_OK)
    assert not os.path.exists(os.path.join(args['reclaim_timer_unit_dir'], timer_name + '.timer'))


def test_command_of_the_cron_entry_completes_a_real_reclaim(ansible, tmp_path, inventory, make_guest, hv2,
                                                            hypervisor, project, timer_name):
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron')
    a, b = expired_on_both_hosts(ansible, inventory, make_guest, hv2, project)
    (schedule, user, command), variables = cron_line(args['reclaim_timer_cron_file'])
    assert (schedule, user) == ('*/15 * * * *', 'root')

    run = run_as_cron(command, variables)

    assert run.returncode == 0, run.stderr
    assert a not in domain_names(hypervisor) and not hv2.exists(b)
    with open(args['reclaim_timer_log_file']) as handle:
        log = handle.read()
    assert '%s: sweep started at' % timer_name in log
    assert 'reclaimed 2, failed 0, skipped 0, kept 0, Cinder work pending 0, finished 0 on 2 host(s)' in log
    assert '%s: sweep finished at' % timer_name in log and 'with exit code 0' in log


@pytest.mark.parametrize('kind', ['jsonfile', 'redis'])
def test_the_timer_runs_the_fleet_workflow_in_three_steps_with_a_jsonfile_or_redis_fact_cache(
        request, kind, ansible, tmp_path, inventory, make_guest, hv2, hypervisor, project, timer_name):
    cache = str(tmp_path / 'timer' / 'facts')
    if kind == 'redis':
        # community.general's redis cache against the test bed's redis-server, under a key prefix of this test's own.
        redis = request.getfixturevalue('redis_cache')
        more = dict(reclaim_timer_fact_cache='redis', reclaim_timer_fact_cache_connection=redis.connection,
                    reclaim_timer_fact_cache_prefix=redis.prefix,
                    reclaim_timer_environment={'ANSIBLE_COLLECTIONS_PATH': ansible.collections + ':' + redis.collections,
                                               'ANSIBLE_NOCOLOR': '1', 'ANSIBLE_RETRY_FILES_ENABLED': '0'})
    else:
        more = dict(reclaim_timer_fact_cache_dir=cache)
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron',
                          reclaim_timer_workflow=True, **more)
    if kind == 'jsonfile':
        assert stat.S_IMODE(os.stat(cache).st_mode) == 0o700
    else:
        # The connection (with its password) is in the private script only, never in the cron line or the log.
        assert not os.path.exists(cache)
        with open(args['reclaim_timer_cron_file']) as handle:
            assert redis.connection not in handle.read()
    a, b = expired_on_both_hosts(ansible, inventory, make_guest, hv2, project)
    (schedule, user, command), variables = cron_line(args['reclaim_timer_cron_file'])

    run = run_as_cron(command, variables)

    assert run.returncode == 0, run.stderr
    assert a not in domain_names(hypervisor) and not hv2.exists(b)
    with open(args['reclaim_timer_log_file']) as handle:
        log = handle.read()
    [fleet_run] = [line.split('fleet run ', 1)[1] for line in log.splitlines() if ': fleet run ' in line]
    # The three steps ran, in order, under one run id; the index was complete and each host swept with its own slice.
    gather, index, sweep = (log.index(t) for t in ('PLAY [Gather each hypervisor', 'PLAY [Index the fleet from',
                                                   'PLAY [Take each host'))
    assert gather < index < sweep
    assert 'DID NOT REPORT' not in log and 'INCOMPLETE' not in log, log[-3000:]
    assert 'reclaimed 2, failed 0, skipped 0, kept 0, Cinder work pending 0, finished 0 on 2 host(s)' in log
    assert '%s: sweep finished at' % timer_name in log and 'with exit code 0' in log
    # The facts went through the cache: each host's record and slice of this run.
    if kind == 'redis':
        assert redis.connection.rsplit(':', 1)[1] not in log
        stored = [redis.facts(host) for host in ('hv1', 'hv2')]
    else:
        names = sorted(os.listdir(cache))
        assert len(names) == 2, names
        stored = []
        for name in names:
            with open(os.path.join(cache, name)) as handle:
                facts = json.load(handle)
            stored.append(json.loads(facts['__payload__']) if '__payload__' in facts else facts)
    for facts in stored:
        assert facts['deferred_libvirt_fleet_record']['run'] == fleet_run
        assert facts['deferred_libvirt_fleet_slice']['run'] == fleet_run and facts['deferred_libvirt_fleet_slice']['complete']


def test_a_run_that_finds_the_lock_held_skips_and_changes_nothing(ansible, tmp_path, inventory, make_guest, hv2,
                                                                  hypervisor, project, timer_name):
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron')
    a, b = expired_on_both_hosts(ansible, inventory, make_guest, hv2, project)
    (schedule, user, command), variables = cron_line(args['reclaim_timer_cron_file'])

    with open(args['reclaim_timer_lock_file'], 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a sweep still running
        run = run_as_cron(command, variables)

    assert run.returncode == 0, run.stderr
    with open(args['reclaim_timer_log_file']) as handle:
        log = handle.read()
    assert log == '%s: another sweep holds %s; this run is skipped\n' % (timer_name, args['reclaim_timer_lock_file'])
    assert a in domain_names(hypervisor) and hv2.exists(b)


def test_secrets_stay_out_of_readable_files_and_the_process_list(ansible, tmp_path, inventory, project, timer_name):
    secret = 'pw-%s' % uuidlib.uuid4().hex
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron',
                          reclaim_timer_extra_vars={'reclaim_project': project,
                                                    'reclaim_cloud': {'auth': {'password': secret}}})
    assert oct(os.stat(args['reclaim_timer_extra_vars_file']).st_mode & 0o777) == '0o600'
    assert oct(os.stat(args['reclaim_timer_script']).st_mode & 0o777) == '0o700'
    for path in (args['reclaim_timer_script'], args['reclaim_timer_cron_file']):
        with open(path) as handle:
            assert secret not in handle.read(), path  # the command line (what ps shows) is built from these
    with open(args['reclaim_timer_extra_vars_file']) as handle:
        assert secret in handle.read()


@pytest.mark.security
@pytest.mark.parametrize('backend', ['cron', 'systemd'])
def test_installing_the_timer_with_diff_at_vvvv_never_prints_the_cloud_password(
        ansible, tmp_path, inventory, project, timer_name, backend):
    """Issue 24 item 3: --diff on the timer role printed the extra-vars file, the cloud password included (and the
    script, whose environment may hold secrets). Installed and then changed, as an operator rolls out a new password."""
    secrets = ['pw-%s' % uuidlib.uuid4().hex for dummy in range(3)]
    for secret, env_secret in ((secrets[0], secrets[2]), (secrets[1], secrets[2] + 'x')):
        args, play = timer_play(tmp_path, inventory, project, timer_name, reclaim_timer_backend=backend,
                                reclaim_timer_extra_vars={'reclaim_project': project,
                                                          'reclaim_cloud': {'auth': {'password': secret}}},
                                reclaim_timer_environment={'OS_PASSWORD': env_secret})
        proc = run_as_operator(ansible, play, 'localhost,', '--diff', '-vvvv')
        output = proc.stdout + proc.stderr
        assert proc.returncode == 0, output[-4000:]
        assert 'Keep the run\'s extra vars in a private file' in output
        for value in secrets + [secrets[2] + 'x']:
            assert value not in output, 'a secret was printed:\n' + output[-4000:]
        with open(args['reclaim_timer_extra_vars_file']) as handle:
            assert secret in handle.read()  # the file itself was (re)written


# -- the control node's clocks, checked before every sweep (rule 11, issue 24) -------------------------------------

def expired_on_hv1(ansible, inventory, make_guest, project):
    """One domain of hv1 soft-deleted 2 s ago and so due; returns its name once reclaim_at has passed."""
    name, dummy = make_guest('a', start=False)
    assert not task_on(ansible, inventory, 'hv1', ATTRS, name=name, project=project).get('failed')
    result = task_on(ansible, inventory, 'hv1', SOFT_DELETE, name=name, project=project, reclaim_interval='2s')
    assert not result.get('failed'), result
    wait_past(result['instances'][0]['reclaim_at'])
    return name


def read_log(args):
    with open(args['reclaim_timer_log_file']) as handle:
        return handle.read()


@pytest.mark.security
def test_a_wall_clock_stepped_forward_on_the_control_node_runs_no_sweep_until_it_is_set_right(
        ansible, tmp_path, inventory, make_guest, hypervisor, project, timer_name):
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron')
    (schedule, user, command), variables = cron_line(args['reclaim_timer_cron_file'])
    assert run_as_cron(command, variables).returncode == 0  # the run that records the clocks
    name = expired_on_hv1(ansible, inventory, make_guest, project)

    stepped = run_as_cron(command, variables, clock=kernel_clock.faketime_env('+10d'))

    log = read_log(args)
    assert stepped.returncode == 1, log
    found = re.search(r'the wall clock was stepped (\d+) s forward since the last run at \S+ .*no sweep runs', log)
    assert found, log
    assert abs(int(found.group(1)) - 10 * 86400) < 600
    assert log.count('sweep started at') == 1 and name in domain_names(hypervisor)
    # The clock set right again: the next run sweeps.
    fixed = run_as_cron(command, variables)
    assert fixed.returncode == 0, read_log(args)
    assert name not in domain_names(hypervisor)


def test_a_wall_clock_stepped_back_on_the_control_node_is_said_and_the_sweep_runs(
        ansible, tmp_path, inventory, project, timer_name):
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron')
    (schedule, user, command), variables = cron_line(args['reclaim_timer_cron_file'])
    # The last run saw a wall clock three days ahead (ansible-core itself does not run under libfaketime: only what
    # this run records before its playbook counts here) ...
    run_as_cron(command, variables, clock=kernel_clock.faketime_env('+3d'))

    back = run_as_cron(command, variables)  # ... and this one a clock set right: stepped back

    log = read_log(args)
    assert back.returncode == 0, log
    found = re.search(r'the wall clock was stepped (\d+) s back since the last run at \S+: a domain soft-deleted in '
                      r'the lost time is reclaimed late, never early', log)
    assert found and abs(int(found.group(1)) - 3 * 86400) < 600, log
    assert log.rstrip().endswith('with exit code 0')


@pytest.mark.security
def test_after_a_reboot_onto_an_unsynchronised_clock_the_control_node_runs_no_sweep(
        ansible, tmp_path, inventory, make_guest, hypervisor, project, timer_name):
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron',
                          reclaim_timer_time_sync_timeout=3)
    (schedule, user, command), variables = cron_line(args['reclaim_timer_cron_file'])
    assert run_as_cron(command, variables).returncode == 0
    name = expired_on_hv1(ansible, inventory, make_guest, project)

    def rebooted(argv):
        return kernel_clock.as_if_rebooted(argv, str(tmp_path))

    with kernel_clock.synchronised(False):
        blocked = run_as_cron(command, variables, wrap=rebooted)
        assert blocked.returncode == 1, read_log(args)
        assert ('this host rebooted since the last run and the kernel says its clock is not synchronised (waited 3 s):'
                ' no sweep runs until it is') in read_log(args)
        assert name in domain_names(hypervisor)

    with kernel_clock.synchronised(True):
        synced = run_as_cron(command, variables, wrap=rebooted)
    assert synced.returncode == 0, read_log(args)
    assert name not in domain_names(hypervisor)


def test_after_a_reboot_the_control_node_waits_for_time_synchronisation_then_sweeps(
        ansible, tmp_path, inventory, make_guest, hypervisor, project, timer_name):
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron',
                          reclaim_timer_time_sync_timeout=60)
    (schedule, user, command), variables = cron_line(args['reclaim_timer_cron_file'])
    assert run_as_cron(command, variables).returncode == 0
    name = expired_on_hv1(ansible, inventory, make_guest, project)

    with kernel_clock.synchronised(False):
        ntp = threading.Timer(4, kernel_clock.set_synchronised, (True,))  # NTP answers 4 s after the run starts
        ntp.start()
        started = time.monotonic()
        run = run_as_cron(command, variables, wrap=lambda argv: kernel_clock.as_if_rebooted(argv, str(tmp_path)))
        ntp.join()

    assert run.returncode == 0, read_log(args)
    assert time.monotonic() - started >= 4
    assert 'not synchronised' not in read_log(args)
    assert name not in domain_names(hypervisor)


def test_the_third_skipped_run_in_a_row_fails_so_monitoring_sees_a_hung_sweep(
        ansible, tmp_path, inventory, project, timer_name):
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron')
    (schedule, user, command), variables = cron_line(args['reclaim_timer_cron_file'])

    with open(args['reclaim_timer_lock_file'], 'a') as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # a sweep that hangs
        codes = [run_as_cron(command, variables).returncode for dummy in range(3)]

    assert codes == [0, 0, 1]
    with open(args['reclaim_timer_log_file']) as handle:
        log = handle.read()
    assert log.count('this run is skipped') == 3
    assert '3 runs in a row were skipped, the previous sweep may be hung' in log


def test_removing_the_timer_removes_what_it_installed(ansible, tmp_path, inventory, project, timer_name):
    args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron')
    os.makedirs(args['reclaim_timer_logrotate_dir'], exist_ok=True)
    install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron')
    assert os.path.exists(os.path.join(args['reclaim_timer_logrotate_dir'], timer_name))

    install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_state='absent')

    for path in (args['reclaim_timer_script'], args['reclaim_timer_cron_file'],
                 os.path.join(args['reclaim_timer_logrotate_dir'], timer_name)):
        assert not os.path.exists(path), path


@pytest.fixture
def system_cron():
    """The system's cron daemon: started by the role if it was not running; stopped again afterwards if so."""
    pidfile = '/run/crond.pid'

    def running_pid():
        try:
            pid = int(open(pidfile).read().strip())
            with open('/proc/%d/stat' % pid) as handle:
                state = handle.read().rsplit(')', 1)[1].split()[0]
        except (OSError, ValueError, IndexError):
            return None
        return None if state in ('Z', 'X') else pid
    before = running_pid()
    yield
    pid = running_pid()
    if before is None and pid is not None:
        os.kill(pid, 15)


def test_cron_runs_the_sweep_on_its_schedule(ansible, tmp_path, inventory, make_guest, hv2, hypervisor, project,
                                             timer_name, system_cron):
    """The real thing: the entry in /etc/cron.d, the cron daemon the role starts, a sweep within two minutes."""
    cron_file = os.path.join('/etc/cron.d', timer_name)
    try:
        a, b = expired_on_both_hosts(ansible, inventory, make_guest, hv2, project)
        args, dummy = install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_backend='cron',
                              reclaim_timer_cron_file=cron_file, reclaim_timer_cron_schedule='* * * * *',
                              reclaim_timer_manage_cron=True)
        assert os.path.exists('/run/crond.pid'), 'the role did not start cron'
        log = args['reclaim_timer_log_file']
        deadline = time.monotonic() + 240
        while not (os.path.exists(log) and 'sweep finished' in open(log).read()):
            assert time.monotonic() < deadline, 'cron did not run the sweep within 4 minutes'
            time.sleep(2)
    finally:
        install(ansible, tmp_path, inventory, project, timer_name, reclaim_timer_state='absent',
                reclaim_timer_cron_file=cron_file)

    with open(log) as handle:
        text = handle.read()
    assert 'with exit code 0' in text, text[-3000:]
    assert 'reclaimed 2,' in text
    assert a not in domain_names(hypervisor) and not hv2.exists(b)
    assert not os.path.exists(cron_file)
