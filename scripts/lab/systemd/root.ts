/**
 * The cached Debian root the systemd lab boots: a minimal bookworm from debootstrap, kept outside
 * the checkout (/var/cache/connwatch-lab/ unless CONNWATCH_LAB_CACHE says otherwise) and rebuilt
 * only when absent or when what goes into it changes (its directory name carries a hash of the
 * recipe). Built into a temporary directory and renamed when complete, so a crash never leaves a
 * half root that looks finished; two builders racing each keep their own and one rename wins.
 * Only Debian's mirror (the machine's apt source) is reached.
 */
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mustRun, run } from '../run.js';

/** What debootstrap installs beyond minbase: PID 1, the bus, networkd's tools, logind + polkit (the RestartUnit rule). */
export const ROOT_PACKAGES = ['systemd', 'systemd-sysv', 'dbus', 'iproute2', 'libpam-systemd', 'polkitd'];
const SUITE = 'bookworm';
/** Bumped when the configuration below changes. */
const RECIPE_VERSION = 1;

/** Units the lab never wants to start at boot (consoles, waits on the network, timers). */
const MASKED = [
  'systemd-networkd-wait-online.service',
  'console-getty.service',
  'getty@.service',
  'container-getty@.service',
  'apt-daily.timer',
  'apt-daily-upgrade.timer',
  'apt-daily.service',
  'e2scrub_all.timer',
  'fstrim.timer',
  'systemd-timesyncd.service',
];

export function cacheDir(env: NodeJS.ProcessEnv = process.env): string {
  return env['CONNWATCH_LAB_CACHE'] || '/var/cache/connwatch-lab';
}

/** The mirror from the machine's apt sources (deb822 or one-line), else deb.debian.org. */
export function debianMirror(): string {
  for (const file of ['/etc/apt/sources.list.d/debian.sources', '/etc/apt/sources.list']) {
    try {
      const text = readFileSync(file, 'utf8');
      const uri = /^URIs:\s*(\S+)/m.exec(text)?.[1] ?? /^deb\s+(?:\[[^\]]*\]\s+)?(\S+)\s+bookworm\s/m.exec(text)?.[1];
      if (uri && !uri.includes('security')) return uri;
    } catch {
      /* next */
    }
  }
  return 'http://deb.debian.org/debian';
}

/** The root's path for the current recipe. */
export function rootPath(env: NodeJS.ProcessEnv = process.env): string {
  const key = createHash('sha256').update(JSON.stringify({ SUITE, ROOT_PACKAGES, MASKED, RECIPE_VERSION })).digest('hex').slice(0, 12);
  return join(cacheDir(env), `${SUITE}-systemd-${key}`);
}

const COMPLETE = '.connwatch-lab-complete';

/** Whether the root is there and finished. */
export function rootReady(path = rootPath()): boolean {
  return existsSync(join(path, COMPLETE));
}

/** Makes sure the root exists; returns its path, whether it was built now and how long that took. */
export async function ensureRoot(log: (line: string) => void = () => undefined): Promise<{ path: string; built: boolean; ms: number }> {
  const path = rootPath();
  if (rootReady(path)) return { path, built: false, ms: 0 };
  const started = Date.now();
  mkdirSync(cacheDir(), { recursive: true });
  const tmp = `${path}.build-${process.pid}`;
  rmSync(tmp, { recursive: true, force: true });
  const mirror = debianMirror();
  log(`systemd lab: debootstrap ${SUITE} (${ROOT_PACKAGES.join(', ')}) from ${mirror} into ${tmp} — a few minutes, once`);
  try {
    await mustRun(['debootstrap', '--variant=minbase', `--include=${ROOT_PACKAGES.join(',')}`, SUITE, tmp, mirror], { timeoutMs: 20 * 60_000 });
    await configure(tmp);
    writeFileSync(join(tmp, COMPLETE), `${new Date().toISOString()}\n`);
    try {
      renameSync(tmp, path);
    } catch (err) {
      // Another builder finished first: use theirs.
      if (!rootReady(path)) throw err;
      rmSync(tmp, { recursive: true, force: true });
    }
  } catch (err) {
    rmSync(tmp, { recursive: true, force: true });
    throw err;
  }
  // Older recipes' roots are dead weight.
  for (const entry of readdirSync(cacheDir())) {
    const full = join(cacheDir(), entry);
    if (entry.startsWith(`${SUITE}-systemd-`) && full !== path && !entry.includes('.build-')) rmSync(full, { recursive: true, force: true });
  }
  return { path, built: true, ms: Date.now() - started };
}

/** What every boot shares: networkd on, consoles and timers masked, a hostname, an empty machine-id (nspawn gives one per boot). */
async function configure(root: string): Promise<void> {
  await mustRun(['systemctl', `--root=${root}`, 'enable', 'systemd-networkd.service']);
  await mustRun(['systemctl', `--root=${root}`, 'mask', ...MASKED]);
  writeFileSync(join(root, 'etc/hostname'), 'cwsd-node\n');
  writeFileSync(join(root, 'etc/machine-id'), '');
  // The lab's stand-ins and connwatch's socket group.
  await run(['chroot', root, 'groupadd', '--system', 'cilium']);
  rmSync(join(root, 'var/cache/apt/archives'), { recursive: true, force: true });
  mkdirSync(join(root, 'var/cache/apt/archives/partial'), { recursive: true });
}
