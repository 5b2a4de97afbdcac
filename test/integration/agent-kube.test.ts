/**
 * Issue 15, the agent in Kubernetes mode, against the test API server over HTTPS and real kubectl:
 * the real `connwatch run` (dist/cli.js) in a network namespace of its own, reaching the server
 * through a relay (agent-kube-support.ts), as a service account that may touch only its own node's
 * objects. Its ConnwatchNode as `kubectl get` and `describe` show it; the ConfigMap flipped with
 * kubectl stops the next step within a second (the gate's preview on /status turns "killed"), no
 * restart; kubelet's Ready fed to the detector, `unknown` while the API server is unreachable; the
 * cached switches used while it is — across a restart too; a pod without NODE_NAME refused (exit 2).
 * In-process: Events at most one per cause per 10 minutes, and the steady-state request rate
 * counted over a run (scaled time).
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';
import { createKubeClient } from '../../src/kube/client.js';
import { kubeConfig } from '../../src/kube/config.js';
import { KubeAgent, KubeNodeReporter } from '../../src/kube/agent/index.js';
import type { Clock, KubeletReady, Verdict } from '../../src/types.js';
import { CONFIGMAP, NAMESPACE, RELAY_JS, agentKubeconfig, agentRules, kubectl, setReady, setupCluster, unixToLoopback } from './agent-kube-support.js';

const CLI = join(process.cwd(), 'dist/cli.js');
const netns = `cw-kube-${process.pid}`;
const silent = pino({ level: 'silent' });

let server: KubeApiServer;
let dir: string;
let home: string;
let crdFrom: string;

beforeAll(async () => {
  server = await startKubeApiServer({ rules: agentRules, bookmarkIntervalMs: 1_000 });
  ({ crdFrom } = setupCluster(server, ['node-a', 'node-c', 'node-d']));
  dir = mkdtempSync(join(tmpdir(), 'cw-agent-kube-'));
  home = join(dir, 'home');
  execFileSync('mkdir', ['-p', home]);
  execFileSync('ip', ['netns', 'add', netns]);
  execFileSync('ip', ['-n', netns, 'link', 'set', 'lo', 'up']);
  console.log(`ConnwatchNode CRD: ${crdFrom}`);
});

afterAll(async () => {
  await server?.close();
  try {
    execFileSync('ip', ['netns', 'del', netns]);
  } catch {
    // already gone
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

/** GET over the agent's telemetry unix socket (no routing needed, from the host). */
function telemetry(socketPath: string, path: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = request({ socketPath, path, timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', reject);
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.end();
  });
}

interface Status {
  gate: { preview: Record<'restore' | 'restartCilium' | 'quarantine', { decision: string; why?: string }> };
  incident: { kubelet: KubeletReady; verdict: { kind: string } };
  kube: { apiServer: { state: string }; kubeletReady: { ready: KubeletReady }; controls: { live: boolean }; reporter: { writes: { ok: number } } };
}

async function waitFor<T>(what: string, probe: () => Promise<T | undefined> | T | undefined, timeoutMs = 10_000, everyMs = 20): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    let value: T | undefined;
    try {
      value = await probe();
    } catch {
      value = undefined;
    }
    if (value !== undefined && value !== false) return value;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

interface Agent {
  child: ChildProcess;
  output: () => string;
  status: () => Promise<Status>;
  exited: Promise<number | null>;
  stop: () => Promise<number | null>;
}

function startAgent(stateDir: string, configYaml: string[], env: Record<string, string | undefined>): Agent {
  const config = join(stateDir, '..', `${stateDir.split('/').pop()}.yaml`);
  writeFileSync(config, [`stateDir: ${stateDir}`, ...configYaml, ''].join('\n'));
  const clean = { ...process.env };
  for (const key of Object.keys(clean)) if (key.startsWith('CONNWATCH_') || key.startsWith('KUBERNETES_') || key === 'NODE_NAME' || key === 'POD_NAMESPACE') delete clean[key];
  // Never the host's system bus.
  clean.DBUS_SYSTEM_BUS_ADDRESS = `unix:path=${join(dir, 'no-bus')}`;
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, CLI, 'run', '--config', config], { env: { ...clean, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr!.on('data', (d: Buffer) => (out += d.toString()));
  const exited = new Promise<number | null>((r) => child.once('exit', (code) => r(code)));
  const socket = join(stateDir, 'telemetry.sock');
  return {
    child,
    output: () => out,
    exited,
    status: async () => JSON.parse(await telemetry(socket, '/status')) as Status,
    stop: async () => {
      if (child.exitCode === null) child.kill('SIGTERM');
      return exited;
    },
  };
}

/** The in-namespace relay to the API server; killing it makes the server refuse connections. */
function startRelay(port: number, socket: string): { child: ChildProcess; ready: Promise<void>; stop: () => Promise<void> } {
  const child = spawn('ip', ['netns', 'exec', netns, process.execPath, '-e', RELAY_JS, '127.0.0.1', String(port), socket], { stdio: ['ignore', 'pipe', 'inherit'] });
  const ready = new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (d: Buffer) => d.toString().includes('relay listening') && resolve());
    child.once('exit', (code) => reject(new Error(`relay exited ${code}`)));
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  return { child, ready, stop: async () => { child.kill('SIGKILL'); await exited; } };
}

function vmRssKb(pid: number): number {
  const line = readFileSync(`/proc/${pid}/status`, 'utf8').split('\n').find((l) => l.startsWith('VmRSS:'));
  return Number(line?.replace(/\D+/g, '') ?? 0);
}

describe.runIf(process.getuid?.() === 0)('connwatch run in Kubernetes mode (a real process, the test API server over HTTPS)', () => {
  let port: number;
  let hostRelay: { close(): Promise<void> };
  let relay: ReturnType<typeof startRelay>;
  let agentKcfg: string;
  let stateDir: string;
  let agent: Agent;
  const relaySocket = () => join(dir, 'kube.sock');
  const admin = (...args: string[]) => kubectl(server.kubeconfigPath, home, ...args);
  const agentYaml = () => [
    'mode: kubernetes',
    'telemetry: { listen: "127.0.0.1:9820" }',
    'kube:',
    `  kubeconfig: ${agentKcfg}`,
    '  unreachableAfterMs: 1000',
    '  connectTimeoutMs: 500',
    '  watch: { backoffMaxMs: 1000 }',
    '  agent: { jitterMs: 300 }',
  ];

  beforeAll(async () => {
    port = Number(new URL(server.url).port);
    hostRelay = await unixToLoopback(relaySocket(), port);
    relay = startRelay(port, relaySocket());
    await relay.ready;
    agentKcfg = await agentKubeconfig(server, 'node-a', join(dir, 'agent-a.kubeconfig'));
    stateDir = join(dir, 'state-a');
  });

  afterAll(async () => {
    await agent?.stop();
    await relay?.stop();
    await hostRelay?.close();
  });

  it('writes its own ConnwatchNode status (only that), as kubectl get and describe show it; kubelet Ready reaches the detector', async () => {
    agent = startAgent(stateDir, agentYaml(), { NODE_NAME: 'node-a' });
    const written = await waitFor('the status write', async () => {
      const got = await admin('get', 'connwatchnodes', '-n', NAMESPACE, 'node-a', '-o', 'json');
      const status = got.code === 0 ? (JSON.parse(got.stdout) as { status?: Record<string, unknown> }).status : undefined;
      return status?.heartbeatAt && status.kubeletReady === 'True' && status.apiServer === 'reachable' ? status : undefined;
    }, 15_000, 200).catch((err: unknown) => {
      process.stderr.write(agent.output().slice(-4000));
      throw err;
    });
    expect(written).toMatchObject({ agentVersion: expect.any(String), kubeletReady: 'True', apiServer: 'reachable', verdict: { kind: expect.any(String), since: expect.any(String) }, state: expect.any(String), evidence: { failingProbes: expect.any(Array), missing: expect.any(Array) } });

    // -o wide: the CRD's priority-1 columns (API, Kubelet) too.
    const table = await admin('get', 'cwn', '-n', NAMESPACE, '-o', 'wide');
    console.log(`kubectl get cwn -n ${NAMESPACE} -o wide:\n${table.stdout}`);
    expect(table.code).toBe(0);
    expect(table.stdout).toMatch(/^NAME\s+STATE\s+VERDICT\s/);
    const row = table.stdout.split('\n').find((line) => line.startsWith('node-a '))?.split(/\s+/) ?? [];
    expect(row.slice(1, 3)).toEqual([String(written.state), (written.verdict as { kind: string }).kind]);
    expect(row).toContain('True');
    expect(row).toContain('reachable');
    const described = await admin('describe', 'connwatchnode', '-n', NAMESPACE, 'node-a');
    console.log(`kubectl describe connwatchnode node-a:\n${described.stdout}`);
    expect(described.code).toBe(0);
    expect(described.stdout).toMatch(/Kind:\s+ConnwatchNode/);
    expect(described.stdout).toMatch(/Status:/);
    expect(described.stdout).toMatch(/Kubelet Ready:\s+True/);
    expect(described.stdout).toMatch(/API Server:\s+reachable/);
    expect(described.stdout).toMatch(/Heartbeat At:\s+\d{4}-/);
    expect(described.stdout).toMatch(/Agent Version:\s+\S+/);

    const status = await agent.status();
    expect(status.incident.kubelet).toBe('True');
    expect(status.kube.kubeletReady.ready).toBe('True');
    // Its own objects only, as the node-name-bound authorisation lets it: nothing was refused.
    const metrics = await telemetry(join(stateDir, 'telemetry.sock'), '/metrics');
    const requests = metrics.split('\n').filter((l) => l.startsWith('connwatch_kube_requests_total{'));
    console.log(requests.join('\n'));
    expect(requests.filter((l) => /code="(401|403)"/.test(l))).toEqual([]);
    for (const line of requests) expect(line).toMatch(/resource="(connwatchnodes|connwatchnodes\/status|nodes|configmaps|events)"/);
  });

  it('the ConfigMap flipped with kubectl stops the next step within a second, with no restart; the value is cached on disk', async () => {
    expect((await agent.status()).gate.preview.restore.decision).toBe('executed');
    const before = Date.now();
    const patched = await admin('patch', 'configmap', CONFIGMAP, '-n', NAMESPACE, '--type', 'merge', '-p', '{"data":{"killSwitch":"true"}}');
    const after = Date.now();
    expect(patched.code).toBe(0);
    const killed = await waitFor('the gate to read the kill switch', async () => {
      const s = await agent.status();
      return s.gate.preview.restore.decision === 'killed' ? s : undefined;
    }, 3_000);
    const seenMs = Date.now() - after;
    console.log(`kill switch: kubectl patch took ${after - before} ms; /status showed "killed" ${seenMs} ms after kubectl returned`);
    expect(seenMs).toBeLessThan(1_000);
    expect(killed.gate.preview.restore.why).toBe(`kill switch on (configmap ${NAMESPACE}/${CONFIGMAP})`);
    expect(killed.gate.preview.restartCilium.decision).toBe('killed');
    const cache = JSON.parse(readFileSync(join(stateDir, 'kube-controls.json'), 'utf8')) as Record<string, unknown>;
    expect(cache).toMatchObject({ configMap: `${NAMESPACE}/${CONFIGMAP}`, killSwitch: true, halt: false, present: true });

    // The halt too (the kill switch wins while both are on).
    await admin('patch', 'configmap', CONFIGMAP, '-n', NAMESPACE, '--type', 'merge', '-p', '{"data":{"killSwitch":"false","halt":"true"}}');
    await waitFor('halted', async () => (await agent.status()).gate.preview.restore.decision === 'halted', 3_000);
    await admin('patch', 'configmap', CONFIGMAP, '-n', NAMESPACE, '--type', 'merge', '-p', '{"data":{"killSwitch":"true","halt":"false"}}');
    await waitFor('killed again', async () => (await agent.status()).gate.preview.restore.decision === 'killed', 3_000);
  });

  it('kubelet Ready follows the Node, is unknown while the API server is unreachable, and the cached kill switch holds — across a restart too', async () => {
    setReady(server, 'node-a', 'False');
    await waitFor('kubelet False in the detector', async () => (await agent.status()).incident.kubelet === 'False', 5_000);
    setReady(server, 'node-a', 'True');
    await waitFor('kubelet True in the detector', async () => (await agent.status()).incident.kubelet === 'True', 5_000);

    const cut = Date.now();
    await relay.stop();
    const unreachable = await waitFor('unreachable', async () => {
      const s = await agent.status();
      return s.kube.apiServer.state === 'unreachable' && s.incident.kubelet === 'unknown' ? s : undefined;
    }, 10_000, 100);
    console.log(`API server refused from the agent's namespace: unreachable and kubelet unknown after ${Date.now() - cut} ms`);
    expect(unreachable.gate.preview.restore.decision).toBe('killed');
    expect(unreachable.gate.preview.restore.why).toMatch(new RegExp(`^kill switch on \\(configmap ${NAMESPACE}/${CONFIGMAP} \\(cached \\d{4}-`));

    // A new agent while the API server is unreachable obeys the cached switch from its first step.
    expect(await agent.stop()).toBe(0);
    agent = startAgent(stateDir, agentYaml(), { NODE_NAME: 'node-a' });
    const restarted = await waitFor('the restarted agent', () => agent.status(), 10_000, 50);
    expect(restarted.gate.preview.restore.decision).toBe('killed');
    expect(restarted.gate.preview.restore.why).toMatch(/cached/);
    expect(restarted.incident.kubelet).toBe('unknown');

    relay = startRelay(port, relaySocket());
    await relay.ready;
    await waitFor('reachable and live again', async () => {
      const s = await agent.status();
      return s.kube.apiServer.state === 'reachable' && s.kube.controls.live && s.incident.kubelet === 'True' ? s : undefined;
    }, 15_000, 100);
    expect((await agent.status()).gate.preview.restore.why).toBe(`kill switch on (configmap ${NAMESPACE}/${CONFIGMAP})`);
    await admin('patch', 'configmap', CONFIGMAP, '-n', NAMESPACE, '--type', 'merge', '-p', '{"data":{"killSwitch":"false"}}');
    const lifted = Date.now();
    await waitFor('the kill switch lifted', async () => (await agent.status()).gate.preview.restore.decision === 'executed', 3_000);
    expect(Date.now() - lifted).toBeLessThan(1_000);
  });

  it('measures RSS idle: Kubernetes mode vs bare-metal mode', async () => {
    await new Promise((r) => setTimeout(r, 2_000));
    const kubeRss = vmRssKb(agent.child.pid!);
    const bare = startAgent(join(dir, 'state-bare'), ['mode: baremetal', 'node: bare', 'telemetry: { listen: "127.0.0.1:9821" }'], {});
    try {
      await waitFor('the bare-metal agent', () => bare.status(), 10_000, 50);
      await new Promise((r) => setTimeout(r, 2_000));
      const bareRss = vmRssKb(bare.child.pid!);
      console.log(`RSS idle: kubernetes mode ${(kubeRss / 1024).toFixed(1)} MB, bare-metal mode ${(bareRss / 1024).toFixed(1)} MB`);
      expect(kubeRss).toBeGreaterThan(0);
    } finally {
      await bare.stop();
    }
  });

  it('a pod without NODE_NAME is refused with a clear error, exit 2 (the host name is never guessed)', async () => {
    const refused = startAgent(join(dir, 'state-nonode'), agentYaml(), {});
    const code = await refused.exited;
    expect(code).toBe(2);
    expect(refused.output()).toContain('mode kubernetes needs this node\'s name from the downward API, and NODE_NAME is not set');
    expect(refused.output()).toContain('fieldRef spec.nodeName');
    expect(refused.output()).not.toContain('connwatch running');
  });
});

describe('the Kubernetes side in-process (real client, the test API server over HTTPS)', () => {
  it('Events on the Node: at most one per cause per 10 minutes, repeats counted on the next; kubectl describe node shows them', async () => {
    const kcfg = await agentKubeconfig(server, 'node-d', join(dir, 'agent-d.kubeconfig'));
    let offset = 0;
    const clock: Clock = { now: () => Date.now() + offset, monotonic: () => performance.now() + offset };
    const client = await createKubeClient(kubeConfig.parse({ kubeconfig: kcfg }), { clock, metrics: new Registry() });
    if (!client.ok) throw new Error(client.reason);
    const reporter = new KubeNodeReporter({ namespace: NAMESPACE, node: 'node-d', clock, log: silent, version: 'test', heartbeatMs: 300_000, jitterMs: 50, eventIntervalMs: 600_000 });
    reporter.objectPresent(true);
    reporter.start(client.value);
    const verdict = (kind: Verdict['kind']): Verdict => ({ kind, at: 0, reasons: kind === 'Healthy' ? [] : ['14 critical CNI datapath item(s) missing (NetworkdRestarted)'], basis: 'datapath' });
    try {
      reporter.verdict(verdict('Healthy'), 'Healthy');
      for (let i = 0; i < 3; i++) {
        reporter.verdict(verdict('ReadyButNoPodNetwork'), 'Repairing');
        reporter.verdict(verdict('Healthy'), 'Recovered');
        reporter.restored({ wallAt: clock.now(), result: 'restored', items: 14 });
      }
      const events = async () => {
        const got = await kubectl(server.kubeconfigPath, home, 'get', 'events', '-n', 'default', '--field-selector', 'involvedObject.name=node-d', '-o', 'json');
        return (JSON.parse(got.stdout) as { items: { reason: string; count: number; type: string; source: { component: string } }[] }).items;
      };
      const first = await waitFor('three Events', async () => {
        const items = await events();
        return items.length >= 3 && reporter.snapshot().pendingEvents === 0 ? items : undefined;
      }, 10_000, 200);
      await new Promise((r) => setTimeout(r, 300));
      const settled = await events();
      expect(settled.map((e) => `${e.reason} ${e.count}`).sort()).toEqual(['RestoredDatapath 1', 'VerdictHealthy 1', 'VerdictReadyButNoPodNetwork 1']);
      expect(first.every((e) => e.source.component === 'connwatch-agent')).toBe(true);
      // The status carries the last restore and the verdict.
      const cwn = await kubectl(server.kubeconfigPath, home, 'get', 'cwn', '-n', NAMESPACE, 'node-d', '-o', 'jsonpath={.status.lastRestore.result} {.status.verdict.kind} {.status.state}');
      expect(cwn.stdout).toBe('restored Healthy Recovered');

      // Ten minutes later the next write of each cause carries the repeats in between.
      offset += 600_000;
      reporter.verdict(verdict('ReadyButNoPodNetwork'), 'Repairing');
      await waitFor('the counted repeat', async () => (await events()).find((e) => e.reason === 'VerdictReadyButNoPodNetwork' && e.count === 4), 5_000, 200);
      const described = await kubectl(server.kubeconfigPath, home, 'describe', 'node', 'node-d');
      expect(described.stdout).toMatch(/Warning\s+VerdictReadyButNoPodNetwork\s+.*connwatch-agent/);
      expect(described.stdout).toMatch(/Normal\s+RestoredDatapath/);
    } finally {
      await reporter.stop();
      await client.value.close();
    }
  });

  it('steady state: at most one request per node per minute on average, counted over a run (scaled time)', async () => {
    // Production: watches of timeoutSeconds 300 and a heartbeat every 300 s. Here both are 2 s:
    // 150× faster, so 15 s of this run stand for 37.5 minutes.
    const SCALE = 300 / 2;
    const kcfg = await agentKubeconfig(server, 'node-c', join(dir, 'agent-c.kubeconfig'));
    const metrics = new Registry();
    const stateDirC = join(dir, 'state-c');
    let kubelet: KubeletReady = 'unknown';
    const agentC = new KubeAgent({
      config: kubeConfig.parse({ kubeconfig: kcfg, watch: { timeoutSeconds: 2 }, agent: { heartbeatMs: 2_000, jitterMs: 200 } }),
      node: 'node-c',
      stateDir: stateDirC,
      clock: { now: () => Date.now(), monotonic: () => performance.now() },
      log: silent,
      metrics,
      status: { publish: () => undefined },
      version: 'test',
      onKubelet: (ready) => (kubelet = ready),
    });
    const count = async () => {
      const metric = await metrics.getSingleMetric('connwatch_kube_requests_total')!.get();
      return metric.values.map((v) => ({ verb: String(v.labels.verb), resource: String(v.labels.resource), code: String(v.labels.code), n: v.value }));
    };
    const total = (rows: Awaited<ReturnType<typeof count>>) => rows.reduce((sum, r) => sum + r.n, 0);
    try {
      await agentC.start();
      await waitFor('the first status write and kubelet Ready', () => agentC.reporter.snapshot().writes.ok >= 1 && kubelet === 'True', 10_000, 50);
      await new Promise((r) => setTimeout(r, 2_500));
      const start = await count();
      const t0 = performance.now();
      await new Promise((r) => setTimeout(r, 15_000));
      const end = await count();
      const elapsedMs = performance.now() - t0;
      const requests = total(end) - total(start);
      const productionMinutes = (elapsedMs * SCALE) / 60_000;
      const perMinute = requests / productionMinutes;
      const byKind = end.map((r) => ({ ...r, n: r.n - (start.find((s) => s.verb === r.verb && s.resource === r.resource && s.code === r.code)?.n ?? 0) })).filter((r) => r.n > 0);
      console.log(`steady state: ${requests} requests in ${(elapsedMs / 1000).toFixed(1)} s at ${SCALE}× = ${productionMinutes.toFixed(1)} production minutes → ${perMinute.toFixed(2)} requests per node per minute`, byKind);
      expect(perMinute).toBeLessThanOrEqual(1);
      // Only the three watches and the status heartbeat: no list, no get, nothing cluster-wide, all answered.
      expect(new Set(byKind.map((r) => `${r.verb} ${r.resource} ${r.code}`))).toEqual(new Set(['watch connwatchnodes 200', 'watch nodes 200', 'watch configmaps 200', 'patch connwatchnodes/status 200']));
    } finally {
      await agentC.stop();
    }
  });
});

