/**
 * The datapath reader and writer against a real kernel, in a network namespace of the test's
 * own (no lab needed): what the writer adds reads back equal, attribute for attribute; EEXIST
 * is success; the same rule with another protocol is a second rule; nothing is ever deleted.
 */
import { execFileSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execIpRunner } from '../../src/datapath/ip.js';
import { parseAddresses, parseRoutes, parseRules } from '../../src/datapath/ipjson.js';
import { describeItem, itemKey } from '../../src/datapath/items.js';
import { ciliumProfile, ProfileSet } from '../../src/datapath/profiles.js';
import { readDatapath } from '../../src/datapath/reader.js';
import { addItem, planRestore } from '../../src/datapath/writer.js';
import type { DatapathItem, DatapathSnapshot, RuleItem } from '../../src/types.js';
import { fixture } from '../unit/datapath/helpers.js';

const root = process.getuid?.() === 0;
if (!root) console.warn('datapath netns tests skipped: need root for network namespaces');

const NS = `cwdp-${process.pid}-${Math.random().toString(36).slice(2, 6)}`;
const ip = (...args: string[]) => execFileSync('ip', ['-n', NS, ...args], { encoding: 'utf8' });
const run = execIpRunner({ argv: ['ip', '-n', NS], timeoutMs: 5_000 });

/** The Cilium items of the recorded ≥1.14 fixture (the same namespace layout is built below). */
function fixtureItems(): DatapathItem[] {
  const items: DatapathItem[] = [];
  for (const family of [4, 6] as const) {
    const rules = parseRules(fixture('cilium-1.14', `rule-v${family}`), family);
    const routes = parseRoutes(fixture('cilium-1.14', `route-v${family}`), family);
    if (!rules.ok || !routes.ok) throw new Error('fixture');
    items.push(...rules.items, ...routes.items);
  }
  const profiles = new ProfileSet([ciliumProfile]);
  profiles.noteRules(items.filter((item): item is RuleItem => item.kind === 'rule'));
  const addresses = parseAddresses(fixture('cilium-1.14', 'addr'));
  if (!addresses.ok) throw new Error('fixture');
  profiles.noteAddresses(addresses.items);
  return items.filter((item) => profiles.claim(item) !== undefined);
}

async function read(): Promise<DatapathSnapshot> {
  const result = await readDatapath(run, () => 0);
  if (!result.ok) throw new Error(`${result.reason} (${result.hint})`);
  return result.snapshot;
}

describe.skipIf(!root)('datapath reader and writer in a real network namespace', () => {
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', NS]);
    ip('link', 'set', 'lo', 'up');
    ip('link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth1');
    ip('link', 'add', 'cilium_host', 'type', 'veth', 'peer', 'name', 'cilium_net');
    ip('link', 'add', 'lxc1', 'type', 'veth', 'peer', 'name', 'lxc1p');
    for (const link of ['eth0', 'eth1', 'cilium_host', 'cilium_net', 'lxc1', 'lxc1p']) ip('link', 'set', link, 'up');
    ip('addr', 'add', '192.168.10.2/24', 'dev', 'eth0');
    ip('-6', 'addr', 'add', 'fd10::2/64', 'dev', 'eth0', 'nodad');
    ip('addr', 'add', '10.0.1.1/32', 'dev', 'cilium_host');
    ip('-6', 'addr', 'add', 'fd01::1/128', 'dev', 'cilium_host', 'nodad');
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', NS]);
  });

  it('what the writer adds, in restore order, reads back equal attribute for attribute', async () => {
    const items = fixtureItems();
    expect(items.length).toBeGreaterThanOrEqual(20);
    const plan = planRestore(items, (await read()).addresses);
    expect(plan.held).toEqual([]);
    for (const item of plan.ordered) {
      const result = await addItem(run, item);
      expect(result, describeItem(item)).toMatchObject({ ok: true, result: 'added' });
    }
    const live = await read();
    const liveKeys = new Set([...live.rules, ...live.routes].map(itemKey));
    expect(items.filter((item) => !liveKeys.has(itemKey(item))).map(describeItem)).toEqual([]);
  });

  it('adding again is EEXIST, counted as success', async () => {
    for (const item of fixtureItems()) expect(await addItem(run, item)).toMatchObject({ ok: true, result: 'exists' });
  });

  it('the same rule with another protocol is a second rule, not EEXIST', async () => {
    const rule: RuleItem = { kind: 'rule', family: 4, priority: 9, fwmark: 0x200, fwmask: 0xf00, table: '2004', action: 'lookup', protocol: 'unspec' };
    expect(await addItem(run, rule)).toMatchObject({ ok: true, result: 'added' });
    const rules = (await read()).rules.filter((candidate) => candidate.priority === 9 && candidate.family === 4);
    expect(rules.map((candidate) => candidate.protocol).sort()).toEqual(['kernel', 'unspec']);
  });

  it('restores a flushed rule set exactly, and never removes what is there', async () => {
    const before = await read();
    const lost = fixtureItems().filter((item) => item.kind === 'rule' && item.priority !== 100);
    for (const rule of lost) if (rule.kind === 'rule') ip(`-${rule.family}`, 'rule', 'del', 'priority', String(rule.priority), ...(rule.src ? ['from', rule.src] : []), ...(rule.dst ? ['to', rule.dst] : []), 'protocol', rule.protocol);
    const damaged = await read();
    expect(damaged.rules.length).toBe(before.rules.length - lost.length);
    for (const item of planRestore(lost, damaged.addresses).ordered) expect((await addItem(run, item)).ok).toBe(true);
    const after = await read();
    expect(new Set(after.rules.map(itemKey))).toEqual(new Set(before.rules.map(itemKey)));
    // The kernel adds IPv6 link-local and multicast routes of its own a while after a link comes up
    // (later still under load): they are not the test's to compare.
    const settled = (routes: DatapathSnapshot['routes']) => new Set(routes.filter((route) => !/^(fe80:|ff00:)/.test(route.dst)).map(itemKey));
    expect(settled(after.routes)).toEqual(settled(before.routes));
  });

  it('a failing write is data with a reason (unknown device)', async () => {
    const result = await addItem(run, { kind: 'route', family: 4, table: '11', type: 'unicast', dst: '10.9.0.0/16', dev: 'nope0', protocol: 'kernel' });
    expect(result).toMatchObject({ ok: false, reason: expect.stringMatching(/nope0|Cannot find device/) });
  });

  it('a read in a namespace that does not exist is a failure with a reason, not a throw', async () => {
    const result = await readDatapath(execIpRunner({ argv: ['ip', '-n', `${NS}-absent`], timeoutMs: 5_000 }), () => 0);
    expect(result).toMatchObject({ ok: false, reason: expect.stringContaining(`${NS}-absent`) });
    const missing = await readDatapath(execIpRunner({ argv: ['/nonexistent/ip'], timeoutMs: 5_000 }), () => 0);
    expect(missing).toMatchObject({ ok: false, reason: '/nonexistent/ip not found' });
  });
});
