/**
 * `npm run bench -- --only soak [--soak-minutes 30]`: does the agent grow over a long run with
 * restarts, bursts and alerts? The lab (Cilium < 1.14, the real networkd), the agent from the
 * bundle on the runtime and flags the unit ships, in its own memory and CPU cgroup; networkd
 * restarted every `--soak-every` seconds (each one a flush, a restore, a probe burst, a page and
 * its resolve to a PagerDuty stand-in). The working set is sampled every 10 s; after a warm-up the
 * slope of a least-squares line through it says whether it grows.
 */
import { appendFileSync, readFileSync, rmdirSync, rmSync, mkdtempSync, writeFileSync, existsSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { request } from 'node:http';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startLab } from '../lab/index.js';
import { followJsonLines } from '../demo/follow.js';
import { emit } from './figures.js';
import { makeCgroups } from './footprint.js';
import { AGENT_ENV, AGENT_FLAGS, NODE24 } from './sections.js';

const ROOT = resolve(import.meta.dirname, '../..');
const MB = 1024 * 1024;
const PD_PORT = 18_090;
const SAMPLE_MS = 10_000;

interface Sample {
  t: number;
  ws: number;
  anon: number;
  activeFile: number;
  /** V8's heap in use (nodejs_heap_size_used_bytes), when /metrics answered. */
  heap?: number;
}

/** The agent's /metrics text over its unix socket ('' when it does not answer). */
function metricsText(socketPath: string): Promise<string> {
  return new Promise((done) => {
    const req = request({ socketPath, path: '/metrics', timeout: 3_000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => done(body));
    });
    req.on('error', () => done(''));
    req.on('timeout', () => req.destroy());
    req.end();
  });
}

/** The process's memory as its own /metrics tells it, in MB: where growth outside the cgroup's view of V8 lives. */
function memoryBreakdown(text: string): Record<string, number> {
  const out: Record<string, number> = {};
  const take = (name: string, key: string) => {
    const m = new RegExp(`^${name} (\\S+)$`, 'm').exec(text);
    if (m) out[key] = r1(Number(m[1]) / MB);
  };
  take('process_resident_memory_bytes', 'rss');
  take('nodejs_heap_size_total_bytes', 'heapTotal');
  take('nodejs_heap_size_used_bytes', 'heapUsed');
  take('nodejs_external_memory_bytes', 'external');
  for (const m of text.matchAll(/^nodejs_heap_space_size_(total|used)_bytes\{space="([a-z_]+)"\} (\S+)$/gm)) out[`${m[2]}.${m[1]}`] = r1(Number(m[3]) / MB);
  return out;
}

/** Least-squares slope of y over x (x in hours): MB per hour. */
function slopePerHour(samples: Sample[], of: (s: Sample) => number = (s) => s.ws): number {
  const n = samples.length;
  const xs = samples.map((s) => s.t / 3_600_000);
  const ys = samples.map((s) => of(s) / MB);
  const mx = xs.reduce((a, b) => a + b, 0) / n;
  const my = ys.reduce((a, b) => a + b, 0) / n;
  const num = xs.reduce((a, x, i) => a + (x - mx) * (ys[i]! - my), 0);
  const den = xs.reduce((a, x) => a + (x - mx) ** 2, 0);
  return den === 0 ? 0 : num / den;
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(1, xs.length);
const r1 = (n: number) => Math.round(n * 10) / 10;

export interface SoakOptions {
  minutes: number;
  everyS: number;
  warmupMinutes?: number;
  /** Environment for the agent over the unit's (AGENT_ENV), to compare one lever: MALLOC_ARENA_MAX=8, say; an empty value unsets. */
  env?: Record<string, string>;
  /** A JSON line per sample (the cgroup's figures and the agent's own memory breakdown) appended here. */
  tracePath?: string;
}

export async function benchSoak(opts: SoakOptions): Promise<void> {
  const node = existsSync(NODE24) ? NODE24 : process.execPath;
  const runtime = node === NODE24 ? 'node 24' : `node ${process.versions.node.split('.')[0]}`;
  const lab = await startLab({ profile: 'cilium-pre-1.14' });
  const dir = mkdtempSync(join(tmpdir(), 'cw-soak-'));
  const cg = makeCgroups(`cwsoak-${process.pid}`);
  const stops: (() => void)[] = [];
  // Ctrl-C or a kill ends the soak early but still through the clean-up below (lab, cgroups, agent).
  let interrupted: string | undefined;
  const interrupt = (signal: NodeJS.Signals) => {
    interrupted = signal;
    process.stderr.write(`soak: ${signal}: stopping early, cleaning up\n`);
  };
  process.on('SIGINT', interrupt).on('SIGTERM', interrupt);
  try {
    const d = lab.description;
    const peer = d.peer.ip4;
    const pd = lab.spawn('peer', [process.execPath, '--import', 'tsx', join(ROOT, 'scripts/demo/pagerduty-receiver.ts'), peer, String(PD_PORT)], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
    stops.push(() => pd.kill('SIGTERM'));
    const pages = followJsonLines(pd.stdout!);
    const config = join(dir, 'connwatch.yaml');
    writeFileSync(
      config,
      [
        'mode: baremetal',
        'node: lab-node',
        `stateDir: ${join(dir, 'state')}`,
        'cilium:',
        `  socketPath: ${d.cilium.labSocket}`,
        'datapath:',
        '  learn: { quietMs: 0 }',
        'alerts:',
        '  pagerduty:',
        '    routingKey: soak-routing-key',
        `    url: http://${peer}:${PD_PORT}/v2/enqueue`,
        '    jitterMs: 0',
        '  network: { proxy: direct }',
        '',
      ].join('\n'),
    );
    const agentEnv = Object.fromEntries(Object.entries({ ...AGENT_ENV, ...opts.env }).map(([k, v]) => [k, v === '' ? undefined : v]));
    const agent = lab.spawn('node', [node, ...AGENT_FLAGS, join(ROOT, 'dist/cli.js'), 'run', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...agentEnv } });
    stops.push(() => agent.kill('SIGTERM'));
    // Into the cgroup before it starts its children (they inherit it).
    for (const procs of new Set([join(cg.memDir, 'cgroup.procs'), join(cg.cpuDir, 'cgroup.procs')])) writeFileSync(procs, String(agent.pid));
    const logs = followJsonLines(agent.stdout!);
    await logs.waitFor((l) => l.msg === 'baseline changed', 20_000, 'the baseline');
    await logs.waitFor((l) => l.msg === 'signals listening', 20_000, 'the signals');

    const t0 = Date.now();
    const end = t0 + opts.minutes * 60_000;
    const samples: Sample[] = [];
    const cpu0 = cg.cpuNs();
    let restarts = 0;
    let nextRestart = t0 + opts.everyS * 1000;
    let nextSample = t0;
    while (Date.now() < end && interrupted === undefined) {
      if (agent.exitCode !== null) throw new Error(`the agent exited (${agent.exitCode}) ${Math.round((Date.now() - t0) / 1000)} s into the soak`);
      if (Date.now() >= nextSample) {
        const t = Date.now() - t0;
        const mem = cg.workingSet();
        const breakdown = memoryBreakdown(await metricsText(join(dir, 'state', 'telemetry.sock')));
        const heap = breakdown.heapUsed === undefined ? undefined : breakdown.heapUsed * MB;
        samples.push({ t, ws: mem.ws, anon: mem.anon, activeFile: mem.activeFile, ...(heap === undefined ? {} : { heap }) });
        if (opts.tracePath) appendFileSync(opts.tracePath, `${JSON.stringify({ t, restarts, ws: r1(mem.ws / MB), anon: r1(mem.anon / MB), ...breakdown })}\n`);
        nextSample += SAMPLE_MS;
      }
      if (Date.now() >= nextRestart) {
        await lab.restartNetworkd();
        restarts++;
        nextRestart += opts.everyS * 1000;
        if (process.env.BENCH_VERBOSE) process.stderr.write(`  soak: restart ${restarts}, working set ${r1(samples.at(-1)!.ws / MB)} MB\n`);
      }
      await sleep(Math.max(50, Math.min(nextSample, nextRestart) - Date.now()));
    }
    const cpuPercent = ((cg.cpuNs() - cpu0) / 1e6 / (Date.now() - t0)) * 100;
    const warm = (opts.warmupMinutes ?? Math.min(5, opts.minutes / 3)) * 60_000;
    const steady = samples.filter((s) => s.t >= warm);
    if (steady.length < 5) {
      process.stderr.write(`soak: ${steady.length} samples after the ${r1(warm / 60_000)}-minute warm-up: too few for a slope (run longer)\n`);
      return;
    }
    const fifth = Math.max(1, Math.floor(steady.length / 5));
    const fifths = (of: (s: Sample) => number) => ({ first_fifth: r1(mean(steady.slice(0, fifth).map((s) => of(s) / MB))), last_fifth: r1(mean(steady.slice(-fifth).map((s) => of(s) / MB))), slope_mb_per_hour: r1(slopePerHour(steady, of)) });
    const first = mean(steady.slice(0, fifth).map((s) => s.ws / MB));
    const last = mean(steady.slice(-fifth).map((s) => s.ws / MB));
    const withHeap = steady.filter((s) => s.heap !== undefined);
    const verified = logs.lines.filter((l) => typeof l.msg === 'string' && l.msg.startsWith('restore: verified')).length;
    const triggers = pages.lines.filter((p) => p.action === 'trigger').length;
    const resolves = pages.lines.filter((p) => p.action === 'resolve').length;
    const extraEnv = Object.entries(agentEnv).map(([k, v]) => ` ${k}=${v ?? '(unset)'}`).join('');
    const basis = `${interrupted ? `interrupted (${interrupted}) after ${r1((Date.now() - t0) / 60_000)} of ` : ''}${opts.minutes} min, networkd restarted every ${opts.everyS} s (${restarts} restarts, ${verified} restores verified, ${triggers} pages and ${resolves} resolves delivered), ${runtime} ${AGENT_FLAGS.join(' ')}${extraEnv}, warm-up ${r1(warm / 60_000)} min excluded`;
    emit({ bench: 'agent_soak_working_set_mb', unit: 'MB', first_fifth: r1(first), last_fifth: r1(last), peak: r1(Math.max(...samples.map((s) => s.ws)) / MB), slope_mb_per_hour: r1(slopePerHour(steady)), samples: samples.length, basis, target: 'no growth', met: last - first < 2 });
    emit({ bench: 'agent_soak_anon_mb', unit: 'MB', ...fifths((s) => s.anon), basis: "the cgroup's anonymous memory (the agent and its ip children)" });
    emit({ bench: 'agent_soak_active_file_mb', unit: 'MB', ...fifths((s) => s.activeFile), basis: 'active file pages charged to the cgroup (the journal, the spool, the state files it writes): in the working set, reclaimable under pressure' });
    if (withHeap.length > 1) emit({ bench: 'agent_soak_heap_used_mb', unit: 'MB', first_fifth: r1(mean(withHeap.slice(0, fifth).map((s) => s.heap! / MB))), last_fifth: r1(mean(withHeap.slice(-fifth).map((s) => s.heap! / MB))), slope_mb_per_hour: r1(slopePerHour(withHeap, (s) => s.heap!)), basis: "V8's heap in use (nodejs_heap_size_used_bytes), sampled without forcing a GC" });
    emit({ bench: 'agent_soak_cpu_percent', unit: '% of a core', value: Math.round(cpuPercent * 100) / 100, basis: 'the agent and its ip children over the whole soak', load1: r1(loadavg()[0]!) });
  } finally {
    process.off('SIGINT', interrupt).off('SIGTERM', interrupt);
    for (const stop of stops.reverse()) stop();
    await sleep(500);
    for (const procs of new Set([join(cg.memDir, 'cgroup.procs'), join(cg.cpuDir, 'cgroup.procs')])) {
      for (const pid of readFileSync(procs, 'utf8').trim().split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
    }
    await sleep(300);
    await lab.down();
    for (const dirPath of new Set([cg.memDir, cg.cpuDir])) {
      try {
        rmdirSync(dirPath);
      } catch (err) {
        process.stderr.write(`soak: could not remove ${dirPath}: ${(err as Error).message}\n`);
      }
    }
    rmSync(dir, { recursive: true, force: true });
  }
}
