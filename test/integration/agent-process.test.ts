// Issue 2: `connwatch run` on embedded defaults starts in bare-metal mode, serves telemetry, keeps
// running, and stops on SIGTERM within 5 s with exit 0, loops stopped in reverse order.
// The agent runs in a network namespace of the test's own, so it reads and watches nothing of the host's.
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFileSync } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { parseLogLines } from '../../src/telemetry/index.js';
import { freePort } from '../support/ports.js';

const cli = join(process.cwd(), 'dist/cli.js');
const netns = `cw-agent-${process.pid}`;

async function startAgent(stateDir: string, extra: string[] = []): Promise<{ child: ChildProcess; output: () => string; port: number }> {
  const port = await freePort();
  let out = '';
  const env = { ...process.env };
  for (const key of Object.keys(env)) if (key.startsWith('CONNWATCH_') || key === 'KUBERNETES_SERVICE_HOST') delete env[key];
  // Never the host's system bus: point at a socket that does not exist.
  env.DBUS_SYSTEM_BUS_ADDRESS = `unix:path=${join(stateDir, 'no-bus')}`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, cli, 'run', '--state-dir', stateDir, '--listen', `127.0.0.1:${port}`, ...extra], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  return { child, output: () => out, port };
}

async function waitFor(cond: () => boolean, timeoutMs = 10_000): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > until) throw new Error('timed out waiting');
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe('connwatch run as a child process', () => {
  beforeAll(() => {
    execFileSync('ip', ['netns', 'add', netns]);
    execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  });
  afterAll(() => execFileSync('ip', ['netns', 'del', netns]));
  let dir: string;
  let child: ChildProcess | undefined;
  afterEach(() => {
    if (child && child.exitCode === null) child.kill('SIGKILL');
    rmSync(dir, { recursive: true, force: true });
  });

  it('runs on embedded defaults in bare-metal mode and stops on SIGTERM within 5 s with exit 0', async () => {
    dir = mkdtempSync(join(tmpdir(), 'cw-agent-'));
    const agent = await startAgent(dir);
    child = agent.child;
    await waitFor(() => agent.output().includes('"connwatch running"'));
    const logs = parseLogLines(agent.output());
    expect(logs.find((l) => l.msg === 'connwatch starting')).toMatchObject({ mode: 'baremetal' });
    expect(statSync(join(dir, 'heartbeat')).isFile()).toBe(true);
    const status = JSON.parse(execFileSync('ip', ['netns', 'exec', netns, process.execPath, '-e', `fetch('http://127.0.0.1:${agent.port}/status').then((r) => r.text()).then((t) => process.stdout.write(t))`], { encoding: 'utf8' })) as Record<string, unknown>;
    expect(status).toMatchObject({ mode: 'baremetal', gate: { actions: { restore: 'on', restartCilium: 'off', quarantine: 'off' } } });
    const exited = new Promise<{ code: number | null; at: number }>((resolve) => child!.once('exit', (code) => resolve({ code, at: Date.now() })));
    const sentAt = Date.now();
    child.kill('SIGTERM');
    const { code, at } = await exited;
    expect(code).toBe(0);
    expect(at - sentAt).toBeLessThan(5_000);
    const stopped = parseLogLines(agent.output()).map((l) => l.msg);
    expect(stopped.slice(-2)).toEqual(['connwatch stopping', 'connwatch stopped']);
  });

  it('refuses to start on a configuration mistake, exit 2, naming the key', async () => {
    dir = mkdtempSync(join(tmpdir(), 'cw-agent-'));
    const agent = await startAgent(dir, ['--set', 'actions.restore=sometimes']);
    child = agent.child;
    const code = await new Promise<number | null>((resolve) => child!.once('exit', resolve));
    expect(code).toBe(2);
    expect(agent.output()).toContain('actions.restore');
    expect(agent.output()).not.toContain('connwatch running');
  });
});
