import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { BaselineCore, type BaselineOptions, type EvidenceBySource } from '../../../src/datapath/baseline.js';
import { parseAddresses, parseRoutes, parseRules } from '../../../src/datapath/ipjson.js';
import { describeItem, itemKey } from '../../../src/datapath/items.js';
import { ciliumProfile, profileSchema } from '../../../src/datapath/profiles.js';
import type { DatapathSnapshot } from '../../../src/types.js';
import { fixtureListing, without, type Listing } from './helpers.js';

const options: BaselineOptions = { quietMs: 10_000, coincidenceSlackMs: 5_000, perPodGraceMs: 5_000 };
const PODS = new Set(['10.0.1.5', 'fd01::5']);
const healthy: EvidenceBySource = { cilium: { healthy: true, endpoints: PODS } };
const T0 = 1_000_000;
const WALL = 1_780_000_000_000;

function snapshot(listing: Listing, at = T0): DatapathSnapshot {
  const parse = <T>(result: { ok: true; items: T[] } | { ok: false; reason: string }): T[] => {
    if (!result.ok) throw new Error(result.reason);
    return result.items;
  };
  return {
    at,
    rules: [...parse(parseRules(listing.rule4, 4)), ...parse(parseRules(listing.rule6, 6))],
    routes: [...parse(parseRoutes(listing.route4, 4)), ...parse(parseRoutes(listing.route6, 6))],
    addresses: parse(parseAddresses(listing.addr)),
  };
}

const pre = fixtureListing('cilium-pre-1.14');
const post = fixtureListing('cilium-1.14');

/** What networkd 252 does to pre-1.14 Cilium on restart: every rule whose protocol is not kernel goes. */
function flushForeignRules(listing: Listing): Listing {
  const foreign = (entry: Record<string, unknown>) => entry.protocol !== '2';
  return { ...listing, rule4: without(listing.rule4, foreign), rule6: without(listing.rule6, foreign) };
}

function learned(core = new BaselineCore([ciliumProfile], options)): BaselineCore {
  const outcome = core.learn(snapshot(pre), healthy, T0, WALL);
  expect(outcome.refused).toEqual([]);
  return core;
}

const missingLines = (core: BaselineCore, listing: Listing, at = T0, trigger = 'steady') =>
  core.assess(snapshot(listing, at), trigger, at).missing.map((entry) => `${entry.severity} ${describeItem(entry.item)}`);

describe('learning', () => {
  it('learns every claimed item, attribute for attribute, and nothing else', () => {
    const core = learned();
    const members = core.members();
    expect(members).toHaveLength(20);
    expect(members.map((member) => describeItem(member.item))).not.toContainEqual(expect.stringContaining('pref 500'));
    expect(members.find((member) => member.item.kind === 'rule' && member.item.priority === 111 && member.item.family === 4)).toMatchObject({
      profile: 'cilium',
      severity: 'critical',
      pod: '10.0.1.5',
      learnedAt: WALL,
      item: { kind: 'rule', family: 4, priority: 111, src: '10.0.1.5/32', table: '11', action: 'lookup', protocol: 'unspec' },
    });
  });

  it.each([
    ['the CNI is unhealthy', { cilium: { healthy: false } }, T0, /does not report healthy/],
    ['the CNI did not answer at all', {}, T0, /does not report healthy/],
    ['networkd was active 2 s ago', healthy, T0 - 2_000, /networkd activity/],
  ] as const)('refuses to learn when %s', (_why, evidence, activityAt, reason) => {
    const core = new BaselineCore([ciliumProfile], options);
    if (activityAt !== T0) core.noteNetworkdActivity(activityAt);
    const outcome = core.learn(snapshot(pre), evidence as EvidenceBySource, T0, WALL);
    // Only a listed pod's own items may still join (below); nothing of the node-wide state does.
    expect(outcome.added.filter((member) => member.pod === undefined)).toEqual([]);
    expect(outcome.refused).toEqual([expect.stringMatching(reason)]);
  });

  it('regression (issue 12): learns a listed pod\'s items at once even while networkd is at work, and nothing else', () => {
    const core = new BaselineCore([ciliumProfile], options);
    core.noteNetworkdActivity(T0 - 2_000);
    const outcome = core.learn(snapshot(pre), healthy, T0, WALL);
    expect(outcome.added.length).toBeGreaterThan(0);
    expect(new Set(outcome.added.map((member) => member.pod))).toEqual(new Set(['10.0.1.5', 'fd01::5']));
    expect(outcome.refused).toEqual([expect.stringMatching(/networkd activity.*only new pods' items learned/)]);
  });

  it('learns once networkd has been quiet long enough', () => {
    const core = new BaselineCore([ciliumProfile], options);
    core.noteNetworkdActivity(T0 - 10_000);
    expect(core.learn(snapshot(pre), healthy, T0, WALL).added).toHaveLength(20);
  });

  it('regression (issue 12): a listed pod\'s item netlink saw added is learned even when a flush took it before any read', () => {
    const core = new BaselineCore([ciliumProfile], options);
    core.noteNetworkdActivity(T0 - 60_000);
    const podRule = (entry: Record<string, unknown>) => entry.priority === 20 && entry.dst === '10.0.1.5';
    const withoutPod = { ...pre, rule4: without(pre.rule4, podRule) };
    const seenRule = snapshot(pre).rules.find((rule) => rule.priority === 20 && rule.dst === '10.0.1.5/32')!;
    const nodeRule = snapshot(pre).rules.find((rule) => rule.priority === 9 && rule.family === 4)!;
    const outcome = core.learn(snapshot(withoutPod), healthy, T0, WALL, [seenRule, { ...nodeRule, priority: 8 }]);
    expect(outcome.added.map((member) => member.key)).toContain(itemKey(seenRule));
    expect(outcome.added.map((member) => member.item)).not.toContainEqual({ ...nodeRule, priority: 8 });
    core.noteNetworkdActivity(T0 + 5); // the flush that took it
    expect(core.assess(snapshot(withoutPod, T0 + 10), 'RuleRemoved', T0 + 10).missing.map((entry) => [entry.key, entry.coincidedWithNetworkd])).toEqual([[itemKey(seenRule), true]]);
  });

  it('never learns a state that breaks an invariant (first start after a flush)', () => {
    const core = new BaselineCore([ciliumProfile], options);
    const outcome = core.learn(snapshot(flushForeignRules(pre)), healthy, T0, WALL);
    expect(outcome.added.filter((member) => member.pod === undefined)).toEqual([]);
    expect(outcome.refused).toEqual([expect.stringMatching(/breaks an invariant/)]);
  });

  it("adds a pod's items only while the CNI lists the pod", () => {
    const core = new BaselineCore([ciliumProfile], options);
    core.learn(snapshot(pre), { cilium: { healthy: true, endpoints: new Set(['fd01::5']) } }, T0, WALL);
    const pods = core.members().flatMap((member) => (member.pod ? [member.pod] : []));
    expect(new Set(pods)).toEqual(new Set(['fd01::5']));
    core.learn(snapshot(pre), { cilium: { healthy: true } }, T0, WALL); // endpoint list unreadable: no per-pod adds
    expect(core.members().filter((member) => member.pod === '10.0.1.5')).toEqual([]);
  });

  it('relearning after a flush does not shrink the baseline (pre-1.14 Cilium still says healthy)', () => {
    const core = learned();
    const outcome = core.learn(snapshot(flushForeignRules(pre)), healthy, T0 + 60_000, WALL);
    expect(outcome.dropped).toEqual([]);
    expect(core.members()).toHaveLength(20);
  });
});

describe('damage', () => {
  it('names exactly the CNI items networkd removed, with severities, coinciding with its restart', () => {
    const core = learned();
    core.assess(snapshot(pre, T0 + 1_000), 'steady', T0 + 1_000);
    core.noteNetworkdActivity(T0 + 2_000);
    const report = core.assess(snapshot(flushForeignRules(pre), T0 + 2_040), 'NetworkdRestarted', T0 + 2_040);
    expect(report.coincidedWithNetworkd).toBe(true);
    expect(report.missing.every((entry) => entry.coincidedWithNetworkd && entry.source === 'baseline')).toBe(true);
    expect(report.missing.map((entry) => `${entry.severity} ${describeItem(entry.item)}`)).toEqual([
      'critical -4 rule pref 100 from all lookup local proto unspec',
      'critical -4 rule pref 111 from 10.0.1.5/32 lookup 11 proto unspec',
      'critical -4 rule pref 20 from all to 10.0.1.5/32 lookup main proto unspec',
      'critical -6 rule pref 100 from all lookup local proto unspec',
      'critical -6 rule pref 111 from fd01::5/128 lookup 11 proto unspec',
      'critical -6 rule pref 20 from all to fd01::5/128 lookup main proto unspec',
      'degraded -4 rule pref 10 from all fwmark 0xa00/0xf00 lookup 2005 proto unspec',
      'degraded -4 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto unspec',
      'degraded -6 rule pref 10 from all fwmark 0xa00/0xf00 lookup 2005 proto unspec',
      'degraded -6 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto unspec',
    ]);
  });

  it('reports a loss without networkd activity as not coinciding (an operator ip rule del)', () => {
    const core = learned();
    core.noteNetworkdActivity(T0 - 60_000);
    core.assess(snapshot(pre, T0 + 1_000), 'steady', T0 + 1_000);
    const gone = { ...pre, rule4: without(pre.rule4, (entry) => entry.priority === 100) };
    const report = core.assess(snapshot(gone, T0 + 20_000), 'RuleRemoved', T0 + 20_000);
    expect(report.missing.map((entry) => [describeItem(entry.item), entry.severity, entry.coincidedWithNetworkd])).toEqual([
      ['-4 rule pref 100 from all lookup local proto unspec', 'critical', false],
    ]);
    expect(report.coincidedWithNetworkd).toBe(false);
  });

  it('counts networkd activity heard shortly after the loss was seen (netlink before D-Bus)', () => {
    const core = learned();
    core.assess(snapshot(pre, T0), 'steady', T0);
    const flushed = flushForeignRules(pre);
    expect(core.assess(snapshot(flushed, T0 + 100), 'RuleRemoved', T0 + 100).coincidedWithNetworkd).toBe(false);
    core.noteNetworkdActivity(T0 + 300);
    expect(core.assess(snapshot(flushed, T0 + 400), 'NetworkdRestarted', T0 + 400).coincidedWithNetworkd).toBe(true);
  });

  it('regression (issue 12): a loss seen before networkd\'s process started is not networkd\'s, whatever that process does after', () => {
    const core = learned();
    core.assess(snapshot(pre, T0), 'steady', T0);
    const gone = { ...pre, rule4: without(pre.rule4, (entry) => entry.priority === 9) };
    expect(core.assess(snapshot(gone, T0 + 23), 'RuleRemoved', T0 + 23).coincidedWithNetworkd).toBe(false);
    core.noteNetworkdActivity(T0 + 130); // the restart, heard
    core.noteNetworkdActivity(T0 + 150); // a link configuring, heard
    const heardOnly = core.assess(snapshot(gone, T0 + 160), 'NetworkdRestarted', T0 + 160);
    expect(heardOnly.missing.map((entry) => [entry.coincidedWithNetworkd, entry.datedByLaterSignal])).toEqual([[true, true]]); // the heard time alone cannot tell, and says so
    core.noteNetworkdActivity(T0 + 100, { exact: true, supersedes: T0 + 130 }); // read from the process: it started at +100
    const report = core.assess(snapshot(flushForeignRules(gone), T0 + 200), 'NetworkdStarted', T0 + 200);
    const attribution = Object.fromEntries(report.missing.map((entry) => [describeItem(entry.item), entry.coincidedWithNetworkd]));
    expect(attribution['-4 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto unspec']).toBe(false);
    // What the new process flushed after it started is its doing.
    expect(attribution['-4 rule pref 100 from all lookup local proto unspec']).toBe(true);
  });

  it('regression (issue 12): networkd activity well before the item was last seen present did not remove it', () => {
    const core = learned();
    core.noteNetworkdActivity(T0 - 2_000, { exact: true }); // networkd started, flushed, was done
    core.assess(snapshot(pre, T0), 'steady', T0); // everything present after it
    const gone = { ...pre, rule4: without(pre.rule4, (entry) => entry.priority === 9) };
    expect(core.assess(snapshot(gone, T0 + 1_000), 'RuleRemoved', T0 + 1_000).missing.map((entry) => entry.coincidedWithNetworkd)).toEqual([false]);
  });

  it('regression (issue 12): a removal netlink announced before networkd\'s process started is dated by the announcement', () => {
    const core = learned();
    core.assess(snapshot(pre, T0), 'steady', T0);
    const gone = { ...pre, rule4: without(pre.rule4, (entry) => entry.priority === 9) };
    const rule = snapshot(pre).rules.find((r) => r.priority === 9 && r.family === 4)!;
    core.noteRemoved(itemKey(rule), T0 + 2); // the operator's ip rule del, heard
    core.noteNetworkdActivity(T0 + 12, { exact: true }); // the restart right after it
    expect(core.assess(snapshot(gone, T0 + 30), 'RuleRemoved', T0 + 30).missing.map((entry) => entry.coincidedWithNetworkd)).toEqual([false]);
  });

  it('review: a read that overlapped networkd\'s start dates a silent loss by its end, so the flush stays networkd\'s', () => {
    const core = new BaselineCore([ciliumProfile], options);
    core.learn(snapshot(post), healthy, T0, WALL);
    core.assess(snapshot(post, T0 + 1_000), 'steady', T0 + 1_000);
    const dropped = { ...post, route4: without(post.route4, (entry) => entry.gateway !== undefined) };
    core.noteNetworkdActivity(T0 + 2_010, { exact: true }); // the new networkd started while the read ran
    const overlapping = core.assess(snapshot(dropped, T0 + 2_000), 'NetworkdOnBus', T0 + 2_000, T0 + 2_030);
    expect(overlapping.missing.length).toBeGreaterThan(0);
    expect(overlapping.missing.every((entry) => entry.coincidedWithNetworkd)).toBe(true);
  });

  it('regression (issue 12): a flush by a networkd that started just before connwatch\'s first read is networkd\'s', () => {
    const core = learned();
    core.noteNetworkdActivity(T0 - 300, { exact: true });
    const report = core.assess(snapshot(flushForeignRules(pre), T0), 'start', T0);
    expect(report.missing.length).toBeGreaterThan(0);
    expect(report.missing.every((entry) => entry.coincidedWithNetworkd)).toBe(true);
  });

  it('reports the silent route loss of ≥1.14 (kernel drops routes when networkd re-adds the address)', () => {
    const core = new BaselineCore([ciliumProfile], options);
    core.learn(snapshot(post), healthy, T0, WALL);
    core.noteNetworkdActivity(T0 + 1_000);
    const dropped = { ...post, route4: without(post.route4, (entry) => entry.dev === 'eth0' && entry.table === '11') };
    expect(missingLines(core, dropped, T0 + 1_050)).toEqual([
      'critical -4 route unicast 192.168.10.1/32 dev eth0 table 11 scope link proto kernel',
      'critical -4 route unicast default via 192.168.10.1 dev eth0 table 11 scope global proto kernel',
    ]);
  });

  it('an agent started after the flush with its saved baseline reports the damage', () => {
    const saved = learned().members();
    const restarted = new BaselineCore([ciliumProfile], options, JSON.parse(JSON.stringify(saved)));
    const report = restarted.assess(snapshot(flushForeignRules(pre)), 'start', T0);
    // Nothing says networkd did it (it happened before we started): pod items wait out the churn grace.
    expect(report.missing).toHaveLength(6);
    expect(report.withheld).toHaveLength(4);
    expect(report.missing.every((entry) => entry.source === 'baseline' && !entry.coincidedWithNetworkd)).toBe(true);
    expect(restarted.assess(snapshot(flushForeignRules(pre), T0 + 5_000), 'steady', T0 + 5_000).missing).toHaveLength(10);
  });

  it('an agent started for the first time after the flush still reports the missing lookup local', () => {
    const core = new BaselineCore([ciliumProfile], options);
    const report = core.assess(snapshot(flushForeignRules(pre)), 'start', T0);
    expect(report.missing.map((entry) => [entry.source, entry.severity, describeItem(entry.item)])).toEqual([
      ['invariant', 'critical', '-4 rule pref 100 from all lookup local proto kernel'],
      ['invariant', 'critical', '-6 rule pref 100 from all lookup local proto kernel'],
    ]);
  });

  it('clears once the items are back', () => {
    const core = learned();
    core.assess(snapshot(flushForeignRules(pre)), 'x', T0);
    expect(core.assess(snapshot(pre, T0 + 10), 'x', T0 + 10).missing).toEqual([]);
  });
});

describe('membership changes only on CNI evidence', () => {
  const podGone = (listing: Listing): Listing => {
    const notPod = (entry: Record<string, unknown>) => entry.src === '10.0.1.5' || entry.dst === '10.0.1.5';
    return { ...listing, rule4: without(listing.rule4, notPod), route4: without(listing.route4, notPod) };
  };

  it('pod churn: a gone pod is withheld during the grace period, then dropped on the endpoint list, never reported', () => {
    const core = learned();
    core.assess(snapshot(pre), 'steady', T0);
    const churned = podGone(pre);
    const during = core.assess(snapshot(churned, T0 + 100), 'RuleRemoved', T0 + 100);
    expect(during.missing).toEqual([]);
    expect(during.withheld.map((entry) => entry.pod)).toEqual(['10.0.1.5', '10.0.1.5', '10.0.1.5']);
    const outcome = core.learn(snapshot(churned, T0 + 200), { cilium: { healthy: true, endpoints: new Set(['fd01::5']) } }, T0 + 200, WALL);
    expect(outcome.dropped.map((entry) => [entry.reason, entry.member.pod])).toEqual([
      ['endpoint gone', '10.0.1.5'],
      ['endpoint gone', '10.0.1.5'],
      ['endpoint gone', '10.0.1.5'],
    ]);
    const after = core.assess(snapshot(churned, T0 + 10_000), 'steady', T0 + 10_000);
    expect(after.missing).toEqual([]);
    expect(after.withheld).toEqual([]);
  });

  it('a pod item gone longer than the grace period while its endpoint stays listed is damage', () => {
    const core = learned();
    core.assess(snapshot(pre), 'steady', T0);
    core.assess(snapshot(podGone(pre), T0 + 100), 'RuleRemoved', T0 + 100);
    expect(core.assess(snapshot(podGone(pre), T0 + 6_000), 'steady', T0 + 6_000).missing).toHaveLength(3);
  });

  it('drops endpoint-gone pod items even during networkd activity, but adds nothing then', () => {
    const core = learned();
    core.noteNetworkdActivity(T0 + 1_000);
    const outcome = core.learn(snapshot(podGone(pre), T0 + 1_100), { cilium: { healthy: true, endpoints: new Set(['fd01::5']) } }, T0 + 1_100, WALL);
    expect(outcome.dropped).toHaveLength(3);
    expect(outcome.refused).toEqual([expect.stringMatching(/networkd activity/)]);
  });

  it('a CNI restart that reinstalls without one of its items removes it; without that evidence nothing leaves', () => {
    const core = learned();
    const without10 = { ...pre, rule4: without(pre.rule4, (entry) => entry.priority === 10) };
    expect(core.learn(snapshot(without10), healthy, T0 + 20_000, WALL).dropped).toEqual([]);
    const outcome = core.learn(snapshot(without10), { cilium: { ...healthy.cilium!, reinstalled: true } }, T0 + 40_000, WALL);
    expect(outcome.dropped.map((entry) => [entry.reason, describeItem(entry.member.item)])).toEqual([
      ['CNI reinstalled its state without it', '-4 rule pref 10 from all fwmark 0xa00/0xf00 lookup 2005 proto unspec'],
    ]);
    expect(core.members()).toHaveLength(19);
  });

  it('a reinstall during networkd activity is not adopted', () => {
    const core = learned();
    core.noteNetworkdActivity(T0 + 39_000);
    const flushed = flushForeignRules(pre);
    const outcome = core.learn(snapshot(flushed), { cilium: { ...healthy.cilium!, reinstalled: true } }, T0 + 40_000, WALL);
    expect(outcome.dropped).toEqual([]);
  });

  it('adopts a CNI upgrade (pre-1.14 → 1.14 protocols) from its reinstall', () => {
    const core = learned();
    const outcome = core.learn(snapshot(post), { cilium: { ...healthy.cilium!, reinstalled: true } }, T0 + 40_000, WALL);
    expect(outcome.dropped.length).toBeGreaterThan(0);
    expect(core.members().every((member) => member.item.protocol === 'kernel')).toBe(true);
    expect(core.members()).toHaveLength(20);
  });

  it("forgets members of a profile that is no longer configured", () => {
    const saved = learned().members();
    const frr = profileSchema.parse({ name: 'frr', rules: [{ description: 'vpn', priorities: [500], severity: 'critical' }] });
    const core = new BaselineCore([frr], options, saved);
    expect(core.members()).toEqual([]);
    core.learn(snapshot(pre), {}, T0, WALL);
    expect(core.members().map((member) => describeItem(member.item))).toEqual(['-4 rule pref 500 from 192.168.50.0/24 lookup 200 proto static']);
  });
});

describe('properties', () => {
  const all = snapshot(pre);
  const claimedKeys = new Set(learned().members().map((member) => member.key));
  const items = [...all.rules, ...all.routes];
  const step = fc.record({
    keep: fc.array(fc.boolean(), { minLength: items.length, maxLength: items.length }),
    healthy: fc.boolean(),
    activity: fc.boolean(),
    advance: fc.integer({ min: 0, max: 30_000 }),
  });

  it('without CNI evidence of removal, the baseline never shrinks and holds only claimed items ever seen', () => {
    fc.assert(
      fc.property(fc.array(step, { maxLength: 12 }), (steps) => {
        const core = new BaselineCore([ciliumProfile], options);
        let now = T0;
        const seen = new Set<string>();
        let previous = new Set<string>();
        for (const { keep, healthy: isHealthy, activity, advance } of steps) {
          now += advance;
          if (activity) core.noteNetworkdActivity(now);
          const live = items.filter((_, index) => keep[index]);
          const snap: DatapathSnapshot = {
            ...all,
            at: now,
            rules: live.filter((item) => item.kind === 'rule'),
            routes: live.filter((item) => item.kind === 'route'),
          };
          live.forEach((item) => seen.add(itemKey(item)));
          // The endpoint list always has every pod: no endpoint-gone evidence.
          core.learn(snap, { cilium: { healthy: isHealthy, endpoints: PODS } }, now, WALL);
          core.assess(snap, 'steady', now);
          const current = new Set(core.members().map((member) => member.key));
          for (const key of previous) expect(current.has(key)).toBe(true);
          for (const key of current) expect(seen.has(key) && claimedKeys.has(key)).toBe(true);
          previous = current;
        }
      }),
    );
  });

  it('after a quiet reinstall the baseline is exactly the live claimed state of listed pods', () => {
    fc.assert(
      fc.property(fc.array(fc.boolean(), { minLength: items.length, maxLength: items.length }), (keep) => {
        const core = learned();
        const live = items.filter((_, index) => keep[index]);
        const snap: DatapathSnapshot = { ...all, rules: live.filter((item) => item.kind === 'rule'), routes: live.filter((item) => item.kind === 'route') };
        const hasLocal = (family: 4 | 6) => snap.rules.some((rule) => rule.family === family && rule.table === 'local');
        core.learn(snap, { cilium: { healthy: true, endpoints: PODS, reinstalled: true } }, T0 + 60_000, WALL);
        const expected = live.map(itemKey).filter((key) => claimedKeys.has(key));
        const members = core.members().map((member) => member.key);
        if (hasLocal(4) && hasLocal(6)) expect(new Set(members)).toEqual(new Set(expected));
        else expect(members.every((key) => expected.includes(key))).toBe(true); // invariant broken: drops only, no adds
      }),
    );
  });
});
