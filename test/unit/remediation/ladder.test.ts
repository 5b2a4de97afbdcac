import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { AlertPager } from '../../../src/alerts/pager.js';
import { itemKey } from '../../../src/datapath/items.js';
import { planRestore } from '../../../src/datapath/writer.js';
import { initialState } from '../../../src/detector/index.js';
import { Gate, type ActionSettings } from '../../../src/remediation/gate.js';
import { FileJournal, readEntries } from '../../../src/remediation/journal.js';
import { Ladder } from '../../../src/remediation/ladder.js';
import { RestoreAction, type LiveEndpoints } from '../../../src/remediation/restore.js';
import type { Alert, DamageReport, DatapathItem, ItemWriter } from '../../../src/types.js';
import { ALL, CONFIG, lookupLocal, missingItem, PLAN_ORDER, proxyRule, viaGw } from '../detector/world.js';

const silent = pino({ level: 'silent' });
const clock = { now: () => Date.now(), monotonic: () => performance.now() };

/** The ladder with the real gate, journal, restore action and pager, against a fake kernel and real timers. */
function harness(opts: { settings?: Partial<ActionSettings>; removedAgain?: number; planThrows?: number; verifyTargets?: string[]; pods?: Map<DatapathItem, string>; endpoints?: LiveEndpoints } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'cw-ladder-'));
  const metrics = new Registry();
  const present = new Set<DatapathItem>(ALL);
  const written: DatapathItem[] = [];
  const alerts: { raised: Omit<Alert, 'status' | 'createdAt'>[]; resolved: string[] } = { raised: [], resolved: [] };
  const status = new Map<string, unknown>();
  let removedAgain = opts.removedAgain ?? 0;
  let planThrows = opts.planThrows ?? 0;
  const writer: ItemWriter = {
    plan: async (items) => {
      if (planThrows-- > 0) throw new Error('ip: cannot list addresses');
      return planRestore(items, [{ family: 4, dev: 'v0', address: '10.9.0.1/24' }]);
    },
    write: async (items) =>
      items.map((item) => {
        const known = ALL.find((candidate) => itemKey(candidate) === itemKey(item))!;
        present.add(known);
        written.push(known);
        return { ok: true, result: 'added' as const };
      }),
  };
  const journal = new FileJournal(dir);
  const gate = new Gate({
    controls: { settings: () => ({ restore: 'on', restartCilium: 'off', quarantine: 'off', ...opts.settings }), killSwitch: () => ({ active: false, source: 'config' }), halt: () => ({ active: false, source: 'config' }) },
    journal,
    clock,
    log: silent,
    metrics,
  });
  const report = (trigger: string): DamageReport => {
    const missing = ALL.filter((item) => !present.has(item)).map((item) => missingItem(item, { coincidedWithNetworkd: true, ...(opts.pods?.has(item) ? { pod: opts.pods.get(item)! } : {}) }));
    return { at: clock.monotonic(), trigger, missing, coincidedWithNetworkd: missing.length > 0 };
  };
  const datapath = {
    refresh: async (trigger: string) => {
      if (written.length > 0 && removedAgain > 0) {
        removedAgain--;
        present.clear();
      }
      const r = report(trigger);
      ladder.onReport(r); // every report listener hears a re-read, the ladder included
      return r;
    },
    noteNetworkdActivity: () => undefined,
    noteCniRestart: () => undefined,
    noteItem: () => undefined,
  };
  const ctx = { clock, log: silent, metrics, status: { publish: (section: string, snapshot: unknown) => status.set(section, snapshot) } };
  const ladder: Ladder = new Ladder({
    ctx,
    initial: initialState({ ...CONFIG, quietPeriodMs: 20, verifyStableMs: 40 }),
    restore: new RestoreAction({ gate, writer, datapath, ...(opts.endpoints ? { endpoints: opts.endpoints } : {}), config: { verifyTargets: opts.verifyTargets ?? [], verifyTimeoutMs: 100 }, verifyTcp: async (target) => ({ ok: false, reason: `${target} refused` }) }),
    datapath,
    pager: new AlertPager({ raise: (a) => alerts.raised.push(a), resolve: (id) => alerts.resolved.push(id) }, { node: 'node-a', site: 'lab' }, () => 'restore under way'),
  });
  const flush = () => {
    present.clear();
    ladder.onReport(report('netlink'));
  };
  const last = () => (status.get('incident') as { last: { state: string } | null; current: { state: string } | null });
  return { ladder, written, alerts, metrics, status, journal, flush, last, cleanup: async () => { await ladder.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

describe('the ladder runs the detector\'s commands', () => {
  let h: ReturnType<typeof harness>;
  afterEach(async () => h && (await h.cleanup()));

  it('restores through the gate and the journal, verifies, pages and resolves, with the metrics', async () => {
    h = harness();
    h.flush();
    await vi.waitFor(() => expect(h.last().last?.state).toBe('restored'));
    expect(h.written).toEqual(PLAN_ORDER);
    expect(readEntries(h.journal.path).map((e) => [e.action, e.phase])).toEqual([['restore', 'intent'], ['restore', 'outcome']]);
    expect(h.alerts.raised.map((a) => [a.id, a.summary])).toEqual([['DatapathDamage/node-a', 'node-a: 3 critical CNI datapath item(s) missing after systemd-networkd activity (restore under way)']]);
    expect(h.alerts.resolved).toContain('DatapathDamage/node-a');
    const text = await h.metrics.metrics();
    expect(text).toContain('connwatch_restores_total{result="restored"} 1');
    expect(text).toContain('connwatch_detection_seconds_count{evidence="datapath"} 1');
    expect(text).toMatch(/connwatch_state\{state="(Healthy|Recovered)"\} 1/);
    expect(text).toContain('connwatch_restore_latency_seconds_count 1');
    expect(h.status.get('incident')).toMatchObject({ state: 'Recovered', verdict: { kind: 'Healthy' } });
  });

  it('in shadow mode journals "would have" and writes nothing', async () => {
    h = harness({ settings: { restore: 'shadow' } });
    h.flush();
    await vi.waitFor(async () => expect(await h.metrics.metrics()).toContain('connwatch_restores_total{result="shadowed"} 1'));
    expect(h.written).toEqual([]);
    expect(readEntries(h.journal.path)[0]).toMatchObject({ action: 'restore', decision: 'shadowed' });
  });

  it('pages "fighting networkd" through the pager when networkd keeps removing', async () => {
    h = harness({ removedAgain: 100 });
    h.flush();
    await vi.waitFor(() => expect(h.last().current?.state).toBe('fighting'));
    expect(h.alerts.raised.map((a) => a.id)).toEqual(['DatapathDamage/node-a', 'FightingNetworkd/node-a']);
    expect(h.alerts.raised[1]!.summary).toBe("node-a: networkd keeps deleting the CNI's rules/routes after 3 restores");
  });

  it('an action that throws (a bug) still ends with an outcome: the next attempt restores', async () => {
    h = harness({ planThrows: 1 });
    h.flush();
    await vi.waitFor(() => expect(h.last().last?.state).toBe('restored'));
    expect(h.written.filter((item) => item === lookupLocal)).toHaveLength(1);
    const timeline = (h.status.get('incident') as { last: { timeline: { what: string }[] } }).last.timeline.map((t) => t.what);
    expect(timeline).toContain('restore incomplete: unexpected error: ip: cannot list addresses');
  });

  it('a verify target that does not answer pages RestoreFailed in the pager\'s words', async () => {
    h = harness({ verifyTargets: ['127.0.0.1:9'] });
    h.flush();
    await vi.waitFor(() => expect(h.last().current?.state).toBe('failed'));
    expect(h.alerts.raised.at(-1)).toMatchObject({ id: 'RestoreFailed/node-a', summary: 'items restored on node-a but 1 verify target(s) do not answer' });
  });

  it('regression (issue 12): re-confirms per-pod ownership with the CNI at write time; a deleted pod\'s item is never written', async () => {
    const asked: number[] = [];
    h = harness({
      pods: new Map<DatapathItem, string>([[proxyRule, '10.78.0.9'], [viaGw, '10.78.0.1']]),
      endpoints: async () => {
        asked.push(1);
        return { ok: true, addresses: new Set(['10.78.0.1']) };
      },
    });
    h.flush();
    await vi.waitFor(() => expect(h.last().last?.state).toBe('restored'));
    expect(h.written).not.toContain(proxyRule);
    expect(h.written).toContain(viaGw);
    expect(asked.length).toBeGreaterThan(0);
    const timeline = (h.status.get('incident') as { last: { timeline: { what: string }[] } }).last.timeline.map((t) => t.what);
    expect(timeline).toContain('not put back: -4 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto unspec (the CNI no longer reports endpoint 10.78.0.9)');
  });

  it('regression (issue 12): a per-pod item the CNI cannot be asked about waits; it is never written on the learned state alone', async () => {
    h = harness({ pods: new Map<DatapathItem, string>([[proxyRule, '10.78.0.9']]), endpoints: async () => ({ ok: false, reason: 'cilium.sock: connection refused' }) });
    h.flush();
    await vi.waitFor(() => expect(h.written).toContain(lookupLocal));
    await new Promise((r) => setTimeout(r, 200));
    expect(h.written).not.toContain(proxyRule);
  });

  it('after stop, inputs change nothing', async () => {
    h = harness();
    await h.ladder.stop();
    h.flush();
    await new Promise((r) => setTimeout(r, 60));
    expect(h.written).toEqual([]);
  });
});
