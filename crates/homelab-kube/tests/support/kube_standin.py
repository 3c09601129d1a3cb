"""A Kubernetes API stand-in for end-to-end tests, built on kmock's KubernetesEmulator.

kmock serves the HTTP side (aiohttp server, request parsing into group/version/plural/
namespace/name, API discovery from its bundled resource lists, Status-shaped errors). Its
emulator stores objects as plain merged dicts, so this harness replaces the object handlers
with what homelab's code path needs from a real API server:

- server-side apply (PATCH application/apply-patch+yaml) creating or merging per field
  manager, removing fields a manager stopped applying, no-op applies keeping resourceVersion;
- merge / JSON patches, the status subresource, dryRun=All on every write;
- resourceVersion, generation (spec changes only), uid, creationTimestamp, managedFields;
- label selectors on lists, namespaces that must exist, namespace and CRD deletion cascades;
- CRDs registering their kinds in discovery and becoming Established;
- the update strategy StatefulSets and DaemonSets get by default (RollingUpdate).

With --controllers it also plays the controllers a cluster would run, so waits complete:
workloads become available, HelmCharts get an install Job that succeeds, LoadBalancer
Services get an address and an EndpointSlice, PVCs bind, cert-manager Certificates get Ready.
With --run-jobs CONFIG as well, Jobs that run a command are run for real on this machine, with
pods and pod logs (see job_runner.py); other Jobs succeed at once as before.
A HelmChart's install Job also creates what the test registered for that chart through the
admin API (its CRDs, webhook Services, workloads), as `helm install` would, and deleting the
HelmChart removes them again; while the target namespace is missing the Job keeps failing and
retrying, as helm-controller's does. LoadBalancer Services get the address they ask for with
MetalLB's `metallb.io/loadBalancerIPs` annotation.

Faults, for the retry and safety tests (through the admin API or flags):
- a fault answers the next COUNT requests matching METHOD and a PATH regex with an HTTP status
  (with `retryAfterSeconds` in the Status details when asked), or with `action: reset` drops
  the connection with a TCP reset instead of answering, or with `action: restart` does that
  and also stops listening for `seconds` (clients are refused), as a restarting K3s does;
- `--ignore-label-selectors` (or POST /_standin/mode {"ignoreLabelSelectors": true}) makes
  lists return every object of the kind, as a server or proxy that drops the parameter would;
- POST /_standin/mode {"latencyMs": N} changes the latency added to every request.
POST /_standin/proxy {"namespace", "service" (as the proxy path names it, e.g.
`http:prometheus:9090`), "path" (with the query), "status", "body"} sets what a Service's
proxy answers there; without one it answers 503 "no endpoints available", as the API server
does for a Service without a ready pod.
POST /_standin/logs {"namespace", "pod", "text"} sets the log of a pod the test created (as
a kubelet would serve it), for pods no Job ran here.
GET /_standin/requests says how many API requests were served and the most answered at once
(`maxInFlight`, reset by DELETE); GET /_standin/journal lists each API request (method, path
with query, when its answer was started and finished, in seconds of the server's monotonic
clock), so tests can see which requests were made and which were in flight together (cleared
by DELETE).

Tests talk to it only through the Kubernetes API (and a small /_standin/ admin API for fault
injection and request counts). It prints "READY <port>" once it listens.
"""

import argparse
import asyncio
import base64
import copy
import datetime
import itertools
import json
import re
import signal
import socket
import struct
import sys
import uuid

import aiohttp.web
import jsonpatch
import kmock
from kmock._internal import parsing as kmock_parsing

NOT_FOUND = object()

# /api/v1/namespaces/NS/services/[SCHEME:]NAME[:PORT]/proxy[/PATH]
SERVICE_PROXY = re.compile(r'^/api/v1/namespaces/([^/]+)/services/([^/]+)/proxy(/.*)?$')


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def deep_merge(base, overlay):
    """Dicts merge key by key; lists and scalars are replaced (lists are atomic here)."""
    if isinstance(base, dict) and isinstance(overlay, dict):
        out = dict(base)
        for k, v in overlay.items():
            out[k] = deep_merge(base.get(k, NOT_FOUND), v) if k in base else copy.deepcopy(v)
        return out
    return copy.deepcopy(overlay)


def merge_patch(target, patch):
    """RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    out = dict(target) if isinstance(target, dict) else {}
    for k, v in patch.items():
        if v is None:
            out.pop(k, None)
        else:
            out[k] = merge_patch(out.get(k), v)
    return out


def leaf_paths(obj, prefix=()):
    if isinstance(obj, dict) and obj:
        for k, v in obj.items():
            yield from leaf_paths(v, prefix + (k,))
    else:
        yield prefix


def has_path(obj, path):
    for p in path:
        if not isinstance(obj, dict) or p not in obj:
            return False
        obj = obj[p]
    return True


def remove_path(obj, path):
    parents = []
    for p in path[:-1]:
        if not isinstance(obj, dict) or p not in obj:
            return
        parents.append((obj, p))
        obj = obj[p]
    if isinstance(obj, dict):
        obj.pop(path[-1], None)
    # Drop dicts the removal emptied, as SSA does for fields nobody owns any more.
    for parent, key in reversed(parents):
        if parent[key] == {}:
            del parent[key]
        else:
            break


SYSTEM_METADATA = ('uid', 'resourceVersion', 'generation', 'creationTimestamp', 'managedFields',
                   'deletionTimestamp')


def comparable(obj):
    obj = copy.deepcopy(obj)
    meta = obj.get('metadata', {})
    for k in SYSTEM_METADATA:
        meta.pop(k, None)
    return obj


def spec_part(obj):
    return {k: v for k, v in obj.items() if k not in ('metadata', 'status', 'apiVersion', 'kind')}


def api_error(status, reason, message, details=None):
    return kmock.KubernetesError(status=status, reason=reason, message=message, details=details or {})


def parse_selector(text):
    """Equality-based label selectors: k=v, k==v, k!=v, k, !k, k in (a,b), k notin (a,b)."""
    reqs = []
    for part in re.split(r',(?![^()]*\))', text or ''):
        part = part.strip()
        if not part:
            continue
        m = re.match(r'^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$', part)
        if m:
            values = {v.strip() for v in m.group(3).split(',') if v.strip()}
            reqs.append((m.group(1), m.group(2), values))
        elif '!=' in part:
            k, v = part.split('!=', 1)
            reqs.append((k.strip(), '!=', v.strip()))
        elif '==' in part:
            k, v = part.split('==', 1)
            reqs.append((k.strip(), '=', v.strip()))
        elif '=' in part:
            k, v = part.split('=', 1)
            reqs.append((k.strip(), '=', v.strip()))
        elif part.startswith('!'):
            reqs.append((part[1:].strip(), '!', None))
        else:
            reqs.append((part, 'exists', None))
    return reqs


def selector_matches(reqs, labels):
    for key, op, value in reqs:
        have = labels.get(key)
        if op == '=' and have != value:
            return False
        if op == '!=' and have == value:
            return False
        if op == 'exists' and key not in labels:
            return False
        if op == '!' and key in labels:
            return False
        if op == 'in' and have not in value:
            return False
        if op == 'notin' and have in value:
            return False
    return True


def parse_path(path):
    """Like kmock's parser, but `/api/v1/namespaces[/NAME[/status|finalize]]` addresses the
    Namespace objects themselves (kmock reads NAME as a namespace scope and fails on the list)."""
    parts = path.strip('/').split('/')
    if len(parts) >= 3 and parts[0] == 'api' and parts[2] == 'namespaces':
        rest = parts[3:]
        if len(rest) == 0 or len(rest) == 1 or (len(rest) == 2 and rest[1] in ('status', 'finalize')):
            return kmock_parsing.ParsedPath(group='', version=parts[1], plural='namespaces',
                                            namespace=None, name=rest[0] if rest else None,
                                            subresource=rest[1] if len(rest) == 2 else None)
    return original_parse_path(path)


original_parse_path = kmock_parsing.parse_path
kmock_parsing.parse_path = parse_path


class StandIn(kmock.KubernetesEmulator):
    """kmock's emulator with the object semantics of a real API server (see module doc)."""

    def configure(self, *, controllers, controller_delay, crd_delay, latency, nodes, request_log=None,
                  job_runner=None, ignore_label_selectors=False):
        self.request_log = request_log
        self.ignore_label_selectors = ignore_label_selectors
        self.job_runner = None
        if job_runner is not None:
            from job_runner import JobRunner
            self.job_runner = JobRunner(self, job_runner)
        self.controllers = controllers
        self.controller_delay = controller_delay
        self.crd_delay = crd_delay
        self.latency = latency
        self.store = {}          # (group, plural, namespace, name) -> object
        self.applied = {}        # (group, plural, namespace, name) -> {manager: applied config}
        self.rv = itertools.count(100)
        self.faults = []
        self.request_count = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.journal = []        # every API request: method, path with query, start, end
        self.proxy_answers = {}  # (namespace, service, path?query): answer of a Service proxy
        self.pod_logs = {}  # (namespace, pod): the log a test set for a pod it created
        self.chart_payloads = {}  # (namespace, name) of a HelmChart -> manifests it installs
        self.chart_installed = {}  # (namespace, name) of a HelmChart -> keys it created
        self.lb_addresses = (f'192.0.2.{i}' for i in itertools.count(10))
        self.lb_assigned = {}
        self.resources.load_bundled()
        for name in ('default', 'kube-system', 'kube-public', 'kube-node-lease'):
            self._put(('', 'namespaces', None, name), {
                'apiVersion': 'v1', 'kind': 'Namespace', 'metadata': {'name': name},
                'status': {'phase': 'Active'}})
        for name in nodes:
            self._put(('', 'nodes', None, name), {
                'apiVersion': 'v1', 'kind': 'Node',
                'metadata': {'name': name, 'labels': {'kubernetes.io/hostname': name}},
                'status': {'nodeInfo': {'kubeletVersion': 'v1.34.1+k3s1'},
                           'conditions': [
                               {'type': 'Ready', 'status': 'True', 'reason': 'KubeletReady'},
                               {'type': 'MemoryPressure', 'status': 'False'},
                               {'type': 'DiskPressure', 'status': 'False'},
                               {'type': 'PIDPressure', 'status': 'False'}]}})
        # K3s serves these CRDs out of the box (its helm-controller).
        for kind, plural in (('HelmChart', 'helmcharts'), ('HelmChartConfig', 'helmchartconfigs')):
            crd = {
                'apiVersion': 'apiextensions.k8s.io/v1', 'kind': 'CustomResourceDefinition',
                'metadata': {'name': f'{plural}.helm.cattle.io'},
                'spec': {'group': 'helm.cattle.io', 'scope': 'Namespaced',
                         'names': {'kind': kind, 'plural': plural, 'singular': kind.lower()},
                         'versions': [{'name': 'v1', 'served': True, 'storage': True,
                                       'subresources': {'status': {}}}]}}
            self._put(('apiextensions.k8s.io', 'customresourcedefinitions', None, crd['metadata']['name']), crd)
            self._register_crd(crd, establish_now=True)

    async def _serve_version(self, request):
        # Also: kmock copies short names and categories onto subresource entries, which makes
        # kubectl warn that `ns` could mean `namespaces/status`; a real server lists them
        # only on the resource itself.
        doc = await super()._serve_version(request)
        # kmock writes the core group-version as "/v1"; clients expect "v1".
        doc['groupVersion'] = doc.get('groupVersion', '').lstrip('/')
        for entry in doc.get('resources', []):
            if '/' in entry['name']:
                entry['shortNames'] = []
                entry['categories'] = []
        return doc

    # ---- plumbing -------------------------------------------------------------------------

    def _info(self, resource):
        key = kmock.resource(resource.group, resource.version, resource.plural)
        if key not in self.resources:
            return None
        return self.resources[key]

    def _put(self, key, obj):
        meta = obj.setdefault('metadata', {})
        meta.setdefault('uid', str(uuid.uuid4()))
        meta.setdefault('creationTimestamp', now_iso())
        meta.setdefault('generation', 1)
        meta['resourceVersion'] = str(next(self.rv))
        self.store[key] = obj
        return obj

    def _not_found(self, resource, name):
        what = resource.plural if not resource.group else f'{resource.plural}.{resource.group}'
        return api_error(404, 'NotFound', f'{what} "{name}" not found',
                         {'name': name, 'group': resource.group, 'kind': resource.plural})

    @staticmethod
    def _json(obj, status=200):
        return aiohttp.web.json_response(obj, status=status)

    async def _handle(self, request):
        path = request.url.path
        if path.startswith('/_standin/'):
            return await self._admin(request)
        self.request_count += 1
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        entry = {'method': request.method, 'path': request.url.path_qs,
                 'start': asyncio.get_running_loop().time()}
        self.journal.append(entry)
        try:
            return await self._serve(request, path)
        finally:
            self.in_flight -= 1
            entry['end'] = asyncio.get_running_loop().time()

    async def _serve(self, request, path):
        if self.request_log is not None:
            self.request_log.write(f'{request.method} {request.url.path_qs}\n')
            self.request_log.flush()
        if self.latency:
            await asyncio.sleep(self.latency)
        for fault in self.faults:
            if fault['count'] > 0 and fault['method'] in (request.method, '*') \
                    and re.search(fault['path'], path):
                fault['count'] -= 1
                action = fault.get('action', 'status')
                if action in ('reset', 'restart'):
                    return await self._drop(request, restart_for=fault.get('seconds', 1.0)
                                            if action == 'restart' else None)
                details = {}
                if 'retryAfterSeconds' in fault:
                    details['retryAfterSeconds'] = fault['retryAfterSeconds']
                raise api_error(fault['status'], fault.get('reason', 'InternalError'),
                                fault.get('message', 'injected fault'), details)
        proxied = SERVICE_PROXY.match(path)
        if proxied:
            return self._proxy(request, *proxied.groups())
        resource = request.resource
        if resource is not None and resource.plural is not None and resource.version is not None:
            info = self._info(resource)
            if info is None:
                raise api_error(404, 'NotFound', 'the server could not find the requested resource')
            return await self._objects_request(request, resource, info)
        # Discovery (/api, /apis, /apis/g/v, /version) and anything else: kmock as it is.
        return await super(kmock.KubernetesEmulator, self)._handle(request)

    def _proxy(self, request, ns, service, rest):
        """A Service's proxy: the answer registered for the path (and query) through
        POST /_standin/proxy, or what the API server says when no pod answers."""
        key = (ns, service, (rest or '/') + (f'?{request.url.query_string}' if request.url.query_string else ''))
        answer = self.proxy_answers.get(key)
        if answer is None:
            raise api_error(503, 'ServiceUnavailable',
                            f'no endpoints available for service "{service.split(":")[1] if ":" in service else service}"')
        return aiohttp.web.Response(status=answer.get('status', 200), text=json.dumps(answer['body']),
                                    content_type='application/json')

    async def _drop(self, request, restart_for=None):
        """Resets the request's connection (SO_LINGER 0 turns the close into a TCP RST). With
        `restart_for`, also resets every other connection and refuses new ones for that many
        seconds, then listens on the same port again."""
        transports = [request._raw_request.transport]
        sites = []
        if restart_for is not None:
            for server in self.servers:
                runner = server.server.runner
                transports += list(runner.server._connections.values())
                sites += list(runner.sites)
            sites = [(site, site._server.sockets[0].getsockname()[:2]) for site in sites]
            for site, _ in sites:
                site._server.close()
        for transport in transports:
            if transport is None or transport.is_closing():
                continue
            sock = transport.get_extra_info('socket')
            if sock is not None:
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack('ii', 1, 0))
            transport.abort()
        if sites:
            asyncio.get_running_loop().call_later(restart_for, lambda: asyncio.ensure_future(self._listen(sites)))
        # The connection is gone; aiohttp discards whatever is returned now.
        return aiohttp.web.Response(status=500)

    async def _listen(self, sites):
        loop = asyncio.get_running_loop()
        for site, (host, port) in sites:
            site._server = await loop.create_server(site._runner.server, host=host, port=port,
                                                    reuse_address=True)

    async def _admin(self, request):
        path = request.url.path
        if path == '/_standin/mode' and request.method == 'POST':
            mode = dict(request.data)
            if 'ignoreLabelSelectors' in mode:
                self.ignore_label_selectors = bool(mode['ignoreLabelSelectors'])
            if 'latencyMs' in mode:
                self.latency = float(mode['latencyMs']) / 1000.0
            return self._json({'ignoreLabelSelectors': self.ignore_label_selectors,
                               'latencyMs': self.latency * 1000.0})
        if path == '/_standin/faults' and request.method == 'POST':
            fault = dict(request.data)
            fault.setdefault('method', '*')
            fault.setdefault('count', 1)
            self.faults.append(fault)
            return self._json({'faults': len(self.faults)})
        if path == '/_standin/faults' and request.method == 'DELETE':
            self.faults.clear()
            return self._json({'faults': 0})
        if path == '/_standin/requests' and request.method == 'DELETE':
            self.max_in_flight = self.in_flight
            return self._json({'count': self.request_count})
        if path == '/_standin/requests':
            return self._json({'count': self.request_count, 'maxInFlight': self.max_in_flight})
        if path == '/_standin/journal' and request.method == 'DELETE':
            self.journal.clear()
            return self._json({'journal': 0})
        if path == '/_standin/journal':
            return self._json({'journal': self.journal})
        if path == '/_standin/proxy' and request.method == 'POST':
            answer = dict(request.data)
            self.proxy_answers[(answer['namespace'], answer['service'], answer['path'])] = answer
            return self._json({'proxied': len(self.proxy_answers)})
        if path == '/_standin/logs' and request.method == 'POST':
            log = dict(request.data)
            self.pod_logs[(log['namespace'], log['pod'])] = log['text']
            return self._json({'logs': len(self.pod_logs)})
        if path == '/_standin/charts' and request.method == 'POST':
            chart = dict(request.data)
            self.chart_payloads[(chart['namespace'], chart['name'])] = list(chart.get('objects', []))
            return self._json({'charts': len(self.chart_payloads)})
        raise api_error(404, 'NotFound', f'no admin endpoint {path}')

    # ---- objects --------------------------------------------------------------------------

    async def _objects_request(self, request, resource, info):
        ns = request.namespace
        name = request.name
        sub = request.subresource
        group, plural = resource.group, resource.plural
        namespaced = bool(info.namespaced)
        dry_run = request.params.get('dryRun') == 'All'
        method = request.method

        if not namespaced:
            ns = None

        if name is None:
            if method == 'GET':
                if request.params.get('watch') in ('true', '1'):
                    raise api_error(405, 'MethodNotAllowed', 'watch is not supported by the stand-in')
                return self._json(self._list(resource, info, ns, request.params))
            if method == 'POST':
                body = request.data if isinstance(request.data, dict) else None
                if body is None:
                    raise api_error(400, 'BadRequest', 'the request body is not a JSON object')
                name = body.get('metadata', {}).get('name')
                if not name:
                    raise api_error(422, 'Invalid', 'metadata.name: Required value')
                key = (group, plural, ns, name)
                if key in self.store:
                    raise api_error(409, 'AlreadyExists', f'{plural}.{group} "{name}" already exists')
                obj = self._prepare_new(resource, info, ns, body)
                if not dry_run:
                    self._commit(key, obj, 'Update', request.params.get('fieldManager', 'unknown'))
                return self._json(obj, 201)
            raise api_error(405, 'MethodNotAllowed', f'{method} on a collection is not supported')

        key = (group, plural, ns, name)
        live = self.store.get(key)

        if method == 'GET' and sub == 'log' and (group, plural) == ('', 'pods'):
            return self._pod_log(resource, ns, name, live, request.params)

        if method == 'GET':
            if live is None:
                raise self._not_found(resource, name)
            return self._json(self._view(live, resource, info))

        if method == 'DELETE':
            if live is None:
                raise self._not_found(resource, name)
            options = request.data if isinstance(request.data, dict) else {}
            # A client may say dryRun in the DeleteOptions body instead of the query (kube-rs
            # does); the API server honours both.
            dry_run = dry_run or 'All' in (options.get('dryRun') or [])
            pre = options.get('preconditions') or {}
            meta = live.get('metadata', {})
            for field in ('uid', 'resourceVersion'):
                if pre.get(field) is not None and pre[field] != meta.get(field):
                    raise api_error(409, 'Conflict',
                                    f'Precondition failed: {field} in precondition: {pre[field]}, '
                                    f'{field} in object meta: {meta.get(field)}')
            if not dry_run:
                self._delete(key)
            return self._json(self._view(live, resource, info))

        if method in ('PATCH', 'PUT'):
            content_type = request.headers.get('Content-Type', '').split(';')[0].strip()
            body = request.data
            if body is None:
                try:
                    body = json.loads(request.text)
                except ValueError:
                    raise api_error(415, 'UnsupportedMediaType', 'only JSON bodies are understood by the stand-in')
            manager = request.params.get('fieldManager', 'unknown')
            if content_type == 'application/apply-patch+yaml':
                if not manager or manager == 'unknown':
                    raise api_error(422, 'Invalid', 'fieldManager is required for apply requests')
                return self._server_side_apply(key, resource, info, live, body, manager, sub, dry_run)
            if live is None:
                raise self._not_found(resource, name)
            if method == 'PUT':
                new = copy.deepcopy(body)
            elif content_type == 'application/json-patch+json':
                new = jsonpatch.apply_patch(copy.deepcopy(live), body)
            else:  # merge-patch+json and strategic-merge-patch+json (merged like a merge patch)
                new = merge_patch(copy.deepcopy(live), body)
            if sub == 'status':
                merged = copy.deepcopy(live)
                merged['status'] = new.get('status', {})
                new = merged
            elif 'status' in (info.subresources or set()):
                new['status'] = copy.deepcopy(live.get('status', {}))
            result = self._update(key, resource, info, live, new, manager, 'Update', dry_run)
            return self._json(result)

        raise api_error(405, 'MethodNotAllowed', f'{method} is not supported')

    def _pod_log(self, resource, ns, name, pod, params):
        if pod is None:
            raise self._not_found(resource, name)
        containers = [c.get('name') for c in (pod.get('spec') or {}).get('containers', [])]
        container = params.get('container') or (containers[0] if containers else '')
        if container not in containers:
            raise api_error(400, 'BadRequest', f'container {container} is not valid for pod {name}')
        text = self.pod_logs.get((ns, name))
        if text is None and self.job_runner is not None:
            text = self.job_runner.log(ns, name, params)
        if text is None:
            waiting = next((cs.get('state', {}).get('waiting', {}).get('reason', 'ContainerCreating')
                            for cs in (pod.get('status') or {}).get('containerStatuses', [])
                            if cs.get('name') == container), 'ContainerCreating')
            raise api_error(400, 'BadRequest',
                            f'container "{container}" in pod "{name}" is waiting to start: {waiting}')
        return aiohttp.web.Response(text=text, content_type='text/plain')

    def _view(self, obj, resource, info):
        obj = copy.deepcopy(obj)
        obj.setdefault('apiVersion', f'{resource.group}/{resource.version}' if resource.group else resource.version)
        obj.setdefault('kind', info.kind)
        return obj

    def _list(self, resource, info, ns, params):
        reqs = [] if self.ignore_label_selectors else parse_selector(params.get('labelSelector', ''))
        field = params.get('fieldSelector', '')
        items = []
        for (g, p, ons, oname), obj in sorted(self.store.items(), key=lambda kv: (str(kv[0][2]), kv[0][3])):
            if g != resource.group or p != resource.plural:
                continue
            if ns is not None and ons != ns:
                continue
            if not selector_matches(reqs, obj.get('metadata', {}).get('labels', {}) or {}):
                continue
            if field.startswith('metadata.name=') and oname != field.split('=', 1)[1]:
                continue
            items.append(self._view(obj, resource, info))
        gv = f'{resource.group}/{resource.version}' if resource.group else resource.version
        return {'apiVersion': gv, 'kind': f'{info.kind}List',
                'metadata': {'resourceVersion': str(next(self.rv))}, 'items': items}

    def _check_namespace(self, ns):
        if ns is not None and ('', 'namespaces', None, ns) not in self.store:
            raise api_error(404, 'NotFound', f'namespaces "{ns}" not found',
                            {'name': ns, 'kind': 'namespaces'})

    def _normalise(self, resource, info, ns, obj):
        obj = copy.deepcopy(obj)
        obj['apiVersion'] = f'{resource.group}/{resource.version}' if resource.group else resource.version
        obj['kind'] = info.kind
        meta = obj.setdefault('metadata', {})
        if ns is not None:
            if meta.get('namespace') not in (None, '', ns):
                raise api_error(400, 'BadRequest', 'the namespace of the object does not match the namespace of the request')
            meta['namespace'] = ns
        else:
            meta.pop('namespace', None)
        if info.kind == 'Secret' and resource.group == '':
            string_data = obj.pop('stringData', None) or {}
            data = obj.setdefault('data', {}) or {}
            for k, v in string_data.items():
                data[k] = base64.b64encode(v.encode()).decode()
            obj['data'] = data
            obj.setdefault('type', 'Opaque')
        if info.kind == 'Namespace' and resource.group == '':
            obj.setdefault('status', {'phase': 'Active'})
        if resource.group == 'apps' and info.kind in ('StatefulSet', 'DaemonSet') \
                and isinstance(obj.get('spec'), dict):
            # The API server's default, which `kubectl rollout status` relies on.
            obj['spec'].setdefault('updateStrategy', {'type': 'RollingUpdate'})
        return obj

    def _prepare_new(self, resource, info, ns, body):
        self._check_namespace(ns)
        obj = self._normalise(resource, info, ns, body)
        meta = obj['metadata']
        meta['uid'] = str(uuid.uuid4())
        meta['creationTimestamp'] = now_iso()
        meta['generation'] = 1
        meta['resourceVersion'] = str(next(self.rv))
        if 'status' in (info.subresources or set()) and info.kind != 'Namespace':
            obj.pop('status', None)
        return obj

    def _managed_fields(self, obj, manager, operation, api_version):
        entries = [m for m in obj['metadata'].get('managedFields', [])
                   if not (m.get('manager') == manager and m.get('operation') == operation)]
        entries.append({'manager': manager, 'operation': operation, 'apiVersion': api_version,
                        'time': now_iso(), 'fieldsType': 'FieldsV1', 'fieldsV1': {}})
        obj['metadata']['managedFields'] = entries

    def _commit(self, key, obj, operation, manager):
        self._managed_fields(obj, manager, operation, obj.get('apiVersion', ''))
        self.store[key] = obj
        self._after_write(key, obj, generation_changed=True)

    def _server_side_apply(self, key, resource, info, live, config, manager, sub, dry_run):
        group, plural, ns, name = key
        if not isinstance(config, dict):
            raise api_error(400, 'BadRequest', 'the apply body is not an object')
        if config.get('metadata', {}).get('name') not in (None, name):
            raise api_error(400, 'BadRequest', 'the name of the object does not match the name in the URL')
        config = self._normalise(resource, info, ns, config)
        has_status_sub = 'status' in (info.subresources or set())
        if sub == 'status':
            config = {'apiVersion': config['apiVersion'], 'kind': config['kind'],
                      'metadata': {'name': name}, 'status': config.get('status', {})}
        elif has_status_sub and info.kind != 'Namespace':
            config.pop('status', None)
        if live is None:
            if sub == 'status':
                raise self._not_found(resource, name)
            obj = self._prepare_new(resource, info, ns, config)
            self._managed_fields(obj, manager, 'Apply', obj['apiVersion'])
            if not dry_run:
                self.applied[key] = {manager: comparable(config)}
                self.store[key] = obj
                self._after_write(key, obj, generation_changed=True)
            return self._json(self._view(obj, resource, info), 201)

        previous = self.applied.get(key, {}).get(manager, {})
        new_config = comparable(config)
        base = copy.deepcopy(live)
        for path in leaf_paths(previous):
            if path and path[0] not in ('apiVersion', 'kind') and not has_path(new_config, path):
                remove_path(base, path)
        new = deep_merge(base, new_config)
        for k in SYSTEM_METADATA:
            if k in live.get('metadata', {}):
                new['metadata'][k] = copy.deepcopy(live['metadata'][k])
        if comparable(new) == comparable(live):
            if not dry_run:
                self.applied.setdefault(key, {})[manager] = new_config
            return self._json(self._view(live, resource, info))
        result = self._update(key, resource, info, live, new, manager, 'Apply', dry_run)
        if not dry_run:
            self.applied.setdefault(key, {})[manager] = new_config
        return self._json(self._view(result, resource, info))

    def _update(self, key, resource, info, live, new, manager, operation, dry_run):
        new = self._normalise(resource, info, key[2], new)
        for k in SYSTEM_METADATA:
            if k in live.get('metadata', {}):
                new['metadata'][k] = copy.deepcopy(live['metadata'][k])
            else:
                new['metadata'].pop(k, None)
        if comparable(new) == comparable(live):
            return live
        generation_changed = spec_part(new) != spec_part(live)
        if generation_changed:
            new['metadata']['generation'] = live['metadata'].get('generation', 1) + 1
        new['metadata']['resourceVersion'] = str(next(self.rv))
        self._managed_fields(new, manager, operation, new['apiVersion'])
        if not dry_run:
            self.store[key] = new
            self._after_write(key, new, generation_changed)
        return new

    def _delete(self, key):
        group, plural, ns, name = key
        obj = self.store.pop(key, None)
        self.applied.pop(key, None)
        if obj is None:
            return
        if self.job_runner is not None:
            self.job_runner.deleted(key, obj)
        if (group, plural) == ('helm.cattle.io', 'helmcharts'):
            # helm-controller uninstalls the release of a deleted HelmChart.
            for installed in self.chart_installed.pop((ns, name), []):
                self._delete(installed)
        if (group, plural) == ('', 'namespaces'):
            for other in [k for k in self.store if k[2] == name]:
                self.store.pop(other, None)
                self.applied.pop(other, None)
        if (group, plural) == ('apiextensions.k8s.io', 'customresourcedefinitions'):
            spec = obj.get('spec', {})
            for version in spec.get('versions', []):
                r = kmock.resource(spec.get('group'), version.get('name'), spec.get('names', {}).get('plural'))
                if r in self.resources:
                    del self.resources[r]
            for other in [k for k in self.store
                          if k[0] == spec.get('group') and k[1] == spec.get('names', {}).get('plural')]:
                self.store.pop(other, None)

    # ---- what a cluster's controllers would do ------------------------------------------

    def _after_write(self, key, obj, generation_changed):
        group, plural, ns, name = key
        if (group, plural) == ('apiextensions.k8s.io', 'customresourcedefinitions'):
            self._register_crd(obj, establish_now=self.crd_delay <= 0)
            if self.crd_delay > 0:
                asyncio.get_running_loop().call_later(self.crd_delay, self._establish, key)
            return
        if self.controllers and generation_changed:
            asyncio.get_running_loop().call_later(self.controller_delay, self._reconcile, key)

    def _register_crd(self, crd, establish_now):
        spec = crd.get('spec', {})
        names = spec.get('names', {})
        for version in spec.get('versions', []):
            if not version.get('served', True):
                continue
            subs = set((version.get('subresources') or {}).keys())
            self.resources[kmock.resource(spec['group'], version['name'], names['plural'])] = kmock.ResourceInfo(
                kind=names.get('kind'), singular=names.get('singular', names.get('kind', '').lower()),
                namespaced=spec.get('scope', 'Namespaced') == 'Namespaced',
                verbs={'create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'},
                subresources=subs)
        if establish_now:
            crd['status'] = {'conditions': [
                {'type': 'NamesAccepted', 'status': 'True', 'reason': 'NoConflicts'},
                {'type': 'Established', 'status': 'True', 'reason': 'InitialNamesAccepted'}],
                'acceptedNames': names}

    def _establish(self, key):
        crd = self.store.get(key)
        if crd is not None:
            self._register_crd(crd, establish_now=True)
            crd['metadata']['resourceVersion'] = str(next(self.rv))

    def _set_status(self, key, status):
        obj = self.store.get(key)
        if obj is None:
            return
        obj['status'] = status
        obj['metadata']['resourceVersion'] = str(next(self.rv))

    def _reconcile(self, key):
        obj = self.store.get(key)
        if obj is None:
            return
        group, plural, ns, name = key
        gen = obj['metadata'].get('generation', 1)
        spec = obj.get('spec', {}) or {}
        if (group, plural) == ('apps', 'deployments'):
            n = spec.get('replicas', 1)
            self._set_status(key, {
                'observedGeneration': gen, 'replicas': n, 'updatedReplicas': n, 'readyReplicas': n,
                'availableReplicas': n,
                'conditions': [{'type': 'Available', 'status': 'True', 'reason': 'MinimumReplicasAvailable'},
                               {'type': 'Progressing', 'status': 'True', 'reason': 'NewReplicaSetAvailable'}]})
        elif (group, plural) == ('apps', 'statefulsets'):
            n = spec.get('replicas', 1)
            self._set_status(key, {
                'observedGeneration': gen, 'replicas': n, 'readyReplicas': n, 'currentReplicas': n,
                'updatedReplicas': n, 'availableReplicas': n,
                'currentRevision': f'{name}-1', 'updateRevision': f'{name}-1'})
        elif (group, plural) == ('apps', 'daemonsets'):
            n = max(1, sum(1 for k in self.store if k[:2] == ('', 'nodes')))
            self._set_status(key, {
                'observedGeneration': gen, 'desiredNumberScheduled': n, 'currentNumberScheduled': n,
                'numberReady': n, 'numberAvailable': n, 'updatedNumberScheduled': n})
        elif (group, plural) == ('batch', 'jobs') and self.job_runner is not None \
                and self.job_runner.takes(obj):
            self.job_runner.start(key)
        elif (group, plural) == ('batch', 'jobs'):
            self._set_status(key, {'succeeded': 1, 'startTime': now_iso(), 'completionTime': now_iso(),
                                   'conditions': [{'type': 'Complete', 'status': 'True'}]})
        elif (group, plural) == ('', 'persistentvolumeclaims'):
            self._set_status(key, {'phase': 'Bound', 'accessModes': spec.get('accessModes', [])})
        elif (group, plural) == ('', 'services'):
            self._reconcile_service(key, obj)
        elif (group, plural) == ('cert-manager.io', 'certificates'):
            expires = datetime.datetime.now(tz=datetime.UTC) + datetime.timedelta(days=90)
            self._set_status(key, {
                'notBefore': now_iso(), 'notAfter': expires.strftime('%Y-%m-%dT%H:%M:%SZ'),
                'conditions': [{'type': 'Ready', 'status': 'True', 'reason': 'Ready',
                                'message': 'Certificate is up to date and has not expired'}]})
        elif (group, plural) == ('helm.cattle.io', 'helmcharts'):
            job_name = f'helm-install-{name}'
            job_key = ('batch', 'jobs', ns, job_name)
            previous = self.store.pop(job_key, None)
            job = self._put(job_key, {
                'apiVersion': 'batch/v1', 'kind': 'Job',
                'metadata': {'name': job_name, 'namespace': ns,
                             'ownerReferences': [{'apiVersion': 'helm.cattle.io/v1', 'kind': 'HelmChart',
                                                  'name': name, 'uid': obj['metadata']['uid']}]},
                'spec': {'backoffLimit': 1000}})
            missing = self._install_chart(ns, name, spec)
            if missing:
                failed = ((previous or {}).get('status') or {}).get('failed', 0) + 1
                job['status'] = {'active': 1, 'failed': failed}
                asyncio.get_running_loop().call_later(self.controller_delay, self._reconcile, key)
            else:
                job['status'] = {'succeeded': 1, 'conditions': [{'type': 'Complete', 'status': 'True'}]}
            self._set_status(key, {'jobName': job_name})

    def _resource_of(self, api_version, kind):
        group, _, version = api_version.rpartition('/')
        for r, info in self.resources.items():
            if r.group == group and r.version == version and info.kind == kind:
                return r, info
        return None, None

    def _install_chart(self, ns, name, spec):
        """Creates the objects registered for this chart, like `helm install`; returns the
        missing target namespace instead when there is one (nothing is created then)."""
        payload = self.chart_payloads.get((ns, name), [])
        target = spec.get('targetNamespace') or ns
        if payload and ('', 'namespaces', None, target) not in self.store:
            return target
        for manifest in payload:
            resource, info = self._resource_of(manifest['apiVersion'], manifest['kind'])
            if resource is None:
                continue
            obj_ns = (manifest.get('metadata', {}).get('namespace') or target) if info.namespaced else None
            obj = self._normalise(resource, info, obj_ns, manifest)
            key = (resource.group, resource.plural, obj_ns, obj['metadata']['name'])
            if key in self.store:
                continue
            self.chart_installed.setdefault((ns, name), []).append(key)
            self._put(key, obj)
            self._after_write(key, obj, generation_changed=True)
        return None

    def _reconcile_service(self, key, svc):
        group, plural, ns, name = key
        spec = svc.get('spec', {}) or {}
        status = {}
        if spec.get('type') == 'LoadBalancer':
            # MetalLB gives the address a Service asks for by annotation, else one of its pool.
            wanted = (svc.get('metadata', {}).get('annotations') or {}).get('metallb.io/loadBalancerIPs')
            if wanted:
                self.lb_assigned[key] = wanted.split(',')[0].strip()
            elif key not in self.lb_assigned:
                self.lb_assigned[key] = next(self.lb_addresses)
            status = {'loadBalancer': {'ingress': [{'ip': self.lb_assigned[key], 'ipMode': 'VIP'}]}}
        self._set_status(key, status)
        if spec.get('selector'):
            slice_key = ('discovery.k8s.io', 'endpointslices', ns, f'{name}-standin')
            self._put(slice_key, {
                'apiVersion': 'discovery.k8s.io/v1', 'kind': 'EndpointSlice',
                'metadata': {'name': f'{name}-standin', 'namespace': ns,
                             'labels': {'kubernetes.io/service-name': name}},
                'addressType': 'IPv4',
                'endpoints': [{'addresses': ['10.42.0.10'], 'conditions': {'ready': True}}],
                'ports': [{'port': p.get('targetPort', p.get('port')), 'protocol': p.get('protocol', 'TCP')}
                          for p in spec.get('ports', []) if isinstance(p.get('targetPort', p.get('port')), int)]})


def kubeconfig(port):
    return {
        'apiVersion': 'v1', 'kind': 'Config',
        'clusters': [{'name': 'standin', 'cluster': {'server': f'http://127.0.0.1:{port}'}}],
        'users': [{'name': 'standin', 'user': {'token': 'standin-token'}}],
        'contexts': [{'name': 'standin', 'context': {'cluster': 'standin', 'user': 'standin'}}],
        'current-context': 'standin',
    }


async def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--port', type=int, default=0)
    parser.add_argument('--kubeconfig', required=True, help='where to write a kubeconfig for this server')
    parser.add_argument('--controllers', action='store_true', help='play the cluster controllers')
    parser.add_argument('--controller-delay', type=float, default=0.05)
    parser.add_argument('--crd-delay', type=float, default=0.0)
    parser.add_argument('--latency-ms', type=float, default=0.0, help='added to every request')
    parser.add_argument('--nodes', default='', help='comma-separated Ready nodes to create')
    parser.add_argument('--ignore-label-selectors', action='store_true',
                        help='answer lists with every object, whatever their labelSelector says')
    parser.add_argument('--log-requests', help='append "METHOD PATH" of every request to this file')
    parser.add_argument('--run-jobs', metavar='CONFIG',
                        help='run Jobs that have a command for real (JSON config, see job_runner.py; needs root)')
    args = parser.parse_args()

    handler = StandIn()
    handler.configure(controllers=args.controllers, controller_delay=args.controller_delay,
                      crd_delay=args.crd_delay, latency=args.latency_ms / 1000.0,
                      nodes=[n for n in args.nodes.split(',') if n],
                      request_log=open(args.log_requests, 'a') if args.log_requests else None,
                      job_runner=json.load(open(args.run_jobs)) if args.run_jobs else None,
                      ignore_label_selectors=args.ignore_label_selectors)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with handler, kmock.Server(handler, host='127.0.0.1', port=args.port or None) as server:
        with open(args.kubeconfig, 'w') as f:
            json.dump(kubeconfig(server.port), f, indent=2)
        print(f'READY {server.port}', flush=True)
        # Ends with a signal or when the test that started it closes our stdin.
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        eof = asyncio.ensure_future(reader.read())
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([eof, stopped], return_when=asyncio.FIRST_COMPLETED)


if __name__ == '__main__':
    asyncio.run(main())
