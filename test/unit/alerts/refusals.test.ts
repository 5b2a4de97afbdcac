/**
 * Issue 11: a permanent refusal of one alert (a 400 for its payload) abandons that alert at
 * that sink only; the sink keeps getting the other alerts and their re-posts. Refusals about
 * the sink itself (401/403/404/405/407/410, a rejected certificate, a proxy refusing the tunnel)
 * still pause the sink's re-posts until a new alert version gets through.
 */
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent } from 'undici';
import { afterAll, afterEach, beforeEach, describe, expect, it } from 'vitest';
import { SpoolingAlerter } from '../../../src/alerts/alerter.js';
import { sendJson } from '../../../src/alerts/http.js';
import { startReceiver, type Fault, type Receiver } from '../../support/receivers.js';
import { fastConfig, metricValue, sampleAlert, testContext, type TestContext } from './helpers.js';

const dispatcher = new Agent({ connect: { timeout: 500 } });
afterAll(() => dispatcher.close());

let dir: string;
let am: Receiver;
const running: SpoolingAlerter[] = [];
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'connwatch-refusals-'));
  am = await startReceiver('webhook');
});
afterEach(async () => {
  await Promise.all(running.splice(0).map((a) => a.stop()));
  await am.close();
  await rm(dir, { recursive: true, force: true });
});

type Posted = { labels: { node: string } }[];
const postsFor = (node: string) => am.attempts.filter((a) => (a.body as Posted)[0]?.labels.node === node);
const acceptedFor = (node: string) => postsFor(node).filter((a) => a.answered === 200);

async function start(ctx: TestContext): Promise<SpoolingAlerter> {
  const config = fastConfig({
    // Re-posts every 50 ms: what a paused sink would stop doing.
    alertmanager: { urls: [am.origin], jitterMs: 0, perMinute: 60_000, burst: 1000, resendIntervalSeconds: 0.05 },
    retry: { retries: 0, minDelayMs: 5, maxDelayMs: 20, cooldownMs: 50, requestTimeoutMs: 500 },
  });
  const alerter = new SpoolingAlerter({ ctx, config, stateDir: dir, dispatcher, identity: { node: 'node-a', site: 'lab' }, random: () => 0.5 });
  running.push(alerter);
  await alerter.start();
  return alerter;
}

/** The receiver answers `fault` to every post of node-bad's alert, and normally to the rest. */
function refuseNodeBad(fault: Fault): void {
  am.failWhen((body) => ((body as Posted)[0]?.labels.node === 'node-bad' ? fault : undefined));
}

describe('a permanent refusal of one alert (issue 11)', () => {
  it('abandons that alert at that sink only: the other alerts keep being re-posted to it', async () => {
    const ctx = testContext();
    refuseNodeBad({ kind: 'status', status: 400, body: '{"error":"bad label value"}' });
    const alerter = await start(ctx);
    alerter.raise(sampleAlert('node-good', { id: 'ReadyButNoPodNetwork/node-good' }));
    await am.waitFor(() => acceptedFor('node-good').length === 1, 3000);
    alerter.raise(sampleAlert('node-bad', { id: 'ReadyButNoPodNetwork/node-bad' }));
    await am.waitFor(() => postsFor('node-bad').length === 1, 3000);

    // The good alert is still re-posted after the refusal: the sink is not paused.
    const before = acceptedFor('node-good').length;
    await am.waitFor(() => acceptedFor('node-good').length >= before + 3, 5000);
    // The refused one is neither retried nor re-posted: a refusal is never a loop.
    expect(postsFor('node-bad')).toHaveLength(1);
    expect(await metricValue(ctx, 'connwatch_alerts_total', { result: 'permanent' })).toBe(1);
    const status = ctx.statuses.get('alerts') as { sinks: { refusing?: string }[] };
    expect(status.sinks[0]!.refusing).toBeUndefined();
    const line = ctx.lines.find((l) => l.level === 50 && l.alert === 'ReadyButNoPodNetwork/node-bad');
    expect(line).toMatchObject({ scope: 'alert', reason: expect.stringContaining('bad label value') });

    // A new version of the refused alert is tried again.
    alerter.raise(sampleAlert('node-bad', { id: 'ReadyButNoPodNetwork/node-bad', severity: 'warning' }));
    await am.waitFor(() => postsFor('node-bad').length === 2, 3000);
  });

  it('a refusal about the sink (401) still pauses the sink\'s re-posts until a new version gets through', async () => {
    const ctx = testContext();
    refuseNodeBad({ kind: 'status', status: 401, body: 'unauthorized' });
    const alerter = await start(ctx);
    alerter.raise(sampleAlert('node-good', { id: 'ReadyButNoPodNetwork/node-good' }));
    // Generous waits: CI runs this beside the lab tests on two cores.
    await am.waitFor(() => acceptedFor('node-good').length === 1, 10_000);
    alerter.raise(sampleAlert('node-bad', { id: 'ReadyButNoPodNetwork/node-bad' }));
    await am.waitFor(() => postsFor('node-bad').length === 1, 10_000);
    await expect.poll(() => (ctx.statuses.get('alerts') as { sinks: { refusing?: string }[] }).sinks[0]!.refusing, { timeout: 10_000 }).toMatch(/HTTP 401/);
    const paused = am.attempts.length;
    // Several re-post intervals pass with nothing sent; then a new version gets through and re-posts resume.
    await new Promise((r) => setTimeout(r, 300));
    expect(am.attempts).toHaveLength(paused);
    // The credentials are fixed: the next new version gets through and every active alert is re-posted again.
    am.failWhen(undefined);
    alerter.raise(sampleAlert('node-good', { id: 'ReadyButNoPodNetwork/node-good', severity: 'warning' }));
    await am.waitFor(() => acceptedFor('node-good').length >= 4 && acceptedFor('node-bad').length >= 1, 5000);
  });
});

describe('sendJson: the scope of a permanent refusal', () => {
  it.each([
    [400, 'alert'],
    [413, 'alert'],
    [422, 'alert'],
    [401, 'sink'],
    [403, 'sink'],
    [404, 'sink'],
    [410, 'sink'],
  ] as const)('HTTP %i refuses for the %s', async (status, scope) => {
    am.fail({ kind: 'status', status });
    const result = await sendJson({ dispatcher, url: am.url, body: {}, timeoutMs: 500, signal: new AbortController().signal });
    expect(result).toMatchObject({ ok: false, permanent: true, scope });
  });

  it('gives a transient failure no scope', async () => {
    am.fail({ kind: 'status', status: 503 });
    const result = await sendJson({ dispatcher, url: am.url, body: {}, timeoutMs: 500, signal: new AbortController().signal });
    expect(result).toMatchObject({ ok: false, permanent: false });
    expect(result).not.toHaveProperty('scope');
  });
});
