// Issue 18: the bare-metal Cilium restart — gate, stagger by a hash of the host name, per-host
// rate limit (kept across restarts), the synthetic executed grant, retry after a failed
// verification, quarantine journalled once per incident as not available.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { LocalCiliumRestart, LOCAL_RESTART_FILE, staggerDelayMs, type RestartGate } from '../../../src/remediation/local-restart.js';
import type { UnitRestartResult } from '../../../src/signals/systemd1.js';
import type { ActionRequest, ChannelGrant, ChannelRequest, GateDecision } from '../../../src/types.js';
import { testContext } from '../signals/context.js';

const REQUEST: ChannelRequest = { rung: 'restartCilium', reason: 'ReadyButNoPodNetwork for 30 s', since: '2026-11-25T12:00:00.000Z', verdict: 'ReadyButNoPodNetwork' };

function harness(opts: { decision?: GateDecision; restart?: () => UnitRestartResult; node?: string; stateDir?: string; stagger?: number; minInterval?: number } = {}) {
  const ctx = testContext();
  const stateDir = opts.stateDir ?? mkdtempSync(join(tmpdir(), 'cw-local-restart-'));
  const submitted: ActionRequest[] = [];
  const held: { kind: string; why: string }[] = [];
  const restarts: number[] = [];
  const grants: ChannelGrant[] = [];
  const gate: RestartGate = {
    submit: async (request) => {
      submitted.push(request);
      const decision = opts.decision ?? 'executed';
      if (decision !== 'executed') return { decision, journalSeq: submitted.length };
      return { decision, outcome: await request.execute(new AbortController().signal), journalSeq: submitted.length };
    },
    hold: (request, why) => held.push({ kind: request.kind, why }),
  };
  let n = 0;
  const local = new LocalCiliumRestart({
    ctx,
    config: { staggerSeconds: opts.stagger ?? 60, minIntervalSeconds: opts.minInterval ?? 900, jobTimeoutSeconds: 90 },
    unit: 'cilium.service',
    node: opts.node ?? 'host-a',
    stateDir,
    verifySeconds: 120,
    gate,
    restarter: {
      restart: async (unit) => {
        restarts.push(Date.now());
        return opts.restart?.() ?? { ok: true, unit, job: `/org/freedesktop/systemd1/job/${++n}`, result: 'done', invocationBefore: 'aa', invocationAfter: `b${n}`, ms: 5 };
      },
    },
    onGrants: (g) => grants.push(...g),
    newId: () => `local-${++n}`,
  });
  return { ctx, local, submitted, held, restarts, grants, stateDir };
}

describe('the bare-metal Cilium restart', () => {
  beforeEach(() => vi.useFakeTimers({ now: Date.UTC(2026, 10, 25, 12, 0, 0) }));
  afterEach(() => vi.useRealTimers());

  it('staggers by a stable hash of the host name, spread over the window', () => {
    expect(staggerDelayMs('host-a', 60)).toBe(staggerDelayMs('host-a', 60));
    expect(staggerDelayMs('host-a', 0)).toBe(0);
    const delays = Array.from({ length: 1000 }, (_, i) => staggerDelayMs(`node-${i}`, 60));
    expect(Math.min(...delays)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...delays)).toBeLessThan(60_000);
    // A fleet of a thousand hosts lands in every tenth of the window (no same-second herd).
    const buckets = new Set(delays.map((d) => Math.floor(d / 6000)));
    expect(buckets.size).toBe(10);
    expect(new Set(delays.map((d) => Math.floor(d / 1000))).size).toBeGreaterThan(50);
  });

  it('restarts after the stagger, then hands the detector one executed, non-shadow grant', async () => {
    const h = harness();
    const delay = staggerDelayMs('host-a', 60);
    h.local.request(REQUEST);
    await vi.advanceTimersByTimeAsync(delay - 1);
    expect(h.restarts).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.restarts).toHaveLength(1);
    expect(h.submitted[0]).toMatchObject({ kind: 'restartCilium', evidence: { request: REQUEST, node: 'host-a', attempt: 1 } });
    expect(h.grants).toHaveLength(1);
    const grant = h.grants[0]!;
    expect(grant).toMatchObject({ id: 'local-2', rung: 'restartCilium', shadow: false, attempt: 1 });
    expect(Date.parse(grant.executed!.at)).toBe(Date.now());
    expect(Date.parse(grant.expiresAt) - Date.now()).toBeGreaterThanOrEqual(120_000);
    expect(grant.executed!.detail).toContain('job /org/freedesktop/systemd1/job/1 done, InvocationID aa → b1');
    // The rate limit survives a restart of the agent.
    expect(JSON.parse(readFileSync(join(h.stateDir, LOCAL_RESTART_FILE), 'utf8')).lastAttemptAt).toBe(Date.now());
    rmSync(h.stateDir, { recursive: true, force: true });
  });

  it('a restart that did not fix the node is retried while the request stands, no sooner than the rate limit, and journalled as held', async () => {
    const h = harness({ stagger: 0, minInterval: 600 });
    h.local.request(REQUEST);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.restarts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(120_000);
    h.local.verified({ grant: h.grants[0]!.id, ok: false, at: new Date().toISOString(), detail: 'not fixed within 120 s' });
    expect(h.held).toEqual([{ kind: 'restartCilium', why: expect.stringMatching(/^rate limited: the last restart on this host was 120 s ago \(localRestart.minIntervalSeconds 600\); next at /) }]);
    await vi.advanceTimersByTimeAsync(480_000 - 1);
    expect(h.restarts).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(1);
    expect(h.restarts).toHaveLength(2);
    expect(h.restarts[1]! - h.restarts[0]!).toBe(600_000);
    expect(h.submitted[1]!.evidence).toMatchObject({ attempt: 2 });
    // A verified restart ends it: nothing more is scheduled.
    h.local.verified({ grant: h.grants[1]!.id, ok: true, at: new Date().toISOString(), detail: 'fixed' });
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(h.restarts).toHaveLength(2);
  });

  it('keeps the rate limit across an agent restart (read from the state directory)', async () => {
    const first = harness({ stagger: 0, minInterval: 900 });
    first.local.request(REQUEST);
    await vi.advanceTimersByTimeAsync(0);
    await first.local.stop();
    await vi.advanceTimersByTimeAsync(60_000);
    const second = harness({ stagger: 0, minInterval: 900, stateDir: first.stateDir });
    second.local.request(REQUEST);
    await vi.advanceTimersByTimeAsync(0);
    expect(second.restarts).toEqual([]);
    expect(second.held[0]!.why).toMatch(/the last restart on this host was 60 s ago/);
    await vi.advanceTimersByTimeAsync(840_000);
    expect(second.restarts).toHaveLength(1);
    rmSync(first.stateDir, { recursive: true, force: true });
  });

  it('a withdrawn request cancels the scheduled restart', async () => {
    const h = harness({ stagger: 60 });
    h.local.request(REQUEST);
    h.local.request(undefined);
    await vi.advanceTimersByTimeAsync(120_000);
    expect(h.submitted).toEqual([]);
    expect(h.ctx.published.get('localRestart')).toMatchObject({ request: null, next: null });
  });

  it('shadow and off go through the gate and restart nothing (the gate journals "would have")', async () => {
    for (const decision of ['shadowed', 'disabled', 'killed'] as const) {
      const h = harness({ decision, stagger: 0 });
      h.local.request(REQUEST);
      await vi.advanceTimersByTimeAsync(3_600_000);
      expect(h.submitted).toHaveLength(1);
      expect(h.restarts).toEqual([]);
      expect(h.grants).toEqual([]);
    }
  });

  it('a failed RestartUnit gives no grant and is retried after the rate limit', async () => {
    const h = harness({ stagger: 0, minInterval: 60, restart: () => ({ ok: false, unit: 'cilium.service', stage: 'job', job: '/j/1', result: 'failed', reason: 'job /j/1 for cilium.service ended "failed"', ms: 3 }) });
    h.local.request(REQUEST);
    await vi.advanceTimersByTimeAsync(0);
    expect(h.grants).toEqual([]);
    expect(h.ctx.published.get('localRestart')).toMatchObject({ last: { decision: 'executed', ok: false } });
    await vi.advanceTimersByTimeAsync(60_000);
    expect(h.restarts).toHaveLength(2);
  });

  it('quarantine is journalled once per incident as not available on bare metal, and pages nothing itself', async () => {
    const h = harness({ stagger: 0 });
    const quarantine: ChannelRequest = { ...REQUEST, rung: 'quarantine', reason: '2 Cilium restart(s) did not fix the node' };
    h.local.request(quarantine);
    h.local.request(quarantine);
    expect(h.held).toEqual([{ kind: 'quarantine', why: 'not available on bare metal: a human must take this host out of service' }]);
    expect(h.ctx.published.get('localRestart')).toMatchObject({ quarantine: 'requested; not available on bare metal' });
    h.local.request(undefined);
    h.local.request(quarantine);
    expect(h.held).toHaveLength(2);
    expect(h.submitted).toEqual([]);
  });
});
