import { request } from 'node:http';
import { parseHostPort } from '../common/hostport.js';
import type { Probe, ProbeKind, ProbeResult } from '../types.js';

/** The largest answer a health endpoint or beacon may give (its body is not needed, only that it came). */
const MAX_BODY_BYTES = 64 * 1024;

/** Short, bounded labels for what went wrong (connwatch_probe_failures_total{reason}). */
function codeOf(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'ECONNREFUSED':
      return 'refused';
    case 'ECONNRESET':
    case 'EPIPE':
      return 'reset';
    case 'EHOSTUNREACH':
    case 'ENETUNREACH':
    case 'EINVAL':
    case 'EADDRNOTAVAIL':
      return 'unreachable';
    default:
      return 'error';
  }
}

/**
 * A GET over a fresh connection (no keep-alive: each probe tests the path from the first packet),
 * with one hard deadline from connect to last byte. 200 answers; anything else fails with a reason.
 */
export function httpGet(target: string, path: string, timeoutMs: number, signal: AbortSignal): Promise<ProbeResult> {
  const parsed = parseHostPort(target);
  if (!parsed.ok) return Promise.resolve({ ok: false, code: 'config', reason: parsed.reason });
  const { host, port } = parsed.value;
  const started = performance.now();
  return new Promise((resolve) => {
    let settled = false;
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
      req.destroy();
      resolve(result);
    };
    const fail = (code: string, reason: string): void => finish({ ok: false, code, reason, latencyMs: performance.now() - started });
    const req = request({ host, port, path, method: 'GET', agent: false, headers: { connection: 'close' } }, (res) => {
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) fail('too-large', `answer larger than ${MAX_BODY_BYTES} bytes`);
      });
      res.on('end', () => {
        if (res.statusCode === 200) finish({ ok: true, latencyMs: performance.now() - started });
        else fail('http-status', `HTTP ${res.statusCode ?? '?'}`);
      });
      res.on('error', (err: NodeJS.ErrnoException) => fail(codeOf(err), err.code ?? err.message));
    });
    req.on('error', (err: NodeJS.ErrnoException) => fail(codeOf(err), err.code ?? err.message));
    const timer = setTimeout(() => fail('timeout', `no answer within ${timeoutMs} ms`), timeoutMs);
    const onAbort = (): void => fail('aborted', 'aborted');
    signal.addEventListener('abort', onAbort, { once: true });
    req.end();
  });
}

/** A health endpoint or beacon at host:port. */
export function httpProbe(kind: ProbeKind, target: string, path: string, timeoutMs: number): Probe {
  return { kind, target, run: (signal) => httpGet(target, path, timeoutMs, signal) };
}
