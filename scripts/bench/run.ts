/**
 * `npm run bench`: how fast connwatch hears and repairs the incident, measured in the lab with
 * the real networkd. For each Cilium profile, N networkd restarts with one agent running:
 *  - detection: networkd's new bus owner (seen by an independent observer on the lab bus) → the
 *    agent's NetworkdRestarted event;
 *  - restore: the last removal the kernel reported (`ip -ts monitor`) → the restore's writes done;
 *  - probe gap: the longest interruption of a 5 ms TCP probe stream (pod, peer pod, marked
 *    traffic, loopback) across the incident;
 *  - restart → all back: from the restart command to the re-read showing every item back.
 *  - verdict: networkd's new bus owner → the agent's first verdict that is not Healthy;
 * then (issue 21) the pod path blackholed with no signal, probe failures under noise, the agent's
 * and the beacon's footprint (scripts/bench/footprint.ts), what users run today as models, and
 * (scripts/bench/kube.ts) the repair by a controller-granted Cilium restart and the Kubernetes
 * agent's API request rate at steady state.
 * One JSON line per figure ({"bench", "unit", "n", "p50", "p95", "max"} or "value"), then a table.
 * Usage: npm run bench [-- --runs N] [--blackhole-runs N] [--noise-seconds S] [--repair-runs N] [--api-seconds S]
 *                      [--only restart,blackhole,noise,footprint,baselines,kube,sim,soak] [--soak-minutes 30]
 *                      [--soak-every 20] [--soak-env MALLOC_ARENA_MAX=2] [--soak-trace soak.jsonl]
 * docs/bench.md says what each figure means.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import dbus from 'dbus-next';
import { startLab } from '../lab/index.js';
import type { LabProfile } from '../lab/types.js';
import { followJsonLines, probeOutages, type JsonLine } from '../demo/follow.js';
import { distribution, emit, table, type Figure } from './figures.js';
import { benchKube } from './kube.js';
import { benchSoak } from './soak.js';
import { benchBaselines, benchBlackhole, benchFootprint, benchNoise } from './sections.js';

const ROOT = resolve(import.meta.dirname, '../..');
const { values } = parseArgs({
  options: { runs: { type: 'string', default: '20' }, 'blackhole-runs': { type: 'string', default: '10' }, 'noise-seconds': { type: 'string', default: '300' }, 'repair-runs': { type: 'string', default: '5' }, 'api-seconds': { type: 'string', default: '60' }, 'soak-minutes': { type: 'string', default: '30' }, 'soak-every': { type: 'string', default: '20' }, 'soak-env': { type: 'string', multiple: true }, 'soak-trace': { type: 'string' }, only: { type: 'string', default: 'restart,blackhole,noise,footprint,baselines,kube,sim,soak' } },
});
const RUNS = Number(values.runs);
const ONLY = new Set(values.only.split(','));

interface Sample {
  detectionMs: number;
  restoreMs: number;
  gapMs: number;
  allBackMs: number;
  verdictMs: number;
}

const at = (l: JsonLine) => Date.parse(String(l.time));

async function benchProfile(profile: LabProfile): Promise<Sample[]> {
  const lab = await startLab({ profile });
  const dir = mkdtempSync(join(tmpdir(), 'cw-bench-'));
  const stops: (() => void)[] = [];
  try {
    const d = lab.description;
    const config = join(dir, 'connwatch.yaml');
    writeFileSync(config, [`stateDir: ${join(dir, 'state')}`, 'mode: baremetal', 'cilium:', `  socketPath: ${d.cilium.labSocket}`, 'datapath:', '  learn: { quietMs: 0 }', 'restore:', '  verifyStableMs: 1000', ''].join('\n'));
    const agent = lab.spawn('node', [process.execPath, join(ROOT, 'dist/cli.js'), 'run', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    stops.push(() => agent.kill('SIGTERM'));
    const logs = followJsonLines(agent.stdout!);
    await logs.waitFor((l) => l.msg === 'baseline changed', 15_000, 'the baseline');
    await logs.waitFor((l) => l.msg === 'signals listening', 15_000, 'the signals');

    const monitor = lab.spawn('node', ['ip', '-ts', 'monitor', 'rule', 'route', 'address'], { env: { ...process.env, TZ: 'UTC' }, stdio: ['ignore', 'pipe', 'ignore'] });
    stops.push(() => monitor.kill('SIGTERM'));
    const deletions: number[] = [];
    let pending = '';
    monitor.stdout!.setEncoding('utf8');
    monitor.stdout!.on('data', (chunk: string) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop() ?? '';
      for (const line of lines) {
        const m = /^\[(\S+)\] Deleted /.exec(line);
        if (m) deletions.push(Date.parse(m[1] + 'Z'));
      }
    });

    const owners: number[] = [];
    const bus = dbus.sessionBus({ busAddress: d.bus.address });
    stops.push(() => bus.disconnect());
    await bus.call(new dbus.Message({ destination: 'org.freedesktop.DBus', path: '/org/freedesktop/DBus', interface: 'org.freedesktop.DBus', member: 'AddMatch', signature: 's', body: ["type='signal',interface='org.freedesktop.DBus',member='NameOwnerChanged',arg0='org.freedesktop.network1'"] }));
    bus.on('message', (msg: { member?: string; body?: unknown[] }) => {
      if (msg.member === 'NameOwnerChanged' && msg.body?.[2]) owners.push(Date.now());
    });

    const targets = [`${d.pods.find((p) => p.node === 'node')!.ip4}:4240`, `${d.pods.find((p) => p.node === 'peer')!.ip4}:4240`, `${d.marked.addr}:${d.marked.port}`, '127.0.0.1:9820'];
    const prober = lab.spawn('node', [process.execPath, '--import', 'tsx', join(ROOT, 'scripts/tools/probe-stream.ts'), '5', '100', ...targets], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    stops.push(() => prober.kill('SIGTERM'));
    const probes = followJsonLines(prober.stdout!);
    await probes.waitFor(() => targets.every((t) => probes.lines.some((p) => p.target === t && p.ok)), 10_000, 'probes to flow');

    const samples: Sample[] = [];
    for (let run = 1; run <= RUNS; run++) {
      const t0 = Date.now();
      await lab.restartNetworkd();
      const verified = await logs.waitFor((l) => l.msg === 'restore: verified: every item stable for 1000 ms' && at(l) > t0, 20_000, `run ${run} to be verified`).catch((err: unknown) => {
        for (const l of logs.lines) if (at(l) >= t0 && typeof l.msg === 'string' && !/^signal: (Link|Rule|Route|Address)/.test(l.msg)) process.stderr.write(`    +${at(l) - t0} ${l.msg.slice(0, 300)}\n`);
        throw err;
      });
      const after = (l: JsonLine) => at(l) >= t0 && at(l) <= at(verified);
      const heard = logs.lines.find((l) => l.msg === 'signal: systemd-networkd restarted' && after(l));
      const written = logs.lines.filter((l) => l.msg === 'restore attempt finished' && after(l));
      const whole = logs.lines.find((l) => l.msg === 'datapath: every baseline item present' && after(l));
      const owner = owners.find((t) => t >= t0);
      const verdict = logs.lines.find((l) => typeof l.msg === 'string' && l.msg.startsWith('verdict: ') && l.msg !== 'verdict: Healthy' && after(l));
      const backAt = written.length > 0 ? at(written[written.length - 1]!) : NaN;
      const lastRemoval = Math.max(...deletions.filter((t) => t >= t0 && t <= backAt));
      const outages = probeOutages((probes.lines as { t: number; target: string; ok: boolean }[]).filter((p) => p.t >= t0 - 500 && p.t <= at(verified)), t0);
      const gapMs = Math.max(0, ...Object.values(outages).map((o) => (o ? o.end - o.start : 0)));
      const sample = { detectionMs: heard && owner ? at(heard) - owner : NaN, restoreMs: backAt - lastRemoval, gapMs, allBackMs: whole ? at(whole) - t0 : NaN, verdictMs: verdict && owner ? at(verdict) - owner : NaN };
      samples.push(sample);
      if (process.env.BENCH_VERBOSE) for (const l of logs.lines) if (after(l) && typeof l.msg === 'string' && /^(restore|datapath|signal:)/.test(l.msg)) process.stderr.write(`    +${at(l) - t0} ${l.msg.slice(0, 160)}\n`);
      process.stderr.write(`  ${profile} run ${run}: detection ${sample.detectionMs} ms, restore ${sample.restoreMs.toFixed(1)} ms, probe gap ${sample.gapMs.toFixed(1)} ms, restart→all back ${sample.allBackMs} ms, verdict ${sample.verdictMs} ms\n`);
      await new Promise((r) => setTimeout(r, 300));
    }
    return samples;
  } finally {
    for (const stop of stops.reverse()) stop();
    await new Promise((r) => setTimeout(r, 300));
    await lab.down();
    rmSync(dir, { recursive: true, force: true });
  }
}

const PROFILES = ['cilium-pre-1.14', 'cilium-1.14'] as const;
if (ONLY.has('restart')) {
  for (const profile of PROFILES) {
    const samples = await benchProfile(profile);
    const of = (key: keyof Sample) => samples.map((s) => s[key]);
    emit({ ...distribution('detect_after_networkd_restart', 'ms', of('verdictMs'), { profile, from: "networkd's new bus owner", to: 'first verdict other than Healthy' }), target: 'p95 <= 500' });
    emit(distribution('restart_heard', 'ms', of('detectionMs'), { profile, from: "networkd's new bus owner", to: 'NetworkdRestarted event' }));
    emit({ ...distribution('restore_after_removal', 'ms', of('restoreMs'), { profile, from: 'last removal the kernel reported', to: 'restore writes done' }), target: 'p95 <= 150' });
    emit({ ...distribution('probe_gap_during_restore', 'ms', of('gapMs'), { profile, stream: '5 ms TCP connects: local pod, peer pod, marked traffic, 127.0.0.1' }), target: 'p95 <= 150' });
    emit(distribution('restart_to_all_back', 'ms', of('allBackMs'), { profile, from: 'restart command', to: 're-read shows every item' }));
  }
}
if (ONLY.has('blackhole')) await benchBlackhole(Number(values['blackhole-runs']));
if (ONLY.has('noise')) await benchNoise(Number(values['noise-seconds']));
if (ONLY.has('footprint')) await benchFootprint();
if (ONLY.has('baselines')) benchBaselines();
if (ONLY.has('kube')) await benchKube({ repairRuns: Number(values['repair-runs']), apiSeconds: Number(values['api-seconds']) });
if (ONLY.has('sim')) emit(await controllerHeapFromSim());
if (ONLY.has('soak')) {
  await benchSoak({
    minutes: Number(values['soak-minutes']),
    everyS: Number(values['soak-every']),
    ...(values['soak-env'] ? { env: Object.fromEntries(values['soak-env'].map(envPair)) } : {}),
    ...(values['soak-trace'] ? { tracePath: resolve(values['soak-trace']) } : {}),
  });
}
console.log(`\n${table()}`);

/** `NAME=VALUE` from `--soak-env` (an empty VALUE unsets NAME for the agent). */
function envPair(kv: string): [string, string] {
  const at = kv.indexOf('=');
  if (at <= 0) throw new Error(`bench: --soak-env wants NAME=VALUE, got "${kv}"`);
  return [kv.slice(0, at), kv.slice(at + 1)];
}

/** `controller_heap_mb` as `npm run sim` measures it (the controller's caches for 10,000 nodes, after GC), from one short scenario. */
async function controllerHeapFromSim(): Promise<Figure> {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync('npm', ['run', '-s', 'sim', '--', '--only', '5pct-broken', '--nodes', '10000', '--max-minutes', '1', '--jobs', '1'], { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 * 1024 * 1024 });
  const line = r.stdout.split('\n').find((l) => l.startsWith('{'));
  const value = line ? (JSON.parse(line) as { controller_heap_mb: number | null }).controller_heap_mb : null;
  return { bench: 'controller_heap_mb', unit: 'MB', value, basis: "npm run sim: every ConnwatchNode whole plus the controller's Node and cilium-pod views for 10,000 nodes, after GC", ...(value === null ? { note: `the sim did not report it (exit ${r.status}): ${r.stderr.slice(-300)}` } : {}) };
}
