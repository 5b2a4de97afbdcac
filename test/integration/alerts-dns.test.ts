/**
 * Issue 8: with the resolver black-holed, alerts still leave, by the last-known-good address.
 *
 * Runs in a network namespace this test creates: `ip netns exec` gives the agent process its
 * own /etc/resolv.conf and /etc/hosts from /etc/netns/<ns>/, and nftables inside that
 * namespace only drops DNS. The host's resolver, nftables and routes are never touched.
 * Phase 1: the receiver's name is in the namespace's hosts file → resolved, cached in the state
 * directory. Phase 2 (a new process, as after an agent restart): the name is gone from hosts and
 * DNS is black-holed → delivery uses the cached address, and /status shows its age.
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readdir, readFile, rm, rmdir, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const REPO = fileURLToPath(new URL('../..', import.meta.url));
const require = createRequire(import.meta.url);
const NAME = 'alertmanager.lab.test';
const capable = process.getuid?.() === 0 && existsSync('/usr/sbin/nft') && (existsSync('/usr/sbin/ip') || existsSync('/usr/bin/ip') || existsSync('/sbin/ip'));
if (!capable) console.warn('skipping the black-holed resolver test: needs root, iproute2 and nftables to build a network namespace');

/** The agent side, run inside the namespace: a local receiver, the alerts box, one alert. */
const CHILD = `
import { createServer } from 'node:http';
import { promises as dns } from 'node:dns';
import { Writable } from 'node:stream';
const { default: pino } = await import(${JSON.stringify(pathToFileURL(require.resolve('pino')).href)});
const { Registry } = await import(${JSON.stringify(pathToFileURL(require.resolve('prom-client')).href)});
const { createAlerts, alertsConfig } = await import(${JSON.stringify(pathToFileURL(join(REPO, 'src/alerts/index.ts')).href)});
const [stateDir, cause] = process.argv.slice(2);
let hits = 0;
const server = createServer((req, res) => { hits += 1; req.resume(); req.on('end', () => res.end('{}')); });
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const port = server.address().port;
const started = Date.now();
const probe = await dns.lookup(${JSON.stringify(NAME)}).then((a) => ({ ok: true, address: a.address }), (e) => ({ ok: false, code: e.code }));
const probeMs = Date.now() - started;
const lines = [];
const log = pino({ level: 'info' }, new Writable({ write(c, _e, done) { lines.push(...c.toString().split('\\n').filter(Boolean).map((l) => JSON.parse(l))); done(); } }));
const statuses = new Map();
const ctx = { clock: { now: () => Date.now(), monotonic: () => performance.now() }, log, metrics: new Registry(), status: { publish: (s, v) => statuses.set(s, JSON.parse(JSON.stringify(v))) } };
const config = alertsConfig.parse({
  network: { proxy: 'direct', resolverTimeoutMs: 300 },
  retry: { retries: 0, cooldownMs: 60000, requestTimeoutMs: 5000 },
  webhooks: [{ name: 'am', url: 'http://${NAME}:' + port + '/hook', jitterMs: 0 }],
});
const box = createAlerts({ ctx, config, stateDir, identity: { node: 'node-a', site: 'lab' } });
await box.start();
const raisedAt = Date.now();
box.alerter.raise({ id: cause + '/node-a', cause, severity: 'critical', node: 'node-a', site: 'lab', summary: 's', evidence: {}, timeline: [], startsAt: Date.now() });
const settled = await box.alerter.settled(10000);
const deliveryMs = Date.now() - raisedAt;
await box.stop();
server.close();
console.log(JSON.stringify({ probe, probeMs, settled, hits, deliveryMs, network: statuses.get('alerts')?.network, sinks: statuses.get('alerts')?.sinks, warnings: lines.filter((l) => l.level === 40).map((l) => ({ msg: l.msg, ageSeconds: l.ageSeconds, host: l.host })) }));
`;

interface ChildResult {
  probe: { ok: boolean; address?: string; code?: string };
  probeMs: number;
  settled: boolean;
  hits: number;
  deliveryMs: number;
  network: { names: { host: string; addresses: string[]; ageSeconds: number; source: string; lastError?: string }[] };
  warnings: { msg: string; ageSeconds?: number; host?: string }[];
}

describe.skipIf(!capable)('alerts with a black-holed resolver (network namespace)', () => {
  const ns = `cw-dns-${process.pid}-${Math.floor(Math.random() * 1e6)}`;
  const etc = join('/etc/netns', ns);
  let createdEtcNetns = false;
  let dir: string;

  const ip = (...args: string[]) => execFileSync('ip', args, { stdio: ['ignore', 'ignore', 'pipe'] });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-dns-ns-'));
    await writeFile(join(dir, 'child.mts'), CHILD);
    createdEtcNetns = !existsSync('/etc/netns');
    await mkdir(etc, { recursive: true });
    ip('netns', 'add', ns);
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    // A routable (but dead) nameserver inside the namespace, and DNS dropped there by nftables.
    // The namespace's nameserver; nftables drops its queries on the way in, silently (no ICMP), so the resolver hangs until its timeout.
    ip('-n', ns, 'addr', 'add', '192.0.2.53/32', 'dev', 'lo');
    execFileSync('ip', ['netns', 'exec', ns, 'nft', '-f', '-'], {
      input: 'table inet connwatch_test_dns {\n chain in {\n  type filter hook input priority 0; policy accept;\n  udp dport 53 drop\n  tcp dport 53 drop\n }\n}\n',
    });
    await writeFile(join(etc, 'resolv.conf'), 'nameserver 192.0.2.53\noptions timeout:1 attempts:1\n');
  });

  afterAll(async () => {
    try {
      ip('netns', 'del', ns);
    } catch {
      // already gone
    }
    await rm(etc, { recursive: true, force: true });
    if (createdEtcNetns && (await readdir('/etc/netns').catch(() => ['?'])).length === 0) await rmdir('/etc/netns').catch(() => undefined);
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function runAgent(cause: string): Promise<ChildResult> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', join(dir, 'child.mts'), join(dir, 'state'), cause], { cwd: REPO, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout.on('data', (c: Buffer) => (out += c.toString()));
      child.stderr.on('data', (c: Buffer) => (err += c.toString()));
      const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        const last = out.trim().split('\n').at(-1) ?? '';
        if (code !== 0) return reject(new Error(`agent in ${ns} exited ${code}: ${err.slice(-2000)}`));
        resolve(JSON.parse(last) as ChildResult);
      });
    });
  }

  it('delivers by the cached address when the name no longer resolves, showing its age', async () => {
    await writeFile(join(etc, 'hosts'), `127.0.0.1 localhost\n127.0.0.1 ${NAME}\n`);
    const first = await runAgent('ReadyButNoPodNetwork');
    expect(first.probe).toEqual({ ok: true, address: '127.0.0.1' });
    expect(first).toMatchObject({ settled: true, hits: 1 });
    expect(first.network.names).toEqual([expect.objectContaining({ host: NAME, addresses: ['127.0.0.1'], source: 'dns' })]);
    const cached = JSON.parse(await readFile(join(dir, 'state', 'alert-dns.json'), 'utf8')) as { names: Record<string, unknown> };
    expect(Object.keys(cached.names)).toEqual([NAME]);

    // The name leaves the hosts file; DNS is black-holed: the resolver itself now fails.
    await writeFile(join(etc, 'hosts'), '127.0.0.1 localhost\n');
    const second = await runAgent('DatapathDamage');
    expect(second.probe).toEqual({ ok: false, code: 'EAI_AGAIN' });
    expect(second).toMatchObject({ settled: true, hits: 1 });
    expect(second.network.names).toEqual([expect.objectContaining({ host: NAME, addresses: ['127.0.0.1'], source: 'cache', lastError: expect.any(String) })]);
    expect(second.network.names[0]!.ageSeconds).toBeGreaterThanOrEqual(0);
    expect(second.warnings).toContainEqual(expect.objectContaining({ host: NAME, msg: expect.stringContaining('last-known-good') }));
    console.info(`black-holed resolver: plain dns.lookup failed after ${second.probeMs} ms (${second.probe.code}); alert delivered by the cached address in ${second.deliveryMs} ms (first run: ${first.deliveryMs} ms)`);
  });
});
