"""Runs the stand-in's Jobs for real, on this machine, for end-to-end tests of commands that
start a Job and read what it printed (homelab backup/restore).

kube_standin.py uses it when started with --run-jobs CONFIG. A Job whose containers all have
a `command` is then played as the Job controller, the scheduler and the kubelet would:

- a pod named `<job>-<5 chars>` with the Job's labels (`batch.kubernetes.io/controller-uid`,
  `batch.kubernetes.io/job-name`, and the legacy `controller-uid`, `job-name`) and an owner
  reference to the Job;
- the pod waits, with the status a kubelet would report, while what it refers to is missing:
  an unbound or missing PersistentVolumeClaim (PodScheduled=False, Unschedulable), a missing
  ConfigMap volume (ContainerCreating), a missing Secret or key for the environment
  (CreateContainerConfigError);
- the container's command runs in a private mount namespace whose root is a tmpfs holding the
  machine's top-level directories (bind mounts), a private /tmp, and the pod's volumes at
  their mount paths: ConfigMap volumes written from the stored ConfigMap (items, modes),
  PersistentVolumeClaims mapped to directories named in CONFIG. Top-level directories that
  hold a mount path are overlays, so nothing is created on the machine. It runs as the pod's
  runAsUser/runAsGroup with fsGroup as a supplementary group (and fsGroup applied to the
  volumes, as the kubelet does), with the pod's environment (values, Secret and ConfigMap
  keys) over CONFIG's `path` as PATH; CONFIG's `env` overrides variables that name cluster
  services this machine cannot resolve (e.g. PGHOST);
- stdout and stderr, interleaved as written, are the pod's log (GET .../pods/NAME/log);
- the exit code ends the pod (Succeeded/Failed, terminated state with exitCode) and the
  attempt; failed attempts are retried up to the Job's backoffLimit, then the Job fails with
  BackoffLimitExceeded; a success completes it (SuccessCriteriaMet, Complete);
- a successful Job owned by a CronJob (controller owner reference) moves the CronJob's
  status.lastSuccessfulTime, as the CronJob controller does.

CONFIG is JSON: {"workdir": DIR, "claims": {"NS/CLAIM": DIR}, "env": {NAME: VALUE},
"path": "...", "retry_delay": SECONDS}. Needs root (unshare, mount, chroot).
"""

import asyncio
import base64
import copy
import datetime
import os
import random
import shutil
import string
import sys

# Builds the pod's root in a private mount namespace, then runs the command in it.
# Arguments: ROOT UPPER MOUNTS UID GID GROUPS -- env -i ... COMMAND...
SANDBOX = r'''
set -euo pipefail
root=$1 upper=$2 mounts=$3 uid=$4 gid=$5 groups=$6
shift 6
[[ $1 == -- ]] && shift
mount -t tmpfs -o mode=0755 pod-root "$root"
mount -t tmpfs -o mode=0700 pod-upper "$upper"
tops=()
while IFS=$'\t' read -r src dst mode; do
  t=${dst#/}
  tops+=("/${t%%/*}")
done < "$mounts"
is_top() {
  local t
  for t in "${tops[@]}"; do [[ $t == "$1" ]] && return 0; done
  return 1
}
for entry in /*; do
  name=${entry#/}
  if [[ -L $entry ]]; then
    ln -s "$(readlink "$entry")" "$root/$name"
    continue
  fi
  [[ -d $entry ]] || continue
  mkdir "$root/$name"
  if [[ $entry == /tmp ]]; then
    chmod 1777 "$root/tmp"
  elif is_top "$entry"; then
    mkdir -p "$upper/$name/u" "$upper/$name/w"
    mount -t overlay overlay -o "lowerdir=$entry,upperdir=$upper/$name/u,workdir=$upper/$name/w" "$root/$name"
  else
    mount --rbind "$entry" "$root/$name" 2>/dev/null || true
  fi
done
while IFS=$'\t' read -r src dst mode; do
  mkdir -p "$root$dst"
  mount --bind "$src" "$root$dst"
  if [[ $mode == ro ]]; then mount -o remount,bind,ro "$root$dst"; fi
done < "$mounts"
exec chroot --userspec="$uid:$gid" --groups="$groups" "$root" "$@"
'''


def now_iso() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime('%Y-%m-%dT%H:%M:%SZ')


def pod_suffix() -> str:
    return ''.join(random.choice(string.ascii_lowercase + string.digits) for _ in range(5))


class Waiting(Exception):
    """The pod cannot start yet; carries the status a kubelet would report."""

    def __init__(self, status):
        super().__init__(str(status))
        self.status = status


class JobRunner:
    def __init__(self, standin, config):
        if os.geteuid() != 0:
            sys.exit('--run-jobs needs root: pods run in their own mount namespace (unshare, mount, chroot)')
        self.standin = standin
        self.workdir = config['workdir']
        self.claims = config.get('claims', {})
        self.env = config.get('env', {})
        self.path = config.get('path', '/usr/local/bin:/usr/bin:/bin')
        self.retry_delay = float(config.get('retry_delay', 10))
        self.logs = {}        # (namespace, pod) -> bytearray
        self.started = set()  # uids of Jobs taken over
        os.makedirs(self.workdir, exist_ok=True)

    # ---- hooks called by the stand-in ---------------------------------------------------

    def takes(self, job) -> bool:
        containers = (((job.get('spec') or {}).get('template') or {}).get('spec') or {}).get('containers') or []
        return bool(containers) and all(c.get('command') for c in containers)

    def start(self, key):
        job = self.standin.store.get(key)
        if job is None or job['metadata']['uid'] in self.started:
            return
        self.started.add(job['metadata']['uid'])
        asyncio.ensure_future(self._run_job(key))

    def deleted(self, key, obj):
        """A Job was deleted: its pods go too (background propagation)."""
        if key[:2] != ('batch', 'jobs'):
            return
        uid = obj['metadata'].get('uid')
        for pod_key in [k for k, v in self.standin.store.items()
                        if k[:3] == ('', 'pods', key[2])
                        and any(r.get('uid') == uid for r in v['metadata'].get('ownerReferences', []))]:
            self.standin.store.pop(pod_key, None)

    def log(self, namespace, pod, params):
        """The pod's log as `kubectl logs` gets it, or None when the container has not started."""
        data = self.logs.get((namespace, pod))
        if data is None:
            return None
        text = bytes(data).decode('utf-8', 'replace')
        tail = params.get('tailLines')
        if tail is not None:
            lines = text.splitlines(keepends=True)
            text = ''.join(lines[-int(tail):]) if int(tail) > 0 else ''
        limit = params.get('limitBytes')
        if limit is not None:
            text = text.encode()[:int(limit)].decode('utf-8', 'ignore')
        return text

    # ---- the Job controller ---------------------------------------------------------------

    def _set_job_status(self, key, status):
        job = self.standin.store.get(key)
        if job is None:
            return False
        job['status'] = status
        job['metadata']['resourceVersion'] = str(next(self.standin.rv))
        return True

    async def _run_job(self, key):
        _, _, ns, name = key
        job = copy.deepcopy(self.standin.store[key])
        spec = job.get('spec') or {}
        backoff_limit = spec.get('backoffLimit', 6)
        start = now_iso()
        failed = 0
        self._set_job_status(key, {'startTime': start, 'active': 1, 'ready': 0})
        while True:
            pod_key = self._create_pod(job)
            try:
                code = await self._run_pod(key, pod_key, job)
            except Exception as e:  # a harness failure must show, not hang the test
                print(f'job runner: pod {pod_key[3]} of Job {ns}/{name}: {e!r}', file=sys.stderr, flush=True)
                self.logs.setdefault((ns, pod_key[3]), bytearray()).extend(f'job runner: {e!r}\n'.encode())
                self._finish_pod(pod_key, 128, now_iso())
                code = 128
            if code is None or key not in self.standin.store:
                return
            done = now_iso()
            if code == 0:
                status = {'startTime': start, 'completionTime': done, 'succeeded': 1, 'active': 0,
                          'ready': 0, 'conditions': [
                              {'type': 'SuccessCriteriaMet', 'status': 'True', 'reason': 'CompletionsReached',
                               'message': 'Reached expected number of succeeded pods', 'lastTransitionTime': done},
                              {'type': 'Complete', 'status': 'True', 'reason': 'CompletionsReached',
                               'message': 'Reached expected number of succeeded pods', 'lastTransitionTime': done}]}
                if failed:
                    status['failed'] = failed
                self._set_job_status(key, status)
                self._cronjob_succeeded(job, done)
                return
            failed += 1
            if failed > backoff_limit:
                self._set_job_status(key, {
                    'startTime': start, 'failed': failed, 'active': 0, 'ready': 0, 'conditions': [
                        {'type': 'FailureTarget', 'status': 'True', 'reason': 'BackoffLimitExceeded',
                         'message': 'Job has reached the specified backoff limit', 'lastTransitionTime': done},
                        {'type': 'Failed', 'status': 'True', 'reason': 'BackoffLimitExceeded',
                         'message': 'Job has reached the specified backoff limit', 'lastTransitionTime': done}]})
                return
            self._set_job_status(key, {'startTime': start, 'failed': failed, 'active': 1, 'ready': 0})
            await asyncio.sleep(self.retry_delay)

    def _cronjob_succeeded(self, job, done):
        ns = job['metadata']['namespace']
        for ref in job['metadata'].get('ownerReferences', []):
            if ref.get('kind') != 'CronJob' or not ref.get('controller'):
                continue
            cj_key = ('batch', 'cronjobs', ns, ref.get('name'))
            cronjob = self.standin.store.get(cj_key)
            if cronjob is None or cronjob['metadata'].get('uid') != ref.get('uid'):
                continue
            status = dict(cronjob.get('status') or {})
            if status.get('lastSuccessfulTime', '') < done:
                status['lastSuccessfulTime'] = done
                cronjob['status'] = status
                cronjob['metadata']['resourceVersion'] = str(next(self.standin.rv))

    def _create_pod(self, job):
        meta = job['metadata']
        ns, name, uid = meta['namespace'], meta['name'], meta['uid']
        template = copy.deepcopy(job['spec'].get('template') or {})
        labels = dict((template.get('metadata') or {}).get('labels') or {})
        labels.update({'batch.kubernetes.io/controller-uid': uid, 'controller-uid': uid,
                       'batch.kubernetes.io/job-name': name, 'job-name': name})
        pod_name = f'{name}-{pod_suffix()}'
        pod = {
            'apiVersion': 'v1', 'kind': 'Pod',
            'metadata': {'name': pod_name, 'namespace': ns, 'labels': labels,
                         'annotations': dict((template.get('metadata') or {}).get('annotations') or {}),
                         'ownerReferences': [{'apiVersion': 'batch/v1', 'kind': 'Job', 'name': name, 'uid': uid,
                                              'controller': True, 'blockOwnerDeletion': True}]},
            'spec': template.get('spec') or {},
            'status': {'phase': 'Pending'},
        }
        key = ('', 'pods', ns, pod_name)
        self.standin._put(key, pod)
        return key

    def _set_pod_status(self, pod_key, status):
        pod = self.standin.store.get(pod_key)
        if pod is None:
            return
        pod['status'] = status
        pod['metadata']['resourceVersion'] = str(next(self.standin.rv))

    def _finish_pod(self, pod_key, code, started):
        pod = self.standin.store.get(pod_key)
        if pod is None:
            return
        done = now_iso()
        self._set_pod_status(pod_key, {
            'phase': 'Succeeded' if code == 0 else 'Failed', 'startTime': started,
            'conditions': [{'type': 'PodScheduled', 'status': 'True'}, {'type': 'Ready', 'status': 'False',
                                                                         'reason': 'PodCompleted'}],
            'containerStatuses': [{'name': c['name'], 'image': c.get('image', ''), 'ready': False, 'restartCount': 0,
                                   'started': False,
                                   'state': {'terminated': {'exitCode': code,
                                                            'reason': 'Completed' if code == 0 else 'Error',
                                                            'startedAt': started, 'finishedAt': done}}}
                                  for c in pod['spec'].get('containers', [])]})

    # ---- the scheduler and the kubelet ----------------------------------------------------

    def _object(self, plural, ns, name):
        return self.standin.store.get(('', plural, ns, name))

    def _check_references(self, ns, spec):
        """Raises Waiting with the pod status a kubelet would report while something is missing."""
        for v in spec.get('volumes') or []:
            pvc_ref = v.get('persistentVolumeClaim')
            if pvc_ref:
                claim = pvc_ref.get('claimName')
                pvc = self._object('persistentvolumeclaims', ns, claim)
                if pvc is None or (pvc.get('status') or {}).get('phase') != 'Bound':
                    message = (f'persistentvolumeclaim "{claim}" not found' if pvc is None
                               else 'pod has unbound immediate PersistentVolumeClaims')
                    raise Waiting({'phase': 'Pending', 'conditions': [
                        {'type': 'PodScheduled', 'status': 'False', 'reason': 'Unschedulable',
                         'message': f'0/1 nodes are available: {message}.'}]})
                if f'{ns}/{claim}' not in self.claims:
                    print(f'job runner: no directory for PersistentVolumeClaim {ns}/{claim} in --run-jobs claims',
                          file=sys.stderr, flush=True)
                    raise Waiting(self._waiting(spec, 'ContainerCreating', ''))
        for v in spec.get('volumes') or []:
            cm_ref = v.get('configMap')
            if cm_ref and not cm_ref.get('optional') and self._object('configmaps', ns, cm_ref.get('name')) is None:
                raise Waiting(self._waiting(spec, 'ContainerCreating', ''))
        for c in spec.get('containers') or []:
            for e in c.get('env') or []:
                self._env_value(ns, e)

    def _waiting(self, spec, reason, message):
        return {'phase': 'Pending', 'conditions': [{'type': 'PodScheduled', 'status': 'True'}],
                'containerStatuses': [{'name': c['name'], 'image': c.get('image', ''), 'ready': False,
                                       'restartCount': 0, 'started': False,
                                       'state': {'waiting': {'reason': reason, **({'message': message} if message else {})}}}
                                      for c in spec.get('containers') or []]}

    def _env_value(self, ns, e):
        if 'value' in e:
            return e['value']
        source = e.get('valueFrom') or {}
        for ref_kind, plural, kind in (('secretKeyRef', 'secrets', 'Secret'),
                                       ('configMapKeyRef', 'configmaps', 'ConfigMap')):
            ref = source.get(ref_kind)
            if ref is None:
                continue
            obj = self._object(plural, ns, ref.get('name'))
            data = (obj or {}).get('data') or {}
            if obj is None or ref.get('key') not in data:
                if ref.get('optional'):
                    return None
                message = (f'{kind.lower()} "{ref.get("name")}" not found' if obj is None
                           else f"couldn't find key {ref.get('key')} in {kind} {ns}/{ref.get('name')}")
                raise Waiting({'phase': 'Pending', 'containerStatuses': [
                    {'name': '?', 'ready': False, 'restartCount': 0, 'started': False,
                     'state': {'waiting': {'reason': 'CreateContainerConfigError', 'message': message}}}]})
            value = data[ref['key']]
            return base64.b64decode(value).decode() if kind == 'Secret' else value
        return ''

    async def _run_pod(self, job_key, pod_key, job):
        _, _, ns, pod_name = pod_key
        spec = (self.standin.store.get(pod_key) or {}).get('spec') or {}
        while True:
            if job_key not in self.standin.store or pod_key not in self.standin.store:
                return None
            try:
                self._check_references(ns, spec)
                break
            except Waiting as w:
                status = w.status
                for cs in status.get('containerStatuses', []):
                    if cs['name'] == '?':
                        cs['name'] = (spec.get('containers') or [{}])[0].get('name', '')
                if (self.standin.store[pod_key].get('status') or {}) != status:
                    self._set_pod_status(pod_key, status)
                await asyncio.sleep(0.2)

        security = spec.get('securityContext') or {}
        container = spec['containers'][0]
        csec = container.get('securityContext') or {}
        uid = csec.get('runAsUser', security.get('runAsUser', 0))
        gid = csec.get('runAsGroup', security.get('runAsGroup', 0))
        fs_group = security.get('fsGroup')
        groups = [g for g in [fs_group, *security.get('supplementalGroups', [])] if g is not None]

        pod_dir = os.path.join(self.workdir, pod_name)
        os.makedirs(pod_dir)
        mounts = []
        for m in container.get('volumeMounts') or []:
            volume = next(v for v in spec.get('volumes') or [] if v['name'] == m['name'])
            read_only = m.get('readOnly', False)
            if 'configMap' in volume:
                src = self._write_config_map(ns, volume['configMap'], os.path.join(pod_dir, 'vol-' + m['name']), fs_group)
                read_only = True
            elif 'persistentVolumeClaim' in volume:
                src = self.claims[f'{ns}/{volume["persistentVolumeClaim"]["claimName"]}']
                os.makedirs(src, exist_ok=True)
                if fs_group is not None:
                    apply_fs_group(src, fs_group)
            elif 'emptyDir' in volume:
                src = os.path.join(pod_dir, 'vol-' + m['name'])
                os.makedirs(src)
                os.chmod(src, 0o777)
            else:
                raise RuntimeError(f'volume {m["name"]}: only configMap, persistentVolumeClaim and emptyDir are run')
            mounts.append(f'{src}\t{m["mountPath"]}\t{"ro" if read_only else "rw"}\n')
        mounts_file = os.path.join(pod_dir, 'mounts')
        with open(mounts_file, 'w') as f:
            f.writelines(mounts)
        root = os.path.join(pod_dir, 'root')
        upper = os.path.join(pod_dir, 'upper')
        os.makedirs(root)
        os.makedirs(upper)

        env = {'PATH': self.path, 'HOSTNAME': pod_name}
        for e in container.get('env') or []:
            value = self._env_value(ns, e)
            if value is not None:
                env[e['name']] = value
        env.update(self.env)
        command = list(container.get('command') or []) + list(container.get('args') or [])
        argv = ['unshare', '--mount', '--propagation', 'private', '--', '/bin/bash', '-c', SANDBOX, 'pod-sandbox',
                root, upper, mounts_file, str(uid), str(gid), ','.join(str(g) for g in groups) or str(gid), '--',
                '/usr/bin/env', '-i', '-C', container.get('workingDir', '/'),
                *[f'{k}={v}' for k, v in env.items()], *command]

        started = now_iso()
        log = self.logs.setdefault((ns, pod_name), bytearray())
        self._set_pod_status(pod_key, {
            'phase': 'Running', 'startTime': started,
            'conditions': [{'type': 'PodScheduled', 'status': 'True'}, {'type': 'Ready', 'status': 'True'}],
            'containerStatuses': [{'name': c['name'], 'image': c.get('image', ''), 'ready': True, 'restartCount': 0,
                                   'started': True, 'state': {'running': {'startedAt': started}}}
                                  for c in spec.get('containers', [])]})
        job = self.standin.store.get(job_key)
        if job is not None:
            job['status'] = {**(job.get('status') or {}), 'ready': 1}
        proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                    stdout=asyncio.subprocess.PIPE,
                                                    stderr=asyncio.subprocess.STDOUT)
        while True:
            chunk = await proc.stdout.read(65536)
            if not chunk:
                break
            log.extend(chunk)
        code = await proc.wait()
        shutil.rmtree(pod_dir, ignore_errors=True)
        self._finish_pod(pod_key, code if code >= 0 else 128 - code, started)
        return code if code >= 0 else 128 - code

    def _write_config_map(self, ns, ref, target, fs_group):
        cm = self._object('configmaps', ns, ref.get('name')) or {}
        data = dict(cm.get('data') or {})
        binary = {k: base64.b64decode(v) for k, v in (cm.get('binaryData') or {}).items()}
        default_mode = ref.get('defaultMode', 0o644)
        items = ref.get('items') or [{'key': k, 'path': k} for k in sorted({*data, *binary})]
        os.makedirs(target)
        for item in items:
            path = os.path.join(target, item['path'])
            os.makedirs(os.path.dirname(path), exist_ok=True)
            content = binary.get(item['key'])
            if content is None:
                content = data[item['key']].encode()
            with open(path, 'wb') as f:
                f.write(content)
            os.chmod(path, item.get('mode', default_mode))
            if fs_group is not None:
                os.chown(path, 0, fs_group)
        os.chmod(target, 0o755)
        return target


def apply_fs_group(path, gid):
    """What the kubelet does to a volume for fsGroup: group-owned, group read-write, setgid dirs."""
    for dirpath, dirnames, filenames in os.walk(path):
        os.chown(dirpath, -1, gid)
        os.chmod(dirpath, os.stat(dirpath).st_mode | 0o2070)
        for f in filenames:
            p = os.path.join(dirpath, f)
            if os.path.islink(p):
                continue
            os.chown(p, -1, gid)
            os.chmod(p, os.stat(p).st_mode | 0o060)
