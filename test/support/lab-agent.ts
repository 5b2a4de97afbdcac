/** Runs the real `connwatch run` (dist/cli.js) inside a lab's node, for restore and alert tests. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { followJsonLines, type JsonLine } from '../../scripts/demo/follow.js';
import type { Lab } from '../../scripts/lab/types.js';
import { execIpRunner } from '../../src/datapath/ip.js';
import { readDatapath } from '../../src/datapath/reader.js';
import type { DatapathSnapshot } from '../../src/types.js';

const ROOT = resolve(import.meta.dirname, '../..');

export interface LabAgent {
  logs: ReturnType<typeof followJsonLines>;
  stateDir: string;
  /** Waits for a log line whose msg starts with `prefix`, logged after `since` (epoch ms). */
  waitForMsg(prefix: string, since: number, timeoutMs?: number): Promise<JsonLine>;
  stop(): Promise<number | null>;
}

/** Starts the agent with the lab's Cilium socket, fast verification, `restoreYaml` under `restore:` and `extraYaml` appended. */
export async function startLabAgent(lab: Lab, extraYaml: string[] = [], restoreYaml: string[] = []): Promise<LabAgent> {
  const dir = mkdtempSync(join(tmpdir(), 'cw-labagent-'));
  const stateDir = join(dir, 'state');
  const config = join(dir, 'connwatch.yaml');
  writeFileSync(config, ['mode: baremetal', 'node: lab-node', `stateDir: ${stateDir}`, 'cilium:', `  socketPath: ${lab.description.cilium.labSocket}`, 'datapath:', '  learn: { quietMs: 0 }', 'restore:', '  verifyStableMs: 500', ...restoreYaml.map((line) => `  ${line}`), ...extraYaml, ''].join('\n'));
  const child = lab.spawn('node', [process.execPath, join(ROOT, 'dist/cli.js'), 'run', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
  const logs = followJsonLines(child.stdout!);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitForMsg = (prefix: string, since: number, timeoutMs = 15_000) =>
    logs.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith(prefix) && Date.parse(String(l.time)) >= since, timeoutMs, `agent log "${prefix}"`).catch((err: unknown) => {
      // What the agent said since, so a failure in CI can be read without re-running it.
      const said = logs.lines.filter((l) => Date.parse(String(l.time)) >= since && !/^signal: (Link|Rule|Route|Address)/.test(String(l.msg)));
      process.stderr.write(`agent log since the step (${said.length} lines):\n${said.map((l) => `  +${Date.parse(String(l.time)) - since} ${String(l.msg).slice(0, 400)}`).join('\n')}\n`);
      throw err;
    });
  await waitForMsg('baseline changed', 0);
  await waitForMsg('signals listening', 0);
  return {
    logs,
    stateDir,
    waitForMsg,
    stop: async () => {
      child.kill('SIGTERM');
      const code = await exited;
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
  };
}

/** The node's datapath as connwatch's own reader sees it (every attribute). */
export async function readNode(lab: Lab): Promise<DatapathSnapshot> {
  const read = await readDatapath(execIpRunner({ argv: ['ip', '-n', lab.description.node.netns], timeoutMs: 5_000 }), () => performance.now());
  if (!read.ok) throw new Error(`cannot read the lab node: ${read.reason}`);
  return read.snapshot;
}
