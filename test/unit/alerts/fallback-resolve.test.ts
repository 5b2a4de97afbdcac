/**
 * Issue 11: a fallback sink's resolve waits for an Alertmanager to have the resolve only up to
 * alerts.fallbackResolveWaitSeconds (default 600), then resolves anyway: an Alertmanager that
 * stays down no longer keeps the fallback incident open for ever.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolingAlerter } from '../../../src/alerts/alerter.js';
import { alertsConfig } from '../../../src/alerts/config.js';
import { SinkWorker, type DeliveryOutcome, type LiveRecord } from '../../../src/alerts/delivery.js';
import { alertMetrics } from '../../../src/alerts/metrics.js';
import { buildSinks } from '../../../src/alerts/sinks/index.js';
import type { ConfiguredSink } from '../../../src/alerts/types.js';
import type { Alert } from '../../../src/types.js';
import { ManualClock } from '../../support/clock.js';
import { startReceiver, type Receiver } from '../../support/receivers.js';
import { fastConfig, sampleAlert, testContext } from './helpers.js';

const dispatcher = new Agent();
afterAll(() => dispatcher.close());

/** Lets the worker's loop run what is due now (it waits on timers and promises only). */
const turn = () => new Promise((r) => setTimeout(r, 20));

describe('a fallback resolve held for Alertmanager (SinkWorker)', () => {
  const WAIT_MS = 600_000;
  let abort: AbortController;
  beforeEach(() => {
    abort = new AbortController();
  });
  afterEach(() => abort.abort());

  function worker(clock: ManualClock) {
    const sent: Alert[] = [];
    const settled: DeliveryOutcome['kind'][] = [];
    const ctx = testContext();
    const w = new SinkWorker({
      configured: {
        kind: 'pagerduty',
        sink: { name: 'pagerduty', deliver: async (alert) => (sent.push(alert), { ok: true }) },
        policy: { perMinute: 60_000, burst: 100, jitterMs: 0, sendResolves: true, fallback: true, keyOf: (a) => a.id },
      },
      retry: fastConfig().retry,
      clock,
      log: ctx.log,
      metrics: alertMetrics(new Registry()),
      sleep: async () => undefined,
      random: () => 0,
      settle: (_record, _sink, outcome) => settled.push(outcome.kind),
      // Every Alertmanager is down: none ever acknowledges the resolve.
      fallback: { afterMs: 60_000, jitterMs: 0, resolveWaitMs: WAIT_MS, primaryAcked: () => false },
    });
    void w.run(abort.signal);
    return { w, sent, settled, ctx };
  }

  /** A resolve for a trigger this fallback sink did page (so it must resolve it). */
  function resolveRecord(createdAt: number): LiveRecord {
    const alert: Alert = { ...sampleAlert(), status: 'resolved', createdAt, endsAt: createdAt };
    return { seq: 2, alert, pending: new Set(['pagerduty']), superseded: false, acked: new Set(), sentBefore: new Set(['pagerduty']) };
  }

  it('waits for Alertmanager up to the deadline, then resolves anyway', async () => {
    const clock = new ManualClock();
    const { w, sent, settled, ctx } = worker(clock);
    w.enqueue(resolveRecord(clock.now()));
    await turn();
    expect(sent).toEqual([]);

    clock.advance(WAIT_MS - 1000);
    w.poke();
    await turn();
    expect(sent).toEqual([]); // still within the wait: Alertmanager may yet come back

    clock.advance(1000);
    w.poke();
    await expect.poll(() => sent.map((a) => a.status)).toEqual(['resolved']);
    expect(settled).toEqual(['delivered']);
    expect(ctx.lines.some((l) => String(l.msg).includes('fallbackResolveWaitSeconds'))).toBe(true);
  });

  it('counts the wait from the resolve, so a resolve replayed after a restart past its deadline goes at once', async () => {
    const clock = new ManualClock();
    const { w, sent } = worker(clock);
    w.enqueue(resolveRecord(clock.now() - WAIT_MS));
    await expect.poll(() => sent.map((a) => a.status)).toEqual(['resolved']);
  });
});

describe('alerts.fallbackResolveWaitSeconds (SpoolingAlerter)', () => {
  let dir: string;
  let pd: Receiver;
  let alerter: SpoolingAlerter | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-fallback-resolve-'));
    pd = await startReceiver('pagerduty');
  });
  afterEach(async () => {
    await alerter?.stop();
    await pd.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('defaults to 600 s', () => {
    expect(alertsConfig.parse({}).fallbackResolveWaitSeconds).toBe(600);
  });

  it('closes the fallback incident while every Alertmanager stays down, once the wait has passed', async () => {
    const config = fastConfig({
      fallbackAfterSeconds: 0.05,
      fallbackJitterSeconds: 0,
      fallbackResolveWaitSeconds: 0.2,
      pagerduty: { routingKey: 'rk', url: pd.url, when: 'fallback', jitterMs: 0 },
      alertmanager: { urls: ['http://127.0.0.1:9'] },
      retry: { retries: 0, cooldownMs: 60_000, requestTimeoutMs: 300 },
    });
    const am: ConfiguredSink = {
      kind: 'alertmanager',
      sink: { name: 'alertmanager:down', deliver: async () => ({ ok: false, permanent: false, reason: 'ECONNREFUSED' }) },
      policy: { perMinute: 6000, burst: 10, jitterMs: 0, sendResolves: true, repostIntervalMs: 60_000, keyOf: (a) => a.id },
    };
    alerter = new SpoolingAlerter({ ctx: testContext(), config, stateDir: dir, dispatcher, identity: { node: 'node-a', site: 'lab' }, sinks: [am, ...buildSinks(config, dispatcher)] });
    await alerter.start();
    alerter.raise(sampleAlert());
    await pd.waitFor(() => pd.accepted().length === 1, 3000);
    alerter.resolve(sampleAlert().id);
    await pd.waitFor(() => pd.accepted().length === 2, 5000);
    expect(pd.accepted().map((a) => (a.body as { event_action: string }).event_action)).toEqual(['trigger', 'resolve']);
  });
});
