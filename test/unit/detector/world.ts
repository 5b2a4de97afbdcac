/**
 * A node in miniature for the detector's tests: the pure step() driven on the hand-moved clock,
 * with the ladder's part played synchronously against a set of "present" items. Every action
 * command is answered as the real ladder would (the datapath's re-read reaches the detector as
 * a damage report first, then as the verification), so a test reads like the incident.
 */
import { initialState, step, type DetectorConfig, type DetectorState } from '../../../src/detector/index.js';
import { describeItem, itemKey } from '../../../src/datapath/items.js';
import type { DamageReport, DatapathItem, DetectorCommand, DetectorInput, GateDecision, MissingItem, RouteItem, RuleItem, SignalEvent, Verdict } from '../../../src/types.js';
import { ManualClock } from '../../support/clock.js';

export const lookupLocal: RuleItem = { kind: 'rule', family: 4, priority: 100, table: 'local', action: 'lookup', protocol: 'unspec' };
export const proxyRule: RuleItem = { kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, table: '2004', action: 'lookup', protocol: 'unspec' };
export const onLink: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: '10.9.0.0/24', dev: 'v0', scope: 'link', protocol: 'boot' };
export const viaGw: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: 'default', gateway: '10.9.0.2', dev: 'v0', protocol: 'boot' };
/** The node's CNI items, critical first as the datapath sorts them. */
export const ALL: DatapathItem[] = [lookupLocal, viaGw, onLink, proxyRule];
const SEVERITY = new Map<DatapathItem, MissingItem['severity']>([[lookupLocal, 'critical'], [viaGw, 'critical'], [onLink, 'critical'], [proxyRule, 'degraded']]);
/** The order a restore plan writes them in (on-link routes → gateway routes → rules). */
export const PLAN_ORDER: DatapathItem[] = [onLink, viaGw, proxyRule, lookupLocal];

export const CONFIG: DetectorConfig = { quietPeriodMs: 250, maxRepeats: 3, episodeMs: 120_000, verifyStableMs: 3_000, rateLimitPerMinute: 20, canWrite: { ok: true }, cniDevices: ['lxc*', 'cilium_*'], probes: { confirmRounds: 3, recoverRounds: 3, maxLoopLagMs: 500, maxThrottledRatio: 0.5, ciliumSettleMs: 60_000 }, escalation: { requestAfterMs: 30_000, verifyWithinMs: 120_000, restartAttempts: 2 } };

export interface WorldOptions {
  config?: Partial<DetectorConfig>;
  /** Keys of items a previous run's journal carries over. */
  carried?: DatapathItem[];
  /** Items whose loss did not coincide with networkd activity. */
  notCoincided?: DatapathItem[];
  /** Items the profile requires but the baseline never learned. */
  invariant?: DatapathItem[];
  /** What the gate decides for restores (default: executed). */
  gate?: () => GateDecision;
  /** networkd removes the written items again this many times (on the next re-read). */
  removedAgain?: number;
  /** The gateway route's write fails this many times. */
  failGateway?: number;
  /** Re-reads after the stability wait fail this many times. */
  failStableReads?: number;
  /** TCP verify targets that do not answer. */
  deadTargets?: string[];
  /** Items whose pod the CNI no longer reports when the restore asks (withdrawn, never written). */
  endpointGone?: DatapathItem[];
  /** The ladder answers action commands by itself (off: the test answers them). */
  auto?: boolean;
}

export const missingItem = (item: DatapathItem, extra: Partial<MissingItem> = {}): MissingItem => ({ item, key: itemKey(item), label: describeItem(item), severity: SEVERITY.get(item) ?? 'critical', profile: 'cilium', ...extra });

/** A signal without its times (the world stamps them). */
type Unstamped = SignalEvent extends infer E ? (E extends SignalEvent ? Omit<E, 'at' | 'wallAt'> : never) : never;

export class World {
  readonly clock = new ManualClock();
  state: DetectorState;
  verdict: Verdict | undefined;
  wakeAt: number | undefined;
  /** Every command the detector gave, in order. */
  readonly commands: DetectorCommand[] = [];
  /** What is in the kernel now. */
  readonly present = new Set<DatapathItem>(ALL);
  /** Every item written, in order. */
  readonly written: DatapathItem[] = [];
  readonly #opts: WorldOptions;
  readonly #queue: DetectorCommand[] = [];
  #removedAgain: number;
  #failGateway: number;
  #failReads: number;

  constructor(opts: WorldOptions = {}) {
    this.#opts = { auto: true, ...opts };
    this.state = initialState({ ...CONFIG, ...opts.config }, (opts.carried ?? []).map(itemKey));
    this.#removedAgain = opts.removedAgain ?? 0;
    this.#failGateway = opts.failGateway ?? 0;
    this.#failReads = opts.failStableReads ?? 0;
  }

  get now(): number {
    return this.clock.monotonic();
  }

  feed(input: DetectorInput): DetectorCommand[] {
    const result = step(this.state, input, { at: this.clock.monotonic(), wallAt: this.clock.now() });
    this.state = result.state;
    this.verdict = result.verdict;
    this.wakeAt = result.wakeAt;
    this.commands.push(...result.commands);
    this.#queue.push(...result.commands.filter((c) => c.kind === 'restore' || c.kind === 'verify' || c.kind === 'checkTargets'));
    if (this.#opts.auto) this.drain();
    return result.commands;
  }

  signal(event: Unstamped): DetectorCommand[] {
    return this.feed({ kind: 'signal', event: { ...event, at: this.clock.monotonic(), wallAt: this.clock.now() } as SignalEvent });
  }

  restart(): DetectorCommand[] {
    return this.signal({ kind: 'NetworkdRestarted', origins: ['network1'] });
  }

  link(ifindex: number, administrativeState: string): DetectorCommand[] {
    return this.signal({ kind: 'LinkStateChanged', ifindex, administrativeState });
  }

  /** networkd flushes: the given items leave the kernel. */
  remove(...items: DatapathItem[]): void {
    for (const item of items) this.present.delete(item);
  }

  /** The datapath's report now (read started now). */
  report(trigger = 'netlink', at = this.clock.monotonic()): DamageReport {
    const missing = ALL.filter((item) => !this.present.has(item)).map((item) =>
      missingItem(item, { coincidedWithNetworkd: !(this.#opts.notCoincided ?? []).includes(item), source: (this.#opts.invariant ?? []).includes(item) ? 'invariant' : 'baseline' }),
    );
    return { at, trigger, missing, coincidedWithNetworkd: missing.some((m) => m.coincidedWithNetworkd) };
  }

  /** Feeds the datapath's report now; `extra` overrides what every missing item says (say, how its loss was dated). */
  damage(trigger = 'netlink', extra: Partial<MissingItem> = {}): DetectorCommand[] {
    const report = this.report(trigger);
    return this.feed({ kind: 'damage', report: { ...report, missing: report.missing.map((m) => ({ ...m, ...extra })) } });
  }

  /** Moves the clock, delivering the ticks the detector asked for on the way. */
  advance(ms: number): void {
    const until = this.clock.monotonic() + ms;
    while (this.wakeAt !== undefined && this.wakeAt <= until) {
      this.clock.advance(Math.max(0, this.wakeAt - this.clock.monotonic()));
      this.feed({ kind: 'tick' });
    }
    this.clock.advance(until - this.clock.monotonic());
  }

  /** Answers queued action commands the way the ladder and the real datapath would. */
  drain(): void {
    for (let command = this.#queue.shift(); command; command = this.#queue.shift()) this.#answer(command);
  }

  /** The pending action commands (with auto off). */
  pending(): DetectorCommand[] {
    return [...this.#queue];
  }

  episode() {
    return this.state.episode;
  }

  kinds(kind: DetectorCommand['kind']): DetectorCommand[] {
    return this.commands.filter((c) => c.kind === kind);
  }

  counts(): string[] {
    return this.commands.flatMap((c) => (c.kind === 'count' ? [c.result] : []));
  }

  notes(): string[] {
    return this.commands.flatMap((c) => (c.kind === 'log' && c.msg.startsWith('restore: ') ? [c.msg.slice('restore: '.length)] : []));
  }

  pages(): string[] {
    return this.commands.flatMap((c) => (c.kind === 'raise' ? [`raise ${c.facts.cause}`] : c.kind === 'resolve' ? [`resolve ${c.cause}`] : []));
  }

  #answer(command: DetectorCommand): void {
    switch (command.kind) {
      case 'restore': {
        const decision = this.#opts.gate?.() ?? 'executed';
        if (command.unlessDeclined && decision === command.unlessDeclined) {
          this.feed({ kind: 'restored', episode: command.episode, result: { held: [], done: { kind: 'unchanged', decision } } });
          return;
        }
        const gone = (this.#opts.endpointGone ?? []).filter((item) => command.items.some((m) => m.key === itemKey(item)));
        const withdrawn = gone.map((item) => ({ key: itemKey(item), label: describeItem(item), reason: 'the CNI no longer reports endpoint 10.0.1.5', final: true }));
        const items = PLAN_ORDER.filter((item) => command.items.some((m) => m.key === itemKey(item)) && !gone.includes(item));
        if (decision !== 'executed') {
          this.feed({ kind: 'restored', episode: command.episode, result: { held: [], done: { kind: 'declined', decision, why: decision, count: items.length } } });
          return;
        }
        const failed: string[] = [];
        for (const item of items) {
          if (item === viaGw && this.#failGateway > 0) {
            this.#failGateway--;
            failed.push(`${describeItem(item)}: Nexthop has invalid gateway`);
            continue;
          }
          this.present.add(item);
          this.written.push(item);
        }
        const outcome = failed.length === 0 ? { ok: true as const, detail: { added: items.length } } : { ok: false as const, reason: `${failed.length} item(s) could not be re-installed: ${failed.join('; ')}`, detail: { added: items.length - failed.length } };
        this.feed({ kind: 'restored', episode: command.episode, result: { held: [], ...(withdrawn.length ? { withdrawn } : {}), done: { kind: 'written', keys: items.map(itemKey), labels: items.map(describeItem), outcome } } });
        return;
      }
      case 'verify': {
        if (command.phase === 'stable' && this.#failReads > 0) {
          this.#failReads--;
          this.feed({ kind: 'verified', episode: command.episode, phase: command.phase, report: { error: 'ip exited 1' } });
          return;
        }
        if (this.#removedAgain > 0 && this.written.length > 0) {
          this.#removedAgain--;
          for (const item of ALL) this.present.delete(item);
        }
        const report = this.report(command.phase === 'written' ? 'restore' : 'restore-verify');
        // The re-read reaches every report listener (the ladder feeds it as damage) before the verifier.
        this.feed({ kind: 'damage', report });
        this.feed({ kind: 'verified', episode: command.episode, phase: command.phase, report });
        return;
      }
      case 'checkTargets': {
        const dead = this.#opts.deadTargets ?? [];
        this.feed({ kind: 'targets', episode: command.episode, checked: dead.length, failed: dead.map((target) => ({ target, reason: 'connection refused' })) });
        return;
      }
      default:
        return;
    }
  }
}
