import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { beaconOptions, createBeacon } from '../../../src/beacon/index.js';

describe('connwatch beacon (issue 13)', () => {
  const servers: ReturnType<typeof createBeacon>[] = [];
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  });

  async function start(): Promise<string> {
    const server = createBeacon({ node: 'node-a', podIp: '10.0.1.7' });
    servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
    return `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  }

  it('answers GET /ping with its node and pod address', async () => {
    const base = await start();
    const res = await fetch(`${base}/ping`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ node: 'node-a', podIP: '10.0.1.7' });
    expect((await fetch(`${base}/ping?node=node-a`)).status).toBe(200);
  });

  it('refuses to answer for a node it is not on', async () => {
    const base = await start();
    const res = await fetch(`${base}/ping?node=node-b`);
    expect(res.status).toBe(409);
    expect(await res.json()).toMatchObject({ error: 'this beacon runs on node node-a, not node-b', node: 'node-a' });
  });

  it('has no other route', async () => {
    const base = await start();
    expect((await fetch(`${base}/`)).status).toBe(404);
    expect((await fetch(`${base}/ping`, { method: 'POST' })).status).toBe(404);
  });

  it('takes the node from --node or NODE_NAME, never the host name, and checks --listen', () => {
    expect(beaconOptions({}, {})).toMatchObject({ ok: false });
    expect(beaconOptions({}, { NODE_NAME: 'n1', POD_IP: '10.0.0.9' })).toEqual({ ok: true, value: { node: 'n1', podIp: '10.0.0.9', listen: '[::]:4241' } });
    expect(beaconOptions({ node: 'n2', listen: '0.0.0.0:99999' }, {})).toMatchObject({ ok: false, reason: expect.stringContaining('--listen') });
  });
});
