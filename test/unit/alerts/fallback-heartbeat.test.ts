import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolingAlerter } from '../../../src/alerts/alerter.js';
import { Secret } from '../../../src/common/secret.js';
import { Heartbeat } from '../../../src/alerts/heartbeat.js';
import { alertMetrics } from '../../../src/alerts/metrics.js';
import { sleep as realSleep } from '../../../src/common/sleep.js';
import { buildSinks } from '../../../src/alerts/sinks/index.js';
import type { ConfiguredSink } from '../../../src/alerts/types.js';
import { startReceiver, type Receiver } from '../../support/receivers.js';
import { fastConfig, metricValue, sampleAlert, testContext } from './helpers.js';

const dispatcher = new Agent();
afterAll(() => dispatcher.close());

describe('fallback sinks', () => {
  let dir: string;
  let pd: Receiver;
  let alerter: SpoolingAlerter | undefined;
  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-fallback-'));
    pd = await startReceiver('pagerduty');
  });
  afterEach(async () => {
    await alerter?.stop();
    await pd.close();
    await rm(dir, { recursive: true, force: true });
  });

  async function withAlertmanager(answers: boolean) {
    const config = fastConfig({
      fallbackAfterSeconds: 0.2,
      fallbackJitterSeconds: 0,
      dedupKey: '{{site}}/{{cause}}',
      pagerduty: { routingKey: 'rk', url: pd.url, when: 'fallback', jitterMs: 0 },
      // A fallback needs Alertmanagers in config; the test hands the alerter its own sink below.
      alertmanager: { urls: ['http://127.0.0.1:9'] },
      retry: { retries: 0, cooldownMs: 60_000, requestTimeoutMs: 300 },
    });
    const am: ConfiguredSink = {
      kind: 'alertmanager',
      sink: { name: 'alertmanager:fake', deliver: async () => (answers ? { ok: true } : { ok: false, permanent: false, reason: 'ECONNREFUSED' }) },
      policy: { perMinute: 6000, burst: 10, jitterMs: 0, sendResolves: true, repostIntervalMs: 60_000, keyOf: (a) => a.id },
    };
    const ctx = testContext();
    alerter = new SpoolingAlerter({ ctx, config, stateDir: dir, dispatcher, identity: { node: 'node-a', site: 'lab' }, sinks: [am, ...buildSinks(config, dispatcher)] });
    await alerter.start();
    return ctx;
  }

  it('stays quiet while an Alertmanager takes the alert', async () => {
    const ctx = await withAlertmanager(true);
    alerter!.raise(sampleAlert());
    await expect.poll(() => metricValue(ctx, 'connwatch_alerts_total', { sink: 'pagerduty', result: 'skipped' }), { timeout: 3000 }).toBe(1);
    expect(pd.attempts).toEqual([]);
  });

  it('pages with the fleet key when no Alertmanager answers', async () => {
    await withAlertmanager(false);
    const raisedAt = Date.now();
    alerter!.raise(sampleAlert());
    await pd.waitFor((a) => a.length === 1, 3000);
    expect(pd.attempts[0]!.at - raisedAt).toBeGreaterThanOrEqual(200 - 5);
    expect(pd.accepted()[0]!.body).toMatchObject({ event_action: 'trigger', dedup_key: 'lab/ReadyButNoPodNetwork', payload: { custom_details: { node: 'node-a' } } });
  });
});

describe('Heartbeat', () => {
  let hook: Receiver;
  beforeEach(async () => {
    hook = await startReceiver('webhook');
  });
  afterEach(() => hook.close());

  function heartbeat(ctx: ReturnType<typeof testContext>, url: string, method: 'GET' | 'POST') {
    return new Heartbeat({
      url: new Secret(url),
      method,
      intervalMs: 30,
      timeoutMs: 300,
      dispatcher,
      log: ctx.log,
      metrics: alertMetrics(ctx.metrics),
      sleep: realSleep,
      random: () => 0,
      body: () => ({ node: 'node-a' }),
    });
  }

  it('pings periodically and stops when asked, waiting for the loop', async () => {
    const ctx = testContext();
    const hb = heartbeat(ctx, `${hook.origin}/ping/HBTOKEN`, 'POST');
    hb.start();
    await expect.poll(() => metricValue(ctx, 'connwatch_alerts_total', { sink: 'heartbeat', result: 'delivered' }), { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    await hb.stop();
    const count = hook.attempts.length;
    const counted = await metricValue(ctx, 'connwatch_alerts_total', { sink: 'heartbeat' });
    await new Promise((r) => setTimeout(r, 100));
    // A ping aborted by stop() may still reach the receiver (its bytes were on the wire); none starts after.
    expect(hook.attempts.length).toBeLessThanOrEqual(count + 1);
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'heartbeat' })).toBe(counted);
    expect(hook.attempts[0]).toMatchObject({ method: 'POST', path: '/ping/HBTOKEN', body: { node: 'node-a' } });
  });

  it('counts and logs failed pings without the URL', async () => {
    const ctx = testContext();
    hook.fail({ kind: 'status', status: 500, body: 'down /ping/HBTOKEN' });
    const hb = heartbeat(ctx, `${hook.origin}/ping/HBTOKEN`, 'GET');
    expect(await hb.beat(new AbortController().signal)).toBe(false);
    expect(hook.attempts[0]!.method).toBe('GET');
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'heartbeat', result: 'failed' })).toBe(1);
    expect(ctx.rawLog.join('\n')).toContain('heartbeat ping failed');
    expect(ctx.rawLog.join('\n')).not.toContain('HBTOKEN');
  });
});
