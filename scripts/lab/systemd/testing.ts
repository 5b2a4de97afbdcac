/** Helpers for tests against the systemd lab: the agent inside it, read from the host. */
import { chmodSync, readFileSync, writeFileSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { request } from 'node:http';
import { PEER_ADDRESS as PEER, type SystemdLab } from './index.js';

/** The agent's config for the lab: bare metal, probes on the stand-in's pod path, fast rounds and rungs. */
export function agentConfig(opts: { restartCilium?: 'on' | 'shadow' | 'off'; staggerSeconds?: number; minIntervalSeconds?: number; verifySeconds?: number; webhook?: string } = {}): string {
  return `mode: baremetal
node: cwsd-node
actions:
  restartCilium: "${opts.restartCilium ?? 'off'}"
probes:
  intervalSeconds: 1
  confirmRounds: 2
  recoverRounds: 1
  peers:
    source: static
    static: ["10.88.0.1:4240"]
  localPod: "10.88.0.1:4240"
  hostNetwork:
    gateway: "off"
  cilium:
    settleSeconds: 1
ladder:
  requestAfterSeconds: 1
  verifySeconds: ${opts.verifySeconds ?? 30}
localRestart:
  staggerSeconds: ${opts.staggerSeconds ?? 3}
  minIntervalSeconds: ${opts.minIntervalSeconds ?? 20}
${opts.webhook ? `alerts:\n  webhooks:\n    - url: "${opts.webhook}"\n` : ''}`;
}

/** A webhook receiver in the lab's network namespace (on the veth peer's address): every POSTed body, parsed. */
export function startReceiver(lab: SystemdLab, port = 9999): { url: string; bodies: Record<string, any>[]; stop(): void } {
  const code = `require('http').createServer((q,s)=>{let b='';q.on('data',d=>b+=d);q.on('end',()=>{process.stdout.write(JSON.stringify({path:q.url,body:b})+'\\n');s.end('{}')})}).listen(${port},'${PEER}')`;
  const child = spawn('ip', ['netns', 'exec', lab.description.netns, process.execPath, '-e', code], { stdio: ['ignore', 'pipe', 'inherit'] });
  const bodies: Record<string, any>[] = [];
  let buf = '';
  child.stdout.on('data', (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i);
      buf = buf.slice(i + 1);
      try {
        bodies.push(JSON.parse(JSON.parse(line).body) as Record<string, any>);
      } catch {
        /* not JSON */
      }
    }
  });
  return { url: `http://${PEER}:${port}/hook`, bodies, stop: () => child.kill('SIGKILL') };
}

/** Writes /etc/connwatch/config.yaml inside the container (readable by the connwatch user). */
export function writeAgentConfig(lab: SystemdLab, yaml: string): void {
  writeFileSync(lab.path('/etc/connwatch/config.yaml'), yaml);
  chmodSync(lab.path('/etc/connwatch/config.yaml'), 0o644);
}

/** GET a telemetry route over the agent's unix socket (<stateDir>/telemetry.sock). */
export function telemetry(lab: SystemdLab, path: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath: lab.path('/var/lib/connwatch/telemetry.sock'), path, timeout: 5_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET ${path}: timeout`)));
    req.on('error', reject);
    req.end();
  });
}

export async function agentStatus(lab: SystemdLab): Promise<Record<string, any>> {
  return JSON.parse((await telemetry(lab, '/status')).body) as Record<string, any>;
}

/** A metric's value from /metrics (0 when absent); labels must match exactly as printed. */
export async function agentMetric(lab: SystemdLab, name: string, labels = ''): Promise<number> {
  const text = (await telemetry(lab, '/metrics')).body;
  const line = text.split('\n').find((l) => l.startsWith(`${name}${labels ? `{${labels}}` : ''} `) || (labels === '' && l.startsWith(`${name}{`) === false && l.startsWith(`${name} `)));
  return line ? Number(line.split(' ').pop()) : 0;
}

/** The agent's JSON log lines since `since` (journalctl -u connwatch). */
export async function agentLogs(lab: SystemdLab, since?: Date): Promise<Record<string, any>[]> {
  const args = ['journalctl', '-u', 'connwatch.service', '-o', 'cat', '--no-pager', ...(since ? ['--since', `@${Math.floor(since.getTime() / 1000)}`] : [])];
  const r = await lab.exec(args);
  return r.stdout
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => {
      try {
        return JSON.parse(l) as Record<string, any>;
      } catch {
        return {};
      }
    });
}

/** The action journal (<stateDir>/actions.jsonl), as the host reads it. */
export function actionJournal(lab: SystemdLab): Record<string, any>[] {
  try {
    return readFileSync(lab.path('/var/lib/connwatch/actions.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((l) => JSON.parse(l) as Record<string, any>);
  } catch {
    return [];
  }
}

/** `systemctl show -P <prop> <unit>` inside. */
export async function unitProperty(lab: SystemdLab, unit: string, prop: string): Promise<string> {
  return (await lab.exec(['systemctl', 'show', '-P', prop, unit])).stdout.trim();
}

/** Polls until `check` gives a value, or fails with what was awaited. */
export async function eventually<T>(check: () => Promise<T | undefined | false> | T | undefined | false, what: string, timeoutMs = 20_000, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await check();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? ` (last error: ${String(last)})` : ''}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
