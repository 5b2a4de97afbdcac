// `connwatch check`: exit 0 healthy, 1 broken, 2 cannot tell — run for real in a namespace of the
// test's own (no baseline: the profiles' `lookup local` invariant still applies).
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

const ns = `cw-check-${process.pid}`;
let stateDir: string;

function check(...args: string[]) {
  const env = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('CONNWATCH_') && k !== 'KUBERNETES_SERVICE_HOST'));
  return spawnSync('ip', ['netns', 'exec', ns, process.execPath, 'dist/cli.js', 'check', '--state-dir', stateDir, ...args], { encoding: 'utf8', env });
}

describe('connwatch check', () => {
  beforeAll(() => {
    stateDir = mkdtempSync(join(tmpdir(), 'cw-check-'));
    execFileSync('ip', ['netns', 'add', ns]);
    execFileSync('ip', ['-n', ns, 'link', 'set', 'lo', 'up']);
  });
  afterAll(() => {
    execFileSync('ip', ['netns', 'del', ns]);
    rmSync(stateDir, { recursive: true, force: true });
  });

  it('exits 0 on a healthy datapath', () => {
    const res = check();
    expect(res.stdout).toContain('HEALTHY');
    expect(res.status).toBe(0);
  });

  it('exits 1 and names the item when no lookup local rule is left (the incident)', () => {
    execFileSync('ip', ['-n', ns, 'rule', 'add', 'priority', '100', 'lookup', 'local']);
    execFileSync('ip', ['-n', ns, 'rule', 'del', 'priority', '0']);
    execFileSync('ip', ['-n', ns, 'rule', 'del', 'priority', '100']);
    const res = check('--json');
    expect(res.status).toBe(1);
    const result = JSON.parse(res.stdout) as { verdict: string; missing: { item: string; severity: string; source: string }[] };
    expect(result.verdict).toBe('broken');
    expect(result.missing).toEqual(expect.arrayContaining([expect.objectContaining({ severity: 'critical', source: 'invariant', item: expect.stringContaining('lookup local') })]));
    execFileSync('ip', ['-n', ns, 'rule', 'add', 'priority', '0', 'lookup', 'local']);
  });

  it('exits 2 (cannot tell) on an unreadable baseline, and leaves the file alone', () => {
    const file = join(stateDir, 'baseline.json');
    writeFileSync(file, '{ not json');
    const res = check();
    expect(res.status).toBe(2);
    expect(res.stdout).toContain('CANNOT-TELL');
    expect(execFileSync('cat', [file], { encoding: 'utf8' })).toBe('{ not json');
    rmSync(file);
  });

  it('exits 2 on a configuration mistake', () => {
    const res = check('--set', 'datapath.ip.timeoutMs=soon');
    expect(res.status).toBe(2);
    expect(res.stderr).toContain('datapath.ip.timeoutMs');
  });
});
