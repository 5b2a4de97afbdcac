/**
 * The simulator (issue 17) at small scale: the real controller core, detector and LeaseLock on
 * the simulated clock, checked against the controller's invariants — never more concurrent
 * restarts than the budget (overall and per zone), one fleet incident, a halt when restarts never
 * work, nothing acting in shadow mode, a standby finishing after the leader dies.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { useFastClone } from '../../../scripts/sim/queue.js';
import { assumptionsOf, SCENARIOS } from '../../../scripts/sim/run.js';
import { simulate, type Scenario } from '../../../scripts/sim/sim.js';

const scenario = (name: string): Scenario => SCENARIOS.find((s) => s.name === name)!;
const small = (extra: Record<string, string> = {}) => assumptionsOf({ nodes: '45', zones: '3', 'max-minutes': '25', ...extra });

let undo: () => void;
beforeAll(() => {
  undo = useFastClone();
});
afterAll(() => undo());

describe('npm run sim at 45 nodes', () => {
  it('all broken: heals within the budget, overall and per zone, with one fleet incident', async () => {
    const { result, violations, api } = await simulate(scenario('all-broken'), small());
    expect(violations).toEqual([]);
    expect(result.broken).toBe(45);
    expect(result.healed_s).not.toBeNull();
    expect(result.unhealed).toBe(0);
    expect(result.restarts).toBeGreaterThan(0);
    expect(result.peak_restarts).toBeLessThanOrEqual(result.restart_limit);
    expect(result.peak_restarts_per_zone).toBeLessThanOrEqual(result.per_zone_limit);
    expect(result.page_keys.filter((k) => k === 'fleet/ReadyButNoPodNetwork')).toHaveLength(1);
    expect(result.halted).toBe(false);
    // Every pod a restart replaced belongs to a node that asked; none was restarted past maxAttempts.
    for (const pod of api.pods.values()) expect(pod.ready).toBe(true);
  }, 60_000);

  it('restarts that never work: restarts halt fleet-wide with a page, stay within the budget, and the nodes nobody can repair are quarantined', async () => {
    const { result, violations } = await simulate(scenario('restarts-never-work'), small({ 'max-minutes': '12' }));
    expect(violations).toEqual([]);
    expect(result.halted).toBe(true);
    expect(result.page_keys).toContain('fleet/RemediationHalted');
    // Canaries, then one restart per probation after each halt timeout (10 min): a handful, never a wave.
    expect(result.restarts).toBeLessThanOrEqual(3);
    // While restarts are halted, every node still asking for one is quarantined after unrepairableAfterMs (under the ceiling).
    expect(result.quarantined).toBe(result.broken - result.restore_fixed);
    expect(result.healed_s).not.toBeNull();
  }, 60_000);

  it('shadow install: nothing acts — no pod deleted, no node marked — and nothing halts', async () => {
    const { result, api } = await simulate(scenario('shadow-install'), small({ 'max-minutes': '10' }));
    expect(result.restarts).toBe(0);
    expect(result.shadow_grants).toBeGreaterThan(0);
    expect(result.quarantined).toBe(0);
    expect(result.drained).toBe(0);
    expect(result.halts).toBe(0);
    for (const pod of api.pods.values()) expect(pod.uid.endsWith('-0')).toBe(true);
    for (const node of api.nodes.values()) expect(node.taints).toEqual([]);
  }, 60_000);

  it("the leader's node broken and the leader dying mid-event: the standby takes over and finishes", async () => {
    const { result, violations, fleet } = await simulate(scenario('leader-node-broken-dies'), small());
    expect(violations).toEqual([]);
    expect(result.leader_changes).toBeGreaterThanOrEqual(1);
    expect(result.healed_s).not.toBeNull();
    // Never a restart repeated blindly: at most maxAttempts (3) per node.
    for (const node of fleet) expect(node.restarts).toBeLessThanOrEqual(3);
  }, 60_000);

  it('agents dying mid-restart: the fleet still heals within the budget', async () => {
    const { result, violations } = await simulate(scenario('agents-die-mid-restart'), small());
    expect(violations).toEqual([]);
    expect(result.healed_s).not.toBeNull();
  }, 60_000);

  it('the API server unreachable from half the nodes: no Cilium restart where it could not start, then healed', async () => {
    const { result, violations } = await simulate(scenario('api-unreachable-half'), small());
    expect(violations).toEqual([]);
    expect(result.restarts_while_unreachable).toBe(0);
    expect(result.api_unreachable_attempts).toBeGreaterThan(0);
    expect(result.healed_s).not.toBeNull();
  }, 60_000);

  it('is reproducible: the same seed gives the same decisions', async () => {
    const a = await simulate(scenario('5pct-broken'), small({ nodes: '40' }));
    const b = await simulate(scenario('5pct-broken'), small({ nodes: '40' }));
    const strip = (r: typeof a.result) => ({ ...r, wall_s: 0, controller_heap_mb: 0 });
    expect(strip(a.result)).toEqual(strip(b.result));
  }, 60_000);
});
