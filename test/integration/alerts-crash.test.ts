/**
 * kill -9 at any point loses nothing (issue 7): a child process running the real alerter is
 * SIGKILLed twice mid-delivery and restarted; every alert and resolve arrives, keys unchanged,
 * and no trigger follows its resolve.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { mkdtemp, readdir, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startReceiver, type Receiver } from '../support/receivers.js';

const REPO = resolve(import.meta.dirname, '../..');
const COUNT = 12;

// The agent stand-in: the real SpoolingAlerter with a PagerDuty sink, driven by CW_MODE.
const CHILD = `
import { createRequire } from 'node:module';
const require = createRequire(${JSON.stringify(join(REPO, 'package.json'))});
const pino = require('pino');
const { Registry } = require('prom-client');
const { SpoolingAlerter } = await import(${JSON.stringify(join(REPO, 'src/alerts/alerter.ts'))});
const { alertsConfig } = await import(${JSON.stringify(join(REPO, 'src/alerts/config.ts'))});
const { createAlertDispatcher } = await import(${JSON.stringify(join(REPO, 'src/alerts/dispatcher.ts'))});

const env = process.env;
const config = alertsConfig.parse({
  pagerduty: { routingKey: 'crash-test-routing-key', url: env.CW_PD_URL, jitterMs: 0, perMinute: 1200, burst: 1 },
  retry: { retries: 3, minDelayMs: 10, maxDelayMs: 50, cooldownMs: 100, requestTimeoutMs: 2000 },
});
const dispatcher = createAlertDispatcher();
const ctx = {
  clock: { now: () => Date.now(), monotonic: () => performance.now() },
  log: pino({ level: 'warn' }, pino.destination(2)),
  metrics: new Registry(),
  status: { publish() {} },
};
const alerter = new SpoolingAlerter({ ctx, config, stateDir: env.CW_STATE_DIR, dispatcher, identity: { node: 'agent', site: 'lab' } });
await alerter.start();
const say = (what) => process.stdout.write(JSON.stringify({ what, active: alerter.activeIds().length }) + '\\n');
process.on('SIGTERM', async () => { await alerter.stop(); await dispatcher.close(); process.exit(0); });
say('started');
if (env.CW_MODE === 'raise') {
  for (let i = 0; i < Number(env.CW_COUNT); i++) {
    const now = Date.now();
    alerter.raise({ id: 'lab/node-' + i + '/DatapathDamage', cause: 'DatapathDamage', severity: 'critical', node: 'node-' + i, site: 'lab',
      summary: 'lookup local rule missing', evidence: { i }, timeline: [{ wallAt: now, what: 'rule vanished' }], startsAt: now });
  }
  say('raised');
}
if (env.CW_MODE === 'resolve') {
  await alerter.settled(60000);
  for (const id of alerter.activeIds()) alerter.resolve(id);
  await alerter.settled(60000);
  say('done');
}
`;

describe('alert spool survives SIGKILL', () => {
  let dir: string;
  let pd: Receiver;
  const children = new Set<ChildProcess>();

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-crash-'));
    await writeFile(join(dir, 'agent.mts'), CHILD);
    pd = await startReceiver('pagerduty');
    // Every answer takes 30 ms, so a kill lands while requests are in flight.
    pd.failWhen(() => ({ kind: 'delay', ms: 30 }));
  });
  afterEach(async () => {
    for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  afterAll(async () => {
    await pd?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function run(mode: 'raise' | 'replay' | 'resolve'): { child: ChildProcess; lines: { what: string; active: number }[]; exited: Promise<void>; stderr: () => string } {
    const child = spawn(process.execPath, ['--import', 'tsx', join(dir, 'agent.mts')], {
      cwd: REPO,
      env: { ...process.env, CW_MODE: mode, CW_STATE_DIR: join(dir, 'state'), CW_PD_URL: pd.url, CW_COUNT: String(COUNT) },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    const lines: { what: string; active: number }[] = [];
    let err = '';
    child.stdout!.on('data', (c: Buffer) => {
      for (const l of c.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(l) as { what: string; active: number });
    });
    child.stderr!.on('data', (c: Buffer) => (err += c.toString()));
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    return { child, lines, exited, stderr: () => err };
  }

  async function until(predicate: () => boolean, what: string, timeoutMs = 30_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!predicate()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((r) => setTimeout(r, 5));
    }
  }

  const accepted = (action: string) => pd.accepted().filter((a) => (a.body as { event_action: string }).event_action === action);

  it('delivers every trigger and resolve across two kill -9s, with the same dedup keys', async () => {
    const first = run('raise');
    // The kill lands once every alert is durable (a raise is in the spool a moment after it returns:
    // one killed before that never reached the disk) and while deliveries are still in flight.
    const spooled = () => readdirSync(join(dir, 'state', 'alert-spool'), { withFileTypes: true }).filter((f) => /^\d{12}\.json$/.test(f.name)).length;
    await until(() => accepted('trigger').length >= 3 && spooled() >= COUNT, 'first deliveries, every alert spooled');
    first.child.kill('SIGKILL');
    await first.exited;
    const afterFirst = accepted('trigger').length;
    expect(afterFirst).toBeLessThan(COUNT); // killed mid-delivery, not after

    const second = run('replay');
    await until(() => second.lines.some((l) => l.what === 'started'), `second start: ${second.stderr()}`);
    expect(second.lines[0]!.active).toBe(COUNT);
    await until(() => accepted('trigger').length >= afterFirst + 3, 'replayed deliveries');
    second.child.kill('SIGKILL');
    await second.exited;

    const third = run('resolve');
    await until(() => third.lines.some((l) => l.what === 'done'), `third run: ${third.stderr()}`, 60_000);
    third.child.kill('SIGTERM');
    await third.exited;

    const expectedKeys = Array.from({ length: COUNT }, (_, i) => `lab/node-${i}/DatapathDamage`).sort();
    const seenKeys = new Set(pd.attempts.map((a) => (a.body as { dedup_key: string }).dedup_key));
    expect([...seenKeys].sort()).toEqual(expectedKeys);
    for (const key of expectedKeys) {
      const events = pd.accepted().filter((a) => (a.body as { dedup_key: string }).dedup_key === key).map((a) => (a.body as { event_action: string }).event_action);
      expect(events, key).toContain('trigger');
      expect(events.at(-1), key).toBe('resolve');
      expect(events.slice(events.indexOf('resolve')), key).not.toContain('trigger');
    }
    expect((await readdir(join(dir, 'state', 'alert-spool'))).filter((f) => !f.endsWith('.bad'))).toEqual([]);
  }, 120_000);
});
