import { createServer } from 'node:net';
import { describe, expect, it } from 'vitest';
import { tcpConnects } from '../../../src/probes/tcp.js';
import { hasNetAdmin } from '../../../src/remediation/capability.js';

describe('tcpConnects (restore verify targets)', () => {
  it('answers ok for a listening port and names the error for a closed one', async () => {
    const server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const { port } = server.address() as { port: number };
    try {
      expect(await tcpConnects(`127.0.0.1:${port}`, 1_000)).toEqual({ ok: true });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
    expect(await tcpConnects(`127.0.0.1:${port}`, 1_000)).toEqual({ ok: false, reason: 'ECONNREFUSED' });
  });

  it('accepts bracketed IPv6 targets', async () => {
    const server = createServer((socket) => socket.end());
    await new Promise<void>((resolve) => server.listen(0, '::1', resolve));
    const { port } = server.address() as { port: number };
    try {
      expect(await tcpConnects(`[::1]:${port}`, 1_000)).toEqual({ ok: true });
    } finally {
      await new Promise((resolve) => server.close(resolve));
    }
  });
});

describe('hasNetAdmin', () => {
  it('reads bit 12 of CapEff', () => {
    expect(hasNetAdmin('Name:\tnode\nCapEff:\t0000000000001000\n')).toEqual({ ok: true });
    expect(hasNetAdmin('CapEff:\t000001ffffffffff\n')).toEqual({ ok: true });
    const without = hasNetAdmin('CapEff:\t0000000000000000\n');
    expect(without.ok).toBe(false);
    expect(without.reason).toContain('AmbientCapabilities=CAP_NET_ADMIN');
  });

  it('says why when CapEff is absent', () => {
    expect(hasNetAdmin('Name:\tnode\n')).toEqual({ ok: false, reason: 'CapEff not found in /proc/self/status' });
  });
});
