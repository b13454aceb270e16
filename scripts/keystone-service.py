"""Register a service in Keystone's catalog, as a deployment does: the service of TYPE (named
NAME) with public and internal endpoints at URL in RegionOne, created or corrected in place.
Used by scripts/glance-up.sh and scripts/swift-up.sh (standard library only).

usage: OSK_ADMIN_PASSWORD=... keystone-service.py KEYSTONE_URL TYPE NAME URL
(the admin password in the environment, not on a command line other users can read)
"""
import json
import os
import sys
import urllib.error
import urllib.request

ks, kind, name, url = sys.argv[1:5]
admin_pw = os.environ['OSK_ADMIN_PASSWORD']


def req(method, path, body=None, token=None):
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
        sys.exit('%s %s -> %s %s' % (method, path, e.code, e.read()[:300]))


h, _ = req('POST', '/auth/tokens', {'auth': {'identity': {'methods': ['password'], 'password': {'user': {
    'name': 'admin', 'domain': {'id': 'default'}, 'password': admin_pw}}},
    'scope': {'project': {'name': 'admin', 'domain': {'id': 'default'}}}}})
t = h['X-Subject-Token']
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
