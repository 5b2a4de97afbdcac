/**
 * The signal hub: starts the sources, fans their events into one `emit`, merges restart
 * reports (merge.ts), counts merged networkd restarts, and publishes `/status` section
 * "signals". It is itself a SignalSource, so the agent wires one thing.
 */
import type { BoxContext, SignalEvent, SignalSource, SourceStatus } from '../types.js';
import { logSignal } from './log.js';
import { isRestartEvent, RestartMerger } from './merge.js';
import type { MergedRestart } from './merge.js';
import { signalMetrics } from './metrics.js';

/** What the hub publishes under `/status` → "signals". */
export interface SignalsStatusSnapshot {
  ok: boolean;
  sources: Record<string, SourceStatus>;
  lastNetworkdRestart?: MergedRestart;
  lastCiliumRestart?: MergedRestart;
}

export class SignalHub implements SignalSource {
  readonly name = 'signals';
  readonly #ctx: BoxContext;
  readonly #sources: SignalSource[];
  readonly #merger: RestartMerger;
  readonly #metrics;
  #lastNetworkd: MergedRestart | undefined;
  #lastCilium: MergedRestart | undefined;
  readonly #statusEveryMs: number;
  #started: SignalSource[] = [];
  #emit: ((event: SignalEvent) => void) | undefined;
  #statusTimer: NodeJS.Timeout | undefined;
  #lastPublished = '';

  constructor(ctx: BoxContext, sources: SignalSource[], opts: { mergeWindowMs: number; statusEveryMs?: number }) {
    this.#ctx = ctx;
    this.#sources = sources;
    this.#merger = new RestartMerger(opts.mergeWindowMs);
    this.#metrics = signalMetrics(ctx.metrics);
    this.#statusEveryMs = opts.statusEveryMs ?? 1_000;
  }

  /** Starts every source; resolves when each is watching or degraded. */
  async start(emit: (event: SignalEvent) => void): Promise<void> {
    this.#emit = emit;
    for (const source of this.#sources) {
      await source.start((event) => this.#ingest(event));
      this.#started.push(source);
    }
    this.#publish();
    // Some status changes have no event (a monitor died, a reconnect attempt failed): look now and then.
    this.#statusTimer = setInterval(() => this.#publish(), this.#statusEveryMs);
    this.#statusTimer.unref();
  }

  /** Stops the sources in reverse start order and waits for each. */
  async stop(): Promise<void> {
    clearInterval(this.#statusTimer);
    this.#statusTimer = undefined;
    for (const source of this.#started.reverse()) await source.stop();
    this.#started = [];
    this.#emit = undefined;
    this.#publish();
  }

  status(): SourceStatus {
    const parts = this.#sources.map((s) => ({ name: s.name, ...s.status() }));
    return { ok: parts.every((p) => p.ok), detail: parts.map((p) => `${p.name}: ${p.detail}`).join(' | ') };
  }

  /** The JSON-able snapshot published to `/status`. */
  snapshot(): SignalsStatusSnapshot {
    const sources = Object.fromEntries(this.#sources.map((s) => [s.name, s.status()]));
    return {
      ok: Object.values(sources).every((s) => s.ok),
      sources,
      ...(this.#lastNetworkd ? { lastNetworkdRestart: structuredClone(this.#lastNetworkd) } : {}),
      ...(this.#lastCilium ? { lastCiliumRestart: structuredClone(this.#lastCilium) } : {}),
    };
  }

  #ingest(event: SignalEvent): void {
    let out: SignalEvent = event;
    if (isRestartEvent(event)) {
      const merged = this.#merger.merge(event);
      if ('joined' in merged) {
        this.#ctx.log.debug({ kind: event.kind, origins: merged.joined.origins }, 'signals: restart report merged into a known restart');
        this.#publish();
        return;
      }
      out = merged.event;
      if (event.kind === 'NetworkdRestarted') {
        this.#lastNetworkd = merged.record;
        this.#metrics.networkdRestarts.inc();
      } else {
        this.#lastCilium = merged.record;
      }
      this.#ctx.log.info({ kind: out.kind, origins: out.origins, invocationId: out.invocationId }, 'signals: restart heard');
    }
    if (event.kind === 'BusConnection' || event.kind === 'NetworkdOnBus' || isRestartEvent(event)) this.#publish();
    logSignal(this.#ctx.log, out);
    this.#emit?.(out);
  }

  /** Publishes the snapshot when it differs from the last one published. */
  #publish(): void {
    const snapshot = this.snapshot();
    const text = JSON.stringify(snapshot);
    if (text === this.#lastPublished) return;
    this.#lastPublished = text;
    this.#ctx.status.publish('signals', snapshot);
  }
}
