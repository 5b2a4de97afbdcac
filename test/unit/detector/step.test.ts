import { describe, expect, it } from 'vitest';
import { callsForReread, incidentSnapshot, initialState, readNetworkd, START_WAIT_MS, step } from '../../../src/detector/index.js';
import { itemKey } from '../../../src/datapath/items.js';
import type { DetectorCommand, GateDecision, SignalEvent } from '../../../src/types.js';
import { ALL, CONFIG, lookupLocal, missingItem, onLink, PLAN_ORDER, proxyRule, viaGw, World } from './world.js';

const state = (w: World) => w.episode()?.state;
const last = (w: World) => w.state.last?.state;
const raised = (w: World, cause: string) => w.commands.find((c): c is Extract<DetectorCommand, { kind: 'raise' }> => c.kind === 'raise' && c.facts.cause === cause);

describe('the restore episode (step on the hand-moved clock)', () => {
  it('restores exactly the missing items, in dependency order, once every managed link entered configuring', () => {
    const w = new World({ config: { quietPeriodMs: 10_000 } });
    w.link(2, 'configured');
    w.link(3, 'configured');
    w.restart();
    w.remove(...ALL);
    w.damage();
    expect(w.kinds('restore')).toEqual([]); // links not yet configuring: the flush may still be under way
    w.link(2, 'configuring');
    expect(w.kinds('restore')).toEqual([]);
    w.link(3, 'configuring');
    expect(w.written).toEqual(PLAN_ORDER);
    expect(state(w)).toBe('verifying');
    w.advance(CONFIG.verifyStableMs);
    expect(last(w)).toBe('restored');
    expect(w.counts()).toEqual(['restored']);
    expect(w.kinds('observe').map((c) => (c as { metric: string }).metric)).toEqual(['detection', 'restoreLatency']);
    expect(w.notes().at(-1)).toBe('verified: every item stable for 3000 ms');
  });

  it('falls back to the quiet period when networkd shows no link states', () => {
    const w = new World();
    w.remove(...ALL);
    w.damage();
    expect(w.written).toEqual([]);
    expect(w.wakeAt).toBe(w.now + CONFIG.quietPeriodMs);
    w.advance(CONFIG.quietPeriodMs);
    expect(w.written).toHaveLength(4);
    w.advance(CONFIG.verifyStableMs);
    expect(last(w)).toBe('restored');
  });

  it('reports, and does not repair, a loss without networkd activity', () => {
    const w = new World({ notCoincided: ALL });
    w.remove(...ALL);
    w.damage('steady');
    w.advance(10_000);
    expect(w.written).toEqual([]);
    expect(w.episode()).toBeUndefined();
    expect(incidentSnapshot(w.state)).toMatchObject({ notRepaired: { trigger: 'steady', items: expect.arrayContaining([{ item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical' }]) } });
    expect(w.counts()).toEqual(['not_repaired']);
    expect(w.commands.some((c) => c.kind === 'log' && c.level === 'warn' && c.msg.startsWith('CNI items missing without networkd activity'))).toBe(true);
  });

  it('keeps critical items in the verdict evidence however many degraded items were lost before them', () => {
    const w = new World();
    const routes = Array.from({ length: 25 }, (_, n) => missingItem({ ...onLink, dst: `10.${n}.0.0/24` }, { severity: 'degraded', coincidedWithNetworkd: true }));
    const missing = [...routes, missingItem(lookupLocal, { coincidedWithNetworkd: true })];
    w.feed({ kind: 'damage', report: { at: w.now, trigger: 'netlink', missing, coincidedWithNetworkd: true } });
    expect(w.verdict?.kind).toBe('ReadyButNoPodNetwork');
    const evidence = w.verdict?.evidence?.missing ?? [];
    expect(evidence).toHaveLength(20);
    expect(evidence[0]).toMatchObject({ item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical' });
  });

  it('restores only the items whose own loss coincided with networkd, and reports the rest', () => {
    const w = new World({ notCoincided: [lookupLocal] });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(w.written).toEqual([onLink, viaGw, proxyRule]);
    expect(incidentSnapshot(w.state)).toMatchObject({ notRepaired: { items: [{ item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical' }] } });
  });

  it('regression (review): an unrelated item missing without networkd does not block verification or fake "fighting"', () => {
    const w = new World({ notCoincided: [proxyRule] });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs + CONFIG.verifyStableMs);
    expect(last(w)).toBe('restored');
    expect(w.written).not.toContain(proxyRule);
    expect(w.pages().filter((p) => p.startsWith('raise') && !p.endsWith('DatapathDamage'))).toEqual([]);
  });

  it('regression (review): lifting the kill switch lets the next report restore; the same decision is journalled once', () => {
    let decision: GateDecision = 'killed';
    const w = new World({ gate: () => decision });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(w.counts()).toEqual(['killed']);
    w.damage('steady');
    w.damage('steady');
    w.advance(60_000);
    expect(w.written).toEqual([]);
    expect(w.counts()).toEqual(['killed']);
    decision = 'executed';
    w.damage('steady');
    w.advance(CONFIG.verifyStableMs);
    expect(last(w)).toBe('restored');
    expect(w.counts()).toEqual(['killed', 'restored']);
  });

  it('restores items a previous run journalled as declined, even without new networkd activity', () => {
    const w = new World({ notCoincided: ALL, carried: [lookupLocal] });
    w.remove(...ALL);
    w.damage('start');
    w.advance(CONFIG.quietPeriodMs);
    expect(w.written).toEqual([lookupLocal]);
    expect(incidentSnapshot(w.state)).toMatchObject({ notRepaired: { items: expect.any(Array) } });
  });

  it('never writes a profile invariant that was not learned here', () => {
    const w = new World({ invariant: [lookupLocal] });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(w.written).toEqual([onLink, viaGw, proxyRule]);
  });

  it('in shadow mode records "would have restored" and changes nothing', () => {
    const w = new World({ gate: () => 'shadowed' });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(w.counts()).toEqual(['shadowed']);
    expect(w.written).toEqual([]);
    expect(w.episode()?.timeline.map((t) => t.what)).toContain('would have restored 4 item(s) (shadow mode)');
  });

  it('stops after maxRepeats and says "fighting networkd", with a page that resolves once whole by other means', () => {
    const w = new World({ removedAgain: 100 });
    w.remove(...ALL);
    w.damage();
    w.advance(10_000);
    expect(state(w)).toBe('fighting');
    expect(w.written).toHaveLength(3 * 4);
    expect(raised(w, 'FightingNetworkd')?.facts).toMatchObject({ restores: 3 });
    expect(w.commands.some((c) => c.kind === 'log' && c.level === 'error' && c.msg.startsWith('fighting networkd'))).toBe(true);
    for (const item of ALL) w.present.add(item);
    w.damage('steady');
    expect(w.pages().slice(-2)).toEqual(['resolve FightingNetworkd', 'resolve RestoreFailed']);
    expect(w.episode()).toBeUndefined();
    expect(last(w)).toBe('fighting');
  });

  it('repeats when networkd removes the items once more, then verifies', () => {
    const w = new World({ removedAgain: 1 });
    w.remove(...ALL);
    w.damage();
    w.advance(10_000);
    expect(last(w)).toBe('restored');
    expect(w.written).toHaveLength(8);
  });

  it('regression (suite flake): a networkd restart heard after its losses were restored does not orphan the verification', () => {
    const w = new World();
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(w.written).toHaveLength(4);
    w.restart();
    w.advance(10_000);
    expect(last(w)).toBe('restored');
  });

  it('a second networkd restart opens a new episode with its own repeat budget; a late-heard first one does not', () => {
    const w = new World();
    w.remove(...ALL);
    w.damage(); // losses first: the episode opens on the damage
    w.advance(CONFIG.quietPeriodMs);
    expect(w.written).toHaveLength(4);
    w.restart(); // the same restart, heard late: same episode
    expect(w.episode()?.id).toBe(1);
    w.restart(); // another restart: a new episode
    expect(w.episode()).toMatchObject({ id: 2, restores: 0 });
  });

  it('retries a write that failed mid-flush without paging, then verifies', () => {
    const w = new World({ failGateway: 1 });
    w.remove(...ALL);
    w.damage();
    w.advance(10_000);
    expect(last(w)).toBe('restored');
    expect(w.written.filter((i) => i === viaGw)).toHaveLength(1);
    expect(w.pages().filter((p) => p.startsWith('raise') && !p.endsWith('DatapathDamage'))).toEqual([]);
  });

  it('regression (bench hang): a report arriving during the retry hold does not cancel the retry', () => {
    const w = new World({ failGateway: 1 });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(w.written).toHaveLength(3);
    w.damage('steady');
    w.damage('steady');
    w.advance(10_000);
    expect(last(w)).toBe('restored');
    expect(w.written.filter((i) => i === viaGw)).toHaveLength(1);
  });

  it('pages RestoreFailed (not "fighting") when writes keep failing', () => {
    const w = new World({ failGateway: 100 });
    w.remove(...ALL);
    w.damage();
    w.advance(30_000);
    expect(state(w)).toBe('failed');
    expect(w.pages().filter((p) => p.startsWith('raise'))).toEqual(['raise DatapathDamage', 'raise RestoreFailed']);
    expect(raised(w, 'RestoreFailed')?.facts).toMatchObject({ reason: expect.stringContaining('Nexthop has invalid gateway'), restoredButUnreachable: false });
  });

  it('without CAP_NET_ADMIN skips the restore and says why', () => {
    const w = new World({ config: { canWrite: { ok: false, reason: 'no CAP_NET_ADMIN' } } });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(state(w)).toBe('failed');
    expect(w.written).toEqual([]);
    expect(w.counts()).toEqual(['no_capability']);
    expect(incidentSnapshot(w.state)).toMatchObject({ restore: { enabled: false, skipped: 'no CAP_NET_ADMIN' } });
  });

  it('a verify target that does not answer pages RestoreFailed with the restore done', () => {
    const w = new World({ deadTargets: ['10.0.0.1:6443'] });
    w.remove(...ALL);
    w.damage();
    w.advance(10_000);
    expect(state(w)).toBe('failed');
    expect(w.notes()).toContain('verify targets not answering: 10.0.0.1:6443 (connection refused)');
    expect(raised(w, 'RestoreFailed')?.facts).toMatchObject({ restoredButUnreachable: true, reason: '1 verify target(s) do not answer' });
  });

  it('never calls a restore verified on a re-read it could not make: five failures page', () => {
    const w = new World({ failStableReads: 100 });
    w.remove(...ALL);
    w.damage();
    w.advance(60_000);
    expect(state(w)).toBe('failed');
    expect(w.notes().filter((n) => n.startsWith('verification re-read failed')).length).toBeGreaterThan(0);
    expect(last(w)).toBeUndefined();
  });

  it('a flap past the rate limit holds back a degraded item, journals why, and then restores', () => {
    const w = new World({ config: { rateLimitPerMinute: 1, episodeMs: 5_000 } });
    w.remove(proxyRule);
    w.damage();
    w.advance(CONFIG.quietPeriodMs + CONFIG.verifyStableMs);
    expect(last(w)).toBe('restored');
    w.restart();
    w.remove(proxyRule);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(w.counts()).toEqual(['restored', 'rate_limited']);
    const held = w.kinds('restoreHeld') as Extract<DetectorCommand, { kind: 'restoreHeld' }>[];
    expect(held).toHaveLength(1);
    expect(held[0]!.why).toMatch(/^rate limited: next restore in \d+ ms$/);
    expect(held[0]!.items.map((m) => m.key)).toEqual([itemKey(proxyRule)]);
    w.advance(60_000);
    expect(w.written).toEqual([proxyRule, proxyRule]);
    expect(last(w)).toBe('restored');
  });

  it('regression (issue 12): a critical item is never held back by the rate limit; the repeat cap still ends a fight', () => {
    const w = new World({ config: { rateLimitPerMinute: 1, episodeMs: 5_000 } });
    for (let restart = 0; restart < 10; restart++) {
      w.restart();
      w.remove(lookupLocal);
      w.damage();
      w.advance(CONFIG.quietPeriodMs + CONFIG.verifyStableMs);
      expect(last(w)).toBe('restored');
    }
    expect(w.counts().filter((c) => c === 'rate_limited')).toEqual([]);
    expect(w.kinds('restoreHeld')).toEqual([]);
    expect(w.written.filter((item) => item === lookupLocal)).toHaveLength(10);
  });
});

describe('regressions found in the 12-minute soak', () => {
  it('a re-read that raced the write (started before it finished) neither reopens nor strands the episode', () => {
    const w = new World({ auto: false });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    const [restore] = w.pending() as Extract<DetectorCommand, { kind: 'restore' }>[];
    expect(restore?.kind).toBe('restore');
    const readStartedAt = w.now; // a steady re-read starts while the batch is being written
    w.clock.advance(5);
    for (const item of ALL) w.present.add(item);
    w.drain(); // (no-op: auto off answers nothing by itself)
    const keys = PLAN_ORDER.map(itemKey);
    w.feed({ kind: 'restored', episode: restore!.episode, result: { held: [], done: { kind: 'written', keys, labels: keys, outcome: { ok: true } } } });
    expect(state(w)).toBe('verifying');
    // The raced read arrives now, showing every item missing: it predates the write.
    w.feed({ kind: 'damage', report: { ...w.report('steady', readStartedAt), missing: ALL.map((item) => missingItem(item, { coincidedWithNetworkd: true })) } });
    expect(state(w)).toBe('verifying');
    expect(w.notes()).not.toContain(expect.stringMatching(/^items back without a restore/));
    const verify = w.kinds('verify').at(-1) as Extract<DetectorCommand, { kind: 'verify' }>;
    w.feed({ kind: 'verified', episode: verify.episode, phase: 'written', report: w.report('restore') });
    w.clock.advance(CONFIG.verifyStableMs);
    w.feed({ kind: 'tick' });
    w.feed({ kind: 'verified', episode: verify.episode, phase: 'stable', report: w.report('restore-verify') });
    w.feed({ kind: 'targets', episode: verify.episode, checked: 0, failed: [] });
    expect(last(w)).toBe('restored');
    expect(incidentSnapshot(w.state)).toMatchObject({ current: null, last: { state: 'restored' } });
  });

  it('items back without a restore end the episode instead of leaving it "waiting"', () => {
    const w = new World({ gate: () => 'killed' });
    w.remove(...ALL);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    expect(state(w)).toBe('waiting');
    for (const item of ALL) w.present.add(item); // the CNI agent reinstalled them
    w.damage('steady');
    expect(w.episode()).toBeUndefined();
    expect(last(w)).toBe('ended');
    expect(w.notes()).toContain('items back without a restore (steady)');
  });
});

describe('attribution (issue 12)', () => {
  it('a per-pod item whose endpoint the CNI no longer reports is withdrawn for good: never written, and the episode verifies', () => {
    const w = new World({ endpointGone: [proxyRule] });
    w.remove(lookupLocal, proxyRule);
    w.damage();
    w.advance(10_000);
    expect(w.written).toEqual([lookupLocal]);
    expect(last(w)).toBe('restored');
    expect(w.notes()).toContain('not put back: -4 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto unspec (the CNI no longer reports endpoint 10.0.1.5)');
    w.restart();
    w.damage(); // still missing, still networkd's by the clock: still never put back
    w.advance(10_000);
    expect(w.written).toEqual([lookupLocal]);
    expect(w.state.withdrawn).toEqual([itemKey(proxyRule)]);
  });

  it("an address leaving a pod's own interface is not networkd activity; one on networkd's link is", () => {
    const w = new World();
    const item = { family: 4 as const, dev: 'lxc-pod-a', address: '10.78.0.1/32' };
    expect(w.signal({ kind: 'AddressRemoved', item }).map((c) => c.kind)).toEqual(['reread']);
    expect(w.episode()).toBeUndefined();
    expect(w.signal({ kind: 'AddressRemoved', item: { ...item, dev: 'eth0' } }).map((c) => c.kind).filter((k) => k !== 'log')).toEqual(['networkdActivity', 'probeBurst', 'reread']);
    expect(w.episode()?.trigger).toBe('address removed: 10.78.0.1/32 dev eth0');
  });

  it("networkd's process start, read from the process, replaces when its restart was heard", () => {
    const w = new World();
    const startedAt = w.now - 40;
    w.restart();
    const heardAt = w.now;
    w.clock.advance(3);
    const commands = w.signal({ kind: 'NetworkdStarted', startedAt, pid: 4242 });
    expect(commands.find((c) => c.kind === 'networkdActivity')).toEqual({ kind: 'networkdActivity', at: startedAt, exact: true, supersedes: heardAt });
    expect(commands.at(-1)).toEqual({ kind: 'reread', trigger: 'NetworkdStarted', followUps: true });
  });

  it('items networkd\'s only by activity heard after their loss wait for networkd\'s start time (a moment) before any restore', () => {
    const w = new World();
    w.clock.advance(100);
    w.restart();
    const heardAt = w.now;
    w.remove(proxyRule);
    w.damage('netlink', { datedByLaterSignal: true });
    w.advance(CONFIG.quietPeriodMs);
    expect(w.written).toEqual([]);
    expect(w.notes()).toContain("waiting for networkd's start time: some items were lost before any sign of networkd (an operator's removal just before a restart is not networkd's)");
    // The start time arrives: the re-read it calls for dates the loss before networkd started — not networkd's.
    const commands = w.signal({ kind: 'NetworkdStarted', startedAt: heardAt - 20, pid: 7 });
    expect(commands.some((c) => c.kind === 'restore')).toBe(false);
    w.damage('NetworkdStarted', { coincidedWithNetworkd: false });
    w.advance(5_000);
    expect(w.written).toEqual([]);
    expect(incidentSnapshot(w.state)).toMatchObject({ notRepaired: { items: [{ item: '-4 rule pref 9 from all fwmark 0x200/0xf00 lookup 2004 proto unspec' }] } });
  });

  it('without a start time, items dated only by a later signal are restored after the wait; a loss after networkd\'s first sign waits for nothing', () => {
    const w = new World();
    w.clock.advance(100);
    w.restart();
    w.remove(proxyRule);
    w.damage('netlink', { datedByLaterSignal: true });
    w.advance(START_WAIT_MS - 100);
    expect(w.written).toEqual([]);
    w.advance(200);
    expect(w.written).toEqual([proxyRule]);
    const next = new World();
    next.restart();
    next.remove(proxyRule);
    next.damage();
    next.advance(CONFIG.quietPeriodMs);
    expect(next.written).toEqual([proxyRule]);
  });

  it('a networkd started shortly before connwatch listened opens an episode; one running since boot does not', () => {
    const old = new World();
    old.signal({ kind: 'NetworkdStarted', startedAt: old.now - 3_600_000, pid: 1 });
    expect(old.episode()).toBeUndefined();
    expect(old.kinds('networkdActivity')).toEqual([{ kind: 'networkdActivity', at: old.now - 3_600_000, exact: true }]);
    const fresh = new World();
    fresh.signal({ kind: 'NetworkdStarted', startedAt: fresh.now - 300, pid: 2 });
    expect(fresh.episode()?.trigger).toMatch(/^networkd process 2 started 300 ms before connwatch read its start time$/);
  });

  it('regression (issue 15 report): a restart a few seconds after connwatch found a freshly started networkd opens its own episode', () => {
    const w = new World();
    w.signal({ kind: 'NetworkdStarted', startedAt: w.now - 5_000, pid: 2 });
    const first = w.episode()?.id;
    w.clock.advance(3_000);
    w.restart();
    expect(w.episode()?.id).toBe((first ?? 0) + 1);
    expect(w.episode()?.trigger).toBe('networkd restarted');
    // Its own start, read right after, joins it (the restart heard is that process's).
    w.clock.advance(5);
    w.signal({ kind: 'NetworkdStarted', startedAt: w.now - 10, pid: 3 });
    expect(w.episode()?.id).toBe((first ?? 0) + 1);
  });
});

describe('the damage page follows the detector', () => {
  it('pages once on critical damage, saying the restore will put it back, and resolves when whole', () => {
    const w = new World();
    w.remove(lookupLocal, proxyRule);
    w.damage();
    w.remove(viaGw);
    w.damage();
    const pages = w.commands.filter((c) => c.kind === 'raise');
    expect(pages).toHaveLength(1);
    expect(pages[0]).toMatchObject({ facts: { cause: 'DatapathDamage', critical: 1, afterNetworkd: true, restoring: true, missing: [{ item: '-4 rule pref 100 from all lookup local proto unspec', severity: 'critical', profile: 'cilium' }, expect.objectContaining({ severity: 'degraded' })] } });
    w.advance(10_000);
    expect(w.pages()).toEqual(['raise DatapathDamage', 'resolve DatapathDamage', 'resolve FightingNetworkd', 'resolve RestoreFailed']);
  });

  it('does not page for degraded-only damage, and resolves replayed pages on the first clean report', () => {
    const w = new World();
    w.damage('start');
    const replayed = ['resolve DatapathDamage', 'resolve FightingNetworkd', 'resolve RestoreFailed'];
    expect(w.pages()).toEqual(replayed);
    w.remove(proxyRule);
    w.damage();
    expect(w.pages()).toEqual(replayed);
  });

  it('review: the page is re-worded when what it says about the restore changes, not on every report', () => {
    const w = new World({ notCoincided: ALL, gate: () => 'killed' });
    w.remove(lookupLocal);
    w.damage('steady');
    w.remove(viaGw);
    w.damage('steady');
    const raises = () => w.commands.filter((c): c is Extract<DetectorCommand, { kind: 'raise' }> => c.kind === 'raise').map((c) => c.facts);
    expect(raises()).toEqual([expect.objectContaining({ cause: 'DatapathDamage', restoring: false, afterNetworkd: false })]);
    w.state = { ...w.state, carried: [itemKey(lookupLocal)] }; // the same loss now known to be networkd's
    w.damage('steady');
    expect(raises().at(-1)).toMatchObject({ cause: 'DatapathDamage', restoring: true, afterNetworkd: true });
    expect(raises()).toHaveLength(2);
  });

  it('review: a RestoreFailed for verify targets is not resolved by the items being present', () => {
    const w = new World({ deadTargets: ['10.0.0.1:6443'] });
    w.remove(...ALL);
    w.damage();
    w.advance(10_000);
    expect(state(w)).toBe('failed');
    w.damage('steady');
    const sinceRaise = w.pages().slice(w.pages().indexOf('raise RestoreFailed'));
    expect(sinceRaise).toEqual(['raise RestoreFailed']);
    expect(state(w)).toBe('failed');
  });

  it('a loss without networkd activity is paged as not restored', () => {
    const w = new World({ notCoincided: ALL });
    w.remove(lookupLocal);
    w.damage('steady');
    expect(raised(w, 'DatapathDamage')?.facts).toMatchObject({ afterNetworkd: false, restoring: false });
  });

  it('regression (issue 11): items carried over from a declined restore are paged as networkd\'s, the way the run treats them', () => {
    const w = new World({ notCoincided: ALL, carried: [lookupLocal], gate: () => 'killed' });
    w.remove(lookupLocal);
    w.damage('start');
    expect(raised(w, 'DatapathDamage')?.facts).toMatchObject({ afterNetworkd: true, restoring: true });
  });
});

describe('review findings', () => {
  it('recentWrites stays within the rate window even when every restore has a critical item', () => {
    const w = new World({ config: { episodeMs: 5_000 } });
    for (let n = 0; n < 30; n++) {
      w.restart();
      w.remove(lookupLocal);
      w.damage();
      w.advance(CONFIG.quietPeriodMs + CONFIG.verifyStableMs);
      w.clock.advance(10_000);
    }
    expect(w.written).toHaveLength(30);
    expect(w.state.recentWrites.length).toBeLessThanOrEqual(5);
  });

  it('an episode that never lost anything ends once networkd has been quiet for the episode window', () => {
    const w = new World({ config: { episodeMs: 5_000 } });
    w.restart();
    w.damage();
    expect(incidentSnapshot(w.state)).toMatchObject({ state: 'Suspect' });
    w.advance(6_000);
    expect(w.episode()).toBeUndefined();
    expect(last(w)).toBe('ended');
    expect(incidentSnapshot(w.state)).toMatchObject({ state: 'Healthy' });
  });

  it('a rate-limited restore is journalled and counted once per hold, not per report', () => {
    const w = new World({ config: { rateLimitPerMinute: 1, episodeMs: 5_000 } });
    w.remove(proxyRule);
    w.damage();
    w.advance(CONFIG.quietPeriodMs + CONFIG.verifyStableMs);
    w.restart();
    w.remove(proxyRule);
    w.damage();
    w.advance(CONFIG.quietPeriodMs);
    for (let n = 0; n < 5; n++) w.damage('steady');
    expect(w.kinds('restoreHeld')).toHaveLength(1);
    expect(w.counts().filter((c) => c === 'rate_limited')).toHaveLength(1);
  });

  it("the start-time wait goes ahead only on a report read after the start time was known", () => {
    const w = new World();
    w.clock.advance(100);
    w.restart();
    w.remove(proxyRule);
    w.damage('netlink', { datedByLaterSignal: true });
    w.signal({ kind: 'NetworkdStarted', startedAt: w.now - 10, pid: 9 });
    w.link(2, 'configured'); // reconsiders before the re-read the start time called for
    w.advance(100);
    expect(w.written).toEqual([]);
  });

  it("an address added to a pod's own veth lifts no hold", () => {
    const w = new World();
    w.restart();
    w.remove(...ALL);
    w.damage();
    const e = w.episode()!;
    w.state = { ...w.state, episode: { ...e, holdUntil: w.now + 10_000 } };
    w.signal({ kind: 'AddressAdded', item: { family: 6, dev: 'lxc-pod-a', address: 'fe80::1/64' } });
    expect(w.episode()?.holdUntil).toBeDefined();
    w.signal({ kind: 'AddressAdded', item: { family: 4, dev: 'eth0', address: '10.77.0.1/24' } });
    expect(w.episode()?.holdUntil).toBeUndefined();
  });
});

describe('state and verdict', () => {
  it('step never changes the state it is given', () => {
    const before = initialState(CONFIG);
    const frozen = structuredClone(before);
    const report = { at: 1, trigger: 'netlink', coincidedWithNetworkd: true, missing: [missingItem(lookupLocal, { coincidedWithNetworkd: true })] };
    const after = step(before, { kind: 'damage', report }, { at: 10, wallAt: 10 });
    expect(before).toEqual(frozen);
    expect(after.state.episode).toBeDefined();
  });

  it('is CannotTell before the first read, ReadyButNoPodNetwork on critical loss, Recovered after a verified restore', () => {
    const w = new World();
    expect(step(w.state, { kind: 'tick' }, { at: 0, wallAt: 0 }).verdict.kind).toBe('CannotTell');
    w.remove(...ALL);
    w.damage();
    expect(w.verdict?.kind).toBe('ReadyButNoPodNetwork');
    expect(incidentSnapshot(w.state)).toMatchObject({ state: 'Repairing' });
    w.advance(10_000);
    expect(w.verdict?.kind).toBe('Healthy');
    expect(incidentSnapshot(w.state)).toMatchObject({ state: 'Recovered' });
  });
});

describe('the one networkd-activity rule', () => {
  const at = 1;
  const wallAt = 1;
  const rule = { kind: 'rule' as const, family: 4 as const, priority: 9, action: 'lookup' as const, table: '2004', protocol: 'unspec' };
  it.each<[SignalEvent, boolean | undefined, boolean, boolean]>([
    [{ kind: 'NetworkdRestarted', at, wallAt, origins: ['network1'] }, undefined, true, true],
    [{ kind: 'AddressRemoved', at, wallAt, item: { family: 4, dev: 'eth0', address: '10.0.0.1/24' } }, undefined, true, true],
    [{ kind: 'AddressAdded', at, wallAt, item: { family: 4, dev: 'eth0', address: '10.0.0.1/24' } }, undefined, true, true],
    [{ kind: 'LinkStateChanged', at, wallAt, ifindex: 2, administrativeState: 'configuring' }, undefined, true, true],
    [{ kind: 'LinkStateChanged', at, wallAt, ifindex: 2, administrativeState: 'configured' }, undefined, false, true],
    [{ kind: 'LinkStateChanged', at, wallAt, ifindex: 2, operationalState: 'routable' }, undefined, false, true],
    [{ kind: 'NetworkdOnBus', at, wallAt, present: true }, undefined, false, true],
    [{ kind: 'NetworkdOnBus', at, wallAt, present: true }, false, true, true],
    [{ kind: 'NetworkdOnBus', at, wallAt, present: true }, true, false, true],
    [{ kind: 'NetworkdOnBus', at, wallAt, present: false }, true, false, true],
    [{ kind: 'RuleRemoved', at, wallAt, item: rule }, undefined, false, true],
    [{ kind: 'CiliumRestarted', at, wallAt, origins: ['systemd1'] }, undefined, false, true],
    [{ kind: 'UpgradeStarted', at, wallAt, unit: 'apt-daily-upgrade.service' }, undefined, false, false],
    [{ kind: 'BusConnection', at, wallAt, connected: false }, undefined, false, false],
    [{ kind: 'WatchGap', at, wallAt, source: 'netlink-ipv4', reason: 'ip monitor restarted' }, undefined, false, true],
  ])('%o (on the bus before: %s): activity %s, re-read %s', (event, onBusBefore, activity, reread) => {
    expect(readNetworkd(event, onBusBefore) !== undefined).toBe(activity);
    expect(callsForReread(event)).toBe(reread);
  });

  it('hands each activity to the datapath before the re-read, and a CNI restart too', () => {
    const w = new World();
    expect(w.restart().filter((c) => c.kind === 'networkdActivity' || c.kind === 'reread').map((c) => c.kind)).toEqual(['networkdActivity', 'reread']);
    expect(w.signal({ kind: 'CiliumRestarted', origins: ['systemd1'] }).map((c) => c.kind)).toEqual(['cniRestarted', 'probeBurst', 'reread']);
    expect(w.signal({ kind: 'RuleRemoved', item: lookupLocal })).toEqual([{ kind: 'itemSeen', change: 'removed', item: lookupLocal, at: w.now }, { kind: 'reread', trigger: 'RuleRemoved', followUps: false }]);
    expect(w.signal({ kind: 'RuleAdded', item: lookupLocal })).toEqual([{ kind: 'itemSeen', change: 'added', item: lookupLocal, at: w.now }, { kind: 'reread', trigger: 'RuleAdded', followUps: false }]);
  });

  it('networkd coming back on the bus opens an episode; its presence at connect does not', () => {
    const w = new World();
    w.signal({ kind: 'NetworkdOnBus', present: true });
    expect(w.episode()).toBeUndefined();
    w.signal({ kind: 'NetworkdOnBus', present: false });
    w.signal({ kind: 'NetworkdOnBus', present: true });
    expect(w.episode()?.trigger).toBe('networkd came on the bus');
  });
});
