/**
 * The probe runner: builds the probes from the configuration and the peer set, runs every probe of
 * a round at once with hard deadlines, measures each the same way, and hands the round to the
 * detector. A steady interval with jitter (so a DaemonSet never probes in lockstep); a signal or
 * a failing round starts a bounded burst. One timer, one round at a time.
 */
import { Counter, Histogram } from 'prom-client';
import type { BoxContext, CiliumApi, CiliumHealthStatus, CiliumResult, Probe, ProbeObservation, ProbeRound } from '../types.js';
import { ciliumHealthProbe, ciliumProbe } from './cilium.js';
import type { ProbesConfig } from './config.js';
import { defaultGateway, gatewayProbe } from './gateway.js';
import { httpProbe } from './http.js';
import { LoopbackProbe } from './loopback.js';
import { readPeers, type PeerSet, type PeerTarget } from './peers.js';
import { ownCpuStatPath, readThrottling, throttledRatio } from './starvation.js';
import { tcpProbe } from './tcp.js';

/** Bursts a minute, at most: a flapping networkd must not turn probing into load. */
const MAX_BURSTS_PER_MINUTE = 6;
const PROBE_BUCKETS = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5];

export interface ProbeRunnerDeps {
  ctx: BoxContext;
  config: ProbesConfig;
  /** This node's name (the peer hash, and the node a local beacon must be on). */
  node: string;
  cilium?: Pick<CiliumApi, 'healthz' | 'clusterNodes'>;
  ciliumSocket?: string;
  ciliumHealth?: { status(signal: AbortSignal): Promise<CiliumResult<CiliumHealthStatus>>; socket: string };
  onRound(round: ProbeRound): void;
  random?: () => number;
}

/** Runs probe rounds for one agent (or one `check`). */
export class ProbeRunner {
  readonly #deps: ProbeRunnerDeps;
  readonly #loopback: LoopbackProbe | undefined;
  readonly #metrics;
  readonly #cpuStat = ownCpuStatPath();
  readonly #abort = new AbortController();
  #peers: PeerSet = { source: 'none', remote: [], detail: 'not read yet' };
  #peersDueAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #dueAt = 0;
  #burstLeft = 0;
  #burstStarts: number[] = [];
  #round: Promise<ProbeRound | undefined> = Promise.resolve(undefined);
  #throttling: { periods: number; throttled: number } | undefined;
  #stopped = false;
  /** Until start() opened the loopback listener, a burst asked for waits (its reason kept). */
  #started = false;
  #pendingBurst: string | undefined;

  constructor(deps: ProbeRunnerDeps) {
    this.#deps = deps;
    this.#loopback = deps.config.hostNetwork.loopback ? new LoopbackProbe(deps.config.timeoutMs) : undefined;
    const registers = [deps.ctx.metrics];
    this.#metrics = {
      duration: new Histogram({ name: 'connwatch_probe_duration_seconds', help: 'Duration of each probe, by probe kind (peer, localPod, cilium, ciliumHealth, gateway, tcp, loopback).', labelNames: ['probe'], buckets: PROBE_BUCKETS, registers }),
      failures: new Counter({ name: 'connwatch_probe_failures_total', help: 'Failed probes by probe kind and reason (timeout, refused, unreachable, reset, http-status, unhealthy, garbage, shape, …).', labelNames: ['probe', 'reason'], registers }),
    };
  }

  /** Opens the loopback listener, reads the peers and schedules the first steady round (jittered over the interval). */
  async start(): Promise<void> {
    await this.#loopback?.start();
    this.#throttling = readThrottling(this.#cpuStat);
    this.#started = true;
    this.#schedule(this.#now() + this.#random() * this.#intervalMs());
    if (this.#pendingBurst !== undefined) this.burst(this.#pendingBurst);
  }

  /** Starts a burst (rounds every burst.intervalMs) unless one runs or too many ran this minute. */
  burst(reason: string): void {
    if (!this.#started) {
      this.#pendingBurst ??= reason;
      return;
    }
    if (this.#stopped || this.#burstLeft > 0) return;
    const now = this.#now();
    this.#burstStarts = this.#burstStarts.filter((at) => now - at < 60_000);
    if (this.#burstStarts.length >= MAX_BURSTS_PER_MINUTE) return;
    if (/cilium/i.test(reason)) this.#peersDueAt = 0;
    this.#burstStarts.push(now);
    this.#burstLeft = this.#deps.config.burst.rounds;
    this.#deps.ctx.log.debug({ reason }, 'probe burst');
    this.#schedule(now);
  }

  /** Runs one round now (after the one in flight) and returns it; `check` drives rounds this way. */
  runRound(burst: boolean, lagMs = 0): Promise<ProbeRound | undefined> {
    const next = this.#round.then(() => (this.#stopped ? undefined : this.#execute(burst, lagMs)));
    this.#round = next.catch(() => undefined);
    return next;
  }

  /** The peer set in use. */
  peers(): PeerSet {
    return this.#peers;
  }

  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#abort.abort();
    await this.#round;
    await this.#loopback?.stop();
  }

  #schedule(at: number): void {
    if (this.#stopped) return;
    if (this.#timer && this.#dueAt <= at) return;
    clearTimeout(this.#timer);
    // The timer's lag is measured from when it could fire: a burst round due while the previous one
    // was still waiting on its timeouts is not late, and counting that as lag would call the agent
    // starved and set aside every failing burst round (only steady rounds would confirm).
    this.#dueAt = Math.max(at, this.#now());
    this.#timer = setTimeout(() => this.#fire(), Math.max(0, at - this.#now()));
    this.#timer.unref();
  }

  #fire(): void {
    this.#timer = undefined;
    const lagMs = Math.max(0, this.#now() - this.#dueAt);
    const burst = this.#burstLeft > 0;
    if (burst) this.#burstLeft--;
    const started = this.#now();
    void this.runRound(burst, lagMs).then((round) => {
      if (!round || this.#stopped) return;
      this.#deps.onRound(round);
      const next = this.#burstLeft > 0 ? started + this.#deps.config.burst.intervalMs : this.#now() + this.#intervalMs() * (1 + (this.#random() * 2 - 1) * this.#deps.config.jitter);
      this.#schedule(next);
    });
  }

  async #execute(burst: boolean, lagMs: number): Promise<ProbeRound> {
    const { clock } = this.#deps.ctx;
    if (this.#now() >= this.#peersDueAt) await this.#refreshPeers();
    const probes = this.#probes();
    const results = await Promise.all(probes.map((p) => this.#measure(p)));
    const throttling = readThrottling(this.#cpuStat);
    const ratio = throttledRatio(this.#throttling, throttling);
    this.#throttling = throttling;
    return {
      at: clock.monotonic(),
      wallAt: clock.now(),
      burst,
      results,
      peers: { source: this.#peers.source, ...(this.#peers.detail ? { detail: this.#peers.detail } : {}) },
      starvation: { loopLagMs: lagMs, ...(ratio === undefined ? {} : { throttledRatio: ratio }) },
    };
  }

  async #refreshPeers(): Promise<void> {
    const { config, node, cilium } = this.#deps;
    const signal = AbortSignal.any([this.#abort.signal, AbortSignal.timeout(config.timeoutMs * 3)]);
    const read = await readPeers(config, node, cilium, signal);
    // A failed read keeps the targets already known: Cilium's API failing is not a reason to stop probing paths.
    if (read.source !== 'none' || this.#peers.remote.length === 0) this.#peers = read;
    else this.#peers = { ...this.#peers, detail: `${this.#peers.detail ?? ''} (last refresh failed: ${read.detail ?? 'unknown'})` };
    this.#peersDueAt = this.#now() + (read.source === 'none' && config.peers.source !== 'none' ? Math.min(30_000, config.peers.refreshSeconds * 1000) : config.peers.refreshSeconds * 1000);
  }

  #probes(): Probe[] {
    const { config, cilium, ciliumSocket, ciliumHealth } = this.#deps;
    const { timeoutMs } = config;
    const path = (t: PeerTarget): string => `${config.peers.path}${t.node ? `?node=${encodeURIComponent(t.node)}` : ''}`;
    const probes: Probe[] = [];
    if (this.#loopback) probes.push(this.#loopback);
    if (this.#peers.local) probes.push(httpProbe('localPod', this.#peers.local.target, path(this.#peers.local), timeoutMs));
    for (const peer of this.#peers.remote) probes.push(httpProbe('peer', peer.target, path(peer), timeoutMs));
    if (config.cilium.enabled && cilium) probes.push(ciliumProbe(cilium, ciliumSocket ?? 'cilium'));
    if (config.cilium.enabled && ciliumHealth) probes.push(ciliumHealthProbe((signal) => ciliumHealth.status(signal), ciliumHealth.socket));
    const gateway = config.hostNetwork.gateway === 'auto' ? defaultGateway() : config.hostNetwork.gateway === 'off' ? undefined : config.hostNetwork.gateway;
    if (gateway) probes.push(gatewayProbe(gateway, timeoutMs));
    for (const target of config.hostNetwork.tcp) probes.push(tcpProbe(target, timeoutMs));
    return probes;
  }

  async #measure(probe: Probe): Promise<ProbeObservation> {
    const deadline = AbortSignal.timeout(this.#deps.config.timeoutMs);
    const signal = AbortSignal.any([this.#abort.signal, deadline]);
    const started = this.#now();
    let observation: ProbeObservation;
    try {
      let r = await probe.run(signal);
      // The runner's own deadline, not a stop: the probe timed out, whatever it calls it.
      if (!r.ok && deadline.aborted && !this.#abort.signal.aborted) r = { ...r, code: 'timeout', reason: `no answer within ${this.#deps.config.timeoutMs} ms (${r.reason})` };
      observation = r.ok
        ? { kind: probe.kind, target: probe.target, ok: true, latencyMs: round(r.latencyMs) }
        : { kind: probe.kind, target: probe.target, ok: false, reason: r.reason, code: r.code ?? 'error', ...(r.latencyMs === undefined ? {} : { latencyMs: round(r.latencyMs) }) };
    } catch (err) {
      this.#deps.ctx.log.error({ err, probe: probe.kind, target: probe.target }, 'probe threw (a bug); counted as failed');
      observation = { kind: probe.kind, target: probe.target, ok: false, reason: `probe error: ${(err as Error).message}`, code: 'bug' };
    }
    this.#metrics.duration.observe({ probe: probe.kind }, Math.max(0, this.#now() - started) / 1000);
    if (!observation.ok) this.#metrics.failures.inc({ probe: probe.kind, reason: observation.code ?? 'error' });
    return observation;
  }

  #intervalMs(): number {
    return this.#deps.config.intervalSeconds * 1000;
  }

  #now(): number {
    return this.#deps.ctx.clock.monotonic();
  }

  #random(): number {
    return (this.#deps.random ?? Math.random)();
  }
}

function round(ms: number): number {
  return Math.round(ms * 10) / 10;
}
