/**
 * `npm run sim [-- --nodes 10000 --zones 3 …]`: every scenario of issue 17 on the real controller
 * core, detector and LeaseLock, one JSON line each, then a table. See docs/sim.md.
 */
import { spawn } from 'node:child_process';
import { availableParallelism } from 'node:os';
import { parseArgs } from 'node:util';
import type { Node, Pod } from 'kubernetes-types/core/v1.js';
import { channelView, ciliumPodView, nodeView, type ConnwatchNode } from '../../src/controller/objects.js';
import type { ChannelView, CiliumPodView, NodeView } from '../../src/controller/model.js';
import type { ApiServer } from './api.js';
import { useFastClone } from './queue.js';
import { simulate, type Assumptions, type Result, type Scenario } from './sim.js';

/** Every flag, its default and what it assumes. */
export const FLAGS = {
  nodes: { default: '10000', help: 'nodes in the fleet (N)' },
  zones: { default: '3', help: 'zones (topology.kubernetes.io/zone)' },
  seed: { default: '17', help: 'random seed (a run is reproducible)' },
  'restart-min': { default: '20', help: 'a Cilium restart takes at least this long until ready (s)' },
  'restart-max': { default: '60', help: '… and at most this long (s), uniform' },
  'api-latency': { default: '30', help: 'API request latency unloaded (ms); grows ×(1+3·load²)' },
  'api-capacity': { default: '3000', help: 'request units the API server serves per second before it answers 429' },
  'api-background': { default: '1200', help: 'units per second used by everything else (kubelet leases of 10,000 nodes ≈ 1,000/s)' },
  'relist-units': { default: '0.05', help: "each Cilium restart's re-list of the cluster costs this many units per node (10,000 nodes: 500)" },
  'restore-fixes': { default: '0.9', help: 'share of broken nodes the restore fixes (the rest need a Cilium restart)' },
  'max-minutes': { default: '30', help: 'simulated minutes after the event before a scenario is cut off' },
  'pods-per-node': { default: '30', help: 'pods a drain evicts per node' },
  drain: { default: 'true', help: 'controller.quarantine.drain.enabled (the controller default is false)' },
  set: { default: '', help: 'controller.* overrides, e.g. --set restart.maxConcurrent=100,restart.perZone=40' },
  only: { default: '', help: 'run only these scenarios (comma-separated names)' },
  jobs: { default: '', help: 'scenarios run at once, each in its own process (default: the cores available; 1 runs them in this process)' },
  M: { default: '', help: 'shorthand for --set restart.perZone=M' },
} as const;

export const SCENARIOS: Scenario[] = [
  { name: 'all-broken', brokenShare: 1, restartSuccess: 1 },
  { name: 'restarts-never-work', brokenShare: 1, restartSuccess: 0 },
  { name: '5pct-broken', brokenShare: 0.05, restartSuccess: 1 },
  { name: 'leader-node-broken-dies', brokenShare: 1, restartSuccess: 1, leaderDiesAfterS: 240 },
  { name: 'agents-die-mid-restart', brokenShare: 1, restartSuccess: 1, agentDiesOnRestart: 0.5, agentDownS: 120 },
  { name: 'api-unreachable-half', brokenShare: 1, restartSuccess: 1, unreachableShare: 0.5, unreachableForS: 600 },
  { name: 'shadow-install', brokenShare: 1, restartSuccess: 1, actions: 'shadow' },
];

function parseValue(v: string): unknown {
  if (v === 'true' || v === 'false') return v === 'true';
  const n = Number(v);
  return Number.isFinite(n) && v.trim() !== '' ? n : v;
}

export function assumptionsOf(values: Record<string, string | undefined>): Assumptions {
  const get = (k: keyof typeof FLAGS) => values[k] ?? FLAGS[k].default;
  const controller: Record<string, unknown> = {};
  for (const pair of get('set').split(',').filter(Boolean)) {
    const [k, v] = pair.split('=');
    controller[k!.replace(/^controller\./, '')] = parseValue(v ?? '');
  }
  if (get('M')) controller['restart.perZone'] = Number(get('M'));
  return {
    nodes: Number(get('nodes')),
    zones: Number(get('zones')),
    seed: Number(get('seed')),
    restartMinS: Number(get('restart-min')),
    restartMaxS: Number(get('restart-max')),
    apiLatencyMs: Number(get('api-latency')),
    apiCapacity: Number(get('api-capacity')),
    apiBackground: Number(get('api-background')),
    relistUnitsPerNode: Number(get('relist-units')),
    restoreFixes: Number(get('restore-fixes')),
    maxMinutes: Number(get('max-minutes')),
    warmupS: 60,
    podsPerNode: Number(get('pods-per-node')),
    drain: get('drain') === 'true',
    controller,
  };
}

/**
 * The controller's heap for the fleet as it ended: the objects its watch caches hold (every
 * ConnwatchNode whole, and the small views FleetController keeps of Nodes and cilium pods),
 * built the way objects.ts builds them, weighed after GC. Needs --expose-gc.
 */
export function controllerHeapMb(api: ApiServer): number | null {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) return null;
  gc();
  const before = process.memoryUsage().heapUsed;
  const channelObjects = new Map<string, ConnwatchNode>();
  const channels = new Map<string, ChannelView>();
  const nodes = new Map<string, NodeView>();
  const pods = new Map<string, CiliumPodView & { created: string }>();
  const byNode = new Map<string, CiliumPodView>();
  let i = 0;
  for (const [name, v] of api.nodes) {
    i++;
    const node: Node = {
      metadata: { name, uid: `node-uid-${i}`, resourceVersion: String(1000 + i), labels: { 'kubernetes.io/hostname': name, 'topology.kubernetes.io/zone': v.zone }, annotations: { ...v.annotations } },
      spec: { ...(v.unschedulable ? { unschedulable: true } : {}), taints: v.taints.map((key) => ({ key, effect: 'NoSchedule' })) },
      status: { conditions: [{ type: 'Ready', status: v.ready }, ...(v.condition ? [{ type: 'PodNetworkUnavailable', status: v.condition }] : [])] },
    };
    nodes.set(name, nodeView(node));
    const p = api.pods.get(name)!;
    const pod: Pod = {
      metadata: { name: p.name, namespace: 'kube-system', uid: p.uid, labels: { 'k8s-app': 'cilium', 'controller-revision-hash': 'r1' }, creationTimestamp: new Date(p.created).toISOString() },
      spec: { nodeName: name, containers: [] },
      status: { conditions: [{ type: 'Ready', status: p.ready ? 'True' : 'False' }], containerStatuses: [{ name: 'cilium-agent', ready: p.ready, restartCount: 0, image: 'cilium', imageID: '', state: { running: {} } }] },
    };
    const view = ciliumPodView(pod)!;
    pods.set(view.uid, { ...view, created: pod.metadata!.creationTimestamp! });
    byNode.set(name, view);
    const c = api.channels.get(name)!;
    const object: ConnwatchNode = { apiVersion: 'connwatch.io/v1alpha1', kind: 'ConnwatchNode', metadata: { name, namespace: 'connwatch', resourceVersion: String(2000 + i), uid: `cwn-uid-${i}` }, spec: structuredClone(c.spec), ...(c.status ? { status: structuredClone(c.status) } : {}) };
    channelObjects.set(name, object);
    channels.set(name, channelView(object));
  }
  gc();
  const after = process.memoryUsage().heapUsed;
  void [channelObjects, channels, nodes, pods, byNode];
  return Math.round(((after - before) / 1024 / 1024) * 10) / 10;
}

const COLUMNS: [string, (r: Result) => string][] = [
  ['scenario', (r) => r.scenario],
  ['broken', (r) => String(r.broken)],
  ['healed', (r) => (r.healed_s === null ? `no (${r.unhealed} left)` : `${Math.floor(r.healed_s / 60)}m${String(r.healed_s % 60).padStart(2, '0')}s`)],
  ['restarts', (r) => String(r.restarts)],
  ['peak', (r) => `${r.peak_restarts}/${r.restart_limit}`],
  ['peak/zone', (r) => `${r.peak_restarts_per_zone}/${r.per_zone_limit}`],
  ['viol', (r) => String(r.budget_violations)],
  ['quar', (r) => String(r.quarantined)],
  ['drained', (r) => String(r.drained)],
  ['halts', (r) => String(r.halts)],
  ['pages', (r) => String(r.pages)],
  ['leader Δ', (r) => String(r.leader_changes)],
  ['req', (r) => String(r.api_requests)],
  ['req/node/min', (r) => r.api_requests_per_node_minute.toFixed(2)],
  ['429', (r) => String(r.api_429)],
  ['heap MB', (r) => (r.controller_heap_mb === null ? '-' : r.controller_heap_mb.toFixed(1))],
  ['sim min', (r) => r.sim_minutes.toFixed(1)],
  ['wall s', (r) => r.wall_s.toFixed(1)],
];

export function table(results: Result[]): string {
  const rows = [COLUMNS.map(([h]) => h), ...results.map((r) => COLUMNS.map(([, f]) => f(r)))];
  const widths = COLUMNS.map((_, i) => Math.max(...rows.map((row) => row[i]!.length)));
  const line = (row: string[]) => row.map((cell, i) => (i === 0 ? cell.padEnd(widths[i]!) : cell.padStart(widths[i]!))).join('  ');
  return [line(rows[0]!), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.slice(1).map(line)].join('\n');
}

export async function main(argv = process.argv.slice(2)): Promise<void> {
  const options = Object.fromEntries(Object.keys(FLAGS).map((k) => [k, { type: 'string' as const }]));
  const { values } = parseArgs({ args: argv, options: { ...options, help: { type: 'boolean' } }, strict: true });
  if (values.help) {
    for (const [k, f] of Object.entries(FLAGS)) process.stdout.write(`  --${k.padEnd(14)} ${f.help}${f.default ? ` (default ${f.default})` : ''}\n`);
    return;
  }
  const a = assumptionsOf(values as Record<string, string | undefined>);
  const only = ((values as Record<string, string | undefined>).only ?? '').split(',').filter(Boolean);
  const scenarios = only.length ? SCENARIOS.filter((s) => only.includes(s.name)) : SCENARIOS;
  process.stderr.write(`sim: ${a.nodes} nodes, ${a.zones} zones, Cilium restart ${a.restartMinS}–${a.restartMaxS} s, API ${a.apiLatencyMs} ms / ${a.apiCapacity} units/s (${a.apiBackground} background), re-list ${a.relistUnitsPerNode}/node, restore fixes ${a.restoreFixes * 100}%${Object.keys(a.controller).length ? `, controller ${JSON.stringify(a.controller)}` : ''}\n`);
  const jobs = Math.min(scenarios.length, Number((values as Record<string, string | undefined>).jobs || availableParallelism()));
  const t0 = Date.now();
  const results = jobs > 1 ? await inChildren(scenarios, argv, jobs) : await inThisProcess(scenarios, a);
  process.stdout.write(`\n${table(results)}\n\ntotal ${((Date.now() - t0) / 1000).toFixed(0)} s wall${jobs > 1 ? `, ${jobs} scenarios at once` : ''}\n`);
}

async function inThisProcess(scenarios: Scenario[], a: Assumptions): Promise<Result[]> {
  useFastClone({ freeze: false });
  const results: Result[] = [];
  for (const scenario of scenarios) {
    const { result, violations } = await simulate(scenario, a, controllerHeapMb);
    results.push(result);
    process.stdout.write(`${JSON.stringify(result)}\n`);
    for (const v of violations.slice(0, 5)) process.stderr.write(`sim: ${scenario.name}: BUDGET VIOLATION ${v}\n`);
  }
  return results;
}

/**
 * Each scenario in its own process (this script again, `--only NAME --jobs 1`), `jobs` at a time:
 * scenarios share nothing, and one process's heap and GC stay one scenario's. Lines are printed as
 * each finishes; the table keeps the scenarios' order.
 */
async function inChildren(scenarios: Scenario[], argv: string[], jobs: number): Promise<Result[]> {
  const rest = stripFlags(argv, ['only', 'jobs']);
  const results = new Map<string, Result>();
  const queue = [...scenarios];
  const runOne = (scenario: Scenario): Promise<void> =>
    new Promise((done, fail) => {
      const child = spawn(process.execPath, [...process.execArgv, process.argv[1]!, ...rest, '--only', scenario.name, '--jobs', '1'], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
      child.on('error', fail);
      child.on('exit', (code) => {
        const line = out.split('\n').find((l) => l.startsWith('{'));
        if (code !== 0 || !line) return fail(new Error(`scenario ${scenario.name} exited ${code} without its result`));
        const result = JSON.parse(line) as Result;
        results.set(scenario.name, result);
        process.stdout.write(`${line}\n`);
        done();
      });
    });
  const worker = async (): Promise<void> => {
    for (let next = queue.shift(); next; next = queue.shift()) await runOne(next);
  };
  await Promise.all(Array.from({ length: jobs }, worker));
  return scenarios.map((s) => results.get(s.name)!);
}

/** argv without the named flags (`--name value` and `--name=value`). */
function stripFlags(argv: string[], names: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([^=]+)(=.*)?$/.exec(argv[i]!);
    if (m && names.includes(m[1]!)) {
      if (m[2] === undefined) i++;
      continue;
    }
    out.push(argv[i]!);
  }
  return out;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    process.stderr.write(`sim: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
    process.exitCode = 1;
  });
}
