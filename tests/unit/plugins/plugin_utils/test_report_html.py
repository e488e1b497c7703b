# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""plugins/plugin_utils/_report_html.py: the report as one self-contained page.

The inputs are report_samples.py's; the assertions are the ones the report filters have always had to meet.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import re

from ansible_collections.deferred.libvirt.plugins.plugin_utils._report_filters import (
    trash_report, trash_report_html)
from report_samples import NOW, fleet, view


def test_page_is_self_contained_and_escapes_names():
    data = trash_report(fleet(hv1=([view('<script>x</script>', reclaim_at='2024-05-03T00:00:00Z')], None)),
                        ['hv1'], now=NOW)
    page = trash_report_html(data)
    assert '&lt;script&gt;x&lt;/script&gt;' in page and '<script>x' not in page
    assert not re.search(r'(src|href)="(?!data:)', page)
    assert 'http://' not in page and 'https://' not in page and '@import' not in page and 'url(' not in page


def test_hostname_cannot_break_out_of_an_id_attribute():
    host = 'hv1"><script>alert(1)</script><p x="'
    data = trash_report(fleet(**{host: ([view('a', reclaim_at='2024-05-03T00:00:00Z')], None),
                                 'hv2': ([], None)}), [host, 'hv2'], now=NOW)
    page = trash_report_html(data)
    assert '<script>alert' not in page and 'x=""' not in page
    ids = re.findall(r' id="([^"]*)"', page)
    assert all(re.match(r'^[A-Za-z0-9_.-]+$', i) for i in ids), ids
    assert len(ids) == len(set(ids))
    assert 'id="trash-hv2-empty"' in page
