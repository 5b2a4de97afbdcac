// Issue 20: `connwatch doctor` end to end (the built CLI against fixture roots, golden human and JSON
// output, exit codes), and connwatch_hazard{kind} on a running agent that audits a fixture root
// (doctor.root) without keeping what the audit loaded.
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { freePort } from '../support/ports.js';

const cli = join(process.cwd(), 'dist/cli.js');
const FIXTURES = resolve(import.meta.dirname, '../fixtures/doctor');
const HAZARDOUS = join(FIXTURES, 'hazardous');
const GOLDEN = join(FIXTURES, 'golden');

function doctor(...args: string[]): { code: number | null; out: string; err: string } {
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('CONNWATCH_')) delete env[key];
  const res = spawnSync(process.execPath, [cli, 'doctor', ...args], { encoding: 'utf8', env });
  return { code: res.status, out: res.stdout, err: res.stderr };
}

/** The fixture's location, the time and the run time vary; nothing else may. */
function normalize(text: string): string {
  return text.replaceAll(FIXTURES, '<fixtures>').replace(/"at": "[^"]+"/, '"at": "<at>"').replace(/"durationMs": [\d.]+/, '"durationMs": 0');
}

function golden(name: string, actual: string): void {
  const file = join(GOLDEN, name);
  if (process.env.UPDATE_GOLDEN === '1' || !existsSync(file)) writeFileSync(file, actual);
  expect(actual).toBe(readFileSync(file, 'utf8'));
}

describe('connwatch doctor (the built CLI)', () => {
  it('a hazardous root: every finding, severity first, file:line evidence and the fix; exit 1 (golden)', () => {
    const res = doctor('--root', HAZARDOUS);
    expect(res.code).toBe(1);
    golden('hazardous.txt', normalize(res.out));
  });

  it('the same as JSON: stable kinds, evidence objects; exit 1 (golden)', () => {
    const res = doctor('--root', HAZARDOUS, '--json');
    expect(res.code).toBe(1);
    const report = JSON.parse(res.out) as { findings: { kind: string; severity: string; evidence: { file: string; line?: number }[]; fix: string }[] };
    expect(report.findings.map((f) => f.kind).sort()).toEqual(
      [
        'networkd-foreign-rules',
        'networkd-foreign-routes',
        'netplan-rendered',
        'unattended-upgrades-systemd',
        'needrestart-auto-restart',
        'network-catch-all-cilium',
        'rp-filter-cilium',
        'static-address-cni-routes',
        'lookup-local-missing',
        'cni-rules-not-proto-kernel',
        'cap-net-admin-missing',
        'cilium-cni-config-missing',
      ].sort(),
    );
    for (const f of report.findings) {
      expect(f.evidence.length).toBeGreaterThan(0);
      expect(f.fix.length).toBeGreaterThan(20);
    }
    golden('hazardous.json', normalize(res.out));
  });

  it('a clean root: exit 0, says so', () => {
    const root = mkdtempSync(join(tmpdir(), 'cw-doctor-clean-'));
    try {
      const res = doctor('--root', root);
      expect(res.code).toBe(0);
      expect(res.out).toContain('No hazards found');
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });

  it('a root that is not there: exit 2, cannot audit', () => {
    const res = doctor('--root', '/nonexistent/cw-doctor', '--json');
    expect(res.code).toBe(2);
    expect(JSON.parse(res.out)).toMatchObject({ fatal: expect.stringContaining('cannot audit') });
  });
});

describe('connwatch_hazard on a running agent (doctor.root = a fixture root)', () => {
  const netns = `cw-doctor-${process.pid}`;
  let dir: string;
  let child: ChildProcess | undefined;
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
    dir = mkdtempSync(join(tmpdir(), 'cw-doctor-agent-'));
  });
  afterAll(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    execFileSync('ip', ['netns', 'del', netns]);
    rmSync(dir, { recursive: true, force: true });
  });

  const inNs = (code: string) => execFileSync('ip', ['netns', 'exec', netns, process.execPath, '-e', code], { encoding: 'utf8' });
  const rssKb = (pid: number) => Number(/VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1]);

  it('exports 1 for each hazard present and 0 for each absent, per kind, and the doctor status section', async () => {
    const port = await freePort();
    const env: NodeJS.ProcessEnv = { ...process.env, DBUS_SYSTEM_BUS_ADDRESS: `unix:path=${join(dir, 'no-bus')}` };
    for (const key of Object.keys(env)) if (key.startsWith('CONNWATCH_') || key === 'KUBERNETES_SERVICE_HOST') delete env[key];
    let out = '';
    child = spawn('ip', ['netns', 'exec', netns, process.execPath, '--expose-gc', cli, 'run', '--state-dir', dir, '--listen', `127.0.0.1:${port}`, '--set', `doctor.root=${HAZARDOUS}`], { env, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
    const until = Date.now() + 20_000;
    while (!out.includes('hazard audit done')) {
      if (Date.now() > until) throw new Error(`no audit in 20 s:\n${out}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const metrics = inNs(`fetch('http://127.0.0.1:${port}/metrics').then((r) => r.text()).then((t) => process.stdout.write(t))`);
    const hazard = (kind: string) => new RegExp(`^connwatch_hazard\\{kind="${kind}"\\} (\\d)$`, 'm').exec(metrics)?.[1];
    expect(hazard('networkd-foreign-rules')).toBe('1');
    expect(hazard('lookup-local-missing')).toBe('1');
    expect(hazard('static-address-cni-routes')).toBe('1');
    expect(hazard('networkd-foreign-nexthops')).toBe('0');
    const status = JSON.parse(inNs(`fetch('http://127.0.0.1:${port}/status').then((r) => r.text()).then((t) => process.stdout.write(t))`)) as { doctor?: { hazards: unknown[] } };
    expect(status.doctor?.hazards.length).toBe(12);
    console.log(`agent VmRSS after the first audit: ${rssKb(child.pid!)} kB`);
    child.kill('SIGTERM');
    await new Promise((r) => child!.once('exit', r));
  }, 40_000);
});
