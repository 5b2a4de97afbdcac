import { createServer, type Server } from 'node:net';
import type { Probe } from '../types.js';
import { tcpConnects } from './tcp.js';

/**
 * Whether 127.0.0.1 works: a connection to connwatch's own listener on a loopback port. Without
 * the relocated `lookup local` rule the kernel cannot deliver it, and nothing on the node can talk
 * to itself.
 */
export class LoopbackProbe implements Probe {
  readonly kind = 'loopback' as const;
  #server: Server | undefined;
  #port = 0;

  constructor(private readonly timeoutMs: number) {}

  get target(): string {
    return `127.0.0.1:${this.#port}`;
  }

  /** Opens the listener (before the node breaks, so that a broken loopback shows as failing probes). */
  async start(): Promise<void> {
    if (this.#server) return;
    const server = createServer((socket) => socket.destroy());
    server.unref();
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    const address = server.address();
    this.#port = typeof address === 'object' && address ? address.port : 0;
    this.#server = server;
  }

  async run(): Promise<{ ok: true; latencyMs: number } | { ok: false; code: string; reason: string; latencyMs: number }> {
    const started = performance.now();
    if (!this.#server) return { ok: false, code: 'config', reason: 'the loopback listener is not open', latencyMs: 0 };
    const result = await tcpConnects(this.target, this.timeoutMs);
    const latencyMs = performance.now() - started;
    return result.ok ? { ok: true, latencyMs } : { ok: false, code: result.reason.startsWith('no connection') ? 'timeout' : 'unreachable', reason: result.reason, latencyMs };
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (server) await new Promise<void>((resolve) => server.close(() => resolve()));
  }
}
