// Issue 15, the agent in Kubernetes mode: the pure parts (switch parsing, the status patch, the
// node name rule) as tables, and the reporter's write schedule on fake timers — verdict changes
// at once, everything else jittered, a heartbeat per period, a missing object waited for, a
// failing write backed off.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { resolveNodeName } from '../../../src/config/mode.js';
import { boundedList, statusPatch } from '../../../src/kube/agent/channel.js';
import { KubeControls, controlsOf, parseSwitch } from '../../../src/kube/agent/controls.js';
import { KubeNodeReporter } from '../../../src/kube/agent/reporter.js';
import type { ChannelStatus, Clock, Verdict } from '../../../src/types.js';

const silent = pino({ level: 'silent' });

describe('the ConfigMap switches', () => {
  it.each([
    [undefined, { active: false }],
    ['', { active: false }],
    ['false', { active: false }],
    ['False', { active: false }],
    ['off', { active: false }],
    ['true', { active: true }],
    [' TRUE ', { active: true }],
    ['yes', { active: true }],
    ['1', { active: true }],
    ['ture', { active: true, problem: 'data.killSwitch is "ture": neither true nor false, read as true (fail safe)' }],
  ] as const)('%j → %j', (value, expected) => {
    expect(parseSwitch('killSwitch', value)).toEqual(expected);
  });

  it('an absent ConfigMap stops nothing; a present one says what it says', () => {
    expect(controlsOf(undefined, 'connwatch/connwatch', 't')).toMatchObject({ present: false, killSwitch: false, halt: false, problems: [] });
    expect(controlsOf({ metadata: { resourceVersion: '7' }, data: { halt: 'true' } }, 'connwatch/connwatch', 't')).toMatchObject({ present: true, killSwitch: false, halt: true, resourceVersion: '7' });
  });

  it('the cache on disk is obeyed from the first moment, marked cached, and ignored when it names another ConfigMap', () => {
    const dir = mkdtempSync(join(tmpdir(), 'cw-controls-'));
    try {
      const cachePath = join(dir, 'kube-controls.json');
      writeFileSync(cachePath, JSON.stringify({ configMap: 'connwatch/connwatch', present: true, killSwitch: true, halt: false, problems: [], readAt: '2026-01-01T00:00:00.000Z' }));
      const options = { namespace: 'connwatch', cachePath, clock: { now: () => 0, monotonic: () => 0 }, log: silent, watch: { timeoutSeconds: 300, relistJitterMs: 0, backoff: { initialMs: 1, maxMs: 1 } } };
      const controls = new KubeControls({ ...options, name: 'connwatch' });
      expect(controls.killSwitch()).toEqual({ active: true, source: 'configmap connwatch/connwatch (cached 2026-01-01T00:00:00.000Z)' });
      expect(controls.halt().active).toBe(false);
      const other = new KubeControls({ ...options, name: 'other' });
      expect(other.killSwitch()).toEqual({ active: false, source: 'configmap connwatch/other (not read yet)' });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the status patch', () => {
  const status: ChannelStatus = { state: 'Healthy', verdict: { kind: 'Healthy', reasons: [], since: 't' }, evidence: { failingProbes: [], missing: [] }, apiServer: 'reachable', kubeletReady: 'True', heartbeatAt: 't', agentVersion: 'v' };

  it('nulls what is absent, so a merge patch leaves nothing of the previous status behind', () => {
    expect(statusPatch(status).status).toMatchObject({ lastRestore: null, request: null, verified: null, verdict: { basis: null }, evidence: { signal: null } });
    const full = statusPatch({ ...status, lastRestore: { at: 't', result: 'restored', items: 3 }, verdict: { ...status.verdict, basis: 'datapath' } }).status;
    expect(full).toMatchObject({ lastRestore: { result: 'restored' }, verdict: { basis: 'datapath' } });
  });

  it('bounds lists and strings', () => {
    expect(boundedList(['a', 'b', 'c'], 3)).toEqual(['a', 'b', 'c']);
    expect(boundedList(['a', 'b', 'c', 'd', 'e'], 3)).toEqual(['a', 'b', '… and 3 more']);
    expect(boundedList(['x'.repeat(500)])[0]).toHaveLength(200);
  });
});

describe('the node name', () => {
  it.each([
    { mode: 'kubernetes', configured: undefined, env: { NODE_NAME: 'n1' }, expected: { ok: true, node: 'n1' } },
    { mode: 'kubernetes', configured: 'n1', env: { NODE_NAME: 'n1' }, expected: { ok: true, node: 'n1' } },
    { mode: 'kubernetes', configured: undefined, env: {}, expected: { ok: false, reason: expect.stringContaining('NODE_NAME is not set') } },
    { mode: 'kubernetes', configured: 'host', env: { NODE_NAME: '' }, expected: { ok: false, reason: expect.stringContaining('NODE_NAME is empty') } },
    { mode: 'kubernetes', configured: 'other', env: { NODE_NAME: 'n1' }, expected: { ok: false, reason: expect.stringContaining('says "n1"') } },
    { mode: 'baremetal', configured: undefined, env: { NODE_NAME: 'n1' }, expected: { ok: true, node: 'the-host' } },
    { mode: 'baremetal', configured: 'mine', env: {}, expected: { ok: true, node: 'mine' } },
  ] as const)('$mode, node $configured, env $env', ({ mode, configured, env, expected }) => {
    expect(resolveNodeName({ mode, configured, env, hostname: 'the-host' })).toMatchObject(expected);
  });
});

describe('the reporter: when it writes', () => {
  type Call = { op: string; body: unknown; at: number };
  let calls: Call[];
  let answer: { ok: true; value: object } | { ok: false; code: 'not-found' | 'unreachable'; reason: string; hint: string };
  const clock: Clock = { now: () => Date.now(), monotonic: () => Date.now() };
  const client = {
    patchStatus: async (_r: unknown, _ref: unknown, body: unknown) => {
      calls.push({ op: 'status', body, at: Date.now() });
      return answer;
    },
    create: async (_r: unknown, body: unknown) => {
      calls.push({ op: 'event', body, at: Date.now() });
      return { ok: true as const, value: body as object };
    },
    patch: async () => ({ ok: true as const, value: {} }),
  };
  const verdict = (kind: Verdict['kind']): Verdict => ({ kind, at: 0, reasons: [kind], basis: 'datapath' });
  let reporter: KubeNodeReporter;
  const statusWrites = () => calls.filter((c) => c.op === 'status');

  beforeEach(() => {
    vi.useFakeTimers({ now: 1_000_000 });
    calls = [];
    answer = { ok: true, value: {} };
    // random() = 0.5: jittered writes wait half of jitterMs (15 s); the heartbeat comes 15 s early.
    reporter = new KubeNodeReporter({ namespace: 'connwatch', node: 'n1', clock, log: silent, version: 'v', heartbeatMs: 300_000, jitterMs: 30_000, eventIntervalMs: 600_000, random: () => 0.5 });
  });
  afterEach(async () => {
    await reporter.stop();
    vi.useRealTimers();
  });

  it('the first write is jittered; a verdict change goes at once; a restore waits for the jitter; then a heartbeat per period', async () => {
    reporter.start(client as never);
    await vi.advanceTimersByTimeAsync(14_999);
    expect(statusWrites()).toHaveLength(0);
    await vi.advanceTimersByTimeAsync(1);
    expect(statusWrites()).toHaveLength(1);

    reporter.verdict(verdict('ReadyButNoPodNetwork'), 'Repairing');
    await vi.advanceTimersByTimeAsync(0);
    expect(statusWrites()).toHaveLength(2);
    expect(statusWrites()[1]!.body).toMatchObject({ status: { state: 'Repairing', verdict: { kind: 'ReadyButNoPodNetwork' } } });
    expect(calls.filter((c) => c.op === 'event').map((c) => (c.body as { reason: string }).reason)).toEqual(['VerdictReadyButNoPodNetwork']);

    reporter.restored({ wallAt: Date.now(), result: 'restored', items: 14 });
    reporter.verdict(verdict('ReadyButNoPodNetwork'), 'Repairing'); // nothing new: no write
    await vi.advanceTimersByTimeAsync(14_999);
    expect(statusWrites()).toHaveLength(2);
    await vi.advanceTimersByTimeAsync(1);
    expect(statusWrites()).toHaveLength(3);
    expect(statusWrites()[2]!.body).toMatchObject({ status: { lastRestore: { result: 'restored', items: 14 } } });

    // Nothing changes: the next write is the heartbeat, 285 s later (at least every 300 s).
    const last = statusWrites()[2]!.at;
    await vi.advanceTimersByTimeAsync(300_000);
    expect(statusWrites()).toHaveLength(4);
    expect(statusWrites()[3]!.at - last).toBe(285_000);
  });

  it('a missing object is waited for (no retries), then written as soon as the object watch sees it', async () => {
    answer = { ok: false, code: 'not-found', reason: '404', hint: '' };
    reporter.start(client as never);
    reporter.verdict(verdict('Healthy'), 'Healthy');
    await vi.advanceTimersByTimeAsync(0);
    expect(statusWrites()).toHaveLength(1);
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(statusWrites()).toHaveLength(1);
    answer = { ok: true, value: {} };
    reporter.objectPresent(true);
    await vi.advanceTimersByTimeAsync(15_000);
    expect(statusWrites()).toHaveLength(2);
  });

  it('a failing write is retried with backoff, never more often than every 5 s, at most once per heartbeat period', async () => {
    answer = { ok: false, code: 'unreachable', reason: 'refused', hint: '' };
    reporter.start(client as never);
    reporter.verdict(verdict('Healthy'), 'Healthy');
    await vi.advanceTimersByTimeAsync(3_600_000);
    const gaps = statusWrites().slice(1).map((c, i) => c.at - statusWrites()[i]!.at);
    expect(gaps[0]).toBe(5_000);
    expect(gaps.every((g, i) => i === 0 || g >= gaps[i - 1]!)).toBe(true);
    expect(Math.max(...gaps)).toBeLessThanOrEqual(300_000);
    expect(statusWrites().length).toBeLessThan(20);
  });
});
