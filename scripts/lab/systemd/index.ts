/**
 * The systemd lab: Debian's systemd 252 as PID 1 under systemd-nspawn, in a network namespace
 * of its own, inside a private mount namespace, with its system bus reachable from outside at
 * `unix:path=/proc/<container PID 1>/root/run/dbus/system_bus_socket`. The cached root
 * (root.ts) is the lower layer of an overlay; each boot writes its own upper layer (networkd's
 * .network file, the Cilium and apt-daily-upgrade stand-ins, optionally connwatch as install.sh
 * installs it), so boots never change the cache and two can run at once.
 *
 * Names start with `cwsd-`; state lives in /run/connwatch-lab/systemd/ (the network lab's `down`
 * never sees it). nspawn runs in a cgroup of its own (`/sys/fs/cgroup/{unified,systemd}/<name>`)
 * so its `payload`/`supervisor` folders never meet another lab's; `down` kills what is left in
 * that cgroup and removes the folders, the network namespace and the lab directory.
 */
import { spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, cpSync, existsSync, mkdirSync, openSync, readFileSync, readdirSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { isAlive, mustRun, procRef, run, stopProcess, waitFor, type ProcRef } from '../run.js';
import type { ExecResult } from '../types.js';
import { cacheDir, ensureRoot, rootPath, rootReady } from './root.js';
import { CILIUM_SOCKET_DROPIN, CILIUM_UNIT, NETWORK_FILE, PEER_ADDRESS, UPGRADE_UNIT } from './units.js';

export { BREAK_ON_UPGRADE_FLAG, BROKEN_FLAG, LAB_ADDRESS, PEER_ADDRESS, POD_PORT } from './units.js';

const REPO = resolve(import.meta.dirname, '../../..');
export const SYSTEMD_LAB_ROOT = '/run/connwatch-lab/systemd';
export const SYSTEMD_LAB_PREFIX = 'cwsd-';
const CGROUP_HIERARCHIES = ['/sys/fs/cgroup/unified', '/sys/fs/cgroup/systemd', '/sys/fs/cgroup'];

export interface SystemdLabOptions {
  name?: string;
  /** Install connwatch into the container with scripts/install.sh (cached per build) — its unit is then present, not started. */
  connwatch?: boolean;
  log?: (line: string) => void;
}

export interface SystemdLabState {
  version: 1;
  name: string;
  dir: string;
  netns: string;
  nspawn?: ProcRef;
  pid1?: ProcRef;
  cgroups: string[];
  createdAt: string;
}

export interface SystemdLabDescription {
  name: string;
  netns: string;
  /** Container PID 1 as the host sees it. */
  pid1: number;
  /** The container's system bus, from the host. */
  busAddress: string;
  /** The container's root as the host can read it (/proc/<pid1>/root). */
  root: string;
  connwatch: boolean;
  timings: { rootMs: number; rootBuilt: boolean; installMs: number; bootMs: number };
}

export interface SystemdLab {
  readonly description: SystemdLabDescription;
  /** Runs argv inside the container (every namespace of its PID 1). */
  exec(argv: string[], opts?: { timeoutMs?: number }): Promise<ExecResult>;
  /** `systemctl …` inside; rejects on failure. */
  systemctl(...args: string[]): Promise<string>;
  /** A path inside the container, as the host reads it. */
  path(inside: string): string;
  /** The container's PID 1 ids of a unit's main process (host PIDs, via cgroup.procs). */
  mainPid(unit: string): Promise<number | undefined>;
  down(): Promise<void>;
}

/** Why this machine cannot boot the lab, or undefined when it can. */
export function systemdLabUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'the systemd lab needs root';
  for (const bin of ['systemd-nspawn', 'debootstrap', 'unshare', 'nsenter', 'ip']) {
    if (!['/usr/bin', '/usr/sbin', '/bin', '/sbin'].some((d) => existsSync(join(d, bin)))) return `${bin} is missing (scripts/deps.sh test installs systemd-container and debootstrap)`;
  }
  if (!readFileSync('/proc/filesystems', 'utf8').includes('\toverlay')) return 'the kernel has no overlay filesystem (the cached root is the lower layer of an overlay)';
  const status = readFileSync('/proc/self/status', 'utf8');
  const eff = BigInt('0x' + (/^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1] ?? '0'));
  for (const [bit, name] of [[21n, 'CAP_SYS_ADMIN'], [12n, 'CAP_NET_ADMIN'], [18n, 'CAP_SYS_CHROOT']] as const) {
    if ((eff & (1n << bit)) === 0n) return `systemd-nspawn needs ${name}, which this process lacks`;
  }
  if (!CGROUP_HIERARCHIES.some((h) => existsSync(join(h, 'cgroup.procs')))) return 'no writable cgroup hierarchy under /sys/fs/cgroup';
  return undefined;
}

function stateFile(name: string): string {
  return join(SYSTEMD_LAB_ROOT, `${name}.json`);
}

function writeState(state: SystemdLabState): void {
  mkdirSync(SYSTEMD_LAB_ROOT, { recursive: true });
  writeFileSync(`${stateFile(state.name)}.tmp`, JSON.stringify(state, null, 2) + '\n');
  cpSync(`${stateFile(state.name)}.tmp`, stateFile(state.name));
  rmSync(`${stateFile(state.name)}.tmp`, { force: true });
}

function readState(name: string): SystemdLabState | undefined {
  try {
    return JSON.parse(readFileSync(stateFile(name), 'utf8')) as SystemdLabState;
  } catch {
    return undefined;
  }
}

export function listSystemdLabs(): string[] {
  try {
    return readdirSync(SYSTEMD_LAB_ROOT)
      .filter((f) => f.endsWith('.json'))
      .map((f) => f.slice(0, -'.json'.length));
  } catch {
    return [];
  }
}

/** How old an install of another build must be before it is removed from the cache. */
const STALE_INSTALL_MS = 24 * 3_600_000;

/** connwatch as install.sh lays it out, built once per (dist, units, install script, lock file) into the cache. */
async function installedConnwatch(log: (line: string) => void): Promise<{ dir: string; ms: number }> {
  const started = Date.now();
  const hash = createHash('sha256');
  const walk = (p: string): void => {
    if (!existsSync(p)) return;
    const st = statSync(p);
    if (st.isDirectory()) for (const e of readdirSync(p).sort()) walk(join(p, e));
    else hash.update(p).update(readFileSync(p));
  };
  for (const p of ['dist', 'systemd', 'scripts/install.sh', 'package.json', 'package-lock.json']) walk(join(REPO, p));
  const dir = join(cacheDir(), `connwatch-install-${hash.digest('hex').slice(0, 12)}`);
  if (existsSync(join(dir, '.complete'))) return { dir, ms: 0 };
  log(`systemd lab: installing connwatch with scripts/install.sh into ${dir}`);
  const tmp = `${dir}.build-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  try {
    await mustRun(['bash', join(REPO, 'scripts/install.sh'), '--root', tmp, '--prefix', '/opt/connwatch', '--no-enable'], { timeoutMs: 10 * 60_000, cwd: REPO });
    writeFileSync(join(tmp, '.complete'), '');
    // Another test file may have built the same install meanwhile, and its container runs from it:
    // a complete one is never replaced (ours is discarded), an incomplete leftover is.
    if (!existsSync(join(dir, '.complete'))) {
      rmSync(dir, { recursive: true, force: true });
      await mustRun(['mv', '-T', tmp, dir]);
    }
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
  // Older installs go, once no boot of this day can still run from them.
  for (const entry of readdirSync(cacheDir())) {
    const full = join(cacheDir(), entry);
    if (entry.startsWith('connwatch-install-') && full !== dir && !entry.includes('.build-') && Date.now() - statSync(full).mtimeMs > STALE_INSTALL_MS) rmSync(full, { recursive: true, force: true });
  }
  return { dir, ms: Date.now() - started };
}

function writeFile(path: string, text: string, mode?: number): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, text, mode === undefined ? {} : { mode });
}

function enable(upper: string, unit: string, target = 'multi-user.target'): void {
  const wants = join(upper, 'etc/systemd/system', `${target}.wants`);
  mkdirSync(wants, { recursive: true });
  symlinkSync(`/etc/systemd/system/${unit}`, join(wants, unit));
}

/** The host PID of the container's PID 1: nspawn's descendant whose comm is systemd. */
function findPid1(nspawnPid: number): number | undefined {
  const children = (pid: number): number[] => {
    try {
      return readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
    } catch {
      return [];
    }
  };
  const queue = children(nspawnPid);
  for (let i = 0; i < queue.length && i < 16; i++) {
    const pid = queue[i]!;
    try {
      if (readFileSync(`/proc/${pid}/comm`, 'utf8').trim() === 'systemd') return pid;
    } catch {
      continue;
    }
    queue.push(...children(pid));
  }
  return undefined;
}

/** Boots a lab; on any failure tears down what it made. */
export async function startSystemdLab(opts: SystemdLabOptions = {}): Promise<SystemdLab> {
  const why = systemdLabUnavailable();
  if (why) throw new Error(`systemd lab: cannot boot here: ${why}`);
  const log = opts.log ?? (() => undefined);
  const name = opts.name ?? `${SYSTEMD_LAB_PREFIX}${randomBytes(3).toString('hex')}`;
  if (!name.startsWith(SYSTEMD_LAB_PREFIX) || name.length > 15) throw new Error(`systemd lab: a name starts with ${SYSTEMD_LAB_PREFIX} and has at most 15 characters, got ${name}`);
  const root = await ensureRoot(log);
  const install = opts.connwatch ? await installedConnwatch(log) : undefined;
  const dir = join(SYSTEMD_LAB_ROOT, name);
  const state: SystemdLabState = { version: 1, name, dir, netns: name, cgroups: CGROUP_HIERARCHIES.map((h) => join(h, name)), createdAt: new Date().toISOString() };
  writeState(state);
  try {
    const bootStarted = Date.now();
    await mustRun(['ip', 'netns', 'add', name]);
    await mustRun(['ip', '-n', name, 'link', 'add', 'eth0', 'type', 'veth', 'peer', 'name', 'eth0-peer']);
    await mustRun(['ip', '-n', name, 'address', 'add', `${PEER_ADDRESS}/24`, 'dev', 'eth0-peer']);
    await mustRun(['ip', '-n', name, 'link', 'set', 'eth0-peer', 'up']);
    await mustRun(['ip', '-n', name, 'link', 'set', 'lo', 'up']);

    const upper = join(dir, 'upper');
    for (const d of ['upper', 'work', 'root']) mkdirSync(join(dir, d), { recursive: true });
    writeFile(join(upper, 'etc/systemd/network/10-eth0.network'), NETWORK_FILE);
    writeFile(join(upper, 'etc/systemd/system/cilium.service'), CILIUM_UNIT);
    enable(upper, 'cilium.service');
    writeFile(join(upper, 'etc/systemd/system/apt-daily-upgrade.service'), UPGRADE_UNIT);
    mkdirSync(join(upper, 'usr/local/lib/connwatch-lab'), { recursive: true });
    copyFileSync(join(import.meta.dirname, 'cilium-standin.mjs'), join(upper, 'usr/local/lib/connwatch-lab/cilium-standin.mjs'));
    const binds = [`--bind-ro=${process.execPath}:/usr/local/bin/node`];
    if (install) {
      for (const sub of ['etc', 'usr']) if (existsSync(join(install.dir, sub))) cpSync(join(install.dir, sub), join(upper, sub), { recursive: true });
      writeFile(join(upper, 'etc/systemd/system/connwatch.service.d/cilium-socket.conf'), CILIUM_SOCKET_DROPIN);
      binds.push(`--bind-ro=${join(install.dir, 'opt/connwatch')}:/opt/connwatch`);
    }

    const sysusers = install ? `systemd-sysusers --root="$M" "$M/usr/lib/sysusers.d/connwatch.conf"\n` : '';
    const cgroupMoves = state.cgroups.map((cg) => `if [ -e ${dirname(cg)}/cgroup.procs ]; then mkdir -p ${cg} && echo $$ > ${cg}/cgroup.procs; fi`).join('\n');
    const script = `set -e
M=${join(dir, 'root')}
mount -t overlay overlay -o lowerdir=${root.path},upperdir=${upper},workdir=${join(dir, 'work')} "$M"
${sysusers}${cgroupMoves}
exec systemd-nspawn -D "$M" -b --register=no --keep-unit -M ${name} --network-namespace-path=/run/netns/${name} --capability=CAP_NET_ADMIN --console=passive ${binds.join(' ')}
`;
    writeFile(join(dir, 'boot.sh'), script);
    const out = openSync(join(dir, 'nspawn.log'), 'a');
    const child = spawn('unshare', ['--mount', '--propagation', 'private', '--', 'sh', join(dir, 'boot.sh')], { detached: true, stdio: ['ignore', out, out] });
    closeSync(out);
    child.unref();
    state.nspawn = procRef(child.pid);
    writeState(state);
    const pid1 = await waitFor(() => (isAlive(state.nspawn) ? findPid1(child.pid!) : (() => {
      throw new Error(`systemd lab: systemd-nspawn exited: ${readFileSync(join(dir, 'nspawn.log'), 'utf8').trim().split('\n').slice(-5).join(' | ')}`);
    })()), 'the container PID 1', 20_000, 20);
    state.pid1 = procRef(pid1);
    writeState(state);
    const lab = new RunningSystemdLab(state, {
      name,
      netns: name,
      pid1,
      busAddress: `unix:path=/proc/${pid1}/root/run/dbus/system_bus_socket`,
      root: `/proc/${pid1}/root`,
      connwatch: Boolean(install),
      timings: { rootMs: root.ms, rootBuilt: root.built, installMs: install?.ms ?? 0, bootMs: 0 },
    });
    // Booted: PID 1 says running (or degraded: some unit of the minimal root failed — shown, not fatal).
    const systemState = await waitFor(
      async () => {
        const r = await lab.exec(['systemctl', 'is-system-running'], { timeoutMs: 5_000 });
        const s = r.stdout.trim();
        return s === 'running' || s === 'degraded' ? s : undefined;
      },
      'the container to finish booting',
      60_000,
      100,
    );
    lab.description.timings.bootMs = Date.now() - bootStarted;
    if (systemState === 'degraded') log(`systemd lab: booted degraded: ${(await lab.exec(['systemctl', '--failed', '--no-legend'])).stdout.trim()}`);
    return lab;
  } catch (err) {
    await downSystemdLab(name);
    throw err;
  }
}

/** Attaches to a running lab by name. */
export function attachSystemdLab(name: string): SystemdLab {
  const state = readState(name);
  if (!state?.pid1 || !isAlive(state.pid1)) throw new Error(`systemd lab: ${name} is not running`);
  const pid1 = state.pid1.pid;
  return new RunningSystemdLab(state, {
    name,
    netns: state.netns,
    pid1,
    busAddress: `unix:path=/proc/${pid1}/root/run/dbus/system_bus_socket`,
    root: `/proc/${pid1}/root`,
    connwatch: existsSync(`/proc/${pid1}/root/etc/systemd/system/connwatch.service`),
    timings: { rootMs: 0, rootBuilt: false, installMs: 0, bootMs: 0 },
  });
}

class RunningSystemdLab implements SystemdLab {
  constructor(
    private readonly state: SystemdLabState,
    readonly description: SystemdLabDescription,
  ) {}

  exec(argv: string[], opts: { timeoutMs?: number } = {}): Promise<ExecResult> {
    return run(['nsenter', '-t', String(this.description.pid1), '-a', '--', ...argv], { timeoutMs: opts.timeoutMs ?? 30_000, env: { PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin', SYSTEMD_PAGER: '', LANG: 'C' } });
  }

  async systemctl(...args: string[]): Promise<string> {
    const r = await this.exec(['systemctl', '--no-pager', ...args], { timeoutMs: 60_000 });
    if (r.code !== 0) {
      const unit = args.find((a) => a.endsWith('.service'));
      const journal = unit ? (await this.exec(['journalctl', '--no-pager', '-n', '40', '-u', unit])).stdout.trim() : '';
      throw new Error(`systemd lab: systemctl ${args.join(' ')} failed (exit ${r.code}): ${r.stderr.trim() || r.stdout.trim()}${journal ? `\n${unit}'s journal:\n${journal}` : ''}`);
    }
    return r.stdout;
  }

  path(inside: string): string {
    return `/proc/${this.description.pid1}/root${inside.startsWith('/') ? '' : '/'}${inside}`;
  }

  async mainPid(unit: string): Promise<number | undefined> {
    // The container's own view of the PID is in its PID namespace: map it through the unit's cgroup.
    const r = await this.exec(['systemctl', 'show', '-P', 'ControlGroup', unit]);
    const cg = r.stdout.trim();
    if (!cg) return undefined;
    const inside = Number((await this.exec(['systemctl', 'show', '-P', 'MainPID', unit])).stdout.trim());
    if (!inside) return undefined;
    for (const h of CGROUP_HIERARCHIES) {
      const procs = join(h, this.state.name, 'payload', cg, 'cgroup.procs');
      if (!existsSync(procs)) continue;
      for (const pid of readFileSync(procs, 'utf8').trim().split('\n').filter(Boolean).map(Number)) {
        const nspid = /^NSpid:\s*(.*)$/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]?.trim().split(/\s+/).map(Number);
        if (nspid && nspid[nspid.length - 1] === inside) return pid;
      }
    }
    return undefined;
  }

  down(): Promise<void> {
    return downSystemdLab(this.state.name);
  }
}

/** Every process in a cgroup subtree (host PIDs). */
function cgroupPids(dir: string): number[] {
  if (!existsSync(dir)) return [];
  const pids: number[] = [];
  try {
    pids.push(...readFileSync(join(dir, 'cgroup.procs'), 'utf8').trim().split('\n').filter(Boolean).map(Number));
  } catch {
    /* gone */
  }
  try {
    for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) pids.push(...cgroupPids(join(dir, e.name)));
  } catch {
    /* gone */
  }
  return pids;
}

/** Removes a cgroup subtree, deepest first (cgroupfs removes only empty folders, with rmdir). */
async function removeCgroup(dir: string): Promise<void> {
  if (!existsSync(dir)) return;
  for (const e of readdirSync(dir, { withFileTypes: true })) if (e.isDirectory()) await removeCgroup(join(dir, e.name));
  await run(['rmdir', dir]);
}

/** Powers the container off (nspawn's SIGTERM), kills what is left, removes cgroups, netns, mounts and files. Idempotent. */
export async function downSystemdLab(name?: string): Promise<void> {
  if (name === undefined) {
    const names = new Set(listSystemdLabs());
    const netns = (await run(['ip', 'netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter((n) => n.startsWith(SYSTEMD_LAB_PREFIX));
    for (const n of netns) names.add(n);
    for (const n of names) await downSystemdLab(n);
    return;
  }
  if (!name.startsWith(SYSTEMD_LAB_PREFIX)) throw new Error(`systemd lab: ${name} is not a systemd lab name (${SYSTEMD_LAB_PREFIX}…)`);
  const state = readState(name);
  const cgroups = state?.cgroups ?? CGROUP_HIERARCHIES.map((h) => join(h, name));
  // nspawn turns SIGTERM into a clean poweroff of the container.
  await stopProcess(state?.nspawn, 'SIGTERM', 10_000);
  for (let i = 0; i < 3; i++) {
    const left = [...new Set(cgroups.flatMap(cgroupPids))];
    if (left.length === 0) break;
    for (const pid of left) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        /* gone */
      }
    }
    await waitFor(() => cgroups.flatMap(cgroupPids).length === 0, `the ${name} cgroup to empty`, 5_000, 20).catch(() => undefined);
  }
  for (const cg of cgroups) await removeCgroup(cg);
  await run(['ip', 'netns', 'del', name]);
  const dir = join(SYSTEMD_LAB_ROOT, name);
  // The overlay lived in nspawn's private mount namespace and went with it; what remains is files.
  rmSync(dir, { recursive: true, force: true });
  rmSync(stateFile(name), { force: true });
}

export { cacheDir, ensureRoot, rootPath, rootReady };
