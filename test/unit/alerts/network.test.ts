/** Issue 8: proxy choice, permanent network refusals, fleet keys on fallback sinks, replica names. */
import { Agent } from 'undici';
import { afterAll, describe, expect, it } from 'vitest';
import { chooseProxy, readCaBundles, redactProxy } from '../../../src/alerts/dispatcher.js';
import { permanentNetworkError } from '../../../src/alerts/http.js';
import { buildSinks } from '../../../src/alerts/sinks/index.js';
import { alertsConfig } from '../../../src/alerts/config.js';
import { fastConfig } from './helpers.js';

const dispatcher = new Agent();
afterAll(() => dispatcher.close());

describe('chooseProxy', () => {
  it.each([
    ['nothing set: direct', {}, {}, undefined],
    ['HTTPS_PROXY for https, nothing for http', {}, { HTTPS_PROXY: 'http://p:3128' }, { httpsProxy: 'http://p:3128', noProxy: '' }],
    ['lowercase wins, HTTP_PROXY serves https too', {}, { http_proxy: 'http://a:1', HTTP_PROXY: 'http://b:1' }, { httpProxy: 'http://a:1', httpsProxy: 'http://a:1', noProxy: '' }],
    ['NO_PROXY and config noProxy join', { noProxy: ['10.0.0.5'] }, { HTTPS_PROXY: 'http://p:1', NO_PROXY: '.internal' }, { httpsProxy: 'http://p:1', noProxy: '.internal,10.0.0.5' }],
    ['config proxy over env', { proxyUrl: 'http://cfg:8080' }, { HTTPS_PROXY: 'http://env:1' }, { httpProxy: 'http://cfg:8080', httpsProxy: 'http://cfg:8080', noProxy: '' }],
    ['"direct" ignores env', { proxyUrl: 'direct' }, { HTTPS_PROXY: 'http://env:1' }, undefined],
  ])('%s', (_name, opts, env, want) => {
    expect(chooseProxy({ ...opts, env })).toEqual(want);
  });

  it('never shows proxy credentials', () => {
    expect(redactProxy('http://user:s3cret@proxy.example:3128')).toBe('http://proxy.example:3128');
  });
});

describe('permanentNetworkError', () => {
  const coded = (code: string, message = code) => Object.assign(new Error(message), { code });
  it.each([
    ['an untrusted leaf', coded('UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'unable to verify the first certificate'), /TLS certificate rejected \(UNABLE_TO_VERIFY_LEAF_SIGNATURE.*caFile/],
    ['a self-signed receiver', coded('DEPTH_ZERO_SELF_SIGNED_CERT'), /TLS certificate rejected/],
    ['an expired certificate', coded('CERT_HAS_EXPIRED'), /TLS certificate rejected/],
    ['a name mismatch, wrapped as a cause', new Error('fetch failed', { cause: coded('ERR_TLS_CERT_ALTNAME_INVALID') }), /TLS certificate rejected \(ERR_TLS_CERT_ALTNAME_INVALID/],
    ['a proxy wanting credentials', new Error('Proxy response (407) !== 200 when HTTP Tunneling'), /proxy refused the tunnel \(HTTP 407\)/],
    ['a proxy refusing the destination', new Error('Proxy response (403) !== 200 when HTTP Tunneling'), /HTTP 403.*noProxy/],
  ])('%s is permanent', (_name, err, reason) => {
    expect(permanentNetworkError(err)).toMatch(reason);
  });

  it.each([
    ['connection refused', coded('ECONNREFUSED')],
    ['a reset', coded('ECONNRESET')],
    ['a name that does not resolve', coded('ENOTFOUND')],
    ['a proxy with a bad gateway', new Error('Proxy response (502) !== 200 when HTTP Tunneling')],
    ['a connect timeout', coded('UND_ERR_CONNECT_TIMEOUT')],
  ])('%s stays transient', (_name, err) => {
    expect(permanentNetworkError(err)).toBeUndefined();
  });
});

describe('CA bundles', () => {
  it('refuses a file that is not PEM, naming it', () => {
    expect(() => readCaBundles(['/etc/hostname'])).toThrow(/\/etc\/hostname holds no PEM certificate/);
  });
});

describe('sinks for a fleet', () => {
  const alert = { id: 'ReadyButNoPodNetwork/node-7', cause: 'ReadyButNoPodNetwork', node: 'node-7', site: 'eu-1', severity: 'critical' } as const;

  it('a fallback sink uses the fleet key unless given its own; an "always" sink the root key', () => {
    const config = fastConfig({
      pagerduty: { routingKey: 'rk', when: 'fallback' },
      slack: { webhookUrl: 'https://hooks.slack.invalid/x', when: 'fallback', dedupKey: '{{site}}/{{node}}' },
      webhooks: [{ name: 'ops', url: 'https://ops.invalid/hook' }],
      alertmanager: { urls: ['http://10.0.0.5:9093'] },
    });
    const keys = Object.fromEntries(
      buildSinks(config, dispatcher)
        .filter((s) => s.kind !== 'alertmanager')
        .map((s) => [s.sink.name, s.policy.keyOf(alert as never)]),
    );
    expect(keys).toEqual({ pagerduty: 'eu-1/ReadyButNoPodNetwork', slack: 'eu-1/node-7', ops: 'eu-1/node-7/ReadyButNoPodNetwork' });
  });

  it('refuses a fallback sink without Alertmanagers to fall back from, naming the key', () => {
    expect(() => fastConfig({ pagerduty: { routingKey: 'rk', when: 'fallback' } })).toThrow(/alertmanager\.urls/);
  });

  it('names each Alertmanager replica apart, even behind one host', () => {
    const config = fastConfig({ alertmanager: { urls: ['http://10.0.0.5:9093', 'http://10.0.0.6:9093', 'https://am.example/a/', 'https://am.example/b'] } });
    expect(buildSinks(config, dispatcher).map((s) => s.sink.name)).toEqual([
      'alertmanager:10.0.0.5:9093',
      'alertmanager:10.0.0.6:9093',
      'alertmanager:am.example/a',
      'alertmanager:am.example/b',
    ]);
  });

  it('gives each sink the dispatcher for its own CA file', () => {
    const asked: string[] = [];
    const config = fastConfig({ alertmanager: { urls: ['http://10.0.0.5:9093'], caFile: '/etc/ca/am.pem' }, pagerduty: { routingKey: 'rk' } });
    buildSinks(config, (caFile) => (asked.push(caFile), dispatcher));
    expect(asked).toEqual(['/etc/ca/am.pem', '']);
  });

  it('refuses a proxy that is not a URL, saying what is accepted', () => {
    const result = alertsConfig.safeParse({ network: { proxy: 'proxy:3128' } });
    expect(result.success).toBe(false);
    expect(result.error?.issues[0]).toMatchObject({ path: ['network', 'proxy'], message: expect.stringContaining('"direct"') });
  });
});
