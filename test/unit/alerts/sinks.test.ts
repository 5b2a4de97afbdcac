import { Agent } from 'undici';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { Secret } from '../../../src/common/secret.js';
import { parseRetryAfter } from '../../../src/alerts/http.js';
import { alertmanagerSink, pagerDutySink, slackSink, toPostableAlert, webhookSink } from '../../../src/alerts/sinks/index.js';
import type { Alert } from '../../../src/types.js';
import { startReceiver, type Receiver } from '../../support/receivers.js';
import { sampleAlert } from './helpers.js';

const dispatcher = new Agent({ connect: { timeout: 1000 } });
afterAll(() => dispatcher.close());

const firing: Alert = { ...sampleAlert('node-a'), status: 'firing', createdAt: Date.now() };
const resolved: Alert = { ...firing, status: 'resolved', endsAt: Date.now(), createdAt: Date.now() + 1 };
const key = () => 'lab/node-a/ReadyButNoPodNetwork';
const signal = new AbortController().signal;
const ROUTING_KEY = 'PDROUTINGKEY0123456789abcdef0123';

describe('PagerDuty sink', () => {
  let pd: Receiver;
  beforeAll(async () => {
    pd = await startReceiver('pagerduty');
  });
  afterAll(() => pd.close());
  const sink = () => pagerDutySink({ url: pd.url, routingKey: new Secret(ROUTING_KEY), dispatcher, dedupKey: key, runbookUrl: 'https://rb', timeoutMs: 300 });

  it('sends a documented trigger and resolve, accepted with 202', async () => {
    expect(await sink().deliver(firing, signal)).toMatchObject({ ok: true });
    expect(await sink().deliver(resolved, signal)).toMatchObject({ ok: true });
    const [trigger, resolve] = pd.accepted().slice(-2).map((a) => a.body as Record<string, any>);
    expect(trigger).toMatchObject({
      routing_key: ROUTING_KEY,
      event_action: 'trigger',
      dedup_key: key(),
      payload: { source: 'node-a', severity: 'critical', class: 'ReadyButNoPodNetwork', group: 'lab', custom_details: { node: 'node-a', site: 'lab' } },
    });
    expect(resolve).toEqual({ routing_key: ROUTING_KEY, dedup_key: key(), event_action: 'resolve' });
  });

  it('classifies 400 as permanent with the body, 429 and 500 as transient, and scrubs the routing key', async () => {
    pd.fail({ kind: 'status', status: 400, body: `{"status":"invalid event","errors":["bad ${ROUTING_KEY}"]}` });
    const refused = await sink().deliver(firing, signal);
    expect(refused).toMatchObject({ ok: false, permanent: true });
    expect(!refused.ok && refused.reason).toContain('invalid event');
    expect(!refused.ok && refused.reason).not.toContain(ROUTING_KEY);

    pd.fail({ kind: 'status', status: 429, retryAfter: '7' }, { kind: 'status', status: 503 });
    expect(await sink().deliver(firing, signal)).toMatchObject({ ok: false, permanent: false, retryAfterMs: 7000 });
    expect(await sink().deliver(firing, signal)).toMatchObject({ ok: false, permanent: false });
  });

  it('treats timeouts and connection resets as transient', async () => {
    pd.fail({ kind: 'timeout' }, { kind: 'reset' });
    const timedOut = await sink().deliver(firing, signal);
    expect(timedOut).toMatchObject({ ok: false, permanent: false });
    expect(!timedOut.ok && timedOut.reason).toMatch(/timed out after 300 ms/);
    expect(await sink().deliver(firing, signal)).toMatchObject({ ok: false, permanent: false });
  });

  it('the receiver itself refuses malformed events (so shape tests can fail)', async () => {
    const bad = pagerDutySink({ url: pd.url, routingKey: new Secret(ROUTING_KEY), dispatcher, dedupKey: () => 'x'.repeat(300), runbookUrl: 'r', timeoutMs: 300 });
    expect(await bad.deliver(firing, signal)).toMatchObject({ ok: false, permanent: true });
  });
});

describe('Slack and webhook sinks', () => {
  let slack: Receiver;
  let hook: Receiver;
  beforeAll(async () => {
    slack = await startReceiver('slack');
    hook = await startReceiver('webhook');
  });
  afterAll(async () => {
    await slack.close();
    await hook.close();
  });
  afterEach(() => slack.failWhen(undefined));

  it('posts Slack {text, blocks} and treats 404 no_service as permanent without leaking the URL', async () => {
    const ok = slackSink({ webhookUrl: new Secret(slack.url), dispatcher, dedupKey: key, runbookUrl: 'https://rb', timeoutMs: 300 });
    expect(await ok.deliver(firing, signal)).toMatchObject({ ok: true });
    const body = slack.accepted().at(-1)!.body as { text: string; blocks: unknown[] };
    expect(body.text).toContain('[FIRING] critical ReadyButNoPodNetwork on node-a (lab)');
    expect(JSON.stringify(body.blocks)).toContain(key());
    const wrong = slackSink({ webhookUrl: new Secret(`${slack.origin}/services/T/B/WRONGTOKEN`), dispatcher, dedupKey: key, runbookUrl: 'r', timeoutMs: 300 });
    const result = await wrong.deliver(firing, signal);
    expect(result).toMatchObject({ ok: false, permanent: true });
    expect(!result.ok && result.reason).toContain('no_service');
    expect(!result.ok && result.reason).not.toContain('WRONGTOKEN');
  });

  it('posts the generic webhook JSON with its secret headers', async () => {
    const sink = webhookSink({ name: 'ops', url: new Secret(hook.url), headers: { authorization: new Secret('Bearer T0KEN') }, dispatcher, dedupKey: key, runbookUrl: 'https://rb', timeoutMs: 300 });
    expect(await sink.deliver(resolved, signal)).toMatchObject({ ok: true });
    const got = hook.accepted().at(-1)!;
    expect(got.headers.authorization).toBe('Bearer T0KEN');
    expect(got.body).toMatchObject({ version: 1, dedupKey: key(), alert: { id: firing.id, status: 'resolved', node: 'node-a' } });
  });
});

describe('Alertmanager rendering', () => {
  const opts = { siteLabel: 'cluster', labels: { team: 'net' }, generatorUrl: 'http://node-a:9820/status', runbookUrl: 'https://rb' };

  it('puts identity in labels and prose in string annotations; firing has no endsAt', () => {
    const body = toPostableAlert(firing, opts);
    expect(body.labels).toEqual({ team: 'net', alertname: 'ReadyButNoPodNetwork', cluster: 'lab', node: 'node-a', cause: 'ReadyButNoPodNetwork', severity: 'critical' });
    expect(Object.keys(body.annotations).sort()).toEqual(['evidence', 'runbook_url', 'summary', 'timeline']);
    for (const v of Object.values(body.annotations)) expect(typeof v).toBe('string');
    expect(body.startsAt).toBe(new Date(firing.startsAt).toISOString());
    expect(body.endsAt).toBeUndefined();
    expect(body.generatorURL).toBe(opts.generatorUrl);
  });

  it('resolves with endsAt', () => {
    expect(toPostableAlert(resolved, opts).endsAt).toBe(new Date(resolved.endsAt!).toISOString());
  });

  it('names the sink after the replica, reports unreachable replicas as transient', async () => {
    const sink = alertmanagerSink({ baseUrl: 'http://127.0.0.1:9', dispatcher, timeoutMs: 300, ...opts });
    expect(sink.name).toBe('alertmanager:127.0.0.1:9');
    const result = await sink.deliver(firing, signal);
    expect(result).toMatchObject({ ok: false, permanent: false });
    expect(!result.ok && result.reason).toMatch(/ECONNREFUSED.*host network/);
  });
});

describe('parseRetryAfter', () => {
  it.each([
    ['5', 5000],
    [' 0 ', 0],
    ['Wed, 25 Nov 2026 15:00:10 GMT', 10_000],
    ['soon', undefined],
    [undefined, undefined],
  ])('%s → %s', (value, ms) => {
    expect(parseRetryAfter(value, Date.parse('Wed, 25 Nov 2026 15:00:00 GMT'))).toBe(ms);
  });
});
