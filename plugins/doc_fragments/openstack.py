# -*- coding: utf-8 -*-
# Copyright: deferred.libvirt contributors
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
# SPDX-License-Identifier: GPL-3.0-or-later
"""Shared option docs: the openstacksdk options of the modules that talk to Cinder, named as openstack.cloud names them."""

from __future__ import absolute_import, division, print_function
__metaclass__ = type


class ModuleDocFragment(object):

    # The same names and meanings as openstack.cloud's modules, so one clouds.yaml serves both.
    DOCUMENTATION = r'''
options:
  cloud:
    description:
      - Named cloud in C(clouds.yaml) (found as openstacksdk finds it, for example through C(OS_CLIENT_CONFIG_FILE)),
        or a dict holding a whole cloud configuration.
      - When neither O(cloud) nor O(auth) is given, Cinder is not contacted and the volumes in the lifecycle record are
        left as pending work in the tombstone (a fleet without Cinder declares O(cinder=false) instead).
      - The configuration is checked once per run, before a domain with volumes to settle is destroyed. An unknown
        cloud, missing or refused authentication, an unreachable Keystone or no block-storage endpoint refuses that
        domain, nothing changed.
    type: raw
  auth:
    description:
      - Authentication information for Cinder, as openstacksdk takes it (for example C(auth_url), C(username),
        C(password), C(project_name), or C(endpoint) and C(token)). Never logged.
    type: dict
  auth_type:
    description:
      - Name of the keystoneauth plugin, for example C(password), C(v3token) or C(admin_token).
    type: str
  region_name:
    description:
      - Name of the region.
    type: str
  interface:
    description:
      - Endpoint URL type to fetch from the service catalog.
      - When not given, the cloud's own setting in C(clouds.yaml) (or openstacksdk's default, V(public)) applies.
    type: str
    choices: [admin, internal, public]
    aliases: [endpoint_type]
  validate_certs:
    description:
      - Whether to verify TLS certificates of the API.
    type: bool
    aliases: [verify]
  ca_cert:
    description:
      - A path to a CA certificate bundle for verifying the API's certificate.
    type: str
    aliases: [cacert]
  api_timeout:
    description:
      - How long, in seconds, to wait for one API call.
    type: int
requirements:
  - openstacksdk >= 4.0
'''
