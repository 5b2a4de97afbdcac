/**
 * The restart budget: how many Cilium restarts may run at once, overall and per zone. Every node
 * whose cilium pod is not ready counts, whatever restarted it (a rollout, kubelet, another
 * tool), as does every node with a restart connwatch granted and has not closed.
 */

/** The limits in force for one round. */
export interface BudgetLimits {
  /** Overall: min(maxConcurrent, maxPercent of nodes (≥ 1), the ramp's width). */
  overall: number;
  perZone: number;
}

/** The overall limit for a fleet of `nodes` nodes at ramp width `width`. */
export function overallLimit(cfg: { maxConcurrent: number; maxPercent: number }, nodes: number, width: number): number {
  const share = Math.max(1, Math.floor((cfg.maxPercent * nodes) / 100));
  return Math.max(0, Math.min(cfg.maxConcurrent, share, width));
}

/** Slots in use, overall and by zone, for one round; `admit` takes one when the limits allow. */
export class Budget {
  #total = 0;
  readonly #byZone = new Map<string, number>();
  readonly #busy = new Set<string>();

  constructor(readonly limits: BudgetLimits) {}

  /** Counts a node as restarting (idempotent per node). */
  count(node: string, zone: string): void {
    if (this.#busy.has(node)) return;
    this.#busy.add(node);
    this.#total += 1;
    this.#byZone.set(zone, (this.#byZone.get(zone) ?? 0) + 1);
  }

  isBusy(node: string): boolean {
    return this.#busy.has(node);
  }

  /** Why a new restart in `zone` may not start now, or undefined (and the slot is taken). */
  admit(node: string, zone: string): string | undefined {
    if (this.#total >= this.limits.overall) return `restart budget full (${this.#total}/${this.limits.overall} in flight)`;
    const inZone = this.#byZone.get(zone) ?? 0;
    if (inZone >= this.limits.perZone) return `restart budget of zone "${zone}" full (${inZone}/${this.limits.perZone})`;
    this.count(node, zone);
    return undefined;
  }

  inUse(): number {
    return this.#total;
  }

  byZone(): Record<string, number> {
    return Object.fromEntries(this.#byZone);
  }
}
