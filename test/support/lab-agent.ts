/** Runs the real `connwatch run` (dist/cli.js) inside a lab's node, for restore and alert tests. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { followJsonLines, type JsonLine } from '../../scripts/demo/follow.js';
import type { Lab } from '../../scripts/lab/types.js';
import { execIpRunner } from '../../src/datapath/ip.js';
import { readDatapath } from '../../src/datapath/reader.js';
import { readEntries, type JournalEntry } from '../../src/remediation/journal.js';
import type { DatapathSnapshot } from '../../src/types.js';

const ROOT = resolve(import.meta.dirname, '../..');

/**
 * The agent binary: `dist/cli.js` (run `npm run build` first), or LAB_AGENT_CLI — the cli.js
 * of another build (say, of a commit checked out elsewhere), to run the lab tests against it.
 */
const AGENT_CLI = process.env.LAB_AGENT_CLI ? resolve(process.env.LAB_AGENT_CLI) : join(ROOT, 'dist/cli.js');

export interface LabAgent {
  logs: ReturnType<typeof followJsonLines>;
  /** The agent's directory (its config and state directory); `startLabAgent(…, { dir })` starts a new agent on it. */
  dir: string;
  stateDir: string;
  /** Waits for a log line whose msg starts with `prefix`, logged after `since` (epoch ms). */
  waitForMsg(prefix: string, since: number, timeoutMs?: number): Promise<JsonLine>;
  /** Stops the agent (SIGTERM) and removes its directory. */
  stop(): Promise<number | null>;
  /** Kills the agent with `signal` (default SIGKILL: a crash) and keeps its directory, for the next agent. */
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

export interface LabAgentOptions {
  /** Start on a previous agent's directory (its saved baseline and action journal) instead of a fresh one. */
  dir?: string;
  /** Wait for the first learning step ("baseline changed") before returning (default true; an agent started on a saved baseline may learn nothing). */
  awaitLearning?: boolean;
  /** Added to the agent's environment (e.g. CONNWATCH_MODE and NODE_NAME: the environment overrides the file's `mode: baremetal`). */
  env?: Record<string, string>;
}

/**
 * Starts the agent with the lab's Cilium socket, fast verification (`verifyStableMs: 500` unless
 * `restoreYaml` sets it), `restoreYaml` under `restore:` and `extraYaml` appended.
 */
export async function startLabAgent(lab: Lab, extraYaml: string[] = [], restoreYaml: string[] = [], options: LabAgentOptions = {}): Promise<LabAgent> {
  const dir = options.dir ?? mkdtempSync(join(tmpdir(), 'cw-labagent-'));
  const stateDir = join(dir, 'state');
  const config = join(dir, 'connwatch.yaml');
  const verifyStable = restoreYaml.some((line) => /^verifyStableMs:/.test(line.trim())) ? [] : ['  verifyStableMs: 500'];
  writeFileSync(config, ['mode: baremetal', 'node: lab-node', `stateDir: ${stateDir}`, 'cilium:', `  socketPath: ${lab.description.cilium.labSocket}`, 'datapath:', '  learn: { quietMs: 0 }', 'restore:', ...verifyStable, ...restoreYaml.map((line) => `  ${line}`), ...extraYaml, ''].join('\n'));
  const child = lab.spawn('node', [process.execPath, AGENT_CLI, 'run', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], ...(options.env ? { env: options.env } : {}) });
  const logs = followJsonLines(child.stdout!);
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const waitForMsg = (prefix: string, since: number, timeoutMs = 15_000) =>
    logs.waitFor((l) => typeof l.msg === 'string' && l.msg.startsWith(prefix) && Date.parse(String(l.time)) >= since, timeoutMs, `agent log "${prefix}"`).catch((err: unknown) => {
      // What the agent said since, so a failure in CI can be read without re-running it.
      const said = logs.lines.filter((l) => Date.parse(String(l.time)) >= since && !/^signal: (Link|Rule|Route|Address)/.test(String(l.msg)));
      process.stderr.write(`agent log since the step (${said.length} lines):\n${said.map((l) => `  +${Date.parse(String(l.time)) - since} ${String(l.msg).slice(0, 400)}`).join('\n')}\n`);
      throw err;
    });
  let exitCode: number | null | undefined;
  void exited.then((code) => (exitCode = code));
  const kill = async (signal: NodeJS.Signals): Promise<number | null> => {
    if (exitCode === undefined) child.kill(signal);
    return exited;
  };
  try {
    if (options.awaitLearning !== false) await waitForMsg('baseline changed', 0);
    await waitForMsg('signals listening', 0);
  } catch (err) {
    // A start that timed out must not leave the agent running, nor a directory it made.
    await kill('SIGKILL');
    if (options.dir === undefined) rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    logs,
    dir,
    stateDir,
    waitForMsg,
    stop: async () => {
      const code = await kill('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
      return code;
    },
    kill: (signal = 'SIGKILL') => kill(signal),
  };
}

/** The agent's action journal (`<stateDir>/actions.jsonl` and its rotated predecessor), oldest first. */
export function readJournal(agent: Pick<LabAgent, 'stateDir'>): JournalEntry[] {
  return readEntries(join(agent.stateDir, 'actions.jsonl'));
}

/**
 * The agent's `/status`, fetched inside the lab node (the agent serves it on 127.0.0.1:9820 there);
 * undefined when it does not answer — on a node without `lookup local` even 127.0.0.1 is unreachable.
 */
export async function agentStatus(lab: Lab, timeoutMs = 2_000): Promise<Record<string, unknown> | undefined> {
  const seconds = String(Math.max(1, Math.round(timeoutMs / 1000)));
  const r = await lab.exec('node', ['curl', '-sf', '--max-time', seconds, 'http://127.0.0.1:9820/status'], { timeoutMs: timeoutMs + 3_000 });
  if (r.code !== 0) return undefined;
  try {
    return JSON.parse(r.stdout) as Record<string, unknown>;
  } catch {
    return undefined;
  }
}

/** The node's datapath as connwatch's own reader sees it (every attribute). */
export async function readNode(lab: Lab): Promise<DatapathSnapshot> {
  const read = await readDatapath(execIpRunner({ argv: ['ip', '-n', lab.description.node.netns], timeoutMs: 5_000 }), () => performance.now());
  if (!read.ok) throw new Error(`cannot read the lab node: ${read.reason}`);
  return read.snapshot;
}
