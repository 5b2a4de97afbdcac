/**
 * The real Alertmanager (Debian prometheus-alertmanager) on free loopback ports: an alert from
 * connwatch shows active, then resolved; two hosts' alerts land in one group (issue 7).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SpoolingAlerter } from '../../src/alerts/alerter.js';
import { startReceiver, type Receiver } from '../support/receivers.js';
import { fastConfig, sampleAlert, testContext } from '../unit/alerts/helpers.js';

const BINARY = '/usr/bin/prometheus-alertmanager';
const present = existsSync(BINARY);
if (!present) console.warn(`skipping Alertmanager tests: ${BINARY} is not installed (apt-get install prometheus-alertmanager)`);

async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

interface GettableAlert {
  labels: Record<string, string>;
  annotations: Record<string, string>;
  status: { state: string };
  startsAt: string;
}

describe.skipIf(!present)('real Alertmanager', () => {
  const dispatcher = new Agent();
  let dir: string;
  let am: ChildProcess | undefined;
  let base: string;
  let notified: Receiver;
  const alerters: SpoolingAlerter[] = [];

  async function get<T>(path: string): Promise<T> {
    const res = await request(`${base}${path}`, { dispatcher });
    return (await res.body.json()) as T;
  }

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-am-'));
    notified = await startReceiver('webhook');
    const port = await freePort();
    base = `http://127.0.0.1:${port}`;
    await writeFile(
      join(dir, 'alertmanager.yml'),
      [
        'route:',
        "  receiver: connwatch-test",
        "  group_by: ['cluster', 'cause']",
        '  group_wait: 1s',
        '  group_interval: 1s',
        '  repeat_interval: 1h',
        'receivers:',
        '  - name: connwatch-test',
        '    webhook_configs:',
        `      - url: ${notified.url}`,
        '        send_resolved: true',
        '',
      ].join('\n'),
    );
    am = spawn(
      BINARY,
      [`--config.file=${join(dir, 'alertmanager.yml')}`, `--storage.path=${join(dir, 'data')}`, `--web.listen-address=127.0.0.1:${port}`, '--cluster.listen-address='],
      { stdio: ['ignore', 'ignore', 'pipe'] },
    );
    let stderr = '';
    am.stderr?.on('data', (c: Buffer) => (stderr += c.toString()));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const status = await request(`${base}/-/ready`, { dispatcher })
        .then(async (r) => (await r.body.text(), r.statusCode))
        .catch(() => 0);
      if (status === 200) break;
      if (Date.now() > deadline || am.exitCode !== null) throw new Error(`Alertmanager did not become ready: ${stderr}`);
      await new Promise((r) => setTimeout(r, 100));
    }
  });

  afterAll(async () => {
    await Promise.all(alerters.map((a) => a.stop()));
    if (am && am.exitCode === null) {
      const exited = new Promise((resolve) => am!.once('exit', resolve));
      am.kill('SIGTERM');
      const timer = setTimeout(() => am!.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(timer);
    }
    await notified?.close();
    await dispatcher.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function alerterFor(node: string): Promise<SpoolingAlerter> {
    const config = fastConfig({ alertmanager: { urls: [base], jitterMs: 0, resendIntervalSeconds: 60 } });
    const alerter = new SpoolingAlerter({ ctx: testContext(), config, stateDir: join(dir, node), dispatcher, identity: { node, site: 'lab' } });
    alerters.push(alerter);
    await alerter.start();
    return alerter;
  }

  it('shows the alert active with its labels and annotations, then resolved', async () => {
    const alerter = await alerterFor('node-a');
    alerter.raise(sampleAlert('node-a'));
    expect(await alerter.settled()).toBe(true);
    const active = await get<GettableAlert[]>('/api/v2/alerts');
    const mine = active.find((a) => a.labels.node === 'node-a');
    expect(mine).toBeDefined();
    expect(mine!.status.state).toBe('active');
    expect(mine!.labels).toMatchObject({ alertname: 'ReadyButNoPodNetwork', cluster: 'lab', cause: 'ReadyButNoPodNetwork', severity: 'critical' });
    expect(mine!.annotations.runbook_url).toMatch(/#readybutnopodnetwork$/);
    expect(mine!.annotations.timeline).toContain('systemd-networkd restarted');

    alerter.resolve(sampleAlert('node-a').id);
    expect(await alerter.settled()).toBe(true);
    await expect.poll(async () => (await get<GettableAlert[]>('/api/v2/alerts')).filter((a) => a.labels.node === 'node-a').length, { timeout: 5000 }).toBe(0);
    // Alertmanager told its own receiver about the resolve too.
    await notified.waitFor((all) => all.some((n) => (n.body as { status?: string }).status === 'resolved'));
  });

  it('puts two hosts hit by the same cause into one group (group_by cluster, cause)', async () => {
    const a = await alerterFor('node-b');
    const b = await alerterFor('node-c');
    a.raise(sampleAlert('node-b'));
    b.raise(sampleAlert('node-c'));
    expect(await a.settled()).toBe(true);
    expect(await b.settled()).toBe(true);
    const groups = await get<{ labels: Record<string, string>; alerts: GettableAlert[] }[]>('/api/v2/alerts/groups');
    const group = groups.find((g) => g.labels.cluster === 'lab' && g.labels.cause === 'ReadyButNoPodNetwork');
    expect(group).toBeDefined();
    expect(group!.alerts.map((x) => x.labels.node).sort()).toEqual(['node-b', 'node-c']);
    // And one notification carried both hosts.
    await notified.waitFor((all) =>
      all.some((n) => {
        const body = n.body as { status?: string; alerts?: { labels: { node: string } }[] };
        const nodes = (body.alerts ?? []).map((x) => x.labels.node);
        return body.status === 'firing' && nodes.includes('node-b') && nodes.includes('node-c');
      }),
    );
  });
});
