# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""The AWX survey specs in docs/awx/ are what AWX accepts and what the playbooks read.

AWX's rules, as its API applies them when a survey spec is saved (JobTemplateSurveySpec._validate_spec_data) and when
a job is launched (SurveyJobTemplateMixin._survey_element_validation): name, description and a non-empty spec; each
question has type, question_name, variable (strings) and required (a boolean), a variable appears once, the type is
one AWX knows, a default other than "" has the type's Python type, min and max are integers, a choice question lists
its choices and its default is one of them (one only for multiplechoice). A default that breaks its own question's
rules is dropped by AWX without a word, so it is refused here. Every question's variable is one the job template's
playbook (or a role it runs) reads, and docs/awx/setup.yml (the job templates as code, with awx.awx) gives each job
template its survey file.
"""

import glob
import json
import os
import re

import pytest
import yaml

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SURVEYS = sorted(glob.glob(os.path.join(ROOT, 'docs', 'awx', 'survey_*.json')))
ALLOWED_TYPES = {'multiplechoice': str, 'multiselect': str, 'password': str, 'text': str, 'textarea': str,
                 'float': (float, int), 'integer': int}
SETUP = os.path.join(ROOT, 'docs', 'awx', 'setup.yml')


def job_templates():
    """The job templates docs/awx/setup.yml creates: survey file -> playbook (a path in the project)."""
    with open(SETUP) as handle:
        [play] = yaml.safe_load(handle)
    return dict((t['survey'], t['playbook']) for t in play['vars']['awx_job_templates'])


def spec_errors(spec):
    """The errors AWX's API gives when this survey spec is saved."""
    for field, kind in (('name', str), ('description', str), ('spec', list)):
        if not isinstance(spec.get(field), kind):
            return ['%s missing or not a %s' % (field, kind.__name__)]
    if not spec['spec']:
        return ["'spec' doesn't contain any items"]
    errors = []
    seen = set()
    for idx, item in enumerate(spec['spec']):
        for field in ('type', 'question_name', 'variable', 'required'):
            if not isinstance(item.get(field), bool if field == 'required' else str):
                errors.append('question %d: %s missing or of the wrong type' % (idx, field))
        if errors:
            continue
        if item['variable'] in seen:
            errors.append('question %d: variable %s duplicated' % (idx, item['variable']))
        seen.add(item['variable'])
        qtype = item['type']
        if qtype not in ALLOWED_TYPES:
            errors.append('question %d: type %s unknown' % (idx, qtype))
            continue
        if 'default' in item and item['default'] != '' and not isinstance(item['default'], ALLOWED_TYPES[qtype]):
            errors.append('question %d: default %r is not a %s' % (idx, item['default'], qtype))
        for key in ('min', 'max'):
            if item.get(key) is not None and (not isinstance(item[key], int) or isinstance(item[key], bool)):
                errors.append('question %d: %s is not an integer' % (idx, key))
        if qtype in ('multiplechoice', 'multiselect'):
            if 'choices' not in item:
                errors.append('question %d: no choices' % idx)
                continue
            choices = item['choices'].splitlines() if isinstance(item['choices'], str) else item['choices']
            if 'default' in item:
                defaults = [d for d in item['default'].splitlines() if d.strip()] if isinstance(
                    item['default'], str) else item['default']
                if qtype == 'multiplechoice' and len(defaults) > 1:
                    errors.append('question %d: more than one default' % idx)
                if any(d not in choices for d in defaults):
                    errors.append('question %d: default %r is not one of the choices' % (idx, item['default']))
    return errors


def answer_errors(item, value):
    """The errors AWX gives at launch for this answer to this question."""
    qtype = item['type']
    low = item.get('min') if item.get('min') not in ('', None) else None
    high = item.get('max') if item.get('max') not in ('', None) else None
    if qtype in ('text', 'textarea', 'password'):
        if not isinstance(value, str):
            return ['not a string']
        size = len(value)
    elif qtype == 'integer':
        if not isinstance(value, int) or isinstance(value, bool):  # AWX: type(value) is int, so no bool
            return ['not an integer']
        size = value
    elif qtype == 'float':
        if not isinstance(value, (float, int)):
            return ['not a number']
        size = value
    elif qtype == 'multiplechoice':
        return [] if value in item['choices'] else ['not one of the choices']
    else:
        return [] if isinstance(value, list) and all(v in item['choices'] for v in value) else ['not a list of choices']
    return (['below min %s' % low] if low is not None and size < low else []) + (
        ['above max %s' % high] if high is not None and size > high else [])


def load(path):
    with open(path) as handle:
        return json.load(handle)


def test_every_survey_file_is_the_survey_of_one_job_template_of_the_setup_playbook():
    assert sorted(os.path.basename(p) for p in SURVEYS) == sorted(job_templates())
    for playbook in job_templates().values():
        assert os.path.isfile(os.path.join(ROOT, playbook)), playbook


def test_the_setup_playbook_gives_every_job_template_its_survey_file_and_schedules_the_reclaim():
    with open(SETUP) as handle:
        [play] = yaml.safe_load(handle)
    [templates] = [t for t in play['tasks'] if 'awx.awx.job_template' in t and t.get('loop') == '{{ awx_job_templates }}']
    assert templates['loop'] == '{{ awx_job_templates }}'
    args = templates['awx.awx.job_template']
    assert args['survey_enabled'] is True and args['survey_spec'] == (
        "{{ lookup('ansible.builtin.file', item.survey) | from_json }}")
    assert args['ask_variables_on_launch'] is False
    names = [t['name'] for t in play['vars']['awx_job_templates']]
    schedules = [t['awx.awx.schedule']['unified_job_template'] for t in play['tasks'] if 'awx.awx.schedule' in t]
    [workflow] = [t['awx.awx.workflow_job_template'] for t in play['tasks'] if 'awx.awx.workflow_job_template' in t
                  and t['awx.awx.workflow_job_template']['name'] == 'Reclaim and report']
    nodes = [n['unified_job_template']['name'] for n in workflow['workflow_nodes']]
    assert 'Reclaim' in schedules and workflow['name'] in schedules
    assert set(nodes) <= set(names) and set(schedules) - {workflow['name'], 'Fleet reclaim'} <= set(names)
    [reclaim] = [t for t in play['vars']['awx_job_templates'] if t['name'] == 'Reclaim']
    assert reclaim['concurrent'] is False, 'two sweeps must never overlap'


@pytest.mark.parametrize('path', SURVEYS, ids=os.path.basename)
def test_a_survey_spec_is_one_awx_accepts(path):
    assert spec_errors(load(path)) == []


@pytest.mark.parametrize('path', SURVEYS, ids=os.path.basename)
def test_a_survey_default_passes_its_own_question_or_is_empty(path):
    """AWX passes a default only when it passes its question's rules; "" (no default) is dropped for an integer and
    passed as "" for a text question, which the playbooks take as no answer."""
    for item in load(path)['spec']:
        if item.get('default') in ('', None):
            assert not item['required'] or item['type'] in ('text', 'textarea'), item
            continue
        assert answer_errors(item, item['default']) == [], item


@pytest.mark.parametrize('path', SURVEYS, ids=os.path.basename)
def test_every_survey_variable_is_read_by_the_job_templates_playbook(path):
    playbook = job_templates()[os.path.basename(path)]
    texts = [open(os.path.join(ROOT, playbook)).read()]
    for role in set(re.findall(r'deferred\.libvirt\.(\w+)', texts[0])):
        for sub in glob.glob(os.path.join(ROOT, 'roles', role, '*', '*.yml')):
            texts.append(open(sub).read())
    for item in load(path)['spec']:
        used = re.compile(r'(?<![\w.])%s(?!\w)' % re.escape(item['variable']))
        assert any(used.search(re.sub(r'(?m)^\s*#.*$', '', text)) for text in texts), (
            '%s: %s is not read by %s' % (os.path.basename(path), item['variable'], playbook))


def test_the_rules_refuse_what_awx_refuses():
    """The checks above can fail: each rule catches the mistake it is for."""
    question = {'question_name': 'Q', 'variable': 'v', 'required': False, 'type': 'multiplechoice',
                'choices': ['a', 'b'], 'default': 'a'}
    good = {'name': '', 'description': '', 'spec': [question]}
    assert spec_errors(good) == []
    bad_default = json.loads(json.dumps(good))
    bad_default['spec'][0]['default'] = 'c'
    assert spec_errors(bad_default) == ["question 0: default 'c' is not one of the choices"]
    twice = json.loads(json.dumps(good))
    twice['spec'].append(dict(good['spec'][0]))
    assert spec_errors(twice) == ['question 1: variable v duplicated']
    number = {'name': '', 'description': '', 'spec': [{'question_name': 'N', 'variable': 'n', 'required': False,
                                                       'type': 'integer', 'default': '5', 'min': 1, 'max': '9'}]}
    assert spec_errors(number) == ["question 0: default '5' is not a integer", 'question 0: max is not an integer']
    assert answer_errors({'type': 'text', 'min': 0, 'max': 3}, 'abcd') == ['above max 3']
    assert answer_errors({'type': 'integer', 'min': 1, 'max': 9}, '') == ['not an integer']


def _fleet_setup():
    with open(SETUP) as handle:
        [play] = yaml.safe_load(handle)
    templates = dict((t['name'], t) for t in play['vars']['awx_fleet_job_templates'])
    [task] = [t for t in play['tasks'] if t.get('loop') == '{{ awx_fleet_job_templates }}']
    [workflow] = [t['awx.awx.workflow_job_template'] for t in play['tasks'] if 'awx.awx.workflow_job_template' in t
                  and t['awx.awx.workflow_job_template']['name'] == 'Fleet reclaim']
    schedules = [t['awx.awx.schedule']['unified_job_template'] for t in play['tasks'] if 'awx.awx.schedule' in t]
    return play, templates, task['awx.awx.job_template'], workflow, schedules


def test_only_the_fleet_gather_and_sweep_are_sliced_and_every_fleet_job_keeps_facts():
    # AWX's own docs: a job that orchestrates across hosts must not be sliced. The index reads every host of the fleet.
    play, templates, args, workflow, schedules = _fleet_setup()
    assert args['use_fact_cache'] is True and args['job_slice_count'] == '{{ item.slices }}'
    assert args['allow_simultaneous'] is False and args['ask_variables_on_launch'] is False
    assert templates['Fleet index']['slices'] == 1 and templates['Fleet run']['slices'] == 1
    assert templates['Fleet gather']['slices'] == templates['Fleet sweep']['slices'] == '{{ awx_fleet_slices }}'
    assert play['vars']['awx_fleet_slices'] > 1
    for template in templates.values():
        assert os.path.isfile(os.path.join(ROOT, template['playbook'])), template['playbook']
    assert templates['Fleet index']['playbook'] == 'playbooks/fleet_index.yml'


def test_the_fleet_workflow_runs_gather_then_index_then_sweep_and_is_scheduled():
    play, templates, args, workflow, schedules = _fleet_setup()
    nodes = dict((n['identifier'], n) for n in workflow['workflow_nodes'])
    template_of = dict((k, n['unified_job_template']['name']) for k, n in nodes.items())
    assert set(template_of.values()) == set(templates)
    after = dict((k, [(kind, c['identifier']) for kind, children in (n.get('related') or {}).items() for c in children])
                 for k, n in nodes.items())
    assert after == {'run': [('success_nodes', 'gather')], 'gather': [('always_nodes', 'index')],
                     'index': [('success_nodes', 'sweep')], 'sweep': []}
    assert [template_of[k] for k in ('run', 'gather', 'index', 'sweep')] == [
        'Fleet run', 'Fleet gather', 'Fleet index', 'Fleet sweep']
    assert workflow['allow_simultaneous'] is False and 'Fleet reclaim' in schedules
