// Issue 12: the restore's attribution — put back only what networkd removed, and everything it
// removed. Each reproduction of the issue, at the timings it gives and the timings around them,
// with the real agent (dist/cli.js) in a lab node and the real systemd-networkd restarted under
// it. Every test asserts what must be true, observed in the kernel (readNode), the agent's
// /status (inside the node) and its action journal. Each test brings up its own lab and tears it
// down.
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it, onTestFailed, onTestFinished } from 'vitest';
import { startLab } from '../../scripts/lab/index.js';
import { labCapable, ping } from '../../scripts/lab/testing.js';
import type { Lab, LabPod, LabProfile } from '../../scripts/lab/types.js';
import { describeItem } from '../../src/datapath/items.js';
import type { JournalEntry } from '../../src/remediation/journal.js';
import type { MissingItem, RuleItem } from '../../src/types.js';
import { agentStatus, readJournal, readNode, startLabAgent, type LabAgent, type LabAgentOptions } from '../support/lab-agent.js';

const capable = labCapable();
let lab: Lab | undefined;
let agents: LabAgent[] = [];

afterEach(async () => {
  // A new array, not a cleared one: the failure report (onTestFailed, after this hook) still reads the old one.
  const stopping = agents;
  agents = [];
  for (const a of [...stopping].reverse()) await a.stop();
  await lab?.down();
  lab = undefined;
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Polls `check` every `everyMs` until it holds or `timeoutMs` passed; whether it held. */
async function until(check: () => Promise<boolean>, timeoutMs: number, everyMs = 100): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await check()) return true;
    if (Date.now() >= end) return false;
    await sleep(everyMs);
  }
}

/** A lab and an agent that has finished starting (its first read, learning and follow-ups are over): the node as an operator finds it. */
async function setUp(profile: LabProfile, restoreYaml: string[] = []): Promise<{ lab: Lab; agent: LabAgent }> {
  lab = await startLab({ profile });
  const agent = await addAgent(lab, restoreYaml);
  await agent.waitForMsg('connwatch running', 0);
  await sleep(500);
  return { lab, agent };
}

async function addAgent(l: Lab, restoreYaml: string[] = [], options: LabAgentOptions = {}): Promise<LabAgent> {
  const agent = await startLabAgent(l, [], restoreYaml, options);
  agents.push(agent);
  return agent;
}

/**
 * On failure (or always, with LAB_EXPLAIN=1), prints what the agents said since `since` (the
 * restore timeline, learning, damage), so that a red row can be read without re-running it.
 */
function explainOnFailure(since: number): void {
  const mine = agents;
  const explain = () => {
    const lines = mine.flatMap((a, n) =>
      a.logs.lines
        .filter((l) => Date.parse(String(l.time)) >= since && typeof l.msg === 'string' && !/^signal: /.test(l.msg))
        .map((l) => `  [agent ${n + 1}] +${Date.parse(String(l.time)) - since} ms ${String(l.msg).slice(0, 300)}${l.missing ? ` missing=${JSON.stringify(l.missing).slice(0, 400)}` : ''}${l.added || l.dropped ? ` added=${JSON.stringify(l.added)} dropped=${JSON.stringify(l.dropped)}` : ''}`),
    );
    process.stderr.write(`agent log since the first step (${lines.length} lines):\n${lines.join('\n')}\n`);
  };
  if (process.env.LAB_EXPLAIN === '1') onTestFinished(explain);
  else onTestFailed(explain);
}

/** The kernel's rules and routes that belong to this pod address (its per-pod items). */
async function podItemsInKernel(l: Lab, pod: Pick<LabPod, 'ip4' | 'ip6'>): Promise<string[]> {
  const snap = await readNode(l);
  const mine = (prefix: string | undefined) => prefix === `${pod.ip4}/32` || prefix === `${pod.ip6}/128`;
  const rules = snap.rules.filter((r) => mine(r.src) || mine(r.dst));
  const routes = snap.routes.filter((r) => mine(r.dst));
  return [...rules, ...routes].map(describeItem);
}

/** Whether a label names this pod's address. */
function namesPod(label: string, pod: Pick<LabPod, 'ip4' | 'ip6'>): boolean {
  return label.includes(`${pod.ip4}/32`) || label.includes(`${pod.ip6}/128`);
}

function restoreIntents(a: LabAgent): JournalEntry[] {
  return readJournal(a).filter((e) => e.action === 'restore' && e.phase === 'intent');
}

/** Every item label a restore intent names: in its summary (what it writes) and its evidence (what it plans). */
function intentLabels(entry: JournalEntry): string[] {
  const missing = ((entry.evidence as { missing?: MissingItem[] } | undefined)?.missing ?? []).map((m) => m.label);
  return [entry.summary, ...missing];
}

function logsSince(a: LabAgent, since: number, prefix: string): Record<string, unknown>[] {
  return a.logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith(prefix) && Date.parse(String(l.time)) >= since);
}

/** Every item label /status shows as missing: the datapath's damage, the current episode's plan, and what is not repaired. */
function statusMissingLabels(status: Record<string, unknown> | undefined): string[] {
  const s = status as { datapath?: { damage?: { missing?: { item: string }[] } }; incident?: { current?: { missing?: { item: string }[] } | null; notRepaired?: { items?: { item: string }[] } | null } } | undefined;
  return [...(s?.datapath?.damage?.missing ?? []), ...(s?.incident?.current?.missing ?? []), ...(s?.incident?.notRepaired?.items ?? [])].map((m) => m.item);
}

function isLookupLocal(r: RuleItem): boolean {
  return r.action === 'lookup' && r.table === 'local' && r.priority === 100;
}

async function lookupLocalBack(l: Lab): Promise<boolean> {
  const rules = (await readNode(l)).rules.filter(isLookupLocal);
  return rules.some((r) => r.family === 4) && rules.some((r) => r.family === 6);
}

/** The baseline is on disk (a killed agent's successor starts from it). */
async function baselineSaved(a: LabAgent): Promise<boolean> {
  return until(async () => existsSync(join(a.stateDir, 'baseline.json')), 5_000, 50);
}

describe.skipIf(!capable)('issue 12: the restore puts back only what networkd removed, and everything it removed (real networkd, real agent)', () => {
  // ── 1 ─────────────────────────────────────────────────────────────────────────────────────
  // cilium-1.14: networkd removes no rules; the stand-in deletes pod-a's per-pod rules when the
  // pod goes. The issue's default verify window (3 s) is what keeps the episode open.
  // Delays count from the first command's return (as with the lab's CLI, one command after the
  // other), except "overlapping": the restart is issued while the pod's deletion is under way.
  it.each([
    { order: 'restart-networkd, then pod-del', delayMs: 100 },
    { order: 'restart-networkd, then pod-del', delayMs: 300 },
    { order: 'restart-networkd, then pod-del', delayMs: 1000 },
    { order: 'pod-del, then restart-networkd', delayMs: 0 },
    { order: 'pod-del overlapping restart-networkd', delayMs: 0 },
  ])('1. $order $delayMs ms later (cilium-1.14): the deleted pod does not get its rules back, and no restore names them', async ({ order, delayMs }) => {
    const { lab, agent } = await setUp('cilium-1.14', ['verifyStableMs: 3000']);
    const pod = lab.description.pods.find((p) => p.name === 'pod-a')!;
    const t0 = Date.now();
    explainOnFailure(t0);
    if (order.startsWith('restart')) {
      await lab.restartNetworkd();
      await sleep(delayMs);
      await lab.removePod('pod-a');
    } else if (order.includes('overlapping')) {
      const deleting = lab.removePod('pod-a');
      await sleep(delayMs);
      await lab.restartNetworkd();
      await deleting;
    } else {
      await lab.removePod('pod-a');
      await sleep(delayMs);
      await lab.restartNetworkd();
    }
    // Longer than the verify window: an episode that was going to put them back has done so.
    await sleep(4_000);
    const left = await podItemsInKernel(lab, pod);
    const restored = restoreIntents(agent).filter((e) => intentLabels(e).some((label) => namesPod(label, pod)));
    expect.soft(left, `pod-a's per-pod items in the kernel ${Date.now() - t0} ms after the first step (the stand-in deleted them)`).toEqual([]);
    expect.soft(
      restored.map((e) => `#${e.seq} ${e.decision}: ${e.summary}`),
      'journalled restore intents naming pod-a',
    ).toEqual([]);
  }, 30_000);

  // ── 2 ─────────────────────────────────────────────────────────────────────────────────────
  // cilium-pre-1.14: networkd flushes every CNI rule, the new pod's included.
  it.each([{ delayMs: 0 }, { delayMs: 1000 }, { delayMs: 5000 }])('2. pod-add pod-y, then restart-networkd $delayMs ms later (pre-1.14): pod-y\'s rules come back, or /status reports them missing', async ({ delayMs }) => {
    const { lab } = await setUp('cilium-pre-1.14');
    const t0 = Date.now();
    explainOnFailure(t0);
    const pod = await lab.addPod('pod-y');
    const wanted = (await podItemsInKernel(lab, pod)).filter((label) => label.includes(' rule '));
    expect(wanted, 'the stand-in installed pod-y\'s per-pod rules').toHaveLength(4);
    await sleep(delayMs);
    // networkd 252 flushes every foreign rule here, pod-y's included (the lab's own tests check that).
    await lab.restartNetworkd();
    const restartedAt = Date.now();
    const missingNow = async () => {
      const present = new Set(await podItemsInKernel(lab, pod));
      return wanted.filter((label) => !present.has(label));
    };
    // The baseline's restore of the same flush is back in ~0.2 s; give pod-y's rules 6 s.
    const back = await until(async () => (await missingNow()).length === 0, 6_000, 200);
    if (back) return;
    const missing = await missingNow();
    const status = await agentStatus(lab);
    const reported = statusMissingLabels(status);
    const verdict = (status as { incident?: { verdict?: { kind: string; reasons: string[] } } } | undefined)?.incident?.verdict;
    const members = (status as { datapath?: { baseline?: { members?: number } } } | undefined)?.datapath?.baseline?.members;
    expect(status, `/status answers ${Date.now() - restartedAt} ms after the restart`).toBeDefined();
    // If connwatch could not put them back, it must at least say so: never "every item present".
    expect(
      missing.filter((label) => !reported.includes(label)),
      `pod-y's rules missing from the kernel ${Date.now() - restartedAt} ms after the restart and not reported in /status (verdict ${JSON.stringify(verdict)}, ${members} baseline members, missing reported: ${JSON.stringify(reported)})`,
    ).toEqual([]);
    expect(verdict?.reasons ?? [], '/status incident.verdict').not.toContain('every CNI baseline item present');
  }, 30_000);

  // ── 3 ─────────────────────────────────────────────────────────────────────────────────────
  // cilium-1.14: networkd removes no rules, so only the operator removed pref 9.
  it.each([{ delayMs: 0 }, { delayMs: 100 }, { delayMs: 1000 }])(
    '3. an operator\'s `ip -4 rule del pref 9 …lookup 2004`, then restart-networkd $delayMs ms later (cilium-1.14): the rule stays gone, no restore intent names it, /status notRepaired does',
    async ({ delayMs }) => {
      const { lab, agent } = await setUp('cilium-1.14');
      const t0 = Date.now();
      explainOnFailure(t0);
      const del = await lab.exec('node', ['ip', '-4', 'rule', 'del', 'pref', '9', 'fwmark', '0x200/0xf00', 'lookup', '2004']);
      expect(del.code, del.stderr).toBe(0);
      await sleep(delayMs);
      await lab.restartNetworkd();
      // The restart's own episode (the IPv4 gateway routes the kernel dropped) is restored and verified (500 ms) by then.
      await sleep(3_000);
      const isPref9v4 = (label: string) => /-4 rule pref 9 .*fwmark 0x200\/0xf00 lookup 2004/.test(label);
      const inKernel = (await readNode(lab)).rules.filter((r) => r.family === 4 && r.priority === 9).map(describeItem);
      const intents = restoreIntents(agent).filter((e) => intentLabels(e).some(isPref9v4));
      const status = await agentStatus(lab);
      const notRepaired = (status as { incident?: { notRepaired?: { items?: { item: string }[] } | null } } | undefined)?.incident?.notRepaired;
      expect.soft(inKernel, 'v4 pref 9 in the kernel after the restart (the operator deleted it)').toEqual([]);
      expect.soft(
        intents.map((e) => `#${e.seq} ${e.decision}: ${e.summary}`),
        'journalled restore intents naming the operator-deleted pref 9',
      ).toEqual([]);
      expect.soft(status, '/status answers').toBeDefined();
      expect.soft((notRepaired?.items ?? []).map((i) => i.item).filter(isPref9v4), `/status incident.notRepaired (${JSON.stringify(notRepaired)})`).toHaveLength(1);
    },
    30_000,
  );

  // ── 4 ─────────────────────────────────────────────────────────────────────────────────────
  // cilium-pre-1.14: the flush takes `lookup local` away while no agent listens.
  it.each([{ delayMs: 0 }, { delayMs: 200 }, { delayMs: 500 }])('4. agent killed, restart-networkd, agent started $delayMs ms later (pre-1.14): lookup local comes back, loopback works', async ({ delayMs }) => {
    const { lab, agent: first } = await setUp('cilium-pre-1.14');
    expect(await baselineSaved(first), 'the first agent saved its baseline').toBe(true);
    const t0 = Date.now();
    explainOnFailure(t0);
    await first.kill('SIGKILL');
    const flushed = await lab.restartNetworkd();
    expect(flushed.after.rules.filter(isLookupLocal), 'the flush removed lookup local (the reproduction)').toEqual([]);
    await sleep(delayMs);
    const startedAt = Date.now();
    await addAgent(lab, [], { dir: first.dir, awaitLearning: false });
    const back = await until(() => lookupLocalBack(lab), 5_000, 100);
    const loopback = await ping(lab, 'node', '127.0.0.1');
    const status = await agentStatus(lab);
    expect.soft(back, `lookup local (v4 and v6, pref 100) back within 5 s of the agent's start (${Date.now() - startedAt} ms)`).toBe(true);
    expect.soft(loopback, 'ping 127.0.0.1 in the node').toBe(true);
    expect.soft(status, '/status on 127.0.0.1 answers').toBeDefined();
  }, 30_000);

  // ── 5 ─────────────────────────────────────────────────────────────────────────────────────
  // cilium-pre-1.14: a flap — ten restarts, then one more 2 s later.
  it.each([{ gapMs: 200 }, { gapMs: 300 }, { gapMs: 500 }])('5. ten restarts $gapMs ms apart, then one more 2 s later (pre-1.14): lookup local back within 2 s of the last; rate-limited decisions journalled with their reason', async ({ gapMs }) => {
    const { lab, agent } = await setUp('cilium-pre-1.14');
    const t0 = Date.now();
    explainOnFailure(t0);
    for (let i = 0; i < 10; i++) {
      await lab.restartNetworkd();
      await sleep(gapMs);
    }
    await sleep(2_000 - gapMs);
    const lastCalled = Date.now();
    await lab.restartNetworkd();
    const lastRestart = Date.now();
    const back = await until(() => lookupLocalBack(lab), 2_000, 50);
    const backAfter = Date.now() - lastRestart;
    // Let the agent say what it decided (its next attempt, if it was held back) before reading the journal.
    await sleep(500);
    // However the agent words it: any log line about a rate limit holding a restore back.
    const rateLimited = logsSince(agent, t0, '').map((l) => String(l.msg)).filter((msg) => /rate.?limit/i.test(msg));
    // A held-back restore's own entry: its decision, summary or stated reason (not the timeline an executed one carries).
    const reasonOf = (e: JournalEntry) => {
      const evidence = (e.evidence ?? {}) as { why?: unknown; reason?: unknown };
      return `${e.decision} ${e.summary} ${String(evidence.why ?? '')} ${String(evidence.reason ?? '')} ${e.outcome && !e.outcome.ok ? e.outcome.reason : ''}`;
    };
    const journalled = readJournal(agent).filter((e) => e.action === 'restore' && /rate.?limit/i.test(reasonOf(e)));
    const writes = readJournal(agent).filter((e) => e.action === 'restore' && e.phase === 'intent' && e.decision === 'executed').length;
    expect.soft(back, `lookup local back within 2 s of the last restart (checked ${backAfter} ms after it returned; it took ${lastRestart - lastCalled} ms; ${writes} restore writes, rate limited: ${JSON.stringify(rateLimited.slice(0, 3))})`).toBe(true);
    if (rateLimited.length > 0) expect.soft(journalled.length, `journal entries for ${rateLimited.length} rate-limited decision(s) (${rateLimited[0]})`).toBeGreaterThan(0);
  }, 40_000);
});
