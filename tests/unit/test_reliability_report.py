# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""tests/reliability/report.py: the headline of docs/reliability.md never counts a case that did not run as passed."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import os
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(os.path.dirname(HERE), 'reliability'))

import report  # noqa: E402
import trials  # noqa: E402

JUNIT = '''<?xml version="1.0" encoding="utf-8"?>
<testsuites><testsuite name="pytest" tests="3" skipped="1">
<testcase classname="tests.integration.test_bad_input" name="test_bad_input_is_refused[xml_name]" time="1.0"/>
<testcase classname="tests.integration.test_bad_input" name="test_wrong_cinder_credentials" time="0.1">
<skipped type="skip" message="the Cinder test service is not running">skipped</skipped></testcase>
<testcase classname="tests.reliability.test_state_dir" name="test_full" time="0.1"/>
</testsuite></testsuites>
'''


@pytest.fixture
def records(tmp_path, monkeypatch):
    monkeypatch.setattr(trials, 'OUT', str(tmp_path))
    trials.write('bad_input', {'fault': 'name with XML characters', 'trials': 1, 'outcome': 'refused', 'passed': True})
    trials.write('state_dir', {'fault': 'state_dir full', 'trials': 1, 'outcome': 'refused', 'passed': True})
    junit = tmp_path / 'junit.xml'
    junit.write_text(JUNIT)
    return str(junit)


def test_a_skipped_test_counts_as_a_case_that_did_not_run(records):
    skipped = report.skipped_tests(records)
    assert skipped == [('tests.integration.test_bad_input::test_wrong_cinder_credentials',
                        'the Cinder test service is not running')]
    text = report.table(skipped=skipped)
    assert '2 of 3 cases as expected, 1 skipped (did not run);' in text
    assert '### Skipped: did not run' in text
    assert '| tests.integration.test_bad_input::test_wrong_cinder_credentials | the Cinder test service is not running |' \
        in text


def test_without_a_report_of_the_run_the_headline_says_skips_are_unknown(records):
    text = report.table(skipped=None)
    assert '2 of 2 cases as expected, skipped tests unknown (no JUnit report of the run);' in text


def test_a_run_with_no_skip_says_so(records, tmp_path):
    (tmp_path / 'clean.xml').write_text(JUNIT.replace(
        '<skipped type="skip" message="the Cinder test service is not running">skipped</skipped>', ''))
    text = report.table(skipped=report.skipped_tests(str(tmp_path / 'clean.xml')))
    assert '2 of 2 cases as expected, 0 skipped (did not run);' in text
