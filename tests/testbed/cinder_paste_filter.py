# Copyright: deferred.libvirt contributors
# SPDX-License-Identifier: GPL-3.0-or-later
"""Paste filter placed in front of Cinder's noauth middleware in the test bed.

With no Keystone and no Nova, two things stop openstacksdk from working
against a noauth Cinder:

* keystoneauth's version discovery GETs ``/v3`` (or ``/v3/``) without a
  token; noauth answers any token-less request with 204 and no body, so
  discovery fails.  Token-less GETs of the version document get a
  throw-away token here.
* Since OSSA-2023-003 Cinder asks Nova before deleting an attachment that
  has connection info, unless the request comes from a service.  Every
  request is marked as one (``X-Service-Roles: service``) so Nova is never
  needed.
"""

# noauth splits the token into user and project; the project must be hex.
DISCOVERY_TOKEN = 'discovery:00000000000000000000000000000000'
VERSION_PATHS = frozenset(('', '/', '/v3', '/v3/'))


class TestbedFilter(object):
    def __init__(self, app, service_roles='service'):
        self.app = app
        self.service_roles = service_roles

    def __call__(self, environ, start_response):
        path = environ.get('SCRIPT_NAME', '') + environ.get('PATH_INFO', '')
        if (environ.get('REQUEST_METHOD') in ('GET', 'HEAD')
                and path in VERSION_PATHS
                and not environ.get('HTTP_X_AUTH_TOKEN')):
            environ['HTTP_X_AUTH_TOKEN'] = DISCOVERY_TOKEN
        if self.service_roles:
            environ['HTTP_X_SERVICE_ROLES'] = self.service_roles
        return self.app(environ, start_response)


def filter_factory(global_conf, **local_conf):
    roles = local_conf.get('service_roles', 'service')

    def _filter(app):
        return TestbedFilter(app, service_roles=roles)
    return _filter
