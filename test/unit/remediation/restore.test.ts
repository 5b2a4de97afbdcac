import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { restoreConfig } from '../../../src/remediation/config.js';
import { Gate, type ActionSettings } from '../../../src/remediation/gate.js';
import { FileJournal } from '../../../src/remediation/journal.js';
import { planRestore } from '../../../src/datapath/writer.js';
import { RestoreRung, type ItemWriter } from '../../../src/remediation/restore.js';
import type { Alert, DamageReport, DatapathItem, MissingItem, RouteItem, RuleItem } from '../../../src/types.js';

const silent = pino({ level: 'silent' });
const clock = { now: () => Date.now(), monotonic: () => performance.now() };

const lookupLocal: RuleItem = { kind: 'rule', family: 4, priority: 100, table: 'local', action: 'lookup', protocol: 'unspec' };
const proxyRule: RuleItem = { kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, table: '2004', action: 'lookup', protocol: 'unspec' };
const onLink: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: '10.9.0.0/24', dev: 'v0', scope: 'link', protocol: 'boot' };
const viaGw: RouteItem = { kind: 'route', family: 4, table: '11', type: 'unicast', dst: 'default', gateway: '10.9.0.2', dev: 'v0', protocol: 'boot' };
const missing: MissingItem[] = [
  { item: lookupLocal, severity: 'critical', profile: 'cilium' },
  { item: viaGw, severity: 'critical', profile: 'cilium' },
  { item: proxyRule, severity: 'degraded', profile: 'cilium' },
  { item: onLink, severity: 'critical', profile: 'cilium' },
];

function harness(opts: { settings?: Partial<ActionSettings>; kill?: boolean; canWrite?: boolean; removedAgainTimes?: number; failWrites?: number; notCoincided?: DatapathItem[]; invariant?: DatapathItem[]; carriedOver?: DatapathItem[]; switches?: { kill: boolean }; cfg?: Record<string, number> } = {}) {
  const dir = mkdtempSync(join(tmpdir(), 'cw-restore-'));
  const metrics = new Registry();
  const written: DatapathItem[] = [];
  const alerts: { raised: Omit<Alert, 'status' | 'createdAt'>[]; resolved: string[] } = { raised: [], resolved: [] };
  const present = new Set<DatapathItem>();
  let removedAgain = opts.removedAgainTimes ?? 0;
  let failWrites = opts.failWrites ?? 0;
  const writer: ItemWriter = {
    plan: async (items) => planRestore(items, [{ family: 4, dev: 'v0', address: '10.9.0.1/24' }]),
    write: async (items) =>
      items.map((item) => {
        if (item === viaGw && failWrites > 0) {
          failWrites--;
          return { ok: false, reason: 'Nexthop has invalid gateway' };
        }
        written.push(item);
        present.add(item);
        return { ok: true, result: 'added' };
      }),
  };
  const gate = new Gate({
    controls: {
      settings: () => ({ restore: 'on', restartCilium: 'off', quarantine: 'off', ...opts.settings }),
      killSwitch: () => ({ active: opts.switches?.kill ?? opts.kill ?? false, source: 'config' }),
      halt: () => ({ active: false, source: 'config' }),
    },
    journal: new FileJournal(dir),
    clock,
    log: silent,
    metrics,
  });
  const statuses: unknown[] = [];
  const cfg = restoreConfig.parse({ quietPeriodMs: 30, verifyStableMs: 40, maxRepeats: 3, ...opts.cfg });
  const report = (trigger: string, coincided?: boolean): DamageReport => {
    const items = missing
      .filter((m) => !present.has(m.item))
      .map((m) => (opts.notCoincided ? { ...m, coincidedWithNetworkd: !opts.notCoincided.includes(m.item) } : m))
      .map((m) => (opts.invariant?.includes(m.item) ? { ...m, source: 'invariant' as const } : m));
    const any = coincided ?? items.some((m) => m.coincidedWithNetworkd ?? true);
    return { at: clock.monotonic(), missing: items, coincidedWithNetworkd: any, trigger };
  };
  const rung: RestoreRung = new RestoreRung(
    {
      gate,
      writer,
      damage: {
        check: async (trigger) => {
          if (present.size > 0 && removedAgain > 0) {
            removedAgain--;
            present.clear();
          }
          const r = report(trigger);
          rung.onReport(r);
          return r;
        },
      },
      clock,
      log: silent,
      metrics,
      status: { publish: (_s, snap) => statuses.push(snap) },
      alerter: { raise: (a) => alerts.raised.push(a), resolve: (id) => alerts.resolved.push(id) },
      node: 'node-a',
      site: 'lab',
      canWrite: opts.canWrite === false ? { ok: false, reason: 'no CAP_NET_ADMIN' } : { ok: true },
      ...(opts.carriedOver ? { carriedOver: opts.carriedOver } : {}),
    },
    cfg,
  );
  const state = () => (rung.snapshot() as { current: { state: string } | null; last: { state: string } | null });
  return { rung, written, alerts, metrics, report, state, cleanup: async () => { await rung.stop(); rmSync(dir, { recursive: true, force: true }); } };
}

const restart = () => ({ kind: 'NetworkdRestarted' as const, at: clock.monotonic(), wallAt: Date.now(), origins: ['network1' as const] });
const link = (ifindex: number, administrativeState: string) => ({ kind: 'LinkStateChanged' as const, at: clock.monotonic(), wallAt: Date.now(), ifindex, administrativeState });

describe('restore rung', () => {
  let h: ReturnType<typeof harness>;
  afterEach(async () => h && (await h.cleanup()));

  it('restores exactly the missing items, in dependency order, once every managed link entered configuring', async () => {
    h = harness({ cfg: { quietPeriodMs: 10_000 } });
    h.rung.onSignal(link(2, 'configured'));
    h.rung.onSignal(link(3, 'configured'));
    h.rung.onSignal(restart());
    h.rung.onReport(h.report('netlink'));
    expect(h.written).toHaveLength(0); // links not yet configuring: flush may still be under way
    h.rung.onSignal(link(2, 'configuring'));
    h.rung.onSignal(link(3, 'configuring'));
    await vi.waitFor(() => expect(h.written).toHaveLength(4));
    expect(h.written).toEqual([onLink, viaGw, proxyRule, lookupLocal]);
    await vi.waitFor(() => expect(h.state().last?.state).toBe('restored'));
    expect(await h.metrics.metrics()).toContain('connwatch_restores_total{result="restored"} 1');
    expect(await h.metrics.metrics()).toContain('connwatch_restore_latency_seconds_count 1');
    expect(await h.metrics.metrics()).toContain('connwatch_detection_seconds_count 1');
  });

  it('falls back to a quiet period when networkd is not on the bus (no link states)', async () => {
    h = harness();
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.written).toHaveLength(4));
    await vi.waitFor(() => expect(h.state().last?.state).toBe('restored'));
  });

  it('reports, and does not repair, a loss without networkd activity', async () => {
    h = harness();
    h.rung.onReport(h.report('steady', false));
    await new Promise((r) => setTimeout(r, 80));
    expect(h.written).toHaveLength(0);
    expect(h.state().current).toBeNull();
    expect(h.rung.snapshot()).toMatchObject({ notRepaired: { trigger: 'steady', items: expect.arrayContaining([{ item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical' }]) } });
    expect(await h.metrics.metrics()).toContain('connwatch_restores_total{result="not_repaired"} 1');
  });

  it('restores only the items whose own loss coincided with networkd, and reports the rest', async () => {
    h = harness({ notCoincided: [lookupLocal] });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.written).toHaveLength(3));
    expect(h.written).not.toContain(lookupLocal);
    expect(h.rung.snapshot()).toMatchObject({ notRepaired: { items: [{ item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical' }] } });
  });

  it('regression (review): an unrelated item missing without networkd does not block verification or fake "fighting"', async () => {
    h = harness({ notCoincided: [proxyRule] });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.state().last?.state).toBe('restored'));
    expect(h.written).not.toContain(proxyRule);
    expect(h.alerts.raised).toEqual([]);
  });

  it('regression (review): lifting the kill switch lets the next report restore', async () => {
    const switches = { kill: true };
    h = harness({ switches });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(async () => expect(await h.metrics.metrics()).toContain('connwatch_restores_total{result="killed"} 1'));
    h.rung.onReport(h.report('steady'));
    expect(h.written).toHaveLength(0);
    switches.kill = false;
    h.rung.onReport(h.report('steady'));
    await vi.waitFor(() => expect(h.state().last?.state).toBe('restored'));
    expect(await h.metrics.metrics()).toContain('connwatch_restores_total{result="killed"} 1');
  });

  it('restores items a previous run journalled as declined, even without new networkd activity', async () => {
    h = harness({ notCoincided: [lookupLocal, viaGw, onLink, proxyRule], carriedOver: [lookupLocal] });
    h.rung.onReport(h.report('start'));
    await vi.waitFor(() => expect(h.written).toEqual([lookupLocal]));
    expect(h.rung.snapshot()).toMatchObject({ notRepaired: { items: expect.any(Array) } });
  });

  it('never writes a profile invariant that was not learned here', async () => {
    h = harness({ invariant: [lookupLocal] });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.written).toHaveLength(3));
    expect(h.written).not.toContain(lookupLocal);
  });

  it('in shadow mode records "would have restored" and changes nothing', async () => {
    h = harness({ settings: { restore: 'shadow' } });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(async () => expect(await h.metrics.metrics()).toContain('connwatch_restores_total{result="shadowed"} 1'));
    expect(h.written).toHaveLength(0);
    const timeline = (h.rung.snapshot() as { current: { timeline: { what: string }[] } }).current.timeline;
    expect(timeline.map((t) => t.what)).toContain('would have restored 4 item(s) (shadow mode)');
  });

  it('with the kill switch on restores nothing', async () => {
    h = harness({ kill: true });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(async () => expect(await h.metrics.metrics()).toContain('connwatch_restores_total{result="killed"} 1'));
    expect(h.written).toHaveLength(0);
  });

  it('stops after maxRepeats and says "fighting networkd", with an alert', async () => {
    h = harness({ removedAgainTimes: 100 });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.state().current?.state).toBe('fighting'));
    expect(h.written.length).toBe(3 * 4);
    expect(h.alerts.raised.map((a) => a.cause)).toEqual(['FightingNetworkd']);
    expect(h.alerts.raised[0]!.evidence).toMatchObject({ restores: 3 });
  });

  it('resolves its "fighting networkd" page once the datapath is whole again by other means', async () => {
    h = harness({ removedAgainTimes: 100 });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.state().current?.state).toBe('fighting'));
    h.rung.onReport({ at: 0, missing: [], coincidedWithNetworkd: false, trigger: 'steady' });
    expect(h.alerts.resolved).toContain('FightingNetworkd/node-a');
    expect(h.state()).toMatchObject({ current: null, last: { state: 'fighting' } });
  });

  it('repeats when networkd removes the items once more, then verifies', async () => {
    h = harness({ removedAgainTimes: 1 });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.state().last?.state).toBe('restored'));
    expect(h.written.length).toBe(8);
  });

  it('regression (suite flake): a networkd restart heard after its losses were restored does not orphan the verification', async () => {
    h = harness();
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.written).toHaveLength(4));
    h.rung.onSignal(restart());
    await vi.waitFor(() => expect(h.state().last?.state).toBe('restored'));
  });

    it('a second networkd restart opens a new episode with its own repeat budget; a late-heard first one does not', async () => {
    h = harness({ cfg: { verifyStableMs: 5_000 } });
    h.rung.onReport(h.report('netlink')); // losses first: the episode opens on the damage
    await vi.waitFor(() => expect(h.written).toHaveLength(4));
    h.rung.onSignal(restart()); // the same restart, heard late: same episode
    expect((h.rung.snapshot() as { current: { id: number } }).current.id).toBe(1);
    h.rung.onSignal(restart()); // another restart: a new episode
    expect((h.rung.snapshot() as { current: { id: number; restores: number } }).current).toMatchObject({ id: 2, restores: 0 });
  });

  it('retries a write that failed mid-flush without paging, then verifies', async () => {
    h = harness({ failWrites: 1 });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.state().last?.state).toBe('restored'));
    expect(h.written.filter((i) => i === viaGw)).toHaveLength(1);
    expect(h.alerts.raised).toEqual([]);
  });

  it('regression (bench hang): a report arriving during the retry hold does not cancel the retry', async () => {
    h = harness({ failWrites: 1 });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.written).toHaveLength(3));
    h.rung.onReport(h.report('steady'));
    h.rung.onReport(h.report('steady'));
    await vi.waitFor(() => expect(h.state().last?.state).toBe('restored'));
    expect(h.written.filter((i) => i === viaGw)).toHaveLength(1);
  });

  it('pages RestoreFailed (not "fighting") when writes keep failing', async () => {
    h = harness({ failWrites: 100 });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.state().current?.state).toBe('failed'));
    expect(h.alerts.raised.map((a) => a.cause)).toEqual(['RestoreFailed']);
    expect(h.alerts.raised[0]!.summary).toContain('Nexthop has invalid gateway');
  });

  it('without CAP_NET_ADMIN skips the rung and says why', async () => {
    h = harness({ canWrite: false });
    h.rung.onReport(h.report('netlink'));
    await vi.waitFor(() => expect(h.state().current?.state).toBe('failed'));
    expect(h.written).toHaveLength(0);
    expect(h.rung.snapshot()).toMatchObject({ enabled: false, skipped: 'no CAP_NET_ADMIN' });
  });
});
