/**
 * Issue 8: two real Alertmanagers (Debian prometheus-alertmanager) on free loopback ports,
 * clustering disabled on each: both show the alert, then the resolve; one stopped for a while
 * and started again gets the backlog (a new alert and a resolve it missed) from the spool.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoolingAlerter } from '../../src/alerts/alerter.js';
import { freePort } from '../support/ports.js';
import { fastConfig, sampleAlert, testContext } from '../unit/alerts/helpers.js';

const BINARY = '/usr/bin/prometheus-alertmanager';
const present = existsSync(BINARY);
if (!present) console.warn(`skipping HA Alertmanager tests: ${BINARY} is not installed (apt-get install prometheus-alertmanager)`);

interface Replica {
  name: string;
  port: number;
  base: string;
  storage: string;
  child?: ChildProcess;
}

const probe = new Agent({ connect: { timeout: 1000 } });

async function startReplica(r: Replica, configFile: string): Promise<void> {
  const child = spawn(
    BINARY,
    [`--config.file=${configFile}`, `--storage.path=${r.storage}`, `--web.listen-address=127.0.0.1:${r.port}`, '--cluster.listen-address='],
    { stdio: ['ignore', 'ignore', 'pipe'] },
  );
  r.child = child;
  let stderr = '';
  child.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
  const deadline = Date.now() + 20_000;
  for (;;) {
    const status = await request(`${r.base}/-/ready`, { dispatcher: probe })
      .then(async (res) => (await res.body.text(), res.statusCode))
      .catch(() => 0);
    if (status === 200) return;
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`Alertmanager ${r.name} did not become ready: ${stderr.slice(-2000)}`);
    await new Promise((res) => setTimeout(res, 50));
  }
}

async function stopReplica(r: Replica): Promise<void> {
  const child = r.child;
  r.child = undefined;
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}

interface GettableAlert {
  labels: Record<string, string>;
  status: { state: string };
}

async function activeIds(r: Replica): Promise<string[]> {
  const res = await request(`${r.base}/api/v2/alerts?active=true&silenced=false&inhibited=false`, { dispatcher: probe });
  const alerts = (await res.body.json()) as GettableAlert[];
  return alerts.map((a) => `${a.labels.alertname}/${a.labels.node}`).sort();
}

describe.skipIf(!present)('two real Alertmanager replicas', () => {
  let dir: string;
  let configFile: string;
  const replicas: Replica[] = [];
  let alerter: SpoolingAlerter | undefined;
  const dispatcher = new Agent({ connect: { timeout: 500 } });

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-amha-'));
    configFile = join(dir, 'alertmanager.yml');
    // No receiver endpoint: this test reads each replica's own view through its API.
    await writeFile(configFile, ['route:', '  receiver: blackhole', "  group_by: ['cluster', 'cause']", 'receivers:', '  - name: blackhole', ''].join('\n'));
    for (const name of ['am-1', 'am-2']) {
      const port = await freePort();
      replicas.push({ name, port, base: `http://127.0.0.1:${port}`, storage: join(dir, name) });
    }
    await Promise.all(replicas.map((r) => startReplica(r, configFile)));
    const config = fastConfig({
      alertmanager: { urls: replicas.map((r) => r.base), jitterMs: 0, perMinute: 60_000, burst: 1000, resendIntervalSeconds: 3600 },
      retry: { retries: 1, minDelayMs: 10, maxDelayMs: 50, cooldownMs: 200, requestTimeoutMs: 1000 },
    });
    alerter = new SpoolingAlerter({ ctx: testContext(), config, stateDir: join(dir, 'agent'), dispatcher, identity: { node: 'node-a', site: 'lab' } });
    await alerter.start();
  }, 60_000);

  afterAll(async () => {
    await alerter?.stop();
    await Promise.all(replicas.map(stopReplica));
    await dispatcher.close();
    await probe.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  const [one, two] = [() => replicas[0]!, () => replicas[1]!];
  const raise = (cause: 'ReadyButNoPodNetwork' | 'DatapathDamage' | 'CiliumUnhealthy') =>
    alerter!.raise(sampleAlert('node-a', { id: `${cause}/node-a`, cause, summary: `${cause} on node-a` }));

  it('both replicas show the alert, then the resolve', async () => {
    raise('ReadyButNoPodNetwork');
    expect(await alerter!.settled(10_000)).toBe(true);
    expect(await activeIds(one())).toEqual(['ReadyButNoPodNetwork/node-a']);
    expect(await activeIds(two())).toEqual(['ReadyButNoPodNetwork/node-a']);

    alerter!.resolve('ReadyButNoPodNetwork/node-a');
    expect(await alerter!.settled(10_000)).toBe(true);
    expect(await activeIds(one())).toEqual([]);
    expect(await activeIds(two())).toEqual([]);
  });

  it('a replica that hangs for a while gets the backlog when back, including the resolve it missed; the other is not held up', async () => {
    raise('DatapathDamage');
    expect(await alerter!.settled(10_000)).toBe(true);
    expect(await activeIds(two())).toEqual(['DatapathDamage/node-a']);
    // SIGSTOP: connections are accepted by the kernel and never answered, and the replica keeps its memory.
    two().child!.kill('SIGSTOP');
    try {
      raise('CiliumUnhealthy');
      alerter!.resolve('DatapathDamage/node-a');
      await expect.poll(() => activeIds(one()), { timeout: 10_000 }).toEqual(['CiliumUnhealthy/node-a']);
      expect(await alerter!.settled(300)).toBe(false); // am-2's share is still pending
    } finally {
      two().child!.kill('SIGCONT');
    }
    const backAt = Date.now();
    await expect.poll(() => activeIds(two()), { timeout: 10_000 }).toEqual(['CiliumUnhealthy/node-a']);
    console.info(`am-2 caught up ${Date.now() - backAt} ms after it resumed`);
    expect(await alerter!.settled(10_000)).toBe(true);
  });

  it('a replica restarted (its memory lost) gets what is still active from the spool', async () => {
    await stopReplica(two());
    raise('ReadyButNoPodNetwork');
    await expect.poll(() => activeIds(one()), { timeout: 10_000 }).toEqual(['CiliumUnhealthy/node-a', 'ReadyButNoPodNetwork/node-a']);
    const readyAt = Date.now();
    await startReplica(two(), configFile);
    // The new alert arrives from its pending entry; the older active one is re-posted when the replica answers again.
    await expect.poll(() => activeIds(two()), { timeout: 10_000 }).toEqual(['CiliumUnhealthy/node-a', 'ReadyButNoPodNetwork/node-a']);
    console.info(`restarted am-2 got the backlog ${Date.now() - readyAt} ms after it was ready`);
    expect(await alerter!.settled(10_000)).toBe(true);
  });
});
