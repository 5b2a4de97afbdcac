/**
 * The ladder: feeds signals and damage reports to the detector, runs the commands it returns
 * (re-reads, the restore action through the gate, verification, pages, metrics, logs) and feeds
 * their outcomes back. It owns the detector's one timer and runs one action at a time; every
 * decision is the detector's.
 */
import { Counter, Gauge, Histogram } from 'prom-client';
import { incidentSnapshot, nodeState, step, verdictOf, type DetectorState } from '../detector/index.js';
import type { ApiReachabilityState, BoxContext, ChannelGrant, DamageReport, DatapathSensor, DetectorCommand, DetectorInput, KubeletReady, NodeReporter, NodeState, Pager, ProbeRound, RestoreResult, SignalEvent, Verdict, VerdictKind } from '../types.js';
import type { RestoreAction } from './restore.js';

/** A command kind without a case here does not compile. */
function unreachable(command: never): never {
  throw new Error(`unknown detector command ${JSON.stringify(command)}`);
}

export interface LadderDeps {
  ctx: BoxContext;
  /** The detector's starting state (initialState(config, carried)). */
  initial: DetectorState;
  restore: RestoreAction;
  datapath: DatapathSensor;
  pager: Pager;
  /** Where probe bursts are asked for (absent: probes off). */
  probes?: { burst(reason: string): void };
  /** Where verdict changes are recorded with their evidence (the action journal). */
  verdicts?: { recordVerdict(verdict: Verdict, previous: VerdictKind): void };
  /** Where verdict, state and restore outcomes are published (Kubernetes: the node's ConnwatchNode and Events); never blocks. */
  reporter?: NodeReporter;
}

const NODE_STATES: readonly NodeState[] = ['Healthy', 'Suspect', 'Broken', 'Repairing', 'Recovered', 'Quarantined'];

/** Runs the detector's commands; one per agent. */
export class Ladder {
  readonly #deps: LadderDeps;
  readonly #metrics;
  #state: DetectorState;
  #timer: NodeJS.Timeout | undefined;
  #wakeAt: number | undefined;
  #actions: Promise<void> = Promise.resolve();
  readonly #inbox: DetectorInput[] = [];
  #stepping = false;
  #stopped = false;
  #reportedState: NodeState | undefined;

  constructor(deps: LadderDeps) {
    this.#deps = deps;
    this.#state = deps.initial;
    const registers = [deps.ctx.metrics];
    this.#metrics = {
      restores: new Counter({
        name: 'connwatch_restores_total',
        help: 'Restore attempts and decisions by result: restored, partial, failed, shadowed, killed, halted, disabled, rate_limited, fighting, no_capability, not_repaired.',
        labelNames: ['result'],
        registers,
      }),
      detection: new Histogram({
        name: 'connwatch_detection_seconds',
        help: "Time to detect, by evidence: datapath = from the episode's trigger (networkd restart, link reconfiguration, address change) to the first re-read that showed CNI items missing; probes = from the first failing round to the confirmed verdict.",
        labelNames: ['evidence'],
        buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 15, 30, 60],
        registers,
      }),
      state: new Gauge({ name: 'connwatch_state', help: "1 for the node's current state on the detector's state machine, 0 for the others.", labelNames: ['state'], registers }),
      restoreLatency: new Histogram({
        name: 'connwatch_restore_latency_seconds',
        help: "From the episode's trigger (networkd restart, link reconfiguration, address re-add) to a re-read showing every item back after a restore.",
        buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
        registers,
      }),
    };
    this.#publish();
  }

  onSignal(event: SignalEvent): void {
    this.#feed({ kind: 'signal', event });
  }

  onReport(report: DamageReport): void {
    this.#feed({ kind: 'damage', report });
  }

  onRound(round: ProbeRound): void {
    this.#feed({ kind: 'probes', round });
  }

  onKubelet(ready: KubeletReady): void {
    this.#feed({ kind: 'kubelet', ready });
  }

  /** The API server as this agent reaches it, each time that changes. */
  onApiServer(state: ApiReachabilityState): void {
    this.#feed({ kind: 'apiServer', state });
  }

  /** The grants in the agent's own ConnwatchNode spec, each time they change. */
  onGrants(grants: ChannelGrant[]): void {
    this.#feed({ kind: 'grants', grants });
  }

  /** Stops the timer and waits for an action in flight; inputs after this are ignored. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#actions;
  }

  #feed(input: DetectorInput): void {
    if (this.#stopped) return;
    this.#inbox.push(input);
    // An input that arrives while a step's commands run waits its turn: steps never interleave.
    if (this.#stepping) return;
    this.#stepping = true;
    try {
      for (let next = this.#inbox.shift(); next; next = this.#inbox.shift()) this.#step(next);
    } finally {
      this.#stepping = false;
    }
  }

  #step(input: DetectorInput): void {
    const { clock, log } = this.#deps.ctx;
    const before = this.#state;
    const result = step(before, input, { at: clock.monotonic(), wallAt: clock.now() });
    this.#state = result.state;
    for (const command of result.commands) {
      try {
        this.#run(command);
      } catch (err) {
        log.error({ err, command: command.kind }, 'a detector command failed (a bug); the others still run');
      }
    }
    this.#arm(result.wakeAt);
    if (result.state !== before) this.#publish();
  }

  #run(command: DetectorCommand): void {
    const { datapath, pager, restore } = this.#deps;
    switch (command.kind) {
      case 'reread':
        void datapath.refresh(command.trigger, { followUps: command.followUps });
        return;
      case 'networkdActivity':
        return datapath.noteNetworkdActivity(command.at, { ...(command.exact ? { exact: true } : {}), ...(command.supersedes !== undefined ? { supersedes: command.supersedes } : {}) });
      case 'cniRestarted':
        return datapath.noteCniRestart(command.at);
      case 'itemSeen':
        return datapath.noteItem(command.change, command.item, command.at);
      case 'restore':
        return this.#act(
          async () => {
            const result = await restore.write(command);
            this.#deps.reporter?.restored(restoreOutcome(result, this.#deps.ctx.clock.now()));
            return { kind: 'restored', episode: command.episode, result };
          },
          (reason) => ({ kind: 'restored', episode: command.episode, result: { held: [], done: { kind: 'written', keys: [], labels: [], outcome: { ok: false, reason } } } }),
        );
      case 'restoreHeld':
        return restore.hold(command);
      case 'verify':
        return this.#act(
          async () => ({ kind: 'verified', episode: command.episode, phase: command.phase, report: await restore.verify(command.phase) }),
          (reason) => ({ kind: 'verified', episode: command.episode, phase: command.phase, report: { error: reason } }),
        );
      case 'checkTargets':
        return this.#act(
          async () => ({ kind: 'targets', episode: command.episode, ...(await restore.checkTargets()) }),
          (reason) => ({ kind: 'targets', episode: command.episode, checked: 0, failed: [{ target: 'verify targets', reason }] }),
        );
      case 'raise':
        return pager.raise(command);
      case 'resolve':
        return pager.resolve(command.cause);
      case 'count':
        this.#metrics.restores.inc({ result: command.result });
        return;
      case 'observe':
        if (command.metric === 'detection') this.#metrics.detection.observe({ evidence: command.evidence ?? 'datapath' }, command.seconds);
        else this.#metrics.restoreLatency.observe(command.seconds);
        return;
      case 'probeBurst':
        this.#deps.probes?.burst(command.reason);
        return;
      case 'verdict':
        this.#deps.ctx.log[command.verdict.kind === 'Healthy' ? 'info' : 'warn']({ verdict: command.verdict.kind, previous: command.previous, reasons: command.verdict.reasons }, `verdict: ${command.verdict.kind}`);
        this.#deps.verdicts?.recordVerdict(command.verdict, command.previous);
        this.#reportedState = nodeState(this.#state);
        this.#deps.reporter?.verdict(command.verdict, this.#reportedState);
        return;
      case 'rungRequest':
        this.#deps.reporter?.request(command.request);
        return;
      case 'grantVerified':
        this.#deps.reporter?.verified({ grant: command.grant, ok: command.ok, at: new Date(this.#deps.ctx.clock.now()).toISOString(), detail: command.detail });
        return;
      case 'log':
        this.#deps.ctx.log[command.level](command.fields ?? {}, command.msg);
        return;
      default:
        return unreachable(command);
    }
  }

  /**
   * Runs one action after the one before it, and feeds its outcome back. An action that throws
   * (a bug) still gets an outcome, so that the detector never waits for one forever.
   */
  #act(action: () => Promise<DetectorInput>, failed: (reason: string) => DetectorInput): void {
    this.#actions = this.#actions.then(async () => {
      if (this.#stopped) return;
      let outcome: DetectorInput;
      try {
        outcome = await action();
      } catch (err) {
        this.#deps.ctx.log.error({ err }, 'restore: unexpected error');
        outcome = failed(`unexpected error: ${(err as Error).message}`);
      }
      this.#feed(outcome);
    });
  }

  /** The detector's one wake-up; unref'd so it never holds the process up. */
  #arm(wakeAt: number | undefined): void {
    if (wakeAt === this.#wakeAt) return;
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#wakeAt = wakeAt;
    if (wakeAt === undefined || this.#stopped) return;
    const delay = Math.max(0, wakeAt - this.#deps.ctx.clock.monotonic());
    this.#timer = setTimeout(() => {
      this.#wakeAt = undefined;
      this.#feed({ kind: 'tick' });
    }, delay);
    this.#timer.unref();
  }

  #publish(): void {
    this.#deps.ctx.status.publish('incident', incidentSnapshot(this.#state));
    const current = nodeState(this.#state);
    for (const state of NODE_STATES) this.#metrics.state.set({ state }, state === current ? 1 : 0);
    if (this.#deps.reporter && current !== this.#reportedState) {
      this.#reportedState = current;
      this.#deps.reporter.verdict(verdictOf(this.#state), current);
    }
  }
}

/** A restore's result in a line, for the node's status and Events. */
function restoreOutcome(result: RestoreResult, wallAt: number): { wallAt: number; result: string; items: number } {
  const done = result.done;
  switch (done.kind) {
    case 'written':
      return { wallAt, result: done.outcome.ok ? 'restored' : `failed: ${done.outcome.reason}`, items: done.keys.length };
    case 'declined':
      return { wallAt, result: `${done.decision}: ${done.why}`, items: done.count };
    case 'unchanged':
      return { wallAt, result: `nothing missing any more (${done.decision})`, items: 0 };
    case 'nothing-writable':
      return { wallAt, result: 'nothing writable', items: 0 };
  }
}
