/**
 * Issue 8: receiver names resolve with the host resolver, and when it fails (or hangs) the
 * last-known-good addresses kept in the state directory are used, with their age shown.
 */
import type { LookupAddress } from 'node:dns';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { AlertNetwork, createAlertDispatcher } from '../../../src/alerts/dispatcher.js';
import { ResolverCache, type ResolveName } from '../../../src/alerts/resolver.js';
import { ManualClock } from '../../support/clock.js';
import { fastConfig, testContext } from './helpers.js';

/** A resolver the test switches between answering, failing and hanging. */
function switchableResolver(addresses: Record<string, LookupAddress[]>) {
  const state = { mode: 'answer' as 'answer' | 'fail' | 'hang', calls: 0 };
  const resolve: ResolveName = async (host) => {
    state.calls += 1;
    if (state.mode === 'fail') throw Object.assign(new Error(`getaddrinfo EAI_AGAIN ${host}`), { code: 'EAI_AGAIN' });
    if (state.mode === 'hang') return new Promise<never>(() => undefined);
    const found = addresses[host];
    if (!found) throw Object.assign(new Error(`getaddrinfo ENOTFOUND ${host}`), { code: 'ENOTFOUND' });
    return found;
  };
  return { state, resolve };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'connwatch-dns-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ResolverCache', () => {
  const am = [{ address: '10.0.0.5', family: 4 }];

  function cache(resolve: ResolveName, clock = new ManualClock(), timeoutMs = 50) {
    const ctx = testContext();
    const file = join(dir, 'alert-dns.json');
    return { ctx, file, clock, cache: new ResolverCache({ file, clock, log: ctx.log, resolve, timeoutMs }) };
  }

  it('records a successful resolution atomically (0600) and uses it, with its age, when the resolver fails', async () => {
    const { state, resolve } = switchableResolver({ 'am.example': am });
    const { ctx, file, clock, cache: c } = cache(resolve);
    expect(await c.resolve('am.example')).toEqual({ ok: true, addresses: am, source: 'dns' });
    await c.flushed();
    expect((await stat(file)).mode & 0o777).toBe(0o600);
    expect(JSON.parse(await readFile(file, 'utf8'))).toMatchObject({ format: 1, names: { 'am.example': { addresses: am, resolvedAt: clock.now() } } });

    clock.advance(90_000);
    state.mode = 'fail';
    expect(await c.resolve('am.example')).toEqual({ ok: true, addresses: am, source: 'cache' });
    expect(c.snapshot()).toEqual([
      { host: 'am.example', addresses: ['10.0.0.5'], resolvedAt: new Date(clock.now() - 90_000).toISOString(), ageSeconds: 90, source: 'cache', lastError: expect.stringContaining('EAI_AGAIN') },
    ]);
    const warn = ctx.lines.find((l) => String(l.msg).includes('last-known-good'));
    expect(warn).toMatchObject({ host: 'am.example', ageSeconds: 90, addresses: ['10.0.0.5'] });
    // Logged once per failure reason, not per connection.
    await c.resolve('am.example');
    expect(ctx.lines.filter((l) => String(l.msg).includes('last-known-good'))).toHaveLength(1);
  });

  it('survives a restart: a new cache reads the file and falls back to it', async () => {
    const { state, resolve } = switchableResolver({ 'am.example': am });
    const first = cache(resolve);
    await first.cache.resolve('am.example');
    await first.cache.flushed();
    state.mode = 'fail';
    const second = new ResolverCache({ file: first.file, clock: first.clock, log: first.ctx.log, resolve, timeoutMs: 50 });
    await second.load();
    expect(await second.resolve('am.example')).toMatchObject({ ok: true, source: 'cache' });
  });

  it('does not wait for a hanging resolver when a cached address exists; waits when none does', async () => {
    const { state, resolve } = switchableResolver({ 'am.example': am });
    const { cache: c } = cache(resolve, new ManualClock(), 30);
    await c.resolve('am.example');
    state.mode = 'hang';
    expect(await c.resolve('am.example')).toMatchObject({ ok: true, source: 'cache' });
    expect(c.snapshot()[0]!.lastError).toContain('did not answer within 30 ms');
    // An unknown name has no fallback: the hang is the connect timeout's business.
    const pending = c.resolve('other.example');
    const raced = await Promise.race([pending.then(() => 'answered'), new Promise((r) => setTimeout(() => r('still waiting'), 100))]);
    expect(raced).toBe('still waiting');
  });

  it('reports a name that never resolved with a hint, and picks up a changed address', async () => {
    const addresses: Record<string, LookupAddress[]> = { 'am.example': am };
    const { resolve } = switchableResolver(addresses);
    const { cache: c, file } = cache(resolve);
    const missing = await c.resolve('nowhere.example');
    expect(missing.ok).toBe(false);
    expect(!missing.ok && missing.reason).toMatch(/no last-known-good address.*\/etc\/hosts/);
    await c.resolve('am.example');
    addresses['am.example'] = [{ address: '10.0.0.6', family: 4 }];
    await c.resolve('am.example');
    await c.flushed();
    expect(JSON.parse(await readFile(file, 'utf8')).names['am.example'].addresses).toEqual([{ address: '10.0.0.6', family: 4 }]);
  });

  it('treats an unreadable cache file as empty and rewrites it', async () => {
    const { resolve } = switchableResolver({ 'am.example': am });
    const { cache: c, file, ctx } = cache(resolve);
    await writeFile(file, '{ half');
    await c.load();
    expect(ctx.lines.some((l) => String(l.msg).includes('alert DNS cache unreadable'))).toBe(true);
    await c.resolve('am.example');
    await c.flushed();
    expect(JSON.parse(await readFile(file, 'utf8')).format).toBe(1);
  });
});

describe('the alert dispatcher with the resolver cache', () => {
  let server: Server;
  let port: number;
  let hits = 0;
  beforeEach(async () => {
    server = createServer((_req, res) => {
      hits += 1;
      res.end('ok');
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('connects by name through the cache, and still connects when the resolver breaks', async () => {
    const { state, resolve } = switchableResolver({ 'alertmanager.lab.invalid': [{ address: '127.0.0.1', family: 4 }] });
    const ctx = testContext();
    const network = new AlertNetwork({ config: fastConfig({ network: { proxy: 'direct', resolverTimeoutMs: 50 } }), stateDir: dir, ctx, resolve });
    await network.start();
    const url = `http://alertmanager.lab.invalid:${port}/`;
    // A fresh dispatcher per request, so each one connects (and resolves) anew.
    const get = async () => {
      const d = createAlertDispatcher({ proxyUrl: 'direct', ...(network.resolver ? { lookup: network.resolver.lookup } : {}) });
      try {
        const res = await request(url, { dispatcher: d });
        return res.body.text();
      } finally {
        await d.close();
      }
    };
    expect(await get()).toBe('ok');
    state.mode = 'fail';
    expect(await get()).toBe('ok');
    expect(hits).toBe(2);
    expect(network.snapshot()).toMatchObject({ proxy: 'direct', names: [{ host: 'alertmanager.lab.invalid', source: 'cache', addresses: ['127.0.0.1'] }] });
    await network.close();
  });
});
