# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The reclaim_timer role under a real systemd: what an operator sees with systemctl and journalctl.

Every test applies the role on the systemd host (tests/testbed/systemd_host.sh)
the way an operator does, lets systemd run the sweep, and reads the result
where the operator reads it. No part is mocked.
"""

import datetime
import re
import time

import kernel_clock

# Far in the future: the timer is installed and waiting, but only the test starts the service.
NEVER = '2099-01-01 00:00:00 UTC'


def recap_changed(output):
    """The changed= count of the play recap line of localhost."""
    for line in output.splitlines():
        if line.startswith('localhost') and 'changed=' in line:
            return int(line.split('changed=')[1].split()[0])
    raise AssertionError('no play recap in:\n' + output[-3000:])


def test_present_enables_the_timer_and_list_timers_shows_it(host, timer, project):
    result = timer.install(extra_vars={'reclaim_project': project})

    assert host.out('systemctl is-enabled %s' % timer.timer) == 'enabled'
    assert host.out('systemctl is-active %s' % timer.timer) == 'active'
    listed = [line for line in host.out('systemctl list-timers --no-pager --no-legend').splitlines()
              if timer.timer in line]
    assert len(listed) == 1, host.out('systemctl list-timers --no-pager')
    # NEXT is a date (the default schedule, every 15 minutes), ACTIVATES the service.
    assert re.match(r'^\w{3} \d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC', listed[0]), listed[0]
    assert listed[0].split()[-1] == timer.service
    assert host.show(timer.timer, 'TimersCalendar').startswith('{ OnCalendar=*-*-* *:00/15:00 ;')
    assert host.show(timer.timer, 'Persistent') == 'yes'
    assert host.out('systemctl is-enabled %s' % timer.service, check=False) == 'static'
    assert recap_changed(result.stdout) > 0
    # Applying it again changes nothing and leaves the timer where it was.
    again = timer.install(extra_vars={'reclaim_project': project})
    assert recap_changed(again.stdout) == 0, again.stdout[-3000:]
    assert host.out('systemctl is-active %s' % timer.timer) == 'active'


def test_the_timer_fires_on_its_own_and_reclaims_only_expired_domains(host, timer):
    """The seed domains of the image: seed-expired-1 and -2 are due, seed-unexpired is due in ten years."""
    seeds = ['seed-expired-1', 'seed-expired-2', 'seed-unexpired']
    assert set(seeds) <= set(host.domains()), 'the seed domains are missing: systemd_host.sh down && up'

    timer.install(extra_vars={'reclaim_project': 'seed'}, on_calendar='*:*:0/10', randomized_delay=0)
    host.wait_for('a sweep run by the timer', timer.runs_finished, timeout=120)

    assert 'seed-unexpired' in host.domains()
    assert 'seed-expired-1' not in host.domains() and 'seed-expired-2' not in host.domains()
    assert host.show(timer.timer, 'LastTriggerUSec') not in ('', 'n/a', '0')
    journal = timer.journal()
    assert 'reclaimed 2, failed 0, skipped 0, kept 1,' in journal, journal[-3000:]
    assert 'with exit code 0' in journal
    assert host.show(timer.service, 'Result') == 'success'


def test_the_output_of_a_run_is_in_the_journal_and_in_the_log_file(host, timer, project):
    uuids = host.define([project + '-a'])
    timer.install(extra_vars={'reclaim_project': project}, on_calendar=NEVER,
                  soft_delete=(project, [project + '-a'], '1s'))

    host.run('systemctl start %s' % timer.service)

    journal = host.out('journalctl --no-pager -u %s' % timer.service)
    log = timer.log()
    summary = 'reclaimed 1, failed 0, skipped 0, kept 0,'
    for text in (journal, log):
        assert '%s: sweep started at' % timer.name in text
        assert summary in text
        assert 'reclaimed deferred-systemd/%s-a (%s)' % (project, uuids[project + '-a']) in text
        assert re.search(r'%s: sweep finished at \S+ with exit code 0' % timer.name, text)
    # The journal's lines carry the unit's name (SyslogIdentifier) and systemd's own start and finish.
    assert re.search(r' %s\[\d+\]: .*%s' % (timer.name, summary), journal)
    assert 'Finished %s' % timer.service in journal
    assert host.out('stat -c %%a %s' % timer.log_file) in ('644', '600', '640')
    assert host.out('test -f /etc/logrotate.d/%s && echo yes' % timer.name) == 'yes'


def test_a_second_trigger_during_a_long_sweep_starts_no_second_run(host, timer, project):
    """A restore holding the domain's lock makes the sweep wait (reclaim_lock_timeout): a long sweep."""
    name = project + '-a'
    uuids = host.soft_deleted(project, [name], '1s')
    lock = '%s/locks/%s.lock' % ('/var/lib/deferred-libvirt', uuids[name])
    holder = 'hold-%s' % project
    host.run('systemd-run --quiet --unit=%s flock %s sleep 600' % (holder, lock))
    try:
        timer.install(extra_vars={'reclaim_project': project, 'reclaim_lock_timeout': 90},
                      on_calendar='*:*:0/5', randomized_delay=0)
        host.wait_for('the sweep started by the timer',
                      lambda: host.show(timer.service, 'ActiveState') == 'activating', timeout=60, interval=0.5)
        invocation = host.show(timer.service, 'InvocationID')
        main_pid = host.show(timer.service, 'MainPID')

        # The timer elapses again (every 5 s), and the operator starts the service by hand.
        time.sleep(6)
        host.run('systemctl start --no-block %s' % timer.service)
        time.sleep(1)
        assert host.show(timer.service, 'InvocationID') == invocation
        assert host.show(timer.service, 'MainPID') == main_pid
        # The same sweep run by hand (or by anything else) finds the lock held and says so.
        by_hand = host.run(timer.script)
        assert by_hand.returncode == 0
        skipped = '%s: another sweep holds %s; this run is skipped' % (timer.name, timer.lock_file)
        assert by_hand.stdout.strip() == skipped
        assert skipped in timer.log()
        assert name in host.domains()
    finally:
        host.run('systemctl stop %s' % holder)

    host.wait_for('the long sweep to finish', lambda: host.show(timer.service, 'InvocationID') != invocation
                  or host.show(timer.service, 'ActiveState') != 'activating', timeout=120)
    journal = timer.journal()
    first = journal.split('%s: sweep finished at' % timer.name)[0]
    assert first.count('%s: sweep started at' % timer.name) == 1, journal[-4000:]
    assert name not in host.domains()


def test_a_failed_sweep_leaves_the_service_failed_for_systemctl_failed(host, timer, project):
    host.define([project + '-a'])
    # A hypervisor that does not answer: the sweep fails, as with libvirtd down.
    broken = 'qemu+unix:///system?socket=/run/libvirt/no-such-socket'
    timer.install(extra_vars={'reclaim_project': project, 'reclaim_uri': broken}, on_calendar='*:*:0/10',
                  randomized_delay=0, soft_delete=(project, [project + '-a'], '1s'))

    host.wait_for('the failed run', lambda: host.show(timer.service, 'Result') == 'exit-code', timeout=120)

    assert host.run('systemctl is-failed %s' % timer.service, check=False).stdout.strip() == 'failed'
    failed = host.out('systemctl --failed --plain --no-legend --no-pager')
    assert re.search(r'^%s\s+loaded\s+failed\s+failed' % re.escape(timer.service), failed, re.M), failed
    assert host.show(timer.service, 'ExecMainStatus') == '2'
    journal = host.out('journalctl --no-pager -u %s' % timer.service)
    assert 'no-such-socket' in journal
    assert 'with exit code 2' in journal
    assert 'Failed with result \'exit-code\'' in journal
    # The timer goes on: the next run comes (and fails again until someone fixes the cause).
    assert host.out('systemctl is-active %s' % timer.timer) == 'active'
    assert project + '-a' in host.domains()


def test_persistent_timer_runs_the_sweep_missed_while_the_host_was_off(host, timer, project):
    name = project + '-a'
    host.soft_deleted(project, [name], '1s')
    due = datetime.datetime.now(datetime.timezone.utc).replace(microsecond=0) + datetime.timedelta(seconds=45)
    calendar = due.strftime('%Y-%m-%d %H:%M:%S UTC')
    timer.install(extra_vars={'reclaim_project': project}, on_calendar=calendar, randomized_delay=0)
    listed = host.out('systemctl list-timers --no-pager --no-legend %s' % timer.timer)
    assert listed.startswith(due.strftime('%a %Y-%m-%d %H:%M:%S UTC')), 'installing took too long? %s' % listed

    # The kernel's clock synchronised (the host shares this machine's kernel): a reboot onto an unsynchronised one
    # runs no sweep, which has its own test.
    with kernel_clock.synchronised(True):
        host.testbed('stop')   # powered off before its run is due ...
        while datetime.datetime.now(datetime.timezone.utc) < due + datetime.timedelta(seconds=3):
            time.sleep(1)
        host.testbed('up')     # ... and booted after it
        host.wait_for('the missed run at boot', lambda: timer.journal(boot=0).count('sweep finished at'),
                      timeout=120)
    assert 'sweep started' not in timer.journal(boot=-1)
    assert 'reclaimed 1, failed 0' in timer.journal(boot=0)
    assert name not in host.domains()
    # The run was the timer's, at boot, for the date that had passed.
    trigger = host.show(timer.timer, 'LastTriggerUSec')
    assert trigger not in ('', 'n/a', '0')


def test_after_a_real_reboot_onto_an_unsynchronised_clock_no_sweep_runs_until_the_clock_is_synchronised(
        host, timer, project):
    # Rule 11 across a reboot: there is no boot clock to compare with, so the kernel's synchronised flag decides, in
    # the timer's own check before the sweep and in vm_reclaim's on the hypervisor. The host really reboots (powered
    # off and booted again: another boot id); its kernel is this machine's, whose flag the test sets as NTP would.
    name = project + '-a'
    timer.install(extra_vars={'reclaim_project': project}, on_calendar=NEVER, time_sync_timeout=5)
    host.run('systemctl start %s' % timer.service)  # the run before the reboot records the clocks
    host.soft_deleted(project, [name], '1s')
    boot_id = host.out('cat /proc/sys/kernel/random/boot_id')

    host.testbed('stop')
    host.testbed('up')
    assert host.out('cat /proc/sys/kernel/random/boot_id') != boot_id

    with kernel_clock.synchronised(False):
        refused = host.run('systemctl start %s' % timer.service, check=False)
    journal = timer.journal(boot=0)
    assert refused.returncode != 0, journal[-3000:]
    assert ('this host rebooted since the last run and the kernel says its clock is not synchronised (waited 5 s): '
            'no sweep runs until it is') in journal, journal[-3000:]
    assert 'sweep started' not in journal and name in host.domains()
    assert host.show(timer.service, 'Result') == 'exit-code'

    with kernel_clock.synchronised(True):
        host.run('systemctl start %s' % timer.service)
    journal = timer.journal(boot=0)
    assert 'reclaimed 1, failed 0' in journal, journal[-3000:]
    assert name not in host.domains()


def test_absent_removes_everything_the_role_installed(host, timer, project):
    broken = 'qemu+unix:///system?socket=/run/libvirt/no-such-socket'
    timer.install(extra_vars={'reclaim_project': project, 'reclaim_uri': broken}, on_calendar=NEVER)
    host.run('systemctl start %s' % timer.service, check=False)
    assert host.run('systemctl is-failed %s' % timer.service, check=False).stdout.strip() == 'failed'
    stamp = '/var/lib/systemd/timers/stamp-%s' % timer.timer
    assert host.out('test -e %s && echo yes' % stamp, check=False) == 'yes'

    removed = timer.install(state='absent')

    assert recap_changed(removed.stdout) > 0
    for path in (timer.script, '/etc/systemd/system/' + timer.service, '/etc/systemd/system/' + timer.timer,
                 '/etc/logrotate.d/' + timer.name, stamp, timer.lock_file):
        assert host.out('test -e %s && echo present' % path, check=False) == '', path
    assert timer.timer not in host.out('systemctl list-timers --all --no-pager')
    assert timer.name not in host.out('systemctl --failed --no-pager --plain')
    assert timer.name not in host.out('systemctl list-unit-files --no-pager --plain')
    status = host.run('systemctl status %s' % timer.timer, check=False)
    assert status.returncode == 4 and 'could not be found' in status.stdout
    # The log of past runs stays for the operator.
    assert 'with exit code 2' in timer.log()
    again = timer.install(state='absent')
    assert recap_changed(again.stdout) == 0, again.stdout[-3000:]


def test_a_sweep_longer_than_run_timeout_is_killed_and_fails_the_service(host, timer, project):
    name = project + '-a'
    uuids = host.soft_deleted(project, [name], '1s')
    holder = 'hold-%s' % project
    host.run('systemd-run --quiet --unit=%s flock /var/lib/deferred-libvirt/locks/%s.lock sleep 600'
             % (holder, uuids[name]))
    try:
        timer.install(extra_vars={'reclaim_project': project, 'reclaim_lock_timeout': 300}, run_timeout=8,
                      on_calendar=NEVER)
        started = time.monotonic()
        run = host.run('systemctl start %s' % timer.service, check=False)
        took = time.monotonic() - started
    finally:
        host.run('systemctl stop %s' % holder)

    assert run.returncode != 0 and took < 120, (took, run.stdout)
    assert host.show(timer.service, 'Result') == 'exit-code'
    assert host.show(timer.service, 'ExecMainStatus') == '124'
    killed = '%s: the sweep ran longer than 8 s (reclaim_timer_run_timeout) and was killed' % timer.name
    assert killed in timer.journal() and killed in timer.log()
    assert 'with exit code 124' in timer.log()
    # Its lock is free again: the next run is not turned away.
    assert host.run('flock -n %s true' % timer.lock_file, check=False).returncode == 0
    assert name in host.domains()
