# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Durations as operators write them: seconds, or 90s, 15m, 12h, 7d, 1h30m."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import math
import re
from ansible_collections.deferred.libvirt.plugins.module_utils._errors import DeferredError

UNITS = {'s': 1, 'm': 60, 'h': 3600, 'd': 86400, 'w': 604800}
# Ten years: anything longer is a typo, not a retention policy.
MAX_SECONDS = 10 * 365 * 86400

_PART = re.compile(r'(\d+(?:\.\d+)?)([smhdw])')


class DurationError(DeferredError, ValueError):
    """A duration that cannot be read; the message names the option."""


def parse_duration(value, name='duration', allow_zero=True, maximum=MAX_SECONDS):
    """Return ``value`` as whole seconds (int), or raise DurationError naming ``name``.

    Accepts a non-negative number of seconds (int, float or digit string) or a
    string of one or more ``<number><unit>`` parts with units s, m, h, d, w.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise DurationError('%s: %r is not a duration (use seconds or a string such as 90s, 15m, 12h, 7d)' % (name, value))
    if isinstance(value, (int, float)):
        seconds = float(value)
    else:
        text = str(value).strip().lower().replace(' ', '')
        if re.match(r'^\d+(\.\d+)?$', text):
            seconds = float(text)
        elif text and _PART.sub('', text) == '':
            seconds = sum(float(n) * UNITS[u] for n, u in _PART.findall(text))
        elif text[:1] == '-' and (re.match(r'^\d+(\.\d+)?$', text[1:]) or (text[1:] and _PART.sub('', text[1:]) == '')):
            seconds = -1.0  # '-5' or '-1d': say negative, the real reason, rather than "not a duration"
        else:
            raise DurationError('%s: %r is not a duration (use seconds or a string such as 90s, 15m, 12h, 7d)' % (name, value))
    if math.isnan(seconds):
        raise DurationError('%s: %r is not a duration (use seconds or a string such as 90s, 15m, 12h, 7d)' % (name, value))
    if seconds < 0:
        raise DurationError('%s: %r is negative; a duration must be zero or more' % (name, value))
    if seconds > maximum:
        raise DurationError('%s: %r is longer than the maximum of %d seconds' % (name, value, maximum))
    # Zero is judged after rounding: 0.4 would otherwise pass as "more than zero" and come back as 0.
    whole = int(round(seconds))
    if whole == 0 and not allow_zero:
        raise DurationError('%s: must be more than zero' % name)
    return whole


def format_duration(seconds):
    """The shortest exact spelling of ``seconds`` in the units above (for docs and messages)."""
    if seconds is None:
        return None
    for unit in ('w', 'd', 'h', 'm'):
        if seconds and seconds % UNITS[unit] == 0:
            return '%d%s' % (seconds // UNITS[unit], unit)
    return '%ds' % seconds
