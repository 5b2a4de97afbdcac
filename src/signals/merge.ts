/**
 * Merges restart reports: one networkd (or Cilium) restart is one event however many sources
 * report it. Reports carrying the same InvocationID are one restart. Otherwise a report joins
 * a recent event (within the merge window) that no report from the same origin has joined yet
 * and whose InvocationID does not contradict it: one origin never reports one restart twice,
 * so two reports from the same origin are two restarts. The first report is emitted at once
 * (the fast path must not wait for the window); later ones only add their origin to the record.
 */
import type { SignalEvent, SignalOrigin } from '../types.js';

type RestartEvent = Extract<SignalEvent, { kind: 'NetworkdRestarted' | 'CiliumRestarted' }>;

/** One merged restart, as the hub remembers it. */
export interface MergedRestart {
  kind: RestartEvent['kind'];
  at: number;
  wallAt: number;
  origins: SignalOrigin[];
  invocationId?: string;
}

export function isRestartEvent(event: SignalEvent): event is RestartEvent {
  return event.kind === 'NetworkdRestarted' || event.kind === 'CiliumRestarted';
}

/** Decides, report by report, whether a restart is new; keeps a short memory of recent ones. */
export class RestartMerger {
  readonly #recent: MergedRestart[] = [];
  readonly #maxRemembered = 64;

  constructor(private readonly windowMs: number) {}

  /** Returns the event to emit for a new restart, or undefined when the report joins a known one. */
  merge(report: RestartEvent): { event: RestartEvent; record: MergedRestart } | { joined: MergedRestart } {
    const origin = report.origins[0] ?? 'bus';
    const sameKind = this.#recent.filter((r) => r.kind === report.kind);
    if (report.invocationId) {
      const same = sameKind.find((r) => r.invocationId === report.invocationId);
      if (same) return { joined: this.#join(same, report.origins) };
    }
    const joinable = sameKind.find(
      (r) =>
        report.at - r.at <= this.windowMs &&
        report.at >= r.at &&
        !report.origins.some((o) => r.origins.includes(o)) &&
        !(r.invocationId && report.invocationId && r.invocationId !== report.invocationId),
    );
    if (joinable) {
      if (report.invocationId && !joinable.invocationId) joinable.invocationId = report.invocationId;
      return { joined: this.#join(joinable, report.origins) };
    }
    const record: MergedRestart = {
      kind: report.kind,
      at: report.at,
      wallAt: report.wallAt,
      origins: [origin, ...report.origins.filter((o) => o !== origin)],
      ...(report.invocationId ? { invocationId: report.invocationId } : {}),
    };
    this.#recent.push(record);
    if (this.#recent.length > this.#maxRemembered) this.#recent.shift();
    return { event: { ...report, origins: [...record.origins] }, record };
  }

  #join(record: MergedRestart, origins: SignalOrigin[]): MergedRestart {
    for (const o of origins) if (!record.origins.includes(o)) record.origins.push(o);
    return record;
  }
}
