import { mkdtempSync, readFileSync, rmSync, chmodSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import pino from 'pino';
import { Registry } from 'prom-client';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Gate, type ActionSettings, type GateControls } from '../../../src/remediation/gate.js';
import { FileJournal, readEntries } from '../../../src/remediation/journal.js';
import type { ActionOutcome, ActionRequest } from '../../../src/types.js';
import { ManualClock } from '../../support/clock.js';

const silent = pino({ level: 'silent' });

function fakeAction(kind: ActionRequest['kind'], outcome: ActionOutcome = { ok: true }) {
  const calls: number[] = [];
  const request: ActionRequest = {
    kind,
    summary: `fake ${kind}`,
    evidence: { missing: ['pref 100 lookup local'] },
    execute: async () => {
      calls.push(1);
      return outcome;
    },
  };
  return { request, calls };
}

function controls(settings: Partial<ActionSettings> = {}, flags: { kill?: boolean; halt?: boolean } = {}): GateControls {
  const all: ActionSettings = { restore: 'on', restartCilium: 'on', quarantine: 'on', ...settings };
  return {
    settings: () => all,
    killSwitch: () => ({ active: flags.kill ?? false, source: 'config' }),
    halt: () => ({ active: flags.halt ?? false, source: 'controller (cached)' }),
  };
}

describe('action gate', () => {
  let dir: string;
  let metrics: Registry;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'cw-gate-'));
    metrics = new Registry();
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const gateWith = (c: GateControls, journal = new FileJournal(dir), registry = new Registry()) => {
    metrics = registry;
    return new Gate({ controls: c, journal, clock: new ManualClock(), log: silent, metrics: registry });
  };

  it.each([
    { name: 'enabled action runs', settings: {}, flags: {}, decision: 'executed', runs: 1 },
    { name: 'shadow records would-have and does not run', settings: { restore: 'shadow' as const }, flags: {}, decision: 'shadowed', runs: 0 },
    { name: 'off does not run', settings: { restore: 'off' as const }, flags: {}, decision: 'disabled', runs: 0 },
    { name: 'kill switch beats enablement', settings: {}, flags: { kill: true }, decision: 'killed', runs: 0 },
    { name: 'kill switch beats shadow', settings: { restore: 'shadow' as const }, flags: { kill: true }, decision: 'killed', runs: 0 },
    { name: 'halt stops restore', settings: {}, flags: { halt: true }, decision: 'halted', runs: 0 },
  ])('$name', async ({ settings, flags, decision, runs }) => {
    const { request, calls } = fakeAction('restore');
    const result = await gateWith(controls(settings, flags)).submit(request);
    expect(result.decision).toBe(decision);
    expect(calls.length).toBe(runs);
    const lines = readEntries(join(dir, 'actions.jsonl'));
    expect(lines[0]).toMatchObject({ phase: 'intent', action: 'restore', decision, evidence: { missing: ['pref 100 lookup local'] } });
    expect(lines.length).toBe(runs ? 2 : 1);
  });

  it('journals the outcome of an executed action under the same sequence number', async () => {
    const { request } = fakeAction('restore', { ok: false, reason: 'EPERM' });
    const result = await gateWith(controls()).submit(request);
    const [intent, outcome] = readEntries(join(dir, 'actions.jsonl'));
    expect(result.outcome).toEqual({ ok: false, reason: 'EPERM' });
    expect(outcome).toMatchObject({ seq: intent!.seq, phase: 'outcome', outcome: { ok: false, reason: 'EPERM' } });
  });

  it('continues sequence numbers across restarts (append-only)', async () => {
    await gateWith(controls()).submit(fakeAction('restore').request);
    const second = await gateWith(controls()).submit(fakeAction('restore').request);
    expect(second.journalSeq).toBe(2);
    expect(readFileSync(join(dir, 'actions.jsonl'), 'utf8').trim().split('\n')).toHaveLength(4);
  });

  it('turns a throwing action into a failed outcome instead of crashing', async () => {
    const request: ActionRequest = { kind: 'restore', summary: 'boom', evidence: {}, execute: async () => { throw new Error('bug'); } };
    const result = await gateWith(controls()).submit(request);
    expect(result.outcome).toMatchObject({ ok: false, reason: expect.stringContaining('bug') });
  });

  it('aborts an action that exceeds its timeout', async () => {
    const request: ActionRequest = { kind: 'restore', summary: 'hang', evidence: {}, execute: () => new Promise(() => {}) };
    const gate = new Gate({ controls: controls(), journal: new FileJournal(dir), clock: new ManualClock(), log: silent, metrics, timeoutMs: { restore: 20 } });
    const result = await gate.submit(request);
    expect(result.outcome).toMatchObject({ ok: false, reason: expect.stringContaining('timed out') });
  });

  it('with an unwritable journal still restores, but refuses a Cilium restart', async () => {
    const ro = join(dir, 'ro');
    mkdirSync(ro);
    const journal = new FileJournal(ro);
    chmodSync(ro, 0o500);
    // root ignores directory permissions; make the journal path a directory instead so writes fail for anyone.
    mkdirSync(join(ro, 'actions.jsonl'), { recursive: true });
    const gate = gateWith(controls(), journal);
    const restore = fakeAction('restore');
    const restart = fakeAction('restartCilium');
    expect((await gate.submit(restore.request)).outcome).toEqual({ ok: true });
    const refused = await gate.submit(restart.request);
    expect(restart.calls).toHaveLength(0);
    expect(refused.outcome).toMatchObject({ ok: false, reason: expect.stringContaining('journal') });
    expect(journal.recent().map((e) => e.action)).toEqual(['restore', 'restore', 'restartCilium']);
  });

  it('counts every decision in connwatch_remediations_total', async () => {
    await gateWith(controls({ restartCilium: 'shadow' })).submit(fakeAction('restartCilium').request);
    const text = await metrics.metrics();
    expect(text).toContain('connwatch_remediations_total{action="restartCilium",decision="shadowed",result="none"} 1');
  });

  it('lists intents a crashed run left without an outcome', () => {
    const journal = new FileJournal(dir);
    journal.append({ wallAt: 1, phase: 'intent', action: 'restartCilium', decision: 'executed', summary: 'restart' });
    expect(new FileJournal(dir).interrupted()).toMatchObject([{ seq: 1, action: 'restartCilium' }]);
  });
});
