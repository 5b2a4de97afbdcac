/**
 * What a process costs a node, measured as a memory limit sees it: the process runs in its own
 * transient cgroup (removed afterwards) and an empty network namespace (only `lo`, up), and we
 * read the cgroup's working set (usage − inactive_file, what the kubelet and a MemoryMax act on),
 * its anonymous memory, the main process's RSS and the cgroup's CPU time.
 *
 * The runtime binary is copied and dropped from the page cache first (`coldBinary`, default on), so
 * its pages are charged to this cgroup as they are on a node where nothing else runs that binary;
 * otherwise they would be charged to whichever cgroup touched them first.
 *
 * cgroup v2 with the memory controller when the host has it; else (a hybrid host like this one) a
 * v1 memory cgroup (usage_in_bytes − total_inactive_file, as cAdvisor computes it) beside a v2 or
 * v1 cpuacct cgroup for the CPU time.
 *
 *   node --import tsx scripts/bench/footprint.ts [--node BIN] [--settle S] [--seconds S] [--flags "…"] [-- ARGS…]
 * ARGS default to `dist/cli.js run --mode baremetal`; a `--state-dir` in a temp directory is added
 * to `run`. Prints one JSON object.
 */
import { spawn, execFileSync, type ChildProcess } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmdirSync, rmSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { basename, join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = resolve(import.meta.dirname, '../..');
const MB = 1024 * 1024;

export interface FootprintOptions {
  /** The runtime to run (default: this process's). */
  node?: string;
  /** V8/Node flags before the script. */
  flags?: string[];
  /** The script and its arguments (default: dist/cli.js run --mode baremetal). */
  args?: string[];
  /** Wait this long after start before the measured window (ms). */
  settleMs?: number;
  /** The measured window (ms): CPU over it, memory sampled every second. */
  windowMs?: number;
  /** Copy the runtime and drop its pages from the cache so that this cgroup pays for them. */
  coldBinary?: boolean;
  /** Extra environment. */
  env?: NodeJS.ProcessEnv;
  /** Called once the window starts (e.g. to cause a burst), with the namespace's name. */
  during?: (ctx: { netns: string; pid: number }) => Promise<void>;
  /** Where the process's output goes (default: discarded). */
  logFile?: string;
}

export interface Footprint {
  workingSetMb: number;
  peakWorkingSetMb: number;
  anonMb: number;
  rssMb: number;
  rssAnonMb: number;
  cpuPercent: number;
  windowS: number;
  cgroup: string;
  load1: number;
  processes: { pid: number; cmd: string; rssKb: number }[];
}

export interface Cgroups {
  memDir: string;
  cpuDir: string;
  workingSet(): { usage: number; ws: number; anon: number; activeFile: number };
  cpuNs(): number;
  describe: string;
}

export function makeCgroups(name: string): Cgroups {
  const v2Root = existsSync('/sys/fs/cgroup/cgroup.controllers') ? '/sys/fs/cgroup' : existsSync('/sys/fs/cgroup/unified/cgroup.controllers') ? '/sys/fs/cgroup/unified' : undefined;
  const v2HasMemory = v2Root !== undefined && readFileSync(join(v2Root, 'cgroup.controllers'), 'utf8').split(/\s+/).includes('memory');
  const stat = (dir: string) => Object.fromEntries(readFileSync(join(dir, 'memory.stat'), 'utf8').trim().split('\n').map((l) => { const [k, v] = l.split(' '); return [k!, Number(v)]; }));
  if (v2Root && v2HasMemory) {
    const dir = join(v2Root, name);
    mkdirSync(dir);
    return {
      memDir: dir,
      cpuDir: dir,
      workingSet() {
        const usage = Number(readFileSync(join(dir, 'memory.current'), 'utf8'));
        const s = stat(dir);
        return { usage, ws: usage - (s.inactive_file ?? 0), anon: s.anon ?? 0, activeFile: s.active_file ?? 0 };
      },
      cpuNs: () => Number(/usage_usec (\d+)/.exec(readFileSync(join(dir, 'cpu.stat'), 'utf8'))![1]) * 1000,
      describe: `cgroup v2 ${dir}`,
    };
  }
  const memDir = join('/sys/fs/cgroup/memory', name);
  mkdirSync(memDir);
  const cpuDir = v2Root ? join(v2Root, name) : join('/sys/fs/cgroup/cpuacct', name);
  mkdirSync(cpuDir);
  return {
    memDir,
    cpuDir,
    workingSet() {
      const usage = Number(readFileSync(join(memDir, 'memory.usage_in_bytes'), 'utf8'));
      const s = stat(memDir);
      return { usage, ws: usage - (s.total_inactive_file ?? 0), anon: s.total_rss ?? 0, activeFile: s.total_active_file ?? 0 };
    },
    cpuNs: () => (v2Root ? Number(/usage_usec (\d+)/.exec(readFileSync(join(cpuDir, 'cpu.stat'), 'utf8'))![1]) * 1000 : Number(readFileSync(join(cpuDir, 'cpuacct.usage'), 'utf8'))),
    describe: `cgroup v1 memory ${memDir} (the v2 hierarchy has no memory controller here), CPU from ${cpuDir}`,
  };
}

function procStatus(pid: number): { rssKb: number; anonKb: number; cmd: string } {
  try {
    const s = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = (k: string) => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0);
    const cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean).map((a) => basename(a)).slice(0, 4).join(' ');
    return { rssKb: kb('VmRSS'), anonKb: kb('RssAnon'), cmd };
  } catch {
    return { rssKb: 0, anonKb: 0, cmd: '?' };
  }
}

const round = (n: number, d = 1) => Math.round(n * 10 ** d) / 10 ** d;

/** Runs one process in its own cgroup and empty network namespace; measures it; removes both. */
export async function measureFootprint(opts: FootprintOptions = {}): Promise<Footprint> {
  const id = `cwfp-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
  const work = mkdtempSync(join(tmpdir(), 'cwfp-'));
  let node = opts.node ?? process.execPath;
  if (opts.coldBinary !== false) {
    const copy = join(work, 'node');
    copyFileSync(node, copy);
    execFileSync('chmod', ['755', copy]);
    execFileSync('sync', [copy]);
    execFileSync('dd', [`if=${copy}`, 'iflag=nocache', 'count=0', 'status=none']);
    node = copy;
  }
  const args = [...(opts.args ?? [join(ROOT, 'dist/cli.js'), 'run', '--mode', 'baremetal'])];
  if (args[1] === 'run' && !args.includes('--state-dir')) args.push('--state-dir', join(work, 'state'));
  const cg = makeCgroups(id);
  execFileSync('ip', ['netns', 'add', id]);
  execFileSync('ip', ['-n', id, 'link', 'set', 'lo', 'up']);
  let child: ChildProcess | undefined;
  try {
    const script = `echo $$ > ${cg.memDir}/cgroup.procs && echo $$ > ${cg.cpuDir}/cgroup.procs && exec ip netns exec ${id} "$@"`;
    const out = opts.logFile ? (await import('node:fs')).openSync(opts.logFile, 'w') : 'ignore';
    child = spawn('sh', ['-c', script, 'sh', node, ...(opts.flags ?? []), ...args], { cwd: ROOT, env: { ...process.env, ...opts.env }, stdio: ['ignore', out, out] });
    const exited = new Promise<number | null>((res) => child!.once('exit', (code) => res(code)));
    let gone = false;
    void exited.then(() => (gone = true));
    await sleep(opts.settleMs ?? 20_000);
    if (gone) throw new Error(`the process exited before the window (see ${opts.logFile ?? 'its log: pass logFile'})`);
    const windowMs = opts.windowMs ?? 60_000;
    const cpu0 = cg.cpuNs();
    const t0 = process.hrtime.bigint();
    let peak = 0;
    const during = opts.during?.({ netns: id, pid: child.pid! });
    const end = Date.now() + windowMs;
    while (Date.now() < end) {
      peak = Math.max(peak, cg.workingSet().ws);
      await sleep(Math.min(1000, Math.max(0, end - Date.now())));
    }
    await during;
    const cpu1 = cg.cpuNs();
    const wallNs = Number(process.hrtime.bigint() - t0);
    if (gone) throw new Error('the process exited during the window');
    const mem = cg.workingSet();
    peak = Math.max(peak, mem.ws);
    const pids = readFileSync(join(cg.memDir, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean).map(Number);
    const main = procStatus(child.pid!);
    return {
      workingSetMb: round(mem.ws / MB),
      peakWorkingSetMb: round(peak / MB),
      anonMb: round(mem.anon / MB),
      rssMb: round(main.rssKb / 1024),
      rssAnonMb: round(main.anonKb / 1024),
      cpuPercent: round(((cpu1 - cpu0) / wallNs) * 100, 2),
      windowS: round(wallNs / 1e9),
      cgroup: cg.describe,
      load1: round(loadavg()[0]!, 2),
      processes: pids.map((pid) => ({ pid, ...procStatus(pid) })).map(({ pid, cmd, rssKb }) => ({ pid, cmd, rssKb })),
    };
  } finally {
    if (child && child.exitCode === null) {
      child.kill('SIGTERM');
      await Promise.race([new Promise((r) => child!.once('exit', r)), sleep(6000)]);
    }
    for (let i = 0; i < 20; i++) {
      const left = readFileSync(join(cg.memDir, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean);
      if (left.length === 0) break;
      for (const pid of left) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          /* gone */
        }
      }
      await sleep(100);
    }
    for (const dir of new Set([cg.memDir, cg.cpuDir])) {
      try {
        rmdirSync(dir);
      } catch (err) {
        process.stderr.write(`footprint: could not remove ${dir}: ${(err as Error).message}\n`);
      }
    }
    try {
      execFileSync('ip', ['netns', 'del', id]);
    } catch {
      /* already gone */
    }
    rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  const { values, positionals } = parseArgs({
    allowPositionals: true,
    options: { node: { type: 'string' }, settle: { type: 'string', default: '20' }, seconds: { type: 'string', default: '60' }, flags: { type: 'string', default: '' }, warm: { type: 'boolean' }, log: { type: 'string' } },
  });
  const result = await measureFootprint({
    node: values.node,
    flags: values.flags.split(' ').filter(Boolean),
    args: positionals.length > 0 ? positionals : undefined,
    settleMs: Number(values.settle) * 1000,
    windowMs: Number(values.seconds) * 1000,
    coldBinary: !values.warm,
    logFile: values.log,
  });
  writeFileSync(1, JSON.stringify(result) + '\n');
}
