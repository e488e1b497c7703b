# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The trash report, the sweep's metrics and the warning webhook on the real two-host fleet.

The reclaim and report playbooks run as an operator runs them, against hv1
(the main hypervisor) and hv2 (over SSH); the page is opened in Debian's
chromium, headless, through Playwright's Python client (no downloaded
browser); the metrics files are checked with promtool from Debian's
prometheus package (both from tests/testbed/report_tools.sh); the webhook is
a small HTTP server on 127.0.0.1 that records what it receives.
"""

import calendar
import http.server
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid as uuidlib

import pytest

from fleet_support import (Hv2Guests, fleet_up, named_task, new_project, run_as_operator, run_playbook, task_on, wait_past,
                           write_inventory)

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ARTIFACTS = os.path.join(ROOT, 'build', 'artifacts')
PROMTOOL = os.path.join(os.environ.get('DEFERRED_TESTBED_DIR', '/var/lib/deferred-libvirt-testbed'), 'tools',
                        'promtool')
CHROMIUM = '/usr/bin/chromium'
NS = 'urn:deferred-libvirt:lifecycle:1'
CHROMIUM_ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking',
                 '--disable-component-update', '--disable-sync', '--no-first-run']


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
    return write_inventory(str(tmp_path / 'inventory.json'), fleet, state_dir, group_vars={
        'deferred_libvirt_reclaim_metrics_path': '{{ deferred_libvirt_state_dir }}/sweep.prom'})


@pytest.fixture
def project():
    return new_project()


class Recorder(http.server.BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (the http.server API)
        body = self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self.server.received.append({'path': self.path, 'type': self.headers.get('Content-Type'),
                                     'body': json.loads(body.decode('utf-8'))})
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    """A webhook on loopback that records every POST it receives (its JSON body)."""
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Recorder)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


def ok(result):
    assert not result.get('failed'), result
    return result


def soft_delete(ansible, inventory, host, name, project, interval):
    ok(task_on(ansible, inventory, host, 'deferred.libvirt.vm_attributes', name=name, project=project, user='alice'))
    result = ok(task_on(ansible, inventory, host, 'deferred.libvirt.vm_soft_delete', name=name, project=project,
                        reclaim_interval=interval))
    return result['instances'][0]['reclaim_at']


def drop_reclaim_at(name):
    """Break the record by hand (rule 1), as an operator editing it with virsh metadata would."""
    read = subprocess.run(['virsh', '-c', 'qemu:///system', 'metadata', name, '--uri', NS, '--config'],
                          capture_output=True, text=True, check=False)
    assert read.returncode == 0, 'virsh metadata %s: %s' % (name, read.stderr)
    write = subprocess.run(['virsh', '-c', 'qemu:///system', 'metadata', name, '--uri', NS, '--key', 'deferred',
                            '--set', re.sub(r'\s*<reclaim_at>[^<]*</reclaim_at>', '', read.stdout), '--config'],
                           capture_output=True, text=True, check=False)
    assert write.returncode == 0, 'virsh metadata --set %s: %s' % (name, write.stderr)


def closed_port():
    import socket
    sock = socket.socket()
    sock.bind(('127.0.0.1', 0))
    port = sock.getsockname()[1]
    sock.close()
    return port


def promtool_check(path):
    assert os.access(PROMTOOL, os.X_OK), 'promtool missing: run tests/testbed/report_tools.sh'
    with open(path) as handle:
        proc = subprocess.run([PROMTOOL, 'check', 'metrics'], stdin=handle, capture_output=True, text=True,
                              check=False)
    assert proc.returncode == 0, 'promtool check metrics %s:\n%s%s' % (path, proc.stdout, proc.stderr)
    return proc


def samples(path):
    """{(name, frozenset(labels)): value} from a Prometheus text file."""
    found = {}
    with open(path) as handle:
        for line in handle:
            if line.startswith('#') or not line.strip():
                continue
            match = re.match(r'^([a-z_]+)(?:\{(.*)\})? (\S+)$', line.strip())
            assert match, 'not a sample line: %r' % line
            labels = frozenset(re.findall(r'(\w+)="((?:[^"\\]|\\.)*)"', match.group(2) or ''))
            found[(match.group(1), labels)] = float(match.group(3))
    return found


def metric(found, name, **labels):
    return found[(name, frozenset(labels.items()))]


def epoch(text):
    return float(calendar.timegm(time.strptime(text, '%Y-%m-%dT%H:%M:%SZ')))


@pytest.fixture
def scene(ansible, inventory, make_guest, hv2, project):
    """hv1: one domain due within a day, one in three days, one with a broken record, one expired (the sweep
    reclaims it) and a terminated one whose Cinder work is pending; hv2: a domain of the project, none in the trash."""
    names = {}
    for key in ('soon', 'later', 'broken', 'expired', 'dead'):
        names[key], dummy = make_guest(key, start=False)
    names['idle'], dummy = hv2.make('idle')
    ok(task_on(ansible, inventory, 'hv2', 'deferred.libvirt.vm_attributes', name=names['idle'], project=project))
    reclaim = {
        'soon': soft_delete(ansible, inventory, 'hv1', names['soon'], project, '2h'),
        'later': soft_delete(ansible, inventory, 'hv1', names['later'], project, '3d'),
        'broken': soft_delete(ansible, inventory, 'hv1', names['broken'], project, '2s'),
        'expired': soft_delete(ansible, inventory, 'hv1', names['expired'], project, '2s'),
    }
    drop_reclaim_at(names['broken'])
    # A terminate with no Cinder given (and none declared absent): the domain goes, its volume work stays pending for
    # a run that has Cinder. (A Cinder that does not answer at all is refused before the destroy since issue 25.)
    volume = str(uuidlib.uuid4())
    ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_attributes', name=names['dead'], project=project,
               volumes=[{'id': volume, 'target': 'vdb', 'delete_on_termination': True}]))
    dead = ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_terminate', name=names['dead']))
    assert [v['id'] for v in dead['instances'][0]['volumes_pending']] == [volume]
    wait_past(max(reclaim['broken'], reclaim['expired']))
    return {'names': names, 'reclaim_at': reclaim, 'volume': volume}


def open_in_chromium(path, screenshot):
    """Load the page in headless chromium; returns (page text by element id, console errors, network requests)."""
    from playwright.sync_api import sync_playwright
    errors, requests = [], []
    profile = os.path.join(os.path.dirname(screenshot), 'chromium-profile-%s' % uuidlib.uuid4().hex[:6])
    with sync_playwright() as pw:
        browser = pw.chromium.launch_persistent_context(profile, executable_path=CHROMIUM, headless=True,
                                                        args=CHROMIUM_ARGS, viewport={'width': 1366, 'height': 768})
        try:
            page = browser.new_page()
            page.on('console', lambda msg: errors.append(msg.text) if msg.type in ('error', 'warning') else None)
            page.on('pageerror', lambda exc: errors.append(str(exc)))
            page.on('request', lambda req: requests.append(req.url))
            page.goto('file://' + path)
            page.wait_for_load_state('load')
            seen = {
                'status': page.inner_text('#status'),
                'hv1': page.inner_text('#host-hv1'),
                'hv2': page.inner_text('#host-hv2'),
                'cinder': page.inner_text('#cinder'),
                'skipped': page.inner_text('#skipped'),
                'hosts': page.inner_text('#hosts'),
                'due': page.inner_text('#due-soon'),
                'timeline': page.inner_text('#timeline'),
            }
            # Sorting by time left, then again descending, with the page's own script.
            header = page.locator('#trash-hv1 th', has_text='Time left')
            header.click()
            seen['ascending'] = page.eval_on_selector_all('#trash-hv1 tbody tr', 'rows => rows.map(r => r.cells[0].innerText.split("\\n")[0])')
            header.click()
            seen['descending'] = page.eval_on_selector_all('#trash-hv1 tbody tr', 'rows => rows.map(r => r.cells[0].innerText.split("\\n")[0])')
            header.click()
            page.screenshot(path=screenshot, full_page=True)
        finally:
            browser.close()
            shutil.rmtree(profile, ignore_errors=True)
    return seen, errors, [u for u in requests if not u.startswith('file://')]


def test_sweep_and_report_show_the_fleets_trash_in_a_browser_and_in_metrics(
        ansible, inventory, scene, project, state_dir, tmp_path, webhook):
    names = scene['names']
    url = 'http://127.0.0.1:%d/hook' % webhook.server_address[1]

    started = time.monotonic()
    sweep = run_playbook(ansible, 'deferred.libvirt.reclaim', inventory, extra_vars=[
        {'reclaim_project': project, 'reclaim_warning_window': '24h', 'reclaim_warning_webhook': url}])
    sweep_seconds = time.monotonic() - started

    assert sweep.rc == 0, sweep.stdout[-3000:]
    assert [r['name'] for r in named_task(sweep, 'Sweep the hypervisor', 'hv1')['reclaimed']] == [names['expired']]
    # One line per host as its sweep is done, and the same lines in the summary.
    hv1_line = named_task(sweep, 'Show how the host\'s sweep went', 'hv1')['msg']
    hv2_line = named_task(sweep, 'Show how the host\'s sweep went', 'hv2')['msg']
    assert hv1_line.startswith('host hv1: swept: reclaimed 1, failed 0, skipped 1 (anomalies 1), kept 2, pending 1,')
    assert hv1_line.endswith('; 1 due within 1d')
    assert hv2_line.startswith('host hv2: swept: reclaimed 0, failed 0, skipped 0 (anomalies 0), kept 0,')
    summary = named_task(sweep, 'Show the summary', 'hv1')['msg']
    assert summary[0] == 'reclaimed 1, failed 0, skipped 1, kept 2, Cinder work pending 1, finished 0 on 2 host(s)'
    assert hv1_line in summary and hv2_line in summary
    assert 'due within 1d: hv1/%s (project %s) at %s' % (names['soon'], project, scene['reclaim_at']['soon']) in summary
    # The webhook got the one domain due within the window, once.
    post_task = named_task(sweep, 'Post the domains due within the warning window to the webhook', 'hv1')
    assert len(webhook.received) == 1, post_task
    [post] = webhook.received
    assert post['path'] == '/hook' and post['type'].startswith('application/json')
    assert post['body']['count'] == 1 and post['body']['warning_window_seconds'] == 86400
    assert [(d['host'], d['name'], d['project'], d['reclaim_at']) for d in post['body']['domains']] == [
        ('hv1', names['soon'], project, scene['reclaim_at']['soon'])]

    # Each host's own sweep metrics, for its node_exporter.
    for host in ('hv1', 'hv2'):
        promtool_check(os.path.join(state_dir, host, 'sweep.prom'))
    hv1_sweep = samples(os.path.join(state_dir, 'hv1', 'sweep.prom'))
    assert metric(hv1_sweep, 'deferred_libvirt_sweep_last_domains', host='hv1', result='reclaimed') == 1
    assert metric(hv1_sweep, 'deferred_libvirt_sweep_last_skipped_anomalies', host='hv1') == 1
    assert metric(hv1_sweep, 'deferred_libvirt_sweep_due_soon_domains', host='hv1', project=project) == 1
    assert metric(hv1_sweep, 'deferred_libvirt_sweep_next_reclaim_timestamp_seconds', host='hv1',
                  project=project) == epoch(scene['reclaim_at']['soon'])
    assert metric(hv1_sweep, 'deferred_libvirt_sweep_last_ok', host='hv1') == 1
    assert 0 < metric(hv1_sweep, 'deferred_libvirt_sweep_last_duration_seconds', host='hv1') < sweep_seconds
    assert abs(metric(hv1_sweep, 'deferred_libvirt_sweep_last_success_timestamp_seconds', host='hv1')
               - time.time()) < sweep_seconds + 60

    dest = str(tmp_path / 'report')
    prom = str(tmp_path / 'report.prom')
    report_run = run_playbook(ansible, 'deferred.libvirt.report', inventory, extra_vars=[
        {'report_project': project, 'report_dest': dest, 'report_metrics_path': prom}])

    assert report_run.rc == 0, report_run.stdout[-3000:]
    with open(os.path.join(dest, 'trash-report.json')) as handle:
        data = json.load(handle)
    assert [(t['host'], t['name']) for t in data['trash']] == [
        ('hv1', names['broken']), ('hv1', names['soon']), ('hv1', names['later'])]
    assert data['hosts']['hv2']['trash'] == [] and data['hosts']['hv2']['reported'] is True
    [tomb] = data['tombstones']
    assert tomb['name'] == names['dead'] and [v['id'] for v in tomb['volumes_pending']] == [scene['volume']]
    assert [(s['host'], s['name'], s['kind']) for s in data['skipped']] == [('hv1', names['broken'], 'anomaly')]
    assert data['ok'] is False  # a broken record and pending Cinder work are problems
    shown = named_task(report_run, 'Show the report', 'hv1')['msg']
    assert hv1_line.split(': swept: ')[1] in shown[1]  # the report's host line carries the sweep's own words

    # The report's metrics match what vm_info says about the fleet right now.
    promtool_check(prom)
    found = samples(prom)
    info = ok(task_on(ansible, inventory, 'hv1', 'deferred.libvirt.vm_info', project=project, include_deleted=True))
    trash = [i for i in info['instances'] if i['vm_state'] == 'soft_deleted']
    assert metric(found, 'deferred_libvirt_trash_domains', host='hv1', project=project) == len(trash) == 3
    assert metric(found, 'deferred_libvirt_trash_vcpus', host='hv1', project=project) == sum(i['vcpus'] for i in trash)
    assert metric(found, 'deferred_libvirt_trash_memory_bytes', host='hv1', project=project) == sum(
        i['memory_mb'] for i in trash) * 1048576
    assert metric(found, 'deferred_libvirt_trash_anomalies', host='hv1', project=project) == 1
    assert metric(found, 'deferred_libvirt_pending_cinder_volumes', host='hv1', project=project) == sum(
        len(i.get('volumes_pending') or []) for i in info['instances'] if i['vm_state'] == 'deleted') == 1
    assert metric(found, 'deferred_libvirt_trash_next_reclaim_timestamp_seconds', host='hv1',
                  project=project) == epoch(scene['reclaim_at']['soon'])
    assert metric(found, 'deferred_libvirt_trash_due_soon_domains', host='hv1', project=project) == 1
    assert metric(found, 'deferred_libvirt_host_up', host='hv2') == 1
    assert ('deferred_libvirt_trash_domains', frozenset({('host', 'hv2'), ('project', project)})) not in found
    assert metric(found, 'deferred_libvirt_report_last_sweep_domains', host='hv1', result='reclaimed') == 1

    # The page, in a real browser: nothing fetched, no error, and what the operator needs to see.
    os.makedirs(ARTIFACTS, exist_ok=True)
    screenshot = os.path.join(ARTIFACTS, 'trash-report.png')
    seen, errors, requests = open_in_chromium(os.path.join(dest, 'trash-report.html'), screenshot)
    assert errors == [] and requests == []
    assert seen['status'].startswith('Needs attention (2)')
    assert re.search(r'%s[\s\S]*?\t1h 5\dm\t' % re.escape(names['soon']), seen['hv1']), seen['hv1']
    assert re.search(r'%s[\s\S]*?\t2d 23h\t' % re.escape(names['later']), seen['hv1']), seen['hv1']
    assert 'never reclaimed: reclaim_at is missing' in seen['hv1']
    assert 'The trash is empty on hv2.' in seen['hv2']
    assert names['dead'] in seen['cinder'] and scene['volume'] in seen['cinder']
    assert names['broken'] in seen['skipped'] and 'anomaly' in seen['skipped'] and 'reclaim_at is missing' in seen['skipped']
    assert names['soon'] in seen['due'] and names['later'] not in seen['due']
    assert seen['ascending'] == [names['soon'], names['later'], names['broken']]
    assert seen['descending'] == [names['broken'], names['later'], names['soon']]
    assert os.path.getsize(screenshot) > 10000


def test_webhook_gets_nothing_when_no_domain_is_due_within_the_window(ansible, inventory, make_guest, project, webhook):
    name, dummy = make_guest('later', start=False)
    soft_delete(ansible, inventory, 'hv1', name, project, '3d')
    url = 'http://127.0.0.1:%d/hook' % webhook.server_address[1]

    # The role in one play of the operator's own (playbooks/reclaim.yml splits it in two).
    result = run_playbook(ansible, [{'hosts': 'hypervisors', 'gather_facts': False, 'roles': [
        {'role': 'deferred.libvirt.reclaim', 'vars': {'reclaim_project': project, 'reclaim_warning_window': '1h',
                                                      'reclaim_warning_webhook': url}}]}], inventory)

    assert result.rc == 0, result.stdout[-3000:]
    assert webhook.received == []
    assert named_task(result, 'Show how the host\'s sweep went', 'hv1')['msg'].startswith(
        'host hv1: swept: reclaimed 0, failed 0, skipped 0 (anomalies 0), kept 1,')
    post = named_task(result, 'Post the domains due within the warning window to the webhook', 'hv1')
    assert post.get('skipped') is True
    assert not [line for line in named_task(result, 'Show the summary', 'hv1')['msg'] if line.startswith('due within')]


class Refuser(http.server.BaseHTTPRequestHandler):
    """A webhook that takes the post and answers 500."""

    def do_POST(self):  # noqa: N802 (the http.server API)
        self.rfile.read(int(self.headers.get('Content-Length') or 0))
        self.server.received.append(self.path)
        self.send_response(500)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def refusing_webhook():
    server = http.server.ThreadingHTTPServer(('127.0.0.1', 0), Refuser)
    server.received = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.mark.security
@pytest.mark.parametrize('how', ['answers_500', 'port_closed'])
def test_a_failed_webhook_post_never_prints_its_url_or_token_at_vvvv(ansible, fleet, state_dir, tmp_path, make_guest,
                                                                     project, refusing_webhook, how):
    """Issue 24 item 3: a failed webhook post printed its URL, token included. The sweep still succeeds, and says
    which webhook failed by its host alone, at every verbosity and in the JSON an AWX job keeps."""
    inventory = write_inventory(str(tmp_path / 'inventory.json'), fleet, state_dir, hosts_over_ssh=())
    name, dummy = make_guest('soon', start=False)
    soft_delete(ansible, inventory, 'hv1', name, project, '1h')
    path_token, query_token, user_token = ('tok%s' % uuidlib.uuid4().hex for dummy in range(3))
    port = refusing_webhook.server_address[1] if how == 'answers_500' else closed_port()
    url = 'http://hook:%s@127.0.0.1:%d/hooks/%s?token=%s' % (user_token, port, path_token, query_token)
    play = [{'hosts': 'hypervisors', 'gather_facts': False, 'roles': [
        {'role': 'deferred.libvirt.reclaim', 'vars': {'reclaim_project': project, 'reclaim_warning_window': '24h',
                                                      'reclaim_warning_webhook': url}}]}]

    proc = run_as_operator(ansible, play, inventory, '-vvvv')
    as_json = run_playbook(ansible, play, inventory)

    output = proc.stdout + proc.stderr
    assert proc.returncode == 0, output[-4000:]
    assert as_json.rc == 0, as_json.stdout[-4000:]
    if how == 'answers_500':
        assert len(refusing_webhook.received) == 2  # it was posted to, and refused, in both runs
    for token in (path_token, query_token, user_token):
        assert token not in output, 'the webhook URL was printed:\n' + output[-4000:]
        assert token not in as_json.stdout + as_json.stderr
    said = named_task(as_json, 'Say that the warning webhook did not take the post', 'hv1')['msg']
    assert said.startswith('the warning webhook at 127.0.0.1 did not take the post (%s'
                           % ('HTTP status 500' if how == 'answers_500' else 'no HTTP answer'))
    assert said in output


def test_sweep_prints_each_hosts_line_as_soon_as_that_host_is_done(ansible, inventory, make_guest, hv2, project,
                                                                   tmp_path):
    """hv1's sweep is held at a fail point (the pause of DEFERRED_LIBVIRT_FAILPOINT_PAUSE, which reaches only the
    local host's modules); hv2's line must be printed while hv1 is still sweeping, and the summary only after."""
    name, dummy = make_guest('a', start=False)
    wait_past(soft_delete(ansible, inventory, 'hv1', name, project, '2s'))
    pause = str(tmp_path / 'paused')
    env = ansible.env(ANSIBLE_STDOUT_CALLBACK='default', PYTHONUNBUFFERED='1', ANSIBLE_FORCE_COLOR='0',
                      DEFERRED_LIBVIRT_FAILPOINT='reclaim.before_lock', DEFERRED_LIBVIRT_FAILPOINT_PAUSE=pause)
    # pipe: read line by line as it runs, which is what the test is about
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i', inventory,
                             'deferred.libvirt.reclaim', '-e', json.dumps({'reclaim_project': project})],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines, paused_pid = [], None

    def paused_module(seconds):
        # The pid hv1's module wrote when it stopped at the fail point, once it has (it may reach the fail point only
        # after hv2's line on a busy machine: hv1 is then still sweeping all the same); None when it has not by then.
        deadline = time.monotonic() + seconds
        while True:
            if os.path.exists(pause):
                with open(pause) as handle:
                    words = handle.read().split()
                if words:
                    return int(words[0])
            if time.monotonic() >= deadline or proc.poll() is not None:
                return None
            time.sleep(0.2)

    def resume_anyway():
        # Were hv2's line held back until hv1 is done, nothing would ever be printed: let hv1 go, and fail below.
        pid = paused_module(0)
        if pid is not None:
            os.kill(pid, signal.SIGCONT)
    watchdog = threading.Timer(150, resume_anyway)
    watchdog.start()
    try:
        for line in proc.stdout:
            lines.append(line)
            if '"msg": "host hv2: swept' in line:
                break
        assert not any('host hv1: swept' in line for line in lines), ''.join(lines)[-3000:]
        paused_pid = paused_module(120)
        assert paused_pid is not None and os.path.exists('/proc/%d' % paused_pid), \
            'hv1\'s sweep never reached the fail point reclaim.before_lock: ' + ''.join(lines)[-3000:]
    finally:
        if paused_pid is None:
            paused_pid = paused_module(120)
        if paused_pid is not None:
            os.kill(paused_pid, signal.SIGCONT)
        watchdog.cancel()
        rest, dummy = proc.communicate(timeout=300)
    output = ''.join(lines) + rest
    assert proc.returncode == 0, output[-3000:]
    hv1_at = output.index('"msg": "host hv1: swept: reclaimed 1,')
    assert output.index('"msg": "host hv2: swept') < hv1_at < output.index('TASK [deferred.libvirt.reclaim : Show the summary]')
