import type { Dispatcher } from 'undici';
import type { Logger } from 'pino';
import type { Secret } from '../common/secret.js';
import { sendJson } from './http.js';
import type { AlertMetrics } from './metrics.js';
import type { Sleep } from './types.js';

export interface HeartbeatOptions {
  url: Secret;
  method: 'GET' | 'POST';
  intervalMs: number;
  timeoutMs: number;
  dispatcher: Dispatcher;
  log: Logger;
  metrics: AlertMetrics;
  sleep: Sleep;
  random: () => number;
  /** What a POST carries (the node name, so the receiver can tell hosts apart). */
  body?: () => Record<string, unknown>;
}

/**
 * A dead-man's switch: pings a URL while the agent runs, so silence itself pages. The first
 * ping goes after a random part of the interval, so a fleet does not ping in lockstep.
 */
export class Heartbeat {
  readonly #abort = new AbortController();
  #loop: Promise<void> | undefined;
  #last: { at: number; ok: boolean; reason?: string } | undefined;

  constructor(private readonly opts: HeartbeatOptions) {}

  start(): void {
    this.#loop ??= this.#run(this.#abort.signal);
  }

  /** The last ping's result, for /status (the URL is never shown). */
  snapshot(): Record<string, unknown> {
    return { method: this.opts.method, intervalMs: this.opts.intervalMs, last: this.#last };
  }

  /** Stops pinging and waits until no ping is in flight. */
  async stop(): Promise<void> {
    this.#abort.abort();
    await this.#loop;
  }

  /** Sends one ping now; resolves with whether it was accepted. */
  async beat(signal: AbortSignal): Promise<boolean> {
    const url = this.opts.url.reveal();
    const result = await sendJson({
      dispatcher: this.opts.dispatcher,
      url,
      method: this.opts.method,
      ...(this.opts.method === 'POST' ? { body: this.opts.body?.() ?? {} } : {}),
      timeoutMs: this.opts.timeoutMs,
      signal,
      secrets: [url, new URL(url).pathname, new URL(url).search].filter((s) => s.length > 1),
    });
    if (signal.aborted) return false;
    this.#last = { at: Date.now(), ok: result.ok, ...(result.ok ? {} : { reason: result.reason }) };
    this.opts.metrics.alerts.inc({ sink: 'heartbeat', result: result.ok ? 'delivered' : 'failed' });
    if (!result.ok) this.opts.log.warn({ sink: 'heartbeat', reason: result.reason }, 'heartbeat ping failed; the dead-man\'s switch may page');
    return result.ok;
  }

  async #run(signal: AbortSignal): Promise<void> {
    let wait = this.opts.random() * this.opts.intervalMs;
    while (!signal.aborted) {
      try {
        await this.opts.sleep(wait, signal);
      } catch {
        return;
      }
      try {
        await this.beat(signal);
      } catch (err) {
        // A bug here must not stop the agent (the process's unhandled-rejection exit); report and keep pinging.
        this.opts.log.error({ err, sink: 'heartbeat' }, 'heartbeat ping threw');
      }
      wait = this.opts.intervalMs;
    }
  }
}
