"""Register a service in Keystone's catalog, as a deployment does: the service of TYPE (named
NAME) with public and internal endpoints at URL in RegionOne, created or corrected in place.
Used by scripts/glance-up.sh, scripts/swift-up.sh and scripts/cinder-api-up.sh (standard library
only).

usage: OSK_ADMIN_PASSWORD=... keystone-service.py KEYSTONE_URL TYPE NAME URL
       OSK_ADMIN_PASSWORD=... SERVICE_PASSWORD=... keystone-service.py --user KEYSTONE_URL NAME
(passwords in the environment, not on a command line other users can read). The second form makes
the service user NAME (domain Default, role service in project service) with SERVICE_PASSWORD, or
sets that password when it differs.
"""
import json
import os
import sys
import time
import urllib.error
import urllib.request

user_mode = sys.argv[1] == '--user'
if user_mode:
    ks, name = sys.argv[2:4]
else:
    ks, kind, name, url = sys.argv[1:5]
admin_pw = os.environ['OSK_ADMIN_PASSWORD']


def req(method, path, body=None, token=None, ok=()):
    r = urllib.request.Request(ks + path, method=method,
                               data=json.dumps(body).encode() if body is not None else None)
    r.add_header('Content-Type', 'application/json')
    if token:
        r.add_header('X-Auth-Token', token)
    try:
        with urllib.request.urlopen(r) as resp:
            raw = resp.read()
            return resp.headers, (json.loads(raw) if raw else None)
    except urllib.error.HTTPError as e:
        if e.code in ok:
            return e.headers, None
        sys.exit('%s %s -> %s %s' % (method, path, e.code, e.read()[:300]))


h, _ = req('POST', '/auth/tokens', {'auth': {'identity': {'methods': ['password'], 'password': {'user': {
    'name': 'admin', 'domain': {'id': 'default'}, 'password': admin_pw}}},
    'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}})
t = h['X-Subject-Token']
if user_mode:
    pw = os.environ['SERVICE_PASSWORD']
    roles = {r['name']: r['id'] for r in req('GET', '/roles', token=t)[1]['roles']}
    svc = req('GET', '/projects?name=service', token=t)[1]['projects'][0]
    us = req('GET', '/users?name=' + name, token=t)[1]['users']
    u = us[0] if us else req('POST', '/users', {'user': {'name': name, 'domain_id': 'default', 'password': pw,
                                                        'default_project_id': svc['id']}}, token=t)[1]['user']
    # a password change revokes tokens with 1-second granularity: change it only when it differs
    _, body = req('POST', '/auth/tokens', {'auth': {'identity': {'methods': ['password'], 'password': {'user': {
        'id': u['id'], 'password': pw}}}}}, ok=(401,))
    if body is None:
        req('PATCH', '/users/' + u['id'], {'user': {'password': pw}}, token=t)
        time.sleep(1.1)
    req('PUT', '/projects/%s/users/%s/roles/%s' % (svc['id'], u['id'], roles['service']), token=t)
    print('%s user %s' % (name, u['id']))
    sys.exit(0)
found = req('GET', '/services?type=' + kind, token=t)[1]['services']
svc = found[0] if found else req('POST', '/services', {'service': {'name': name, 'type': kind}},
                                 token=t)[1]['service']
eps = req('GET', '/endpoints?service_id=' + svc['id'], token=t)[1]['endpoints']
for iface in ('public', 'internal'):
    mine = [e for e in eps if e['interface'] == iface]
    if not mine:
        req('POST', '/endpoints', {'endpoint': {'service_id': svc['id'], 'interface': iface, 'url': url,
                                                'region_id': 'RegionOne'}}, token=t)
    elif mine[0]['url'] != url:
        req('PATCH', '/endpoints/' + mine[0]['id'], {'endpoint': {'url': url}}, token=t)
print('%s service %s at %s' % (kind, svc['id'], url))
