// Issue 6: the restore, end to end — the real connwatch agent in the lab's node, the real
// systemd-networkd restarted under it. Each test brings up its own lab and tears it down.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startLab } from '../../scripts/lab/index.js';
import { itemKey as labKey } from '../../scripts/lab/iproute.js';
import { labCapable, markedConnect, ping } from '../../scripts/lab/testing.js';
import type { Lab, LabProfile } from '../../scripts/lab/types.js';
import { describeItem, itemKey } from '../../src/datapath/items.js';
import type { JournalEntry } from '../../src/remediation/journal.js';
import type { DatapathItem } from '../../src/types.js';
import { readNode, startLabAgent, type LabAgent } from '../support/lab-agent.js';

const capable = labCapable();
let lab: Lab | undefined;
let agent: LabAgent | undefined;

afterEach(async () => {
  await agent?.stop();
  await lab?.down();
  agent = undefined;
  lab = undefined;
});

/** The CNI items as the kernel holds them now, with every attribute (what a restore must reproduce). */
async function cniItemsNow(l: Lab): Promise<DatapathItem[]> {
  const wanted = new Set([...l.description.cniState.rules, ...l.description.cniState.routes].map(labKey));
  const snap = await readNode(l);
  return [...snap.rules, ...snap.routes].filter((item) => wanted.has(labKey(item)));
}

function missingFrom(expected: DatapathItem[], actual: DatapathItem[]): string[] {
  const have = new Set(actual.map(itemKey));
  return expected.filter((item) => !have.has(itemKey(item))).map(describeItem);
}

function journal(a: LabAgent): JournalEntry[] {
  // Actions only: verdict changes are journalled too (`phase: "verdict"`), and are not actions.
  return readFileSync(join(a.stateDir, 'actions.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as JournalEntry | { phase: 'verdict' })
    .filter((e): e is JournalEntry => e.phase !== 'verdict');
}

async function setUp(profile: LabProfile, extraYaml: string[] = [], restoreYaml: string[] = []): Promise<{ lab: Lab; agent: LabAgent; before: DatapathItem[] }> {
  lab = await startLab({ profile });
  agent = await startLabAgent(lab, extraYaml, restoreYaml);
  return { lab, agent, before: await cniItemsNow(lab) };
}

describe.skipIf(!capable)('restore in the lab (real networkd, real agent)', () => {
  it('with the kill switch on, the pre-1.14 flush stays: traffic, marked traffic and loopback broken, nothing restored', async () => {
    const { lab, agent, before } = await setUp('cilium-pre-1.14', ['actions: { killSwitch: true }']);
    const t0 = Date.now();
    await lab.restartNetworkd();
    await agent.waitForMsg('datapath damage', t0);
    await agent.waitForMsg('restore: not restored: killed', t0);
    expect(await ping(lab, 'node', '127.0.0.1')).toBe(false);
    expect(await markedConnect(lab)).toBeUndefined();
    expect(missingFrom(before, await cniItemsNow(lab))).toContain('-4 rule pref 100 from all lookup local proto unspec');
    const decisions = journal(agent).map((e) => e.decision);
    expect(decisions.length).toBeGreaterThan(0);
    expect(new Set(decisions)).toEqual(new Set(['killed']));
  });

  it.each(['cilium-pre-1.14', 'cilium-1.14'] as const)('%s: restores exactly the CNI set networkd removed, attribute for attribute; traffic resumes without a CNI restart', async (profile) => {
    // The agent's own telemetry on 127.0.0.1 is a verify target: it answers only once `lookup local` is back.
    const { lab, agent, before } = await setUp(profile, [], ['verifyTargets: ["127.0.0.1:9820"]']);
    const t0 = Date.now();
    const flushed = await lab.restartNetworkd();
    expect(flushed.after.rules.length + flushed.after.routes.length).toBeLessThan(flushed.before.rules.length + flushed.before.routes.length);
    const verified = await agent.waitForMsg('restore: verified', t0);
    expect(verified.msg).toContain('1 target(s) answer');
    expect(missingFrom(before, await cniItemsNow(lab))).toEqual([]);
    expect(await ping(lab, 'node', '127.0.0.1')).toBe(true);
    expect(await markedConnect(lab)).toBeDefined();
    for (const pod of lab.description.pods) expect(await ping(lab, 'node', pod.ip4), pod.name).toBe(true);
    // Only restore actions were taken: no CNI restart, nothing removed.
    expect(new Set(journal(agent).map((e) => e.action))).toEqual(new Set(['restore']));
    // The operator's rule removed by the same restart is not the CNI's: it stays gone.
    const foreign = lab.description.foreignRule;
    const rules = (await readNode(lab)).rules;
    if (profile === 'cilium-pre-1.14') expect(rules.some((r) => r.priority === foreign.priority)).toBe(false);
  });

  it('a bare `ip rule del` of lookup local (no networkd activity) is reported critical and not restored', async () => {
    const { lab, agent } = await setUp('cilium-pre-1.14');
    const t0 = Date.now();
    await lab.exec('node', ['ip', 'rule', 'del', 'priority', '100']);
    const report = await agent.waitForMsg('CNI items missing without networkd activity', t0);
    expect(report.missing).toEqual([{ item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical' }]);
    await new Promise((r) => setTimeout(r, 1_500));
    expect((await readNode(lab)).rules.some((r) => r.priority === 100 && r.family === 4)).toBe(false);
    expect(agent.logs.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('restore: restored'))).toBe(false);
  });

  it('a verify target that does not answer is reported and the restore is never called verified', async () => {
    const { lab, agent } = await setUp('cilium-1.14', [], [`verifyTargets: ["${'10.77.0.2'}:1"]`, 'verifyTimeoutMs: 200']);
    const t0 = Date.now();
    await lab.restartNetworkd();
    const failed = await agent.waitForMsg('restore: verify targets not answering', t0);
    expect(failed.msg).toContain('10.77.0.2:1 (ECONNREFUSED)');
    expect(agent.logs.lines.some((l) => typeof l.msg === 'string' && l.msg.startsWith('restore: verified'))).toBe(false);
  });

  it('in shadow mode records "would have restored" and changes nothing', async () => {
    const { lab, agent, before } = await setUp('cilium-pre-1.14', ['actions: { restore: shadow }']);
    const t0 = Date.now();
    await lab.restartNetworkd();
    await agent.waitForMsg('restore: would have restored', t0);
    await new Promise((r) => setTimeout(r, 500));
    expect(missingFrom(before, await cniItemsNow(lab)).length).toBeGreaterThan(0);
    expect(journal(agent).every((e) => e.decision === 'shadowed')).toBe(true);
    expect(await ping(lab, 'node', '127.0.0.1')).toBe(false);
  });
});
