/**
 * Issue 8: every Alertmanager replica gets every alert with its own delivery state in the
 * spool; with every Alertmanager down, a fleet's alerts become one fallback incident (fleet
 * key, node in the details, jittered), and its resolves follow once Alertmanager has them.
 */
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolingAlerter } from '../../../src/alerts/alerter.js';
import { startReceiver, type Receiver } from '../../support/receivers.js';
import { fastConfig, sampleAlert, testContext } from './helpers.js';

const dispatcher = new Agent({ connect: { timeout: 500 } });
afterAll(() => dispatcher.close());

let dir: string;
let amA: Receiver;
let amB: Receiver;
let pd: Receiver;
const running: SpoolingAlerter[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'connwatch-fleet-'));
  [amA, amB, pd] = await Promise.all([startReceiver('webhook'), startReceiver('webhook'), startReceiver('pagerduty')]);
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
  await Promise.all([amA.close(), amB.close(), pd.close()]);
  await rm(dir, { recursive: true, force: true });
});

/** An Alertmanager that is "down": every connection is reset, as by a dead host's neighbour. */
const down = (r: Receiver) => r.failWhen(() => ({ kind: 'reset' }));
const up = (r: Receiver) => r.failWhen(undefined);
const amName = (r: Receiver) => `alertmanager:${new URL(r.origin).host}`;
type Posted = { labels: { node: string; alertname: string }; endsAt?: string }[];
const postedTo = (r: Receiver) => r.accepted().map((a) => a.body as Posted).flat();

function config(extra: Record<string, unknown> = {}) {
  return fastConfig({
    alertmanager: { urls: [amA.origin, amB.origin], jitterMs: 0, perMinute: 60_000, burst: 1000, resendIntervalSeconds: 3600 },
    retry: { retries: 0, minDelayMs: 5, maxDelayMs: 20, cooldownMs: 50, requestTimeoutMs: 500 },
    ...extra,
  });
}

async function start(node: string, cfg = config(), random: () => number = Math.random): Promise<SpoolingAlerter> {
  const alerter = new SpoolingAlerter({ ctx: testContext(), config: cfg, stateDir: join(dir, node), dispatcher, identity: { node, site: 'lab' }, random });
  running.push(alerter);
  await alerter.start();
  return alerter;
}

async function spooled(node: string): Promise<{ pending: string[]; acked: string[]; alert: { status: string } }[]> {
  const spool = join(dir, node, 'alert-spool');
  const files = (await readdir(spool)).filter((f) => f.endsWith('.json')).sort();
  return Promise.all(files.map(async (f) => JSON.parse(await readFile(join(spool, f), 'utf8'))));
}

describe('every Alertmanager replica', () => {
  it('gets every alert; a replica that is down keeps its own pending state and gets the backlog in order when back', async () => {
    down(amB);
    const alerter = await start('node-a');
    alerter.raise(sampleAlert('node-a', { id: 'ReadyButNoPodNetwork/node-a' }));
    alerter.raise(sampleAlert('node-a', { id: 'DatapathDamage/node-a', cause: 'DatapathDamage', summary: 'rules missing' }));
    await amA.waitFor(() => postedTo(amA).length === 2);
    alerter.resolve('ReadyButNoPodNetwork/node-a');
    await amA.waitFor(() => postedTo(amA).length === 3);

    // Replica A has everything; B's state is its own: the two versions it still needs.
    await expect.poll(async () => (await spooled('node-a')).map((r) => [r.alert.status, r.pending, r.acked]), { timeout: 3000 }).toEqual([
      ['firing', [amName(amB)], [amName(amA)]],
      ['resolved', [amName(amB)], [amName(amA)]],
    ]);
    expect(amB.accepted()).toEqual([]);
    expect(amB.attempts.length).toBeGreaterThan(0);

    up(amB);
    expect(await alerter.settled(5000)).toBe(true);
    // The backlog: the still-firing alert and the resolve; the superseded trigger of the resolved
    // alert is never sent. (Two different alerts: each replica's cooldown retries them in either order.)
    expect(postedTo(amB).map((p) => [p.labels.alertname, p.endsAt === undefined ? 'firing' : 'resolved']).sort()).toEqual([
      ['DatapathDamage', 'firing'],
      ['ReadyButNoPodNetwork', 'resolved'],
    ]);
    expect((await spooled('node-a')).map((r) => [r.alert.status, r.pending])).toEqual([['firing', []]]);
  });

  it('replays each replica\'s pending state after a restart', async () => {
    down(amB);
    const first = await start('node-a');
    first.raise(sampleAlert('node-a', { id: 'ReadyButNoPodNetwork/node-a' }));
    await amA.waitFor(() => postedTo(amA).length === 1);
    await expect.poll(async () => (await spooled('node-a'))[0]?.acked, { timeout: 3000 }).toEqual([amName(amA)]);
    await first.stop();
    const seenByA = amA.accepted().length;

    up(amB);
    const second = await start('node-a');
    expect(await second.settled(5000)).toBe(true);
    expect(postedTo(amB)).toHaveLength(1);
    expect(amA.accepted()).toHaveLength(seenByA); // A had it; not sent again
  });
});

describe('with every Alertmanager down', () => {
  it('many agents page one fleet-keyed incident at the fallback receiver, jittered, and resolve it once Alertmanager is back and has the resolves', async () => {
    down(amA);
    down(amB);
    const cfg = config({
      fallbackAfterSeconds: 0.1,
      fallbackJitterSeconds: 0.4,
      pagerduty: { routingKey: 'rk', url: pd.url, when: 'fallback', jitterMs: 0, perMinute: 60_000, burst: 1000 },
    });
    const nodes = Array.from({ length: 12 }, (_v, i) => `node-${String(i).padStart(2, '0')}`);
    // Each agent draws its own jitter; spread evenly so the assertion does not hang on chance.
    const alerters = await Promise.all(nodes.map((n, i) => start(n, cfg, () => i / nodes.length)));
    const raisedAt = Date.now();
    alerters.forEach((a, i) => a.raise(sampleAlert(nodes[i]!, { id: `ReadyButNoPodNetwork/${nodes[i]}` })));

    await pd.waitFor(() => pd.accepted().length === nodes.length, 30_000);
    const triggers = pd.accepted().map((a) => a.body as { event_action: string; dedup_key: string; payload: { source: string; custom_details: { node: string } } });
    expect(new Set(triggers.map((t) => t.dedup_key))).toEqual(new Set(['lab/ReadyButNoPodNetwork']));
    expect(triggers.every((t) => t.event_action === 'trigger')).toBe(true);
    expect(triggers.map((t) => t.payload.custom_details.node).sort()).toEqual(nodes);
    // Jitter: nobody before fallbackAfter, and the fleet spread over the jitter window.
    const offsets = pd.accepted().map((a) => a.at - raisedAt);
    expect(Math.min(...offsets)).toBeGreaterThanOrEqual(100 - 5);
    // Intended 0…367 ms apart; a loaded CI machine can squeeze that, so ask only for a clear spread.
    expect(Math.max(...offsets) - Math.min(...offsets)).toBeGreaterThanOrEqual(100);

    // Every node recovers while Alertmanager is still down: no resolve may close the incident yet.
    alerters.forEach((a, i) => a.resolve(`ReadyButNoPodNetwork/${nodes[i]}`));
    await new Promise((r) => setTimeout(r, 300));
    expect(pd.accepted().filter((a) => (a.body as { event_action: string }).event_action === 'resolve')).toEqual([]);

    up(amA);
    up(amB);
    await Promise.all(alerters.map(async (a) => expect(await a.settled(10_000)).toBe(true)));
    const resolves = pd.accepted().filter((a) => (a.body as { event_action: string }).event_action === 'resolve');
    expect(resolves).toHaveLength(nodes.length);
    expect(new Set(resolves.map((r) => (r.body as { dedup_key: string }).dedup_key))).toEqual(new Set(['lab/ReadyButNoPodNetwork']));
    // Each resolve left after an Alertmanager took that node's resolve.
    const firstAmResolve = Math.min(...[...amA.accepted(), ...amB.accepted()].filter((a) => (a.body as Posted)[0]?.endsAt !== undefined).map((a) => a.at));
    expect(Math.min(...resolves.map((r) => r.at))).toBeGreaterThanOrEqual(firstAmResolve);
  }, 60_000);

  it('a fallback sink does not resolve what it never paged (Alertmanager took the trigger)', async () => {
    const cfg = config({
      fallbackAfterSeconds: 0.05,
      fallbackJitterSeconds: 0,
      pagerduty: { routingKey: 'rk', url: pd.url, when: 'fallback', jitterMs: 0, perMinute: 60_000, burst: 1000 },
    });
    const alerter = await start('node-a', cfg);
    alerter.raise(sampleAlert('node-a', { id: 'ReadyButNoPodNetwork/node-a' }));
    expect(await alerter.settled(5000)).toBe(true);
    alerter.resolve('ReadyButNoPodNetwork/node-a');
    expect(await alerter.settled(5000)).toBe(true);
    expect(pd.attempts).toEqual([]);
    expect(postedTo(amA)).toHaveLength(2);
  });
});

describe('a replica that refuses for good', () => {
  it('is not re-posted to until a new alert version gets through (a refusal is never a loop)', async () => {
    let refusing = true;
    let calls = 0;
    const refuser = {
      kind: 'alertmanager' as const,
      sink: {
        name: 'alertmanager:refuser',
        deliver: async () => {
          calls += 1;
          return refusing ? { ok: false as const, permanent: true, reason: 'TLS certificate rejected (UNABLE_TO_VERIFY_LEAF_SIGNATURE)' } : { ok: true as const };
        },
      },
      policy: { perMinute: 60_000, burst: 1000, jitterMs: 0, sendResolves: true, repostIntervalMs: 20, keyOf: (a: { id: string }) => a.id },
    };
    let repostRounds = 0;
    const sleep = async (ms: number, signal?: AbortSignal) => {
      if (ms >= 15) repostRounds += 1;
      await new Promise<void>((resolve, reject) => {
        const t = setTimeout(resolve, ms);
        signal?.addEventListener('abort', () => (clearTimeout(t), reject(new Error('aborted'))), { once: true });
      });
    };
    const alerter = new SpoolingAlerter({ ctx: testContext(), config: config(), stateDir: join(dir, 'refuser'), dispatcher, identity: { node: 'node-a', site: 'lab' }, sinks: [refuser], sleep });
    running.push(alerter);
    await alerter.start();
    alerter.raise(sampleAlert('node-a', { id: 'ReadyButNoPodNetwork/node-a' }));
    await expect.poll(() => repostRounds, { timeout: 3000 }).toBeGreaterThanOrEqual(5);
    expect(calls).toBe(1);

    refusing = false;
    alerter.raise(sampleAlert('node-a', { id: 'ReadyButNoPodNetwork/node-a', severity: 'warning' }));
    await expect.poll(() => calls, { timeout: 3000 }).toBeGreaterThanOrEqual(4); // the new version, then re-posts again
  });
});
