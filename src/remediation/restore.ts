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

/** The pod addresses the CNI serves now, read fresh from its API (never the learned state). */
export type LiveEndpoints = () => Promise<{ ok: true; addresses: ReadonlySet<string> } | { ok: false; reason: string }>;

export interface RestoreActionDeps {
  gate: ActionGate;
  /** Without it (a profile with no endpoint source), per-pod items are never put back. */
  endpoints?: LiveEndpoints;
  writer: ItemWriter;
  datapath: Pick<DatapathSensor, 'refresh'>;
  verifyTcp?: TcpVerifier;
  config: Pick<RestoreConfig, 'verifyTargets' | 'verifyTimeoutMs'>;
}

type RestoreCommand = Extract<DetectorCommand, { kind: 'restore' }>;

/** Puts back baseline items the detector names; never deletes. EEXIST counts as success. */
export class RestoreAction {
  constructor(private readonly deps: RestoreActionDeps) {}

  /**
   * Re-confirms per-pod ownership with the CNI, plans, and writes what can be written through the
   * gate. A per-pod item whose endpoint the CNI no longer reports is withdrawn for good (its pod is
   * gone and its address may be the next pod's); one the CNI could not be asked about waits.
   */
  async write(command: RestoreCommand): Promise<RestoreResult> {
    const { gate, writer } = this.deps;
    if (command.unlessDeclined !== undefined) {
      const decision = gate.preview('restore').decision;
      if (decision === command.unlessDeclined) return { held: [], done: { kind: 'unchanged', decision } };
    }
    // Asked side by side: the CNI's answer must not add its latency to the restore's.
    const [{ keep, withdrawn }, planned] = await Promise.all([this.#confirmOwnership(command.items), writer.plan(command.items.map((m) => m.item))]);
    const labels = new Map(keep.map((m) => [m.item, m]));
    const plan = { ordered: planned.ordered.filter((item) => labels.has(item)), held: planned.held.filter((h) => labels.has(h.item)) };
    const held = plan.held.map((h) => ({ label: labelOf(labels, h.item), waitsFor: h.waitsFor }));
    const extra = withdrawn.length > 0 ? { withdrawn } : {};
    if (plan.ordered.length === 0) return { held, ...extra, done: { kind: 'nothing-writable' } };
    const items = plan.ordered;
    const itemLabels = items.map((item) => labelOf(labels, item));
    const result = await gate.submit({
      kind: 'restore',
      summary: `re-install ${items.length} item(s) networkd removed: ${itemLabels.join('; ')}`,
      // What is put back, as confirmed with the CNI just now; what it withdrew is said apart.
      evidence: { ...(command.evidence as object), missing: keep, ...(withdrawn.length > 0 ? { withdrawn } : {}) },
      execute: (signal) => this.#writeAll(items, itemLabels, signal),
    });
    if (result.decision !== 'executed') return { held, ...extra, done: { kind: 'declined', decision: result.decision, why: gate.preview('restore').why ?? result.decision, count: items.length } };
    return { held, ...extra, done: { kind: 'written', keys: items.map((item) => keyOf(labels, item)), labels: itemLabels, outcome: result.outcome as ActionOutcome } };
  }

  async #confirmOwnership(items: MissingItem[]): Promise<{ keep: MissingItem[]; withdrawn: NonNullable<RestoreResult['withdrawn']> }> {
    const perPod = items.filter((m) => m.pod !== undefined);
    if (perPod.length === 0) return { keep: items, withdrawn: [] };
    const live = this.deps.endpoints ? await this.deps.endpoints() : { ok: false as const, reason: 'no endpoint source for per-pod items' };
    const withdrawn: NonNullable<RestoreResult['withdrawn']> = [];
    const keep = items.filter((m) => {
      if (m.pod === undefined) return true;
      if (!live.ok) withdrawn.push({ key: m.key, label: m.label, reason: `cannot confirm endpoint ${m.pod} with the CNI: ${live.reason}`, final: false });
      else if (!live.addresses.has(m.pod.toLowerCase())) withdrawn.push({ key: m.key, label: m.label, reason: `the CNI no longer reports endpoint ${m.pod}`, final: true });
      else return true;
      return false;
    });
    return { keep, withdrawn };
  }

  /** Journals a restore connwatch holds back itself (the rate limit), with the reason. */
  hold(command: Extract<DetectorCommand, { kind: 'restoreHeld' }>): void {
    this.deps.gate.hold({ kind: 'restore', summary: `re-install ${command.items.length} item(s) networkd removed: ${command.items.map((m) => m.label).join('; ')}`, evidence: { episode: command.episode, missing: command.items } }, command.why);
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
