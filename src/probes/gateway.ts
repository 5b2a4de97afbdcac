import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { Probe, ProbeResult } from '../types.js';

/**
 * The IPv4 default gateway from /proc/net/route (a file read, no `ip` process): the first route
 * with destination 0.0.0.0/0 and the gateway flag. Undefined when there is none.
 */
export function defaultGateway(routeFile = '/proc/net/route'): string | undefined {
  let text: string;
  try {
    text = readFileSync(routeFile, 'utf8');
  } catch {
    return undefined;
  }
  for (const line of text.split('\n').slice(1)) {
    const [, destination, gateway, flags, , , , mask] = line.trim().split(/\s+/);
    if (destination !== '00000000' || mask !== '00000000' || !gateway || gateway === '00000000') continue;
    if ((Number.parseInt(flags ?? '0', 16) & 0x2) === 0) continue;
    // Little-endian hex, as the kernel prints it.
    const n = Number.parseInt(gateway, 16);
    return [n & 255, (n >>> 8) & 255, (n >>> 16) & 255, n >>> 24].join('.');
  }
  return undefined;
}

/** One ICMP echo to the gateway with iputils `ping` (connwatch opens no raw socket of its own). */
export function gatewayProbe(address: string, timeoutMs: number): Probe {
  return {
    kind: 'gateway',
    target: address,
    run: (signal) =>
      new Promise<ProbeResult>((resolve) => {
        const started = performance.now();
        const waitSeconds = Math.max(1, Math.ceil(timeoutMs / 1000));
        execFile('ping', ['-n', '-q', '-c', '1', '-W', String(waitSeconds), address], { timeout: timeoutMs + 500, signal }, (err) => {
          const latencyMs = performance.now() - started;
          if (!err) return resolve({ ok: true, latencyMs });
          const e = err as Omit<NodeJS.ErrnoException, 'code'> & { killed?: boolean; code?: string | number };
          if (e.code === 'ENOENT') return resolve({ ok: false, code: 'config', reason: '`ping` not found (install iputils-ping)', latencyMs });
          if (e.killed || e.code === 'ABORT_ERR') return resolve({ ok: false, code: 'timeout', reason: `no echo reply within ${timeoutMs} ms`, latencyMs });
          resolve({ ok: false, code: e.code === 1 ? 'timeout' : 'unreachable', reason: e.code === 1 ? 'no echo reply' : `ping failed (exit ${String(e.code)})`, latencyMs });
        });
      }),
  };
}
