import { connect } from 'node:net';
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
