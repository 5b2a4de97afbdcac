/**
 * Issue 11: when the spool is over its bound, eviction drops resolves and alerts every sink
 * already has before any active alert a sink has not heard yet (whatever the severities), and
 * the AlertSpoolOverflow page says what was dropped: how many, of which causes, and which ids.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolingAlerter } from '../../../src/alerts/alerter.js';
import type { ConfiguredSink } from '../../../src/alerts/types.js';
import type { Alert } from '../../../src/types.js';
import { fastConfig, metricValue, sampleAlert, testContext } from './helpers.js';

const dispatcher = new Agent();
afterAll(() => dispatcher.close());

let dir: string;
let alerter: SpoolingAlerter | undefined;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'connwatch-overflow-'));
});
afterEach(async () => {
  await alerter?.stop();
  await rm(dir, { recursive: true, force: true });
});

/** Evidence this large makes each spooled record ~11 kB, whatever the rest of it weighs. */
const PAD = 'x'.repeat(10_000);

describe('the bounded spool (issue 11)', () => {
  it('keeps every undelivered active alert while resolves and delivered alerts remain to drop, and pages with what it dropped', async () => {
    let up = true;
    const seen: Alert[] = [];
    const sink: ConfiguredSink = {
      kind: 'webhook',
      sink: {
        name: 'ops',
        deliver: async (alert) => {
          seen.push(alert);
          return up ? { ok: true } : { ok: false, permanent: false, reason: 'ECONNREFUSED' };
        },
      },
      policy: { perMinute: 60_000, burst: 1000, jitterMs: 0, sendResolves: true, keyOf: (a) => a.id },
    };
    const ctx = testContext();
    // Room for ~5.5 records: seven of them must lose two.
    const config = fastConfig({ spool: { maxBytes: 62_000 }, retry: { retries: 0, minDelayMs: 5, maxDelayMs: 20, cooldownMs: 60_000, requestTimeoutMs: 300 } });
    alerter = new SpoolingAlerter({ ctx, config, stateDir: dir, dispatcher, identity: { node: 'node-a', site: 'lab' }, sinks: [sink] });
    await alerter.start();

    // Four critical alerts every sink has (still active: their records stay spooled).
    const delivered = ['d1', 'd2', 'd3', 'd4'].map((node, i) =>
      sampleAlert(node, { id: `lab/${node}/${i === 0 ? 'RestoreFailed' : 'DatapathDamage'}`, cause: i === 0 ? 'RestoreFailed' : 'DatapathDamage', evidence: { pad: PAD } }),
    );
    for (const a of delivered) alerter.raise(a);
    expect(await alerter.settled(5000)).toBe(true);

    // The receiver goes away: d1's resolve and three new info pages wait in the spool.
    up = false;
    alerter.resolve(delivered[0]!.id);
    const waiting = ['u1', 'u2', 'u3'].map((node) => sampleAlert(node, { id: `lab/${node}/ReadyButNoPodNetwork`, severity: 'info', evidence: { pad: PAD } }));
    for (const a of waiting) alerter.raise(a);

    // The overflow page reaches the sink after its own record is spooled and the bound enforced again.
    await expect.poll(() => seen.some((a) => a.cause === 'AlertSpoolOverflow'), { timeout: 5000 }).toBe(true);
    // What went: d1's resolve (the condition is over), then the oldest delivered alert; never a waiting page.
    expect(await metricValue(ctx, 'connwatch_alerts_dropped_total')).toBe(2);
    const active = alerter.activeIds();
    for (const a of waiting) expect(active).toContain(a.id);
    expect(active).toContain('lab/d3/DatapathDamage');
    expect(active).toContain('lab/d4/DatapathDamage');
    expect(active).not.toContain('lab/d2/DatapathDamage');

    // The overflow page names them, with the count and the causes.
    const page = seen.find((a) => a.cause === 'AlertSpoolOverflow')!;
    expect(page.evidence).toMatchObject({
      dropped: 2,
      byCause: { RestoreFailed: 1, DatapathDamage: 1 },
      alerts: [
        { id: 'lab/d1/RestoreFailed', status: 'resolved', severity: 'critical', reason: 'size' },
        { id: 'lab/d2/DatapathDamage', status: 'firing', severity: 'critical', reason: 'size' },
      ],
    });
    // Chat sinks show the timeline, not the evidence: the ids are there too.
    const timeline = page.timeline.map((e) => e.what).join('\n');
    expect(timeline).toMatch(/spooled alert\(s\) dropped: .*lab\/d1\/RestoreFailed/);
    expect(timeline).toMatch(/spooled alert\(s\) dropped: .*lab\/d2\/DatapathDamage/);
  });
});
