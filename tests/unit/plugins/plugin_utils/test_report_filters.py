# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_report_filters.py: each report filter turns bad input into an error for the operator.

The inputs are report_samples.py's; the assertions are the ones the report filters have always had to meet.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import pytest

from ansible.errors import AnsibleFilterError

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import (
    trash_report, trash_report_html)


def test_bad_window_is_refused():
    with pytest.raises(AnsibleFilterError, match="warning_window: 'soon' is not a duration.*nothing was written"):
        trash_report({}, [], warning_window='soon')
    with pytest.raises(AnsibleFilterError, match='not a trash report'):
        trash_report_html({'hosts': {}})
