import { connect } from 'node:net';
import type { Probe } from '../types.js';
import { parseHostPort } from '../common/hostport.js';

/** Whether a TCP connection to host:port opens within the timeout (a restore's verify target). */
export function tcpConnects(target: string, timeoutMs: number): Promise<{ ok: true } | { ok: false; reason: string }> {
  const parsed = parseHostPort(target);
  if (!parsed.ok) return Promise.resolve({ ok: false, reason: parsed.reason });
  const { host, port } = parsed.value;
  return new Promise((resolve) => {
    const socket = connect({ host, port });
    const done = (result: { ok: true } | { ok: false; reason: string }) => {
      clearTimeout(timer);
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => done({ ok: false, reason: `no connection within ${timeoutMs} ms` }), timeoutMs);
    socket.once('connect', () => done({ ok: true }));
    socket.once('error', (err: NodeJS.ErrnoException) => done({ ok: false, reason: err.code ?? err.message }));
  });
}

/** A host-network TCP target (e.g. the API server's address): a connection that opens answers. */
export function tcpProbe(target: string, timeoutMs: number): Probe {
  return {
    kind: 'tcp',
    target,
    async run() {
      const started = performance.now();
      const result = await tcpConnects(target, timeoutMs);
      const latencyMs = performance.now() - started;
      if (result.ok) return { ok: true, latencyMs };
      return { ok: false, code: tcpCode(result.reason), reason: result.reason, latencyMs };
    },
  };
}

function tcpCode(reason: string): string {
  if (reason.startsWith('no connection within')) return 'timeout';
  if (reason === 'ECONNREFUSED') return 'refused';
  if (reason === 'ECONNRESET') return 'reset';
  if (/^E(HOST|NET)UNREACH$|^EINVAL$|^EADDRNOTAVAIL$/.test(reason)) return 'unreachable';
  return 'error';
}
