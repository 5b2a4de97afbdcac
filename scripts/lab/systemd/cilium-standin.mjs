// Cilium agent stand-in for the connwatch systemd lab (plain JavaScript: it runs inside the
// container on the host's node, without the checkout's tooling). Serves Cilium's API socket
// (GET /v1/healthz: Ok; no endpoints; an empty node list), cilium-health's socket and a pod path
// on :4240 (GET /hello). While /run/cilium-standin/broken exists the pod path resets every
// connection; cilium.service removes the flag when it starts, so a restart mends it — the bare-metal
// Cilium restart's fixable failure.
import { chmodSync, chownSync, existsSync, mkdirSync, rmSync } from 'node:fs';
import http from 'node:http';
import { execFileSync } from 'node:child_process';

const DIR = '/var/run/cilium';
const BROKEN = '/run/cilium-standin/broken';
const started = new Date().toISOString();
mkdirSync(DIR, { recursive: true });
mkdirSync('/run/cilium-standin', { recursive: true });

let ciliumGid;
try {
  ciliumGid = Number(execFileSync('getent', ['group', 'cilium'], { encoding: 'utf8' }).split(':')[2]);
} catch {
  ciliumGid = undefined;
}

const json = (res, body) => {
  res.writeHead(200, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
};

function serveSocket(path, handler) {
  rmSync(path, { force: true });
  const server = http.createServer(handler);
  server.listen(path, () => {
    // As Cilium does: root:cilium 0660 when the group exists.
    if (ciliumGid !== undefined) chownSync(path, 0, ciliumGid);
    chmodSync(path, 0o660);
  });
  return server;
}

serveSocket(`${DIR}/cilium.sock`, (req, res) => {
  const url = (req.url ?? '').split('?')[0];
  if (url === '/v1/healthz')
    return json(res, {
      cilium: { state: 'Ok', msg: `stand-in since ${started}` },
      kvstore: { state: 'Disabled' },
      'container-runtime': { state: 'Ok' },
      kubernetes: { state: 'Disabled' },
      cluster: { ciliumHealth: { state: 'Ok' }, nodes: [] },
      controllers: [],
    });
  if (url === '/v1/endpoint') return json(res, []);
  if (url === '/v1/cluster/nodes') return json(res, { 'nodes-added': null, 'nodes-removed': null, self: 'cwsd-node' });
  res.writeHead(404);
  res.end();
});

serveSocket(`${DIR}/health.sock`, (req, res) => {
  const url = (req.url ?? '').split('?')[0];
  if (url === '/v1beta/status' || url === '/v1beta/status/probe') return json(res, { local: { name: 'cwsd-node' }, nodes: [], timestamp: new Date().toISOString() });
  if (url === '/v1beta/healthz') return json(res, { uptime: '1s' });
  res.writeHead(404);
  res.end();
});

http
  .createServer((req, res) => {
    if (existsSync(BROKEN)) return req.socket.destroy();
    res.writeHead(200, { 'content-type': 'text/plain' });
    res.end('hello\n');
  })
  .listen(4240, '0.0.0.0');

process.on('SIGTERM', () => process.exit(0));
