/**
 * The demo's acts 3 and 4: the ladder in Kubernetes. The real agent (`connwatch run`, Kubernetes
 * mode) in the lab's node, the fleet controller in this process, the test API server, the real
 * kubectl. Act 3: a Cilium that stopped forwarding (nothing for the restore to put back) →
 * ReadyButNoPodNetwork → the controller restarts Cilium under its budget → verified, recovered.
 * Act 4: a Cilium a restart cannot fix → quarantine and drain (Eviction API, a PodDisruptionBudget)
 * → Cilium fixed → un-quarantine, only connwatch's marks removed. One live timeline per act, times
 * relative to the act's start. Leaves nothing behind (see cleanup.ts).
 *
 * The shared pieces (cluster, relay, the DaemonSet stand-in, the controller) are
 * scripts/lab/kube-glue.ts, which test/lab/ladder-e2e.test.ts uses too.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Node } from 'kubernetes-types/core/v1.js';
import pino from 'pino';
import { startKubeApiServer, type KubeApiServer } from '../kube-apiserver/server.js';
import { startLab } from '../lab/index.js';
import {
  KUBECTL,
  NAMESPACE,
  agentKubeconfig,
  agentRules,
  createReadyPod,
  kubectl,
  labKubeAgentYaml,
  nodeObject,
  setupCluster,
  startCiliumDaemonSet,
  startFleetController,
  startLabRelay,
} from '../lab/kube-glue.js';
import type { Lab } from '../lab/types.js';
import { ANNOTATIONS, QUARANTINE_TAINT } from '../../src/controller/model.js';
import { CONNWATCH_NODES, type ConnwatchNode } from '../../src/controller/objects.js';
import { KubeClient } from '../../src/kube/client.js';
import { kubeConfig } from '../../src/kube/config.js';
import { RESOURCES } from '../../src/kube/resources.js';
import { resolveClusterAccess, type ClusterAccess } from '../../src/kube/source.js';
import { startWatchLoop } from '../../src/kube/watch-loop.js';
import type { Clock } from '../../src/types.js';
import { interrupted, onCleanup } from './cleanup.js';
import { followJsonLines, type JsonLine } from './follow.js';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = join(ROOT, 'dist/cli.js');
const NODE = 'lab-node';
const OTHER_NODE = 'lab-node-2';
const OPERATOR_TAINT = 'example.com/maintenance';
const clock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
const verbose = Boolean(process.env.DEMO_VERBOSE);

const fmt = (ms: number): string => (Math.abs(ms) < 1000 ? `${Math.round(ms)} ms` : `${(ms / 1000).toFixed(2)} s`);

// ─── the timeline ────────────────────────────────────────────────────────────────────────────

type Who = 'lab' | 'agent' | 'controller' | 'DaemonSet' | 'ReplicaSet' | 'kubectl' | 'demo';

/**
 * Events from several sources (the agent's log, the controller's log, watches, kubectl), printed
 * live in time order: an event is printed once it is 400 ms old, so a late arrival from another
 * source still lands in its place.
 */
class Timeline {
  #t0 = 0;
  #pending: { at: number; who: Who; what: string }[] = [];
  #timer: NodeJS.Timeout | undefined;
  #active = false;

  start(t0: number): void {
    this.#t0 = t0;
    this.#pending = [];
    this.#active = true;
    this.#timer = setInterval(() => this.#flush(Date.now() - 400), 100);
  }

  add(who: Who, what: string, at = Date.now()): void {
    if (!this.#active || at < this.#t0 - 50) return;
    this.#pending.push({ at, who, what });
  }

  /** Prints everything pending and stops. */
  end(): void {
    this.#flush(Infinity);
    if (this.#timer) clearInterval(this.#timer);
    this.#active = false;
  }

  #flush(before: number): void {
    if (interrupted()) {
      this.#pending = [];
      return;
    }
    this.#pending.sort((a, b) => a.at - b.at);
    while (this.#pending.length > 0 && this.#pending[0]!.at <= before) {
      const e = this.#pending.shift()!;
      const [first, ...rest] = e.what.split('\n');
      console.log(`  +${fmt(e.at - this.#t0).padEnd(9)} ${e.who.padEnd(10)} ${first}`);
      for (const line of rest) console.log(`  ${' '.repeat(9)}  ${' '.repeat(10)} │ ${line}`);
    }
  }
}

// ─── the stage ───────────────────────────────────────────────────────────────────────────────

interface Stage {
  lab: Lab;
  server: KubeApiServer;
  admin: KubeClient;
  dir: string;
  timeline: Timeline;
  agentLogs: ReturnType<typeof followJsonLines>;
  stateDir: string;
  kubectl(...args: string[]): Promise<string>;
  cwn(): Promise<ConnwatchNode>;
  node(): Promise<Node>;
  /** Node Events kubectl describe showed already. */
  events: { count: number };
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs = 30_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${fmt(timeoutMs)} waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The agent's /status over its unix socket (it answers even when the node's loopback is broken). */
function agentStatus(stateDir: string): Promise<Record<string, unknown>> {
  return new Promise((done) => {
    const req = httpRequest({ socketPath: join(stateDir, 'telemetry.sock'), path: '/status', timeout: 2_000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => (body += d.toString()));
      res.on('end', () => {
        try {
          done(JSON.parse(body) as Record<string, unknown>);
        } catch {
          done({});
        }
      });
    });
    req.on('error', () => done({}));
    req.end();
  });
}

/**
 * A few lines of `kubectl describe node`: taints, unschedulable, the PodNetworkUnavailable
 * condition, and connwatch's Events not shown before (`seen` counts them across calls).
 */
function describeExcerpt(described: string, seen: { count: number }, opts: { eventsOnly?: boolean } = {}): string {
  const out: string[] = [];
  const events: string[] = [];
  let section = '';
  for (const line of described.split('\n')) {
    const head = /^([A-Z][A-Za-z ]*):/.exec(line);
    if (head) section = head[1]!;
    if (section === 'Taints' && !opts.eventsOnly) out.push(line);
    else if (section === 'Unschedulable' && !opts.eventsOnly) out.push(line);
    else if (section === 'Conditions' && !opts.eventsOnly) {
      if (/^\s+Type\s+Status\s+LastHeartbeatTime/.test(line)) out.push(line.replace(/\s+LastHeartbeatTime.*?Reason/, '  …  Reason'));
      else if (/^\s+PodNetworkUnavailable\s/.test(line)) out.push(line.replace(/^(\s+PodNetworkUnavailable\s+\S+)\s+.*?(\S+\s+connwatch.*)$/, '$1  …  $2').slice(0, 160));
    } else if (section === 'Events') {
      if (/^\s+(Type|----)\s/.test(line)) out.push(line);
      else if (/^\s+(Normal|Warning)\s/.test(line)) events.push(line);
      else if (/^Events:/.test(line)) out.push(line);
    }
  }
  const fresh = events.slice(seen.count);
  out.push(...(seen.count > 0 ? [`  (${seen.count} earlier event(s) not repeated)`] : []), ...fresh.map((l) => l.slice(0, 160)));
  seen.count = events.length;
  return out.join('\n');
}

/** What the agent's JSON log says that belongs on the timeline (undefined: not shown). */
function agentLine(l: JsonLine): string | undefined {
  const msg = typeof l.msg === 'string' ? l.msg : '';
  if (verbose) return `[log] ${msg} ${JSON.stringify({ ...l, msg: undefined, time: undefined, level: undefined, pid: undefined, hostname: undefined })}`.slice(0, 300);
  const verdict = /^verdict: (\S+)/.exec(msg);
  if (verdict) return `verdict ${verdict[1]}: ${((l.reasons as string[] | undefined) ?? []).filter((r) => !/^kubelet reports/.test(r)).slice(0, 4).join('; ')}`.slice(0, 160);
  if (/^restore attempt finished/.test(msg)) return `restore: re-installed ${(l.items as string[] | undefined)?.length ?? 0} item(s) networkd removed`;
  if (/^restore: verified/.test(msg)) return msg.slice(0, 200);
  if (/^signal: systemd-networkd restarted/.test(msg)) return 'heard systemd-networkd restart';
  if (/^(asking the controller for|grant \S+ (verified|did not fix)|request for the next rung withdrawn)/.test(msg)) return msg.slice(0, 200);
  return undefined;
}

/** What the controller's log says that belongs on the timeline. */
function controllerLine(l: JsonLine): string | undefined {
  const msg = typeof l.msg === 'string' ? l.msg : '';
  if (verbose) return `[log] ${msg}`.slice(0, 300);
  if (/^restartCilium: done: /.test(msg)) return msg.slice('restartCilium: done: '.length).replace(': delete pod', ': deleted pod');
  if (/^quarantine: done: quarantine /.test(msg)) return `quarantined: ${((l.outcome as { detail?: string[] } | undefined)?.detail ?? []).join(', ')}`;
  if (/^quarantine: done: drain /.test(msg)) return `drain started (annotation ${ANNOTATIONS.drain}): evicting every pod but DaemonSet, mirror and connwatch's own, through the Eviction API`;
  if (/^drain: a PodDisruptionBudget refused/.test(msg)) return `eviction of ${String(l.pod)} refused (429): its PodDisruptionBudget allows no disruption now; asking again later`;
  if (/^grant .* closed: /.test(msg)) return msg;
  if (/^un-quarantined /.test(msg)) return `${msg}; connwatch's marks only:\n${((l.changed as string[] | undefined) ?? []).join('\n')}`;
  if (/^not (restarting|quarantining|draining)/.test(msg)) return `held: ${msg}`;
  if (/fail|cannot/i.test(msg)) return msg.slice(0, 200);
  return undefined;
}

/** Changes of the ConnwatchNode that belong on the timeline: what the agent published, what the controller granted. */
function channelChanges(before: ConnwatchNode | undefined, after: ConnwatchNode): { who: Who; what: string }[] {
  const out: { who: Who; what: string }[] = [];
  const s0 = before?.status;
  const s1 = after.status;
  const wrote: string[] = [];
  if (s1 && s1.verdict.kind !== s0?.verdict.kind) wrote.push(`verdict ${s1.verdict.kind}`);
  if (s1?.request && (s1.request.rung !== s0?.request?.rung || s1.request.verdict !== s0?.request?.verdict)) wrote.push(`request ${s1.request.rung}`);
  if (s0?.request && !s1?.request) wrote.push('request withdrawn');
  if (s1?.verified && s1.verified.grant !== s0?.verified?.grant) wrote.push(`verified ${s1.verified.grant}: ${s1.verified.ok ? 'ok' : 'NOT ok'}`);
  if (wrote.length > 0) out.push({ who: 'agent', what: `↳ ConnwatchNode status: ${wrote.join(', ')}` });
  const g0 = new Map((before?.spec?.grants ?? []).map((g) => [g.id, g]));
  for (const g of after.spec?.grants ?? []) {
    if (g0.has(g.id)) continue;
    const what = g.rung === 'restartCilium' ? `restartCilium (attempt ${g.attempt ?? 1}, pod ${g.pod?.name ?? '?'})` : g.rung;
    out.push({ who: 'controller', what: `ConnwatchNode spec: grant ${g.id} ${what}, shadow ${g.shadow} — within the budget` });
  }
  return out;
}

// ─── the acts ────────────────────────────────────────────────────────────────────────────────

export interface KubeActsResult {
  ok: boolean;
  /** Milliseconds: the stage (lab, API server, agent Healthy), each act, and the tear-down. */
  times: { stage: number; act3?: number; act4?: number; teardown: number };
}

export async function runKubeActs(which: { act3: boolean; act4: boolean }): Promise<KubeActsResult> {
  const startedAt = Date.now();
  const times: KubeActsResult['times'] = { stage: 0, teardown: 0 };
  const undo: { what: string; fn: () => Promise<void> | void }[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'cw-demo-kube-'));
  undo.push({ what: 'remove the temporary directory', fn: () => rmSync(dir, { recursive: true, force: true }) });
  /**
   * Builds something and registers its undo before it exists: a clean-up (Ctrl-C) that comes while
   * it is being built waits for it and undoes it; nothing new is built once the demo is interrupted.
   */
  const own = async <T>(what: string, build: () => Promise<T> | T, destroy: (built: T) => Promise<void> | void): Promise<T> => {
    if (interrupted()) throw new Error('interrupted');
    const building = Promise.resolve().then(build);
    undo.push({
      what,
      fn: async () => {
        const built = await building.catch(() => undefined);
        if (built !== undefined) await destroy(built);
      },
    });
    return building;
  };
  const teardown = async () => {
    for (const u of undo.reverse().splice(0)) {
      try {
        await u.fn();
      } catch (err) {
        process.stderr.write(`demo clean-up: ${u.what}: ${err instanceof Error ? err.message : String(err)}\n`);
      }
    }
  };
  const release = onCleanup('acts 3 and 4', teardown);
  const timeline = new Timeline();
  let ok = true;
  try {
    console.log(`\nActs 3 and 4 — the ladder in Kubernetes: the agent asks, the fleet controller acts, kubectl shows it

  The lab has no kubelet and no real control plane; what stands in for what:
  - kube-apiserver     → the test API server (scripts/kube-apiserver: real REST, watch, RBAC, the ConnwatchNode
                         CRD, the Eviction API with PodDisruptionBudgets) on the host's 127.0.0.1; the lab's node
                         reaches it at https://10.77.0.2:6443 through a relay, like a control-plane endpoint
  - kubelet + the Cilium DaemonSet
                       → the "DaemonSet stand-in": when ${NODE}'s cilium pod is deleted it restarts the lab's Cilium
                         stand-in (a new cilium-agent re-installs its state) and creates the next pod, Ready
  - kubelet + the ReplicaSet controller + the scheduler, for app=web
                       → the "ReplicaSet stand-in": an evicted web pod comes back, Ready, on ${OTHER_NODE}
                         (a Node object with no lab behind it)
  - the controller's Deployment
                       → FleetController in this process (leader election on a Lease, as deployed)
  The agent is the real \`connwatch run\` in the lab's node (CONNWATCH_MODE=kubernetes, NODE_NAME=${NODE} as the
  downward API sets it), as a service account allowed only its own node's objects.`);
    if (!existsSync(KUBECTL)) console.log(`  (no ${KUBECTL}: the kubectl views are skipped)`);

    // The API server and the cluster.
    const server = await own('close the test API server', () => (mkdirSync(join(dir, 'apiserver')), startKubeApiServer({ rules: agentRules, bookmarkIntervalMs: 500, dir: join(dir, 'apiserver') })), (x) => x.close());
    setupCluster(server, [NODE]);
    const def = (g: string, v: string, p: string) => server.api.registry.find(g, v, p)!;
    server.api.create(def('', 'v1', 'nodes'), undefined, nodeObject(OTHER_NODE));
    const clients: KubeClient[] = [];
    undo.push({ what: 'close the API clients', fn: async () => void (await Promise.all(clients.map((c) => c.close()))) });
    const resolved = await resolveClusterAccess(kubeConfig.parse({ kubeconfig: server.kubeconfigPath }));
    if (!resolved.ok) throw new Error(resolved.reason);
    const access: ClusterAccess = resolved.value;
    const newClient = () => {
      const c = new KubeClient(access, kubeConfig.parse({ retry: { minDelayMs: 20, maxDelayMs: 200, retries: 1 }, attemptTimeoutMs: 2_000, requestTimeoutMs: 4_000, qps: 200, burst: 100, watch: { backoffInitialMs: 100, backoffMaxMs: 500 } }), { clock });
      clients.push(c);
      return c;
    };
    const admin = newClient();

    // The lab, the DaemonSet stand-in, the relay.
    const lab = await own('take the lab down', () => startLab({ profile: 'cilium-1.14' }), (x) => x.down());
    const daemonSet = await own('stop the DaemonSet stand-in', () => startCiliumDaemonSet({ client: newClient(), lab, node: NODE, onStep: (what) => timeline.add('DaemonSet', what) }), (x) => x.stop());
    const relay = await own('stop the relay', () => startLabRelay(lab, server, dir), (x) => x.close());

    // app=web on the node: two replicas and a PodDisruptionBudget that keeps one of them up.
    for (const name of ['web-1', 'web-2']) await createReadyPod(admin, { namespace: 'default', name, node: NODE, labels: { app: 'web' }, owner: { kind: 'ReplicaSet', name: 'web-5d8f' }, container: 'web' });
    server.api.create(def('policy', 'v1', 'poddisruptionbudgets'), 'default', { metadata: { name: 'web' }, spec: { minAvailable: 1, selector: { matchLabels: { app: 'web' } } } });
    let webSeq = 2;
    if (interrupted()) throw new Error('interrupted');
    const replicaSet = startWatchLoop(newClient(), RESOURCES.pods, { namespace: 'default', labelSelector: 'app=web', relistJitterMs: 0, backoff: { initialMs: 100, maxMs: 500 } }, async (e) => {
      if (e.type !== 'deleted') return;
      timeline.add('ReplicaSet', `${e.object.metadata?.name} gone from ${e.object.spec?.nodeName} (evicted)`);
      const name = `web-${++webSeq}`;
      await createReadyPod(admin, { namespace: 'default', name, node: OTHER_NODE, labels: { app: 'web' }, owner: { kind: 'ReplicaSet', name: 'web-5d8f' }, container: 'web' });
      timeline.add('ReplicaSet', `${name} created and Ready on ${OTHER_NODE} (the replacement; the PodDisruptionBudget counts it)`);
    });
    undo.push({ what: 'stop the ReplicaSet stand-in', fn: () => replicaSet.stop() });

    // The agent, in Kubernetes mode, in the lab's node.
    const stateDir = join(dir, 'agent-state');
    const kubeconfigPath = await agentKubeconfig(server, NODE, join(dir, 'agent.kubeconfig'));
    const config = join(dir, 'connwatch.yaml');
    writeFileSync(config, labKubeAgentYaml({ site: 'demo', stateDir, ciliumSocket: lab.description.cilium.labSocket, kubeconfig: kubeconfigPath, endpoint: relay.url }));
    const agent = lab.spawn('node', [process.execPath, CLI, 'run', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { CONNWATCH_MODE: 'kubernetes', NODE_NAME: NODE } });
    undo.push({
      what: 'stop the agent',
      fn: async () => {
        if (agent.exitCode !== null || agent.signalCode !== null) return;
        const exited = new Promise((r) => agent.once('exit', r));
        agent.kill('SIGTERM');
        await Promise.race([exited, new Promise((r) => setTimeout(r, 3_000))]);
      },
    });
    const agentLogs = followJsonLines(agent.stdout!);
    agent.stdout!.on('data', () => undefined);
    let seen = 0;
    agent.stdout!.on('data', () => {
      for (; seen < agentLogs.lines.length; seen++) {
        const l = agentLogs.lines[seen]!;
        const what = agentLine(l);
        if (what) timeline.add('agent', what, Date.parse(String(l.time)) || Date.now());
      }
    });

    // The controller, in-process: restarts and quarantine ON (shadow off), drain on.
    const controllerLog = pino({ level: 'info' }, {
      write: (s: string) => {
        try {
          const l = JSON.parse(s) as JsonLine;
          const what = controllerLine(l);
          if (what) timeline.add('controller', what, Number(l.time) || Date.now());
        } catch {
          /* not JSON */
        }
      },
    });
    const controllerSettings = {
      reconcileIntervalMs: 200,
      eventIntervalMs: 0,
      restart: { canaries: 1, maxConcurrent: 10, maxPercent: 100, grantTtlMs: 60_000 },
      quarantine: { maxPercent: 100, cordon: true, healthyForMs: 5_000, drain: { enabled: true, retryMs: 2_000 } },
    };
    if (interrupted()) throw new Error('interrupted');
    const controller = startFleetController({ client: newClient(), identity: 'connwatch-controller-0', journalDir: join(dir, 'controller-state'), clock, log: controllerLog, config: controllerSettings, actions: { restartCilium: 'on', quarantine: 'on' } });
    undo.push({ what: 'stop the controller', fn: () => controller.stop() });
    console.log(`
  The controller's configuration — SHADOW MODE OFF for this demo:
    actions: { restartCilium: on, quarantine: on }   # a new install runs both in shadow: it journals "would have"
                                                     # and writes ConnwatchWould* Events, and touches nothing
    controller.restart:    { canaries: 1, maxConcurrent: 10, maxPercent: 100 }  # the budget: 1 restart in flight until one verifies
    controller.quarantine: { cordon: true, healthyForMs: 5000, drain: { enabled: true, retryMs: 2000 } }
  The agent: probes every 1 s (3 failing rounds to call it), asks for a rung after 2 s, verifies a restart within 12 s,
  asks for quarantine after 1 failed restart.`);

    // A kubectl with its own HOME, and the channel watch.
    const home = join(dir, 'kubectl-home');
    mkdirSync(home, { recursive: true });
    const kc = async (...args: string[]): Promise<string> => {
      if (!existsSync(KUBECTL)) return '(kubectl not installed)';
      const r = await kubectl(server.kubeconfigPath, home, ...args);
      return (r.code === 0 ? r.stdout : `${r.stdout}${r.stderr}`).replace(/\n+$/, '');
    };
    const showKubectl = async (args: string[], filter: (out: string) => string = (o) => o) => {
      const at = Date.now();
      const out = filter(await kc(...args));
      timeline.add('kubectl', `$ kubectl ${args.join(' ')}\n${out}`, at);
    };
    let lastChannel: ConnwatchNode | undefined;
    const channelWatch = startWatchLoop(newClient(), CONNWATCH_NODES, { namespace: NAMESPACE, name: NODE, relistJitterMs: 0, backoff: { initialMs: 100, maxMs: 500 } }, (e) => {
      const object = e.type === 'synced' ? e.items[0] : e.type === 'deleted' ? undefined : e.object;
      if (!object) return;
      for (const { who, what } of channelChanges(lastChannel, object)) timeline.add(who, what);
      lastChannel = object;
    });
    undo.push({ what: 'stop the channel watch', fn: () => channelWatch.stop() });
    const cwn = async (): Promise<ConnwatchNode> => {
      const got = await admin.get(CONNWATCH_NODES, { namespace: NAMESPACE, name: NODE });
      if (!got.ok) throw new Error(got.reason);
      return got.value;
    };
    const node = async (): Promise<Node> => {
      const got = await admin.get(RESOURCES.nodes, { name: NODE });
      if (!got.ok) throw new Error(got.reason);
      return got.value;
    };

    await agentLogs.waitFor((l) => l.msg === 'signals listening', 20_000, 'the agent to listen on the bus and netlink');
    await until('the agent Healthy on its ConnwatchNode', async () => (await cwn()).status?.verdict.kind === 'Healthy', 30_000);
    await until('every probe target answered once', async () => {
      const incident = (await agentStatus(stateDir)).incident as { probes?: { last?: { observations: { kind: string; ok: boolean }[] } } } | undefined;
      return (incident?.probes?.last?.observations ?? []).filter((o) => (o.kind === 'peer' || o.kind === 'localPod') && o.ok).length >= 5;
    }, 30_000);
    times.stage = Date.now() - startedAt;
    console.log(`\n  The stage is ready in ${fmt(times.stage)}: the agent is Healthy on its ConnwatchNode and every probe target has answered.`);
    for (const args of [['get', 'nodes'], ['-n', NAMESPACE, 'get', 'cwn'], ['get', 'pods', '-A', '-o', 'wide'], ['get', 'pdb']]) {
      console.log(`  $ kubectl ${args.join(' ')}`);
      for (const line of (await kc(...args)).split('\n')) console.log(`  │ ${line}`);
    }
    const stage: Stage = { lab, server, admin, dir, timeline, agentLogs, stateDir, kubectl: kc, cwn, node, events: { count: 0 } };

    if (which.act3) {
      const t = Date.now();
      ok = (await act3(stage, showKubectl, daemonSet)) && ok;
      times.act3 = Date.now() - t;
      console.log(`  Act 3 took ${fmt(times.act3)}.`);
    }
    if (which.act4) {
      const t = Date.now();
      ok = (await act4(stage, showKubectl)) && ok;
      times.act4 = Date.now() - t;
      console.log(`  Act 4 took ${fmt(times.act4)}.`);
    }
    return { ok, times };
  } catch (err) {
    timeline.end();
    if (!interrupted()) console.log(`  !! ${err instanceof Error ? err.message : String(err)}`);
    return { ok: false, times };
  } finally {
    timeline.end();
    const t = Date.now();
    await release();
    times.teardown = Date.now() - t;
  }
}

type ShowKubectl = (args: string[], filter?: (out: string) => string) => Promise<void>;

async function act3(s: Stage, showKubectl: ShowKubectl, daemonSet: { recreated: number }): Promise<boolean> {
  console.log(`
Act 3 — a flush the restore cannot fix: the controller restarts Cilium under its budget
  systemd-networkd restarts again, and this time Cilium's datapath is broken too: the stand-in goes to mode
  not-forwarding (its API still says Ok and every endpoint ready, but the node drops its pods' traffic). The restore
  puts back what networkd removed, and the pods still cannot talk: a job for the next rung.
`);
  const t0 = Date.now();
  s.timeline.start(t0);
  try {
    await s.lab.ciliumMode('not-forwarding');
    s.timeline.add('lab', 'Cilium stand-in → not-forwarding (a restart fixes it)', t0);
    const restarted = Date.now();
    const flush = await s.lab.restartNetworkd();
    s.timeline.add('lab', `systemd-networkd restarted; ${flush.before.rules.length + flush.before.routes.length - flush.after.rules.length - flush.after.routes.length} CNI item(s) gone`, restarted);
    const before = daemonSet.recreated;
    const grant = await until('an executed restart grant', async () => (await s.cwn()).spec?.grants?.find((g) => g.rung === 'restartCilium' && g.executed && !g.outcome), 45_000);
    await until('the DaemonSet stand-in to recreate the cilium pod', () => daemonSet.recreated > before, 15_000);
    const verified = await until('the agent to verify the grant', async () => {
      const v = (await s.cwn()).status?.verified;
      return v?.grant === grant.id ? v : undefined;
    }, 30_000);
    await until('Healthy again, the request withdrawn', async () => {
      const st = (await s.cwn()).status;
      return st?.verdict.kind === 'Healthy' && !st.request;
    }, 30_000);
    await until('the controller to close the grant', async () => (await s.cwn()).spec?.grants?.find((g) => g.id === grant.id)?.outcome, 15_000);
    await new Promise((r) => setTimeout(r, 300));
    await showKubectl(['-n', NAMESPACE, 'get', 'cwn']);
    await showKubectl(['-n', 'kube-system', 'get', 'pods', '-o', 'wide']);
    await showKubectl(['describe', 'node', NODE], (out) => describeExcerpt(out, s.events, { eventsOnly: true }));
    s.timeline.end();
    const fine = verified.ok;
    console.log(fine ? '  → recovered by one Cilium restart, granted under the budget and verified by the agent.' : `  !! the restart was not verified: ${verified.detail ?? ''}`);
    return fine;
  } catch (err) {
    s.timeline.end();
    if (!interrupted()) console.log(`  !! ${err instanceof Error ? err.message : String(err)}`);
    return false;
  }
}

async function act4(s: Stage, showKubectl: ShowKubectl): Promise<boolean> {
  console.log(`
Act 4 — a Cilium a restart cannot fix: quarantine and drain, then recovery and un-quarantine
  The Cilium stand-in goes to not-forwarding, persistent: a restart re-installs everything and the node still drops its
  pods' traffic. The agent gives the restart ladder.verifySeconds (12 s) to fix the node before it asks for quarantine.
  An operator's own taint (${OPERATOR_TAINT}) goes on the node first: connwatch must leave it.
`);
  const t0 = Date.now();
  s.timeline.start(t0);
  try {
    await showKubectl(['taint', 'node', NODE, `${OPERATOR_TAINT}=later:PreferNoSchedule`]);
    await s.lab.ciliumMode({ mode: 'not-forwarding', persistent: true });
    s.timeline.add('lab', 'Cilium stand-in → not-forwarding, persistent (a restart cannot fix it)');
    await until('a restart that did not verify', async () => {
      const v = (await s.cwn()).status?.verified;
      return v && !v.ok ? v : undefined;
    }, 60_000);
    await until('the taint and the PodNetworkUnavailable condition', async () => {
      const n = await s.node();
      return n.spec?.taints?.some((t) => t.key === QUARANTINE_TAINT) && n.status?.conditions?.some((c) => c.type === 'PodNetworkUnavailable' && c.status === 'True');
    }, 30_000);
    await until('the drain to finish', async () => (await s.node()).metadata?.annotations?.[ANNOTATIONS.drained], 30_000);
    s.timeline.add('controller', `drain finished (annotation ${ANNOTATIONS.drained}): nothing evictable left on ${NODE}`);
    await new Promise((r) => setTimeout(r, 300));
    await showKubectl(['describe', 'node', NODE], (out) => describeExcerpt(out, s.events));
    await showKubectl(['-n', NAMESPACE, 'get', 'cwn']);
    await showKubectl(['get', 'pods', '-l', 'app=web', '-o', 'wide']);
    await showKubectl(['get', 'pdb', 'web']);

    // Cilium is fixed (say, a fixed image rolled out): the node recovers, the controller lifts the quarantine.
    await s.lab.ciliumMode('ok');
    await s.lab.restartCilium();
    s.timeline.add('lab', 'Cilium fixed (stand-in back to ok and restarted, as a fixed cilium-agent would be)');
    await until('Healthy again', async () => (await s.cwn()).status?.verdict.kind === 'Healthy', 30_000);
    const released = await until('connwatch’s marks removed', async () => {
      const n = await s.node();
      const taint = n.spec?.taints?.some((t) => t.key === QUARANTINE_TAINT);
      const condition = n.status?.conditions?.find((c) => c.type === 'PodNetworkUnavailable');
      return !taint && condition?.status === 'False' ? n : undefined;
    }, 30_000);
    await new Promise((r) => setTimeout(r, 300));
    await showKubectl(['describe', 'node', NODE], (out) => describeExcerpt(out, s.events));
    await showKubectl(['-n', NAMESPACE, 'get', 'cwn']);
    s.timeline.end();
    const taints = (released.spec?.taints ?? []).map((t) => t.key);
    const fine = taints.length === 1 && taints[0] === OPERATOR_TAINT && !released.spec?.unschedulable;
    console.log(fine ? `  → quarantined and drained while broken; un-quarantined once healthy, only connwatch's marks removed (${OPERATOR_TAINT} stays).` : `  !! after un-quarantine the node has taints [${taints.join(', ')}], unschedulable ${String(released.spec?.unschedulable ?? false)}`);
    return fine;
  } catch (err) {
    s.timeline.end();
    if (!interrupted()) console.log(`  !! ${err instanceof Error ? err.message : String(err)}`);
    return false;
  }
}
