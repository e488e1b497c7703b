# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Tenant strings are never code: every filter's result is marked unsafe for templating.

A filter folds what hosts reported (domain names, projects, users, lock
reasons, history messages, the skip reasons of last_sweep.json) into new
strings and dicts. On ansible-core 2.16 to 2.18 a plain string that holds
``{{ ... }}`` is templated again when a later task reads the variable it was
stored in, so a lock reason could run a lookup on the control node.
``wrap_var`` marks the whole result unsafe there. On 2.19 and later data
tagging templates only strings tagged trusted (the playbook's own), and a
filter's new strings carry no such tag, so the result is left as it is
(``wrap_var`` would rebuild the lazy containers of hostvars in it, which 2.19
refuses). Either way the result is data, never a template.
"""

from __future__ import absolute_import, division, print_function
__metaclass__ = type

import functools

from ansible.utils.unsafe_proxy import wrap_var

import ansible.template

# ansible-core 2.19 and later tag data instead: a filter's new strings are never templated there, and wrap_var would
# break lazy containers ("Direct construction of lazy containers is not supported").
DATA_TAGGING = hasattr(ansible.template, 'trust_as_template')


def unsafe(value):
    """``value`` with every string in it marked unsafe (never templated)."""
    return value if DATA_TAGGING else wrap_var(value)


def unsafe_result(func):
    """A filter whose result is never templated again."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        return unsafe(func(*args, **kwargs))
    wrapper.unsafe_result = True
    return wrapper


def unsafe_filters(filters):
    """A FilterModule's filters() dict with every filter's result marked unsafe."""
    return dict((name, unsafe_result(func)) for name, func in filters.items())
