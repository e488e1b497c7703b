# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The playbooks as AWX runs its job templates: through ansible-runner, with a private data dir laid out as AWX lays it.

Per job: project/ (the project checkout, with playbooks/), inventory/hosts, env/extravars (the survey's answers,
built from the survey specs in docs/awx/ as AWX builds them), env/envvars (the collections path AWX installs the
project's collections into, and the OpenStack credential as AWX injects it: a clouds.yaml in the private data dir
named by OS_CLIENT_CONFIG_FILE, whose one cloud AWX names ``devstack``), and artifacts/<job id>/ with the job events
an AWX user reads in the job's output. Against the real hypervisor and the real Cinder.
"""

import datetime
import glob
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import yaml

import cinder_helpers as ch
from fleet_support import Hv2Guests, fleet_up, wait_past
from together import Started

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SURVEYS = os.path.join(ROOT, 'docs', 'awx')
RUNNER = os.path.join(os.path.dirname(sys.executable), 'ansible-runner')


def survey_rule_errors(question, answers):
    """AWX's check of one survey answer (SurveyJobTemplateMixin._survey_element_validation): the errors it names."""
    var = question['variable']
    if var not in answers:
        return ['%s value missing' % var] if question['required'] else []
    value = answers[var]
    low = question.get('min') if question.get('min') not in ('', None) else None
    high = question.get('max') if question.get('max') not in ('', None) else None
    if question['type'] in ('text', 'textarea', 'password'):
        if not isinstance(value, str):
            return ['%s: %r is not a string' % (var, value)]
        size = len(value)
    elif question['type'] == 'integer':
        if not isinstance(value, int) or isinstance(value, bool):  # AWX: type(value) is int, so no bool
            return ['%s: %r is not an integer' % (var, value)]
        size = value
    elif question['type'] == 'multiplechoice':
        return [] if value in question['choices'] else ['%s: %r is not one of %s' % (var, value, question['choices'])]
    else:
        raise AssertionError('no rule here for survey type %s' % question['type'])
    errors = []
    if low is not None and size < int(low):
        errors.append('%s: %r is below the minimum %s' % (var, value, low))
    if high is not None and size > int(high):
        errors.append('%s: %r is above the maximum %s' % (var, value, high))
    return errors


def survey_extravars(template, answers):
    """The extra vars AWX passes for a survey (SurveyJobTemplateMixin._update_unified_job_kwargs and the launch form):
    every question's default that passes the survey's rules, then every answer given, as given: an empty text answer
    is passed as "", an integer answer as an int, a multiplechoice answer as its string. A required question must be
    answered (the launch form refuses an empty one), an answer that breaks the survey's rules fails the launch, an
    unknown answer is refused."""
    with open(os.path.join(SURVEYS, 'survey_%s.json' % template)) as handle:
        spec = json.load(handle)['spec']
    known = {q['variable']: q for q in spec}
    unknown = set(answers) - set(known)
    assert not unknown, 'not in the %s survey: %s' % (template, sorted(unknown))
    extravars = {}
    for var, question in known.items():
        if question.get('default') is not None and not survey_rule_errors(question, {var: question['default']}):
            extravars[var] = question['default']
    extravars.update(answers)
    for var, question in known.items():
        if question['required']:
            assert extravars.get(var) not in ('', None), '%s is required by the %s survey' % (var, template)
        errors = survey_rule_errors(question, extravars)
        assert not errors, 'AWX refuses the launch: %s' % errors
    return extravars


AWX_USER = 'alice.awx'


def awx_meta_vars(job_id, template):
    """The extra vars AWX adds to every job (awx_* and their tower_* twins): who launched it, the job and template."""
    meta = {'user_name': AWX_USER, 'user_id': 7, 'user_email': 'alice@example.com', 'user_first_name': 'Alice',
            'user_last_name': 'Awx', 'job_id': job_id, 'job_launch_type': 'manual',
            'job_template_id': 40 + job_id, 'job_template_name': template.replace('_', ' ').capitalize(),
            'inventory_id': 1, 'inventory_name': 'hypervisors', 'project_revision': 'main'}
    out = {}
    for key, value in meta.items():
        out['awx_' + key] = value
        out['tower_' + key] = value
    return out


class AwxJob(object):
    """One job template run: the private data dir, then ansible-runner run, then what the job's output shows."""

    def __init__(self, base, collections, state_dir, job_id):
        self.pdd = os.path.join(base, 'job-%d' % job_id)
        self.job_id = job_id
        self.collections = collections
        self.state_dir = state_dir

    def run(self, playbook, template, answers, cloud=True, hosts=None, group_vars=None):
        """``hosts``: the inventory's hypervisors (host -> vars); default localhost with the local connection;
        ``group_vars``: more variables of the hypervisors group (the inventory's, as an AWX inventory holds them)."""
        return self.start(playbook, template, answers, cloud=cloud, hosts=hosts, group_vars=group_vars).finish()

    def start(self, playbook, template, answers, cloud=True, hosts=None, group_vars=None):
        """Lay out the private data dir and start ansible-runner (finish() waits for it)."""
        pdd = self.pdd
        shutil.copytree(os.path.join(ROOT, 'playbooks'), os.path.join(pdd, 'project', 'playbooks'))
        os.makedirs(os.path.join(pdd, 'inventory'))
        os.makedirs(os.path.join(pdd, 'env'))
        if hosts is None:
            hosts = {'localhost': {'ansible_connection': 'local', 'ansible_python_interpreter': sys.executable,
                                   'deferred_libvirt_uri': 'qemu:///system',
                                   'deferred_libvirt_state_dir': self.state_dir}}
        group_vars = dict({'deferred_libvirt_cloud': 'devstack'} if cloud else {}, **(group_vars or {}))
        with open(os.path.join(pdd, 'inventory', 'hosts'), 'w') as handle:
            json.dump({'all': {'children': {'hypervisors': {'hosts': hosts, 'vars': group_vars}}}}, handle)
        with open(os.path.join(pdd, 'env', 'extravars'), 'w') as handle:
            json.dump(dict(awx_meta_vars(self.job_id, template), **survey_extravars(template, answers)), handle)
        # Each job has its own home, as each AWX job has in its own execution environment container (a short path:
        # ssh's ControlPath socket lives under it).
        self.home = tempfile.mkdtemp(prefix='awx-home-')
        # The job runs in its project directory, as in the EE (/runner/project).
        envvars = {'HOME': self.home, 'PWD': os.path.join(pdd, 'project'),
                   'ANSIBLE_COLLECTIONS_PATH': self.collections, 'ANSIBLE_FORCE_COLOR': 'False',
                   'ANSIBLE_HOST_KEY_CHECKING': 'False', 'ANSIBLE_DEPRECATION_WARNINGS': 'False',
                   'PATH': os.path.dirname(sys.executable) + os.pathsep + os.environ.get('PATH', '')}
        if cloud:
            # AWX's OpenStack credential: its own clouds.yaml, one cloud named devstack, in the private data dir.
            with open(ch.CLOUDS_YAML) as handle:
                testbed = yaml.safe_load(handle)['clouds']['testbed']
            path = os.path.join(pdd, 'env', 'tmp_openstack_credential')
            with open(path, 'w') as handle:
                yaml.safe_dump({'clouds': {'devstack': testbed}}, handle)
            os.chmod(path, 0o600)
            envvars['OS_CLIENT_CONFIG_FILE'] = path
        with open(os.path.join(pdd, 'env', 'envvars'), 'w') as handle:
            json.dump(envvars, handle)
        self.proc = Started([RUNNER, 'run', pdd, '-p', 'playbooks/%s' % playbook, '--ident', str(self.job_id)],
                            merge=True)
        return self

    def finish(self):
        """Wait for the job and read what its output shows."""
        self.stdout = self.proc.communicate(timeout=900)[0]
        self.rc = self.proc.returncode
        art = os.path.join(self.pdd, 'artifacts', str(self.job_id))
        with open(os.path.join(art, 'status')) as handle:
            self.status = handle.read().strip()
        self.events = []
        for path in glob.glob(os.path.join(art, 'job_events', '*.json')):
            with open(path) as handle:
                self.events.append(json.load(handle))
        self.events.sort(key=lambda e: e['counter'])
        return self

    def artifacts(self):
        """What the job keeps as its artifacts: the playbook's set_stats data, as AWX stores it for the job."""
        [stats] = [e for e in self.events if e['event'] == 'playbook_on_stats']
        return stats['event_data'].get('artifact_data') or {}

    def results(self, task, event='runner_on_ok'):
        """The result of a task as the job output shows it (one per host)."""
        return [e['event_data']['res'] for e in self.events
                if e['event'] == event and e['event_data'].get('task') == task]

    def failures(self):
        return [e['event_data'] for e in self.events if e['event'] == 'runner_on_failed'
                and not e['event_data'].get('ignore_errors')]

    def why(self):
        return 'job %s %s (rc %s)\n%s' % (self.job_id, self.status, self.rc, self.stdout[-4000:])


@pytest.fixture
def awx(collection, hypervisor, state_dir, tmp_path):
    jobs = []

    def job(playbook, template, answers, cloud=True, hosts=None, group_vars=None, wait=True):
        """One job; with wait=False it is started and returned, and its finish() waits for it."""
        item = AwxJob(str(tmp_path / 'awx'), collection, state_dir, len(jobs) + 1)
        jobs.append(item)
        item.start(playbook, template, answers, cloud=cloud, hosts=hosts, group_vars=group_vars)
        return item.finish() if wait else item
    yield job
    for item in jobs:
        if item.proc.poll() is None:
            item.proc.kill()
            item.proc.wait()
        shutil.rmtree(item.home, ignore_errors=True)


def project_of(prefix):
    return prefix.rstrip('-')


def owned(ansible, names, project):
    result = ansible.task('deferred.libvirt.vm_attributes', name=names, project=project)
    assert not result.get('failed'), result


def test_soft_delete_then_restore_job_templates(awx, ansible, make_guest, prefix, hypervisor):
    a, dummy = make_guest('a')
    b, dummy = make_guest('b')
    project = project_of(prefix)
    owned(ansible, [a, b], project)

    job = awx('soft_delete.yml', 'soft_delete', {'names': '%s, %s' % (a, b), 'project': project,
                                                 'reclaim_interval': '2d', 'shutdown_timeout': '60s'})
    assert job.status == 'successful', job.why()
    [res] = job.results('Soft delete the domains on their hosts')
    assert res['changed'] is True
    by_name = {i['name']: i for i in res['instances']}
    assert sorted(by_name) == [a, b]
    for inst in by_name.values():
        assert inst['action'] == 'soft_deleted' and not inst.get('failed'), inst
        assert inst['clean_shutdown'] is True and inst['reclaim_at']
    [shown] = job.results('Show when each domain will be reclaimed')
    assert '%s: reclaim_at %s' % (a, by_name[a]['reclaim_at']) in shown['msg']
    assert hypervisor.lookupByName(a).info()[0] == 5  # VIR_DOMAIN_SHUTOFF

    job = awx('restore.yml', 'restore', {'names': a, 'project': project})
    assert job.status == 'successful', job.why()
    [res] = job.results('Restore the domains on their hosts')
    [inst] = res['instances']
    assert inst['name'] == a and inst['action'] == 'restored' and not inst.get('failed'), inst
    assert hypervisor.lookupByName(a).isActive()
    assert not hypervisor.lookupByName(b).isActive()


def at(stamp):
    return datetime.datetime.fromisoformat(stamp.replace('Z', '+00:00')).replace(microsecond=0)


def journal(state_dir):
    with open(os.path.join(state_dir, 'events.jsonl')) as handle:
        return [json.loads(line) for line in handle]


def test_a_survey_left_at_its_defaults_soft_deletes_with_the_default_retention_and_the_journal_names_the_awx_user(
        awx, ansible, make_guest, prefix, hypervisor, state_dir):
    """Retention left empty: AWX passes reclaim_interval "" (the survey's default), which means the default 7d; the
    journal's actor is the AWX user who launched the job (awx_user_name), not the user the module runs as."""
    a, dummy = make_guest('a')
    project = project_of(prefix)
    owned(ansible, [a], project)
    job = awx('soft_delete.yml', 'soft_delete', {'names': a, 'project': project})
    with open(os.path.join(job.pdd, 'env', 'extravars')) as handle:
        sent = json.load(handle)
    assert sent['reclaim_interval'] == '' and sent['mode'] == 'shutdown' and sent['force'] == 'false', sent
    assert job.status == 'successful', job.why()
    [res] = job.results('Soft delete the domains on their hosts')
    [inst] = res['instances']
    assert inst['action'] == 'soft_deleted' and not inst.get('failed'), inst
    [deleted] = [e for e in journal(state_dir) if e['domain'] == a and e['event_type'] == 'instance.soft_delete.end']
    assert deleted['actor'] == AWX_USER and deleted['os_user'] == 'root', deleted
    # reclaim_at is counted from the deletion's start; the event is written at its end (the guest's shutdown).
    kept_for = at(deleted['timestamp']) - at(deleted['payload']['reclaim_at'])
    assert datetime.timedelta(days=-7) <= kept_for <= datetime.timedelta(days=-7, minutes=5), deleted

    job = awx('restore.yml', 'restore', {'names': a, 'project': project, 'start_timeout': ''})
    assert job.status == 'successful', job.why()
    [restored] = [e for e in journal(state_dir) if e['domain'] == a and e['event_type'] == 'instance.restore.end']
    assert restored['actor'] == AWX_USER, restored


def test_two_restore_jobs_at_once_in_separate_private_data_dirs_never_exceed_the_quota_together(
        awx, ansible, make_guest, prefix, hypervisor):
    """Two Restore jobs launched together, each in its own private data dir and home (as two AWX jobs run in two
    execution environments), for one project with room for one more domain: one restores its domain, the other
    waits for the quota lock and is then refused with nothing changed, never both."""
    a, dummy = make_guest('a')
    b, dummy = make_guest('b')
    project = project_of(prefix)
    owned(ansible, [a, b], project)
    result = ansible.task('deferred.libvirt.vm_soft_delete', name=[a, b], project=project, reclaim_interval='1d')
    assert not result.get('failed'), result
    limits = {'quota_limits': {project: {'instances': 1}}}
    jobs = [awx('restore.yml', 'restore', {'names': name, 'project': project}, group_vars=limits, wait=False)
            for name in (a, b)]
    for job in jobs:
        job.finish()
    active = [name for name in (a, b) if hypervisor.lookupByName(name).isActive()]
    assert len(active) == 1, (active, [job.why() for job in jobs])
    [won] = [job for job in jobs if job.status == 'successful']
    [lost] = [job for job in jobs if job.status == 'failed']
    [res] = won.results('Restore the domains on their hosts')
    assert [i['name'] for i in res['instances']] == active
    [failure] = lost.failures()
    assert 'quota' in failure['res']['msg'] and 'instances' in failure['res']['msg'], failure['res']
    assert not lost.results('Restore the domains on their hosts')


def test_report_job_template_keeps_the_figures_as_artifacts_and_writes_the_files_where_the_operator_says(
        awx, ansible, make_guest, prefix, tmp_path):
    a, dummy = make_guest('a')
    b, dummy = make_guest('b')
    project = project_of(prefix)
    owned(ansible, [a, b], project)
    result = ansible.task('deferred.libvirt.vm_soft_delete', name=a, project=project, reclaim_interval='1d')
    assert not result.get('failed'), result
    published = tmp_path / 'www' / 'trash'
    job = awx('report.yml', 'report', {'report_project': project, 'report_dest': str(published),
                                       'report_dest_host': 'localhost'})
    assert job.status == 'successful', job.why()
    report = job.artifacts()['trash_report']
    assert report['project'] == project and report['totals']['domains'] == 1, report
    assert list(report['projects']) == [project] and report['projects'][project]['domains'] == 1, report
    assert report['host'] == 'localhost'
    assert report['files'] == [str(published / 'trash-report.html'), str(published / 'trash-report.json')]
    with open(str(published / 'trash-report.json')) as handle:
        written = json.load(handle)
    assert [i['name'] for i in written['trash']] == [a] and written['lines'] == report['lines']
    assert (published / 'trash-report.html').stat().st_size > 0

    # Every question left at its default (empty): the whole fleet, written in the job's own directory.
    job = awx('report.yml', 'report', {})
    assert job.status == 'successful', job.why()
    report = job.artifacts()['trash_report']
    assert report['project'] is None and report['totals']['domains'] >= 1, report
    assert all(path.startswith(job.pdd) for path in report['files']), report['files']
    assert all(os.path.exists(path) for path in report['files'])


def test_info_job_template_shows_the_trash_and_keeps_it_as_artifacts(awx, ansible, make_guest, prefix):
    a, dummy = make_guest('a')
    b, dummy = make_guest('b')
    project = project_of(prefix)
    owned(ansible, [a, b], project)
    result = ansible.task('deferred.libvirt.vm_soft_delete', name=a, project=project, reclaim_interval='1d')
    assert not result.get('failed'), result
    job = awx('info.yml', 'info', {'project': project})
    assert job.status == 'successful', job.why()
    info = job.artifacts()['trash_info']
    assert info['project'] == project
    assert [(t['name'], t['project']) for t in info['trash']] == [(a, project)], info['trash']
    assert info['trash'][0]['reclaim_at'] == result['instances'][0]['reclaim_at']
    assert info['projects'][project]['instances'] == 2, info['projects']
    [shown] = job.results('Show the fleet')
    assert any(a in line for line in shown['msg']), shown['msg']
    assert not job.failures()


def test_a_survey_naming_an_unknown_domain_fails_the_job_and_changes_nothing(awx, ansible, make_guest, prefix,
                                                                             hypervisor):
    a, dummy = make_guest('a')
    project = project_of(prefix)
    owned(ansible, [a], project)
    job = awx('soft_delete.yml', 'soft_delete', {'names': '%s,%snope' % (a, prefix), 'project': project})
    assert job.status == 'failed', job.why()
    [failure] = job.failures()
    assert failure['host'] == 'localhost'
    assert '%snope' % prefix in failure['res']['msg'], failure['res']
    assert not job.results('Soft delete the domains on their hosts')
    assert hypervisor.lookupByName(a).isActive()


def test_terminate_job_template_uses_the_awx_openstack_credential(awx, ansible, make_guest, prefix, hypervisor,
                                                                  cinder):
    name, uuid = make_guest('a', start=False)
    project = project_of(prefix)
    try:
        doomed = ch.create_volume(prefix + 'doomed', 1, conn=cinder).id
        kept = ch.create_volume(prefix + 'kept', 1, conn=cinder).id
        ch.attach_like_nova(doomed, uuid, mountpoint='/dev/vdb', conn=cinder)
        ch.attach_like_nova(kept, uuid, mountpoint='/dev/vdc', conn=cinder)
        result = ansible.task('deferred.libvirt.vm_attributes', name=name, project=project, volumes=[
            {'id': doomed, 'target': 'vdb', 'delete_on_termination': True},
            {'id': kept, 'target': 'vdc', 'delete_on_termination': False}])
        assert not result.get('failed'), result

        job = awx('terminate.yml', 'terminate', {'names': name, 'project': project})
        assert job.status == 'successful', job.why()
        [res] = job.results('Terminate the domains on their hosts')
        [inst] = res['instances']
        assert inst['name'] == name and not inst.get('failed'), inst
        assert inst['volumes_deleted'] == [doomed] and inst['volumes_kept'] == [kept]
        assert inst['volumes_pending'] == []
        assert ch.volume_status(doomed, conn=cinder) is None
        assert ch.volume_status(kept, conn=cinder) == 'available'
        assert name not in [d.name() for d in hypervisor.listAllDomains()]
    finally:
        ch.cleanup(prefix, conn=cinder)


def test_reclaim_job_template_reports_the_summary(awx, ansible, make_guest, prefix, hypervisor, cinder):
    a, a_uuid = make_guest('a', start=False)
    b, b_uuid = make_guest('b', start=False)
    kept, dummy = make_guest('kept', start=False)
    project = project_of(prefix)
    owned(ansible, [a, b, kept], project)
    result = ansible.task('deferred.libvirt.vm_soft_delete', name=[a, b], project=project, reclaim_interval=1)
    assert not result.get('failed'), result
    due = max(i['reclaim_at'] for i in result['instances'])
    result = ansible.task('deferred.libvirt.vm_soft_delete', name=kept, project=project, reclaim_interval='1d')
    assert not result.get('failed'), result

    wait_past(due)
    job = awx('reclaim.yml', 'reclaim', {'reclaim_project': project})
    assert job.status == 'successful', job.why()
    assert not job.failures()
    summaries = [e['event_data']['res'] for e in job.events if e['event'] == 'runner_on_ok'
                 and 'reclaim_summary' in e['event_data']['res'].get('ansible_facts', {})]
    assert summaries, job.why()
    summary = summaries[-1]['ansible_facts']['reclaim_summary']
    assert summary['ok'] is True
    # (On a shared test bed, another sweep of qemu:///system not scoped to a project may take a and b first.)
    assert summary['totals']['reclaimed'] == 2 and summary['totals']['failed'] == 0, (
        summary, 'still defined: %s' % [n for n in (a, b) if n in [d.name() for d in hypervisor.listAllDomains()]])
    assert sorted(i['name'] for i in summary['reclaimed']) == sorted([a, b])
    # The summary's lines come first; each host's sweep line and the warning follow them.
    printed = [e['event_data']['res'].get('msg') for e in job.events if e['event'] == 'runner_on_ok'
               and isinstance(e['event_data']['res'].get('msg'), list)
               and e['event_data']['res']['msg'][:len(summary['lines'])] == summary['lines']]
    assert printed, 'the summary lines are not in the job output'
    names = [d.name() for d in hypervisor.listAllDomains()]
    assert a not in names and b not in names and kept in names


@pytest.fixture(scope='module')
def fleet(hypervisor):
    return fleet_up()


def test_terminate_job_on_a_hypervisor_reached_over_ssh_gets_the_credential_from_the_controller(
        awx, ansible, fleet, prefix, cinder, state_dir):
    """AWX injects the credential where the job runs (the EE); a module on a host reached over SSH never sees
    OS_CLIENT_CONFIG_FILE, so the playbook hands it the cloud from the controller's clouds.yaml."""
    hv2 = Hv2Guests(fleet, prefix)
    project = project_of(prefix)
    spec = fleet['hv2']
    hosts = {'hv2': dict(((k, spec[k]) for k in ('ansible_host', 'ansible_port', 'ansible_user',
                                                 'ansible_ssh_private_key_file', 'ansible_ssh_common_args')),
                         ansible_connection='ssh', ansible_python_interpreter=sys.executable,
                         deferred_libvirt_uri=spec['uri'], deferred_libvirt_state_dir=os.path.join(state_dir, 'hv2'))}
    try:
        name, uuid = hv2.make('a')
        doomed = ch.create_volume(prefix + 'doomed', 1, conn=cinder).id
        ch.attach_like_nova(doomed, uuid, mountpoint='/dev/vdb', conn=cinder)
        # The domain's owner and volume, recorded on hv2 as an operator would before (not through AWX).
        play = [{'hosts': 'hv2', 'gather_facts': False, 'tasks': [{'deferred.libvirt.vm_attributes': {
            'uri': spec['uri'], 'state_dir': os.path.join(state_dir, 'hv2'), 'name': name, 'project': project,
            'volumes': [{'id': doomed, 'target': 'vdb', 'delete_on_termination': True}]}}]}]
        plays = state_dir + '-plays'
        os.makedirs(plays, exist_ok=True)
        with open(os.path.join(plays, 'attrs.json'), 'w') as handle:
            json.dump(play, handle)
        with open(os.path.join(plays, 'inventory.json'), 'w') as handle:
            json.dump({'all': {'hosts': hosts}}, handle)
        proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-i',
                               os.path.join(plays, 'inventory.json'), os.path.join(plays, 'attrs.json')],
                              env=ansible.env(), capture_output=True, text=True, check=False, timeout=600)
        assert proc.returncode == 0, proc.stdout[-3000:]

        job = awx('terminate.yml', 'terminate', {'names': name, 'project': project}, hosts=hosts)
        assert job.status == 'successful', job.why()
        [res] = job.results('Terminate the domains on their hosts')
        [inst] = res['instances']
        assert inst['volumes_deleted'] == [doomed] and inst['volumes_pending'] == [], inst
        assert ch.volume_status(doomed, conn=cinder) is None
        assert not hv2.exists(name)
        with open(ch.CLOUDS_YAML) as handle:
            token = yaml.safe_load(handle)['clouds']['testbed']['auth']['token']
        assert token not in json.dumps(job.events), 'the credential shows in the job output'
    finally:
        hv2.close()
        ch.cleanup(prefix, conn=cinder)
