/**
 * Rung 0 as an action: plan → write (through the action gate) → verify → outcome. It keeps no
 * episode, sets no timer and pages nobody: the detector decides when to restore and what an
 * outcome means. It needs nothing but netlink: no API server, DNS or loopback.
 */
import type { ActionGate, ActionOutcome, DamageReport, DatapathItem, DatapathSensor, DetectorCommand, ItemWriter, MissingItem, RestoreResult, TcpVerifier, VerifyPhase } from '../types.js';
import type { RestoreConfig } from './config.js';
import type { JournalEntry } from './journal.js';

/** How long a previous run's declined restore keeps its items repairable across a connwatch restart. */
export const CARRY_OVER_MS = 60 * 60 * 1000;

export interface RestoreActionDeps {
  gate: ActionGate;
  writer: ItemWriter;
  datapath: Pick<DatapathSensor, 'refresh'>;
  verifyTcp?: TcpVerifier;
  config: Pick<RestoreConfig, 'verifyTargets' | 'verifyTimeoutMs'>;
}

type RestoreCommand = Extract<DetectorCommand, { kind: 'restore' }>;

/** Puts back baseline items the detector names; never deletes. EEXIST counts as success. */
export class RestoreAction {
  constructor(private readonly deps: RestoreActionDeps) {}

  /** Plans, and writes what can be written through the gate. */
  async write(command: RestoreCommand): Promise<RestoreResult> {
    const { gate, writer } = this.deps;
    if (command.unlessDeclined !== undefined) {
      const decision = gate.preview('restore').decision;
      if (decision === command.unlessDeclined) return { held: [], done: { kind: 'unchanged', decision } };
    }
    const plan = await writer.plan(command.items.map((m) => m.item));
    const labels = new Map(command.items.map((m) => [m.item, m]));
    const held = plan.held.map((h) => ({ label: labelOf(labels, h.item), waitsFor: h.waitsFor }));
    if (plan.ordered.length === 0) return { held, done: { kind: 'nothing-writable' } };
    const items = plan.ordered;
    const itemLabels = items.map((item) => labelOf(labels, item));
    const result = await gate.submit({
      kind: 'restore',
      summary: `re-install ${items.length} item(s) networkd removed: ${itemLabels.join('; ')}`,
      evidence: command.evidence,
      execute: (signal) => this.#writeAll(items, itemLabels, signal),
    });
    if (result.decision !== 'executed') return { held, done: { kind: 'declined', decision: result.decision, why: gate.preview('restore').why ?? result.decision, count: items.length } };
    return { held, done: { kind: 'written', keys: items.map((item) => keyOf(labels, item)), labels: itemLabels, outcome: result.outcome as ActionOutcome } };
  }

  /** A fresh re-read; a failed read is an error, never a stale "all clear". */
  async verify(phase: VerifyPhase): Promise<DamageReport | { error: string }> {
    const report = await this.deps.datapath.refresh(phase === 'written' ? 'restore' : 'restore-verify');
    return report ?? { error: 'the datapath re-read failed (see /status datapath.lastRead)' };
  }

  /** Connects to every verify target; an empty list checks nothing. */
  async checkTargets(): Promise<{ checked: number; failed: { target: string; reason: string }[] }> {
    const { verifyTcp, config } = this.deps;
    if (!verifyTcp || config.verifyTargets.length === 0) return { checked: 0, failed: [] };
    const results = await Promise.all(config.verifyTargets.map(async (target) => ({ target, res: await verifyTcp(target, config.verifyTimeoutMs) })));
    return { checked: results.length, failed: results.flatMap(({ target, res }) => (res.ok ? [] : [{ target, reason: res.reason }])) };
  }

  async #writeAll(items: DatapathItem[], labels: string[], signal: AbortSignal): Promise<ActionOutcome> {
    let added = 0;
    let exists = 0;
    const failed: { item: string; reason: string }[] = [];
    const results = await this.deps.writer.write(items, signal);
    results.forEach((res, index) => {
      if (!res.ok) failed.push({ item: labels[index]!, reason: res.reason });
      else if (res.result === 'added') added++;
      else exists++;
    });
    const detail = { added, exists, failed };
    return failed.length === 0 ? { ok: true, detail } : { ok: false, reason: `${failed.length} item(s) could not be re-installed: ${failed.map((f) => `${f.item}: ${f.reason}`).join('; ')}`, detail };
  }
}

function labelOf(byItem: Map<DatapathItem, MissingItem>, item: DatapathItem): string {
  return byItem.get(item)?.label ?? JSON.stringify(item);
}

function keyOf(byItem: Map<DatapathItem, MissingItem>, item: DatapathItem): string {
  return byItem.get(item)?.key ?? JSON.stringify(item);
}

/**
 * Items a previous run journalled as "networkd removed them, the gate declined the restore"
 * (kill switch, halt, shadow, off) since `since`: lifting the switch restarts connwatch, which
 * would otherwise have forgotten that networkd removed them.
 */
export function carriedOverItems(entries: readonly JournalEntry[], since: number): DatapathItem[] {
  const items = new Map<string, DatapathItem>();
  for (const entry of entries) {
    if (entry.action !== 'restore' || entry.phase !== 'intent' || entry.decision === 'executed' || entry.wallAt < since) continue;
    const missing = (entry.evidence as { missing?: MissingItem[] } | undefined)?.missing ?? [];
    for (const m of missing) if (m?.item) items.set(JSON.stringify(m.item), m.item);
  }
  return [...items.values()];
}
