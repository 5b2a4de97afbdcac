import { mkdtemp, readdir, readFile, rm, stat } from 'node:fs/promises';
import * as fsp from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolingAlerter, type AlerterDeps } from '../../../src/alerts/alerter.js';
import type { SpoolFs } from '../../../src/alerts/spool.js';
import type { ConfiguredSink } from '../../../src/alerts/types.js';
import type { Alert } from '../../../src/types.js';
import { startReceiver, type Receiver } from '../../support/receivers.js';
import { fastConfig, metricValue, sampleAlert, testContext, type TestContext } from './helpers.js';

const ROUTING_KEY = 'R0UTINGKEY-never-in-logs-0123456';
const dispatcher = new Agent({ connect: { timeout: 500 } });
afterAll(() => dispatcher.close());

let dir: string;
let pd: Receiver;
const running: SpoolingAlerter[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'connwatch-alerter-'));
  pd = await startReceiver('pagerduty');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
  await pd.close();
  await rm(dir, { recursive: true, force: true });
});

function pdConfig(extra: Record<string, unknown> = {}, top: Record<string, unknown> = {}) {
  return fastConfig({ pagerduty: { routingKey: ROUTING_KEY, url: pd.url, jitterMs: 0, perMinute: 6000, burst: 100, ...extra }, ...top });
}

async function startAlerter(ctx: TestContext, partial: Partial<AlerterDeps> & Pick<AlerterDeps, 'config'>): Promise<SpoolingAlerter> {
  const alerter = new SpoolingAlerter({ ctx, stateDir: dir, dispatcher, identity: { node: 'node-a', site: 'lab' }, ...partial });
  running.push(alerter);
  await alerter.start();
  return alerter;
}

const events = (r: Receiver) => r.accepted().map((a) => (a.body as { event_action: string }).event_action);
const spoolFiles = async () => (await readdir(join(dir, 'alert-spool'))).filter((f) => f.endsWith('.json'));

describe('SpoolingAlerter', () => {
  it('spools (0600) before delivery, keeps the active alert, and empties the spool after the resolve is acknowledged', async () => {
    const ctx = testContext();
    pd.fail({ kind: 'timeout' });
    const alerter = await startAlerter(ctx, { config: pdConfig() });
    alerter.raise(sampleAlert());
    await pd.waitFor((a) => a.length >= 1);
    // The first attempt hangs at the receiver: the alert is already on disk.
    const [file] = await spoolFiles();
    expect(file).toBeDefined();
    expect((await stat(join(dir, 'alert-spool', file!))).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(join(dir, 'alert-spool', file!), 'utf8'))).toMatchObject({ pending: ['pagerduty'], alert: { status: 'firing' } });
    expect(await alerter.settled()).toBe(true);
    expect(events(pd)).toEqual(['trigger']);
    expect(await metricValue(ctx, 'connwatch_alert_spool_depth')).toBe(0);
    expect(await spoolFiles()).toHaveLength(1); // the active alert, acknowledged

    alerter.resolve(sampleAlert().id);
    expect(await alerter.settled()).toBe(true);
    expect(events(pd)).toEqual(['trigger', 'resolve']);
    expect(await spoolFiles()).toEqual([]);
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'pagerduty', result: 'delivered' })).toBe(2);
  });

  it('retries 500, 429 with Retry-After, resets and timeouts, then delivers once', async () => {
    const ctx = testContext();
    pd.fail({ kind: 'status', status: 500 }, { kind: 'status', status: 429, retryAfter: '1' }, { kind: 'reset' }, { kind: 'timeout' });
    const alerter = await startAlerter(ctx, { config: pdConfig({}, { retry: { retries: 5, minDelayMs: 5, maxDelayMs: 20, requestTimeoutMs: 300 } }) });
    alerter.raise(sampleAlert());
    expect(await alerter.settled()).toBe(true);
    expect(pd.attempts).toHaveLength(5);
    expect(events(pd)).toEqual(['trigger']);
    // Retry-After: 1 was honoured between the 429 and the next attempt.
    expect(pd.attempts[2]!.at - pd.attempts[1]!.at).toBeGreaterThanOrEqual(1000);
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'pagerduty', result: 'retry' })).toBe(4);
    const dedup = pd.attempts.map((a) => (a.body as { dedup_key?: string } | undefined)?.dedup_key);
    expect(new Set(dedup)).toEqual(new Set(['lab/node-a/ReadyButNoPodNetwork']));
  });

  it('gives up on 400 at once, logs the body, and does not keep it pending', async () => {
    const ctx = testContext();
    pd.fail({ kind: 'status', status: 400, body: '{"status":"invalid event","message":"Event object is invalid"}' });
    const alerter = await startAlerter(ctx, { config: pdConfig() });
    alerter.raise(sampleAlert());
    expect(await alerter.settled()).toBe(true);
    expect(pd.attempts).toHaveLength(1);
    const line = ctx.lines.find((l) => l.level === 50 && String(l.msg).includes('permanent'));
    expect(line?.reason).toContain('Event object is invalid');
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'pagerduty', result: 'permanent' })).toBe(1);
    expect(await metricValue(ctx, 'connwatch_alert_spool_depth')).toBe(0);
  });

  it('keeps an item whose retries ran out and delivers it in a later round', async () => {
    const ctx = testContext();
    pd.fail(...Array.from({ length: 4 }, () => ({ kind: 'status' as const, status: 502 })));
    const alerter = await startAlerter(ctx, { config: pdConfig() }); // 3 retries = 4 attempts per round
    alerter.raise(sampleAlert());
    expect(await alerter.settled()).toBe(true);
    expect(pd.attempts).toHaveLength(5);
    expect(events(pd)).toEqual(['trigger']);
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'pagerduty', result: 'exhausted' })).toBe(1);
  });

  it('never sends a trigger after a newer resolve for the same key', async () => {
    const ctx = testContext();
    // Triggers fail until the resolve has been accepted; then the receiver would take them.
    let resolveSeen = false;
    pd.failWhen((body) => {
      const action = (body as { event_action?: string }).event_action;
      if (action === 'resolve') resolveSeen = true;
      return action === 'trigger' && !resolveSeen ? { kind: 'status', status: 503 } : undefined;
    });
    const alerter = await startAlerter(ctx, { config: pdConfig({}, { retry: { retries: 50, minDelayMs: 20, maxDelayMs: 20, requestTimeoutMs: 500 } }) });
    alerter.raise(sampleAlert());
    await pd.waitFor((a) => a.length >= 2);
    alerter.resolve(sampleAlert().id);
    expect(await alerter.settled()).toBe(true);
    const order = pd.attempts.map((a) => (a.body as { event_action: string }).event_action);
    const resolveAt = order.indexOf('resolve');
    expect(resolveAt).toBeGreaterThan(0);
    expect(order.slice(resolveAt + 1)).not.toContain('trigger');
    expect(events(pd)).toEqual(['resolve']);
    expect(await spoolFiles()).toEqual([]);
  });

  it('rate-limits per sink: burst 1 at 600/min spaces deliveries by about 100 ms', async () => {
    const ctx = testContext();
    const alerter = await startAlerter(ctx, { config: pdConfig({ perMinute: 600, burst: 1 }) });
    for (const node of ['n1', 'n2', 'n3', 'n4', 'n5']) alerter.raise(sampleAlert(node, { id: `lab/${node}/ReadyButNoPodNetwork` }));
    expect(await alerter.settled()).toBe(true);
    const at = pd.accepted().map((a) => a.at);
    expect(at).toHaveLength(5);
    expect(at.at(-1)! - at[0]!).toBeGreaterThanOrEqual(4 * 100 - 20);
  });

  it('with the fleet template, two hosts share one PagerDuty dedup key and keep their host in the details', async () => {
    const config = pdConfig({ dedupKey: '{{site}}/{{cause}}' });
    for (const node of ['node-a', 'node-b']) {
      const alerter = await startAlerter(testContext(), { config, stateDir: join(dir, node), identity: { node, site: 'lab' } });
      alerter.raise(sampleAlert(node));
      expect(await alerter.settled()).toBe(true);
    }
    const bodies = pd.accepted().map((a) => a.body as { dedup_key: string; payload: { source: string; custom_details: { node: string } } });
    expect(bodies.map((b) => b.dedup_key)).toEqual(['lab/ReadyButNoPodNetwork', 'lab/ReadyButNoPodNetwork']);
    expect(bodies.map((b) => b.payload.custom_details.node)).toEqual(['node-a', 'node-b']);
  });

  it('delivers from memory when the disk is read-only, and reports it', async () => {
    const ctx = testContext();
    const fs: SpoolFs = {
      ...fsp,
      open: (async (...args: Parameters<typeof fsp.open>) => {
        if (String(args[0]).endsWith('.tmp')) throw Object.assign(new Error('read-only file system'), { code: 'EROFS' });
        return fsp.open(...args);
      }) as typeof fsp.open,
    };
    const alerter = await startAlerter(ctx, { config: pdConfig(), fs });
    alerter.raise(sampleAlert());
    expect(await alerter.settled()).toBe(true);
    expect(events(pd)).toEqual(['trigger']);
    expect(await metricValue(ctx, 'connwatch_alert_spool_writable')).toBe(0);
    expect(ctx.lines.some((l) => l.msg === 'alert spool not writable' && String(l.reason).includes('EROFS'))).toBe(true);
    expect(ctx.statuses.get('alerts')).toMatchObject({ spool: { ok: false } });
  });

  it('never writes secrets to logs or /status, even when receivers echo them', async () => {
    const ctx = testContext();
    const slack = await startReceiver('slack');
    const hook = await startReceiver('webhook');
    try {
      pd.fail({ kind: 'status', status: 400, body: `bad key ${ROUTING_KEY}` });
      slack.fail({ kind: 'status', status: 500, body: `oops ${slack.url}` });
      hook.fail({ kind: 'reset' });
      const config = pdConfig(
        {},
        {
          slack: { webhookUrl: slack.url, jitterMs: 0 },
          webhooks: [{ url: `${hook.url}?token=HOOKTOKEN`, headers: { authorization: 'Bearer HEADERTOKEN' }, jitterMs: 0 }],
        },
      );
      const alerter = await startAlerter(ctx, { config });
      alerter.raise(sampleAlert());
      expect(await alerter.settled()).toBe(true);
      alerter.resolve(sampleAlert().id);
      expect(await alerter.settled()).toBe(true);
      expect(slack.accepted()).toHaveLength(2);
      expect(hook.accepted()).toHaveLength(2);
      const everything = ctx.rawLog.join('\n') + JSON.stringify([...ctx.statuses.values()]);
      for (const secret of [ROUTING_KEY, 's3cr3tSlackToken', 'HOOKTOKEN', 'HEADERTOKEN']) expect(everything).not.toContain(secret);
      expect(everything).toContain('[redacted]');
    } finally {
      await slack.close();
      await hook.close();
    }
  });

  it('bounds the spool: drops old low-severity items first, never the newest critical, and pages about it', async () => {
    const ctx = testContext();
    pd.failWhen(() => ({ kind: 'status', status: 503 }));
    const alerter = await startAlerter(ctx, { config: pdConfig({}, { spool: { maxBytes: 4000 }, retry: { retries: 0, cooldownMs: 60_000, requestTimeoutMs: 300 } }) });
    alerter.raise(sampleAlert('n0', { id: 'lab/n0/FightingNetworkd', cause: 'FightingNetworkd', severity: 'info' }));
    alerter.raise(sampleAlert('n1', { id: 'lab/n1/RestoreFailed', cause: 'RestoreFailed', severity: 'warning' }));
    for (let i = 2; i < 8; i++) alerter.raise(sampleAlert(`n${i}`, { id: `lab/n${i}/DatapathDamage`, cause: 'DatapathDamage' }));
    // The bound is enforced as the records are written (asynchronously): wait for it, however loaded the machine.
    await expect.poll(() => metricValue(ctx, 'connwatch_alerts_dropped_total', { severity: 'warning' }), { timeout: 10_000 }).toBeGreaterThanOrEqual(1);
    expect(await metricValue(ctx, 'connwatch_alerts_dropped_total', { severity: 'info' })).toBe(1);
    const ids = alerter.activeIds();
    expect(ids).toContain('lab/n7/DatapathDamage');
    expect(ids).not.toContain('lab/n0/FightingNetworkd');
    expect(ids).toContain('AlertSpoolOverflow/node-a');
    const spooled = await Promise.all((await spoolFiles()).map(async (f) => JSON.parse(await readFile(join(dir, 'alert-spool', f), 'utf8')) as { alert: Alert }));
    expect(spooled.map((s) => s.alert.id)).toContain('lab/n7/DatapathDamage');
  });

  it('replays the spool on start: what one run could not deliver, the next run delivers', async () => {
    pd.failWhen(() => ({ kind: 'status', status: 503 }));
    const first = await startAlerter(testContext(), { config: pdConfig({}, { retry: { retries: 0, cooldownMs: 60_000, requestTimeoutMs: 300 } }) });
    first.raise(sampleAlert());
    await pd.waitFor((a) => a.length >= 1);
    await first.stop();
    pd.failWhen(undefined);
    const ctx = testContext();
    const second = await startAlerter(ctx, { config: pdConfig() });
    expect(second.activeIds()).toEqual([sampleAlert().id]);
    expect(await second.settled()).toBe(true);
    expect(events(pd)).toEqual(['trigger']);
    second.resolve(sampleAlert().id);
    expect(await second.settled()).toBe(true);
    expect(events(pd)).toEqual(['trigger', 'resolve']);
  });

  it('re-posts active alerts to re-posting sinks until resolved, and ignores duplicate raises', async () => {
    const delivered: Alert[] = [];
    const fake: ConfiguredSink = {
      kind: 'alertmanager',
      sink: { name: 'alertmanager:fake', deliver: async (alert) => (delivered.push(alert), { ok: true }) },
      policy: { perMinute: 60_000, burst: 100, jitterMs: 0, sendResolves: true, repostIntervalMs: 40, keyOf: (a) => a.id },
    };
    const alerter = await startAlerter(testContext(), { config: fastConfig(), sinks: [fake] });
    alerter.raise(sampleAlert());
    alerter.raise(sampleAlert());
    await expect.poll(() => delivered.length, { timeout: 5000 }).toBeGreaterThanOrEqual(3);
    expect(new Set(delivered.map((a) => a.createdAt)).size).toBe(1);
    alerter.resolve(sampleAlert().id);
    await expect.poll(() => delivered.at(-1)?.status, { timeout: 5000 }).toBe('resolved');
    const count = delivered.length;
    await new Promise((r) => setTimeout(r, 150));
    expect(delivered.slice(count).filter((a) => a.status === 'firing')).toEqual([]);
    expect(delivered.at(-1)!.endsAt).toBeLessThanOrEqual(Date.now());
  });

  it('with delivery disabled, still records active alerts and leaves nothing behind after the resolve', async () => {
    const alerter = await startAlerter(testContext(), { config: pdConfig({}, { enabled: false }) });
    alerter.raise(sampleAlert());
    expect(await alerter.settled()).toBe(true);
    expect(await spoolFiles()).toHaveLength(1);
    alerter.resolve(sampleAlert().id);
    expect(await alerter.settled()).toBe(true);
    expect(await spoolFiles()).toEqual([]);
    expect(pd.attempts).toEqual([]);
  });

  it('terminates when the spool is too small for even one more item (the overflow alert drops, not loops)', async () => {
    const ctx = testContext();
    pd.failWhen(() => ({ kind: 'status', status: 503 }));
    const alerter = await startAlerter(ctx, { config: pdConfig({}, { spool: { maxBytes: 100 }, retry: { retries: 0, cooldownMs: 60_000, requestTimeoutMs: 300 } }) });
    for (let i = 0; i < 3; i++) alerter.raise(sampleAlert(`n${i}`, { id: `lab/n${i}/DatapathDamage`, cause: 'DatapathDamage' }));
    await alerter.settled(300);
    expect(alerter.activeIds()).toEqual(['lab/n2/DatapathDamage']);
    expect(await metricValue(ctx, 'connwatch_alerts_dropped_total', { severity: 'critical' })).toBe(2);
    expect(await spoolFiles()).toHaveLength(1);
  });
});
