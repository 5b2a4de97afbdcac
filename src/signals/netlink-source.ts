/**
 * The kernel signal source: one long-running `ip -d -<family> monitor rule route address`
 * per family (the text carries no family marker), parsed line by line. It is only a trigger:
 * the datapath box re-reads and diffs. A monitor that dies is restarted with backoff.
 */
import { spawn } from 'node:child_process';
import type { ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from 'pino';
import type { BoxContext, Family, SignalEvent, SignalSource, SourceStatus } from '../types.js';
import { backoffDelay } from '../common/backoff.js';
import { sleep } from '../common/sleep.js';
import type { SignalsConfig } from './config.js';
import { parseMonitorLine } from './ip-monitor-parser.js';
import type { MonitorRecord } from './ip-monitor-parser.js';
import { signalMetrics } from './metrics.js';
import type { SignalMetrics } from './metrics.js';

/** The argv that monitors one family: the configured ip prefix plus the monitor arguments. */
export function monitorArgv(ipCommand: readonly string[], family: Family): string[] {
  return [...ipCommand, '-d', `-${family}`, 'monitor', 'rule', 'route', 'address'];
}

/** The signal for one parsed monitor record. */
export function recordToEvent(record: MonitorRecord, at: number, wallAt: number): SignalEvent {
  switch (record.kind) {
    case 'rule':
      return { kind: record.deleted ? 'RuleRemoved' : 'RuleAdded', at, wallAt, item: record.item };
    case 'route':
      return { kind: record.deleted ? 'RouteRemoved' : 'RouteAdded', at, wallAt, item: record.item };
    case 'address':
      return { kind: record.deleted ? 'AddressRemoved' : 'AddressAdded', at, wallAt, item: record.item };
  }
}

interface MonitorState {
  family: Family;
  running: boolean;
  pid?: number;
  restarts: number;
  lastExit?: string;
}

export class NetlinkSignalSource implements SignalSource {
  readonly name = 'netlink';
  readonly #ctx: BoxContext;
  readonly #cfg: SignalsConfig['netlink'];
  readonly #log: Logger;
  readonly #metrics: SignalMetrics;
  readonly #abort = new AbortController();
  readonly #states: MonitorState[];
  readonly #children = new Set<ChildProcess>();
  #loops: Promise<void>[] = [];

  constructor(ctx: BoxContext, cfg: SignalsConfig) {
    this.#ctx = ctx;
    this.#cfg = cfg.netlink;
    this.#log = ctx.log.child({ box: 'signals', source: 'netlink' });
    this.#metrics = signalMetrics(ctx.metrics);
    this.#states = [...new Set(cfg.netlink.families)].map((family) => ({ family, running: false, restarts: 0 }));
  }

  /** Starts one monitor per family; resolves once each has been spawned (or failed to). */
  async start(emit: (event: SignalEvent) => void): Promise<void> {
    const spawned = this.#states.map((state) => {
      let first!: () => void;
      const started = new Promise<void>((resolve) => (first = resolve));
      this.#loops.push(this.#keepRunning(state, emit, first));
      return started;
    });
    await Promise.all(spawned);
  }

  async stop(): Promise<void> {
    this.#abort.abort();
    for (const child of this.#children) child.kill('SIGTERM');
    await Promise.all(this.#loops);
    this.#loops = [];
  }

  /** PIDs of the running monitor processes, by family (diagnostics and tests). */
  monitorPids(): Partial<Record<Family, number>> {
    return Object.fromEntries(this.#states.filter((s) => s.pid !== undefined).map((s) => [s.family, s.pid]));
  }

  /** How many times each family's monitor was restarted. */
  restarts(): Partial<Record<Family, number>> {
    return Object.fromEntries(this.#states.map((s) => [s.family, s.restarts]));
  }

  status(): SourceStatus {
    const down = this.#states.filter((s) => !s.running);
    const argv = (f: Family): string => monitorArgv(this.#cfg.ipCommand, f).join(' ');
    if (down.length === 0) return { ok: true, detail: `monitoring ${this.#states.map((s) => `IPv${s.family}`).join(' and ')}` };
    return {
      ok: false,
      detail: down
        .map((s) => `\`${argv(s.family)}\` not running (${s.lastExit ?? 'starting'}; ${s.restarts} restarts); is iproute2 installed and CAP_NET_ADMIN granted?`)
        .join('; '),
    };
  }

  async #keepRunning(state: MonitorState, emit: (event: SignalEvent) => void, first: () => void): Promise<void> {
    const signal = this.#abort.signal;
    let attempt = 0;
    while (!signal.aborted) {
      const startedAt = Date.now();
      await this.#runOnce(state, emit, first);
      if (signal.aborted) break;
      if (Date.now() - startedAt >= this.#cfg.restart.maxMs) attempt = 0;
      const delay = backoffDelay(attempt++, this.#cfg.restart);
      this.#log.warn({ family: state.family, exit: state.lastExit, retryInMs: delay }, 'signals: ip monitor ended; restarting');
      await sleep(delay, signal).catch(() => undefined); // rejects only when aborted; the loop then ends
      state.restarts += 1;
    }
  }

  /** Runs one monitor process until it exits. */
  #runOnce(state: MonitorState, emit: (event: SignalEvent) => void, spawned: () => void): Promise<void> {
    const [command, ...args] = monitorArgv(this.#cfg.ipCommand, state.family);
    return new Promise<void>((resolve) => {
      const child = spawn(command ?? 'ip', args, { stdio: ['ignore', 'pipe', 'pipe'] });
      this.#children.add(child);
      let stderr = '';
      child.stderr?.setEncoding('utf8').on('data', (chunk: string) => {
        stderr = (stderr + chunk).slice(-2000);
        // iproute2 carries on after the kernel dropped events for it (ENOBUFS): whatever they were, look again.
        if (/No buffer space|receive error/i.test(chunk)) this.#gap(emit, state.family, 'the kernel dropped netlink events (ENOBUFS)');
      });
      const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
      lines.on('line', (line) => this.#onLine(line, state.family, emit));
      child.once('spawn', () => {
        state.running = true;
        state.pid = child.pid;
        // Changes made while the previous monitor was down were not heard.
        if (state.restarts > 0) this.#gap(emit, state.family, `ip monitor restarted (${state.lastExit ?? 'exited'})`);
        spawned();
      });
      let exited = false;
      const finish = (why: string): void => {
        if (exited) return;
        exited = true;
        state.running = false;
        delete state.pid;
        state.lastExit = why + (stderr.trim() ? `: ${stderr.trim().split('\n').pop()}` : '');
        this.#children.delete(child);
        spawned();
        resolve();
      };
      child.once('error', (err) => finish(`cannot run ${command}: ${(err as NodeJS.ErrnoException).code ?? err.message}`));
      // 'close' waits for stdout to drain, so no line is lost after exit.
      child.once('close', (code, sig) => finish(sig ? `killed by ${sig}` : `exited with ${code}`));
    });
  }

  #gap(emit: (event: SignalEvent) => void, family: Family, reason: string): void {
    this.#metrics.countEvent('netlink', 'WatchGap');
    emit({ kind: 'WatchGap', at: this.#ctx.clock.monotonic(), wallAt: this.#ctx.clock.now(), source: `netlink-ipv${family}`, reason });
  }

  #onLine(line: string, family: Family, emit: (event: SignalEvent) => void): void {
    const parsed = parseMonitorLine(line, family);
    if (parsed.type === 'unrecognized') {
      this.#log.debug({ family, line: parsed.line, why: parsed.why }, 'signals: ignored an ip monitor line');
      return;
    }
    if (parsed.type !== 'record') return;
    const event = recordToEvent(parsed.record, this.#ctx.clock.monotonic(), this.#ctx.clock.now());
    this.#metrics.countEvent('netlink', event.kind);
    emit(event);
  }
}
