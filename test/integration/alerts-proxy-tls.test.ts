/**
 * Issue 8: alerts leave through an HTTPS proxy (CONNECT, from HTTPS_PROXY or config, NO_PROXY
 * honoured) to a receiver behind a private CA given per sink; a wrong CA or a proxy that wants
 * credentials is a permanent failure, reported clearly once and never retried in a loop.
 * Certificates are made by the openssl CLI in a temp dir.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { AlertNetwork } from '../../src/alerts/dispatcher.js';
import { createAlerts, type AlertsBox } from '../../src/alerts/index.js';
import { startConnectProxy, type ConnectProxy } from '../support/connect-proxy.js';
import { startReceiver, type Receiver } from '../support/receivers.js';
import { fastConfig, metricValue, sampleAlert, testContext, type TestContext } from '../unit/alerts/helpers.js';

const OPENSSL = '/usr/bin/openssl';
const present = existsSync(OPENSSL);
if (!present) console.warn(`skipping proxy/CA tests: ${OPENSSL} is not installed (apt-get install openssl)`);

/** A CA and a leaf for 127.0.0.1 signed by it; a second, unrelated CA. */
async function makeCertificates(dir: string): Promise<{ caFile: string; otherCaFile: string; key: string; cert: string }> {
  const run = (...args: string[]) => execFileSync(OPENSSL, args, { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  const ec = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];
  run('req', '-x509', ...ec, '-keyout', 'ca.key', '-out', 'ca.pem', '-days', '2', '-subj', '/CN=connwatch test CA');
  run('req', '-x509', ...ec, '-keyout', 'other.key', '-out', 'other.pem', '-days', '2', '-subj', '/CN=some other CA');
  run('req', ...ec, '-keyout', 'leaf.key', '-out', 'leaf.csr', '-subj', '/CN=receiver.lab.test');
  await writeFile(join(dir, 'leaf.ext'), 'subjectAltName=IP:127.0.0.1,DNS:receiver.lab.test\nextendedKeyUsage=serverAuth\n');
  run('x509', '-req', '-in', 'leaf.csr', '-CA', 'ca.pem', '-CAkey', 'ca.key', '-CAcreateserial', '-out', 'leaf.pem', '-days', '2', '-extfile', 'leaf.ext');
  return { caFile: join(dir, 'ca.pem'), otherCaFile: join(dir, 'other.pem'), key: await readFile(join(dir, 'leaf.key'), 'utf8'), cert: await readFile(join(dir, 'leaf.pem'), 'utf8') };
}

describe.skipIf(!present)('alerts through an HTTPS proxy with a private CA', () => {
  let dir: string;
  let certs: Awaited<ReturnType<typeof makeCertificates>>;
  let receiver: Receiver;
  let proxy: ConnectProxy;
  let box: AlertsBox | undefined;
  const networks: AlertNetwork[] = [];

  beforeAll(async () => {
    dir = await mkdtemp(join(tmpdir(), 'connwatch-tls-'));
    certs = await makeCertificates(dir);
    receiver = await startReceiver('webhook', { tls: { key: certs.key, cert: certs.cert } });
    proxy = await startConnectProxy();
  });
  afterEach(async () => {
    await box?.stop();
    box = undefined;
  });
  afterAll(async () => {
    await Promise.all(networks.map((n) => n.close()));
    await receiver?.close();
    await proxy?.close();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  async function startBox(ctx: TestContext, state: string, sink: Record<string, unknown>, networkConfig: Record<string, unknown>, env: NodeJS.ProcessEnv) {
    const config = fastConfig({
      webhooks: [{ name: 'ops', url: `${receiver.origin}/hook/T0KEN`, jitterMs: 0, ...sink }],
      network: { resolverCache: false, ...networkConfig },
    });
    const stateDir = join(dir, state);
    const network = new AlertNetwork({ config, stateDir, ctx, env });
    networks.push(network);
    const made = createAlerts({
      ctx,
      config,
      stateDir,
      identity: { node: 'node-a', site: 'lab' },
      network,
    });
    box = made;
    await made.start();
    return made;
  }

  it('delivers through the CONNECT proxy named by HTTPS_PROXY, trusting the sink\'s CA bundle', async () => {
    const ctx = testContext();
    const before = { tunnels: proxy.tunnels.length, accepted: receiver.accepted().length };
    const alerts = await startBox(ctx, 'env-proxy', { caFile: certs.caFile }, {}, { HTTPS_PROXY: proxy.url });
    alerts.alerter.raise(sampleAlert('node-a'));
    expect(await alerts.alerter.settled(5000)).toBe(true);
    expect(receiver.accepted().length).toBe(before.accepted + 1);
    expect(proxy.tunnels.slice(before.tunnels)).toEqual([{ target: new URL(receiver.origin).host, answered: 200 }]);
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'ops', result: 'delivered' })).toBe(1);
    expect(ctx.statuses.get('alerts')).toMatchObject({ network: { proxy: { https: proxy.url } } });
  });

  it('goes direct for a NO_PROXY host, and uses a proxy from config over the environment', async () => {
    const ctx = testContext();
    const before = proxy.tunnels.length;
    const direct = await startBox(ctx, 'no-proxy', { caFile: certs.caFile }, { noProxy: ['127.0.0.1'] }, { HTTPS_PROXY: proxy.url });
    direct.alerter.raise(sampleAlert('node-a'));
    expect(await direct.alerter.settled(5000)).toBe(true);
    expect(proxy.tunnels.length).toBe(before);
    await direct.stop();

    const configured = await startBox(testContext(), 'config-proxy', { caFile: certs.caFile }, { proxy: proxy.url }, { HTTPS_PROXY: 'http://127.0.0.1:9' });
    configured.alerter.raise(sampleAlert('node-a'));
    expect(await configured.alerter.settled(5000)).toBe(true);
    expect(proxy.tunnels.length).toBe(before + 1);
  });

  it('fails permanently, once, with a clear reason when the CA is wrong (no retries)', async () => {
    const ctx = testContext();
    const seen = receiver.attempts.length;
    const alerts = await startBox(ctx, 'wrong-ca', { caFile: certs.otherCaFile }, {}, { HTTPS_PROXY: proxy.url });
    alerts.alerter.raise(sampleAlert('node-a'));
    expect(await alerts.alerter.settled(5000)).toBe(true);
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'ops', result: 'permanent' })).toBe(1);
    expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'ops', result: 'retry' })).toBe(0);
    expect(receiver.attempts.length).toBe(seen); // the handshake failed: no request reached it
    const errors = ctx.lines.filter((l) => l.level === 50 && l.sink === 'ops');
    expect(errors).toHaveLength(1);
    expect(String(errors[0]!.reason)).toMatch(/^TLS certificate rejected \((UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY)[^)]*\).*caFile/);
    expect(ctx.rawLog.join('\n')).not.toContain('T0KEN');
    const sinks = (ctx.statuses.get('alerts') as { sinks: { sink: string; refusing?: string }[] }).sinks;
    expect(sinks.find((s) => s.sink === 'ops')?.refusing).toMatch(/TLS certificate rejected/);
  });

  it('is permanent when the proxy wants credentials, and works with them in the proxy URL', async () => {
    const authed = await startConnectProxy({ credentials: { user: 'alerts', pass: 's3cret' } });
    try {
      const ctx = testContext();
      const alerts = await startBox(ctx, 'proxy-407', { caFile: certs.caFile }, { proxy: authed.url }, {});
      alerts.alerter.raise(sampleAlert('node-a'));
      expect(await alerts.alerter.settled(5000)).toBe(true);
      expect(authed.tunnels.map((t) => t.answered)).toEqual([407]);
      expect(await metricValue(ctx, 'connwatch_alerts_total', { sink: 'ops', result: 'permanent' })).toBe(1);
      expect(String(ctx.lines.find((l) => l.level === 50)?.reason)).toContain('proxy refused the tunnel (HTTP 407)');
      await alerts.stop();

      const withCredentials = authed.url.replace('http://', 'http://alerts:s3cret@');
      const ok = await startBox(testContext(), 'proxy-auth', { caFile: certs.caFile }, { proxy: withCredentials }, {});
      ok.alerter.raise(sampleAlert('node-a'));
      expect(await ok.alerter.settled(5000)).toBe(true);
      expect(authed.tunnels.at(-1)?.answered).toBe(200);
    } finally {
      await authed.close();
    }
  });

  it('refuses to start with an unreadable CA bundle, naming the file', () => {
    const config = fastConfig({ webhooks: [{ name: 'ops', url: `${receiver.origin}/hook`, caFile: join(dir, 'missing.pem') }] });
    expect(() => createAlerts({ ctx: testContext(), config, stateDir: join(dir, 'missing'), identity: { node: 'n', site: 's' } })).toThrow(/missing\.pem: ENOENT/);
  });
});
