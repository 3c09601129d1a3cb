"""Starts fakepve on a loopback port with the VMs of a guests file and the API tokens given as
ID=SECRET arguments (its command line has no way to register tokens), then prints the line
`fakepve listening on URL` and serves until killed. Test support only: run as its own process.

usage: launch_fakepve.py GUESTS.json PORT PASSWORD [TOKEN_ID=SECRET ...]
"""
import asyncio
import json
import sys
import tempfile

from fakepve import FakePve
from fakepve.certs import make_cert


async def main(guests_path, port, password, tokens):
    pve = FakePve(user='root@pam', password=password, host='127.0.0.1', port=port)
    pve.time_scale = 0
    with open(guests_path) as f:
        for g in json.load(f)['guests']:
            pve.add_vm(g['vmid'], g['name'], node=g.get('node', 'pve1'),
                       status=g.get('status', 'stopped'), config=g.get('config', {}),
                       template=g.get('template', False), lock=g.get('lock'))
    for token in tokens:
        token_id, _, secret = token.partition('=')
        pve.apitokens[token_id] = secret
    certs = tempfile.mkdtemp(prefix='homelab-fakepve-')
    certfile, keyfile, _ = make_cert(certs, hosts=('127.0.0.1',))
    await pve.start(certfile, keyfile)
    print('fakepve listening on ' + pve.url, flush=True)
    await asyncio.Event().wait()


if __name__ == '__main__':
    asyncio.run(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]))
