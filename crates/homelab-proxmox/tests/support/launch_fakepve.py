"""Starts fakepve on a loopback port with the VMs of a guests file and the API tokens given as
ID=SECRET arguments (its command line has no way to register tokens), then prints the line
`fakepve listening on URL` and serves until killed. Test support only: run as its own process.

usage: launch_fakepve.py GUESTS.json PORT PASSWORD [TOKEN_ID=SECRET ...]

Besides `guests`, the file may hold:
  "nodes":    more cluster node names;
  "storages": {name: {option: value}} merged into (or added to) the fake's storages;
  "guests_boot": true, to play the guests' side: a running VM with `agent` enabled gets an
              agent that reports the address of its ipconfig0, as a cloud image's
              qemu-guest-agent does once cloud-init has applied it; a stopped one has none.

fakepve answers a disk resize without changing the disk (outside its modelled areas a write
succeeds and changes nothing), so the disk's size= is updated here after the schema's checks,
refusing a shrink in Proxmox's words.

Faults are injected while it runs through JSON lines on stdin, each answered with one line on
stdout (`ok`, `ok JSON` or `error TEXT`):
  {"op": "lose_quorum"} {"op": "regain_quorum"} {"op": "revoke_tickets"}
  {"op": "fail", "method": M, "suffix": PATH, "status": N, "message": T, "times": N}
  {"op": "clear_failures"}
  {"op": "hold_lock", "vmid": N, "release_after": SECONDS or null} {"op": "release_lock", "vmid": N}
  {"op": "storage", "name": S, "set": {option: value}}
  {"op": "time_scale", "value": X} {"op": "latency", "value": PVE_SECONDS}
  {"op": "requests"} (every request so far, as [method, path]) {"op": "clear_requests"}
"""
import asyncio
import json
import re
import sys
import tempfile

from fakepve import FakePve
from fakepve.certs import make_cert
from fakepve.model import PveError

UNITS = {'K': 1024, 'M': 1024 ** 2, 'G': 1024 ** 3, 'T': 1024 ** 4}


def size_bytes(text):
    m = re.fullmatch(r'(\d+(?:\.\d+)?)([KMGT]?)', text)
    return int(float(m.group(1)) * UNITS.get(m.group(2) or 'G', 1)) if m else None


def spelled(size):
    for unit in 'TGMK':
        if size and size % UNITS[unit] == 0:
            return '{0}{1}'.format(size // UNITS[unit], unit)
    return str(size)


def fill_resize(pve):
    original = pve.synthesise

    async def synthesise(match, method, info, user, values):
        if method == 'PUT' and match.template == '/nodes/{node}/qemu/{vmid}/resize':
            vm = pve.find(values['node'], values['vmid'])
            disk = values['disk']
            drive = vm.config.get(disk)
            if drive is None:
                raise PveError(500, 'disk \'{0}\' does not exist'.format(disk))
            parts = drive.split(',')
            old = next((size_bytes(p[5:]) for p in parts if p.startswith('size=')), 0) or 0
            asked = str(values['size'])
            new = old + size_bytes(asked[1:]) if asked.startswith('+') else size_bytes(asked)
            if new is None:
                raise PveError(400, 'Parameter verification failed.', {'size': 'invalid size'})
            if new < old:
                raise PveError(500, 'shrinking disks is not supported')
            parts = [p for p in parts if not p.startswith('size=')] + ['size=' + spelled(new)]
            vm.config[disk] = ','.join(parts)
        return await original(match, method, info, user, values)
    pve.synthesise = synthesise


def agent_enabled(vm):
    return str(vm.config.get('agent', '0')).split(',')[0].split('=')[-1] == '1'


async def guests_boot(pve):
    while True:
        for vm in pve.vms:
            if vm.status == 'running' and agent_enabled(vm) and vm.agent is None:
                ip = re.search(r'ip=([\d.]+)/(\d+)', str(vm.config.get('ipconfig0', '')))
                addresses = [{'ip-address': ip.group(1), 'ip-address-type': 'ipv4',
                              'prefix': int(ip.group(2))}] if ip else []
                vm.agent = {'interfaces': [
                    {'name': 'lo', 'ip-addresses': [{'ip-address': '127.0.0.1', 'ip-address-type': 'ipv4',
                                                     'prefix': 8}]},
                    {'name': 'eth0', 'ip-addresses': addresses}]}
            elif vm.status != 'running':
                vm.agent = None
        await asyncio.sleep(0.02)


async def command(pve, line):
    c = json.loads(line)
    op = c['op']
    if op == 'lose_quorum':
        pve.lose_quorum()
    elif op == 'regain_quorum':
        pve.regain_quorum()
    elif op == 'revoke_tickets':
        pve.revoke_tickets()
    elif op == 'fail':
        pve.fail(c['method'], c['suffix'], c.get('status'), c.get('message'), error=c.get('error'),
                 times=c.get('times'))
    elif op == 'clear_failures':
        pve.failures.clear()
    elif op == 'hold_lock':
        await pve.hold_config_lock(c['vmid'], None)
        if c.get('release_after') is not None:
            async def later():
                await asyncio.sleep(c['release_after'])
                pve.release_config_lock(c['vmid'])
            asyncio.ensure_future(later())
    elif op == 'release_lock':
        pve.release_config_lock(c['vmid'])
    elif op == 'storage':
        pve.storages.setdefault(c['name'], {'files': set()}).update(c['set'])
    elif op == 'time_scale':
        pve.time_scale = c['value']
    elif op == 'latency':
        pve.slow_network(c['value'])
    elif op == 'requests':
        return json.dumps([[m, p] for m, p, _ in pve.requests])
    elif op == 'clear_requests':
        pve.requests.clear()
    else:
        raise ValueError('unknown op ' + op)
    return None


async def control(pve):
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while True:
        line = await reader.readline()
        if not line:
            return
        try:
            answer = await command(pve, line)
            print('ok' if answer is None else 'ok ' + answer, flush=True)
        except Exception as e:  # noqa: BLE001 - the test reads the reason
            print('error ' + repr(e).replace('\n', ' '), flush=True)


async def main(guests_path, port, password, tokens):
    pve = FakePve(user='root@pam', password=password, host='127.0.0.1', port=port)
    pve.time_scale = 0
    with open(guests_path) as f:
        setup = json.load(f)
    for g in setup['guests']:
        pve.add_vm(g['vmid'], g['name'], node=g.get('node', 'pve1'),
                   status=g.get('status', 'stopped'), config=g.get('config', {}),
                   template=g.get('template', False), lock=g.get('lock'))
    for node in setup.get('nodes', []):
        pve.add_node(node)
    for name, options in setup.get('storages', {}).items():
        pve.storages.setdefault(name, {'files': set()}).update(options)
    fill_resize(pve)
    for token in tokens:
        token_id, _, secret = token.partition('=')
        pve.apitokens[token_id] = secret
    certs = tempfile.mkdtemp(prefix='homelab-fakepve-')
    certfile, keyfile, _ = make_cert(certs, hosts=('127.0.0.1',))
    await pve.start(certfile, keyfile)
    tasks = [asyncio.ensure_future(control(pve))]
    if setup.get('guests_boot'):
        tasks.append(asyncio.ensure_future(guests_boot(pve)))
    print('fakepve listening on ' + pve.url, flush=True)
    await asyncio.Event().wait()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
