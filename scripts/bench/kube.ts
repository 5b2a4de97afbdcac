/**
 * The bench's Kubernetes section (`--only kube`): the harness of test/lab/ladder-e2e.test.ts and
 * the demo's act 3 — the lab (real networkd, the Cilium stand-in), the test API server, the real
 * agent (`dist/cli.js run`, Kubernetes mode) in the lab's node reaching the server through the
 * lab relay, the real FleetController in this process (restartCilium ON, not shadow) and the
 * DaemonSet stand-in (a deleted cilium pod restarts the Cilium stand-in, then a new pod is Ready).
 * One stage, then:
 *
 *  - `api_requests_per_node_minute`: the agent at steady state, its watch timeout and status
 *    heartbeat scaled from 300 s to 10 s (×30), requests counted over a window by the API server
 *    (calls made with the agent's token) and by the agent (`connwatch_kube_requests_total`);
 *  - `repair_by_cilium_restart`: per trial the stand-in stops forwarding (lab.ciliumMode
 *    'not-forwarding', which a restart resets); the agent's first verdict other than Healthy → its
 *    Healthy verdict after the controller's restart, minus the stand-in's own restart (the cilium
 *    pod's deletion as the DaemonSet stand-in saw it → the new pod Ready). Each trial waits for the
 *    grant closed as verified and the request withdrawn before the next.
 *
 * Everything runs on loopback and in the lab's namespaces; every piece is undone in reverse order,
 * also on failure and on SIGINT/SIGTERM.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pino from 'pino';
import { followJsonLines, type JsonLine } from '../demo/follow.js';
import { startKubeApiServer } from '../kube-apiserver/server.js';
import { startLab } from '../lab/index.js';
import { LAB_AGENT_TIMINGS, NAMESPACE, agentKubeconfig, agentRules, labKubeAgentYaml, setupCluster, startCiliumDaemonSet, startFleetController, startLabRelay } from '../lab/kube-glue.js';
import { CONNWATCH_NODES, type ConnwatchNode } from '../../src/controller/objects.js';
import { KubeClient } from '../../src/kube/client.js';
import { kubeConfig } from '../../src/kube/config.js';
import { resolveClusterAccess } from '../../src/kube/source.js';
import type { Clock } from '../../src/types.js';
import { distribution, emit } from './figures.js';

const ROOT = resolve(import.meta.dirname, '../..');
const NODE = 'lab-node';
const clock: Clock = { now: () => Date.now(), monotonic: () => performance.now() };
const at = (l: JsonLine) => Date.parse(String(l.time));
const msgOf = (l: JsonLine) => (typeof l.msg === 'string' ? l.msg : '');

/** Production's watch timeout and heartbeat (300 s each) over the bench's (10 s each). */
const SCALE = 30;
const WATCH_TIMEOUT_S = 300 / SCALE;
const HEARTBEAT_MS = 300_000 / SCALE;

/**
 * The agent's timings, as in test/lab/ladder-e2e.test.ts and the demo (production defaults in
 * brackets). They sit on the measured path: docs/bench.md says how.
 */
const AGENT_TIMINGS = LAB_AGENT_TIMINGS;

export interface KubeBenchOptions {
  /** Repair trials (0: none). */
  repairRuns: number;
  /** The steady-state window in real seconds (0: not measured). */
  apiSeconds: number;
}

interface Trial {
  verdict: string;
  /** The first verdict other than Healthy, and when. */
  firstOff: string;
  verdictAt: number;
  requestAt: number;
  deletedAt: number;
  readyAt: number;
  greenAt: number;
  verifiedAt: number;
}

async function until<T>(what: string, fn: () => Promise<T | undefined | false> | T | undefined | false, timeoutMs: number): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const value = await fn();
    if (value) return value;
    if (Date.now() > end) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(100);
  }
}

/** GET over the agent's telemetry unix socket (answers whatever the node's network does). */
function overSocket(socketPath: string, path: string): Promise<string> {
  return new Promise((res, rej) => {
    const req = httpRequest({ socketPath, path, timeout: 3_000 }, (r) => {
      let body = '';
      r.setEncoding('utf8');
      r.on('data', (c: string) => (body += c));
      r.on('end', () => res(body));
    });
    req.on('timeout', () => req.destroy(new Error(`${path}: timed out`)));
    req.on('error', rej);
    req.end();
  });
}

/** `connwatch_kube_requests_total` by verb, resource and code. */
function kubeRequests(metrics: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of metrics.split('\n')) {
    const m = /^connwatch_kube_requests_total\{([^}]*)\} (\S+)/.exec(line);
    if (!m) continue;
    const labels = Object.fromEntries([...m[1]!.matchAll(/(\w+)="([^"]*)"/g)].map((x) => [x[1], x[2]]));
    const key = `${labels.verb} ${labels.resource} ${labels.code}`;
    out.set(key, (out.get(key) ?? 0) + Number(m[2]));
  }
  return out;
}

/** Runs the section: one stage, the steady-state window, then the repair trials. */
export async function benchKube(opts: KubeBenchOptions): Promise<void> {
  if (opts.repairRuns <= 0 && opts.apiSeconds <= 0) return;
  const undo: { what: string; fn: () => Promise<unknown> | unknown }[] = [];
  let tornDown: Promise<void> | undefined;
  const teardown = () =>
    (tornDown ??= (async () => {
      for (const u of undo.reverse().splice(0)) {
        try {
          await u.fn();
        } catch (err) {
          process.stderr.write(`bench kube clean-up: ${u.what}: ${err instanceof Error ? err.message : String(err)}\n`);
        }
      }
    })());
  const onSignal = (signal: NodeJS.Signals) => {
    process.stderr.write(`\n${signal}: cleaning up the kube section (lab, servers, processes, temporary directory)…\n`);
    void teardown().finally(() => process.exit(signal === 'SIGINT' ? 130 : 143));
  };
  process.once('SIGINT', onSignal);
  process.once('SIGTERM', onSignal);

  const dir = mkdtempSync(join(tmpdir(), 'cw-bench-kube-'));
  undo.push({ what: 'remove the temporary directory', fn: () => rmSync(dir, { recursive: true, force: true }) });
  try {
    const server = await startKubeApiServer({ rules: agentRules, bookmarkIntervalMs: 1_000 });
    undo.push({ what: 'close the test API server', fn: () => server.close() });
    setupCluster(server, [NODE]);
    const resolved = await resolveClusterAccess(kubeConfig.parse({ kubeconfig: server.kubeconfigPath }));
    if (!resolved.ok) throw new Error(resolved.reason);
    const clients: KubeClient[] = [];
    undo.push({ what: 'close the API clients', fn: () => Promise.all(clients.map((c) => c.close())) });
    const newClient = () => {
      const c = new KubeClient(resolved.value, kubeConfig.parse({ retry: { minDelayMs: 20, maxDelayMs: 200, retries: 1 }, attemptTimeoutMs: 2_000, requestTimeoutMs: 4_000, qps: 200, burst: 100, watch: { backoffInitialMs: 100, backoffMaxMs: 500 } }), { clock });
      clients.push(c);
      return c;
    };
    const admin = newClient();
    const cwn = async (): Promise<ConnwatchNode> => {
      const got = await admin.get(CONNWATCH_NODES, { namespace: NAMESPACE, name: NODE });
      if (!got.ok) throw new Error(got.reason);
      return got.value;
    };

    const lab = await startLab({ profile: 'cilium-1.14' });
    undo.push({ what: 'take the lab down', fn: () => lab.down() });

    // The DaemonSet stand-in, its steps timed: the cilium pod's deletion as its watch saw it → the next pod Ready.
    const restarts: { deletedAt: number; readyAt?: number }[] = [];
    const daemonSet = await startCiliumDaemonSet({
      client: newClient(),
      lab,
      node: NODE,
      onStep: (what) => {
        const now = Date.now();
        if (/^cilium pod \S+ deleted/.test(what)) restarts.push({ deletedAt: now });
        else if (/^cilium pod \S+ Ready/.test(what) && restarts.length > 0 && restarts.at(-1)!.readyAt === undefined) restarts.at(-1)!.readyAt = now;
      },
    });
    undo.push({ what: 'stop the DaemonSet stand-in', fn: () => daemonSet.stop() });
    const relay = await startLabRelay(lab, server, dir);
    undo.push({ what: 'stop the relay', fn: () => relay.close() });

    // The agent, in Kubernetes mode, in the lab's node.
    const stateDir = join(dir, 'agent-state');
    const kubeconfigPath = await agentKubeconfig(server, NODE, join(dir, 'agent.kubeconfig'));
    const config = join(dir, 'connwatch.yaml');
    writeFileSync(
      config,
      labKubeAgentYaml({
        site: 'bench',
        stateDir,
        ciliumSocket: lab.description.cilium.labSocket,
        kubeconfig: kubeconfigPath,
        endpoint: relay.url,
        kube: [`watch: { timeoutSeconds: ${WATCH_TIMEOUT_S} }`, `agent: { heartbeatMs: ${HEARTBEAT_MS}, jitterMs: ${AGENT_TIMINGS.jitterMs} }`],
      }),
    );
    const agent = lab.spawn('node', [process.execPath, join(ROOT, 'dist/cli.js'), 'run', '--config', config], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { CONNWATCH_MODE: 'kubernetes', NODE_NAME: NODE } });
    undo.push({
      what: 'stop the agent',
      fn: async () => {
        if (agent.exitCode !== null || agent.signalCode !== null) return;
        const exited = new Promise((r) => agent.once('exit', r));
        agent.kill('SIGTERM');
        await Promise.race([exited, sleep(3_000)]);
      },
    });
    const logs = followJsonLines(agent.stdout!);

    // The controller in-process: restartCilium ON (shadow off), ladder-e2e's fast timings.
    const controller = startFleetController({
      client: newClient(),
      identity: 'connwatch-controller-bench',
      journalDir: join(dir, 'controller-state'),
      clock,
      log: pino({ level: process.env.BENCH_VERBOSE ? 'info' : 'silent' }, process.stderr),
      config: { reconcileIntervalMs: 200, eventIntervalMs: 0, heartbeatPeriodMs: HEARTBEAT_MS, restart: { canaries: 1, grantTtlMs: 60_000 }, quarantine: { healthyForMs: 2_000, maxPercent: 100, drain: { enabled: false } } },
      actions: { restartCilium: 'on', quarantine: 'on' },
    });
    undo.push({ what: 'stop the controller', fn: () => controller.stop() });

    const socket = join(stateDir, 'telemetry.sock');
    await logs.waitFor((l) => l.msg === 'signals listening', 30_000, 'the agent to listen on the bus and netlink');
    await until('the agent Healthy on its ConnwatchNode', async () => (await cwn().catch(() => undefined))?.status?.verdict.kind === 'Healthy', 60_000);
    await until('every probe target answered once', async () => {
      const status = JSON.parse(await overSocket(socket, '/status').catch(() => '{}')) as { incident?: { probes?: { last?: { observations: { kind: string; ok: boolean }[] } } } };
      return (status.incident?.probes?.last?.observations ?? []).filter((o) => (o.kind === 'peer' || o.kind === 'localPod') && o.ok).length >= 5;
    }, 60_000);
    process.stderr.write('  kube: stage ready (agent Healthy on its ConnwatchNode, every probe target answered)\n');

    if (opts.apiSeconds > 0) await measureRequests(server, socket, opts.apiSeconds);
    if (opts.repairRuns > 0) await measureRepairs(opts.repairRuns, { lab, logs, cwn, restarts });
  } finally {
    process.off('SIGINT', onSignal);
    process.off('SIGTERM', onSignal);
    await teardown();
  }
}

/** `api_requests_per_node_minute`: the agent's requests over a steady-state window, scaled ×30. */
async function measureRequests(server: Awaited<ReturnType<typeof startKubeApiServer>>, socket: string, seconds: number): Promise<void> {
  // Past the start (lists, the first status writes): one more heartbeat and watch period.
  await sleep(HEARTBEAT_MS + 1_000);
  server.calls.clear();
  server.calls.enabled = true;
  const before = kubeRequests(await overSocket(socket, '/metrics'));
  const t0 = performance.now();
  await sleep(seconds * 1000);
  const after = kubeRequests(await overSocket(socket, '/metrics'));
  const elapsedMs = performance.now() - t0;
  server.calls.enabled = false;
  const seen = server.calls.calls.filter((c) => c.nodeName === NODE);
  server.calls.clear();
  const byKind: Record<string, number> = {};
  for (const c of seen) {
    const key = `${c.verb} ${c.resource}${c.subresource ? `/${c.subresource}` : ''}`;
    byKind[key] = (byKind[key] ?? 0) + 1;
  }
  let counted = 0;
  for (const [key, n] of after) counted += n - (before.get(key) ?? 0);
  const productionMinutes = (elapsedMs * SCALE) / 60_000;
  const perMinute = seen.length / productionMinutes;
  process.stderr.write(`  kube: steady state: ${seen.length} requests at the API server (${counted} counted by the agent) in ${(elapsedMs / 1000).toFixed(1)} s ×${SCALE} = ${productionMinutes.toFixed(1)} production minutes: ${JSON.stringify(byKind)}\n`);
  emit({
    bench: 'api_requests_per_node_minute',
    unit: 'requests',
    value: Math.round(perMinute * 100) / 100,
    basis: `${seen.length} requests at the test API server with the agent's token in ${(elapsedMs / 1000).toFixed(1)} s, watch timeoutSeconds ${WATCH_TIMEOUT_S} and heartbeat ${HEARTBEAT_MS / 1000} s (production 300 and 300: scaled ×${SCALE}) = ${productionMinutes.toFixed(1)} production minutes`,
    byKind,
    agentCounted: counted,
    agent: 'dist/cli.js run, Kubernetes mode, Healthy, in the lab node',
    target: '<= 1',
    met: perMinute <= 1,
  });
}

/** `repair_by_cilium_restart` and its parts, over `runs` trials on the stage. */
async function measureRepairs(
  runs: number,
  s: { lab: Awaited<ReturnType<typeof startLab>>; logs: ReturnType<typeof followJsonLines>; cwn: () => Promise<ConnwatchNode>; restarts: { deletedAt: number; readyAt?: number }[] },
): Promise<void> {
  const trials: Trial[] = [];
  for (let run = 1; run <= runs; run++) {
    await sleep(Math.random() * 1_000); // de-phase from the 1 s probe round
    const t0 = Date.now();
    const restartsBefore = s.restarts.length;
    await s.lab.ciliumMode('not-forwarding');
    const after = (t: number) => (l: JsonLine) => at(l) >= t;
    // The verdict: the first Broken one (CannotTell, a suspicion still being confirmed, may come first).
    const verdict = await s.logs.waitFor((l) => after(t0)(l) && (l.msg === 'verdict: ReadyButNoPodNetwork' || l.msg === 'verdict: NodeOffline'), 30_000, `run ${run}: a Broken verdict`);
    const firstOff = s.logs.lines.find((l) => after(t0)(l) && msgOf(l).startsWith('verdict: ') && l.msg !== 'verdict: Healthy')!;
    const request = await s.logs.waitFor((l) => after(t0)(l) && msgOf(l).startsWith('asking the controller for restartCilium'), 30_000, `run ${run}: the restart request`);
    const restart = await until(`run ${run}: the DaemonSet stand-in to recreate the cilium pod`, () => (s.restarts.length > restartsBefore && s.restarts.at(-1)!.readyAt !== undefined ? s.restarts.at(-1)! : undefined), 30_000);
    const green = await s.logs.waitFor((l) => after(restart.deletedAt)(l) && l.msg === 'verdict: Healthy', 30_000, `run ${run}: Healthy again`);
    const verified = await s.logs.waitFor((l) => after(t0)(l) && /^grant \S+ verified/.test(msgOf(l)), 30_000, `run ${run}: the grant verified`);
    // The next trial only once the controller closed the grant and the agent withdrew its request.
    await until(`run ${run}: the grant closed as verified, the request withdrawn`, async () => {
      const o = await s.cwn();
      const grants = (o.spec?.grants ?? []).filter((g) => g.rung === 'restartCilium' && Date.parse(g.grantedAt) >= t0);
      return o.status?.verdict.kind === 'Healthy' && !o.status.request && grants.length > 0 && grants.every((g) => g.outcome?.result === 'verified');
    }, 30_000);
    const trial: Trial = { verdict: String(verdict.msg).slice('verdict: '.length), firstOff: `${String(firstOff.msg).slice('verdict: '.length)} at +${at(firstOff) - t0} ms`, verdictAt: at(verdict), requestAt: at(request), deletedAt: restart.deletedAt, readyAt: restart.readyAt!, greenAt: at(green), verifiedAt: at(verified) };
    trials.push(trial);
    const standIn = trial.readyAt - trial.deletedAt;
    process.stderr.write(
      `  kube repair run ${run}: not-forwarding → ${trial.firstOff}, ${trial.verdict} at +${trial.verdictAt - t0} ms; ${trial.verdict} → Healthy ${trial.greenAt - trial.verdictAt} ms (request +${trial.requestAt - trial.verdictAt}, pod deleted +${trial.deletedAt - trial.verdictAt}, stand-in restart ${standIn} ms, Ready → Healthy ${trial.greenAt - trial.readyAt} ms, verified +${trial.verifiedAt - trial.verdictAt}): ${trial.greenAt - trial.verdictAt - standIn} ms beyond the stand-in's restart\n`,
    );
    await sleep(1_000);
  }
  const of = (f: (t: Trial) => number) => trials.map(f);
  const verdicts = [...new Set(trials.map((t) => t.verdict))].join(', ');
  const timings = `probes every ${AGENT_TIMINGS.intervalSeconds} s, confirm ${AGENT_TIMINGS.confirmRounds} / recover ${AGENT_TIMINGS.recoverRounds} rounds, settle ${AGENT_TIMINGS.settleSeconds} s, requestAfterSeconds ${AGENT_TIMINGS.requestAfterSeconds}, status jitter ${AGENT_TIMINGS.jitterMs} ms`;
  emit({
    ...distribution('repair_by_cilium_restart', 'ms', of((t) => t.greenAt - t.verdictAt - (t.readyAt - t.deletedAt)), { from: `the agent's verdict (${verdicts})`, to: 'Healthy again after the controller restarted Cilium', minus: "the stand-in's restart (pod deleted → new pod Ready)", agent: timings }),
    target: 'p95 <= 2000',
  });
  const wait = AGENT_TIMINGS.requestAfterSeconds * 1000;
  emit(distribution('repair_beyond_request_wait', 'ms', of((t) => t.greenAt - t.verdictAt - (t.readyAt - t.deletedAt) - wait), { what: `repair_by_cilium_restart minus the configured requestAfterSeconds (${AGENT_TIMINGS.requestAfterSeconds} s): connwatch's own machinery` }));
  emit(distribution('repair_verdict_to_green', 'ms', of((t) => t.greenAt - t.verdictAt), { from: `the agent's verdict (${verdicts})`, to: 'Healthy again', agent: timings }));
  emit(distribution('repair_stand_in_restart', 'ms', of((t) => t.readyAt - t.deletedAt), { from: 'cilium pod deleted (the DaemonSet stand-in saw it)', to: 'the Cilium stand-in restarted and the new pod Ready' }));
  emit(distribution('repair_verdict_to_request', 'ms', of((t) => t.requestAt - t.verdictAt), { from: 'the verdict', to: "the agent's restart request", configured: `requestAfterSeconds ${AGENT_TIMINGS.requestAfterSeconds}` }));
  emit(distribution('repair_request_to_pod_deleted', 'ms', of((t) => t.deletedAt - t.requestAt), { from: "the agent's restart request (its log)", to: 'cilium pod deleted (the DaemonSet stand-in saw it)', via: 'status write, controller watch, grant, delete' }));
  emit(distribution('repair_ready_to_green', 'ms', of((t) => t.greenAt - t.readyAt), { from: 'the new cilium pod Ready', to: 'the agent Healthy', found: `by probe bursts (150 ms rounds, default), ${AGENT_TIMINGS.recoverRounds} healthy rounds` }));
}
