/**
 * Issue 16, end to end: the real agent in Kubernetes mode in the lab's node, the fleet controller
 * in-process, the test API server, and a test-side "DaemonSet" that stands for kubelet and the
 * Cilium DaemonSet: when the controller deletes the node's cilium pod, the lab's Cilium stand-in
 * restarts (re-installing its state) and a new cilium pod appears, Ready.
 *
 *  - a Cilium that stopped forwarding (the restore has nothing to put back): the agent's probes call
 *    ReadyButNoPodNetwork, it asks for a restart, the controller grants and deletes the pod, the
 *    stand-in restarts, the agent verifies the grant and the node recovers;
 *  - a Cilium that cannot fix it: the restart does not verify, the agent asks for quarantine, the
 *    controller taints the node and sets PodNetworkUnavailable (visible with the real kubectl);
 *    once the node is healthy again only connwatch's marks are removed;
 *  - without a controller nothing happens beyond the agent's request.
 *
 * The node reaches the API server through the relay of scripts/lab/kube-glue.ts (10.77.0.2:6443 in
 * the peer namespace → a host unix socket → the server on the host's loopback); the DaemonSet
 * stand-in and the controller's construction live there too (the demo's acts 3 and 4 use them).
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { request as httpRequest } from 'node:http';
import { join } from 'node:path';
import type { Node } from 'kubernetes-types/core/v1.js';
import pino from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startKubeApiServer, type KubeApiServer } from '../../scripts/kube-apiserver/server.js';
import { startLab } from '../../scripts/lab/index.js';
import { labCapable } from '../../scripts/lab/testing.js';
import type { Lab } from '../../scripts/lab/types.js';
import { startCiliumDaemonSet, startFleetController, startLabRelay, type CiliumDaemonSet } from '../../scripts/lab/kube-glue.js';
import type { FleetController } from '../../src/controller/controller.js';
import { QUARANTINE_TAINT } from '../../src/controller/model.js';
import { CONNWATCH_NODES, type ConnwatchNode } from '../../src/controller/objects.js';
import { KubeClient } from '../../src/kube/client.js';
import { kubeConfig } from '../../src/kube/config.js';
import { RESOURCES } from '../../src/kube/resources.js';
import { resolveClusterAccess, type ClusterAccess } from '../../src/kube/source.js';
import type { Clock } from '../../src/types.js';
import { NAMESPACE, agentKubeconfig, agentRules, kubectl, setupCluster } from '../integration/agent-kube-support.js';
import { startLabAgent, type LabAgent } from '../support/lab-agent.js';

const capable = labCapable();
const NODE = 'lab-node';
const clock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
const log = pino({ level: process.env.TEST_LOG ?? 'silent' });

let server: KubeApiServer;
let lab: Lab;
let agent: LabAgent;
let dir: string;
let access: ClusterAccess;
let admin: KubeClient;
let daemonSet: CiliumDaemonSet | undefined;
let relay: { close(): Promise<void> } | undefined;
let controller: FleetController | undefined;
const clients: KubeClient[] = [];
/** Cilium pods the DaemonSet stand-in recreated. */
const recreated = () => daemonSet?.recreated ?? 0;

function newClient(): KubeClient {
  const settings = kubeConfig.parse({ retry: { minDelayMs: 20, maxDelayMs: 200, retries: 1 }, attemptTimeoutMs: 2_000, requestTimeoutMs: 4_000, qps: 200, burst: 100, watch: { backoffInitialMs: 100, backoffMaxMs: 500 } });
  const c = new KubeClient(access, settings, { clock });
  clients.push(c);
  return c;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 20_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) {
      last = (await cwn().catch(() => undefined))?.status;
      // What the agent and the stand-in said, so a failure in CI can be read without re-running it.
      const said = agent?.logs.lines.slice(-40).map((l) => `  ${String(l.time)} ${String(l.msg).slice(0, 300)}`) ?? [];
      let standin = '';
      try {
        standin = readFileSync(join(lab.description.logs, 'cilium.log'), 'utf8').split('\n').slice(-15).join('\n');
      } catch {
        standin = '(no stand-in log)';
      }
      const status = agent ? await agentStatus() : '(no agent)';
      process.stderr.write(`agent log (last 40):\n${said.join('\n')}\nstand-in log:\n${standin}\nagent /status: ${status.slice(0, 4000)}\n`);
      throw new Error(`timed out waiting for ${what}; the agent's status: ${JSON.stringify(last)}`);
    }
    await new Promise((r) => setTimeout(r, 150));
  }
}

async function cwn(): Promise<ConnwatchNode> {
  const got = await admin.get(CONNWATCH_NODES, { namespace: NAMESPACE, name: NODE });
  if (!got.ok) throw new Error(got.reason);
  return got.value;
}

async function node(): Promise<Node> {
  const got = await admin.get(RESOURCES.nodes, { name: NODE });
  if (!got.ok) throw new Error(got.reason);
  return got.value;
}

function startController(identity: string): FleetController {
  return startFleetController({
    client: newClient(),
    identity,
    journalDir: join(dir, identity),
    clock,
    log,
    config: { reconcileIntervalMs: 200, eventIntervalMs: 0, restart: { canaries: 1, grantTtlMs: 60_000 }, quarantine: { healthyForMs: 2_000, maxPercent: 100, drain: { enabled: false } } },
    actions: { restartCilium: 'on', quarantine: 'on' },
  });
}

/** The agent's /status over its unix socket (it answers even when loopback is broken). */
function agentStatus(): Promise<string> {
  return new Promise<string>((resolve) => {
    const req = httpRequest({ socketPath: join(agent.stateDir, 'telemetry.sock'), path: '/status', timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => resolve(body));
    });
    req.on('error', (err) => resolve(JSON.stringify({ error: String(err) })));
    req.end();
  });
}

const verdictOf = async () => (await cwn()).status?.verdict.kind;

describe.skipIf(!capable)('the ladder end to end: agent in Kubernetes mode, the controller, the lab (issue 16)', () => {
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'cw-ladder-e2e-'));
    server = await startKubeApiServer({ rules: agentRules, bookmarkIntervalMs: 500 });
    setupCluster(server, [NODE]);
    const resolved = await resolveClusterAccess(kubeConfig.parse({ kubeconfig: server.kubeconfigPath }));
    if (!resolved.ok) throw new Error(resolved.reason);
    access = resolved.value;
    admin = newClient();
    // kubelet and the Cilium DaemonSet: a deleted cilium pod means the agent restarts, then a new pod is Ready.
    daemonSet = await startCiliumDaemonSet({ client: newClient(), lab: { restartCilium: (o) => lab.restartCilium(o) }, node: NODE });
    lab = await startLab({ profile: 'cilium-1.14' });
    relay = await startLabRelay(lab, server, dir);
    const kubeconfigPath = await agentKubeconfig(server, NODE, join(dir, 'agent.kubeconfig'));
    agent = await startLabAgent(
      lab,
      [
        'kube:',
        `  kubeconfig: ${kubeconfigPath}`,
        '  endpoints: [{ url: "https://10.77.0.2:6443", serverName: localhost }]',
        '  agent: { jitterMs: 100 }',
        'probes:',
        '  intervalSeconds: 1',
        '  timeoutMs: 500',
        '  confirmRounds: 3',
        '  recoverRounds: 2',
        '  cilium: { settleSeconds: 2 }',
        'ladder: { requestAfterSeconds: 2, verifySeconds: 12, restartAttempts: 1 }',
      ],
      [],
      { env: { CONNWATCH_MODE: 'kubernetes', NODE_NAME: NODE } },
    );
    await until('the agent Healthy on its ConnwatchNode', async () => (await verdictOf()) === 'Healthy', 30_000);
    // Probe targets count only once they have answered: wait for a round in which they did.
    await until('every probe target answered once', async () => {
      const incident = (JSON.parse(await agentStatus()) as { incident?: { probes?: { last?: { observations: { kind: string; ok: boolean }[] } } } }).incident;
      const obs = incident?.probes?.last?.observations ?? [];
      return obs.filter((o) => (o.kind === 'peer' || o.kind === 'localPod') && o.ok).length >= 5;
    }, 30_000);
  }, 120_000);

  afterAll(async () => {
    await controller?.stop();
    await daemonSet?.stop();
    await agent?.stop();
    await lab?.down();
    await relay?.close();
    await Promise.all(clients.map((c) => c.close()));
    await server?.close();
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('without a controller, the agent asks and nothing more happens', async () => {
    await lab.ciliumMode('not-forwarding');
    const request = await until('a restart request', async () => (await cwn()).status?.request);
    expect(request).toMatchObject({ rung: 'restartCilium', verdict: 'ReadyButNoPodNetwork' });
    await new Promise((r) => setTimeout(r, 3_000));
    expect(recreated()).toBe(0);
    expect((await cwn()).spec?.grants ?? []).toEqual([]);
    expect(await verdictOf()).toBe('ReadyButNoPodNetwork');
  }, 60_000);

  it('a Cilium that stopped forwarding: requested, granted, its pod deleted, the stand-in restarted, verified by the agent, recovered', async () => {
    controller = startController('controller-1');
    const grant = await until('an executed restart grant', async () => (await cwn()).spec?.grants?.find((g) => g.rung === 'restartCilium' && g.executed));
    expect(grant).toMatchObject({ shadow: false });
    await until('the DaemonSet stand-in recreated the pod', () => recreated() === 1);
    const verified = await until('the agent verified the grant', async () => (await cwn()).status?.verified, 30_000);
    expect(verified).toMatchObject({ grant: grant.id, ok: true });
    await until('Healthy again, the request withdrawn', async () => {
      const s = (await cwn()).status;
      return s?.verdict.kind === 'Healthy' && !s.request;
    });
    await until('the controller closed the grant as verified', async () => (await cwn()).spec?.grants?.find((g) => g.id === grant.id)?.outcome?.result === 'verified');
  }, 90_000);

  it('a Cilium that cannot fix it: the restart fails to verify, quarantine, visible with kubectl; recovery removes only connwatch’s marks', async () => {
    // An operator's own taint, which recovery must leave.
    const own = await admin.patch(RESOURCES.nodes, { name: NODE }, { spec: { taints: [{ key: 'example.com/maintenance', value: 'later', effect: 'PreferNoSchedule' }] } }, 'merge');
    expect(own.ok).toBe(true);
    await lab.ciliumMode({ mode: 'not-forwarding', persistent: true });
    const failed = await until('a restart that did not verify', async () => {
      const v = (await cwn()).status?.verified;
      return v && !v.ok ? v : undefined;
    }, 60_000);
    expect(failed.detail).toMatch(/not fixed within 12 s/);
    await until('the agent asks for quarantine', async () => (await cwn()).status?.request?.rung === 'quarantine');
    const quarantined = await until('the taint and the condition', async () => {
      const n = await node();
      const taint = n.spec?.taints?.some((t) => t.key === QUARANTINE_TAINT);
      const condition = n.status?.conditions?.find((c) => c.type === 'PodNetworkUnavailable' && c.status === 'True');
      return taint && condition ? n : undefined;
    }, 30_000);
    expect(quarantined.spec?.taints?.map((t) => t.key).sort()).toEqual(['connwatch.io/pod-network-unavailable', 'example.com/maintenance']);
    const home = mkdtempSync(join(dir, 'kubectl-'));
    const described = await kubectl(server.kubeconfigPath, home, 'describe', 'node', NODE);
    expect(described.code).toBe(0);
    expect(described.stdout).toMatch(/PodNetworkUnavailable\s+True/);
    expect(described.stdout).toContain('connwatch.io/pod-network-unavailable:NoSchedule');

    // Cilium works again: the agent sees it, the controller lifts the quarantine after sustained health.
    await lab.ciliumMode('ok');
    await lab.restartCilium();
    await until('Healthy again', async () => (await verdictOf()) === 'Healthy', 30_000);
    const released = await until('connwatch’s marks removed', async () => {
      const n = await node();
      const taint = n.spec?.taints?.some((t) => t.key === QUARANTINE_TAINT);
      const condition = n.status?.conditions?.find((c) => c.type === 'PodNetworkUnavailable');
      return !taint && condition?.status !== 'True' ? n : undefined;
    }, 30_000);
    expect(released.spec?.taints?.map((t) => t.key)).toEqual(['example.com/maintenance']);
    expect(released.spec?.unschedulable ?? false).toBe(false);
  }, 150_000);
});
