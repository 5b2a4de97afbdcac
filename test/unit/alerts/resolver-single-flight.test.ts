/**
 * Issue 11: concurrent lookups of one receiver name share one resolver query — N deliveries
 * connecting to the same host at once make one call to the host resolver, not N.
 */
import type { LookupAddress } from 'node:dns';
import { mkdtemp, rm } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { AlertNetwork } from '../../../src/alerts/dispatcher.js';
import { createAlerts } from '../../../src/alerts/index.js';
import { ResolverCache, type ResolveName } from '../../../src/alerts/resolver.js';
import { ManualClock } from '../../support/clock.js';
import { fastConfig, sampleAlert, testContext } from './helpers.js';

/** A resolver that answers only when the test lets it, counting the queries it gets. */
function gatedResolver(address: string) {
  const state = { calls: 0, open: () => {} };
  let gate = new Promise<void>((r) => (state.open = r));
  const resolve: ResolveName = async () => {
    state.calls += 1;
    await gate;
    return [{ address, family: 4 } satisfies LookupAddress];
  };
  const reset = () => {
    gate = new Promise<void>((r) => (state.open = r));
  };
  return { state, resolve, reset };
}

let dir: string;
beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'connwatch-dns-flight-'));
});
afterEach(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('ResolverCache: one query per name in flight (issue 11)', () => {
  it('gives N concurrent lookups of one name one resolver call, and asks again once it has answered', async () => {
    const { state, resolve, reset } = gatedResolver('10.0.0.5');
    const ctx = testContext();
    const cache = new ResolverCache({ file: join(dir, 'alert-dns.json'), clock: new ManualClock(), log: ctx.log, resolve, timeoutMs: 2000 });
    const answers = Promise.all(Array.from({ length: 5 }, () => cache.resolve('am.example')));
    const other = cache.resolve('other.example');
    await expect.poll(() => state.calls).toBe(2); // one per name
    state.open();
    for (const answer of await answers) expect(answer).toEqual({ ok: true, addresses: [{ address: '10.0.0.5', family: 4 }], source: 'dns' });
    expect((await other).ok).toBe(true);
    expect(state.calls).toBe(2);

    // Shared only while in flight: a later lookup is a new query (fresh addresses, not a cache).
    reset();
    const later = cache.resolve('am.example');
    await expect.poll(() => state.calls).toBe(3);
    state.open();
    expect(await later).toMatchObject({ ok: true, source: 'dns' });
    await cache.flushed();
  });

  it('does not share a query that has hung past the timeout: the next lookup asks again', async () => {
    const { state, resolve } = gatedResolver('10.0.0.5');
    const clock = new ManualClock();
    const cache = new ResolverCache({ file: join(dir, 'alert-dns.json'), clock, log: testContext().log, resolve, timeoutMs: 2000 });
    void cache.resolve('am.example');
    await expect.poll(() => state.calls).toBe(1);
    clock.advance(2000);
    void cache.resolve('am.example');
    await expect.poll(() => state.calls).toBe(2);
    state.open();
    await cache.flushed();
  });
});

describe('alert deliveries to one receiver host (issue 11)', () => {
  let server: Server;
  let port: number;
  const paths: string[] = [];
  beforeEach(async () => {
    server = createServer((req, res) => {
      paths.push(req.url ?? '');
      req.resume();
      req.on('end', () => res.end('{}'));
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    port = (server.address() as AddressInfo).port;
  });
  afterEach(async () => {
    paths.length = 0;
    await new Promise<void>((r) => server.close(() => r()));
  });

  it('N simultaneous deliveries to the same host make one resolver call', async () => {
    const N = 4;
    const { state, resolve } = gatedResolver('127.0.0.1');
    const ctx = testContext();
    const config = fastConfig({
      network: { proxy: 'direct' },
      webhooks: Array.from({ length: N }, (_v, i) => ({ name: `hook-${i}`, url: `http://receiver.lab.invalid:${port}/hook-${i}`, jitterMs: 0 })),
    });
    const network = new AlertNetwork({ config, stateDir: dir, ctx, resolve });
    const lookups = vi.spyOn(network.resolver!, 'resolve');
    const box = createAlerts({ ctx, config, stateDir: dir, network, identity: { node: 'node-a', site: 'lab' } });
    await box.start();
    try {
      box.alerter.raise(sampleAlert());
      // Every sink's connection is waiting for the name at once…
      await expect.poll(() => lookups.mock.calls.length, { timeout: 5000 }).toBe(N);
      state.open();
      expect(await box.alerter.settled(5000)).toBe(true);
      // …and the host resolver was asked once.
      expect(state.calls).toBe(1);
      expect(paths.sort()).toEqual(Array.from({ length: N }, (_v, i) => `/hook-${i}`));
    } finally {
      await box.stop();
    }
  });
});
